"""Does student feedback hide the hidden tests, and does the whole nbgrader round trip work on one machine?

- test_preprocessor_hides_blocks_and_scrubs_outputs: in-process, on every solutions notebook with made-up
  outputs, the feedback preprocessor (autograder/reporting/feedback.py) hides each hidden block, keeps each
  error's message but not its traceback, and scrubs only the output lines that quote hidden source.
- test_feedback_hides_hidden_tests: real ``nbgrader generate_assignment``, ``autograde`` and
  ``generate_feedback`` in a temporary course grade a correct student and one with a known mistake; the
  feedback HTML shows the scores, the visible tests and the check's message, and no line of any hidden test
  (the preprocessor, registered in autograder/nbgrader_config.py). The autograded copies on disk keep
  the hidden tests for the instructor.
- test_round_trip_through_the_exchange: the instructor releases through a temporary exchange folder, two
  simulated students fetch and submit (one with correct answers, one untouched), the instructor collects,
  grades and releases feedback, and each student fetches their feedback; all through the nbgrader CLI.
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder import nbgrader_cli
from autograder.authoring import notebooks as nbtools
from autograder.reporting.feedback import PLACEHOLDER, SCRUBBED, HideHiddenTests
from tests import catalogue
from tests.helpers import (
    NOTEBOOKS,
    ROOT,
    grade_cli,
    make_course,
    nbgrader,
    solution_sources,
    student_notebook,
)

pytestmark = pytest.mark.slow

NAME = "01_linear"
MISTAKE = "bias ignored"
_BEGIN, _END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


def _course(tmp: Path) -> Path:
    """A temporary course (make_course copies the autograder package, whose feedback preprocessor the
    nbgrader config imports from the course folder) with the assignment generated (gradebook included)."""
    course = make_course(tmp, [NAME])
    nbgrader(course, "generate_assignment", NAME, "--force")
    return course


def _course_id() -> str:
    """The course id that autograder/nbgrader_config.py sets."""
    text = (ROOT / "autograder" / "nbgrader_config.py").read_text()
    found = re.search(r'^c\.CourseDirectory\.course_id = "([^"]+)"$', text, re.MULTILINE)
    assert found, "autograder/nbgrader_config.py should set c.CourseDirectory.course_id"
    return found.group(1)


def _hidden_blocks() -> list[list[str]]:
    """The code lines (stripped, non-empty) of every hidden block in the instructor's notebook."""
    blocks: list[list[str]] = []
    for cell in nbtools.read(nbtools.notebook_path(NAME)).cells:
        inside = False
        for line in cell.source.splitlines():
            if _BEGIN in line:
                inside = True
                blocks.append([])
            elif _END in line:
                inside = False
            elif inside and line.strip():
                blocks[-1].append(line.strip())
    assert blocks and all(blocks), f"{NAME} should have hidden tests with code in every block"
    return blocks


def _test_cells() -> list[tuple[str, float, list[str]]]:
    """``(grade_id, points, visible code lines)`` of every test cell of the instructor's notebook."""
    cells = []
    for cell in nbtools.read(nbtools.notebook_path(NAME)).cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution"):
            visible, inside = [], False
            for line in cell.source.splitlines():
                if _BEGIN in line:
                    inside = True
                elif _END in line:
                    inside = False
                elif not inside and line.strip():
                    visible.append(line.strip())
            cells.append((meta["grade_id"], float(meta["points"]), visible))
    return cells


def _text(path: Path) -> str:
    """The text a browser shows for an HTML file (tags stripped, entities unescaped)."""
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))


def _hidden_source_shown(path: Path) -> list[str]:
    """The hidden-test lines that an HTML file shows as text or holds anywhere in its markup (attributes,
    embedded metadata)."""
    markup = html.unescape(path.read_text(encoding="utf-8"))
    text = _text(path)
    return [line for block in _hidden_blocks() for line in block if line in text or line in markup]


