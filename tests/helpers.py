"""Shared helpers for the test suite: paths, temporary course folders, nbgrader runs, submissions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from autograder import nbgrader_cli
from autograder.authoring import notebooks as nbtools
from autograder.nbgrader_cli import tool_env
from benchmarks.simulate import make_course as _make_course
from benchmarks.simulate import solution_sources, student_notebook  # noqa: F401 - re-exported for tests

ROOT = Path(__file__).resolve().parent.parent

NOTEBOOKS = nbtools.assignments()


def make_course(tmp: Path, notebooks: list[str] = NOTEBOOKS) -> Path:
    """A throwaway copy of the course folder (solutions, release, images, nbgrader config) in ``tmp``."""
    return _make_course(tmp, notebooks)


def nbgrader(course: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the real nbgrader command line in ``course``'s autograder folder."""
    return nbgrader_cli.run(course, *args, check=check, timeout=1800)


def grade_cli(course: Path, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the grading command as an instructor does (`python -m autograder grade NAME --course ...`)."""
    result = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", name, "--course", str(course), "--no-progress", *args],
        cwd=ROOT,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if check:
        assert result.returncode == 0, f"grade failed ({result.returncode}):\n{result.stdout}{result.stderr}"
    return result
