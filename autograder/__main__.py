"""The instructor's command line: ``python -m autograder COMMAND`` (the Makefile calls these).

stamp     write the badge and setup cell template into every solutions notebook, and clean them
images    run the solutions notebooks, save their `# figure:` outputs in images/, embed the previews
release   regenerate notebooks/ from solutions/ with nbgrader generate_assignment
bench     print each solutions notebook's execution time (median of several runs; benchmarks/notebooks.py)
grade     grade every submission of an assignment in parallel with nbgrader (here, or on a Dask cluster with
          --scheduler), then write the class report
report    rewrite an assignment's class report from its grading records
export    the grades into a Canvas gradebook import (--canvas) or a plain CSV of points per exercise (--csv)
bench-grading  time plain nbgrader autograde, `grade` and `grade --scheduler` on a simulated class
          (make bench-grading; benchmarks/grading.py)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autograder import nbgrader_cli
from autograder.authoring import notebooks as nbtools
from autograder.engine.settings import default_jobs


def _names(requested: list[str]) -> list[str]:
    known = nbtools.assignments()
    unknown = [name for name in requested if name not in known]
    if unknown:
        raise SystemExit(f"unknown notebook(s) {', '.join(unknown)}; the course has {', '.join(known)}")
    return requested or known


def cmd_stamp(args: argparse.Namespace) -> None:
    nbtools.stamp_files(_names(args.notebooks))


def cmd_images(args: argparse.Namespace) -> None:
    from autograder.authoring import images

    images.draw(_names(args.notebooks))


def cmd_release(args: argparse.Namespace) -> None:
    from autograder.authoring import release

    release.release(_names(args.notebooks))


def _benchmarks():
    """The benchmarks (benchmarks/ next to autograder/ in the course checkout)."""
    sys.path.insert(0, str(nbtools.ROOT))
    try:
        import benchmarks
    except ImportError:
        raise SystemExit(
            f"no benchmarks/ folder in {nbtools.ROOT}: run this from a checkout of the course"
        ) from None
    return benchmarks


def cmd_bench(args: argparse.Namespace) -> None:
    _benchmarks()
    from benchmarks import notebooks

    notebooks.main(_names(args.notebooks), args.runs, args.grading)


def _known_assignments(course: Path, names: list[str]) -> None:
    known = nbtools.assignments(course / "solutions")
    for name in names:
        if name not in known:
            raise SystemExit(f"unknown assignment {name!r}; the course has {', '.join(known)}")


def cmd_grade(args: argparse.Namespace) -> None:
    from autograder.engine import run
    from autograder.engine.settings import Options, Settings
    from autograder.intake import collect

    _known_assignments(args.course, args.assignment)
    try:
        options = Options(
            cpu=args.cpu,
            wall=args.wall,
            memory_gib=args.memory,
            feedback=not args.no_feedback,
            sandbox=not args.no_sandbox,
        )
    except ValueError as error:
        raise SystemExit(str(error)) from None
    settings = Settings(args.course, args.assignment, options, jobs=args.jobs, scheduler=args.scheduler)
    if args.zip and len(settings.assignments) > 1:
        raise SystemExit("--zip collects one assignment's downloads: name one assignment with it")
    for assignment in settings.assignments:
        if args.collect:
            collect.from_exchange(settings.course.root, assignment)
        if args.zip:
            collect.from_zip(settings.course.root, assignment, [Path(p) for p in args.zip])
    result = run.grade(settings, force=args.force, students=args.student, progress=not args.no_progress)
    if result.records:
        print(run.summary(result))
    cmd_report(args)


def cmd_report(args: argparse.Namespace) -> None:
    from autograder.engine import run
    from autograder.engine.settings import Course

    _known_assignments(args.course, args.assignment)
    for name in dict.fromkeys(args.assignment):
        try:
            page = run.write_class_report(Course(args.course), name, args.similarity_threshold)
        except ValueError as error:
            raise SystemExit(str(error)) from None
        if page is not None:
            print(f"class report: {page}")


def cmd_export(args: argparse.Namespace) -> None:
    from autograder.engine.record import load_records
    from autograder.engine.settings import Course
    from autograder.reporting import lms

    course = Course(args.course)
    _known_assignments(course.root, [args.assignment])
    if not args.canvas and not args.csv:
        raise SystemExit("say what to write: --canvas GRADEBOOK.csv (a Canvas import) and/or --csv PATH")
    records = load_records(course.records(args.assignment))
    if not records:
        raise SystemExit(f"no grading records for {args.assignment}: grade it first (make grade)")
    grades = lms.grades_from_records(records)
    out = args.out or course.reports(args.assignment) / "canvas_import.csv"
    written = {"--csv": args.csv, "--out": out if args.canvas else None}
    for option, path in written.items():
        if args.canvas and path is not None and path.resolve() == args.canvas.resolve():
            raise SystemExit(
                f"{option} {path} is the Canvas gradebook being read: writing there would replace your "
                f"export; give {option} another path"
            )
    if args.csv:
        released = nbtools.read(course.release(args.assignment))
        exercises = [
            cell.metadata["nbgrader"]["grade_id"]
            for cell in released.cells
            if cell.metadata.get("nbgrader", {}).get("solution")
        ]
        try:
            lms.write_points_csv(args.csv, grades, exercises)
        except ValueError as error:
            raise SystemExit(str(error)) from None
        print(f"points per exercise for {len(grades)} students: {args.csv}")
    if args.canvas:
        unmatched = out.with_name(out.stem + "_unmatched.csv")
        try:
            rows, report = lms.fill_canvas(lms.read_canvas(args.canvas), args.assignment, grades, args.match)
            lms.write_rows(out, rows)
            lms.write_unmatched(unmatched, report)
        except ValueError as error:
            raise SystemExit(str(error)) from None
        column = lms.MATCH_COLUMNS[args.match]
        print(
            f"Canvas import: {out} (column {report.column!r}, {len(report.matched)} students matched by "
            f"{column}); import it in Canvas with Grades > Import"
        )
        for label, names in (
            ("graded here but not in the Canvas gradebook", report.not_in_gradebook),
            ("matching several Canvas rows (left empty)", report.ambiguous),
            ("in Canvas without a grading record (left empty)", report.not_graded),
        ):
            if names:
                more = f" ... and {len(names) - 20} more" if len(names) > 20 else ""
                shown = ", ".join(names[:20]) + more
                print(f"  {len(names)} {label}: {shown}")
        if report.not_in_gradebook or report.ambiguous or report.not_graded:
            print(f"  all of them, with the reason: {unmatched}")


def cmd_bench_grading(args: argparse.Namespace) -> None:
    _benchmarks()
    from benchmarks import grading

    names = _names(args.notebooks) if args.notebooks else ["01_linear", "02_modules"]
    if args.students < 1:
        raise SystemExit(f"--students must be at least 1, got {args.students}")
    sys.exit(grading.main(names, args.students, args.jobs, keep=args.keep))


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
    jobs = default_jobs()
    grading = commands.add_parser("grade", help="grade every submission of an assignment in parallel")
    report = commands.add_parser("report", help="rewrite an assignment's class report from its records")
    for sub in (grading, report):
        sub.add_argument("assignment", nargs="+", help="NN_topic name(s): several share one pool of workers")
        sub.add_argument(
            "--course", type=Path, default=nbtools.ROOT, help="course folder (default: this one)"
        )
        sub.add_argument(
            "--similarity-threshold",
            type=float,
            default=None,
            metavar="SHARE",
            help="list pairs of submissions whose matching code covers at least this share (0-1) of one "
            "student's solution cells (default 0.6; see the report's section on similar submissions)",
        )
    grading.add_argument(
        "--jobs",
        type=int,
        default=jobs,
        help=f"submissions graded at once on this machine (default: its cores, {jobs})",
    )
    grading.add_argument(
        "--scheduler",
        metavar="tcp://HOST:8786",
        help="grade on the workers of this Dask cluster instead of --jobs local processes "
        "(start workers with `make grade-worker SCHEDULER=...`; see the README)",
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
    bench_grading.add_argument("--jobs", type=int, default=jobs, help="jobs for the grading command")
    bench_grading.add_argument("--keep", action="store_true", help="keep the temporary course folders")
    bench_grading.set_defaults(func=cmd_bench_grading)
    report.set_defaults(func=cmd_report)
    export = commands.add_parser("export", help="grades into a Canvas gradebook import or a plain CSV")
    export.add_argument("assignment", help="NN_topic name")
    export.add_argument("--course", type=Path, default=nbtools.ROOT, help="course folder (default: this one)")
    export.add_argument(
        "--canvas",
        type=Path,
        metavar="GRADEBOOK.csv",
        help="a gradebook exported from Canvas (Grades > Export); writes a file for Grades > Import",
    )
    export.add_argument(
        "--match",
        choices=sorted(("login", "sis", "id")),
        default="login",
        help="the Canvas column that holds nbgrader's student ids: SIS Login ID (login, default), "
        "SIS User ID (sis) or Canvas's own user ID (id)",
    )
    export.add_argument(
        "--out", type=Path, help="the Canvas import file (default autograder/reports/NN/canvas_import.csv)"
    )
    export.add_argument(
        "--csv", type=Path, metavar="PATH", help="write one row per student with the points per exercise"
    )
    export.set_defaults(func=cmd_export)
    args = parser.parse_args(argv)
    if getattr(args, "jobs", 1) < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    threshold = getattr(args, "similarity_threshold", None)
    if threshold is not None and not 0 < threshold <= 1:
        parser.error(f"--similarity-threshold is a share between 0 and 1 (0.6 is 60%), got {threshold}")
    try:
        args.func(args)
    except nbgrader_cli.NbgraderFailed as error:
        raise SystemExit(str(error)) from None
    except KeyboardInterrupt as error:  # a grading run says what it kept (autograder.engine.run.Interrupted)
        print(str(error) or "interrupted", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
