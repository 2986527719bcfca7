"""Grade every submission of an assignment in parallel with real nbgrader: ``python -m autograder grade NN``.

How it works
- The main process lists the submissions in autograder/submitted/STUDENT/NN/, skips those already graded
  (same files, same record; ``--force`` regrades), and hands the rest to ``--jobs`` worker processes.
- Each worker owns a private nbgrader course folder under autograder/.work/: a copy of the gradebook (made
  with SQLite's backup API), its own submitted/autograded/feedback folders, and a kernelspec that starts
  kernels with CPU and memory caps (autograder/kernel.py). For each submission it runs nbgrader's own
  ``autograde`` and ``generate_feedback`` (through nbgrader's Python API, so nbgrader loads once per worker)
  with ``CappedExecute`` in place of ``Execute`` (autograder/capped.py: wall-time budget, per-cell timings).
- Only the main process writes the course's gradebook: it copies each worker's scores in, in one
  transaction per submission, moves the autograded notebook and feedback into place, then writes the
  submission's record (autograder/grading/NN/STUDENT.json). The record is written last, so an interrupted
  run regrades whatever has no record. SQLite takes one writer at a time; one writer by design means no
  "database is locked" errors and no lost grade.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import contextlib
import hashlib
import json
import multiprocessing
import os
import re
import secrets
import shutil
import sqlite3
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from autograder import sandbox
from autograder.execute import tool_env
from course_lib.protocol import (
    ENV_CPU_SECONDS,
    ENV_EVIDENCE_KEY,
    ENV_MEMORY_BYTES,
    exercise_of,
    refused_names,
)

AUTOGRADER = Path(__file__).resolve().parent
KERNEL_LAUNCHER = AUTOGRADER / "kernel.py"

MEMORY_ERRORS = re.compile(
    r"MemoryError|can't allocate memory|DefaultCPUAllocator|std::bad_alloc|out of memory"
)


@dataclass
class Settings:
    """What a grading run needs, picklable for the worker processes."""

    course: Path
    assignment: str
    jobs: int
    cpu: float = 300.0
    wall: float = 600.0
    memory_gib: float = 4.0
    feedback: bool = True
    sandbox: bool = True
    course_id: str = ""
    work: Path = field(init=False)

    def __post_init__(self) -> None:
        self.course = Path(self.course).resolve()
        self.work = self.course / "autograder" / ".work" / self.assignment

    @property
    def config_file(self) -> Path:
        return self.course / "autograder" / "nbgrader_config.py"

    @property
    def gradebook(self) -> Path:
        return self.course / "autograder" / "gradebook.db"

    def folder(self, name: str) -> Path:
        return self.course / "autograder" / name

    @property
    def records(self) -> Path:
        return self.folder("grading") / self.assignment


# ---------------------------------------------------------------------------------------------- helpers


def submission_hash(folder: Path) -> str:
    """sha256 over the relative paths and bytes of every file in a submission folder."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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


def load_config(settings: Settings):
    """The course's nbgrader configuration (autograder/nbgrader_config.py) as a traitlets Config."""
    from traitlets.config.loader import PyFileConfigLoader

    if not settings.config_file.exists():
        raise SystemExit(
            f"no nbgrader configuration at {settings.config_file}: is --course the course folder?"
        )
    return PyFileConfigLoader(settings.config_file.name, path=str(settings.config_file.parent)).load_config()


def list_submissions(settings: Settings) -> dict[str, Path]:
    """``{student: submission folder}`` for every student who submitted the assignment."""
    submitted = settings.folder("submitted")
    if not submitted.is_dir():
        return {}
    found = {}
    for student in sorted(p for p in submitted.iterdir() if p.is_dir() and not p.name.startswith(".")):
        folder = student / settings.assignment
        if folder.is_dir():
            found[student.name] = folder
    return found


def ensure_assignment(settings: Settings) -> None:
    """Make sure the course gradebook knows the assignment and its notebooks (nbgrader's generate_assignment
    records them); if it does not, run generate_assignment with its output in a scratch folder, so the
    released notebooks are left alone."""

    from nbgrader.api import Gradebook, MissingEntry

    url = f"sqlite:///{settings.gradebook}"
    source = settings.course / "solutions" / settings.assignment
    if not source.is_dir():
        raise SystemExit(
            f"no source folder {source}: is {settings.assignment!r} an assignment of this course?"
        )
    wanted = {p.stem for p in source.glob("*.ipynb")}
    try:
        with Gradebook(url, settings.course_id) as gb:
            known = {nb.name for nb in gb.find_assignment(settings.assignment).notebooks}
        if wanted <= known:
            return
    except MissingEntry:
        pass
    scratch = settings.work / "release"
    _nbgrader(
        settings,
        "generate_assignment",
        settings.assignment,
        "--force",
        f"--CourseDirectory.release_directory={scratch}",
        "--log-level=WARN",
        announce=False,
    )
    shutil.rmtree(scratch, ignore_errors=True)


