"""Flags for the instructor: code in a submission that tries to change how grading works.

The grader does not rely on this scan to keep points from cheats (the checks, the signed evidence of test
cells, nbgrader's restored test cells and the sandbox do that); it tells the instructor which submissions
tried, so that the class report can list them. It reads the cells a student wrote (solution cells and
cells they added), never runs them, and looks for the usual ways to fool a notebook grader.
"""

from __future__ import annotations

import re

import nbformat

# (what the report says, pattern over one cell's source)
PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "defines an always-true comparison (__eq__ / __bool__ returning True)",
        re.compile(r"def\s+__(eq|bool|ne)__\s*\([^)]*\)\s*(->[^:]*)?:\s*(\n\s*)?return\s+(True|not\b|1\b)"),
    ),
    (
        "replaces a library or check function (torch / numpy / course_lib / checks attribute assignment)",
        re.compile(
            r"^\s*(torch|np|numpy|F|nn|checks|course_lib|math|builtins)(\.\w+)+\s*=(?!=)"
            r"|setattr\(\s*(torch|np|numpy|F|nn|checks|course_lib|math|builtins)\b",
            re.MULTILINE,
        ),
    ),
    (
        "changes how later cells run (IPython input/AST transformers, exception, display or event hooks)",
        re.compile(
            r"input_transformers|ast_transformers|input_transformer_manager|set_custom_exc|"
            r"sys\.excepthook|displayhook|display_formatter|events\.register|register_magic|"
            r"showtraceback|run_cell|InteractiveShell"
        ),
    ),
    (
        "reaches for course files (solutions, gradebook, other notebooks, the evidence key)",
        re.compile(
            r"solutions/|gradebook|sqlite3|\.ipynb|autograded|submitted/|_course_evidence|AUTOGRADER_"
        ),
    ),
    (
        "starts processes or opens network connections",
        re.compile(
            r"\bsubprocess\b|os\.(system|popen|fork|spawn\w*|exec\w*)\b|multiprocessing|\bsocket\b|urllib|"
            r"requests\.|http\.client"
        ),
    ),
    (
        "exits the kernel (sys.exit / os._exit / exit())",
        re.compile(r"\bsys\.exit\b|os\._exit|^\s*(exit|quit)\(", re.MULTILINE),
    ),
    (
        "inspects the interpreter's internals (gc, ctypes, frames, sys.modules)",
        re.compile(r"\bgc\.get_(objects|referrers)|\bctypes\b|sys\._getframe|__closure__|sys\.modules\s*\["),
    ),
]


def student_cells(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """``[(where, source)]`` for the code cells the student wrote: solution cells and unlocked extra cells."""
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("locked") or (meta.get("grade") and not meta.get("solution")):
            continue
        found.append((meta.get("grade_id") or f"cell {index}", cell.get("source", "")))
    return found


def scan(nb: nbformat.NotebookNode) -> list[str]:
    """One flag per suspicious pattern found, naming the cells where it shows."""
    flags = []
    cells = student_cells(nb)
    for label, pattern in PATTERNS:
        where = [name for name, source in cells if pattern.search(source)]
        if where:
            flags.append(f"{label}: {', '.join(where)}")
    return flags


def locked_cell_changes(nb: nbformat.NotebookNode, release: nbformat.NotebookNode) -> list[str]:
    """Flags for locked cells (tests, setup) that the submission edited or deleted; nbgrader and the repair
    step put the released versions back, so this only tells the instructor that someone tried."""
    submitted = {
        cell.get("metadata", {}).get("nbgrader", {}).get("grade_id"): cell.get("source", "")
        for cell in nb.cells
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    }
    edited, deleted = [], []
    for cell in release.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("locked") or meta.get("solution"):
            continue
        grade_id = meta.get("grade_id")
        if grade_id not in submitted:
            deleted.append(grade_id)
        elif submitted[grade_id].strip() != cell.source.strip():
            edited.append(grade_id)
    flags = []
    if edited:
        flags.append(f"edited locked cells (the released versions were graded): {', '.join(edited)}")
    if deleted:
        flags.append(f"deleted locked cells (the released versions were graded): {', '.join(deleted)}")
    return flags
