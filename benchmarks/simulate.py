"""A simulated course and class: a throwaway copy of the course folder, and submissions built from the
released notebooks (used by the tests and `make bench-grading`)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat

from autograder.authoring import notebooks as nbtools
from autograder.engine.settings import DATA_FOLDERS

_MARKER = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$")


def solution_sources(name: str) -> dict[str, str]:
    """``{exercise: the instructor's solution cell without the nbgrader markers}`` for one notebook."""
    nb = nbtools.read(nbtools.notebook_path(name))
    sources = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            lines = [line for line in cell.source.splitlines() if not _MARKER.match(line)]
            sources[meta["grade_id"]] = "\n".join(lines)
    return sources


def student_notebook(name: str, replacements: dict[str, str], fill: bool = True) -> nbformat.NotebookNode:
    """The released notebook with its solution cells filled in (the instructor's answers when ``fill``),
    except the exercises in ``replacements``, whose cells get the given source."""
    nb = nbtools.read(nbtools.notebook_path(name, nbtools.RELEASE))
    answers = solution_sources(name) if fill else {}
    unknown = set(replacements) - set(solution_sources(name))
    if unknown:
        raise ValueError(f"no solution cell named {sorted(unknown)} in {name}")
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in replacements:
            cell.source = replacements[grade_id].strip("\n")
        elif grade_id in answers:
            cell.source = answers[grade_id]
    return nb


def make_course(tmp: Path, notebooks: list[str]) -> Path:
    """A throwaway copy of the course folder (solutions, release, images, the autograder package with its
    nbgrader config) in ``tmp``: it grades on its own, as the real course does."""
    course = tmp / "course"
    course.mkdir(parents=True)
    shutil.copytree(nbtools.ROOT / "autograder", course / "autograder", ignore=_grader_code_only)
    for folder in ("solutions", "notebooks"):
        for name in notebooks:
            shutil.copytree(nbtools.ROOT / folder / name, course / folder / name)
    shutil.copytree(nbtools.IMAGES, course / "images")
    shutil.copy(nbtools.ROOT / "pyproject.toml", course)
    return course


def _grader_code_only(folder: str, names: list[str]) -> set[str]:
    """What of autograder/ a course copy leaves out: everything but the grader's Python files (no data)."""
    skipped = set()
    for name in names:
        path = Path(folder, name)
        if path.is_dir():
            if name.startswith(".") or name == "__pycache__" or name in DATA_FOLDERS:
                skipped.add(name)
        elif path.suffix != ".py":
            skipped.add(name)
    return skipped


def submit(course: Path, student: str, name: str, nb: nbformat.NotebookNode) -> Path:
    """Put a notebook where nbgrader's collect would: autograder/submitted/STUDENT/NAME/NAME.ipynb."""
    folder = course / "autograder" / "submitted" / student / name
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{name}.ipynb")
    return folder / f"{name}.ipynb"