# ----------------------------------------------------------------------------------------------- worker

_WORKER: dict[str, Any] = {}


def _worker_start() -> None:
    """Pool initializer: die with the main process (Linux), and load nbgrader while the main process
    prepares the gradebook (it takes seconds)."""
    with contextlib.suppress(Exception):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    import nbgrader.apps  # noqa: F401
    import nbgrader.converters  # noqa: F401

    import autograder.capped  # noqa: F401
    import autograder.feedback  # noqa: F401


def _worker_setup(settings: Settings) -> None:
    """Set up this worker's private course folder, gradebook copy, capped kernelspec and nbgrader API."""
    import logging

    root = settings.work / f"worker-{os.getpid()}"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / "source").symlink_to(settings.course / "solutions")
    for name in ("submitted", "autograded", "feedback"):
        (root / name).mkdir()
    source = sqlite3.connect(settings.gradebook)
    target = sqlite3.connect(root / "gradebook.db")
    with target:
        source.backup(target)
    source.close()
    target.close()

    # Kernels talk to the worker over Unix sockets: no TCP ports to race for between workers.
    sockets = Path(tempfile.mkdtemp(prefix="kernels-"))
    atexit.register(shutil.rmtree, sockets, True)
    os.environ["JUPYTER_RUNTIME_DIR"] = str(root / "runtime")  # connection files
    spec = root / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, str(KERNEL_LAUNCHER), "-f", "{connection_file}"],
                "display_name": "Python 3 (grading, capped)",
                "language": "python",
                "env": {
                    ENV_CPU_SECONDS: str(int(settings.cpu)),
                    ENV_MEMORY_BYTES: str(int(settings.memory_gib * 2**30)),
                    **(sandbox.kernel_env(str(root), str(sockets)) if settings.sandbox else {}),
                },
                # Interrupts go as messages: a signal to the sandbox's process group may not reach the kernel.
                "interrupt_mode": "message",
            }
        )
    )
    os.environ["JUPYTER_PATH"] = str(root / "jupyter")
    # One math thread per kernel: --jobs kernels share the cores, and small tensors gain nothing from more.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")

    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.preprocessors import Execute

    from autograder.capped import CappedExecute

    config = load_config(settings)
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.source_directory = "source"
    config.CourseDirectory.release_directory = "release"
    config.CourseDirectory.submitted_directory = "submitted"
    config.CourseDirectory.autograded_directory = "autograded"
    config.CourseDirectory.feedback_directory = "feedback"
    config.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    from nbgrader.converters import Autograde

    preprocessors = list(
        config.Autograde.get("autograde_preprocessors", Autograde.autograde_preprocessors.default())
    )
    config.Autograde.autograde_preprocessors = [
        CappedExecute if pp is Execute or pp == "nbgrader.preprocessors.Execute" else pp
        for pp in preprocessors
    ]
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = str(sockets / "kernel")
    from autograder.feedback import CachedHTMLExporter

    config.GenerateFeedback.exporter_class = CachedHTMLExporter
    config.CappedExecute.wall_limit = float(settings.wall)
    config.CappedExecute.cpu_limit = float(settings.cpu)
    coursedir = CourseDirectory(config=config)
    api = NbGraderAPI(coursedir=coursedir, config=config)
    api.log.setLevel(logging.ERROR)
    _WORKER.update(root=root, api=api, settings=settings)


def _grades_of(db: Path, assignment: str, student: str, course_id: str) -> dict[str, Any]:
    """The autograde results of one submission in a worker's gradebook, as plain data."""
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