def _submit(course: Path, student: str, nb: nbformat.NotebookNode) -> None:
    folder = course / "autograder" / "submitted" / student / NAME
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{NAME}.ipynb")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_preprocessor_hides_blocks_and_scrubs_outputs(name):
    """Does HideHiddenTests hide every hidden block, keep each error's message without its traceback, and
    scrub only the output lines that quote hidden source?"""
    nb = nbtools.read(nbtools.notebook_path(name))
    message = "check_x: the output has wrong values\n  likely mistake: bias ignored\n  fix: add the bias"
    quoted = []
    for cell in nb.cells:
        if cell.cell_type != "code" or _BEGIN not in cell.source:
            continue
        lines = cell.source.splitlines()
        hidden = lines[next(i for i, line in enumerate(lines) if _BEGIN in line) + 1]
        quoted.append(hidden.strip())
        cell.outputs = [
            nbformat.v4.new_output("stream", name="stdout", text="epoch 1: loss 0.5\n"),
            nbformat.v4.new_output("stream", name="stderr", text=f"x.py:6: UserWarning: slow\n  {hidden}\n"),
            nbformat.v4.new_output(
                "error",
                ename="CheckFailure",
                evalue=message,
                traceback=["\x1b[31mCheckFailure\x1b[39m  Traceback", f"\x1b[32m----> 6\x1b[39m {hidden}\n"],
            ),
        ]
    assert quoted, f"{name} should have hidden tests"
    HideHiddenTests().preprocess(nb, {})

    everything = nbformat.writes(nb)
    shown = [line for line in quoted if line in everything]
    assert not shown, f"{name}: hidden source left in the feedback copy: {shown}"
    for cell in nb.cells:
        if not cell.get("outputs"):
            continue
        assert PLACEHOLDER in cell.source and "HIDDEN TESTS" not in cell.source
        stdout, stderr, error = cell.outputs
        assert stdout.text == "epoch 1: loss 0.5\n"
        assert stderr.text == f"x.py:6: UserWarning: slow\n{SCRUBBED}\n"
        assert error.evalue == message and error.traceback == [f"\x1b[31mCheckFailure\x1b[39m: {message}"]


