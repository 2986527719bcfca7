"""nbgrader's Execute preprocessor with a wall-time budget per submission, per-cell timings, and a graceful
end when the kernel dies or stops answering: the cells that ran keep their output, every later cell gets an
error saying why it did not run, and nbgrader grades the notebook on what ran.

The grading command (autograder/grade.py) puts ``CappedExecute`` in place of ``Execute`` and reads
``LAST_RUN`` after each autograde (the preprocessor runs in the grading worker's own process).
"""

from __future__ import annotations

import math
import signal
import time
from typing import Any

from nbclient.client import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Float

#: What the last ``preprocess`` call saw: per-cell seconds and status, why it stopped, kernel CPU and memory.
LAST_RUN: dict[str, Any] = {}

REASONS = {
    "wall": "the submission used up its wall-time budget of {wall:g} s",
    "cpu": "the kernel used up its CPU-time budget of {cpu:g} s",
    "unresponsive": "a cell ran past its time limit and did not stop when interrupted",
    "kernel died": "the kernel died (exit status {status})",
}


def _error_output(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(
        output_type="error", ename=ename, evalue=evalue, traceback=[f"\x1b[0;31m{ename}\x1b[0m: {evalue}"]
    )


def _proc_stats(pid: int) -> tuple[float | None, float | None]:
    """(CPU seconds, peak resident MiB) of a live process, from /proc; (None, None) where unavailable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        import os

        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / ticks
        with open(f"/proc/{pid}/status") as f:
            peak = next((int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:")), None)
        return cpu, peak
    except (OSError, ValueError, IndexError):
        return None, None


class CappedExecute(Execute):
    """Execute with a per-submission wall-time budget and a report of what ran (see the module docstring)."""

    wall_limit = Float(0.0, help="Seconds of wall time for the whole notebook (0: no limit).").tag(
        config=True
    )
    cpu_limit = Float(0.0, help="The kernel's CPU-time cap in seconds, for the report only.").tag(config=True)

    def _kernel_pid(self) -> int | None:
        provisioner = getattr(self.km, "provisioner", None)
        process = getattr(provisioner, "process", None)
        return getattr(process, "pid", None)

    def _exit_status(self) -> int | None:
        provisioner = getattr(self.km, "provisioner", None)
        process = getattr(provisioner, "process", None)
        if process is None:
            return None
        try:
            return process.wait(timeout=5)
        except Exception:
            return None

    def _stop_reason(self, dead: bool) -> str:
        if not dead:
            return "unresponsive"
        status = self._exit_status()
        if status in (-signal.SIGXCPU, -signal.SIGKILL) and self.cpu_limit:
            cpu = LAST_RUN.get("cpu")
            if status == -signal.SIGXCPU or (cpu is not None and cpu >= self.cpu_limit - 1):
                return "cpu"
        LAST_RUN["exit_status"] = status
        return "kernel died"

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None):
        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        LAST_RUN.clear()
        LAST_RUN.update(cells={}, stopped=None, reason=None, cpu=None, peak_memory_mb=None, exit_status=None)
        cell_timeout = self.timeout
        start = time.monotonic()
        deadline = start + self.wall_limit if self.wall_limit > 0 else math.inf
        stopped: str | None = None
        with self.setup_kernel():
            assert self.kc
            info_msg = self.wait_for_reply(self.kc.kernel_info())
            assert info_msg
            self.nb.metadata["language_info"] = info_msg["content"]["language_info"]
            pid = self._kernel_pid()
            for index, cell in enumerate(self.nb.cells):
                if cell.cell_type != "code" or not cell.source.strip():
                    continue
                if stopped is None and time.monotonic() >= deadline:
                    stopped = "wall"
                if stopped is not None:
                    cell.outputs = [_error_output("GradingStopped", self._explain(stopped, not_run=True))]
                    LAST_RUN["cells"][index] = {"seconds": None, "status": "not run"}
                    continue
                remaining = deadline - time.monotonic()
                budget_bound = remaining < (cell_timeout or math.inf)
                self.timeout = max(1, math.ceil(remaining)) if budget_bound else cell_timeout
                began = time.monotonic()
                try:
                    self.preprocess_cell(cell, resources, index)
                except DeadKernelError:
                    stopped = self._stop_reason(dead=True)
                except CellTimeoutError:
                    stopped = "wall" if budget_bound else self._stop_reason(dead=False)
                    self._kill_kernel()
                seconds = time.monotonic() - began
                timed_out = any(o.get("ename") == "CellTimeoutError" for o in cell.get("outputs", []))
                if stopped is None and timed_out and budget_bound:
                    stopped = "wall"
                if stopped is not None:
                    cell.outputs = [
                        *[o for o in cell.get("outputs", []) if o.get("output_type") != "error"],
                        _error_output("GradingStopped", self._explain(stopped)),
                    ]
                status = "error" if any(o.get("output_type") == "error" for o in cell.outputs) else "ok"
                LAST_RUN["cells"][index] = {"seconds": round(seconds, 4), "status": status}
                if pid is not None and stopped is None:
                    LAST_RUN["cpu"], LAST_RUN["peak_memory_mb"] = _proc_stats(pid)
            self.timeout = cell_timeout
        self.set_widgets_metadata()
        LAST_RUN["execute_seconds"] = time.monotonic() - start
        LAST_RUN["stopped"] = stopped
        LAST_RUN["reason"] = self._explain(stopped) if stopped else None
        return self.nb, self.resources

    def _explain(self, stopped: str, not_run: bool = False) -> str:
        text = REASONS[stopped].format(
            wall=self.wall_limit, cpu=self.cpu_limit, status=LAST_RUN.get("exit_status")
        )
        return f"not run: {text}" if not_run else f"grading stopped here: {text}"

    def _kill_kernel(self) -> None:
        pid = self._kernel_pid()
        if pid is None:
            return
        import os

        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
