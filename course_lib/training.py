"""`fit`: run epochs of training and evaluation with a progress bar, and keep a history.

Introduced in notebook 09_training_loops, where the epoch functions passed to `fit` are the ones the
student writes (``train_one_epoch`` and ``evaluate``). The student then writes a `fit` of their own there,
with early stopping, gradient clipping and the best epoch's weights restored; this one stays for the later
notebooks and for instructors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from course_lib.notebook import grading

__all__ = ["History", "fit"]

TrainEpoch = Callable[[nn.Module, DataLoader, Callable, torch.optim.Optimizer, torch.device], float]
Evaluate = Callable[[nn.Module, DataLoader, Callable, torch.device], dict]


@dataclass
class History:
    """Per-epoch training loss, validation loss and validation accuracy, and the learning rate used."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    def best_epoch(self) -> int:
        """The epoch (counted from 1) with the highest validation accuracy."""
        if not self.val_accuracy:
            raise ValueError("the history is empty: run fit() first")
        return max(range(self.epochs), key=lambda i: self.val_accuracy[i]) + 1


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    loss_fn: Callable,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    device: torch.device | str,
    train_one_epoch: TrainEpoch,
    evaluate: Evaluate,
    scheduler=None,
    progress: bool | None = None,
    history: History | None = None,
) -> History:
    """Train ``model`` for ``epochs`` epochs with ``train_one_epoch``, evaluating on ``val_loader`` after
    each with ``evaluate``; step ``scheduler`` (if any) once per epoch. Shows a progress bar (a widget in
    Jupyter, text elsewhere; off while grading) and returns the :class:`History` (extended, if given)."""
    if epochs < 0:
        raise ValueError(f"epochs must be 0 or more, got {epochs}")
    device = torch.device(device)
    history = history if history is not None else History()
    show = (not grading()) if progress is None else progress
    bar = tqdm(range(epochs), desc="epochs", unit="epoch", disable=not show, leave=True)
    for _ in bar:
        learning_rate = optimizer.param_groups[0]["lr"]
        train_loss = train_one_epoch(model, train_loader, loss_fn, optimizer, device)
        metrics = evaluate(model, val_loader, loss_fn, device)
        if scheduler is not None:
            scheduler.step()
        history.train_loss.append(float(train_loss))
        history.val_loss.append(float(metrics["loss"]))
        history.val_accuracy.append(float(metrics["accuracy"]))
        history.learning_rate.append(float(learning_rate))
        bar.set_postfix(
            train_loss=f"{train_loss:.3f}",
            val_loss=f"{metrics['loss']:.3f}",
            val_acc=f"{metrics['accuracy']:.3f}",
        )
    bar.close()
    return history
