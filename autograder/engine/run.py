"""A grading run: ``python -m autograder grade NN [--jobs N | --scheduler tcp://HOST:8786]``.

1. Hold each assignment's lock (one run per assignment at a time), list the submissions in
   autograder/submitted/STUDENT/NN/ and keep those without a record of the same files (``--force``: all).
2. Start the executor (autograder/engine/executors.py: local worker processes or a Dask cluster), make sure
   the gradebook knows the assignments, take a snapshot of it for the workers, and check the workers.
3. Send the submissions a few at a time (each as its files: autograder/engine/task.py), and merge each
   outcome as it comes back: autograded notebook, feedback, gradebook, then the record (merge.py).
4. Print a summary; the command then writes the class report (autograder/reporting/report.py).

An interrupted run (Ctrl-C, kill -9, a lost cluster) leaves every merged submission in place: run the
command again and it grades only what has no record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from autograder import nbgrader_cli
from autograder.engine import fingerprint as fp
from autograder.engine.executors import DaskCluster, ExecutorLost, LocalPool, scheduler_address
from autograder.engine.folder import MAX_FOLDER_BYTES, Folder, FolderTooLarge, folder_sha256
from autograder.engine.merge import Merger, snapshot
from autograder.engine.record import Record, RecordError
from autograder.engine.settings import Course, Settings
from autograder.engine.task import Outcome, RunSpec, Task
from autograder.engine.worker import load_config


def list_submissions(course: Course, assignment: str) -> dict[str, Path]:
    """``{student: submission folder}`` for every student who submitted the assignment."""
    submitted = course.folder("submitted")
    if not submitted.is_dir():
        return {}
    found = {}
    for student in sorted(p for p in submitted.iterdir() if p.is_dir() and not p.name.startswith(".")):
        folder = student / assignment
        if folder.is_dir():
            found[student.name] = folder
    return found


def is_done(course: Course, assignment: str, student: str, sha256: str) -> bool:
    """Has this exact submission been graded (a record with the same files' hash)?"""
    try:
        record = Record.read(course.records(assignment) / f"{student}.json")
    except RecordError:
        return False
    if record.submission_sha256 != sha256:
        return False
    autograded = course.folder("autograded") / student / assignment / f"{assignment}.ipynb"
    return not record.graded or autograded.exists()


def ensure_assignment(course: Course, assignment: str, course_id: str, scratch: Path) -> None:
    """Make sure the course gradebook knows the assignment and its notebooks (nbgrader's generate_assignment
    records them); if it does not, run generate_assignment with its output in ``scratch``, so the released
    notebooks are left alone."""
    from nbgrader.api import Gradebook, MissingEntry

    source = course.source(assignment)
    if not source.is_dir():
        raise SystemExit(f"no source folder {source}: is {assignment!r} an assignment of this course?")
    wanted = {p.stem for p in source.glob("*.ipynb")}
    try:
        with Gradebook(f"sqlite:///{course.gradebook}", course_id) as gb:
            known = {nb.name for nb in gb.find_assignment(assignment).notebooks}
        if wanted <= known:
            return
    except MissingEntry:
        pass
    release = scratch / "release"
    try:
        nbgrader_cli.run(
            course.root,
            "generate_assignment",
            assignment,
            "--force",
            f"--CourseDirectory.release_directory={release}",
            "--log-level=WARN",
        )
    except nbgrader_cli.NbgraderFailed as error:
        raise SystemExit(str(error)) from None
    shutil.rmtree(release, ignore_errors=True)


def check_sandbox(sandbox_wanted: bool, here: bool = True) -> None:
    """Refuse to run student code unsandboxed unless the instructor said so (--no-sandbox), loudly; ``here``:
    the kernels run on this machine (on a cluster, each worker's sandbox is checked before the run)."""
    from autograder.kernel import sandbox

    if not sandbox_wanted:
        print(
            "WARNING: grading WITHOUT a sandbox (--no-sandbox): student code runs with your permissions and "
            "can read solutions/, change the gradebook and reach the network.",
            file=sys.stderr,
            flush=True,
        )
        return
    problem = sandbox.problem() if here else None
    if problem is not None:
        raise SystemExit(
            f"cannot sandbox the grading kernels: {problem}\n"
            "Fix that (bubblewrap: Debian/Ubuntu `sudo apt-get install bubblewrap`), or grade without a "
            "sandbox at your own risk with --no-sandbox."
        )


def lock(course: Course, assignment: str) -> Any:
    """Hold the assignment's grading lock for this process's life (a killed run releases it by dying)."""
    import fcntl

    records = course.records(assignment)
    records.mkdir(parents=True, exist_ok=True)
    handle = open(records / ".lock", "a+")  # noqa: SIM115 - kept open on purpose
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        pid = handle.read().strip() or "?"
        handle.close()
        raise SystemExit(
            f"another grading run of {assignment} is in progress (pid {pid}): wait for it to finish "
            "or stop it, then run again"
        ) from None
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


class Interrupted(KeyboardInterrupt):
    """The run was stopped (Ctrl-C, or SIGTERM as a batch system sends it at a job's time limit): the
    submissions merged so far are kept, the others have no record and are graded by the next run."""


@contextlib.contextmanager
def _sigterm_interrupts() -> Any:
    """Within, SIGTERM stops the run as Ctrl-C does (only the main thread can handle signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _interrupts_deferred() -> Any:
    """Within, Ctrl-C and SIGTERM wait for the block to end: a submission is merged and counted whole, so
    the count an interrupted run prints is the count of records it wrote."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: pending.append(signum))
                for signum in (signal.SIGINT, signal.SIGTERM)}  # fmt: skip
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if pending:
        raise KeyboardInterrupt


