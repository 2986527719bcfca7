"""torchsummary on the device the model lives on (torchsummary builds its input on CUDA whenever CUDA exists).

Introduced in notebook 03_parameters; 01_linear shows it once.
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
from typing import NamedTuple

import torch
import torchsummary
from torch import nn

__all__ = ["SummaryTotals", "summary"]


class SummaryTotals(NamedTuple):
    """The totals torchsummary prints, as numbers."""

    total_params: int
    trainable_params: int


def _model_device(model: nn.Module) -> torch.device:
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def summary(
    model: nn.Module,
    input_size: tuple[int, ...] | list[tuple[int, ...]],
    batch_size: int = -1,
    device: torch.device | str | None = None,
) -> SummaryTotals:
    """Print torchsummary's table for ``model`` on the device its parameters are on (or ``device``)
    and return the totals. ``input_size`` excludes the batch dimension, as in torchsummary.

    torchsummary runs a forward pass, in whatever mode the model is in, and only on "cpu" and "cuda". This
    one summarises an eval-mode copy (on the CPU for any other device, MPS say), so the model itself is left
    as it was: not moved, its mode kept, its batch-norm running statistics not updated.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"summary() needs an nn.Module, got {type(model).__name__}")
    if isinstance(input_size, int):
        raise TypeError(f"input_size must be a tuple such as ({input_size},), got the int {input_size}")
    model_device = _model_device(model)
    target = torch.device(device) if device is not None else model_device
    if target.type != model_device.type:
        raise ValueError(
            f"the model's parameters are on {model_device} but device={target} was asked for: "
            f"move the model with model.to({str(target)!r}) or leave device out"
        )
    probe = copy.deepcopy(model).eval()  # layers shared within the model stay shared in the copy
    if target.type not in ("cpu", "cuda"):
        probe, target = probe.cpu(), torch.device("cpu")
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        torchsummary.summary(probe, input_size, batch_size=batch_size, device=target.type)
    text = buffer.getvalue()
    print(text, end="")
    return SummaryTotals(_read_total(text, "Total params"), _read_total(text, "Trainable params"))


def _read_total(text: str, label: str) -> int:
    match = re.search(rf"^{label}: ([\d,]+)$", text, flags=re.MULTILINE)
    if match is None:
        raise RuntimeError(f"torchsummary printed no '{label}' line; its output was:\n{text}")
    return int(match.group(1).replace(",", ""))
