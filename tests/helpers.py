"""Shared helpers for the test suite: paths, temporary course folders, nbgrader runs, submissions."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from autograder import notebooks as nbtools

ROOT = Path(__file__).resolve().parent.parent

NOTEBOOKS = nbtools.assignments()


def tool_env() -> dict[str, str]:
    """Environment for nbgrader / jupyter subprocesses: this Python's bin folder first on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("NBGRADER_EXECUTION", None)
    return env


def make_course(tmp: Path, notebooks: list[str] = NOTEBOOKS) -> Path:
    """A throwaway copy of the course folder (solutions, release, images, nbgrader config) in ``tmp``."""
    course = tmp / "course"
    (course / "autograder").mkdir(parents=True)
    shutil.copy(ROOT / "autograder" / "nbgrader_config.py", course / "autograder")
    for folder in ("solutions", "notebooks"):
        for name in notebooks:
            shutil.copytree(ROOT / folder / name, course / folder / name)
    shutil.copytree(ROOT / "images", course / "images")
    shutil.copy(ROOT / "pyproject.toml", course)
    return course


def nbgrader(course: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the real nbgrader command line in ``course``'s autograder folder."""
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=course / "autograder",
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"nbgrader {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
        )
    return result


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
    assert not unknown, f"no solution cell named {unknown} in {name}"
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in replacements:
            cell.source = replacements[grade_id].strip("\n")
        elif grade_id in answers:
            cell.source = answers[grade_id]
    return nb
