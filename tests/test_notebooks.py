"""Are the notebooks runnable, clean, generated from solutions/, and built on the template?"""

import ast
import base64
import copy
import filecmp
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.authoring import notebooks as nbtools
from autograder.authoring.execute import execute
from tests.helpers import NOTEBOOKS, ROOT, make_course, nbgrader, tool_env


def test_there_are_notebooks():
    """Does the course have its notebooks, each in solutions/ and notebooks/?"""
    assert "01_linear" in NOTEBOOKS
    assert nbtools.assignments(nbtools.RELEASE) == NOTEBOOKS


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_solutions_run_top_to_bottom(name):
    """Does each solutions notebook run without error, with every test cell passing and its figures drawn?"""
    nb, _ = execute(nbtools.notebook_path(name), timeout=300)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            outputs = cell.get("outputs", [])
            assert not [o for o in outputs if o.get("name") == "stderr"], (
                f"{name}: a test cell wrote to stderr"
            )
            text = "".join(o.get("text", "") for o in outputs)
            assert "✓" in text, f"{name}: test cell {cell.metadata['nbgrader']['grade_id']} printed no tick"
    for figure, index in nbtools.figure_cells(nb).items():
        assert nbtools.png_output(nb.cells[index]) is not None, f"{figure} drew nothing"


@pytest.mark.parametrize("folder", [nbtools.SOLUTIONS, nbtools.RELEASE], ids=["solutions", "notebooks"])
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_no_outputs_stored(folder, name):
    """Is each notebook stored without outputs, execution counts or stray metadata?"""
    nb = nbtools.read(nbtools.notebook_path(name, folder))
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
        assert set(cell.metadata) <= {"nbgrader", "deletable", "editable"}
    assert set(nb.metadata) <= set(nbtools.KEEP_NOTEBOOK_METADATA)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_cleaning_keeps_nbgrader_metadata(name):
    """Does the cleaning step leave every cell's nbgrader metadata as it was?"""
    nb = nbtools.read(nbtools.notebook_path(name))
    before = [copy.deepcopy(cell.metadata.get("nbgrader")) for cell in nb.cells]
    for cell in nb.cells:  # what a run in JupyterLab adds
        cell.metadata["collapsed"] = False
        cell.metadata.setdefault("tags", []).append("x")
        if cell.cell_type == "code":
            cell.execution_count = 3
            cell.outputs = [{"output_type": "stream", "name": "stdout", "text": "hi"}]
    nbtools.clean(nb)
    assert [cell.metadata.get("nbgrader") for cell in nb.cells] == before
    assert sum(1 for m in before if m) >= 5
    assert all(cell.get("outputs", []) == [] for cell in nb.cells)


@pytest.mark.parametrize("folder", [nbtools.SOLUTIONS, nbtools.RELEASE], ids=["solutions", "notebooks"])
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_badge_and_setup_cell_match_the_template(folder, name):
    """Does each notebook open with the Colab badge for its own path and the template's setup cell?"""
    nb = nbtools.read(nbtools.notebook_path(name, folder))
    badge, setup = nb.cells[0], nb.cells[1]
    settings = nbtools.settings()
    assert badge.cell_type == "markdown" and badge.source == nbtools.badge_source(name)
    assert (
        f"github/{settings['repository']}/blob/{settings['branch']}/notebooks/{name}/{name}.ipynb"
        in badge.source
    )
    assert setup.cell_type == "code" and setup.source == nbtools.setup_source()
    assert f"git+https://github.com/{settings['repository']}@{settings['branch']}" in setup.source
    assert "--no-deps" in setup.source  # Colab's own torch stays
    assert setup.metadata["nbgrader"]["locked"] and badge.metadata["nbgrader"]["locked"]


def test_setup_cell_does_nothing_outside_colab_and_installs_inside(tmp_path):
    """Outside Colab, does the setup cell only import? Inside (simulated), does it run pip as promised?"""
    source = nbtools.setup_source()
    plain = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0, plain.stderr
    assert plain.stderr == "" and plain.stdout.startswith("course_lib ")
    fake_colab = (
        "import sys, types, subprocess\n"
        "sys.modules['google.colab'] = types.ModuleType('google.colab')\n"
        "calls = []\n"
        "subprocess.run = lambda args, check: calls.append(args)\n" + source + "\nprint('PIP', calls[0])\n"
    )
    colab = subprocess.run([sys.executable, "-c", fake_colab], capture_output=True, text=True, timeout=120)
    assert colab.returncode == 0, colab.stderr
    assert "'pip', 'install'" in colab.stdout and "torchsummary==1.5.1" in colab.stdout
    assert "'torch'" not in colab.stdout and "torch==" not in colab.stdout


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_figure_previews_match_images(name):
    """Is every figure a notebook draws saved in images/ and shown as an embedded preview (so it renders
    on GitHub and in Colab without running), byte for byte the file in images/?"""
    nb = nbtools.read(nbtools.notebook_path(name))
    figures = nbtools.figure_cells(nb)
    assert figures, f"{name} draws no figure marked `# figure: NAME`"
    embedded = {}
    for cell in nb.cells:
        for filename, data in cell.get("attachments", {}).items():
            embedded[filename.removesuffix(".png")] = base64.b64decode(data["image/png"])
    for figure in figures:
        png = nbtools.IMAGES / f"{figure}.png"
        assert png.is_file(), f"images/{figure}.png missing: run make images"
        assert embedded.get(figure) == png.read_bytes(), (
            f"{figure}: preview differs from images/: run make images"
        )
        assert png.read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_release_reproduces_committed_notebooks(tmp_path):
    """Does nbgrader generate_assignment, run on solutions/, give back notebooks/ byte for byte?"""
    course = make_course(tmp_path)
    for name in NOTEBOOKS:
        (course / "notebooks" / name / f"{name}.ipynb").unlink()
        nbgrader(course, "generate_assignment", name, "--force")
        generated = course / "notebooks" / name / f"{name}.ipynb"
        committed = ROOT / "notebooks" / name / f"{name}.ipynb"
        assert filecmp.cmp(generated, committed, shallow=False), (
            f"notebooks/{name} differs from what solutions/{name} generates: run `make release`"
        )


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_student_version_has_no_solutions_or_hidden_tests(name):
    """Does the student notebook hold no solution code and no hidden tests, and a stub in each exercise?"""
    text = nbtools.notebook_path(name, nbtools.RELEASE).read_text()
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text and "hidden=True" not in text
    nb = json.loads(text)
    stubs = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("solution")]
    assert stubs and all("raise NotImplementedError()" in "".join(c["source"]) for c in stubs)


