"""Run a notebook top to bottom in a fresh kernel (used by the tests, `make images` and `make bench`)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from autograder.authoring.notebooks import read


def execute(path: Path, *, timeout: int = 600, grading: bool = False) -> tuple[nbformat.NotebookNode, float]:
    """Execute the notebook at ``path`` with its own folder as working directory; return the executed
    notebook and the seconds it took, kernel start included. Errors raise nbclient's CellExecutionError.
    ``grading=True`` sets NBGRADER_EXECUTION as nbgrader does, so demonstrations take their short path."""
    nb = read(path)
    env = dict(os.environ)
    env.pop("NBGRADER_EXECUTION", None)
    if grading:
        env["NBGRADER_EXECUTION"] = "autograde"
    env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    start = time.perf_counter()
    client.execute(env=env)  # passed on to the kernel manager: the kernel gets this environment
    return nb, time.perf_counter() - start
