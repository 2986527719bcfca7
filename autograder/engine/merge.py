"""The one writer of the course's grades: only the grading client's main process writes the gradebook.

nbgrader's gradebook is one SQLite file, and SQLite takes one writer at a time: several ``nbgrader autograde``
processes on one gradebook fail with "database is locked" or lose writes. So every worker grades into its own
copy of a ``snapshot`` of the gradebook (the assignments and their cells, no submissions), and the client
brings each ``Outcome`` in with ``Merger.merge``: the autograded and feedback folders, then the grades in one
transaction, then the record, last: a submission with a record is graded, so an interrupted run regrades
whatever has none. Merging the same outcome again changes nothing (a retried task, a rerun)."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from autograder.engine.folder import Folder
from autograder.engine.record import Record
from autograder.engine.settings import Course
from autograder.engine.task import Outcome, Snapshot

#: nbgrader's tables of submissions and their grades: emptied in a snapshot, child tables first.
SUBMISSION_TABLES = ("comment", "grade", "submitted_notebook", "submitted_assignment", "student")


def snapshot(gradebook: Path, target: Path) -> Snapshot:
    """Copy the gradebook to ``target`` without its students and submissions (SQLite's backup API, so a
    gradebook in use is copied consistently); the assignments, notebooks and cells stay."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    source = sqlite3.connect(gradebook)
    copy = sqlite3.connect(target)
    try:
        with copy:
            source.backup(copy)
        tables = {row[0] for row in copy.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        with copy:
            for table in SUBMISSION_TABLES:
                if table in tables:
                    copy.execute(f"DELETE FROM {table}")
        copy.execute("VACUUM")
    finally:
        source.close()
        copy.close()
    return Snapshot(hashlib.sha256(target.read_bytes()).hexdigest(), path=str(target))


def apply_grades(gb: Any, assignment: str, student: str, grades: dict[str, Any] | None) -> None:
    """Copy one submission's autograde results into the course gradebook ``gb`` (an open nbgrader
    Gradebook) in a single transaction; manual scores and comments an instructor gave are kept. A
    submission nbgrader could not grade gets zero auto scores and is marked as needing manual grading."""
    with warnings.catch_warnings():
        # nbgrader's add_submission trips SQLAlchemy's autoflush warning on every new submission; harmless.
        warnings.filterwarnings("ignore", message=".*not in session.*")
        gb.update_or_create_student(student)
        timestamp = grades.get("timestamp") if grades else None
        kwargs = {"timestamp": timestamp} if timestamp else {}
        submission = gb.update_or_create_submission(assignment, student, **kwargs)
        for nb in submission.notebooks:
            data = (grades or {}).get("notebooks", {}).get(nb.name)
            if data is not None:
                nb.late_submission_penalty = data["late_submission_penalty"]
            for grade in nb.grades:
                new = data["grades"].get(grade.name) if data else None
                if new is None:
                    grade.auto_score = 0.0 if grade.max_score else grade.auto_score
                    grade.needs_manual_grade = True
                    continue
                grade.auto_score = new["auto_score"]
                grade.needs_manual_grade = bool(new["needs_manual_grade"]) or grade.manual_score is not None
            for comment in nb.comments:
                if data is not None:
                    comment.auto_comment = data["comments"].get(comment.name)
        gb.db.commit()


def replace_dir(new: Path, target: Path) -> None:
    """Put folder ``new`` at ``target`` (same file system), replacing what was there."""
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    if old.exists():
        shutil.rmtree(old)


def put_folder(folder: Folder, target: Path) -> None:
    """Write ``folder`` at ``target``, replacing what was there, never leaving half a folder in place."""
    staging = target.with_name(f".{target.name}.new-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    folder.write(staging)
    replace_dir(staging, target)


class Merger:
    """Brings worker outcomes into the course (see the module docstring); ``seconds`` adds up its work."""

    def __init__(self, course: Course, course_id: str) -> None:
        from nbgrader.api import Gradebook

        self.course = course
        self.gradebook = Gradebook(f"sqlite:///{course.gradebook}", course_id)
        self.merged: dict[tuple[str, str, str | None], Record] = {}
        self.seconds = 0.0

    def merge(self, outcome: Outcome) -> Record:
        """Files, then grades, then the record; the same outcome merged twice is merged once."""
        record = outcome.record
        key = (record.assignment, record.student, record.submission_sha256)
        if key in self.merged:
            return self.merged[key]
        started = time.perf_counter()
        assignment, student = record.assignment, record.student
        if outcome.grades is not None and outcome.autograded is not None:
            put_folder(outcome.autograded, self.course.folder("autograded") / student / assignment)
            if outcome.feedback is not None:
                put_folder(outcome.feedback, self.course.folder("feedback") / student / assignment)
        apply_grades(self.gradebook, assignment, student, outcome.grades)
        record.graded_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        record.write(self.course.records(assignment) / f"{student}.json")
        self.merged[key] = record
        self.seconds += time.perf_counter() - started
        return record

    def close(self) -> None:
        self.gradebook.close()
