"""A real Dask cluster on this machine for the benchmark and the tests: a ``dask scheduler`` and ``dask
worker`` processes on 127.0.0.1, on free ports, started as instructors start theirs (one thread per worker
process, the grading preload of a course folder), and always stopped."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from autograder.nbgrader_cli import tool_env

DASK = str(Path(sys.executable).with_name("dask"))
PRELOAD = "autograder.engine.dask_worker"


class LocalCluster:
    """``with LocalCluster(course, folder, workers=2) as cluster:`` a scheduler at ``cluster.address`` and
    ``workers`` grading workers (each its own ``dask worker`` process with a nanny) for ``course``."""

    def __init__(self, course: Path, folder: Path, workers: int = 2, start_timeout: float = 180) -> None:
        self.course, self.folder, self.workers = Path(course), Path(folder), workers
        self.start_timeout = start_timeout
        self.scheduler: subprocess.Popen | None = None
        self.nannies: list[subprocess.Popen] = []
        self.address = ""

    def _start(self, args: list[str], log: str) -> subprocess.Popen:
        env = tool_env() | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = str(self.course)  # the workers import the course's grader (its preload)
        with open(self.folder / log, "ab") as out:
            return subprocess.Popen(
                [DASK, *args], cwd=self.folder, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def __enter__(self) -> LocalCluster:
        self.folder.mkdir(parents=True, exist_ok=True)
        scheduler_file = self.folder / "scheduler.json"
        scheduler_file.unlink(missing_ok=True)
        try:
            self.scheduler = self._start(
                ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                 "--scheduler-file", str(scheduler_file)],
                "scheduler.log",
            )  # fmt: skip
            deadline = time.monotonic() + self.start_timeout
            while not scheduler_file.exists():
                if self.scheduler.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the Dask scheduler did not start: {self.log('scheduler')}")
                time.sleep(0.1)
            time.sleep(0.2)  # the file is written in one go, but give it a moment to be complete
            self.address = json.loads(scheduler_file.read_text())["address"]
            for number in range(self.workers):
                local = self.folder / f"worker{number}"
                self.nannies.append(
                    self._start(
                        ["worker", self.address, "--nthreads", "1", "--name", f"grading-{number}",
                         "--no-dashboard", "--local-directory", str(local), "--preload", PRELOAD],
                        f"worker{number}.log",
                    )
                )  # fmt: skip
            self.wait_for_workers(self.workers, deadline - time.monotonic())
        except BaseException:
            self.stop()
            raise
        return self

    def wait_for_workers(self, count: int, timeout: float) -> None:
        from distributed import Client

        with Client(self.address, timeout="30s", set_as_default=False) as client:
            try:
                client.wait_for_workers(count, timeout=max(1.0, timeout))
            except TimeoutError:
                raise RuntimeError(f"{count} Dask workers did not join: {self.log('worker0')}") from None

    def log(self, name: str) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"

    def worker_pids(self) -> list[int]:
        """The worker processes (each nanny's child), which run the tasks."""
        pids = []
        for nanny in self.nannies:
            pids += _children(nanny.pid)
        return pids

    def stop(self) -> None:
        """Stop every process of the cluster (workers first), whatever state it is in."""
        processes = [*self.nannies, *([self.scheduler] if self.scheduler else [])]
        for process in processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.nannies, self.scheduler = [], None

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(child) for child in f.read().split()]
    except OSError:
        pass
    return found

