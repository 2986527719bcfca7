"""`make bench-grading`: plain serial `nbgrader autograde` against `python -m autograder grade` on one
simulated class, in the same run, and the grading overhead against plain execution of the same notebooks.

The class: every student submits every notebook; the kinds cycle through correct, partly wrong (the
curriculum's mistakes from tests/catalogue), half done (some exercises untouched), untouched, and broken
(a syntax error, an exception at the top of the notebook). Two identical course copies are graded, one by
each command; then every notebook that nbgrader executed (autograded, hidden tests included) is executed
again plainly with nbclient, as many at a time as the grading command's jobs, to measure the overhead.

Figures printed: both wall times and their ratio (target: at least 1.8x), whether every cell's score agrees
(target: all), and per notebook the mean grading time per submission against the mean plain execution time
(target: at most 1.3x).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder import notebooks as nbtools
from autograder.execute import tool_env
from autograder.simulate import make_course, solution_sources, student_notebook, submit

KINDS = ("correct", "partly wrong", "half done", "untouched", "broken")


def _mistakes(name: str) -> list[dict[str, str]]:
    """Partly wrong answers: each replaces one exercise with one of the catalogue's known mistakes."""
    sys.path.insert(0, str(nbtools.ROOT))
    from tests import catalogue

    return [{m.exercise: m.source} for m in catalogue.load(name).MISTAKES]


def build_class(course: Path, notebooks: list[str], students: int) -> dict[tuple[str, str], str]:
    """Submit every notebook for every student; return ``{(student, notebook): kind}``."""
    kinds = {}
    for name in notebooks:
        wrong = _mistakes(name)
        exercises = list(solution_sources(name))
        for i in range(students):
            student = f"student{i + 1:02d}"
            kind = KINDS[i % len(KINDS)]
            if kind == "correct":
                nb = nbtools.read(nbtools.notebook_path(name))
            elif kind == "partly wrong":
                nb = student_notebook(name, wrong[(i * 7) % len(wrong)])
            elif kind == "half done":
                stub = "# YOUR CODE HERE\nraise NotImplementedError()"
                nb = student_notebook(name, {ex: stub for ex in exercises[1:]})
            elif kind == "untouched":
                nb = nbtools.read(nbtools.notebook_path(name, nbtools.RELEASE))
            else:
                nb = student_notebook(name, {exercises[0]: "def broken(:\n    pass"})
                first_code = next(c for c in nb.cells if c.cell_type == "code")
                first_code.source = "raise RuntimeError('a broken import cell')\n" + first_code.source
            submit(course, student, name, nb)
            kinds[(student, name)] = kind
    return kinds


def scores(course: Path, notebooks: list[str]) -> dict[tuple[str, str, str], tuple[float | None, bool]]:
    """``{(student, notebook, grade cell): (auto score, needs manual grade)}`` from a course's gradebook."""
    from nbgrader.api import Gradebook

    found = {}
    with Gradebook(f"sqlite:///{course / 'autograder' / 'gradebook.db'}", "torch-course") as gb:
        for name in notebooks:
            for sub in gb.find_assignment(name).submissions:
                for nb in sub.notebooks:
                    for g in nb.grades:
                        found[(sub.student.id, name, g.name)] = (g.auto_score, g.needs_manual_grade)
    return found


def _run(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=tool_env(), capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:5])} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return seconds


def _plain_execute(path: str) -> float:
    """Execute one notebook top to bottom as nbgrader would (errors allowed, one math thread), in seconds."""
    import nbformat
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    env = dict(os.environ, NBGRADER_EXECUTION="autograde", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    # Unix sockets, as the grading command's kernels use: parallel clients never race for TCP ports.
    sockets = tempfile.mkdtemp(prefix="kernels-")
    km = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(sockets, "kernel"))
    client = NotebookClient(
        nb,
        km=km,
        timeout=60,
        kernel_name="python3",
        allow_errors=True,
        # Ended as the grading command ends its kernels (killed once the last cell is done), so that the
        # comparison is of running the notebook, not of two ways to stop a kernel.
        shutdown_kernel="immediate",
        resources={"metadata": {"path": str(Path(path).parent)}},
    )
    started = time.perf_counter()
    try:
        client.execute(env=env)
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
    return time.perf_counter() - started


