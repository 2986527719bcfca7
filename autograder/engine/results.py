"""From what nbgrader leaves behind to plain data: one submission's grades in a gradebook, the error a failed
nbgrader call logged, and the submission's ``Record`` from its autograded notebook and execution report.
Pure functions of their inputs (the gradebook read aside), so the grading worker and the tests share them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from autograder.engine.record import GRADED, CellError, CellRecord, ExerciseScore, Record
from autograder.kernel.caps import ExecutionReport
from course_lib.protocol import exercise_of, refused_names

#: An error that says a cell ran out of memory (Python, PyTorch's allocator, C++).
MEMORY_ERRORS = re.compile(
    r"MemoryError|can't allocate memory|DefaultCPUAllocator|std::bad_alloc|out of memory"
)

#: ``{"timestamp", "notebooks": {name: {"late_submission_penalty", "grades": {cell: {...}}, "comments"}}}``
Grades = dict[str, Any]


def grades_of(db: Path, assignment: str, student: str, course_id: str) -> Grades:
    """The autograde results of one submission in the gradebook ``db``, as plain data."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{db}", course_id) as gb:
        submission = gb.find_submission(assignment, student)
        notebooks = {}
        for nb in submission.notebooks:
            notebooks[nb.name] = {
                "late_submission_penalty": nb.late_submission_penalty,
                "grades": {
                    g.name: {
                        "auto_score": g.auto_score,
                        "needs_manual_grade": g.needs_manual_grade,
                        "max_score": g.max_score,
                        "cell_type": g.cell_type,
                    }
                    for g in nb.grades
                },
                "comments": {c.name: c.auto_comment for c in nb.comments},
            }
        return {"timestamp": submission.timestamp, "notebooks": notebooks}


def last_error(outcome: dict[str, Any]) -> str:
    """The meaningful lines of a failed nbgrader API call (its ``{"success", "log", "error"}``): the
    exception nbgrader logged (the last line of the traceback in its log) and its own error lines."""
    log = (outcome.get("log", "") or "").splitlines()
    cause = ""
    for index, line in enumerate(log):
        if "Traceback (most recent call last)" in line:
            following = [entry for entry in log[index + 1 :] if entry and not entry.startswith((" ", "["))]
            cause = following[0] if following else cause
    errors = [
        line.removeprefix("[ERROR] ")
        for line in log
        if line.startswith(("[ERROR]", "[CRITICAL]")) and "Traceback" not in line and "see the" not in line
    ]
    parts = [cause] if cause else []
    parts += errors[-2:]
    if not parts:
        parts = (outcome.get("error") or "").strip().splitlines()[-1:]
    return "\n".join(parts)[-2000:] or "nbgrader could not grade this submission"


def runtime_flags(cell: Any, grade_id: str, error: dict[str, Any]) -> list[str]:
    """Flags from how a failing test cell failed: tampering the checks refused, or visible tests passed
    while the hidden ones failed (outputs hard-coded for the visible cases look like this)."""
    flags = []
    evalue = str(error.get("evalue", ""))
    refused = refused_names(evalue)
    if refused is not None:
        flags.append(f"{grade_id}: the checks refused to run: {refused}")
    stdout = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
    if "✓" in stdout and "hidden=True" in cell.get("source", "") and error.get("ename") == "CheckFailure":
        flags.append(f"{grade_id}: passes the visible tests but fails the hidden ones (hard-coded for them?)")
    return flags


def _rounded(seconds: float | None) -> float | None:
    return round(seconds, 3) if seconds is not None else None


def build_record(
    record: Record,
    grades: Grades | None,
    report: ExecutionReport | None,
    notebook: Any | None,
    memory_gib: float,
) -> Record:
    """Complete ``record`` (identity, flags, timings already in it) from nbgrader's ``grades``, the execution
    ``report`` and the autograded ``notebook`` (an nbformat node): status, scores per exercise and per cell,
    each cell's time and error, caps that stopped it, runtime flags."""
    if report is not None:
        record.flags.extend(report.flags)
        record.timings.execute = _rounded(report.execute_seconds)
        record.timings.cpu = report.cpu
        record.timings.peak_memory_mb = report.peak_memory_mb
        if report.stopped:
            record.capped = report.stopped
            record.reason = report.reason
    if grades is None:
        return record
    record.status = GRADED
    record.timestamp = str(grades["timestamp"]) if grades.get("timestamp") else None
    flat = {g: v for data in grades["notebooks"].values() for g, v in data["grades"].items()}
    record.score = sum(g["auto_score"] or 0.0 for g in flat.values())
    record.max_score = sum(g["max_score"] or 0.0 for g in flat.values())
    if notebook is None:
        return record
    exercises = [
        c.metadata["nbgrader"]["grade_id"]
        for c in notebook.cells
        if c.metadata.get("nbgrader", {}).get("solution") and c.metadata["nbgrader"].get("grade_id")
    ]
    cells_run = report.cells if report is not None else {}
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id")
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        run = cells_run.get(index)
        grade = flat.get(grade_id) if grade_id else None
        graded = grade is not None and grade["cell_type"] == "code" and meta.get("grade")
        exercise = None
        if grade_id:
            exercise = grade_id if grade_id in exercises else exercise_of(grade_id, exercises)
        error = errors[-1] if errors else None
        record.cells.append(
            CellRecord(
                index=index,
                grade_id=grade_id,
                exercise=exercise,
                seconds=run.seconds if run else None,
                status=run.status if run else ("error" if errors else "ok"),
                score=grade["auto_score"] if graded else None,
                max_score=grade["max_score"] if graded else None,
                error=CellError(str(error.get("ename", "")), str(error.get("evalue", ""))[:2000])
                if error
                else None,
            )
        )
        if graded and error:
            record.flags.extend(runtime_flags(cell, grade_id, error))
        if graded:
            totals = record.exercises.setdefault(exercise or grade_id, ExerciseScore(0.0, 0.0))
            totals.score += grade["auto_score"] or 0.0
            totals.max_score += grade["max_score"] or 0.0
        said = f"{error.get('ename', '')} {error.get('evalue', '')}" if error else ""
        if error and record.capped is None and MEMORY_ERRORS.search(said):
            record.capped = "memory"
            record.reason = (
                f"cell {index} ran out of its memory cap of {memory_gib:g} GiB; later cells ran on"
            )
    return record
