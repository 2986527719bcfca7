"""Does seed_everything make Python, NumPy and torch repeatable, and switch determinism on and off?"""

import random

import numpy as np
import pytest
import torch

from course_lib.seeding import seed_everything


def _draws():
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


@pytest.fixture(autouse=True)
def _restore_determinism():
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)
    torch.backends.cudnn.deterministic = False


def test_same_seed_same_draws():
    """Do two runs with one seed draw the same numbers from all three generators?"""
    seed_everything(123)
    first = _draws()
    seed_everything(123)
    assert _draws() == first


def test_other_seed_other_draws():
    """Does another seed give other numbers in each generator?"""
    seed_everything(1)
    first = _draws()
    seed_everything(2)
    second = _draws()
    assert all(a != b for a, b in zip(first, second, strict=True))


def test_deterministic_flag():
    """Does deterministic=True turn on deterministic algorithms, and False turn them off again?"""
    seed_everything(0, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic
    seed_everything(0)
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.deterministic


def test_returns_the_seed():
    """Does it return the seed it used (handy for logging)?"""
    assert seed_everything(7) == 7


@pytest.mark.parametrize("bad", [1.5, "3", True, None])
def test_rejects_non_int_seed(bad):
    """Is a seed that is not an int refused with a message naming it?"""
    with pytest.raises(TypeError, match="seed must be an int"):
        seed_everything(bad)


def test_rejects_out_of_range_seed():
    """Is a seed NumPy cannot take refused with the allowed range?"""
    with pytest.raises(ValueError, match=r"\[0, 2\*\*32\)"):
        seed_everything(-1)
