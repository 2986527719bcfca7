"""`make bench-grading`: one simulated class graded four ways in the same run, with the figures printed:
plain serial `nbgrader autograde`, `python -m autograder grade --jobs N` (the local pool), the same command
with `--scheduler` on a local Dask cluster of N one-thread workers, and plain execution of the same notebooks.

The class: every student submits every notebook; the kinds cycle through correct, partly wrong (one of the
curriculum's mistakes, benchmarks/answers.py), half done (some exercises untouched), untouched, and broken
(a syntax error, an exception at the top of the notebook). Three identical course copies are graded, one by
each grader; then every notebook that nbgrader executed (autograded, hidden tests included) is executed
again plainly with nbclient, as many at a time as the grading command's jobs, to measure the overhead.

Figures printed, with their targets: the local pool against serial nbgrader (at least 1.8x faster); the Dask
run against the local pool (at most 15% slower: the engine's own overhead; the cluster is started before,
as an instructor's cluster is); every cell's score the same for all three (all); per notebook the mean
grading time per submission against plain execution (at most 1.3x). Then the measured per-task scheduling
overhead of Dask, the client's merge time per submission, and from those a scaling estimate for 3,000 and
30,000 submissions on 16, 64 and 256 worker cores.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder import nbgrader_cli
from autograder.authoring import notebooks as nbtools
from autograder.engine.record import load_records
from autograder.nbgrader_cli import tool_env
from benchmarks.answers import wrong_answers
from benchmarks.cluster import LocalCluster
from benchmarks.simulate import make_course, solution_sources, student_notebook, submit

KINDS = ("correct", "partly wrong", "half done", "untouched", "broken")


def build_class(course: Path, notebooks: list[str], students: int) -> dict[tuple[str, str], str]:
    """Submit every notebook for every student; return ``{(student, notebook): kind}``."""
    kinds = {}
    for name in notebooks:
        exercises = list(solution_sources(name))
        wrong = wrong_answers(name, exercises)
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


def _run(command: list[str], cwd: Path) -> tuple[float, str]:
    """(seconds, standard output) of a command that must succeed."""
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=tool_env(), capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:5])} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return seconds, result.stdout


def _grade(course: Path, notebooks: list[str], *args: str) -> tuple[float, float, float]:
    """(seconds, seconds the client spent merging, seconds of the similarity pass) of
    `python -m autograder grade` on a course."""
    command = [sys.executable, "-m", "autograder", "grade", *notebooks, "--no-progress"]
    command += ["--course", str(course)]
    seconds, out = _run([*command, *args], nbtools.ROOT)
    merging = re.search(r"merging them into the course: ([\d.]+) s", out)
    similarity = sum(float(m) for m in re.findall(r"similar submissions: .* compared in ([\d.]+) s\)", out))
    return seconds, float(merging.group(1)) if merging else 0.0, similarity


def _task_overhead(address: str, tasks: int = 400) -> float:
    """Seconds per task that Dask adds: no-op tasks pushed through the cluster, from submit to result."""
    import operator

    from distributed import Client

    with Client(address, set_as_default=False) as client:
        client.gather(client.map(operator.add, range(20), range(20), pure=False))  # connections warm
        started = time.perf_counter()
        client.gather(client.map(operator.add, range(tasks), range(tasks), pure=False))
        return (time.perf_counter() - started) / tasks


def _merge_cost(course: Path, notebooks: list[str], folder: Path) -> float:
    """Seconds the client needs to merge one submission on a core of its own (a cluster's workers run
    elsewhere): the graded class merged again, as new submissions, into a copy of the course."""
    from autograder.engine import results
    from autograder.engine.folder import Folder
    from autograder.engine.merge import Merger, snapshot
    from autograder.engine.record import load_records
    from autograder.engine.settings import Course
    from autograder.engine.task import Outcome

    source, copy = Course(course), Course(folder / "course")
    copy.autograder.mkdir(parents=True)
    outcomes = []
    for name in notebooks:
        for record in load_records(source.records(name)):
            if not record.graded:
                outcomes.append(Outcome(record))
                continue
            student = record.student
            grades = results.grades_of(source.gradebook, name, student, "torch-course")
            autograded = Folder.read(source.folder("autograded") / student / name)
            feedback = Folder.read(source.folder("feedback") / student / name)
            outcomes.append(Outcome(record, grades, autograded, feedback))
    snapshot(source.gradebook, copy.gradebook)
    merger = Merger(copy, "torch-course")
    started = time.perf_counter()
    for outcome in outcomes:
        merger.merge(outcome)
    seconds = (time.perf_counter() - started) / len(outcomes)
    merger.close()
    return seconds


def _estimate(per_submission: float, per_task: float, merge: float) -> list[str]:
    """Lines of the scaling estimate: N submissions on C worker cores take about
    max(N x per-submission / C, N x (merge + per-task)): the workers, or the client's serial work."""
    lines = [
        f"scaling estimate: {per_submission:.2f} s per submission on one core; the client's "
        f"{merge * 1000:.0f} ms merge + {per_task * 1000:.1f} ms scheduling per submission",
        f"{'submissions':>12} {'cores':>6} {'workers bound':>14} {'client bound':>13} {'estimate':>10}",
    ]
    for count in (3000, 30000):
        for cores in (16, 64, 256):
            workers = count * per_submission / cores
            client = count * (merge + per_task)
            lines.append(
                f"{count:>12} {cores:>6} {workers / 60:>11.1f} min {client / 60:>10.1f} min "
                f"{max(workers, client) / 60:>7.1f} min"
            )
    return lines


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


