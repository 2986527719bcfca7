"""Where the submissions of a run are graded: ``LocalPool`` (``--jobs`` processes on this machine) or
``DaskCluster`` (the workers of a Dask cluster, ``--scheduler tcp://HOST:8786``). Both run the same
``Grader`` (autograder/engine/worker.py) on the same ``Task``s and give back ``Outcome``s; the run
(autograder/engine/run.py) submits tasks a few at a time and merges what comes back.

Both keep a submission from being lost or graded twice by the same means as local grading: a task whose
worker dies is given again (Dask's scheduler does that for a cluster; ``LocalPool`` has no second chance and
reports the pool as lost), and the client merges each submission once.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import math
import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

from autograder.engine import fingerprint as fp
from autograder.engine.settings import Course
from autograder.engine.task import Outcome, RunSpec, Task
from autograder.engine.worker import GraderUnavailable

#: Times a Dask task is run again after an error raised inside it (a worker that dies is handled by the
#: scheduler: the task goes to another worker, up to distributed.scheduler.allowed-failures times).
DASK_RETRIES = 1
#: Seconds to wait for a first Dask worker.
WAIT_FOR_WORKERS = 60
#: Seconds between two questions to the scheduler about how many workers there are.
SLOTS_REFRESH = 5.0


class ExecutorLost(RuntimeError):
    """The worker pool or the cluster went away: nothing more can be graded in this run."""


Done = list[tuple[Task, "Outcome | BaseException"]]


# ------------------------------------------------------------------------------------------- local pool
_GRADER: Any = None  # the Grader of this pool process (set up by its first task of a run)


def _pool_start() -> None:
    """Pool initializer: die with the main process, leave Ctrl-C to it, and load nbgrader while the main
    process prepares the gradebook (it takes seconds)."""
    from autograder.engine.worker import die_with_parent, warm_up

    die_with_parent()
    # Ctrl-C in a terminal reaches the whole process group: the main process stops the run and these
    # processes with it. A handler rather than SIG_IGN, so that the processes started from here (kernels)
    # get the default action back.
    signal.signal(signal.SIGINT, _leave_to_the_main_process)
    warm_up()


def _leave_to_the_main_process(signum: int, frame: Any) -> None:
    """SIGINT in a pool process: nothing to do (see ``_pool_start``)."""


def _pool_grade(course_root: str, work: str, spec: RunSpec, task: Task) -> Outcome:
    """Grade one task in this pool process (its Grader is made at its first task of a run)."""
    global _GRADER
    from autograder.engine.worker import Grader

    if _GRADER is None or _GRADER.spec.run_id != spec.run_id:
        if _GRADER is not None:
            _GRADER.close()
        _GRADER = Grader(Course(course_root), Path(work) / f"worker-{os.getpid()}", spec)
    return _GRADER.grade(task)


class LocalPool:
    """``jobs`` worker processes on this machine, started at once (they load nbgrader meanwhile)."""

    def __init__(self, course: Course, work: Path, jobs: int) -> None:
        self.course, self.work, self.slots = course, work, jobs
        self.pool = cf.ProcessPoolExecutor(
            max_workers=jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_pool_start
        )
        for _ in range(jobs):  # start every process now: each loads nbgrader while the client prepares
            self.pool.submit(int)
        self.futures: dict[cf.Future, Task] = {}
        self.spec: RunSpec | None = None

    def check(self, here: fp.Fingerprint, assignments: list[str], sandbox: bool) -> None:
        """Local workers share this machine's course and environment: nothing to check."""

    def start(self, spec: RunSpec) -> None:
        self.spec = spec

    def submit(self, task: Task) -> None:
        assert self.spec is not None, "start() first"
        future = self.pool.submit(_pool_grade, str(self.course.root), str(self.work), self.spec, task)
        self.futures[future] = task

    @property
    def pending(self) -> int:
        return len(self.futures)

    def done(self) -> Done:
        """The tasks finished since the last call (waits for at least one)."""
        finished, _ = cf.wait(list(self.futures), return_when=cf.FIRST_COMPLETED)
        found: Done = []
        for future in finished:
            task = self.futures.pop(future)
            try:
                found.append((task, future.result()))
            except cf.process.BrokenProcessPool as error:
                raise ExecutorLost(f"a grading worker process died ({error})") from None
            except GraderUnavailable as error:
                raise ExecutorLost(str(error)) from None
            except Exception as error:
                found.append((task, error))
        return found

    def close(self, stop: bool = False) -> None:
        """Wait for the pool's processes to end; ``stop``: kill them first, with the submissions they are
        grading (their kernels die with them), as after Ctrl-C."""
        if stop:
            for process in list(self.pool._processes.values()):  # no public way before Python 3.14
                process.kill()
        self.pool.shutdown(wait=not stop, cancel_futures=True)


# ------------------------------------------------------------------------------------------ Dask cluster
def scheduler_address(scheduler: Any) -> str:
    """The address of a scheduler given as an address, a cluster object or a ``distributed.Client``."""
    if isinstance(scheduler, str):
        return scheduler
    return str(getattr(scheduler, "scheduler_address", None) or getattr(scheduler, "scheduler", scheduler))


