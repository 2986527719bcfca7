"""Does course_lib.devices find the right devices, with and without a GPU?"""

import torch

from course_lib import devices


def test_cpu_is_always_first():
    """Is the CPU always listed, and first?"""
    found = devices.available_devices()
    assert found[0] == torch.device("cpu")
    assert len(found) == len(set(found))


def test_best_device_is_cpu_without_accelerators(monkeypatch):
    """Without CUDA or MPS, is the CPU chosen?"""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    assert devices.best_device() == torch.device("cpu")
    assert devices.available_devices() == [torch.device("cpu")]


def test_cuda_preferred_and_every_gpu_listed(monkeypatch):
    """With two GPUs (simulated), is CUDA chosen and is each GPU listed?"""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    assert devices.best_device() == torch.device("cuda")
    assert devices.available_devices() == [
        torch.device("cpu"),
        torch.device("cuda", 0),
        torch.device("cuda", 1),
        torch.device("mps"),
    ]


def test_mps_chosen_when_no_cuda(monkeypatch):
    """On a Mac without CUDA (simulated), is MPS chosen?"""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    assert devices.best_device() == torch.device("mps")


def test_describe_names_the_training_device():
    """Does the one-line description name the device training will use?"""
    line = devices.describe_devices()
    assert line.startswith("devices: cpu")
    assert line.endswith(f"training on {devices.best_device()}")


def test_tensors_really_run_on_every_listed_device():
    """Can a tensor be created and used on each listed device (CUDA skipped where absent)?"""
    for device in devices.available_devices():
        x = torch.ones(3, device=device)
        assert (x * 2).sum().item() == 6.0
