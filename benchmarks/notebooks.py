"""`make bench`: each solutions notebook's execution time on this machine, kernel start included (median of
several runs). Targets: 01_linear under 10 s; 02 to 08 under 15 s; 09 under 45 s; 10 under 20 s."""

from __future__ import annotations

import statistics

from autograder.authoring import notebooks as nbtools
from autograder.authoring.execute import execute


def main(names: list[str], runs: int = 3, grading: bool = False) -> None:
    """Print the median and every run's seconds per notebook (``grading``: the grading-mode path)."""
    print(f"{'notebook':24} {'median s':>9}  runs (solutions, top to bottom, kernel start included)")
    for name in names:
        times = [execute(nbtools.notebook_path(name), grading=grading)[1] for _ in range(runs)]
        listed = " ".join(f"{t:.1f}" for t in times)
        print(f"{name:24} {statistics.median(times):9.1f}  {listed}", flush=True)