def grade_one(settings: Settings, student: str) -> dict[str, Any]:
    """Autograde (and generate feedback for) one student's submission in this worker; return plain data."""
    from autograder import capped, repair

    if _WORKER.get("settings") != settings:
        _worker_setup(settings)
    root: Path = _WORKER["root"]
    api = _WORKER["api"]
    began = time.monotonic()
    result: dict[str, Any] = {"student": student, "worker": os.getpid()}
    source = settings.folder("submitted") / student / settings.assignment
    for name in ("submitted", "autograded", "feedback"):
        shutil.rmtree(root / name / student, ignore_errors=True)
    target = root / "submitted" / student / settings.assignment
    try:
        result["sha256"] = submission_hash(source)
        release = settings.course / "notebooks" / settings.assignment / f"{settings.assignment}.ipynb"
        preparation = repair.prepare_submission(source, target, settings.assignment, release)
        result["flags"] = list(preparation.flags)
        if preparation.reason is None:
            result["flags"] += _scan(target, settings.assignment, release)
        if preparation.reason is not None:
            result["error"] = preparation.reason
            result["seconds"] = time.monotonic() - began
            return result
        capped.LAST_RUN.clear()
        # A fresh key per submission: the kernel's checks sign what passed with it (autograder/capped.py).
        key = secrets.token_hex(32)
        capped.EVIDENCE_KEY = key.encode()
        os.environ[ENV_EVIDENCE_KEY] = key
        started = time.monotonic()
        try:
            outcome = api.autograde(settings.assignment, student, force=True, create=True)
        finally:
            _remove_scratch(root)
        result["autograde_seconds"] = time.monotonic() - started
        result["run"] = json.loads(json.dumps(capped.LAST_RUN, default=str))
        if not outcome.get("success"):
            result["error"] = _last_error(outcome)
        else:
            db = root / "gradebook.db"
            result["grades"] = _grades_of(db, settings.assignment, student, settings.course_id)
            result["autograded"] = str(root / "autograded" / student / settings.assignment)
            if settings.feedback:
                started = time.monotonic()
                fb = api.generate_feedback(settings.assignment, student, force=True)
                result["feedback_seconds"] = time.monotonic() - started
                if fb.get("success"):
                    result["feedback"] = str(root / "feedback" / student / settings.assignment)
                else:
                    result["feedback_error"] = _last_error(fb)
    except Exception:
        result["error"] = traceback.format_exc(limit=3)[-2000:]
    result["seconds"] = time.monotonic() - began
    return result


def _remove_scratch(root: Path) -> None:
    """Remove the sandbox's scratch copies of the working folder (autograder/sandbox.py) left by kernels
    killed at the end of their notebook: their launcher had no time to remove them."""
    for folder in (root / "sandbox").glob("cwd-*"):
        shutil.rmtree(folder, ignore_errors=True)


def _scan(target: Path, assignment: str, release: Path) -> list[str]:
    """Integrity flags (autograder/scan.py) from the prepared copy of the notebook: the repair step has
    recognised its cells by then, and it flags deleted or re-typed cells itself."""
    import nbformat

    from autograder import scan

    with contextlib.suppress(Exception):
        nb = nbformat.reader.reads((target / f"{assignment}.ipynb").read_text(encoding="utf-8"))
        return scan.scan(nb) + scan.locked_cell_changes(nb, nbformat.read(release, as_version=4))
    return []


def _last_error(outcome: dict[str, Any]) -> str:
    """The meaningful lines of a failed nbgrader API call: the exception nbgrader logged (the last line
    of the traceback in its log) and its own error lines."""
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


# ------------------------------------------------------------------------------------------------ merge


def _exercise_of(grade_id: str | None, exercises: list[str]) -> str | None:
    if not grade_id:
        return None
    return grade_id if grade_id in exercises else exercise_of(grade_id, exercises)


def apply_grades(gb: Any, settings: Settings, student: str, grades: dict[str, Any] | None) -> None:
    """Copy one submission's autograde results into the course gradebook ``gb`` (an open nbgrader
    Gradebook) in a single transaction; manual scores and comments an instructor gave are kept. A
    submission nbgrader could not grade gets zero auto scores and is marked as needing manual grading."""
    import warnings

    with warnings.catch_warnings():
        # nbgrader's add_submission trips SQLAlchemy's autoflush warning on every new submission; harmless.
        warnings.filterwarnings("ignore", message=".*not in session.*")
        gb.update_or_create_student(student)
        timestamp = grades.get("timestamp") if grades else None
        kwargs = {"timestamp": timestamp} if timestamp else {}
        submission = gb.update_or_create_submission(settings.assignment, student, **kwargs)
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


def _rounded(seconds: float | None) -> float | None:
    return round(seconds, 3) if seconds is not None else None


