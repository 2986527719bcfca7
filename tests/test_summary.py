"""Does course_lib's torchsummary wrapper run on a CPU-only machine and on every device?"""

import pytest
import torch
from torch import nn

from course_lib.devices import available_devices
from course_lib.summary import summary


def _net():
    shared = nn.Linear(8, 8)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(), nn.Linear(8, 1))


@pytest.mark.parametrize("device", available_devices(), ids=str)
def test_runs_where_the_model_is(device, capsys):
    """Does it summarise a model on each available device and return torchsummary's totals?"""
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)).to(device)
    totals = summary(model, (4,))
    assert totals.total_params == sum(p.numel() for p in model.parameters()) == 49
    assert totals.trainable_params == 49
    assert "Total params: 49" in capsys.readouterr().out


def test_counts_shared_layers_once_per_use(capsys):
    """Does it report torchsummary's 193 for a shared layer used twice (the real count is 121)?"""
    model = _net()
    assert summary(model, (4,)).total_params == 193
    assert sum(p.numel() for p in model.parameters()) == 121


def test_frozen_parameters_are_not_trainable(capsys):
    """Are frozen parameters left out of the trainable total?"""
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 1))
    model[0].requires_grad_(False)
    assert summary(model, (4,)) == (49, 9)


@pytest.mark.parametrize("device", available_devices(), ids=str)
def test_the_model_is_left_as_it_was(device, capsys):
    """torchsummary's forward runs in the model's mode (a training-mode one updates batch norm's running
    statistics): does summary() leave the model's statistics, its modes (mixed ones too), its device and its
    lazy layers as they were, while the totals count the materialised layers?"""
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(), nn.LazyLinear(1)).to(device)
    model[2].eval()
    before = {name: value.clone() for name, value in model[1].state_dict().items()}
    modes = [m.training for m in model.modules()]
    assert summary(model, (4,)).total_params == 40 + 16 + 9
    assert all(torch.equal(value, before[name]) for name, value in model[1].state_dict().items())
    assert [m.training for m in model.modules()] == modes == [True, True, True, False, True]
    assert isinstance(model[3].weight, nn.parameter.UninitializedParameter)
    assert model[0].weight.device.type == torch.device(device).type


def test_device_mismatch_is_explained():
    """Asking for another device than the model's gives an error naming both and the fix."""
    with pytest.raises(ValueError, match=r"on cpu but device=cuda.*model.to\('cuda'\)"):
        summary(nn.Linear(2, 2), (2,), device="cuda")


def test_bad_input_size_is_explained():
    """A bare int for input_size is refused with the tuple form to use."""
    with pytest.raises(TypeError, match=r"\(4,\)"):
        summary(nn.Linear(4, 2), 4)


def test_what_01_linear_says_of_torchsummary(capsys):
    """Does torchsummary itself run without a GPU (its default device="cuda" falls back to CPU tensors), and
    does it feed float32 whatever the model's dtype, as 01_linear says?"""
    import torch
    import torchsummary

    model = nn.Sequential(nn.Linear(4, 2))
    if not torch.cuda.is_available():
        torchsummary.summary(model, (4,))  # default device="cuda", no GPU: runs on the CPU
        assert "Total params: 10" in capsys.readouterr().out
    else:  # with CUDA its input goes to the GPU while this model stays on the CPU
        with pytest.raises(RuntimeError):
            torchsummary.summary(model, (4,))
    with pytest.raises(RuntimeError, match="dtype|Double|Float"):
        torchsummary.summary(model.double(), (4,), device="cpu")
