"""nbgrader's Execute preprocessor with a wall-time budget per submission, per-cell timings, and a graceful
end when the kernel dies or stops answering: the cells that ran keep their output, every later cell gets an
error saying why it did not run, and nbgrader grades the notebook on what ran.

The grading command (autograder/grade.py) puts ``CappedExecute`` in place of ``Execute`` and reads
``LAST_RUN`` after each autograde (the preprocessor runs in the grading worker's own process).
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from typing import Any

from nbclient.client import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Enum, Float

from course_lib.protocol import missing_evidence

#: What the last ``preprocess`` call saw: per-cell seconds and status, why it stopped, kernel CPU and memory.
LAST_RUN: dict[str, Any] = {}

#: The current submission's evidence key (set by the grading worker; None: no evidence required).
EVIDENCE_KEY: bytes | None = None

#: Output a cell may keep (bytes of message content); once the notebook has kept NOTEBOOK_OUTPUT_LIMIT, each
#: further cell keeps SMALL_OUTPUT_LIMIT, enough for the checks' messages. The rest is dropped.
CELL_OUTPUT_LIMIT = 1_000_000
NOTEBOOK_OUTPUT_LIMIT = 5_000_000
SMALL_OUTPUT_LIMIT = 20_000

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


def _children_of(pid: int) -> list[int]:
    """The children of one process, from /proc/PID/task/*/children (a thread's children are listed under
    that thread); a process that is gone has none."""
    children: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return children
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children.extend(int(child) for child in f.read().split())
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
    return children


def _scan_children() -> dict[int, list[int]]:
    """``{parent: [children]}`` of every process, from a scan of /proc (where the children files are
    missing: kernels built without CONFIG_PROC_CHILDREN)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    return children


#: Does this machine's /proc list each process's children? Reading those few files is much cheaper than a
#: scan of every process on the machine, and the stats are taken after every cell.
_CHILDREN_FILES = os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (the sandbox's supervisor, bwrap, the kernel and its children)."""
    table = None if _CHILDREN_FILES else _scan_children()
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(_children_of(current) if table is None else table.get(current, []))
    return found


def _proc_stats(pid: int) -> tuple[float | None, float | None]:
    """(CPU seconds, peak resident MiB of the largest process) of a process tree, from /proc; (None, None)
    where unavailable."""
    ticks = os.sysconf("SC_CLK_TCK")
    cpu, peak, seen = 0.0, 0.0, False
    for member in _descendants(pid):
        try:
            with open(f"/proc/{member}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += sum(int(value) for value in fields[11:15]) / ticks  # own and waited-for children
            with open(f"/proc/{member}/status") as f:
                hwm = next((int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:")), 0.0)
            peak = max(peak, hwm)
            seen = True
        except (OSError, ValueError, IndexError):
            continue
    return (round(cpu, 2), round(peak, 1)) if seen else (None, None)


class CappedExecute(Execute):
    """Execute with a per-submission wall-time budget and a report of what ran (see the module docstring)."""

    wall_limit = Float(0.0, help="Seconds of wall time for the whole notebook (0: no limit).").tag(
        config=True
    )
    cpu_limit = Float(0.0, help="The kernel's CPU-time cap in seconds, for the report only.").tag(config=True)
    # Once the last cell has replied (and its outputs are in: nbclient waits for the kernel to go idle), the
    # kernel's state is thrown away: kill it rather than let it finalize. A graceful shutdown of a kernel
    # that imported PyTorch spends 1.5-2 s, most of it CPU in the interpreter's garbage collection at exit.
    shutdown_kernel = Enum(
        ["graceful", "immediate"],
        default_value="immediate",
        help="How the kernel ends after the last cell (immediate: killed with its process group).",
    ).tag(config=True)

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
        LAST_RUN.update(
            cells={}, stopped=None, reason=None, cpu=None, peak_memory_mb=None, exit_status=None, flags=[]
        )
        self._cell_bytes = self._notebook_bytes = self._dropped = 0
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
                self._cell_bytes = 0
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
                if stopped is None:
                    self._verify_evidence(cell, index)
                if self._dropped:
                    LAST_RUN["flags"].append(f"cell {index}: {self._dropped} bytes of output dropped")
                    cell.outputs.append(
                        NotebookNode(
                            output_type="stream",
                            name="stdout",
                            text=f"\n[grader: {self._dropped} more bytes of output from this cell dropped]\n",
                        )
                    )
                    self._dropped = 0
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

    def output(self, outs: list, msg: dict, display_id: str | None, cell_index: int) -> NotebookNode | None:
        """Keep a cell's output up to its limit and drop the rest (see CELL_OUTPUT_LIMIT): a submission
        printing megabytes cannot bloat the grader or the autograded notebook."""
        size = len(json.dumps(msg.get("content", {}), default=str))
        limit = CELL_OUTPUT_LIMIT if self._notebook_bytes <= NOTEBOOK_OUTPUT_LIMIT else SMALL_OUTPUT_LIMIT
        if self._cell_bytes + size > limit:
            self._dropped += size
            return None
        self._cell_bytes += size
        self._notebook_bytes += size
        return super().output(outs, msg, display_id, cell_index)

    def _verify_evidence(self, cell: NotebookNode, index: int) -> None:
        """A graded test cell scores only with proof from the checks themselves: one signed evidence line
        per check call in its source. Without it (a test cell turned into a no-op or its errors swallowed by
        code that changed how cells run, or a faked success line) the cell gets an error: nbgrader gives 0."""
        meta = cell.metadata.get("nbgrader", {})
        if EVIDENCE_KEY is None or not meta.get("grade") or meta.get("solution"):
            return
        if any(o.get("output_type") == "error" for o in cell.outputs):
            return  # it fails anyway
        stdout = "".join(
            o.get("text", "")
            for o in cell.outputs
            if o.get("output_type") == "stream" and o.get("name") == "stdout"
        )
        missing = ", ".join(map(str, missing_evidence(cell.source, stdout, EVIDENCE_KEY)))
        if missing:
            grade_id = meta.get("grade_id", index)
            LAST_RUN["flags"].append(
                f"{grade_id}: test cell ran without proof from its checks ({missing})"
            )
            cell.outputs.append(
                _error_output(
                    "GradingEvidenceMissing",
                    f"this test cell finished, but {missing} left no proof that it ran and "
                    "passed: code in the notebook changed how cells run, or printed a fake success line",
                )
            )

    def _explain(self, stopped: str, not_run: bool = False) -> str:
        text = REASONS[stopped].format(
            wall=self.wall_limit, cpu=self.cpu_limit, status=LAST_RUN.get("exit_status")
        )
        return f"not run: {text}" if not_run else f"grading stopped here: {text}"

    def _kill_kernel(self) -> None:
        pid = self._kernel_pid()
        if pid is None:
            return
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
