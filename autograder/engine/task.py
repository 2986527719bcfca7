"""What the grading client and its workers hand each other, local processes and Dask workers alike.

- ``RunSpec``: what every task of one run shares, sent once per worker: the options, the fingerprint the
  worker's course must have, and a ``Snapshot`` of the course gradebook without any submission (the
  assignments and their cells, which nbgrader needs to grade).
- ``Task``: one submission to grade, its files as data (``Folder``), so a worker needs no access to the
  client's disk.
- ``Outcome``: what the worker sends back: the ``Record`` (everything but when it was merged), nbgrader's
  grades, the autograded folder and the feedback folder. The client merges it (autograder/engine/merge.py).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autograder.engine.folder import Folder
from autograder.engine.record import Record
from autograder.engine.settings import Options


@dataclass(frozen=True)
class Snapshot:
    """The course gradebook without submissions: a file next to local workers (``path``) or its bytes for
    other machines (``data``); ``digest`` names it."""

    digest: str
    path: str | None = None
    data: bytes | None = None

    def write_to(self, target: Path) -> None:
        if self.data is not None:
            Path(target).write_bytes(self.data)
        elif self.path is not None:
            shutil.copyfile(self.path, target)
        else:
            raise ValueError("a gradebook snapshot needs a path or data")

    def with_data(self) -> Snapshot:
        """The same snapshot carrying its bytes, for workers that cannot read the client's files."""
        if self.data is not None or self.path is None:
            return self
        return Snapshot(self.digest, data=Path(self.path).read_bytes())


@dataclass(frozen=True)
class RunSpec:
    """What every task of one grading run shares (see the module docstring)."""

    run_id: str
    assignments: tuple[str, ...]
    options: Options
    snapshot: Snapshot
    fingerprint: str


@dataclass(frozen=True)
class Task:
    """One submission to grade: whose, of which assignment, its files and their hash."""

    assignment: str
    student: str
    submission: Folder
    sha256: str

    def key(self, run_id: str) -> str:
        """A name for the task, unique in its run (Dask's key: one task per submission and run)."""
        return f"grade-{self.assignment}-{self.student}-{self.sha256[:12]}-{run_id[:8]}"


@dataclass
class Outcome:
    """What grading one submission produced (see the module docstring); ``grades`` is None when nbgrader
    could not grade it, and the record then says why."""

    record: Record
    grades: dict[str, Any] | None = None
    autograded: Folder | None = None
    feedback: Folder | None = None