@dataclasses.dataclass
class Result:
    """What a run did: the records it wrote, its seconds in all, and those the client spent merging."""

    records: list[Record]
    seconds: float = 0.0
    merge_seconds: float = 0.0


def grade(
    settings: Settings, force: bool = False, students: list[str] | None = None, progress: bool = True
) -> Result:
    """Grade the submissions of the run's assignments in one pool of workers; return the records of this
    run (submissions already graded are skipped unless ``force``). Ctrl-C or SIGTERM raise ``Interrupted``
    once the workers are stopped."""
    started = time.perf_counter()
    locks = []
    result = Result([])
    try:
        for assignment in settings.assignments:
            locks.append(lock(settings.course, assignment))
        with _sigterm_interrupts():
            _grade(settings, force, students, progress, result)
    finally:
        for handle in locks:
            handle.close()
    result.seconds = time.perf_counter() - started
    return result


def _todo(settings: Settings, force: bool, students: list[str] | None) -> list[tuple[str, str, Path]]:
    """``(assignment, student, folder)`` of each submission to grade; prints what it found."""
    course = settings.course
    if settings.scheduler is not None:
        where = f"the Dask cluster at {scheduler_address(settings.scheduler)}"
    else:
        where = f"{settings.jobs} job(s)"
    todo = []
    for assignment in settings.assignments:
        submissions = list_submissions(course, assignment)
        if students:
            submissions = {s: submissions[s] for s in students if s in submissions}
        mine = [
            (assignment, student, folder)
            for student, folder in submissions.items()
            if force or not is_done(course, assignment, student, folder_sha256(folder))
        ]
        skipped = len(submissions) - len(mine)
        print(
            f"{assignment}: {len(submissions)} submission(s), {len(mine)} to grade"
            + (f", {skipped} already graded (--force regrades them)" if skipped else "")
            + f", {where}",
            flush=True,
        )
        todo += mine
    return todo


def _task(assignment: str, student: str, folder: Path) -> Task | Outcome:
    """The task for one submission, or the failed outcome of one too large to send."""
    try:
        files = Folder.read(folder, limit=MAX_FOLDER_BYTES)
    except FolderTooLarge as error:
        return Outcome(Record.failed(assignment, student, folder_sha256(folder), str(error)))
    return Task(assignment, student, files, files.sha256())