def test_feedback_hides_hidden_tests(tmp_path):
    """Does the feedback show scores, visible tests and check messages but no line of a hidden test?"""
    mistake = next(m for m in catalogue.load(NAME).MISTAKES if m.name == MISTAKE)
    course = _course(tmp_path)
    _submit(course, "correct", student_notebook(NAME, {}))
    _submit(course, "mistaken", student_notebook(NAME, {mistake.exercise: mistake.source}))
    nbgrader(course, "autograde", NAME, "--force")
    nbgrader(course, "generate_feedback", NAME, "--force")

    pages = {
        student: course / "autograder" / "feedback" / student / NAME / f"{NAME}.html"
        for student in ("correct", "mistaken")
    }
    feedback = {student: _text(page) for student, page in pages.items()}
    total = sum(points for _, points, _ in _test_cells())
    for student, text in feedback.items():
        shown = _hidden_source_shown(pages[student])
        assert not shown, f"{student}'s feedback shows hidden-test source: {shown}"
        assert "Traceback (most recent call last)" not in text, f"{student}'s feedback shows a traceback"
        assert "hidden tests: not shown" in text, f"{student}'s feedback should say where hidden tests were"
        for grade_id, points, visible in _test_cells():
            missing = [line for line in visible if line not in text]
            assert not missing, f"{student}'s feedback lacks the visible lines of {grade_id}: {missing}"
            lost = student == "mistaken" and grade_id.startswith(f"test_{mistake.exercise}")
            score = f"Score: {0.0 if lost else points} / {points}"
            assert score in text, f"{student}'s feedback should show {score!r} for {grade_id}"
    mistaken_cell = f"test_{mistake.exercise}"
    lost_points = sum(p for grade_id, p, _ in _test_cells() if grade_id.startswith(mistaken_cell))
    assert f"(Score: {total} / {total})" in feedback["correct"]
    assert f"(Score: {total - lost_points} / {total})" in feedback["mistaken"]
    assert mistake.message in feedback["mistaken"] and mistake.message not in feedback["correct"]

    # The check's whole message reaches the student; the instructor's autograded copy keeps everything.
    autograded_path = course / "autograder" / "autograded" / "mistaken" / NAME / f"{NAME}.ipynb"
    autograded = nbtools.read(autograded_path)
    messages = [
        output["evalue"]
        for cell in autograded.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert messages and all(message in feedback["mistaken"] for message in messages), messages
    on_disk = "\n".join(cell.source for cell in autograded.cells)
    assert "hidden=True" in on_disk and not [
        line for block in _hidden_blocks() for line in block if line not in on_disk
    ], "the autograded notebook on disk should keep the hidden tests"


def _student(folder: Path, student: str, exchange: Path, *args: str) -> None:
    """Run the nbgrader CLI as a student working in ``folder`` (its own home, so its own cache)."""
    env: dict[str, str | None] = {"HOME": str(folder)}
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_PATH", "JUPYTERHUB_USER"):
        env[name] = None
    # nbgrader names a submission after the operating system's user (not USER or LOGNAME); the tests run as
    # one user, so each simulated student gives its id explicitly (`nbgrader submit --student`).
    nbgrader_cli.run_in(
        folder,
        *args,
        f"--CourseDirectory.course_id={_course_id()}",
        f"--CourseDirectory.student_id={student}",
        f"--Exchange.root={exchange}",
        env=env,
        timeout=600,
    )


def test_round_trip_through_the_exchange(tmp_path):
    """Do release, fetch, submit, collect, autograde, feedback release and fetch work for two students?"""
    course = _course(tmp_path)
    exchange = tmp_path / "exchange"
    exchange.mkdir()
    os.chmod(exchange, 0o777)  # nbgrader's exchange is shared by everyone
    on_exchange = f"--Exchange.root={exchange}"
    nbgrader(course, "release_assignment", NAME, on_exchange)

    students = {"alice": "correct", "bob": "untouched"}
    folders = {student: tmp_path / "students" / student for student in students}
    answers = solution_sources(NAME)
    for student, work in students.items():
        folder = folders[student]
        folder.mkdir(parents=True)
        _student(folder, student, exchange, "fetch_assignment", NAME)
        fetched = folder / NAME / f"{NAME}.ipynb"
        if work == "correct":
            nb = nbtools.read(fetched)
            for cell in nb.cells:
                grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
                if grade_id in answers:
                    cell.source = answers[grade_id]
            nbformat.write(nb, fetched)
        _student(folder, student, exchange, "submit", NAME)

    nbgrader(course, "collect", NAME, on_exchange)
    nbgrader(course, "autograde", NAME)
    nbgrader(course, "generate_feedback", NAME)
    nbgrader(course, "release_feedback", NAME, on_exchange)
    for student in students:
        _student(folders[student], student, exchange, "fetch_feedback", NAME)

    with Gradebook(f"sqlite:///{course / 'autograder' / 'gradebook.db'}") as gradebook:
        submissions = {student: gradebook.find_submission(NAME, student) for student in students}
        scores = {student: (s.score, s.max_score) for student, s in submissions.items()}
    assert scores["alice"][0] == scores["alice"][1] > 0, f"correct answers should get full marks: {scores}"
    assert scores["bob"][0] == 0 < scores["bob"][1], f"the untouched notebook should get zero: {scores}"
    for student in students:
        fetched = list(folders[student].glob(f"{NAME}/feedback/*/{NAME}.html"))
        assert len(fetched) == 1, f"{student} should have fetched one feedback file, found {fetched}"
        text = _text(fetched[0])
        shown = _hidden_source_shown(fetched[0])
        assert not shown, f"{student}'s fetched feedback shows hidden-test source: {shown}"
        total = scores[student]
        assert f"(Score: {total[0]} / {total[1]})" in text, f"{student}'s feedback should show {total}"
    untouched = _text(next(folders["bob"].glob(f"{NAME}/feedback/*/{NAME}.html")))
    assert "not implemented yet" in untouched

    # The grading command collects from the same exchange (set in the course's config) and agrees with
    # nbgrader autograde.
    with open(course / "autograder" / "nbgrader_config.py", "a", encoding="utf-8") as config:
        config.write(f"\nc.Exchange.root = {str(exchange)!r}\n")
    graded = grade_cli(course, NAME, "--collect")
    assert "nbgrader collect" in graded.stdout and "2 to grade" in graded.stdout, graded.stdout
    for student in students:
        record = json.loads((course / "autograder" / "grading" / NAME / f"{student}.json").read_text())
        assert (record["score"], record["max_score"]) == scores[student], (student, record["score"])
