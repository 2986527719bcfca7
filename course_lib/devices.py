"""Which devices this machine offers: the best one for training and the full list for checks.

Introduced in notebook 01_linear; every later notebook uses it.
"""

from __future__ import annotations

import torch

__all__ = ["available_devices", "best_device", "describe_devices"]


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def best_device() -> torch.device:
    """The device to train on: CUDA if present, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def available_devices() -> list[torch.device]:
    """Every device this machine can run tensors on: the CPU first, then each CUDA GPU, then MPS."""
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.extend(torch.device("cuda", index) for index in range(torch.cuda.device_count()))
    if _mps_available():
        devices.append(torch.device("mps"))
    return devices


def describe_devices() -> str:
    """One line naming the devices found, e.g. ``devices: cpu, cuda:0 (NVIDIA T4); training on cuda``."""
    names = []
    for device in available_devices():
        if device.type == "cuda":
            names.append(f"{device} ({torch.cuda.get_device_name(device)})")
        else:
            names.append(str(device))
    return f"devices: {', '.join(names)}; training on {best_device()}"
