"""Grades out of the grading records and into a learning management system: a Canvas gradebook import, and
a plain CSV with one row per student and the points per exercise.

Canvas: export the course's gradebook (Grades > Export > Export Entire Gradebook), pass that file; the
result holds Canvas's identity columns and one column for the assignment, which Canvas's import (Grades >
Import) reads: an existing column named after the assignment (``01_linear (4321)``) is filled, else a new
column ``01_linear`` is added, which creates the assignment on import. Students are matched by the id
nbgrader knows them by (the exchange's user name, or what ``zip_collect`` reads from a file name) against
the SIS login, the SIS user id or Canvas's own user id. Nobody is dropped silently: students of the
gradebook without a grading record keep an empty cell, graded students missing from the gradebook are
listed, and both lists come back to the caller.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "CanvasExport",
    "CanvasGradebook",
    "Grade",
    "MATCH_COLUMNS",
    "fill_canvas",
    "grades_from_records",
    "read_canvas",
    "write_points_csv",
    "write_rows",
    "write_unmatched",
]

#: Which Canvas column holds the student id nbgrader uses, by --match.
MATCH_COLUMNS = {"login": "SIS Login ID", "sis": "SIS User ID", "id": "ID"}
#: Canvas's identity columns, kept in the import file when the export has them.
IDENTITY = ("Student", "ID", "SIS User ID", "SIS Login ID", "Integration ID", "Root Account", "Section")
_POINTS_ROW = "Points Possible"
_ASSIGNMENT_ID = re.compile(r"^(?P<name>.*?)\s*\((?P<id>\d+)\)\s*$")


@dataclass(frozen=True)
class Grade:
    """One student's result for an assignment, from their grading record."""

    student: str
    score: float
    max_score: float
    exercises: Mapping[str, tuple[float, float]] = field(default_factory=dict)


@dataclass
class CanvasGradebook:
    """A Canvas gradebook export: its header, the rows before the students (points possible, posting
    policy) and the student rows, all as Canvas wrote them."""

    header: list[str]
    meta_rows: list[list[str]]
    students: list[list[str]]


@dataclass
class CanvasExport:
    """What :func:`fill_canvas` did: the column it filled, who was matched, who was not."""

    column: str
    matched: dict[str, str]  # nbgrader student id -> Canvas student name
    not_in_gradebook: list[str]  # graded, but no Canvas row matches
    not_graded: list[str]  # Canvas students without a grading record (cell left empty)
    ambiguous: list[str] = field(default_factory=list)  # ids that match several Canvas rows


