"""Notebook hygiene for the course: the Colab badge and setup cell template, cleaning, and figure previews.

Every notebook opens with the same two cells, rendered from ``[tool.course]`` in pyproject.toml:
a badge that opens the notebook's own path in Colab, and a setup cell that in Colab installs course_lib
and torchsummary from the repository (without touching Colab's torch) and in JupyterLab only imports.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import nbformat

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = ROOT / "solutions"
RELEASE = ROOT / "notebooks"
IMAGES = ROOT / "images"

BADGE_ID = "colab_badge"
SETUP_ID = "setup"
# A code cell whose first line is `# figure: NAME` draws images/NAME.png; a markdown cell shows it as a
# preview with ![...](attachment:NAME.png), so it renders on GitHub too, where outputs are not stored.
FIGURE_LINE = re.compile(r"^# figure: ([a-z0-9_]+)$")
ATTACHMENT_REF = re.compile(r"\(attachment:([a-z0-9_]+)\.png\)")

_BADGE = (
    "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
    "(https://colab.research.google.com/github/{repository}/blob/{branch}/notebooks/{name}/{name}.ipynb)"
)

_SETUP = """\
# Setup: runs unchanged in JupyterLab and in Colab. In Colab it first installs the course's helpers
# (course_lib) and torchsummary from the course repository, keeping Colab's own PyTorch.
import sys

if "google.colab" in sys.modules:
    import importlib
    import subprocess

    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "torchsummary==1.5.1",
         "course-lib @ git+https://github.com/{repository}@{branch}"],
        check=True,
    )
    importlib.invalidate_caches()  # let this running Python see the packages just installed

from course_lib.notebook import setup_notebook

device = setup_notebook()"""


def settings() -> dict[str, str]:
    """``[tool.course]`` from pyproject.toml: the repository (owner/name) and branch."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    course = data.get("tool", {}).get("course", {})
    repository, branch = course.get("repository", ""), course.get("branch", "")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repository) or not branch:
        raise ValueError(
            f'pyproject.toml [tool.course] needs repository = "owner/name" and branch = "main"; '
            f"got repository={repository!r}, branch={branch!r}"
        )
    return {"repository": repository, "branch": branch}


def assignments(folder: Path = SOLUTIONS) -> list[str]:
    """Names of the course's notebooks (``NN_topic``) found in ``folder``, in order."""
    return sorted(
        p.name
        for p in folder.iterdir()
        if re.fullmatch(r"\d\d_[a-z0-9_]+", p.name) and (p / f"{p.name}.ipynb").is_file()
    )


def notebook_path(name: str, folder: Path = SOLUTIONS) -> Path:
    return folder / name / f"{name}.ipynb"


def badge_source(name: str) -> str:
    return _BADGE.format(name=name, **settings())


def setup_source() -> str:
    return _SETUP.format(**settings())


def _locked(grade_id: str) -> dict:
    return {
        "nbgrader": {
            "grade": False,
            "grade_id": grade_id,
            "locked": True,
            "schema_version": 3,
            "solution": False,
            "task": False,
        }
    }


def stamp(nb: nbformat.NotebookNode, name: str) -> None:
    """Make the first two cells the badge and setup cells of the template (replacing older ones)."""
    badge = nbformat.v4.new_markdown_cell(badge_source(name), metadata=_locked(BADGE_ID), id=BADGE_ID)
    setup = nbformat.v4.new_code_cell(setup_source(), metadata=_locked(SETUP_ID), id=SETUP_ID)
    cells = [
        c
        for c in nb.cells
        if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") not in (BADGE_ID, SETUP_ID)
    ]
    nb.cells = [badge, setup, *cells]


#: The repository the course ships with. A course adopted from it must name its own, or the badges and the
#: Colab setup cell would send its students to a repository that is not theirs.
PLACEHOLDER_REPOSITORY = "pytorch-builders/torch-model-building-course"


def stamp_files(names: list[str]) -> None:
    """`make stamp`: write the badge and setup cell into the named solutions notebooks, and clean them.
    Refuses to stamp the placeholder repository unless ALLOW_PLACEHOLDER=1 is set."""
    repository = settings()["repository"]
    if repository == PLACEHOLDER_REPOSITORY and os.environ.get("ALLOW_PLACEHOLDER") != "1":
        raise SystemExit(
            f"pyproject.toml still names the placeholder repository {repository!r} under [tool.course]: "
            "set repository = \"OWNER/NAME\" to the GitHub repository your students will open (see the top "
            "of the README's instructor part), then run `make stamp release` again; to stamp the "
            "placeholder anyway (the course's own tests do), run with ALLOW_PLACEHOLDER=1"
        )
    for name in names:
        path = notebook_path(name)
        nb = read(path)
        stamp(nb, name)
        attach_previews(nb, missing_ok=True)
        clean(nb)
        write(nb, path)
        print(f"stamped {path.relative_to(ROOT)}")


KEEP_CELL_METADATA = ("nbgrader",)
KEEP_NOTEBOOK_METADATA = ("kernelspec", "language_info")


def clean(nb: nbformat.NotebookNode) -> None:
    """Drop outputs, execution counts and all metadata but nbgrader's and the kernel's."""
    for cell in nb.cells:
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in KEEP_CELL_METADATA}
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in KEEP_NOTEBOOK_METADATA}
    if "language_info" in nb.metadata:
        nb.metadata["language_info"] = {"name": nb.metadata["language_info"].get("name", "python")}


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def write(nb: nbformat.NotebookNode, path: Path) -> None:
    """Write a notebook the way nbformat does (one-space indent, sorted keys, trailing newline)."""
    nbformat.validate(nb)
    path.write_text(nbformat.writes(nb) + "\n")


def figure_cells(nb: nbformat.NotebookNode) -> dict[str, int]:
    """``{figure name: cell index}`` for the code cells that draw a figure for images/."""
    found = {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            first = cell.source.splitlines()[0] if cell.source else ""
            match = FIGURE_LINE.match(first)
            if match:
                found[match.group(1)] = index
    return found


def png_output(cell: nbformat.NotebookNode) -> bytes | None:
    """The last PNG a code cell displayed, or None."""
    for output in reversed(cell.get("outputs", [])):
        data = output.get("data", {})
        if "image/png" in data:
            return base64.b64decode(data["image/png"])
    return None


def attach_previews(nb: nbformat.NotebookNode, images: Path = IMAGES, missing_ok: bool = False) -> list[str]:
    """Embed images/NAME.png in each markdown cell showing ``attachment:NAME.png``; returns the names.
    With ``missing_ok``, a figure not drawn yet (a new notebook before `make images`) is left out."""
    attached = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        names = ATTACHMENT_REF.findall(cell.source)
        if not names:
            cell.pop("attachments", None)
            continue
        cell["attachments"] = {}
        for name in names:
            png = images / f"{name}.png"
            if not png.is_file():
                if missing_ok:
                    continue
                raise FileNotFoundError(f"{png} is missing: run `make images` to draw it")
            cell["attachments"][f"{name}.png"] = {"image/png": base64.b64encode(png.read_bytes()).decode()}
            attached.append(name)
    return attached
