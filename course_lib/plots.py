"""Plot helpers shared by the notebooks and by `make images` (which writes the figures in images/)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt

__all__ = ["new_figure", "plot_history", "plot_line_fit", "plot_with_derivatives"]


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


def plot_history(history, axes=None):
    """Loss curves (training and validation) and validation accuracy per epoch, side by side, from a
    :class:`course_lib.training.History`. Returns ``(fig, axes)``. Introduced in 09_training_loops."""
    if axes is None:
        fig, axes = new_figure(ncols=2)
    else:
        fig = axes[0].figure
    epochs = range(1, history.epochs + 1)
    ax_loss, ax_acc = axes
    ax_loss.plot(epochs, history.train_loss, marker=".", label="training")
    ax_loss.plot(epochs, history.val_loss, marker=".", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="loss per sample", title="loss")
    ax_loss.legend(frameon=False)
    ax_acc.plot(epochs, history.val_accuracy, marker=".", color="C2")
    # From a round tenth below the lowest accuracy up to 1, so that the last few points stay readable.
    low = max(0.0, math.floor(10 * min(history.val_accuracy, default=0.0)) / 10 - 0.05)
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="validation accuracy", ylim=(low, 1.01))
    return fig, axes


def plot_with_derivatives(
    x: Sequence[float],
    curves: dict[str, tuple[Sequence[float], Sequence[float]]],
    ncols: int = 4,
    width: float = 2.6,
    height: float = 2.2,
):
    """A grid of small panels, one per entry of ``curves = {name: (values, derivatives)}``: the function
    (solid) and its derivative (dashed) over ``x``, titled with the name. A panel left over in the last row
    holds the legend. Returns ``(fig, axes)``, one axis per curve. Introduced in 07_custom_layers."""
    if not curves:
        raise ValueError("plot_with_derivatives needs at least one curve, got none")
    nrows = math.ceil(len(curves) / ncols)
    fig, grid = plt.subplots(
        nrows,
        ncols,
        figsize=(width * ncols, height * nrows),
        squeeze=False,
        sharex=True,
        layout="constrained",
        dpi=100,
    )
    panels = list(grid.flat)
    axes, spare = panels[: len(curves)], panels[len(curves) :]
    for ax, (name, (values, derivatives)) in zip(axes, curves.items(), strict=True):
        ax.grid(True, alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
        ax.axhline(0.0, color="gray", linewidth=0.8)
        ax.plot(x, values, linewidth=2, label="f(x)")
        ax.plot(x, derivatives, linewidth=1.5, linestyle="--", label="f'(x)")
        ax.set_title(name, fontsize=10)
    for column in range(ncols):  # the lowest panel of each column shows the x axis (sharex hides the rest)
        lowest = [ax for ax in grid[:, column] if ax in axes]
        if lowest:
            lowest[-1].xaxis.set_tick_params(labelbottom=True)
            lowest[-1].set_xlabel("x")
    handles, labels = axes[0].get_legend_handles_labels()
    if spare:
        spare[0].legend(handles, labels, loc="center", frameon=False)
    else:
        axes[0].legend(handles, labels, frameon=False, fontsize=8)
    for ax in spare:
        ax.axis("off")
    return fig, axes