def build_record(settings: Settings, result: dict[str, Any], notebook_path: Path | None) -> dict[str, Any]:
    """The per-submission record (see the report): status, scores per exercise and cell, timings, reasons."""
    import nbformat

    run = result.get("run") or {}
    record: dict[str, Any] = {
        "assignment": settings.assignment,
        "student": result["student"],
        "submission_sha256": result.get("sha256"),
        "timestamp": None,
        "status": "graded" if "grades" in result else "failed",
        "reason": result.get("error"),
        "capped": None,
        "score": 0.0,
        "max_score": 0.0,
        "exercises": {},
        "cells": [],
        "timings": {
            "total": round(result.get("seconds", 0.0), 3),
            "autograde": _rounded(result.get("autograde_seconds")),
            "execute": _rounded(run.get("execute_seconds")),
            "feedback": _rounded(result.get("feedback_seconds")),
            "cpu": run.get("cpu"),
            "peak_memory_mb": run.get("peak_memory_mb"),
        },
        "graded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "flags": list(result.get("flags", [])),
        "worker": result.get("worker"),
    }
    if result.get("feedback_error"):
        record["flags"].append(f"feedback not generated: {result['feedback_error']}")
    record["flags"].extend(run.get("flags", []))
    if run.get("stopped"):
        record["capped"] = run["stopped"]
        record["reason"] = run.get("reason")
    grades = result.get("grades")
    if grades:
        record["timestamp"] = str(grades["timestamp"]) if grades.get("timestamp") else None
    if not grades or notebook_path is None or not notebook_path.exists():
        return record
    nb = nbformat.reader.reads(notebook_path.read_text(encoding="utf-8"))  # no schema validation: fast
    flat = {g: v for data in grades["notebooks"].values() for g, v in data["grades"].items()}
    exercises = [
        c.metadata["nbgrader"]["grade_id"]
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("solution") and c.metadata["nbgrader"].get("grade_id")
    ]
    cells_run = run.get("cells", {})
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        info = cells_run.get(str(index)) or cells_run.get(index) or {}
        status = info.get("status") or ("error" if errors else "ok")
        grade = flat.get(grade_id) if grade_id else None
        graded = grade is not None and grade["cell_type"] == "code" and cell.metadata["nbgrader"].get("grade")
        entry = {
            "index": index,
            "grade_id": grade_id,
            "exercise": _exercise_of(grade_id, exercises),
            "seconds": info.get("seconds"),
            "status": status,
            "score": grade["auto_score"] if graded else None,
            "max_score": grade["max_score"] if graded else None,
            "error": {
                "ename": errors[-1].get("ename", ""),
                "evalue": str(errors[-1].get("evalue", ""))[:2000],
            }
            if errors
            else None,
        }
        record["cells"].append(entry)
        if graded and errors:
            record["flags"].extend(_runtime_flags(cell, grade_id, errors[-1]))
        if graded:
            exercise = entry["exercise"] or grade_id
            totals = record["exercises"].setdefault(exercise, {"score": 0.0, "max_score": 0.0})
            totals["score"] += grade["auto_score"] or 0.0
            totals["max_score"] += grade["max_score"] or 0.0
        if (
            errors
            and record["capped"] is None
            and MEMORY_ERRORS.search(f"{errors[-1].get('ename', '')} {errors[-1].get('evalue', '')}")
        ):
            record["capped"] = "memory"
            record["reason"] = (
                f"cell {index} ran out of its memory cap of {settings.memory_gib:g} GiB; later cells ran on"
            )
    record["score"] = sum(g["auto_score"] or 0.0 for g in flat.values())
    record["max_score"] = sum(g["max_score"] or 0.0 for g in flat.values())
    return record


def _runtime_flags(cell: Any, grade_id: str, error: dict[str, Any]) -> list[str]:
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


def merge(gb: Any, settings: Settings, result: dict[str, Any]) -> dict[str, Any]:
    """Bring one worker result into the course: files, gradebook, then the record (the 'done' mark)."""
    student = result["student"]
    grades = result.get("grades")
    autograded = settings.folder("autograded") / student / settings.assignment
    notebook_path = None
    if grades and result.get("autograded"):
        replace_dir(Path(result["autograded"]), autograded)
        notebook_path = autograded / f"{settings.assignment}.ipynb"
        if result.get("feedback"):
            replace_dir(Path(result["feedback"]), settings.folder("feedback") / student / settings.assignment)
    try:
        record = build_record(settings, result, notebook_path)
    except Exception as error:  # one odd notebook must not stop the batch: keep the grades, say so
        record = build_record(settings, result, None)
        record["flags"].append(f"the record lacks details from the autograded notebook: {error!r}")
    apply_grades(gb, settings, student, grades)
    write_json_atomic(settings.records / f"{student}.json", record)
    return record


