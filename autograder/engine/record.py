"""The grading record of one submission: autograder/grading/NN/STUDENT.json, written last, after the
gradebook, so that a submission with a record is graded. The class report reads records; so do the tests.

Versions: 1, the records written before this module (no ``version`` key), and 2, the same fields with
``version``. ``Record.from_json`` reads both, tolerating missing or ill-typed fields (a record written by
hand, or cut short), and refuses a newer version with a message saying to update the grader.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RECORD_VERSION = 2
#: Statuses: graded (nbgrader graded it, perhaps capped) or failed (it could not be graded: score 0).
GRADED, FAILED = "graded", "failed"


class RecordError(ValueError):
    """A file that is not a grading record this grader can read; the message names the problem and the fix."""


def _num(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


@dataclass
class CellError:
    """The error a code cell ended with: exception name and message (the checks' full message)."""

    ename: str
    evalue: str


@dataclass
class CellRecord:
    """One code cell of the autograded notebook: its grade_id and exercise (if any), how long it ran, how it
    ended (``ok``, ``error``, ``not run``), its score (graded test cells only) and its error."""

    index: int | None
    grade_id: str | None = None
    exercise: str | None = None
    seconds: float | None = None
    status: str = "ok"
    score: float | None = None
    max_score: float | None = None
    error: CellError | None = None

    @classmethod
    def from_json(cls, data: dict) -> CellRecord:
        error = data.get("error")
        error = _dict(error) if error is not None else None
        index = data.get("index")
        return cls(
            index=index if isinstance(index, int) and not isinstance(index, bool) else None,
            grade_id=_str(data.get("grade_id")),
            exercise=_str(data.get("exercise")),
            seconds=_num(data.get("seconds")),
            status=str(data.get("status") or ("error" if error else "ok")),
            score=_num(data.get("score")),
            max_score=_num(data.get("max_score")),
            error=CellError(str(error.get("ename") or ""), str(error.get("evalue") or ""))
            if error is not None
            else None,
        )


@dataclass
class ExerciseScore:
    score: float
    max_score: float


@dataclass
class Timings:
    """Seconds the submission took: in all, in nbgrader's autograde, executing the notebook, rendering the
    feedback; the kernel's CPU seconds and peak memory (MiB of its largest process)."""

    total: float | None = None
    autograde: float | None = None
    execute: float | None = None
    feedback: float | None = None
    cpu: float | None = None
    peak_memory_mb: float | None = None

    @classmethod
    def from_json(cls, data: dict) -> Timings:
        return cls(**{name: _num(data.get(name)) for name in cls.__dataclass_fields__})


@dataclass
class Record:
    """What grading found for one submission (see the module docstring)."""

    assignment: str
    student: str
    status: str = FAILED
    submission_sha256: str | None = None
    timestamp: str | None = None
    reason: str | None = None
    capped: str | None = None
    score: float = 0.0
    max_score: float = 0.0
    exercises: dict[str, ExerciseScore] = field(default_factory=dict)
    cells: list[CellRecord] = field(default_factory=list)
    timings: Timings = field(default_factory=Timings)
    graded_at: str | None = None
    flags: list[str] = field(default_factory=list)
    worker: str | None = None
    version: int = RECORD_VERSION

    @classmethod
    def failed(cls, assignment: str, student: str, sha256: str | None, reason: str) -> Record:
        """A submission that could not be graded: score 0, with the reason."""
        return cls(assignment, student, FAILED, submission_sha256=sha256, reason=reason)

    @property
    def graded(self) -> bool:
        return self.status == GRADED

    def exercise_scores(self) -> dict[str, tuple[float, float]]:
        """``{exercise: (score, max_score)}``; summed from the graded cells if the record lists none."""
        scores = {name: (entry.score, entry.max_score) for name, entry in self.exercises.items()}
        if scores or not self.graded:
            return scores
        for cell in self.cells:
            if cell.exercise and cell.max_score is not None:
                total, top = scores.get(cell.exercise, (0.0, 0.0))
                scores[cell.exercise] = (total + (cell.score or 0.0), top + cell.max_score)
        return scores

    # -- JSON ---------------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Record:
        """A record from its JSON form (any version up to RECORD_VERSION, fields missing or not)."""
        if not isinstance(data, dict) or not isinstance(data.get("student"), str):
            raise RecordError("not a grading record (no student): re-grade that submission")
        version = data.get("version", 1)
        if not isinstance(version, int) or version > RECORD_VERSION:
            raise RecordError(
                f"record version {version!r} is newer than this grader reads ({RECORD_VERSION}): update the "
                "course checkout (git pull) and run again"
            )
        exercises = {}
        for name, entry in _dict(data.get("exercises")).items():
            entry = _dict(entry)
            maximum = _num(entry.get("max_score"))
            if maximum is not None:
                exercises[str(name)] = ExerciseScore(_num(entry.get("score")) or 0.0, maximum)
        return cls(
            assignment=str(data.get("assignment") or ""),
            student=data["student"],
            status=str(data.get("status") or "unknown"),
            submission_sha256=_str(data.get("submission_sha256")),
            timestamp=_str(data.get("timestamp")),
            reason=_str(data.get("reason")),
            capped=_str(data.get("capped")) or None,
            score=_num(data.get("score")) or 0.0,
            max_score=_num(data.get("max_score")) or 0.0,
            exercises=exercises,
            cells=[CellRecord.from_json(c) for c in _list(data.get("cells")) if isinstance(c, dict)],
            timings=Timings.from_json(_dict(data.get("timings"))),
            graded_at=_str(data.get("graded_at")),
            flags=[str(flag) for flag in _list(data.get("flags"))],
            worker=_str(data.get("worker")),
            version=RECORD_VERSION,
        )

    # -- files --------------------------------------------------------------------------------------------
    @classmethod
    def read(cls, path: Path) -> Record:
        """The record in ``path``; RecordError (naming the file) when it is not a readable record."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RecordError(
                f"{path}: not a readable JSON record ({error}); re-grade that submission"
            ) from None
        try:
            return cls.from_json(data)
        except RecordError as error:
            raise RecordError(f"{path}: {error}") from None

    def write(self, path: Path) -> None:
        """Write the record to ``path`` atomically (a crash leaves the old record or the new one)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.to_json(), f, indent=1, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def load_records(folder: Path) -> list[Record]:
    """The records in ``folder`` (``*.json``, sorted by name); unreadable ones are skipped with a warning."""
    folder = Path(folder)
    if not folder.is_dir():
        log.warning("no grading records: %s is not a folder; grade the assignment first", folder)
        return []
    records = []
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):  # leftovers of interrupted atomic writes
            continue
        try:
            records.append(Record.read(path))
        except RecordError as error:
            log.warning("skipped %s", error)
    return records
