"""Do the course's tools really work in a browser? A student opens 01_linear in the JupyterLab that `make lab`
starts, runs it, types the answers and validates it with nbgrader's button; an instructor sees the
assignments and the graded class in nbgrader's formgrader. Each step leaves a screenshot in
tests/artifacts/browser/ (or $BROWSER_ARTIFACTS)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
import pytest

from benchmarks.simulate import submit
from tests.browser import (
    Lab,
    browser_page,
    expect,
    lab_course,
    launch_chromium,
    make_lab,
    require_browser,
    sync_playwright,
)
from tests.helpers import grade_cli, solution_sources, student_notebook

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

pytestmark = pytest.mark.slow

NAME = "01_linear"
NOTEBOOK = f"notebooks/{NAME}/{NAME}.ipynb"
EXERCISES = ["linear_forward", "make_linear", "linear_param_count"]
# One mistake: forgets the bias, so only linear_param_count's points are lost.
WRONG_PARAM_COUNT = (
    "def linear_param_count(in_features, out_features, bias=True):\n    return in_features * out_features"
)
# The kernel's status in the notebook's toolbar.
KERNEL_STATUS = ".jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator"
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """The system's headless Chromium driven by Playwright (skips, naming the fix, if either is missing)."""
    chromium = require_browser()
    expect.set_options(timeout=60_000)  # the machine may be busy: waits are long, and end as soon as met

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, chromium)
        yield browser
        browser.close()


def _code_cell(page: Page, source: str) -> Locator:
    """The notebook's code cell whose source contains ``source``."""
    return page.locator(".jp-NotebookPanel .jp-CodeCell").filter(
        has=page.locator(".jp-InputArea .cm-content", has_text=source)
    )


def _run_all(page: Page) -> None:
    """Run > Run All Cells, from JupyterLab's menu bar."""
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


def _last_execution_count(page: Page) -> int:
    """The highest execution count shown in the notebook's prompts (0 when nothing has run)."""
    prompts = page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt").all_text_contents()
    return max((int(m.group(1)) for p in prompts if (m := re.search(r"\[(\d+)\]", p))), default=0)


def _wait_all_ran_after(page: Page, count: int) -> None:
    """Wait until every code cell shows an execution count above ``count`` (all ran, none queued)."""
    page.wait_for_function(
        """after => {
            const prompts = [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt')];
            return prompts.length > 0 && prompts.every(p => {
                const m = p.textContent.match(/\\[(\\d+)\\]/);
                return m !== null && Number(m[1]) > after;
            });
        }""",
        arg=count,
        timeout=180_000,
    )


def _wait_image_shown(locator: Locator) -> tuple[int, int]:
    """Wait until the <img> at ``locator`` has loaded; its natural (width, height)."""
    locator.wait_for()
    handle = locator.element_handle()
    locator.page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=handle)
    width, height = handle.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    return width, height


def _validate(page: Page) -> tuple[str, str]:
    """Click nbgrader's Validate button (it saves, then validates); the result's (class, text)."""
    page.locator(".jp-NotebookPanel-toolbar .validate-button").click()
    message = page.locator(".jp-Dialog #validation-message")
    message.wait_for(timeout=180_000)
    return message.get_attribute("class") or "", message.text_content() or ""


def _close_dialog(page: Page) -> None:
    """Close the open dialog with its OK button."""
    page.locator(".jp-Dialog .jp-mod-accept").click()
    expect(page.locator(".jp-Dialog")).to_have_count(0)


def _open_notebook(page: Page, lab: Lab, path: str, code_cells: int) -> None:
    """Open ``path`` in JupyterLab and wait until all its code cells show and its kernel is idle."""
    page.goto(lab.page_url(f"/lab/tree/{path}"))
    expect(page.locator(".jp-NotebookPanel .jp-CodeCell")).to_have_count(code_cells)
    expect(page.locator(KERNEL_STATUS)).to_have_attribute("data-status", "idle", timeout=120_000)


