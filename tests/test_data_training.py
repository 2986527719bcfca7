"""Do the offline datasets, `fit` and its history plot work as notebook 09 needs?"""

import matplotlib
import pytest
import torch
from torch import nn

from course_lib import data, training
from course_lib.plots import plot_history
from tests.catalogue.training_loops import HELPERS

matplotlib.use("Agg")


def _epoch_functions():
    """train_one_epoch and evaluate as a student writes them in 09 (the catalogue's, run here)."""
    namespace: dict = {}
    exec(HELPERS, namespace)
    return namespace["train_one_epoch"], namespace["evaluate"]


_train_one_epoch, _evaluate = _epoch_functions()


def test_digits_are_bundled_split_and_scaled():
    """Are the digits loaded offline, split without overlap, scaled to [0, 1] with labels 0-9?"""
    train, val = data.digits(val_fraction=0.2, seed=0)
    assert len(train) + len(val) == 1797 and len(val) == 359
    x, y = train.tensors
    assert x.shape[1] == 64 and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert set(y.tolist()) == set(range(10))
    again, _ = data.digits(val_fraction=0.2, seed=0)
    assert torch.equal(again.tensors[1], y)


def test_digits_rejects_bad_fraction():
    with pytest.raises(ValueError, match="val_fraction"):
        data.digits(val_fraction=1.5)


def test_synthetic_classification_is_seeded():
    a = data.synthetic_classification(100, 5, 4, seed=3)
    b = data.synthetic_classification(100, 5, 4, seed=3)
    assert torch.equal(a.tensors[0], b.tensors[0]) and a.tensors[0].shape == (100, 5)
    assert int(a.tensors[1].max()) < 4
    with pytest.raises(ValueError, match="at least 1"):
        data.synthetic_classification(0)


def test_fit_learns_and_records_history():
    """Does fit train a model on synthetic blobs to high accuracy, recording one entry per epoch and
    stepping the scheduler once per epoch?"""
    torch.manual_seed(0)
    train_loader, val_loader = data.loaders(
        data.synthetic_classification(512, 8, 3, seed=1),
        data.synthetic_classification(256, 8, 3, seed=1),
        batch_size=32,
    )
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    history = training.fit(
        model,
        train_loader,
        val_loader,
        nn.CrossEntropyLoss(),
        optimizer,
        epochs=5,
        device="cpu",
        train_one_epoch=_train_one_epoch,
        evaluate=_evaluate,
        scheduler=scheduler,
        progress=False,
    )
    assert history.epochs == 5 and len(history.val_accuracy) == 5
    assert history.val_accuracy[-1] > 0.9
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.learning_rate == [0.1, 0.1, 0.05, 0.05, 0.025]
    assert 1 <= history.best_epoch() <= 5
    fig, axes = plot_history(history)
    assert len(axes) == 2 and len(axes[0].lines) == 2


def test_fit_continues_a_history():
    train_loader, val_loader = data.loaders(
        data.synthetic_classification(64), data.synthetic_classification(32)
    )
    model = nn.Linear(8, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    kwargs = dict(device="cpu", train_one_epoch=_train_one_epoch, evaluate=_evaluate, progress=False)
    history = training.fit(
        model, train_loader, val_loader, nn.CrossEntropyLoss(), optimizer, epochs=2, **kwargs
    )
    history = training.fit(
        model, train_loader, val_loader, nn.CrossEntropyLoss(), optimizer, epochs=1, history=history, **kwargs
    )
    assert history.epochs == 3


def test_fit_progress_bar_is_off_while_grading(monkeypatch, capsys):
    """While nbgrader runs the notebook (NBGRADER_EXECUTION set), does fit print no progress bar?"""
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    train_loader, val_loader = data.loaders(
        data.synthetic_classification(64), data.synthetic_classification(32)
    )
    model = nn.Linear(8, 3)
    training.fit(
        model,
        train_loader,
        val_loader,
        nn.CrossEntropyLoss(),
        torch.optim.SGD(model.parameters(), lr=0.1),
        epochs=1,
        device="cpu",
        train_one_epoch=_train_one_epoch,
        evaluate=_evaluate,
    )
    captured = capsys.readouterr()
    assert "epochs" not in captured.err and "epochs" not in captured.out


def test_empty_history_has_no_best_epoch():
    with pytest.raises(ValueError, match="run fit"):
        training.History().best_epoch()


def test_plot_history_keeps_high_accuracies_readable():
    """Does the accuracy axis start just below the lowest accuracy (a round tenth), and at 0 when the
    accuracy was low?"""
    history = training.History([1.0, 0.5], [0.9, 0.4], [0.84, 0.97], [0.1, 0.1])
    _, (_, ax_acc) = plot_history(history)
    low, high = ax_acc.get_ylim()
    assert 0.7 <= low <= 0.84 and high >= 1.0
    history.val_accuracy[:] = [0.03, 0.5]
    _, (_, ax_acc) = plot_history(history)
    assert ax_acc.get_ylim()[0] == 0.0