def _breakdown(records: list) -> str:
    """Where a graded submission's seconds go on average (from the records' timings): the kernel running
    the notebook, nbgrader's autograde around it, the feedback, the rest (copy, repair, scan, results)."""

    def mean(key: str) -> float:
        values = [getattr(r.timings, key) for r in records if getattr(r.timings, key) is not None]
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
        for label in ("nbgrader", "parallel", "dask"):
            course = make_course(tmp / label, notebooks)
            for name in notebooks:
                nbgrader_cli.run(course, "generate_assignment", name, "--force")
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
            started = time.perf_counter()
            nbgrader_cli.run(courses["nbgrader"], "autograde", name, "--force")
            serial += time.perf_counter() - started
        print(f"nbgrader autograde (serial):               {serial:7.1f} s", flush=True)
        parallel, _, similar = _grade(courses["parallel"], notebooks, "--jobs", str(jobs))
        print(f"autograder grade --jobs {jobs} (local pool):    {parallel:7.1f} s  (one pool)", flush=True)
        similar_share = similar / max(parallel - similar, 1e-9)
        print(
            f"similarity pass (in the run above):        {similar:7.2f} s  = {similar_share:.1%} of the "
            "grading time (target < 5%)",
            flush=True,
        )

        started = time.perf_counter()
        with LocalCluster(courses["dask"], tmp / "cluster", workers=jobs) as cluster:
            ready = time.perf_counter() - started
            dask, merge, _ = _grade(courses["dask"], notebooks, "--scheduler", cluster.address)
            per_task = _task_overhead(cluster.address)
        print(
            f"autograder grade --scheduler ({jobs} Dask workers): {dask:7.1f} s  (cluster started before, in "
            f"{ready:.1f} s)",
            flush=True,
        )
        speedup, dask_ratio = serial / parallel, dask / parallel
        a, b, c = (scores(courses[label], notebooks) for label in ("nbgrader", "parallel", "dask"))
        differ = sorted(k for k in set(a) | set(b) | set(c) if not a.get(k) == b.get(k) == c.get(k))
        print(f"local pool vs serial nbgrader:             {speedup:7.2f}x  (target >= 1.8x)")
        print(f"Dask vs local pool:                        {dask_ratio:7.2f}x  (target <= 1.15x)")
        print(
            f"scores identical:                          {'yes' if not differ else 'NO'}  "
            f"({len(a)} graded cells compared in three gradebooks, {len(differ)} differ)"
        )
        for key in differ[:10]:
            print(f"  {key}: nbgrader {a.get(key)}, local pool {b.get(key)}, Dask {c.get(key)}")

        # Overhead: the same autograded notebooks (hidden tests included), plainly executed, jobs at a time.
        overhead_ok = True
        context = multiprocessing.get_context("spawn")
        print(f"{'notebook':22} {'grading s/sub':>14} {'plain exec s':>13} {'ratio':>6}  (target <= 1.3x)")
        per_submission = []
        for name in notebooks:
            records = load_records(courses["parallel"] / "autograder" / "grading" / name)
            graded = [r for r in records if r.graded]
            paths = [
                str(courses["parallel"] / "autograder" / "autograded" / r.student / name / f"{name}.ipynb")
                for r in graded
            ]
            with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
                plain = list(pool.map(_plain_execute, paths))
            totals = [r.timings.total for r in graded if r.timings.total is not None]
            per_submission += totals
            grading = statistics.mean(totals)
            ratio = grading / statistics.mean(plain)
            overhead_ok &= ratio <= 1.3
            print(f"{name:22} {grading:14.2f} {statistics.mean(plain):13.2f} {ratio:6.2f}")
            print(f"{'':22} {_breakdown(graded)}")
        print(f"Dask per-task scheduling overhead:         {per_task * 1000:7.2f} ms  (no-op tasks)")
        alone = _merge_cost(courses["dask"], notebooks, tmp / "merge")
        print(
            f"client merge per submission:               {alone * 1000:7.1f} ms on a core of its own "
            f"({merge / len(kinds) * 1000:.1f} ms in the Dask run, sharing the cores with the workers)"
        )
        for line in _estimate(statistics.mean(per_submission), per_task, alone):
            print(line)
        ok = speedup >= 1.8 and dask_ratio <= 1.15 and not differ and overhead_ok and similar_share < 0.05
        print("all targets met" if ok else "TARGETS NOT MET")
        return 0 if ok else 1
    finally:
        if keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