def _grade(
    settings: Settings, force: bool, students: list[str] | None, progress: bool, result: Result
) -> None:
    from tqdm import tqdm

    course = settings.course
    if students:
        known = {s for assignment in settings.assignments for s in list_submissions(course, assignment)}
        missing = sorted(set(students) - known)
        if missing:
            raise SystemExit(
                f"no submission of {', '.join(settings.assignments)} from {', '.join(missing)} in "
                f"{course.folder('submitted')}"
            )
    todo = deque(_todo(settings, force, students))
    if not todo:
        return
    check_sandbox(settings.options.sandbox, here=settings.scheduler is None)
    _remove_leftovers(settings)
    # nbgrader runs `alembic` (installed next to this Python) when it creates a gradebook.
    os.environ["PATH"] = nbgrader_cli.tool_env()["PATH"]
    records = result.records
    total = len(todo)
    failed = capped = 0
    bar = merger = executor = None
    stopped = False
    try:
        settings.work.mkdir(parents=True, exist_ok=True)
        if settings.scheduler is not None:
            executor = DaskCluster(settings.scheduler)
        else:
            executor = LocalPool(course, settings.work, min(settings.jobs, total))
        here = fp.fingerprint(course.root, settings.assignments)
        executor.check(here, settings.assignments, settings.options.sandbox)
        course_id = load_config(course).CourseDirectory.get("course_id", "") or settings.options.course_id
        for assignment in settings.assignments:
            ensure_assignment(course, assignment, course_id, settings.work)
        spec = RunSpec(
            run_id=uuid.uuid4().hex,
            assignments=tuple(settings.assignments),
            options=dataclasses.replace(settings.options, course_id=course_id),
            snapshot=snapshot(course.gradebook, settings.work / "gradebook.db"),
            fingerprint=fp.digest(here),
        )
        executor.start(spec)
        merger = Merger(course, course_id)
        bar = tqdm(
            total=total,
            unit="submission",
            desc=settings.assignments[0] if len(settings.assignments) == 1 else "grading",
            disable=not progress,
            dynamic_ncols=True,
        )
        while todo or executor.pending:
            done: list[tuple[Any, Any]] = []
            # A few tasks per worker at a time: each worker has its next one at hand, and no more
            # submissions are held in memory than that.
            while todo and executor.pending < 2 * executor.slots:
                task = _task(*todo.popleft())
                if isinstance(task, Outcome):
                    done.append((None, task))
                else:
                    executor.submit(task)
            if not done:
                done = executor.done()
            for task, outcome in done:
                if isinstance(outcome, BaseException):
                    reason = f"grading worker failed: {outcome!r}"
                    outcome = Outcome(Record.failed(task.assignment, task.student, task.sha256, reason))
                with _interrupts_deferred():
                    record = merger.merge(outcome)
                    records.append(record)
                failed += record.status == "failed"
                capped += record.capped is not None
                bar.set_postfix(failed=failed, capped=capped, refresh=False)
                bar.update()
            if total - len(records) < executor.slots:
                _load_report_libraries()  # a worker has nothing left to do: use its core meanwhile
    except ExecutorLost as error:
        raise SystemExit(
            f"{error}: {total - len(records)} submission(s) not graded; the {len(records)} graded are kept. "
            "Run the command again to grade the rest."
        ) from None
    except KeyboardInterrupt:
        stopped = True
        raise Interrupted(
            f"interrupted: {len(records)} of {total} submission(s) graded and kept, {total - len(records)} "
            "not graded. Run the command again to grade the rest."
        ) from None
    finally:
        if bar is not None:
            bar.close()
        if merger is not None:
            result.merge_seconds = merger.seconds
            merger.close()
        if executor is not None:
            executor.close(stop=stopped)
        shutil.rmtree(settings.work, ignore_errors=True)
        with contextlib.suppress(OSError):
            course.work.rmdir()  # .work/ itself, unless another run is going on


def _remove_leftovers(settings: Settings) -> None:
    """What a killed run left: its workers' folders (any run that shared an assignment with this one: this
    run holds those locks) and half-written records."""
    mine = set(settings.assignments)
    if settings.course.work.is_dir():
        for folder in settings.course.work.iterdir():
            if mine & set(folder.name.split("+")):
                shutil.rmtree(folder, ignore_errors=True)
    for assignment in settings.assignments:
        for stale in settings.course.records(assignment).glob(".*.tmp"):
            stale.unlink(missing_ok=True)


_REPORT_LOADED = False


def _load_report_libraries() -> None:
    """Import what the class report draws with (matplotlib: most of a second), once the last submissions
    are being graded and a core is free, rather than after grading, when the report is all there is."""
    global _REPORT_LOADED
    if _REPORT_LOADED:
        return
    _REPORT_LOADED = True
    with contextlib.suppress(Exception):
        import matplotlib.figure  # noqa: F401
        from matplotlib.backends import backend_agg  # noqa: F401

        from autograder.reporting import report  # noqa: F401


def summary(result: Result) -> str:
    """A few lines for the terminal after a run."""
    graded = [r for r in result.records if r.graded]
    lines = [
        f"graded {len(graded)} of {len(result.records)} submission(s) in {result.seconds:.1f} s "
        f"(merging them into the course: {result.merge_seconds:.2f} s)"
    ]
    for r in result.records:
        if r.status == "failed" or r.capped:
            why = f"{r.capped or ''} {r.reason or ''}".strip()
            lines.append(f"  {r.assignment} {r.student}: {r.status}, {why}")
    return "\n".join(lines)


def similarity_pass(course: Course, assignment: str, records: list, threshold: float | None = None):
    """Compare the graded submissions' solution cells (their autograded copies) in pairs."""
    from autograder.reporting import similarity

    notebooks = {
        record.student: course.folder("autograded") / record.student / assignment / f"{assignment}.ipynb"
        for record in records
        if record.graded
    }
    chosen = similarity.DEFAULT_THRESHOLD if threshold is None else threshold
    return similarity.find(notebooks, course.release(assignment), chosen)


def write_class_report(
    course: Course, assignment: str, similarity_threshold: float | None = None
) -> Path | None:
    """Rewrite autograder/reports/NN/ (grades.csv, similarity.csv, figures, index.html) from all the
    assignment's records and their autograded notebooks."""
    from autograder.engine.record import load_records
    from autograder.reporting import report

    folder = course.records(assignment)
    if not folder.is_dir():
        print(f"no grading records for {assignment} in {folder}: grade it first")
        return None
    records = load_records(folder)
    findings = similarity_pass(course, assignment, records, similarity_threshold)
    listed = len(findings.listed)
    print(
        f"similar submissions: {listed} pair(s) listed of {len(findings.pairs)} sharing code "
        f"({findings.students} compared in {findings.seconds:.2f} s)"
    )
    return report.write_report(assignment, records, course.reports(assignment), similarity=findings)
