"""One grading worker process: its private nbgrader course folder, and the flow of one submission through it.

A ``Grader`` is set up once per run in each worker process (a local pool process or a Dask worker): a folder
with nbgrader's layout (submitted/, autograded/, feedback/, ``source`` pointing at the course's solutions/),
its own copy of the gradebook snapshot (so no two processes ever write one SQLite file), a kernelspec whose
kernels start through autograder/kernel/launch.py with the run's caps and sandbox, and nbgrader's Python API
(loaded once per process). ``Grader.grade`` takes one ``Task`` through it:

1. the submission's files are written to incoming/, and repaired into submitted/ (autograder/intake/repair.py;
   a submission that cannot be graded ends here with its reason), then scanned for flags (intake/scan.py);
2. nbgrader's ``autograde`` runs with a ``CappedExecute`` made for this submission (autograder/kernel/caps.py)
   in place of ``Execute``: a fresh evidence key, the wall-time budget, an ``ExecutionReport`` of what ran;
3. the grades are read back from the private gradebook, the feedback rendered (reporting/feedback.py);
4. the record is built (autograder/engine/results.py) and returned with the grades and both folders.

The worker writes nothing of the course's: the client merges what it returns (autograder/engine/merge.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from autograder.engine import results
from autograder.engine.folder import Folder
from autograder.engine.record import FAILED, Record
from autograder.engine.settings import Course
from autograder.engine.task import Outcome, RunSpec, Task
from course_lib.protocol import ENV_CPU_SECONDS, ENV_MEMORY_BYTES

LAUNCHER = Path(__file__).resolve().parent.parent / "kernel" / "launch.py"
_FOLDERS = ("incoming", "submitted", "autograded", "feedback")


def load_config(course: Course) -> Any:
    """The course's nbgrader configuration (autograder/nbgrader_config.py) as a traitlets Config."""
    from traitlets.config.loader import PyFileConfigLoader

    if not course.config_file.exists():
        raise SystemExit(f"no nbgrader configuration at {course.config_file}: is --course the course folder?")
    return PyFileConfigLoader(course.config_file.name, path=str(course.config_file.parent)).load_config()


def warm_up() -> None:
    """Import what grading uses (nbgrader, nbconvert, the preprocessors: seconds), before the first task."""
    import nbgrader.apps  # noqa: F401
    import nbgrader.converters  # noqa: F401

    import autograder.kernel.caps  # noqa: F401
    import autograder.reporting.feedback  # noqa: F401


def die_with_parent() -> None:
    """Be killed when the process that started this one dies, even by kill -9 (Linux)."""
    with contextlib.suppress(Exception):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class GraderUnavailable(RuntimeError):
    """A worker process could not set up its grading folder: no submission can be graded there. The run
    stops (the submissions stay ungraded, without a record) rather than fail the whole class."""