class DaskCluster:
    """The workers of a Dask cluster (see autograder/engine/dask_worker.py for what each worker needs), given
    by its scheduler's address, by a cluster object (SLURMCluster, a Dask Gateway cluster, KubeCluster: it
    brings its own security) or by a ``distributed.Client``."""

    def __init__(self, scheduler: Any) -> None:
        from distributed import Client

        self.address = address = scheduler_address(scheduler)
        self.own_client = not isinstance(scheduler, Client)
        try:
            if self.own_client:
                self.client = Client(scheduler, timeout="20s", set_as_default=False)
            else:
                self.client = scheduler
        except (OSError, TimeoutError, ValueError) as error:
            raise SystemExit(
                f"cannot reach the Dask scheduler at {address} ({error}): start one (`dask scheduler`) or "
                "check the address, e.g. --scheduler tcp://HOST:8786"
            ) from None
        try:
            self.client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS)
        except TimeoutError:
            if self.own_client:
                self.client.close()
            raise SystemExit(
                f"no Dask worker joined the scheduler at {address} within {WAIT_FOR_WORKERS} s: "
                f"{_start_worker()}"
            ) from None
        from distributed import as_completed

        self.futures: dict[Any, Task] = {}
        self._slots = (1, -math.inf)
        self.completed = as_completed(loop=self.client.loop)
        self.spec_future: Any = None
        self.spec: RunSpec | None = None
        self.checked: tuple[fp.Fingerprint, list[str], bool] = ({}, [], True)

    @property
    def slots(self) -> int:
        """Threads of the cluster's workers, asked of the scheduler at most every few seconds (workers come
        and go: a cluster manager scales them)."""
        now = time.monotonic()
        if now - self._slots[1] > SLOTS_REFRESH:
            self._slots = (max(1, sum(self.client.nthreads().values())), now)
        return self._slots[0]

    def check(self, here: fp.Fingerprint, assignments: list[str], sandbox: bool) -> None:
        """Refuse the run unless every worker is fit for it (``check_workers``)."""
        self.checked = (here, assignments, sandbox)
        check_workers(self.client, here, assignments, sandbox)

    def start(self, spec: RunSpec) -> None:
        """Send the run's spec to every worker once (tasks refer to it)."""
        # Workers on other machines cannot read this one's files: the snapshot goes as bytes.
        self.spec = dataclasses.replace(spec, snapshot=spec.snapshot.with_data())
        self.spec_future = self.client.scatter(self.spec, broadcast=True, hash=False)

    def submit(self, task: Task) -> None:
        from autograder.engine import dask_worker

        assert self.spec is not None, "start() first"
        future = self.client.submit(
            dask_worker.grade, self.spec_future, task, key=task.key(self.spec.run_id), retries=DASK_RETRIES
        )
        self.futures[future] = task
        self.completed.add(future)

    @property
    def pending(self) -> int:
        return len(self.futures)

    def done(self) -> Done:
        """The tasks finished since the last call (waits for at least one)."""
        from distributed.client import FutureCancelledError

        from autograder.engine.dask_worker import CourseMismatch, NotAGradingWorker

        finished = [next(self.completed), *self.completed.next_batch(block=False)]
        found: Done = []
        for future in finished:
            task = self.futures.pop(future)
            try:
                if future.status == "finished":
                    found.append((task, future.result()))
                    continue
                if future.status != "error":  # cancelled or lost: the scheduler went away
                    raise ExecutorLost(f"the scheduler at {self.address} dropped a task ({future.status})")
                error = future.exception()
            except (FutureCancelledError, OSError) as lost:
                raise ExecutorLost(f"lost the Dask scheduler at {self.address} ({lost!r})") from None
            if isinstance(error, (CourseMismatch, NotAGradingWorker)):
                check_workers(self.client, *self.checked)  # names every worker that differs (a new one)
                raise SystemExit(str(error))
            if isinstance(error, GraderUnavailable):
                raise ExecutorLost(str(error))
            found.append((task, _explain(error)))
        return found

    def close(self, stop: bool = False) -> None:
        """Cancel what is still pending. A task that a worker has begun runs to its end there (Dask does not
        interrupt a running task); its result is dropped, and the next run grades that submission."""
        try:
            if self.futures:
                self.client.cancel(list(self.futures), force=True)
        finally:
            if self.own_client:
                self.client.close()


def _explain(error: BaseException) -> BaseException:
    """A task error in words for the record: a worker that died on it again and again says so."""
    from distributed.scheduler import KilledWorker

    if isinstance(error, KilledWorker):
        return RuntimeError(
            "the Dask workers grading this submission died each time it was given to one "
            f"(distributed.scheduler.allowed-failures): {error}"
        )
    return error


def _start_worker() -> str:
    from autograder.engine.dask_worker import START_WORKER

    return START_WORKER


def check_workers(client: Any, here: fp.Fingerprint, assignments: list[str], sandbox: bool) -> None:
    """Refuse the run (SystemExit naming each worker and what differs) unless every worker of the cluster
    is a grading worker with one thread, this machine's fingerprint and, when the run needs it, a sandbox."""
    from autograder.engine.dask_worker import facts

    answers = client.run(facts, list(assignments), on_error="return")
    problems = []
    for address, answer in sorted(answers.items()):
        if isinstance(answer, BaseException):
            problems.append(f"{address}: cannot load the grader ({answer!r})")
            continue
        if not answer.get("grading"):
            problems.append(f"{address}: not a grading worker")
            continue
        where = f"{address} ({answer['host']}, course {answer['course']})"
        if answer["threads"] != 1:
            problems.append(
                f"{where}: {answer['threads']} threads; a grading worker grades one submission at a time: "
                "start it with --nthreads 1 (and --nworkers N for N processes)"
            )
        if sandbox and answer["sandbox"]:
            problems.append(f"{where}: cannot sandbox the grading kernels: {answer['sandbox']}")
        differs = fp.differences(here, answer["fingerprint"])
        if differs:
            problems.append(f"{where}: " + "; ".join(differs))
    if problems:
        listed = "\n  ".join(problems)
        raise SystemExit(
            f"these Dask workers cannot grade this run:\n  {listed}\n"
            "Every worker needs the same checkout of the course (solutions/, notebooks/, course_lib/, "
            "autograder/) and the same environment as this machine (README: grading on a cluster); "
            f"{_start_worker()}"
        )
