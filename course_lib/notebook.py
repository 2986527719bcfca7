"""What the setup cell of every notebook calls: one line of facts, a fixed seed, and the grading flag."""

from __future__ import annotations

import os
import sys

import torch

import course_lib.checks  # noqa: F401 - records PyTorch's functions and the checks before student code runs
from course_lib.devices import describe_devices
from course_lib.seeding import seed_everything

__all__ = ["grading", "in_colab", "setup_notebook"]


def in_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules


def grading() -> bool:
    """True while nbgrader executes the notebook (autograde or validate): long demonstrations may be
    shortened then; graded checks never are."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def setup_notebook(seed: int = 0) -> torch.device:
    """Seed everything, print the versions and devices, and return the device to train on."""
    import course_lib
    from course_lib.devices import best_device

    seed_everything(seed)
    where = "Colab" if in_colab() else "grading" if grading() else "local"
    print(f"course_lib {course_lib.__version__}, torch {torch.__version__} ({where}); {describe_devices()}")
    return best_device()
