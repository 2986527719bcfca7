"""Do course_lib's plot helpers draw what they promise?"""

import matplotlib
import numpy as np
import pytest

from course_lib.plots import plot_with_derivatives

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend


def test_plot_with_derivatives_draws_each_function_and_its_derivative():
    """Does each curve get its own titled panel holding the function and its derivative, with the spare
    panel of the grid turned into the legend?"""
    x = np.linspace(-2.0, 2.0, 9)
    curves = {"square": (x**2, 2 * x), "cube": (x**3, 3 * x**2), "identity": (x, np.ones_like(x))}
    fig, axes = plot_with_derivatives(x, curves, ncols=2)
    try:
        assert len(axes) == 3 and len(fig.axes) == 4
        assert [ax.get_title() for ax in axes] == list(curves)
        for ax, (values, derivatives) in zip(axes, curves.values(), strict=True):
            drawn = {line.get_label(): line for line in ax.get_lines()}
            np.testing.assert_allclose(drawn["f(x)"].get_xdata(), x)
            np.testing.assert_allclose(drawn["f(x)"].get_ydata(), values)
            np.testing.assert_allclose(drawn["f'(x)"].get_ydata(), derivatives)
            assert drawn["f'(x)"].get_linestyle() == "--"
        assert [ax.get_xlabel() for ax in axes] == ["", "x", "x"]  # the lowest panel of each column
        fig.canvas.draw()
        shown = [label.get_text() for label in axes[1].get_xticklabels() if label.get_visible()]
        assert shown and all(shown)  # sharex would have hidden them above the spare panel
        spare = fig.axes[3]
        assert not spare.axison
        assert [text.get_text() for text in spare.get_legend().get_texts()] == ["f(x)", "f'(x)"]
    finally:
        plt.close(fig)


def test_plot_with_derivatives_full_grid_and_tensors():
    """With no spare panel, is the legend on the first panel? Do CPU tensors plot like arrays?"""
    torch = pytest.importorskip("torch")
    x = torch.linspace(-1.0, 1.0, 5)
    fig, axes = plot_with_derivatives(x, {"a": (x, torch.ones(5)), "b": (2 * x, 2 * torch.ones(5))}, ncols=2)
    try:
        assert len(fig.axes) == 2 and axes[0].get_legend() is not None
        drawn = {line.get_label(): line for line in axes[1].get_lines()}
        np.testing.assert_allclose(drawn["f'(x)"].get_ydata(), np.full(5, 2.0))
    finally:
        plt.close(fig)


def test_plot_with_derivatives_refuses_no_curves():
    """Does an empty dict give a ValueError that says so, not an IndexError from inside matplotlib?"""
    with pytest.raises(ValueError, match="at least one curve"):
        plot_with_derivatives([0.0, 1.0], {})