def is_done(settings: Settings, student: str, folder: Path) -> bool:
    """Has this exact submission been graded (a record with the same files' hash)?"""
    path = settings.records / f"{student}.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if record.get("submission_sha256") != submission_hash(folder):
        return False
    autograded = settings.folder("autograded") / student / settings.assignment
    return record.get("status") != "graded" or (autograded / f"{settings.assignment}.ipynb").exists()


# ------------------------------------------------------------------------------------------------- main


def _lock(settings: Settings) -> Any:
    """Hold the assignment's grading lock for this process's life (a killed run releases it by dying)."""
    import fcntl

    settings.records.mkdir(parents=True, exist_ok=True)
    handle = open(settings.records / ".lock", "a+")  # noqa: SIM115 - kept open on purpose
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        pid = handle.read().strip() or "?"
        raise SystemExit(
            f"another grading run of {settings.assignment} is in progress (pid {pid}): wait for it to finish "
            "or stop it, then run again"
        ) from None
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def check_sandbox(settings: Settings) -> None:
    """Refuse to run student code unsandboxed unless the instructor said so (--no-sandbox), loudly."""
    if not settings.sandbox:
        print(
            "WARNING: grading WITHOUT a sandbox (--no-sandbox): student code runs with your permissions and "
            "can read solutions/, change the gradebook and reach the network.",
            file=sys.stderr,
            flush=True,
        )
        return
    problem = sandbox.problem()
    if problem is not None:
        raise SystemExit(
            f"cannot sandbox the grading kernels: {problem}\n"
            "Fix that (bubblewrap: Debian/Ubuntu `sudo apt-get install bubblewrap`), or grade without a "
            "sandbox at your own risk with --no-sandbox."
        )


def grade(
    settings: Settings | list[Settings],
    force: bool = False,
    students: list[str] | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Grade the submissions of one or more assignments of a course in one pool of workers; return the
    records of this run (submissions already graded are skipped unless ``force``)."""
    every = settings if isinstance(settings, list) else [settings]
    locks = [_lock(one) for one in every]
    try:
        return _grade(every, force, students, progress)
    finally:
        for lock in locks:
            lock.close()


def _todo(settings: Settings, force: bool, students: list[str] | None) -> list[str]:
    """The students whose submission of this assignment needs grading; prints what it found."""
    submissions = list_submissions(settings)
    if students:
        submissions = {s: submissions[s] for s in students if s in submissions}
    todo = [s for s, folder in submissions.items() if force or not is_done(settings, s, folder)]
    skipped = len(submissions) - len(todo)
    print(
        f"{settings.assignment}: {len(submissions)} submission(s), {len(todo)} to grade"
        + (f", {skipped} already graded (--force regrades them)" if skipped else "")
        + f", {settings.jobs} job(s)",
        flush=True,
    )
    return todo


def _grade(
    every: list[Settings], force: bool, students: list[str] | None, progress: bool
) -> list[dict[str, Any]]:
    from tqdm import tqdm

    if students:
        known = {s for one in every for s in list_submissions(one)}
        missing = sorted(set(students) - known)
        if missing:
            where = ", ".join(one.assignment for one in every)
            raise SystemExit(
                f"no submission of {where} from {', '.join(missing)} in {every[0].folder('submitted')}"
            )
    todo = [(one, student) for one in every for student in _todo(one, force, students)]
    if not todo:
        return []
    first = every[0]
    check_sandbox(first)
    for one in every:
        # Left over by a run that was killed: worker folders, half-written records.
        shutil.rmtree(one.work, ignore_errors=True)
        for stale in one.records.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
    # nbgrader runs `alembic` (installed next to this Python) when it creates a gradebook.
    os.environ["PATH"] = tool_env()["PATH"]
    records = []
    failed = capped = 0
    context = multiprocessing.get_context("spawn")
    bar = None
    gradebook = None
    try:
        # The workers start loading nbgrader at once; the gradebook is ready before they need it.
        with cf.ProcessPoolExecutor(
            max_workers=min(first.jobs, len(todo)), mp_context=context, initializer=_worker_start
        ) as pool:
            from nbgrader.api import Gradebook

            course_id = load_config(first).CourseDirectory.get("course_id", "") or first.course_id
            for one in every:
                one.course_id = course_id
                ensure_assignment(one)
                one.work.mkdir(parents=True, exist_ok=True)
            gradebook = Gradebook(f"sqlite:///{first.gradebook}", course_id)
            bar = tqdm(
                total=len(todo),
                unit="submission",
                desc=first.assignment if len(every) == 1 else "grading",
                disable=not progress,
                dynamic_ncols=True,
            )
            futures = {pool.submit(grade_one, one, student): (one, student) for one, student in todo}
            workers = min(first.jobs, len(todo))
            for done, future in enumerate(cf.as_completed(futures), start=1):
                if len(todo) - done < workers:
                    _load_report_libraries()  # a worker has nothing left to do: use its core meanwhile
                one, student = futures[future]
                try:
                    result = future.result()
                except Exception as error:  # a worker died: record it, the others go on
                    result = {"student": student, "error": f"grading worker failed: {error!r}"}
                record = merge(gradebook, one, result)
                records.append(record)
                failed += record["status"] == "failed"
                capped += record["capped"] is not None
                bar.set_postfix(failed=failed, capped=capped, refresh=False)
                bar.update()
    finally:
        if bar is not None:
            bar.close()
        if gradebook is not None:
            gradebook.close()
        for one in every:
            shutil.rmtree(one.work, ignore_errors=True)
        with contextlib.suppress(OSError):
            first.work.parent.rmdir()  # .work/ itself, unless another assignment is being graded
    return records


def _load_report_libraries() -> None:
    """Import what the class report draws with (matplotlib: most of a second), once the last submissions
    are being graded and a core is free, rather than after grading, when the report is all there is."""
    with contextlib.suppress(Exception):
        import matplotlib.figure  # noqa: F401
        from matplotlib.backends import backend_agg  # noqa: F401

        from autograder import report  # noqa: F401


# ------------------------------------------------------------------------------ collecting and reporting


def _nbgrader(settings: Settings, *args: str, announce: bool = True) -> None:
    """Run the nbgrader command line in the course's autograder folder; stop with its output if it fails."""
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=settings.course / "autograder",
        env=tool_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"nbgrader {' '.join(args)} failed:\n{result.stdout[-2000:]}{result.stderr[-4000:]}")
    if announce:
        print(f"nbgrader {' '.join(args)}: done", flush=True)


