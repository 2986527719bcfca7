"""Datasets that work offline: scikit-learn's bundled handwritten digits, and synthetic data for fast tests.

Introduced in notebook 09_training_loops.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

__all__ = ["digits", "loaders", "synthetic_classification"]


def digits(val_fraction: float = 0.2, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """The 1,797 8x8 handwritten digits bundled with scikit-learn (no download), as float32 features in
    [0, 1] of shape (64,) and int64 labels 0-9, split into (train, validation) by a seeded shuffle."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    features = torch.tensor(bunch.data, dtype=torch.float32) / 16.0
    labels = torch.tensor(bunch.target, dtype=torch.int64)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_val = round(len(labels) * val_fraction)
    val, train = order[:n_val], order[n_val:]
    return TensorDataset(features[train], labels[train]), TensorDataset(features[val], labels[val])


def synthetic_classification(
    n_samples: int = 256, num_features: int = 8, num_classes: int = 3, seed: int = 0
) -> TensorDataset:
    """Gaussian blobs, one per class, around random centres: a small, learnable classification set."""
    if min(n_samples, num_features, num_classes) < 1:
        raise ValueError(
            "n_samples, num_features and num_classes must all be at least 1, got "
            f"{n_samples}, {num_features}, {num_classes}"
        )
    generator = torch.Generator().manual_seed(seed)
    centres = 3.0 * torch.randn(num_classes, num_features, generator=generator)
    labels = torch.randint(0, num_classes, (n_samples,), generator=generator)
    features = centres[labels] + torch.randn(n_samples, num_features, generator=generator)
    return TensorDataset(features, labels)


def loaders(
    train: TensorDataset, val: TensorDataset, batch_size: int = 64, seed: int = 0
) -> tuple[DataLoader, DataLoader]:
    """A shuffling training loader (seeded, so epochs repeat) and an ordered validation loader."""
    shuffle = torch.Generator().manual_seed(seed)
    return (
        DataLoader(train, batch_size=batch_size, shuffle=True, generator=shuffle),
        DataLoader(val, batch_size=batch_size, shuffle=False),
    )