# Plotting calls that return an object: as a cell's last line, the notebook prints it above the figure
# (`[Text(0.5, 0, 'step'), ...]`, `<matplotlib.legend.Legend at 0x...>`) unless the line ends with `;`.
PLOT_CALLS_WITH_RESULT = {
    "set", "set_title", "set_xlabel", "set_ylabel", "set_xlim", "set_ylim", "set_xticks", "set_yticks",
    "legend", "axis", "plot", "scatter", "bar", "barh", "hist", "imshow", "text", "annotate", "colorbar",
    "suptitle", "axhline", "axvline", "fill_between", "errorbar", "semilogy", "loglog",
}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_no_cell_prints_a_plot_call_result(name):
    """Does no code cell end with a plotting call whose return value the notebook would print?"""
    stray = []
    for index, cell in enumerate(nbtools.read(nbtools.notebook_path(name)).cells):
        if cell.cell_type != "code" or cell.source.rstrip().endswith(";"):
            continue
        body = ast.parse(cell.source).body
        last = body[-1] if body else None
        if isinstance(last, ast.Expr) and isinstance(last.value, ast.Call):
            function = last.value.func
            if isinstance(function, ast.Attribute) and function.attr in PLOT_CALLS_WITH_RESULT:
                stray.append(f"cell {index}: {cell.source.rstrip().splitlines()[-1]}")
    assert not stray, f"{name}: end these lines with ';' so the figure shows alone: {stray}"


def test_ruff_passes_on_code_and_notebooks():
    """Does ruff pass on the whole repository, notebooks included?"""
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--show-files", str(ROOT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    assert "01_linear.ipynb" in listed, "ruff does not read the notebooks"


def _stamp_in_a_copy(tmp_path: Path, pyproject: str, **env: str) -> tuple[subprocess.CompletedProcess, Path]:
    """`python -m autograder stamp 01_linear` in a copy of the course with the given pyproject.toml."""
    copy = tmp_path / "course"
    for folder in ("autograder", "solutions", "images"):
        shutil.copytree(ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "pyproject.toml").write_text(pyproject)
    result = subprocess.run(
        [sys.executable, "-m", "autograder", "stamp", "01_linear"],
        cwd=copy,
        env={**tool_env(), "ALLOW_PLACEHOLDER": "", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result, copy / "solutions" / "01_linear" / "01_linear.ipynb"


def test_stamp_refuses_the_placeholder_repository(tmp_path):
    """Does `make stamp` refuse to write the placeholder repository into the badges unless
    ALLOW_PLACEHOLDER=1, stamp it byte for byte as committed when allowed, and stamp a real one?"""
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert nbtools.PLACEHOLDER_REPOSITORY in pyproject
    committed = nbtools.notebook_path("01_linear").read_bytes()

    refused, path = _stamp_in_a_copy(tmp_path / "refused", pyproject)
    assert refused.returncode != 0 and "placeholder repository" in refused.stderr
    assert "ALLOW_PLACEHOLDER=1" in refused.stderr and path.read_bytes() == committed

    allowed, path = _stamp_in_a_copy(tmp_path / "allowed", pyproject, ALLOW_PLACEHOLDER="1")
    assert allowed.returncode == 0, allowed.stderr
    assert path.read_bytes() == committed

    own = pyproject.replace(nbtools.PLACEHOLDER_REPOSITORY, "a-university/pytorch-course")
    adopted, path = _stamp_in_a_copy(tmp_path / "adopted", own)
    assert adopted.returncode == 0, adopted.stderr
    text = path.read_text()
    assert "github/a-university/pytorch-course/blob/main/notebooks/01_linear" in text
    assert "git+https://github.com/a-university/pytorch-course@main" in text
    assert nbtools.PLACEHOLDER_REPOSITORY not in text
