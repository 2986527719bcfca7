"""`make bench`: each solutions notebook's execution time on this machine, kernel start included (median of
several runs), against its target, and the whole course's. Targets: 01_linear under 10 s; 02 to 08 under
15 s; 09 under 45 s; 10 under 20 s; the whole course under 3 minutes."""

from __future__ import annotations

import statistics

from autograder.authoring import notebooks as nbtools
from autograder.authoring.execute import execute

COURSE_TARGET = 180.0


def target(name: str) -> float:
    """The notebook's time target in seconds."""
    number = int(name[:2])
    return 10.0 if number == 1 else 45.0 if number == 9 else 20.0 if number == 10 else 15.0


def main(names: list[str], runs: int = 3, grading: bool = False) -> None:
    """Print the median and every run's seconds per notebook (``grading``: the grading-mode path)."""
    print(f"{'notebook':24} {'median s':>9} {'target':>7}  runs (top to bottom, kernel start included)")
    total, met = 0.0, True
    for name in names:
        times = [execute(nbtools.notebook_path(name), grading=grading)[1] for _ in range(runs)]
        median = statistics.median(times)
        total += median
        met &= median < target(name)
        listed = " ".join(f"{t:.1f}" for t in times)
        mark = "" if median < target(name) else "  OVER TARGET"
        print(f"{name:24} {median:9.1f} {target(name):7.0f}  {listed}{mark}", flush=True)
    print(f"{'all of them':24} {total:9.1f} {COURSE_TARGET:7.0f}  (sum of the medians)")
    met &= total < COURSE_TARGET or len(names) < len(nbtools.assignments())
    print("all targets met" if met else "TARGETS NOT MET")