def collect_from_exchange(settings: Settings) -> None:
    """nbgrader collect: copy the newest submissions from the exchange into autograder/submitted/."""
    _nbgrader(settings, "collect", settings.assignment, "--update", "--log-level=WARN")


def collect_from_zip(settings: Settings, paths: list[Path]) -> None:
    """nbgrader zip_collect: put LMS downloads (zip files or notebooks) in autograder/downloaded/NN/archive/
    and collect them into autograder/submitted/ (file names as FileNameCollectorPlugin.named_regexp says)."""
    archive = settings.folder("downloaded") / settings.assignment / "archive"
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise SystemExit(f"--zip: no such file or folder: {', '.join(missing)}")
    archive.mkdir(parents=True, exist_ok=True)
    for path in paths:
        if path.is_dir():
            shutil.copytree(path, archive / path.name, dirs_exist_ok=True)
        else:
            shutil.copy2(path, archive / path.name)
    _nbgrader(settings, "zip_collect", settings.assignment, "--force", "--log-level=WARN")


def summary(records: list[dict[str, Any]], seconds: float) -> str:
    """A few lines for the terminal after a run."""
    graded = [r for r in records if r["status"] == "graded"]
    lines = [f"graded {len(graded)} of {len(records)} submission(s) in {seconds:.1f} s"]
    for r in records:
        if r["status"] == "failed" or r["capped"]:
            why = f"{r['capped'] or ''} {r['reason'] or ''}".strip()
            lines.append(f"  {r['assignment']} {r['student']}: {r['status']}, {why}")
    return "\n".join(lines)


def write_class_report(settings: Settings) -> Path | None:
    """Rewrite autograder/reports/NN/ (grades.csv, figures, index.html) from all the assignment's records."""
    from autograder import report

    if not settings.records.is_dir():
        print(f"no grading records for {settings.assignment} in {settings.records}: grade it first")
        return None
    records = report.load_records(settings.records)
    if isinstance(records, tuple):
        records = records[0]
    return report.write_report(settings.assignment, records, settings.folder("reports") / settings.assignment)
