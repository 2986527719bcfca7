"""The one way this course runs nbgrader's command line (release, collect, zip_collect, and the tests).

nbgrader reads autograder/nbgrader_config.py when it runs in a course's autograder/ folder, so every command
runs there, with this Python's bin folder first on PATH (nbgrader runs ``alembic`` from there when it makes a
gradebook). Grading itself goes through nbgrader's Python API in the grading workers (autograder/grading/).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any


class NbgraderFailed(RuntimeError):
    """An nbgrader command exited with an error; the message holds the command and the end of its output."""


def tool_env() -> dict[str, str]:
    """The environment for nbgrader and jupyter subprocesses: this Python's bin folder first on PATH, and no
    NBGRADER_EXECUTION left over from a grading run."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("NBGRADER_EXECUTION", None)
    return env


def run_in(
    folder: Path,
    *args: str,
    check: bool = True,
    capture: bool = True,
    timeout: float | None = None,
    env: dict[str, str | None] | None = None,
) -> subprocess.CompletedProcess:
    """Run ``nbgrader ARGS`` with ``folder`` as working directory (``env``: variables to set, or to remove
    with None); with ``check``, raise NbgraderFailed when it fails (``capture=False`` lets its output
    through to the terminal)."""
    environment = tool_env()
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=folder,
        env=environment,
        capture_output=capture,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        output = f"{(result.stdout or '')[-3000:]}{(result.stderr or '')[-6000:]}"
        raise NbgraderFailed(f"nbgrader {' '.join(args)} failed (exit {result.returncode}):\n{output}")
    return result


def run(course: Path, *args: str, **options: Any) -> subprocess.CompletedProcess:
    """Run ``nbgrader ARGS`` in ``course``'s autograder folder, where it reads the course's configuration
    (options as for ``run_in``)."""
    return run_in(Path(course) / "autograder", *args, **options)
