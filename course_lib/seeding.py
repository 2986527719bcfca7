"""One function that makes a run repeatable: Python's, NumPy's and PyTorch's generators, and determinism.

Introduced in notebook 01_linear.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["seed_everything"]

# cuBLAS needs this workspace setting before deterministic algorithms can be used on CUDA.
_CUBLAS_WORKSPACE = ":4096:8"


def seed_everything(seed: int, deterministic: bool = False) -> int:
    """Seed ``random``, NumPy and torch (CPU and every GPU); with ``deterministic`` also ask for
    deterministic algorithms (an error is raised where an operation has none). Returns the seed."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}; NumPy accepts no other values")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds every CUDA device as well
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", _CUBLAS_WORKSPACE)
    # Only when it changes something: the call imports torch._inductor (about a second in every kernel).
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    if torch.are_deterministic_algorithms_enabled() != deterministic or (deterministic and warn_only):
        torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic and torch.backends.cudnn.benchmark
    return seed
