"""The instructor's command line: ``python -m autograder COMMAND`` (the Makefile calls these).

stamp     write the badge and setup cell template into every solutions notebook, and clean them
images    run the solutions notebooks, save their `# figure:` outputs in images/, embed the previews
release   regenerate notebooks/ from solutions/ with nbgrader generate_assignment
bench     print each solutions notebook's execution time (median of several runs)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from autograder import notebooks as nbtools
from autograder.execute import execute

AUTOGRADER = Path(__file__).resolve().parent


def tool_env() -> dict[str, str]:
    """The environment for nbgrader and jupyter subprocesses: this Python's bin folder first on PATH
    (nbgrader runs `alembic` from there to set up its gradebook)."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


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
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
