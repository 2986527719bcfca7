"""nbgrader's Execute preprocessor with a wall-time budget per submission, per-cell timings, output caps, the
evidence rule, and a graceful end when the kernel dies or stops answering: the cells that ran keep their
output, every later cell gets an error saying why it did not run, and nbgrader grades the notebook on what
ran.

The grading worker (autograder/engine/worker.py) makes one ``CappedExecute`` per submission, with that
submission's evidence key, puts it in place of nbgrader's ``Execute``, and reads what it saw from its
``ExecutionReport`` afterwards.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from nbclient.client import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bytes, Enum, Float

from course_lib.protocol import ENV_EVIDENCE_KEY, missing_evidence

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


@dataclass
class CellRun:
    """How one code cell ran: seconds (None when it did not run) and ``ok``, ``error`` or ``not run``."""

    seconds: float | None
    status: str


@dataclass
class ExecutionReport:
    """What executing one notebook saw: each code cell's run by index, why execution stopped early (``wall``,
    ``cpu``, ``unresponsive``, ``kernel died``; None: it did not), the kernel's CPU seconds and peak memory,
    and flags for the instructor (missing evidence, dropped output)."""

    cells: dict[int, CellRun] = field(default_factory=dict)
    stopped: str | None = None
    reason: str | None = None
    cpu: float | None = None
    peak_memory_mb: float | None = None
    exit_status: int | None = None
    execute_seconds: float | None = None
    flags: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def evidence_problem(cell: NotebookNode, key: bytes | None) -> str | None:
    """The evidence rule: a graded test cell that ran without error scores only if each check call in its
    source left a line signed with ``key`` in its stdout. Returns the unproven calls (``check_x(...)``,
    comma-separated), or None when nothing is missing or there is nothing to prove (no key, not a graded
    test cell, or a cell that fails anyway)."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    if key is None or not meta.get("grade") or meta.get("solution"):
        return None
    outputs = cell.get("outputs", [])
    if any(o.get("output_type") == "error" for o in outputs):
        return None
    stdout = "".join(
        o.get("text", "") for o in outputs if o.get("output_type") == "stream" and o.get("name") == "stdout"
    )
    missing = ", ".join(map(str, missing_evidence(cell.get("source", ""), stdout, key)))
    return missing or None


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
    #: This submission's evidence key (None: no evidence required); given by the grading worker, never config.
    evidence_key = Bytes(None, allow_none=True)
    # Once the last cell has replied (and its outputs are in: nbclient waits for the kernel to go idle), the
    # kernel's state is thrown away: kill it rather than let it finalize. A graceful shutdown of a kernel
    # that imported PyTorch spends 1.5-2 s, most of it CPU in the interpreter's garbage collection at exit.
    shutdown_kernel = Enum(
        ["graceful", "immediate"],
        default_value="immediate",
        help="How the kernel ends after the last cell (immediate: killed with its process group).",
    ).tag(config=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: What the last notebook's execution saw, and every notebook's by name (nbgrader's unique_key).
        self.report = ExecutionReport()
        self.reports: dict[str, ExecutionReport] = {}

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
            cpu = self.report.cpu
            if status == -signal.SIGXCPU or (cpu is not None and cpu >= self.cpu_limit - 1):
                return "cpu"
        self.report.exit_status = status
        return "kernel died"

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None):
        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        report = self.report = ExecutionReport()
        self.reports[str((resources or {}).get("unique_key", ""))] = report
        self._cell_bytes = self._notebook_bytes = self._dropped = 0
        cell_timeout = self.timeout
        start = time.monotonic()
        deadline = start + self.wall_limit if self.wall_limit > 0 else math.inf
        stopped: str | None = None
        # The evidence key goes to this kernel alone (its launcher moves it into a pipe at once).
        env = {**os.environ, ENV_EVIDENCE_KEY: self.evidence_key.decode()} if self.evidence_key else None
        with self.setup_kernel(**({"env": env} if env else {})):
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
                    report.cells[index] = CellRun(None, "not run")
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
                    report.flags.append(f"cell {index}: {self._dropped} bytes of output dropped")
                    cell.outputs.append(
                        NotebookNode(
                            output_type="stream",
                            name="stdout",
                            text=f"\n[grader: {self._dropped} more bytes of output from this cell dropped]\n",
                        )
                    )
                    self._dropped = 0
                status = "error" if any(o.get("output_type") == "error" for o in cell.outputs) else "ok"
                report.cells[index] = CellRun(round(seconds, 4), status)
                if pid is not None and stopped is None:
                    report.cpu, report.peak_memory_mb = _proc_stats(pid)
            self.timeout = cell_timeout
        self.set_widgets_metadata()
        report.execute_seconds = time.monotonic() - start
        report.stopped = stopped
        report.reason = self._explain(stopped) if stopped else None
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
        """Apply the evidence rule (``evidence_problem``): a graded test cell without proof from its checks
        (turned into a no-op or its errors swallowed by code that changed how cells run, or a faked success
        line) gets an error, so nbgrader gives it 0, and the instructor a flag."""
        missing = evidence_problem(cell, self.evidence_key)
        if missing is None:
            return
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", index)
        self.report.flags.append(f"{grade_id}: test cell ran without proof from its checks ({missing})")
        cell.outputs.append(
            _error_output(
                "GradingEvidenceMissing",
                f"this test cell finished, but {missing} left no proof that it ran and "
                "passed: code in the notebook changed how cells run, or printed a fake success line",
            )
        )

    def _explain(self, stopped: str, not_run: bool = False) -> str:
        text = REASONS[stopped].format(
            wall=self.wall_limit, cpu=self.cpu_limit, status=self.report.exit_status
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