def read_canvas(path: Path) -> CanvasGradebook:
    """Read a Canvas gradebook export, with a clear error when the file is not one."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path} is not UTF-8 text, as Canvas writes its exports ({exc.reason} at byte {exc.start}): "
            "export the gradebook from Canvas again (Grades > Export > Export Entire Gradebook), or save it "
            'from your spreadsheet program as "CSV UTF-8"'
        ) from exc
    except OSError as exc:
        raise ValueError(f"cannot read the Canvas gradebook {path}: {exc.strerror or exc}") from exc
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows or rows[0][:1] != ["Student"] or "ID" not in rows[0]:
        first = rows[0][:4] if rows else "an empty file"
        raise ValueError(
            f"{path} is not a Canvas gradebook export: its first row should start with Student, ID, "
            f"SIS User ID, ... but is {first}; export it from Canvas (Grades > Export > Export Entire "
            "Gradebook) and pass that file"
        )
    header = rows[0]
    body = [row + [""] * (len(header) - len(row)) for row in rows[1:]]
    meta = []
    while body and not _is_student(body[0], header):
        meta.append(body.pop(0))
    return CanvasGradebook(header, meta, body)


def _is_student(row: list[str], header: list[str]) -> bool:
    """Rows before the students have no Canvas user id (points possible, 'Manual Posting', ...)."""
    return bool(row[header.index("ID")].strip())


def _find_column(header: list[str], assignment: str) -> int | None:
    for index, name in enumerate(header):
        match = _ASSIGNMENT_ID.match(name)
        if name.strip() == assignment or (match and match.group("name") == assignment):
            return index
    return None


def _points(value: float) -> str:
    return f"{value:.2f}"


def fill_canvas(
    gradebook: CanvasGradebook, assignment: str, grades: Mapping[str, Grade], match: str = "login"
) -> tuple[list[list[str]], CanvasExport]:
    """The rows of a Canvas import file holding ``assignment``'s scores, and what was matched."""
    if match not in MATCH_COLUMNS:
        raise ValueError(f"--match must be one of {', '.join(MATCH_COLUMNS)}, got {match!r}")
    key_column = MATCH_COLUMNS[match]
    if key_column not in gradebook.header:
        raise ValueError(
            f"the Canvas gradebook has no {key_column!r} column to match students by (--match {match}); "
            f"its columns are {', '.join(gradebook.header[:8])}...: pick another --match"
        )
    keep = [gradebook.header.index(name) for name in IDENTITY if name in gradebook.header]
    found = _find_column(gradebook.header, assignment)
    column = gradebook.header[found] if found is not None else assignment
    key_at = gradebook.header.index(key_column)
    name_at = gradebook.header.index("Student")

    def normal(value: str) -> str:
        return value.strip().casefold()

    by_key: dict[str, list[int]] = {}
    for number, row in enumerate(gradebook.students):
        if row[key_at].strip():
            by_key.setdefault(normal(row[key_at]), []).append(number)
    scores: dict[int, Grade] = {}
    report = CanvasExport(column, {}, [], [])
    for student in sorted(grades):
        rows = by_key.get(normal(student), [])
        if len(rows) > 1:
            report.ambiguous.append(student)
        elif not rows:
            report.not_in_gradebook.append(student)
        else:
            scores[rows[0]] = grades[student]
            report.matched[student] = gradebook.students[rows[0]][name_at]

    header = [gradebook.header[i] for i in keep] + [column]
    out = [header]
    maximum = max((grade.max_score for grade in grades.values()), default=0.0)
    for meta in gradebook.meta_rows:
        label = meta[name_at].strip()
        value = _points(maximum) if label == _POINTS_ROW else (meta[found] if found is not None else "")
        out.append([meta[i] for i in keep] + [value])
    if not any(meta[name_at].strip() == _POINTS_ROW for meta in gradebook.meta_rows):
        points_row = [_POINTS_ROW if gradebook.header[i] == "Student" else "" for i in keep]
        out.insert(1, points_row + [_points(maximum)])
    for number, row in enumerate(gradebook.students):
        grade = scores.get(number)
        if grade is None:
            report.not_graded.append(row[name_at])
        out.append([row[i] for i in keep] + [_points(grade.score) if grade else ""])
    return out, report


def grades_from_records(records: Iterable) -> dict[str, Grade]:
    """``{student: Grade}`` from grading records (the latest of a student's, by graded_at); a submission
    that could not be graded counts 0 points, as in the class report."""
    latest: dict[str, object] = {}
    for record in records:
        known = latest.get(record.student)
        if known is None or str(record.graded_at or "") >= str(known.graded_at or ""):
            latest[record.student] = record
    top = max((record.max_score for record in latest.values()), default=0.0)
    return {
        student: Grade(
            student,
            float(record.score or 0.0),
            float(record.max_score or top),
            record.exercise_scores(),
        )
        for student, record in sorted(latest.items())
    }


def write_unmatched(path: Path, report: CanvasExport) -> None:
    """The students the import leaves out or blank, with why: a file to work through, not a warning."""
    rows = [["student", "problem"]]
    rows += [[s, "graded here, but no Canvas row has this id"] for s in report.not_in_gradebook]
    rows += [[s, "this id matches several Canvas rows: none was filled"] for s in report.ambiguous]
    rows += [[s, "in Canvas, but no grading record: cell left empty"] for s in report.not_graded]
    write_rows(path, rows)


def write_rows(path: Path, rows: list[list[str]]) -> None:
    """Write a CSV file, making its folder if need be; a file that cannot be written is a ``ValueError``
    naming it and why."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(rows)
    except FileExistsError as exc:  # a file stands where a folder of the path should be
        raise ValueError(
            f"cannot write {path}: {exc.filename} is a file, not a folder; choose another path"
        ) from exc
    except OSError as exc:
        raise ValueError(f"cannot write {path}: {exc.strerror or exc}; choose another path") from exc


def write_points_csv(path: Path, grades: Mapping[str, Grade], exercises: list[str]) -> None:
    """One row per student: total, maximum, and the points per exercise (in notebook order)."""
    rows = [["student", "score", "max_score", *exercises]]
    for student in sorted(grades):
        grade = grades[student]
        points = [grade.exercises.get(name, (None, None))[0] for name in exercises]
        shown = ["" if p is None else _points(p) for p in points]
        rows.append([student, _points(grade.score), _points(grade.max_score), *shown])
    write_rows(path, rows)