class Grader:
    """A worker process's private nbgrader course for one run (see the module docstring)."""

    def __init__(self, course: Course, root: Path, spec: RunSpec, name: str | None = None) -> None:
        self.course = course
        self.root = Path(root)
        self.spec = spec
        self.name = name or f"{socket.gethostname()} (pid {os.getpid()})"
        self.sockets = Path(tempfile.mkdtemp(prefix="kernels-"))
        try:
            self._setup()
        except BaseException as error:
            self.close()
            if isinstance(error, Exception):
                raise GraderUnavailable(
                    f"the grading worker {self.name} could not set up its grading folder in {self.root}: "
                    f"{type(error).__name__}: {error}"
                ) from error
            raise

    def _setup(self) -> None:
        from nbgrader.apps import NbGraderAPI
        from nbgrader.coursedir import CourseDirectory

        from autograder.kernel import sandbox

        options = self.spec.options
        root = self.root
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        (root / "source").symlink_to(self.course.root / "solutions")
        for name in _FOLDERS:
            (root / name).mkdir()
        self.spec.snapshot.write_to(root / "gradebook.db")
        spec = root / "jupyter" / "kernels" / "python3"
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(
            json.dumps(
                {
                    "argv": [sys.executable, str(LAUNCHER), "-f", "{connection_file}"],
                    "display_name": "Python 3 (grading, capped)",
                    "language": "python",
                    "env": {
                        ENV_CPU_SECONDS: str(int(options.cpu)),
                        ENV_MEMORY_BYTES: str(int(options.memory_gib * 2**30)),
                        **(sandbox.kernel_env(str(root), str(self.sockets)) if options.sandbox else {}),
                    },
                    # Interrupts go as messages: a signal to the sandbox's process group may miss the kernel.
                    "interrupt_mode": "message",
                }
            )
        )
        config = load_config(self.course)
        config.CourseDirectory.root = str(root)
        config.CourseDirectory.source_directory = "source"
        config.CourseDirectory.release_directory = "release"
        config.CourseDirectory.submitted_directory = "submitted"
        config.CourseDirectory.autograded_directory = "autograded"
        config.CourseDirectory.feedback_directory = "feedback"
        config.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
        # Kernels talk to the worker over Unix sockets: no TCP ports to race for between workers.
        config.KernelManager.transport = "ipc"
        config.KernelManager.ip = str(self.sockets / "kernel")
        from autograder.reporting.feedback import CachedHTMLExporter

        config.GenerateFeedback.exporter_class = CachedHTMLExporter
        config.CappedExecute.wall_limit = float(options.wall)
        config.CappedExecute.cpu_limit = float(options.cpu)
        self._activate()
        self.api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
        self.api.log.setLevel(logging.ERROR)

    def _activate(self) -> None:
        """This grader's environment for nbgrader and its kernels (a process may hold graders of two runs)."""
        os.environ["JUPYTER_RUNTIME_DIR"] = str(self.root / "runtime")  # connection files
        os.environ["JUPYTER_PATH"] = str(self.root / "jupyter")
        # One math thread per kernel: the jobs share the cores, and small tensors gain nothing from more.
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = "1"
        os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.sockets, ignore_errors=True)

    # -- one submission -----------------------------------------------------------------------------------
    def grade(self, task: Task) -> Outcome:
        """Grade one submission (see the module docstring); never raises: a failure is in the record."""
        began = time.monotonic()
        record = Record(task.assignment, task.student, submission_sha256=task.sha256, worker=self.name)
        self._activate()
        try:
            outcome = self._grade(task, record)
        except Exception:
            record.status = FAILED
            record.reason = traceback.format_exc(limit=3)[-2000:]
            outcome = Outcome(record)
        finally:
            for name in _FOLDERS:
                shutil.rmtree(self.root / name / task.student, ignore_errors=True)
        record.timings.total = round(time.monotonic() - began, 3)
        return outcome

    def _grade(self, task: Task, record: Record) -> Outcome:
        from autograder.intake import repair

        assignment, student = task.assignment, task.student
        for name in _FOLDERS:
            shutil.rmtree(self.root / name / student, ignore_errors=True)
        incoming = self.root / "incoming" / student / assignment
        task.submission.write(incoming)
        target = self.root / "submitted" / student / assignment
        release = self.course.release(assignment)
        preparation = repair.prepare_submission(incoming, target, assignment, release)
        record.flags.extend(preparation.flags)
        if preparation.reason is not None:
            record.reason = preparation.reason
            return Outcome(record)
        record.flags.extend(_scan(target, assignment, release))

        started = time.monotonic()
        try:
            outcome, report = self._autograde(assignment, student)
        finally:
            _remove_scratch(self.root)
        record.timings.autograde = round(time.monotonic() - started, 3)
        options = self.spec.options
        if not outcome.get("success"):
            record.reason = results.last_error(outcome)
            return Outcome(results.build_record(record, None, report, None, options.memory_gib))
        grades = results.grades_of(self.root / "gradebook.db", assignment, student, options.course_id)
        autograded = self.root / "autograded" / student / assignment
        feedback = None
        if options.feedback:
            started = time.monotonic()
            rendered = self.api.generate_feedback(assignment, student, force=True)
            record.timings.feedback = round(time.monotonic() - started, 3)
            if rendered.get("success"):
                feedback = Folder.read(self.root / "feedback" / student / assignment)
            else:
                record.flags.append(f"feedback not generated: {results.last_error(rendered)}")
        notebook = None
        try:
            import nbformat

            path = autograded / f"{assignment}.ipynb"
            notebook = nbformat.reader.reads(path.read_text(encoding="utf-8"))  # no schema validation: fast
        except Exception as error:  # one odd notebook must not stop the batch: keep the grades, say so
            record.flags.append(f"the record lacks details from the autograded notebook: {error!r}")
        results.build_record(record, grades, report, notebook, options.memory_gib)
        return Outcome(record, grades, Folder.read(autograded), feedback)

    def _autograde(self, assignment: str, student: str) -> tuple[dict[str, Any], Any]:
        """nbgrader's autograde of one submission (as ``NbGraderAPI.autograde`` runs it) with a
        ``CappedExecute`` made for it in place of ``Execute``; returns nbgrader's result and the report."""
        from nbgrader.converters import Autograde
        from nbgrader.preprocessors import Execute
        from nbgrader.utils import capture_log, temp_attrs

        from autograder.kernel.caps import CappedExecute

        with temp_attrs(self.api.coursedir, assignment_id=assignment, student_id=student):
            app = Autograde(coursedir=self.api.coursedir, parent=self.api)
            app.force = True
            app.create_student = True
            # A fresh key per submission: the kernel's checks sign what passed with it (course_lib.protocol).
            executor = CappedExecute(parent=app, evidence_key=secrets.token_hex(32).encode())
            app.autograde_preprocessors = [
                executor if _is_execute(pp, Execute) else pp for pp in app.autograde_preprocessors
            ]
            with warnings.catch_warnings():
                # nbgrader trips SQLAlchemy's autoflush warning on each new submission; harmless.
                warnings.filterwarnings("ignore", message=".*not in session.*")
                outcome = capture_log(app)
        return outcome, executor.reports.get(assignment) or executor.report


def _is_execute(preprocessor: Any, execute: type) -> bool:
    return preprocessor is execute or preprocessor == "nbgrader.preprocessors.Execute"


def _remove_scratch(root: Path) -> None:
    """Remove the sandbox's scratch copies of the working folder (autograder/kernel/sandbox.py) left by
    kernels killed at the end of their notebook: their launcher had no time to remove them."""
    for folder in (root / "sandbox").glob("cwd-*"):
        shutil.rmtree(folder, ignore_errors=True)


def _scan(target: Path, assignment: str, release: Path) -> list[str]:
    """Integrity flags (autograder/intake/scan.py) from the prepared copy of the notebook: the repair step
    has recognised its cells by then, and it flags deleted or re-typed cells itself."""
    import nbformat

    from autograder.intake import scan

    with contextlib.suppress(Exception):
        nb = nbformat.reader.reads((target / f"{assignment}.ipynb").read_text(encoding="utf-8"))
        return scan.scan(nb) + scan.locked_cell_changes(nb, nbformat.read(release, as_version=4))
    return []
