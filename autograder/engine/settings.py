"""What a grading run needs: where the course lies on this machine (``Course``), how every submission is
graded (``Options``: the same on every worker, so they travel with the tasks), and the run (``Settings``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Folders of autograder/ that hold a course's data (submissions, grades, reports), not the grader's code.
DATA_FOLDERS = frozenset({"submitted", "autograded", "feedback", "grading", "reports", "downloaded"})


def default_jobs() -> int:
    """The cores this process may use: the default number of submissions graded at once."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class Course:
    """One machine's copy of the course folder and the places grading reads and writes in it (nbgrader's
    layout, as autograder/nbgrader_config.py maps it)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).resolve())

    @property
    def autograder(self) -> Path:
        return self.root / "autograder"

    @property
    def config_file(self) -> Path:
        return self.autograder / "nbgrader_config.py"

    @property
    def gradebook(self) -> Path:
        return self.autograder / "gradebook.db"

    @property
    def work(self) -> Path:
        """Scratch space of the local grading workers (removed after each run)."""
        return self.autograder / ".work"

    def folder(self, name: str) -> Path:
        """autograder/NAME: submitted, autograded, feedback, grading (records), reports, downloaded."""
        return self.autograder / name

    def submission(self, assignment: str, student: str) -> Path:
        return self.folder("submitted") / student / assignment

    def source(self, assignment: str) -> Path:
        return self.root / "solutions" / assignment

    def release(self, assignment: str) -> Path:
        """The released notebook, which repair restores broken submissions from."""
        return self.root / "notebooks" / assignment / f"{assignment}.ipynb"

    def records(self, assignment: str) -> Path:
        """autograder/grading/NN/: one record per submission (STUDENT.json)."""
        return self.folder("grading") / assignment

    def reports(self, assignment: str) -> Path:
        return self.folder("reports") / assignment


@dataclass(frozen=True)
class Options:
    """How each submission is graded: its caps (CPU seconds, wall seconds, GiB of memory), whether it gets
    feedback and a sandbox, and the course id nbgrader files grades under."""

    cpu: float = 300.0
    wall: float = 600.0
    memory_gib: float = 4.0
    feedback: bool = True
    sandbox: bool = True
    course_id: str = ""

    def __post_init__(self) -> None:
        for name in ("cpu", "wall", "memory_gib"):
            value = getattr(self, name)
            if not value > 0:
                flag = "--memory" if name == "memory_gib" else f"--{name}"
                raise ValueError(f"{flag} must be a positive number, got {value!r}")


@dataclass
class Settings:
    """One grading run: a course, the assignments it grades (one pool of workers for all), the options, and
    where the work goes: ``jobs`` local worker processes, or the Dask cluster ``scheduler`` (its address, a
    cluster object such as SLURMCluster or a Dask Gateway cluster, or a ``distributed.Client``)."""

    course: Course
    assignments: list[str]
    options: Options = field(default_factory=Options)
    jobs: int = field(default_factory=default_jobs)
    scheduler: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.course, Course):
            self.course = Course(self.course)
        self.assignments = list(dict.fromkeys(self.assignments))
        if self.jobs < 1:
            raise ValueError(f"--jobs must be at least 1, got {self.jobs}")
        if not self.assignments:
            raise ValueError("name at least one assignment to grade, e.g. 01_linear")

    @property
    def work(self) -> Path:
        """This run's scratch folder for local workers: autograder/.work/NN (NN+MM for several)."""
        return self.course.work / "+".join(self.assignments)