def _breakdown(records: list[dict]) -> str:
    """Where a graded submission's seconds go on average (from the records' timings): the kernel running
    the notebook, nbgrader's autograde around it, the feedback, the rest (copy, repair, scan, results)."""

    def mean(key: str) -> float:
        values = [r["timings"][key] for r in records if r["timings"].get(key) is not None]
        return statistics.mean(values) if values else 0.0

    total, autograde, execute, feedback = (mean(k) for k in ("total", "autograde", "execute", "feedback"))
    return (
        f"per submission: execute {execute:.2f} s, rest of autograde {autograde - execute:.2f} s, "
        f"feedback {feedback:.2f} s, other {total - autograde - feedback:.2f} s; "
        f"kernel CPU {mean('cpu'):.2f} s"
    )


def main(notebooks: list[str], students: int, jobs: int, keep: bool = False) -> int:
    """Run the benchmark and print its figures; return 0 when every target is met, 1 otherwise."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-grading-"))
    try:
        courses = {}
        for label in ("nbgrader", "parallel"):
            course = make_course(tmp / label, notebooks)
            for name in notebooks:
                _run(
                    [sys.executable, "-m", "nbgrader", "generate_assignment", name, "--force"],
                    course / "autograder",
                )
            kinds = build_class(course, notebooks, students)
            courses[label] = course
        mix = {kind: sum(1 for k in kinds.values() if k == kind) for kind in KINDS}
        print(
            f"class: {students} students x {len(notebooks)} notebooks ({', '.join(notebooks)}) = "
            f"{len(kinds)} submissions; " + ", ".join(f"{n} {k}" for k, n in mix.items()),
            flush=True,
        )

        serial = 0.0
        for name in notebooks:
            serial += _run(
                [sys.executable, "-m", "nbgrader", "autograde", name, "--force"],
                courses["nbgrader"] / "autograder",
            )
        print(f"nbgrader autograde (serial):            {serial:7.1f} s", flush=True)
        parallel = _run(
            [
                sys.executable,
                "-m",
                "autograder",
                "grade",
                *notebooks,
                "--jobs",
                str(jobs),
                "--no-progress",
                "--course",
                str(courses["parallel"]),
            ],
            nbtools.ROOT,
        )
        print(
            f"python -m autograder grade --jobs {jobs}:    {parallel:7.1f} s  (both notebooks, one pool)",
            flush=True,
        )
        speedup = serial / parallel

        a, b = scores(courses["nbgrader"], notebooks), scores(courses["parallel"], notebooks)
        differ = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        print(f"speed-up:                               {speedup:7.2f}x  (target >= 1.8x)")
        print(
            f"scores identical:                       {'yes' if not differ else 'NO'}  "
            f"({len(a)} graded cells compared, {len(differ)} differ)"
        )
        for key in differ[:10]:
            print(f"  {key}: nbgrader {a.get(key)}, parallel {b.get(key)}")

        # Overhead: the same autograded notebooks (hidden tests included), plainly executed, jobs at a time.
        overhead_ok = True
        context = multiprocessing.get_context("spawn")
        print(f"{'notebook':22} {'grading s/sub':>14} {'plain exec s':>13} {'ratio':>6}  (target <= 1.3x)")
        for name in notebooks:
            records = [
                json.loads(p.read_text())
                for p in (courses["parallel"] / "autograder" / "grading" / name).glob("*.json")
            ]
            graded = [r for r in records if r["status"] == "graded"]
            paths = [
                str(courses["parallel"] / "autograder" / "autograded" / r["student"] / name / f"{name}.ipynb")
                for r in graded
            ]
            with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
                plain = list(pool.map(_plain_execute, paths))
            grading = statistics.mean(r["timings"]["total"] for r in graded)
            ratio = grading / statistics.mean(plain)
            overhead_ok &= ratio <= 1.3
            print(f"{name:22} {grading:14.2f} {statistics.mean(plain):13.2f} {ratio:6.2f}")
            print(f"{'':22} {_breakdown(graded)}")
        ok = speedup >= 1.8 and not differ and overhead_ok
        print("all targets met" if ok else "TARGETS NOT MET")
        return 0 if ok else 1
    finally:
        if keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
