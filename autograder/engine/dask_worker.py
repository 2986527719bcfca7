"""The Dask worker's side of grading: a worker plugin that holds this machine's course and its ``Grader``s,
and the functions the client runs on workers (``grade``, one task per submission; ``facts``, the check
before a run).

A Dask worker becomes a grading worker when it loads this module as a preload, from a checkout of the course
(``make grade-worker`` runs this in the checkout)::

    PYTHONPATH=COURSE dask worker tcp://HOST:8786 --nthreads 1 --preload autograder.engine.dask_worker

``dask_setup`` then installs ``GradingPlugin`` for the course this module was imported from, and loads
nbgrader before the worker joins the scheduler. Each worker process grades one submission at a time
(``--nthreads 1``; the client refuses others), in a scratch folder under the worker's local directory, with
kernels started and sandboxed as on the client's machine: the kernel launcher dies with the thread that
started it (PR_SET_PDEATHSIG), which is the task's thread, alive while the task runs; a worker killed
mid-task takes its kernel and sandbox with it, and the scheduler gives the task to another worker.
"""

from __future__ import annotations

import os
import socket
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from distributed import WorkerPlugin, get_worker

from autograder.engine import fingerprint as fp
from autograder.engine.settings import Course
from autograder.engine.task import Outcome, RunSpec, Task
from autograder.engine.worker import Grader, warm_up

PLUGIN = "autograder"
#: The course checkout this grader was imported from.
COURSE = Path(__file__).resolve().parents[2]
#: Graders kept per worker process: runs of two assignments by two instructors may share a cluster.
KEEP_GRADERS = 2
START_WORKER = (
    "start grading workers in a checkout of the course with `make grade-worker SCHEDULER=tcp://HOST:8786` "
    "(PYTHONPATH=COURSE dask worker SCHEDULER --nthreads 1 --preload autograder.engine.dask_worker)"
)


class NotAGradingWorker(RuntimeError):
    """A Dask worker without the grading plugin was given a submission."""


class CourseMismatch(RuntimeError):
    """A worker's course or environment is not the one the client grades with."""


class GradingPlugin(WorkerPlugin):
    """This worker's course checkout and the graders of the runs it takes part in."""

    name = PLUGIN

    def __init__(self, course_root: str | Path) -> None:
        self.course = Course(course_root)
        self.graders: OrderedDict[str, Grader] = OrderedDict()
        self.fingerprints: dict[tuple[str, ...], fp.Fingerprint] = {}
        self.lock = threading.Lock()
        self.worker: Any = None

    def setup(self, worker: Any) -> None:
        self.worker = worker
        warm_up()

    def teardown(self, worker: Any) -> None:
        for grader in self.graders.values():
            grader.close()
        self.graders.clear()

    def fingerprint(self, assignments: tuple[str, ...]) -> fp.Fingerprint:
        if assignments not in self.fingerprints:
            self.fingerprints[assignments] = fp.fingerprint(self.course.root, assignments)
        return self.fingerprints[assignments]

    def grader(self, spec: RunSpec) -> Grader:
        if spec.run_id in self.graders:
            self.graders.move_to_end(spec.run_id)
            return self.graders[spec.run_id]
        while len(self.graders) >= KEEP_GRADERS:
            _, old = self.graders.popitem(last=False)
            old.close()
        mine = fp.digest(self.fingerprint(spec.assignments))
        if mine != spec.fingerprint:
            raise CourseMismatch(
                f"the Dask worker {self.worker.address} ({socket.gethostname()}, course {self.course.root}) "
                "has another version of the course or of its packages than the client: give every worker the "
                "same checkout and environment"
            )
        local = Path(self.worker.local_directory) / "autograder" / f"run-{spec.run_id[:12]}"
        grader = Grader(self.course, local, spec, name=f"{self.worker.address} (pid {os.getpid()})")
        self.graders[spec.run_id] = grader
        return grader

    def grade(self, spec: RunSpec, task: Task) -> Outcome:
        with self.lock:  # one submission at a time in a process: nbgrader and the kernels use its environment
            return self.grader(spec).grade(task)


def _plugin() -> GradingPlugin:
    plugin = get_worker().plugins.get(PLUGIN)
    if plugin is None:
        address = get_worker().address
        raise NotAGradingWorker(f"the Dask worker {address} is not a grading worker: {START_WORKER}")
    return plugin


def grade(spec: RunSpec, task: Task) -> Outcome:
    """The Dask task: grade one submission on this worker exactly as a local worker does."""
    return _plugin().grade(spec, task)


def facts(assignments: list[str], dask_worker: Any = None) -> dict[str, Any]:
    """What the client checks before a run: this worker's fingerprint, threads, sandbox and course folder."""
    from autograder.kernel import sandbox

    plugin = (dask_worker.plugins if dask_worker is not None else {}).get(PLUGIN)
    if plugin is None:
        return {"grading": False}
    return {
        "grading": True,
        "fingerprint": plugin.fingerprint(tuple(assignments)),
        "threads": dask_worker.state.nthreads,
        "sandbox": sandbox.problem(),
        "host": socket.gethostname(),
        "course": str(plugin.course.root),
        "pid": os.getpid(),
    }


async def dask_setup(worker: Any) -> None:
    """Dask's preload hook: make this worker a grading worker for ``COURSE``."""
    await worker.plugin_add(GradingPlugin(COURSE), name=PLUGIN, catch_errors=False)
