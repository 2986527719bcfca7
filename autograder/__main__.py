"""The instructor's command line: ``python -m autograder COMMAND`` (the Makefile calls these).

stamp     write the badge and setup cell template into every solutions notebook, and clean them
images    run the solutions notebooks, save their `# figure:` outputs in images/, embed the previews
release   regenerate notebooks/ from solutions/ with nbgrader generate_assignment
bench     print each solutions notebook's execution time (median of several runs)
grade     grade every submission of an assignment in parallel with nbgrader, then write the class report
report    rewrite an assignment's class report from its grading records
bench-grading  time plain nbgrader autograde against `grade` on a simulated class (make bench-grading)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from autograder import notebooks as nbtools
from autograder.execute import execute, tool_env

AUTOGRADER = Path(__file__).resolve().parent


def _names(requested: list[str]) -> list[str]:
    known = nbtools.assignments()
    unknown = [name for name in requested if name not in known]
    if unknown:
        raise SystemExit(f"unknown notebook(s) {', '.join(unknown)}; the course has {', '.join(known)}")
    return requested or known


def cmd_stamp(args: argparse.Namespace) -> None:
    for name in _names(args.notebooks):
        path = nbtools.notebook_path(name)
        nb = nbtools.read(path)
        nbtools.stamp(nb, name)
        nbtools.attach_previews(nb, missing_ok=True)
        nbtools.clean(nb)
        nbtools.write(nb, path)
        print(f"stamped {path.relative_to(nbtools.ROOT)}")


def cmd_images(args: argparse.Namespace) -> None:
    nbtools.IMAGES.mkdir(exist_ok=True)
    for name in _names(args.notebooks):
        path = nbtools.notebook_path(name)
        executed, _ = execute(path)
        for figure, index in nbtools.figure_cells(executed).items():
            png = nbtools.png_output(executed.cells[index])
            if png is None:
                raise SystemExit(f"{name}: the cell marked `# figure: {figure}` displayed no PNG")
            (nbtools.IMAGES / f"{figure}.png").write_bytes(png)
            print(f"wrote images/{figure}.png")
        nb = nbtools.read(path)
        nbtools.attach_previews(nb)
        nbtools.clean(nb)
        nbtools.write(nb, path)


def cmd_release(args: argparse.Namespace) -> None:
    for name in _names(args.notebooks):
        result = subprocess.run(
            [sys.executable, "-m", "nbgrader", "generate_assignment", name, "--force", "--log-level=WARN"],
            cwd=AUTOGRADER,
            env=tool_env(),
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit(f"nbgrader generate_assignment {name} failed (exit {result.returncode})")
        print(f"released notebooks/{name}/{name}.ipynb")


def cmd_bench(args: argparse.Namespace) -> None:
    print(f"{'notebook':24} {'median s':>9}  runs (solutions, top to bottom, kernel start included)")
    for name in _names(args.notebooks):
        times = [execute(nbtools.notebook_path(name), grading=args.grading)[1] for _ in range(args.runs)]
        listed = " ".join(f"{t:.1f}" for t in times)
        print(f"{name:24} {statistics.median(times):9.1f}  {listed}", flush=True)


def _known_assignments(course: Path, names: list[str]) -> None:
    known = nbtools.assignments(course / "solutions")
    for name in names:
        if name not in known:
            raise SystemExit(f"unknown assignment {name!r}; the course has {', '.join(known)}")


def cmd_grade(args: argparse.Namespace) -> None:
    from autograder import grade

    _known_assignments(args.course, args.assignment)
    every = [
        grade.Settings(
            course=args.course,
            assignment=name,
            jobs=args.jobs,
            cpu=args.cpu,
            wall=args.wall,
            memory_gib=args.memory,
            feedback=not args.no_feedback,
            sandbox=not args.no_sandbox,
        )
        for name in dict.fromkeys(args.assignment)
    ]
    if args.zip and len(every) > 1:
        raise SystemExit("--zip collects one assignment's downloads: name one assignment with it")
    for settings in every:
        if args.collect:
            grade.collect_from_exchange(settings)
        if args.zip:
            grade.collect_from_zip(settings, [Path(p) for p in args.zip])
    started = time.perf_counter()
    records = grade.grade(every, force=args.force, students=args.student, progress=not args.no_progress)
    if records:
        print(grade.summary(records, time.perf_counter() - started))
    cmd_report(args)


def cmd_report(args: argparse.Namespace) -> None:
    from autograder import grade

    _known_assignments(args.course, args.assignment)
    for name in dict.fromkeys(args.assignment):
        page = grade.write_class_report(grade.Settings(course=args.course, assignment=name, jobs=1))
        if page is not None:
            print(f"class report: {page}")


def cmd_bench_grading(args: argparse.Namespace) -> None:
    from autograder import bench_grading

    names = _names(args.notebooks) if args.notebooks else ["01_linear", "02_modules"]
    if args.students < 1:
        raise SystemExit(f"--students must be at least 1, got {args.students}")
    sys.exit(bench_grading.main(names, args.students, args.jobs, keep=args.keep))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m autograder", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, func in (("stamp", cmd_stamp), ("images", cmd_images), ("release", cmd_release)):
        sub = commands.add_parser(name)
        sub.add_argument("notebooks", nargs="*", help="NN_topic names (default: all)")
        sub.set_defaults(func=func)
    bench = commands.add_parser("bench")
    bench.add_argument("notebooks", nargs="*", help="NN_topic names (default: all)")
    bench.add_argument("--runs", type=int, default=3, help="runs per notebook (default 3)")
    bench.add_argument("--grading", action="store_true", help="time the grading-mode path")
    bench.set_defaults(func=cmd_bench)
    default_jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    grading = commands.add_parser("grade", help="grade every submission of an assignment in parallel")
    report = commands.add_parser("report", help="rewrite an assignment's class report from its records")
    for sub in (grading, report):
        sub.add_argument("assignment", nargs="+", help="NN_topic name(s): several share one pool of workers")
        sub.add_argument(
            "--course", type=Path, default=nbtools.ROOT, help="course folder (default: this one)"
        )
    grading.add_argument(
        "--jobs",
        type=int,
        default=default_jobs,
        help=f"submissions graded at once (default: the machine's cores, {default_jobs})",
    )
    grading.add_argument("--force", action="store_true", help="regrade submissions already graded")
    grading.add_argument("--student", action="append", help="grade only this student (repeatable)")
    grading.add_argument("--collect", action="store_true", help="first collect submissions from the exchange")
    grading.add_argument(
        "--zip",
        nargs="+",
        metavar="PATH",
        help="first collect submissions from LMS downloads (zip files or notebooks)",
    )
    grading.add_argument("--cpu", type=float, default=300, help="CPU seconds per submission (default 300)")
    grading.add_argument("--wall", type=float, default=600, help="wall seconds per submission (default 600)")
    grading.add_argument("--memory", type=float, default=4, help="GiB of memory per submission (default 4)")
    grading.add_argument("--no-feedback", action="store_true", help="skip the students' feedback HTML")
    grading.add_argument("--no-progress", action="store_true", help="no progress bar")
    grading.add_argument(
        "--no-sandbox", action="store_true", help="run student code without the sandbox (unsafe; see README)"
    )
    grading.set_defaults(func=cmd_grade)
    bench_grading = commands.add_parser(
        "bench-grading", help="nbgrader autograde vs grade on a simulated class"
    )
    bench_grading.add_argument("notebooks", nargs="*", help="NN_topic names (default: 01_linear 02_modules)")
    bench_grading.add_argument("--students", type=int, default=24, help="students in the class (default 24)")
    bench_grading.add_argument("--jobs", type=int, default=default_jobs, help="jobs for the grading command")
    bench_grading.add_argument("--keep", action="store_true", help="keep the temporary course folders")
    bench_grading.set_defaults(func=cmd_bench_grading)
    report.set_defaults(func=cmd_report)
    args = parser.parse_args(argv)
    if getattr(args, "jobs", 1) < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    args.func(args)


if __name__ == "__main__":
    main()
