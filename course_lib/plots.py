"""Plot helpers shared by the notebooks and by `make images` (which writes the figures in images/)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt

__all__ = ["new_figure", "plot_line_fit"]


def new_figure(ncols: int = 1, width: float = 4.5, height: float = 3.2):
    """A figure with ``ncols`` side-by-side axes in the course's style; returns ``(fig, axes)``."""
    fig, axes = plt.subplots(
        1, ncols, figsize=(width * ncols, height), squeeze=False, layout="constrained", dpi=100
    )
    for ax in axes.flat:
        ax.grid(True, alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    return fig, list(axes.flat)


def plot_line_fit(
    ax, x: Sequence[float], y: Sequence[float], line_x: Sequence[float], lines: dict[str, Sequence[float]]
) -> None:
    """Scatter the data ``(x, y)`` and draw each named line over ``line_x``. Introduced in 01_linear."""
    ax.scatter(x, y, s=12, alpha=0.6, label="data")
    for label, line_y in lines.items():
        ax.plot(line_x, line_y, linewidth=2, label=label)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(frameon=False)