def test_student_runs_solves_and_validates_01_linear(tmp_path: Path, browser: Browser) -> None:
    """In the JupyterLab of `make lab`, does the untouched 01_linear fail nbgrader's Validate and show the
    NotImplementedError under Run All; once the three answers are typed in, do their test cells pass, does
    Run All give no errors and draw the figure, and does Validate report success?"""
    course = lab_course(tmp_path, [NAME])
    answers = solution_sources(NAME)
    assert sorted(answers) == sorted(EXERCISES)
    released = nbformat.read(course / NOTEBOOK, as_version=4)
    code_cells = sum(cell.cell_type == "code" for cell in released.cells)

    with make_lab(course) as lab, browser_page(browser, "student") as (page, shots, errors):
        _open_notebook(page, lab, NOTEBOOK, code_cells)
        expect(page.locator(".jp-StatusBar-Widget")).to_contain_text("Python 3 (ipykernel) | Idle")
        shots.take("opened")

        # Validate tells the truth about the untouched notebook: every visible test fails.
        kind, text = _validate(page)
        shots.take("validate_untouched_fails")
        assert "validation-failed" in kind.split(), text[:2000]
        for exercise in EXERCISES:
            assert f"checks.check_{exercise}({exercise})" in text, (
                f"{exercise}'s test is not reported failing"
            )
        assert "NotImplementedError" in text and f"{EXERCISES[0]}: not implemented yet" in text, text[:2000]
        _close_dialog(page)

        # Run All stops at the first exercise's test cell, which shows the NotImplementedError.
        _run_all(page)
        first_test = _code_cell(page, f"checks.check_{EXERCISES[0]}({EXERCISES[0]})")
        error = first_test.locator(STDERR)
        expect(error).to_contain_text("NotImplementedError", timeout=120_000)
        expect(page.locator(KERNEL_STATUS)).to_have_attribute("data-status", "idle")
        assert f"CheckFailure: {EXERCISES[0]}: not implemented yet" in error.text_content()
        error.scroll_into_view_if_needed()
        shots.take("run_all_not_implemented")

        # The student types each answer into its solution cell, then runs it and its test cell.
        for exercise in EXERCISES:
            editor = _code_cell(page, f"def {exercise}(").locator(".cm-content")
            editor.click()
            page.keyboard.press("ControlOrMeta+A")
            # insert_text types the text as one input: no auto-indent or bracket closing on the way
            page.keyboard.insert_text(answers[exercise])
            page.keyboard.press("Shift+Enter")  # runs the solution cell, selects its test cell
            page.keyboard.press("Shift+Enter")  # runs the test cell
            test = _code_cell(page, f"checks.check_{exercise}({exercise})")
            expect(test.locator(".jp-OutputArea-output")).to_contain_text(
                re.compile(rf"✓ {exercise}: \d+ checks passed"), timeout=120_000
            )
            expect(test.locator(STDERR)).to_have_count(0)
            test.scroll_into_view_if_needed()
            shots.take(f"{exercise}_passes")

        # Run All on the solved notebook: every cell runs, none errs, and the figure is drawn.
        expect(page.locator(KERNEL_STATUS)).to_have_attribute("data-status", "idle")
        before = _last_execution_count(page)
        _run_all(page)
        _wait_all_ran_after(page, before)
        expect(page.locator(KERNEL_STATUS)).to_have_attribute("data-status", "idle")
        # Errors render as stderr text; the solved notebook writes nothing to stderr at all.
        stderr = page.locator(f".jp-NotebookPanel {STDERR}")
        assert stderr.count() == 0, "\n---\n".join(stderr.all_text_contents())[:3000]
        figure = _code_cell(page, "# figure: 01_linear_fit").locator(".jp-OutputArea-output img")
        width, height = _wait_image_shown(figure)
        assert width > 0 and height > 0
        # The figure stored in the Markdown above it shows too (see ALLOWED_CONSOLE_ERRORS).
        _wait_image_shown(page.locator('.jp-MarkdownCell img[alt="The fitted line and the loss curve"]'))
        figure.scroll_into_view_if_needed()
        shots.take("run_all_solved_figure")

        # Save with Ctrl+S: the file holds exactly what was typed, with the outputs.
        unsaved = page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty", has_text=f"{NAME}.ipynb")
        expect(unsaved).to_have_count(1)
        page.keyboard.press("ControlOrMeta+S")
        expect(unsaved).to_have_count(0)
        saved = nbformat.read(course / NOTEBOOK, as_version=4)
        typed = {
            cell.metadata["nbgrader"]["grade_id"]: cell.source
            for cell in saved.cells
            if cell.metadata.get("nbgrader", {}).get("solution")
        }
        assert typed == answers
        figure_outputs = [c.outputs for c in saved.cells if c.source.startswith("# figure: 01_linear_fit")]
        assert any("image/png" in out.get("data", {}) for out in figure_outputs[0])

        kind, text = _validate(page)
        shots.take("validate_passes")
        assert "validation-success" in kind.split(), text[:3000]
        assert "Success! Your notebook passes all the tests." in text
        _close_dialog(page)

        assert errors.errors == []


def test_instructor_sees_assignments_and_graded_class_in_formgrader(tmp_path: Path, browser: Browser) -> None:
    """With `make lab` serving a course of two assignments, does nbgrader's formgrader (opened from the
    Nbgrader menu) list both, and after the grading command has graded two submissions of 01_linear, does it
    show each student with the score of the grading records?"""
    course = lab_course(tmp_path, ["01_linear", "02_modules"])
    with make_lab(course) as lab, browser_page(browser, "instructor") as (page, shots, errors):
        page.goto(lab.page_url("/lab"))
        page.locator(".lm-MenuBar-item", has_text="Nbgrader").click()
        page.get_by_role("menuitem", name="Formgrader", exact=True).click()
        formgrader = page.frame_locator("#formgrader-iframe iframe")
        names = formgrader.locator("#main-table td.name")
        expect(names).to_have_text(["01_linear", "02_modules"], timeout=120_000)
        shots.take("formgrader_assignments")

        students = {
            "alice": student_notebook(NAME, {}),
            "bob": student_notebook(NAME, {"linear_param_count": WRONG_PARAM_COUNT}),
        }
        for student, nb in students.items():
            submit(course, student, NAME, nb)
        grade_cli(course, NAME)
        records = {
            student: json.loads((course / "autograder" / "grading" / NAME / f"{student}.json").read_text())
            for student in students
        }
        assert all(record["status"] == "graded" for record in records.values()), records
        assert records["alice"]["score"] == records["alice"]["max_score"] > records["bob"]["score"] > 0

        # Back to Manage Assignments (reloads the table), then the submissions of 01_linear.
        formgrader.get_by_role("link", name="Manage Assignments").click()
        row = formgrader.locator("#main-table tr").filter(has=formgrader.locator("td.name", has_text=NAME))
        expect(row.locator("td.num-submissions")).to_have_text(str(len(students)))
        shots.take("formgrader_submitted")
        row.locator("td.num-submissions a").click()
        table = formgrader.locator("#main-table tr")
        expect(table.locator("td.student-id")).to_have_text(sorted(students))
        for student, record in records.items():
            shown = table.filter(has=formgrader.locator("td.student-id", has_text=student))
            expect(shown.locator("td.score")).to_have_text(f"{record['score']:g} / {record['max_score']:g}")
            expect(shown.locator("td.status")).to_have_text("graded")
        shots.take("formgrader_scores")

        assert errors.errors == []
