"""Checks for notebook 10_saving_loading: ``save_checkpoint``, ``load_checkpoint`` and ``load_matching``.

Each exercise has two graded parts (``part="core"`` and ``part="edge"``, see each check's docstring).

- ``save_checkpoint``: the file is read back with ``torch.load(weights_only=True)`` and compared entry by
  entry with the state_dicts of the model and optimizer given. While a save runs, ``os.replace`` and
  ``os.rename`` are wrapped (``pathlib``'s ``replace``/``rename`` and ``shutil.move`` go through them), and
  ``os.remove``/``os.unlink`` too; the originals are put back right after the call. That shows where the
  new file was moved from (it must come from the checkpoint's own folder) and whether the old checkpoint
  was deleted first. When no rename was seen (say ``from os import replace``), the file's inode tells a
  replaced file (new inode) from one rewritten in place (same inode). The edge part also simulates a crash
  in the middle of a save (a value in ``extra`` whose pickling raises, which happens after ``torch.save``
  has opened its file): the call must raise, the previous checkpoint must be byte for byte intact and no
  temporary file may be left; and it looks in ``/proc/self/fd`` (where there is one) for files the save
  left open. The checkpoint's permissions are not graded (the contract does not ask for any): when they
  differ from those of a file written with ``open(path, "wb")`` (as ``tempfile.mkstemp``'s 0600 does), the
  visible edge test prints a note.
- ``load_checkpoint``: checkpoints are written here with ``torch.save`` (never with the student's
  ``save_checkpoint``, so a mistake there cannot hide one here). A checkpoint whose ``extra`` holds a
  harmless payload (its unpickling would create a marker file) must be refused; the check sets
  ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` during that call, which makes ``torch.load`` without an explicit
  ``weights_only`` behave like PyTorch before 2.6 (unsafe), so a missing ``weights_only=True`` shows
  on any version. A file tagged as saved on ``cuda:0`` (what a GPU machine writes) must load with the
  default ``map_location``; a callable ``map_location`` must reach ``torch.load``. Resuming is checked
  as in the notebook: 2 epochs, save, load into a fresh model and Adam, 1 more epoch == 3 epochs. The
  model's parameters must stay the same objects (an optimizer made before holds them).
- ``load_matching``: pretrained models with another head or another input size, unknown and missing
  entries, buffers, another dtype, and state_dicts in an order other than the model's; the lists, the
  model's values and the untouched entries are compared with what ``model.state_dict()`` says.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import inspect
import os
import pathlib
import pickle
import stat
import tempfile
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.checks._core import Exercise, describe, dtype_on, seeded
from course_lib.checks._integrity import ORIGINALS, protect_module
from course_lib.protocol import CORE, EDGE

__all__ = ["check_save_checkpoint", "check_load_checkpoint", "check_load_matching"]

_equal = ORIGINALS["equal"]
_type = ORIGINALS["type"]

# Captured at import so that the recorder of file operations always puts the real functions back.
_os_replace = os.replace
_os_rename = os.rename
_os_remove = os.remove
_os_unlink = os.unlink

_KEYS = ("model", "optimizer", "epoch", "extra")
_SAME_FOLDER = (
    "create the temporary file in the checkpoint's own folder: "
    "`os.path.join(os.path.dirname(os.path.abspath(path)), name)` (tempfile's functions: `dir=` that folder)"
)
_NO_WEIGHTS_ONLY = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
_FORCE_WEIGHTS_ONLY = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"


# -- models and data ------------------------------------------------------------------------------------
class _Net(nn.Module):
    """Linear, BatchNorm1d (buffers: running_mean, running_var, num_batches_tracked), ReLU, Linear."""

    def __init__(self, in_features: int = 4, hidden: int = 6, out_features: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU())
        self.head = nn.Linear(hidden, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class _Classifier(nn.Module):
    """A feature extractor, an optional ``adapter`` and a ``head``; optionally an ``aux`` layer that a
    target model does not have."""

    def __init__(
        self, in_features: int, hidden: int, classes: int, adapter: bool = False, aux: bool = False
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU())
        if adapter:
            self.adapter = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, classes)
        if aux:
            self.aux = nn.Linear(hidden, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.features(x)
        if hasattr(self, "adapter"):
            hidden = torch.relu(self.adapter(hidden))
        return self.head(hidden)


def _build(factory: Callable[[], nn.Module], seed: int, device, dtype: torch.dtype) -> nn.Module:
    """A model drawn with a fixed seed, leaving the notebook's random state untouched."""
    with seeded(seed):
        model = factory()
    device = torch.device(device)
    return model.to(device=device, dtype=dtype_on(device, dtype))


def _batches(seed: int, in_features: int, out_features: int, dtype, device, count: int = 3, size: int = 8):
    generator = torch.Generator().manual_seed(seed)
    dtype = dtype_on(torch.device(device), dtype)
    batches = []
    for _ in range(count):
        x = torch.randn(size, in_features, generator=generator, dtype=dtype)
        y = torch.randn(size, out_features, generator=generator, dtype=dtype)
        batches.append((x.to(device), y.to(device)))
    return batches


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, batches, epochs: int = 1) -> None:
    """Plain training epochs over fixed batches (same order every epoch, so runs are repeatable)."""
    model.train()
    for _ in range(epochs):
        for x, y in batches:
            loss = F.mse_loss(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


_OPTIMIZERS: dict[str, Callable[[Any], torch.optim.Optimizer]] = {
    "Adam": lambda params: torch.optim.Adam(params, lr=0.01),
    "AdamW": lambda params: torch.optim.AdamW(params, lr=0.02, weight_decay=0.1),
    "SGD with momentum": lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9),
}


# -- comparing what came back -----------------------------------------------------------------------------
def _snapshot(value: Any) -> Any:
    """A deep copy with every tensor detached, cloned and on the CPU (the expected values)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, dict):
        return {key: _snapshot(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return _type(value)(_snapshot(item) for item in value)
    return copy.deepcopy(value)


def _is_dict(value: Any) -> bool:
    return _type(value) is dict or _type(value) is OrderedDict


def _plain_keys(value: dict) -> bool:
    """Keys are exact str or int (so that ``in`` and ``==`` on them cannot be redefined)."""
    return all(_type(key) is str or _type(key) is int for key in list(dict.keys(value)))


def _difference(actual: Any, expected: Any, where: str) -> str | None:
    """The first way ``actual`` differs from ``expected`` (tensors: exact values), or None."""
    if isinstance(expected, torch.Tensor):
        if _type(actual) is not torch.Tensor and _type(actual) is not nn.Parameter:
            return f"{where} is {describe(actual)}, expected a tensor of shape {tuple(expected.shape)}"
        if actual.shape != expected.shape:
            return f"{where} has shape {tuple(actual.shape)}, expected {tuple(expected.shape)}"
        if actual.dtype != expected.dtype:
            return f"{where} has dtype {actual.dtype}, expected {expected.dtype}"
        if actual.device.type == "meta" or not _equal(actual.detach().cpu(), expected):
            return f"{where} holds other values than expected"
        return None
    if _is_dict(expected):
        if not _is_dict(actual):
            return f"{where} is {describe(actual)}, expected a dict"
        if not _plain_keys(actual):
            return f"{where} has keys that are not plain strings or ints"
        missing = [key for key in expected if key not in actual]
        unexpected = [key for key in actual if key not in expected]
        if missing or unexpected:
            parts = [
                f"missing {missing}" if missing else "",
                f"unexpected {unexpected}" if unexpected else "",
            ]
            return f"{where} has other keys than expected ({', '.join(p for p in parts if p)})"
        for key in expected:
            problem = _difference(dict.__getitem__(actual, key), expected[key], f"{where}[{key!r}]")
            if problem:
                return problem
        return None
    if isinstance(expected, (list, tuple)):
        if _type(actual) is not _type(expected):
            return f"{where} is {describe(actual)}, expected a {_type(expected).__name__}"
        if len(actual) != len(expected):
            return f"{where} has {len(actual)} items, expected {len(expected)}"
        for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
            problem = _difference(got, want, f"{where}[{index}]")
            if problem:
                return problem
        return None
    if _type(actual) is not _type(expected) or actual != expected:
        shown = repr(actual) if _type(actual) in (int, float, str, bool, type(None)) else describe(actual)
        return f"{where} is {shown}, expected {expected!r}"
    return None


# -- watching how a file reaches its path ------------------------------------------------------------------
def _real(path: Any) -> str:
    return os.path.realpath(os.fsdecode(os.fspath(path)))


class _RenameRecorder:
    """While active, ``os.replace`` and ``os.rename`` record ``(source, destination)``, and ``os.remove``
    and ``os.unlink`` the file they delete, as real paths before doing their work. Installed only around
    one call of the student's function."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.removed: list[str] = []

    def _wrap(self, original: Callable) -> Callable:
        def recorded(src, dst, *args, **kwargs):
            with contextlib.suppress(Exception):
                self.calls.append((_real(src), _real(dst)))
            return original(src, dst, *args, **kwargs)

        return recorded

    def _wrap_remove(self, original: Callable) -> Callable:
        def recorded(target, *args, **kwargs):
            with contextlib.suppress(Exception):
                self.removed.append(_real(target))
            return original(target, *args, **kwargs)

        return recorded

    def __enter__(self) -> _RenameRecorder:
        os.replace = self._wrap(_os_replace)
        os.rename = self._wrap(_os_rename)
        os.remove = self._wrap_remove(_os_remove)
        os.unlink = self._wrap_remove(_os_unlink)
        return self

    def __exit__(self, *exc_info) -> None:
        os.replace = _os_replace
        os.rename = _os_rename
        os.remove = _os_remove
        os.unlink = _os_unlink


def _open_in(folder: str) -> list[str]:
    """The files in ``folder`` this process still has open (read from /proc/self/fd; empty where there is
    none). Unreachable file objects are collected first: only what stays open counts."""
    fds = "/proc/self/fd"
    if not os.path.isdir(fds):
        return []
    gc.collect()
    home = _real(folder) + os.sep
    found = []
    for name in os.listdir(fds):
        with contextlib.suppress(OSError):
            target = os.readlink(os.path.join(fds, name))
            if target.startswith(home):
                found.append(os.path.basename(target.removesuffix(" (deleted)")))
    return sorted(found)


def _mode_note(path: str, folder: str) -> None:
    """Print a note (never a failure: the contract does not ask for a mode) when the checkpoint's
    permissions differ from those of a file written with ``open(path, "wb")`` in the same folder."""
    if os.name != "posix":
        return
    probe = os.path.join(folder, ".permissions-probe")
    with open(probe, "wb"):
        pass
    try:
        plain = os.stat(probe).st_mode
    finally:
        _os_remove(probe)
    saved = os.stat(path).st_mode
    if stat.S_IMODE(saved) != stat.S_IMODE(plain):
        print(
            f"note (no points lost): your checkpoint has the permissions {stat.filemode(saved)[1:]} "
            f'({stat.S_IMODE(saved):#o}), a file written with open(path, "wb") here gets '
            f"{stat.filemode(plain)[1:]} ({stat.S_IMODE(plain):#o}). tempfile.mkstemp and "
            "NamedTemporaryFile make files only you can read, and os.replace keeps that, so others in "
            'your group could not load the checkpoint. open(temporary, "xb") creates the temporary file '
            'as open(path, "wb") would (see "Who can read the checkpoint" in the notebook).'
        )


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError:
        return None


class _SimulatedCrash(Exception):
    """Raised in the middle of a save, as if the process had died there."""


class _CrashWhilePickling:
    """A value for ``extra`` whose pickling raises: ``torch.save`` has opened its file by then, so a
    save straight to ``path`` has already destroyed the previous checkpoint. Records what it saw."""

    def __init__(self, path: str, previous: bytes) -> None:
        self.path, self.previous = path, previous
        self.path_intact: bool | None = None

    def __reduce__(self):
        self.path_intact = _read(self.path) == self.previous
        raise _SimulatedCrash("simulated crash in the middle of saving the checkpoint")


def _raised(func, *args, **kwargs) -> Exception | None:
    """Call ``func`` and return the exception it raised (None if it returned); NotImplementedError
    propagates so that ``ex.call`` reports an untouched exercise."""
    try:
        func(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as exc:  # noqa: BLE001 - any exception counts as the save failing loudly
        return exc
    return None


# -- save_checkpoint ---------------------------------------------------------------------------------------
@dataclass
class _SaveCase:
    sizes: tuple[int, int, int]
    optimizer: str | None
    epoch: int
    extra: dict
    filename: str = "checkpoint.pt"
    as_pathlib: bool = False
    previous: bool = True
    dtype: torch.dtype = torch.float32


def _save_cases(part: str, hidden: bool, seed: int) -> list[_SaveCase]:
    """Core: a trained model and its optimizer saved to a str path over an existing checkpoint. Edge: no
    optimizer, a pathlib.Path, a new file, a tensor in extra, float64 (hidden: random mixtures)."""
    if not hidden:
        if part == CORE:
            return [
                _SaveCase((4, 6, 3), "Adam", 3, {"loss": 0.25, "note": "best so far"}),
                _SaveCase(
                    (5, 4, 2),
                    "SGD with momentum",
                    7,
                    {"val_losses": [0.9, 0.5, 0.4], "config": {"lr": 0.05, "batch_size": 32}, "best": None},
                    filename="last.ckpt",
                ),
            ]
        return [
            _SaveCase((3, 5, 2), None, 0, {}, filename="untrained.pt", as_pathlib=True, previous=False),
            _SaveCase(
                (2, 3, 2),
                "AdamW",
                12,
                {"rng_state": torch.arange(0, 200, 25, dtype=torch.uint8), "note": "float64"},
                filename="run.pt",
                as_pathlib=True,
                dtype=torch.float64,
            ),
        ]
    generator = torch.Generator().manual_seed(seed)

    def draw(low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (1,), generator=generator))

    cases = []
    for index in range(3 if part == CORE else 4):
        extra = {f"value_{k}": draw(-100, 100) / 8 for k in range(draw(0, 3))}
        if draw(0, 1):
            extra["history"] = [draw(0, 9) for _ in range(draw(0, 4))]
        if part == EDGE and draw(0, 1):
            extra["rng_state"] = torch.randint(0, 255, (draw(1, 20),), generator=generator).to(torch.uint8)
        if part == CORE:
            optimizer, as_pathlib, previous = ("Adam", "AdamW", "SGD with momentum")[draw(0, 2)], False, True
        else:
            optimizer = (None, "Adam", "AdamW", "SGD with momentum")[draw(0, 3)]
            as_pathlib, previous = bool(draw(0, 1)), index != 0
        cases.append(
            _SaveCase(
                (draw(1, 7), draw(2, 8), draw(1, 5)),
                optimizer,
                draw(0, 500),
                extra,
                filename=f"epoch_{index}.pt",
                as_pathlib=as_pathlib,
                previous=previous,
                dtype=(torch.float32, torch.float64)[draw(0, 1)],
            )
        )
    return cases


def _make_trained(case_sizes, optimizer_name, seed: int, device, dtype):
    in_features, hidden, out_features = case_sizes
    model = _build(lambda: _Net(in_features, hidden, out_features), seed, device, dtype)
    optimizer = _OPTIMIZERS[optimizer_name](model.parameters()) if optimizer_name else None
    batches = _batches(seed, in_features, out_features, dtype, device, count=2)
    if optimizer is not None:
        _train(model, optimizer, batches)
    else:
        with torch.no_grad():
            model(batches[0][0])  # updates the BatchNorm buffers, as training would
    return model, optimizer


def _save_hints(exc: BaseException):
    text = str(exc)
    if isinstance(exc, TypeError) and ("PosixPath" in text or "WindowsPath" in text or "PathLike" in text):
        return (
            "path can be a str or a pathlib.Path, and your code works only for one of them",
            "turn it into a str first: `path = os.fspath(path)` (or build paths with os.path / pathlib)",
        )
    if isinstance(exc, OSError) and "cross-device" in text.lower():
        return (
            "temporary file in another folder: os.replace cannot move a file across filesystems",
            _SAME_FOLDER,
        )
    return None


def _unsafe_file_diagnosis(path: str) -> tuple[str, str] | None:
    """Which non-state object made ``weights_only=True`` refuse the file (loads it unsafely: the file was
    just written by the student's code from the check's own objects)."""
    try:
        content = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # noqa: BLE001 - only a diagnosis
        return None
    model = content.get("model") if isinstance(content, dict) else None
    optimizer = content.get("optimizer") if isinstance(content, dict) else None
    if inspect.ismethod(model) or inspect.ismethod(optimizer):
        return (
            "state_dict not called: `model.state_dict` without parentheses pickles the method, and with it "
            "the whole object",
            "call it: `model.state_dict()`, `optimizer.state_dict()`",
        )
    if isinstance(content, nn.Module) or isinstance(model, nn.Module):
        return (
            "whole model pickled (torch.save(model) or {'model': model}): weights_only=True refuses it, "
            "and loading it needs your exact class definitions",
            "save the tensors only: `model.state_dict()`",
        )
    if isinstance(content, torch.optim.Optimizer) or isinstance(optimizer, torch.optim.Optimizer):
        return (
            "the optimizer object itself pickled instead of its state",
            "save `optimizer.state_dict()` (None when optimizer is None)",
        )
    return None


def _load_saved(ex: Exercise, path: str, label: str) -> Any:
    """Read the student's file the way the contract promises it can be read."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the student's to fix
        if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            ex.fail(
                f"torch.load(path, weights_only=True) cannot read the file ({_type(exc).__name__}: "
                f"{first[:120]})",
                case=label,
                mistake="the file was not written by torch.save (pickle.dump, or another format?)",
                fix="write it with `torch.save(checkpoint, file)`",
            )
        error = exc
    if isinstance(error, pickle.UnpicklingError):
        hint = _unsafe_file_diagnosis(path)
        mistake, fix = hint if hint else (None, "save only tensors, dicts, lists, numbers and strings")
        reason = [line for line in str(error).splitlines() if "GLOBAL" in line or "Unsupported" in line]
        detail = f" ({reason[0].strip()[:160]})" if reason else ""
        ex.fail(
            "torch.load(path, weights_only=True) refuses the file: it holds objects that are not tensors "
            f"or plain Python values{detail}",
            case=label,
            mistake=mistake,
            fix=fix,
        )
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    ex.fail(
        f"torch.load cannot read the file: {_type(error).__name__}: {first[:200]}",
        case=label,
        fix="write it with `torch.save(checkpoint, file)`",
    )


def _check_saved(ex: Exercise, loaded: Any, expected: dict, case: _SaveCase, label: str) -> None:
    model_keys = set(expected["model"])
    if not _is_dict(loaded):
        ex.fail(
            f"the file holds {describe(loaded)}, expected the dict "
            "{'model': ..., 'optimizer': ..., 'epoch': ..., 'extra': ...}",
            case=label,
            fix="torch.save a dict with exactly those four keys",
        )
    if not _plain_keys(loaded):
        ex.fail("the checkpoint's keys are not plain strings", case=label, fix="use the four string keys")
    keys = list(loaded)
    if set(keys) != set(_KEYS):
        mistake, fix = None, "save exactly {'model': ..., 'optimizer': ..., 'epoch': epoch, 'extra': extra}"
        if keys and set(keys) <= model_keys:
            mistake = "the file holds the model's state_dict alone"
        elif "extra" not in keys:
            mistake = 'extra not stored under "extra" (the extra keyword arguments belong in one dict)'
            fix = "store them as one entry: `'extra': extra` (extra is already a dict)"
        elif "optimizer" not in keys:
            mistake = "optimizer state not saved"
            fix = "add `'optimizer': optimizer.state_dict()` (None when optimizer is None)"
        ex.fail(
            f"the checkpoint has the keys {keys}, expected exactly {list(_KEYS)}",
            case=label,
            mistake=mistake,
            fix=fix,
        )
    if expected["optimizer"] is not None and loaded["optimizer"] is None:
        ex.fail(
            'checkpoint["optimizer"] is None although an optimizer was given',
            case=label,
            mistake="optimizer state not saved (resuming would restart Adam's moments and step count)",
            fix="save `optimizer.state_dict()`",
        )
    saved_model = loaded["model"]
    if _is_dict(saved_model) and _plain_keys(saved_model):
        missing = [key for key in expected["model"] if key not in saved_model]
        buffers = [key for key in missing if key.split(".")[-1].startswith(("running_", "num_batches"))]
        if buffers:
            ex.fail(
                f'checkpoint["model"] lacks the buffers {buffers}',
                case=label,
                mistake="only the parameters saved: buffers (BatchNorm's running statistics) are state too",
                fix="save `model.state_dict()`, which holds parameters and buffers",
            )
    for key in _KEYS:
        problem = _difference(loaded[key], expected[key], f'checkpoint["{key}"]')
        if problem:
            fix = {
                "model": "save `model.state_dict()`",
                "optimizer": "save `optimizer.state_dict()`, or None when optimizer is None",
                "epoch": "save the epoch given, unchanged",
                "extra": "save the extra keyword arguments as they are: `'extra': extra`",
            }[key]
            mistake = None
            if key == "optimizer" and expected["optimizer"] is None:
                mistake = "optimizer=None should give None"
            ex.fail(problem, case=label, mistake=mistake, fix=fix)
    ex.passed()


def _check_moved_into_place(
    ex: Exercise, recorder: _RenameRecorder, path: str, folder: str, inode: int, label: str
) -> None:
    """The new checkpoint replaced the old one in one step: a rename from the same folder, with the old
    file never deleted first."""
    target, home = _real(path), _real(folder)
    if target in recorder.removed:
        ex.fail(
            "the previous checkpoint was deleted before the new one was moved into place",
            case=label,
            mistake="previous checkpoint removed before the rename (non-atomic write: until the rename, "
            "there is no checkpoint at all, and a crash there loses it)",
            fix="`os.replace(temporary, path)` replaces the old file in one step: do not remove it first",
        )
    sources = [src for src, dst in recorder.calls if dst == target]
    if sources:
        source_folder = os.path.dirname(sources[-1])
        if source_folder != home:
            ex.fail(
                f"the new checkpoint was moved into place from another folder ({source_folder})",
                case=label,
                mistake="temporary file in another folder: os.replace is atomic only within one "
                "filesystem (across filesystems it fails, and shutil.move falls back to a non-atomic copy)",
                fix=_SAME_FOLDER,
            )
    elif os.stat(path).st_ino == inode:
        ex.fail(
            "the previous checkpoint file was rewritten in place",
            case=label,
            mistake="non-atomic write: a crash during the write leaves a damaged file and no good one",
            fix="write a temporary file in the same folder, then `os.replace(temporary, path)`",
        )
    ex.passed()


def _check_crash(ex: Exercise, save_checkpoint, device, seed: int, dtype) -> None:
    """A crash in the middle of a save: the call raises, the previous checkpoint survives byte for byte,
    and no temporary file is left."""
    label = f"a save that crashes half-way over an existing checkpoint, model on {device}"
    with tempfile.TemporaryDirectory(prefix="save_checkpoint-") as root:
        folder = os.path.join(root, "run 2")
        os.mkdir(folder)
        path = os.path.join(folder, "checkpoint.pt")
        model, optimizer = _make_trained((4, 5, 2), "Adam", seed, device, dtype)
        first = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": 1,
            "extra": {"note": "the previous checkpoint"},
        }
        torch.save(first, path)
        previous = _read(path)
        _train(model, optimizer, _batches(seed + 1, 4, 2, dtype, device, count=1))
        crash = _CrashWhilePickling(path, previous)
        error = ex.call(
            _raised, save_checkpoint, path, model, optimizer, 2, case=label, note="newer", broken=crash
        )
        if crash.path_intact is None:
            ex.fail(
                "save_checkpoint never pickled the extra keyword arguments",
                case=label,
                mistake='extra not stored under "extra"',
                fix="save them: `'extra': extra`",
            )
        if error is None:
            ex.fail(
                "save_checkpoint returned normally although writing the checkpoint failed "
                "(a value in extra could not be pickled)",
                case=label,
                mistake="the error was swallowed: the caller believes the checkpoint was saved",
                fix="clean up, then let the exception propagate (`raise` at the end of the except block)",
            )
        now = _read(path)
        if now != previous:
            state = "deleted" if now is None else "damaged"
            early = crash.path_intact is False
            ex.fail(
                f"after a crash in the middle of save_checkpoint the previous checkpoint is {state}",
                case=label,
                mistake="non-atomic write: "
                + (
                    "the previous checkpoint was overwritten (or removed) before the new one was complete"
                    if early
                    else "the file at path was changed before the new checkpoint was complete"
                ),
                fix="torch.save into a temporary file in the same folder, then `os.replace(temporary, path)`",
            )
        leftovers = sorted(set(os.listdir(folder)) - {"checkpoint.pt"})
        if leftovers:
            ex.fail(
                f"the failed save left {leftovers} in the folder",
                case=label,
                mistake="temporary file left behind when the save fails",
                fix="on an exception, remove the temporary file and re-raise (try/except or try/finally)",
            )
        ex.passed()


def _check_save_case(
    ex: Exercise, save_checkpoint, case: _SaveCase, seed: int, device, part: str, note: bool
) -> None:
    """One save: the file holds what the contract says, loads with weights_only=True and replaced any
    previous checkpoint atomically; for the edge cases also no file left open."""
    model, optimizer = _make_trained(case.sizes, case.optimizer, seed, device, case.dtype)
    expected = {
        "model": _snapshot(model.state_dict()),
        "optimizer": None if optimizer is None else _snapshot(optimizer.state_dict()),
        "epoch": case.epoch,
        "extra": _snapshot(case.extra),
    }
    with tempfile.TemporaryDirectory(prefix="save_checkpoint-") as root:
        folder = os.path.join(root, "run 1")
        os.mkdir(folder)
        path = os.path.join(folder, case.filename)
        argument = pathlib.Path(path) if case.as_pathlib else path
        label = (
            f"save_checkpoint({_type(argument).__name__} path, model on {device}, "
            f"optimizer={case.optimizer}, epoch={case.epoch}, extra keys {list(case.extra)})"
            + (" over an existing checkpoint" if case.previous else " (no file there yet)")
        )
        inode = -1
        if case.previous:
            torch.save({"model": {}, "optimizer": None, "epoch": -1, "extra": {}}, path)
            inode = os.stat(path).st_ino
        extra = copy.deepcopy(case.extra)
        with _RenameRecorder() as recorder:
            ex.call(
                save_checkpoint,
                argument,
                model,
                optimizer,
                case.epoch,
                case=label,
                hints=_save_hints,
                **extra,
            )
        listing = sorted(os.listdir(folder))
        if case.filename not in listing:
            swapped = any(src == _real(path) for src, _ in recorder.calls)
            ex.fail(
                f"no file at path after the call (the folder holds {listing})",
                case=label,
                mistake="the arguments of os.replace swapped: the previous checkpoint was moved onto the "
                "temporary file"
                if swapped
                else None,
                fix="`os.replace(temporary, path)`: source first, then destination"
                if swapped
                else "write the checkpoint to exactly the path given",
            )
        if part == EDGE:
            still_open = _open_in(folder)
            if still_open:
                ex.fail(
                    f"after save_checkpoint returned, this process still has {still_open} open",
                    case=label,
                    mistake="file left open (a file descriptor leaked: tempfile.mkstemp's handle never "
                    "closed?); saving every epoch then runs out of file descriptors",
                    fix="close what you open: `os.close(handle)`, or `with os.fdopen(handle, 'wb') as file:`",
                )
        loaded = _load_saved(ex, path, label)
        _check_saved(ex, loaded, expected, case, label)
        if case.previous:
            _check_moved_into_place(ex, recorder, path, folder, inode, label)
        if len(listing) > 1:
            ex.fail(
                f"besides the checkpoint, the folder holds {listing}",
                case=label,
                mistake="temporary file left behind",
                fix="os.replace(temporary, path) moves the temporary file; create no other file",
            )
        if note:
            _mode_note(path, folder)


def check_save_checkpoint(save_checkpoint, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Does ``save_checkpoint(path, model, optimizer, epoch, **extra)`` write, atomically, the dict
    ``{"model", "optimizer", "epoch", "extra"}`` that ``torch.load(weights_only=True)`` reads back? Core: a
    model and its optimizer saved to a str path over an existing checkpoint (the file's content, then how it
    replaced the old one). ``part="edge"``: no optimizer, a pathlib.Path, a new file, a tensor in extra,
    float64, no file left open, and a save that crashes half-way (the error propagates, the previous
    checkpoint is intact, no temporary file is left)."""
    __tracebackhide__ = True
    cases = _save_cases(part, hidden, seed)
    with Exercise("save_checkpoint") as ex:
        for device in ex.devices:
            for index, case in enumerate(cases):
                note = part == EDGE and not hidden and index == 0 and device == ex.devices[0]
                _check_save_case(ex, save_checkpoint, case, seed * 100 + index, device, part, note)
            if part == EDGE:
                _check_crash(ex, save_checkpoint, device, seed, torch.float64 if hidden else torch.float32)


# -- load_checkpoint ---------------------------------------------------------------------------------------
def _payload_ran(marker: str) -> str:
    """What the payload runs when unpickled without weights_only: it only creates a marker file."""
    pathlib.Path(marker).touch()
    return "the payload ran"


class _Payload:
    """Pickles as a call to ``_payload_ran(marker)``: loaded with ``weights_only=False`` it runs."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (_payload_ran, (self.marker,))


@contextlib.contextmanager
def _tagged_as(location: str):
    """While active, ``torch.save`` records every tensor as stored on ``location`` (``"cuda:0"``: the
    file a GPU machine writes; the bytes of the tensors are the same)."""
    with mock.patch("torch.serialization.location_tag", return_value=location):
        yield


@contextlib.contextmanager
def _unsafe_default():
    """Make ``torch.load`` without an explicit ``weights_only`` unpickle anything, as it did before
    PyTorch 2.6 (an explicit ``weights_only=True`` still wins)."""
    saved = {name: os.environ.get(name) for name in (_NO_WEIGHTS_ONLY, _FORCE_WEIGHTS_ONLY)}
    os.environ[_NO_WEIGHTS_ONLY] = "1"
    os.environ.pop(_FORCE_WEIGHTS_ONLY, None)
    try:
        with warnings.catch_warnings():  # torch announces the switch; it is ours, not the student's
            warnings.filterwarnings("ignore", message=f".*{_NO_WEIGHTS_ONLY}")
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _MapRecorder:
    """A callable ``map_location``: records the location tags it sees and keeps storages where they are."""

    def __init__(self) -> None:
        self.locations: list[str] = []

    def __call__(self, storage, location: str):
        self.locations.append(location)
        return storage


def _load_hints(exc: BaseException):
    text = str(exc)
    if "Attempting to deserialize object on a CUDA device" in text:
        return (
            "map_location not passed to torch.load (or its default is not 'cpu'): a checkpoint saved on "
            "a GPU cannot load on a CPU-only machine",
            "`torch.load(path, map_location=map_location, weights_only=True)` with map_location='cpu' "
            "as the default",
        )
    if "Missing key(s)" in text and "Unexpected key(s)" in text:
        return (
            "the whole checkpoint passed to load_state_dict",
            'load the model\'s part: `model.load_state_dict(checkpoint["model"])`',
        )
    if isinstance(exc, AttributeError) and "NoneType" in text and "load_state_dict" in text:
        return (
            "optimizer=None not handled",
            "restore the optimizer only when one is given: `if optimizer is not None: ...`",
        )
    if isinstance(exc, KeyError):
        return (
            "a key the checkpoint does not have",
            "the checkpoint holds 'model', 'optimizer', 'epoch' and 'extra'",
        )
    return None


def _write(path: str, model: nn.Module, optimizer, epoch: int, extra: dict) -> None:
    """The reference writer (not the student's save_checkpoint)."""
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "epoch": epoch,
        "extra": extra,
    }
    torch.save(checkpoint, path)


def _check_returned(ex: Exercise, result: Any, epoch: int, extra: dict, label: str) -> None:
    expected = {"epoch": epoch, **_snapshot(extra)}
    fix = "return `{'epoch': checkpoint['epoch'], **checkpoint['extra']}`"
    if _type(result) is not dict:
        ex.fail(f"load_checkpoint returned {describe(result)}, expected a dict", case=label, fix=fix)
    if not _plain_keys(result):
        ex.fail("the returned dict has keys that are not plain strings", case=label, fix=fix)
    if "extra" not in expected and set(result) == {"epoch", "extra"}:
        ex.fail(
            f"load_checkpoint returned a dict with the keys {list(result)}, expected {list(expected)}",
            case=label,
            mistake="extra nested instead of merged: the extra values belong next to the epoch",
            fix=fix,
        )
    if any(key in result for key in ("model", "optimizer", "extra")):
        ex.fail(
            f"load_checkpoint returned a dict with the keys {list(result)}",
            case=label,
            mistake="returned the whole checkpoint instead of {'epoch': epoch, **extra}",
            fix=fix,
        )
    problem = _difference(result, expected, "the returned dict")
    if problem:
        ex.fail(problem, case=label, fix=fix)
    ex.passed()


def _check_restored(
    ex: Exercise, model, optimizer, saved_model, saved_optimizer, label: str, parameters: dict
) -> None:
    """The model holds the saved values in its own parameters (``parameters``: those it had before the
    call), and the optimizer, when given, the saved state."""
    for name, parameter in parameters.items():
        if _attribute(model, name) is not parameter:
            ex.fail(
                f"model.{name} is a new object after loading",
                case=label,
                mistake="parameters replaced (assign=True?): the optimizer still holds the old ones and "
                "would no longer train the model",
                fix='`model.load_state_dict(checkpoint["model"])` copies the values into the parameters',
            )
    problem = _difference(_snapshot(model.state_dict()), saved_model, "model.state_dict()")
    if problem:
        ex.fail(
            problem + " after loading",
            case=label,
            mistake="model state not restored",
            fix='`model.load_state_dict(checkpoint["model"])`',
        )
    if optimizer is not None:
        restored = _snapshot(optimizer.state_dict())
        problem = _difference(restored, saved_optimizer, "optimizer.state_dict()")
        if saved_optimizer["state"] and not restored["state"]:
            problem = "the optimizer's state is empty (no moments, no step count)"
        if problem:
            ex.fail(
                problem + " after loading",
                case=label,
                mistake="optimizer state not loaded (resuming diverges: Adam restarts its moments and "
                "step count)",
                fix='`optimizer.load_state_dict(checkpoint["optimizer"])` when an optimizer is given',
            )
    ex.passed()


@dataclass
class _LoadCase:
    sizes: tuple[int, int, int]
    optimizer: str
    epoch: int
    extra: dict = field(default_factory=dict)
    dtype: torch.dtype = torch.float32


def _load_cases(part: str, hidden: bool, seed: int) -> list[_LoadCase]:
    if not hidden:
        adam = _LoadCase((4, 6, 3), "Adam", 5, {"loss": 0.125, "note": "best so far"})
        if part == CORE:
            return [adam]
        return [adam, _LoadCase((3, 4, 2), "SGD with momentum", 12, {})]
    generator = torch.Generator().manual_seed(seed)

    def draw(low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (1,), generator=generator))

    cases = []
    for _ in range(3):
        extra = {f"metric_{k}": draw(0, 1000) / 1000 for k in range(draw(0, 3))}
        if draw(0, 1):
            extra["history"] = [draw(0, 9) / 4 for _ in range(draw(1, 4))]
        cases.append(
            _LoadCase(
                (draw(1, 7), draw(2, 8), draw(1, 5)),
                ("Adam", "AdamW", "SGD with momentum")[draw(0, 2)],
                draw(0, 300),
                extra,
                (torch.float32, torch.float64)[draw(0, 1)],
            )
        )
    return cases


def _fresh(case: _LoadCase, seed: int, device):
    """A model with other values than the saved one, and a new optimizer (empty state)."""
    in_features, hidden, out_features = case.sizes
    model = _build(lambda: _Net(in_features, hidden, out_features), seed + 7919, device, case.dtype)
    return model, _OPTIMIZERS[case.optimizer](model.parameters())


def _check_load_case(
    ex: Exercise, load_checkpoint, case: _LoadCase, seed: int, device, folder: str, part: str
) -> None:
    """Core: model and optimizer from a CPU checkpoint with the default map_location. Edge: the model
    alone, a checkpoint saved on cuda:0, a callable map_location and the device as map_location."""
    # written on the CPU, in the dtype the model has on `device` (float32 on MPS, which lacks float64)
    dtype = dtype_on(torch.device(device), case.dtype)
    source, source_optimizer = _make_trained(case.sizes, case.optimizer, seed, "cpu", dtype)
    saved_model = _snapshot(source.state_dict())
    saved_optimizer = _snapshot(source_optimizer.state_dict())
    path = os.path.join(folder, f"checkpoint_{seed}.pt")
    _write(path, source, source_optimizer, case.epoch, case.extra)
    where = f"model on {device}, {str(case.dtype).removeprefix('torch.')}, {case.optimizer}"

    def load(label: str, *args, with_optimizer: bool = True, file: str = path, **kwargs):
        model, optimizer = _fresh(case, seed, device)
        optimizer = optimizer if with_optimizer else None
        parameters = dict(model.named_parameters())
        given = (model, optimizer) if with_optimizer else (model,)
        result = ex.call(load_checkpoint, file, *given, *args, case=label, hints=_load_hints, **kwargs)
        _check_restored(
            ex, model, optimizer, saved_model, saved_optimizer if with_optimizer else None, label, parameters
        )
        return result

    if part == CORE:
        label = f"load_checkpoint(path, model, optimizer) ({where})"
        _check_returned(ex, load(label), case.epoch, case.extra, label)
        return

    label = f"load_checkpoint(path, model) without an optimizer ({where})"
    _check_returned(ex, load(label, with_optimizer=False), case.epoch, case.extra, label)

    # a checkpoint written on a GPU machine, default map_location
    gpu_path = os.path.join(folder, f"from_gpu_{seed}.pt")
    with _tagged_as("cuda:0"):
        _write(gpu_path, source, source_optimizer, case.epoch, case.extra)
    load(f"a checkpoint saved on cuda:0, loaded with the default map_location ({where})", file=gpu_path)

    # map_location reaches torch.load
    recorder = _MapRecorder()
    label = f"load_checkpoint(path, model, optimizer, map_location=<a function>) ({where})"
    load(label, recorder)
    if not recorder.locations:
        ex.fail(
            "the map_location given was never used",
            case=label,
            mistake="map_location ignored: not passed to torch.load (or replaced by a fixed value)",
            fix="`torch.load(path, map_location=map_location, weights_only=True)`",
        )

    # map_location as the device itself
    load(f"load_checkpoint(path, model, optimizer, map_location={device!r}) ({where})", map_location=device)


def _check_payload(ex: Exercise, load_checkpoint, folder: str) -> None:
    """A checkpoint that would run code when unpickled is refused, and the code does not run."""
    marker = os.path.join(folder, "payload_ran")
    path = os.path.join(folder, "from_a_stranger.pt")
    source = _build(lambda: _Net(3, 4, 2), 11, "cpu", torch.float32)
    _write(path, source, None, 1, {"note": _Payload(marker)})
    model = _build(lambda: _Net(3, 4, 2), 12, "cpu", torch.float32)
    label = "a checkpoint whose extra holds code that runs when unpickled"
    with _unsafe_default():
        error = ex.call(_raised, load_checkpoint, path, model, case=label)
    if os.path.exists(marker):
        ex.fail(
            "loading the checkpoint ran the code hidden in it",
            case=label,
            mistake="weights_only=True missing in torch.load (before PyTorch 2.6 the default was False, "
            "and it can still be switched): a stranger's checkpoint runs any code it likes",
            fix="`torch.load(path, map_location=map_location, weights_only=True)`, and no fallback to "
            "weights_only=False",
        )
    if error is None:
        ex.fail(
            "load_checkpoint returned normally although torch.load(weights_only=True) refuses this file",
            case=label,
            mistake="the UnpicklingError was swallowed",
            fix="let the error propagate: the caller must know the checkpoint was not loaded",
        )
    ex.passed()


def _check_resume(ex: Exercise, load_checkpoint, device, dtype, seed: int, folder: str) -> None:
    """2 epochs, save, load into a fresh model and Adam, 1 more epoch == 3 uninterrupted epochs."""
    in_features, hidden, out_features = 5, 8, 2
    label = f"resume with Adam after 2 of 3 epochs, model on {device}, {str(dtype).removeprefix('torch.')}"
    batches = _batches(seed, in_features, out_features, dtype, device, count=4)

    def adam(model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=0.01)

    uninterrupted = _build(lambda: _Net(in_features, hidden, out_features), seed, device, dtype)
    _train(uninterrupted, adam(uninterrupted), batches, epochs=3)

    first_run = _build(lambda: _Net(in_features, hidden, out_features), seed, device, dtype)
    first_optimizer = adam(first_run)
    _train(first_run, first_optimizer, batches, epochs=2)
    path = os.path.join(folder, f"resume_{seed}.pt")
    _write(path, first_run, first_optimizer, 2, {"note": "after epoch 2"})
    saved_optimizer = _snapshot(first_optimizer.state_dict())

    model = _build(lambda: _Net(in_features, hidden, out_features), seed + 1, device, dtype)
    optimizer = adam(model)
    parameters = dict(model.named_parameters())
    result = ex.call(load_checkpoint, path, model, optimizer, case=label, hints=_load_hints)
    saved_model = _snapshot(first_run.state_dict())
    _check_restored(ex, model, optimizer, saved_model, saved_optimizer, label, parameters)
    _check_returned(ex, result, 2, {"note": "after epoch 2"}, label)
    _train(model, optimizer, batches, epochs=1)
    expected = dict(uninterrupted.named_parameters())
    for name, parameter in model.named_parameters():
        ex.assert_close(
            parameter.detach(),
            expected[name].detach(),
            f"{name} after resuming (compared with 3 uninterrupted epochs)",
            case=label,
            diagnose=lambda actual: (
                "optimizer state not loaded (resuming diverges)",
                'restore it: `optimizer.load_state_dict(checkpoint["optimizer"])`',
            ),
        )


def check_load_checkpoint(load_checkpoint, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Does ``load_checkpoint(path, model, optimizer=None, map_location="cpu")`` restore the model and the
    optimizer from any device, refuse checkpoints that run code, resume training exactly, and return
    ``{"epoch": epoch, **extra}``? Core: model and optimizer restored from a CPU checkpoint, the dict
    returned, a checkpoint that runs code refused, resuming Adam exactly. ``part="edge"``: no optimizer,
    SGD with momentum, empty extra, a checkpoint saved on cuda:0, and map_location as a function or a
    device."""
    __tracebackhide__ = True
    cases = _load_cases(part, hidden, seed)
    with Exercise("load_checkpoint") as ex, tempfile.TemporaryDirectory(prefix="load_checkpoint-") as folder:
        for device in ex.devices:
            for index, case in enumerate(cases):
                _check_load_case(ex, load_checkpoint, case, seed * 100 + index, device, folder, part)
        if part == CORE:
            _check_payload(ex, load_checkpoint, folder)
            for device in ex.devices:
                for dtype in (torch.float32, torch.float64) if hidden else (torch.float32,):
                    _check_resume(ex, load_checkpoint, device, dtype, seed + 31, folder)


# -- load_matching -----------------------------------------------------------------------------------------
@dataclass
class _MatchCase:
    description: str
    in_features: int
    hidden: int
    source_classes: int
    target_classes: int
    source_hidden: int | None = None  # another width: the whole feature extractor mismatches
    source_in_features: int | None = None  # another input size: only the first layer's weight mismatches
    source_dtype: torch.dtype | None = None  # the state_dict's dtype when it is not the model's
    adapter: bool = False  # the target has entries the state_dict lacks
    aux: bool = False  # the state_dict has entries the target does not know
    order: str = "natural"  # or "reversed", or "shuffled"
    drop: tuple[str, ...] = ()  # keys removed from the state_dict
    empty: bool = False
    ordered_dict: bool = True
    dtype: torch.dtype = torch.float32


def _match_cases(part: str, hidden: bool, seed: int) -> list[_MatchCase]:
    """Core: another head, and the same architecture, in the model's order. Edge: unknown entries, entries
    the state_dict lacks, other orders, a plain dict, an empty state_dict, another input size (the first
    weight differs in its second dimension only), a weight with as many numbers in another shape, and a
    state_dict in another dtype."""
    if not hidden:
        if part == CORE:
            return [
                _MatchCase(
                    "a pretrained model with another head (10 classes, the new one has 3)", 4, 6, 10, 3
                ),
                _MatchCase("the same architecture: everything loads", 3, 5, 2, 2),
            ]
        return [
            _MatchCase(
                "unknown entries (aux.*), entries the state_dict lacks (adapter.*), reversed order",
                4,
                6,
                10,
                3,
                adapter=True,
                aux=True,
                order="reversed",
                ordered_dict=False,
            ),
            _MatchCase("the same architecture, entries in another order", 3, 5, 2, 2, order="shuffled"),
            _MatchCase("an empty state_dict", 3, 5, 2, 2, empty=True),
            _MatchCase(
                "a pretrained model for another input size (5 features, the new one has 4): only "
                "features.0.weight differs, (6, 5) against (6, 4)",
                4,
                6,
                3,
                3,
                source_in_features=5,
            ),
            _MatchCase(
                "input size and width swapped: features.0.weight is (6, 4) against (4, 6), as many "
                "numbers in another shape",
                6,
                4,
                3,
                3,
                source_hidden=6,
                source_in_features=4,
            ),
            _MatchCase(
                "a float64 state_dict for a float32 model (load_state_dict casts the values)",
                4,
                6,
                10,
                3,
                source_dtype=torch.float64,
            ),
        ]
    generator = torch.Generator().manual_seed(seed)

    def draw(low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (1,), generator=generator))

    cases = []
    for index in range(3 if part == CORE else 5):
        width, in_features = draw(2, 7), draw(1, 6)
        dtype = (torch.float32, torch.float64)[draw(0, 1)]
        if part == CORE:
            cases.append(
                _MatchCase(
                    f"random case {index}: another head",
                    in_features,
                    width,
                    draw(1, 6),
                    draw(1, 6),
                    ordered_dict=bool(draw(0, 1)),
                    dtype=dtype,
                )
            )
            continue
        cases.append(
            _MatchCase(
                f"random case {index}",
                in_features,
                width,
                draw(1, 6),
                draw(1, 6),
                source_hidden=width + draw(1, 3) if index == 0 else None,
                source_in_features=in_features + draw(1, 3) if index == 1 else None,
                source_dtype=(torch.float32, torch.float64)[draw(0, 1)],
                adapter=bool(draw(0, 1)),
                aux=bool(draw(0, 1)),
                order=("natural", "reversed", "shuffled")[draw(0, 2)],
                drop=("features.1.running_var", "head.bias")[: draw(0, 2)],
                ordered_dict=bool(draw(0, 1)),
                dtype=dtype,
            )
        )
    return cases


def _state_dict_for(case: _MatchCase, seed: int) -> dict:
    """The "pretrained" state_dict (on the CPU, as map_location='cpu' gives it), in the case's order."""
    width = case.source_hidden or case.hidden
    in_features = case.source_in_features or case.in_features
    dtype = case.source_dtype or case.dtype
    source = _build(
        lambda: _Classifier(in_features, width, case.source_classes, aux=case.aux), seed, "cpu", dtype
    )
    with torch.no_grad():  # fill the BatchNorm buffers with something other than their initial values
        source(torch.randn(8, in_features, generator=torch.Generator().manual_seed(seed), dtype=dtype))
    items = [(k, v.clone()) for k, v in source.state_dict().items() if k not in case.drop]
    if case.empty:
        items = []
    if case.order == "reversed":
        items.reverse()
    elif case.order == "shuffled":
        permutation = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed + 1))
        items = [items[int(i)] for i in permutation]
    return OrderedDict(items) if case.ordered_dict else dict(items)


def _matching_hints(exc: BaseException):
    text = str(exc)
    if "size mismatch" in text:
        return (
            "strict=False alone, or shapes compared only in part (len(), size(0), numel()): strict=False "
            "forgives missing and unexpected keys, but a shape mismatch still raises",
            "keep only the entries whose name and whole shape match the model's (`value.shape == "
            "own[key].shape`), then load those with strict=False",
        )
    if "leaf Variable that requires grad" in text:
        return (
            "in-place copy into a parameter outside torch.no_grad()",
            "wrap the copies in `with torch.no_grad():`, or load the subset with "
            "`model.load_state_dict(subset, strict=False)`",
        )
    if "Missing key(s)" in text:
        return (
            "strict=True (the default) requires every entry of the model",
            "load the matching subset with `model.load_state_dict(subset, strict=False)`",
        )
    if "Unexpected key(s)" in text:
        return (
            "keys the model does not have were passed to load_state_dict",
            "load only the keys that are in model.state_dict() with the same shape",
        )
    return None


def _key_list(ex: Exercise, value: Any, what: str, label: str) -> list[str]:
    if _type(value) is not list:
        ex.fail(
            f"{what} is {describe(value)}, expected a list of keys",
            case=label,
            fix="return two lists: `return loaded, skipped`",
        )
    for key in value:
        if _type(key) is not str:
            ex.fail(f"{what} holds {describe(key)}, expected the state_dict's keys (str)", case=label)
    return value


def _lists_diagnosis(
    loaded, skipped, expected_loaded, expected_skipped, mismatched, unknown, sd_keys, buffers, retyped
):
    if loaded != skipped and loaded == expected_skipped and skipped == expected_loaded:
        return "the two lists swapped", "return `(loaded_keys, skipped_keys)` in that order"
    if any(key in skipped for key in retyped):
        return (
            "keys skipped because their dtype differs: only the name and the shape count "
            "(load_state_dict casts the values to the model's dtype)",
            "compare names and shapes only",
        )
    if any(key in loaded for key in mismatched):
        return (
            "shape-mismatched keys reported as loaded",
            "a key whose shape differs from the model's is skipped: compare `value.shape` with the model's",
        )
    if any(key in loaded for key in unknown):
        return "keys the model does not have reported as loaded", "check the name against model.state_dict()"
    if any(key not in sd_keys for key in loaded + skipped):
        return (
            "keys that are not in the state_dict listed (model entries it lacks belong in neither list)",
            "go through `state_dict.items()` and put each key in exactly one list",
        )
    if any(key in skipped for key in buffers):
        return (
            "buffers reported as skipped: the model's entries include its buffers",
            "compare with `model.state_dict()` (parameters and buffers), not named_parameters()",
        )
    if sorted(loaded) == sorted(expected_loaded) and sorted(skipped) == sorted(expected_skipped):
        return "order not the state_dict's", "go through `state_dict.items()` in order"
    if any(key not in skipped for key in expected_skipped):
        return (
            "skipped keys not reported (unknown names and shape mismatches both count as skipped)",
            "append every key that does not load to the skipped list",
        )
    return None


def _attribute(model: nn.Module, name: str) -> Any:
    """``model.a.b.weight`` for the name ``"a.b.weight"`` (None when it is gone)."""
    target: Any = model
    for part in name.split("."):
        target = getattr(target, part, None)
    return target


def _check_match_case(ex: Exercise, load_matching, case: _MatchCase, seed: int, device) -> None:
    label = f"{case.description} (model on {device}, {str(case.dtype).removeprefix('torch.')})"
    state_dict = _state_dict_for(case, seed)
    model = _build(
        lambda: _Classifier(case.in_features, case.hidden, case.target_classes, adapter=case.adapter),
        seed + 7919,
        device,
        case.dtype,
    )
    own = {key: value.detach().clone() for key, value in model.state_dict().items()}
    buffers = {name for name, _ in model.named_buffers()}
    parameters = dict(model.named_parameters())
    given = [(key, value, value.clone()) for key, value in state_dict.items()]

    result = ex.call(load_matching, model, state_dict, case=label, hints=_matching_hints)
    if _type(result) not in (tuple, list) or len(result) != 2:
        ex.fail(
            f"load_matching returned {describe(result)}, expected (loaded_keys, skipped_keys)",
            case=label,
            fix="`return loaded, skipped`",
        )
    loaded = _key_list(ex, result[0], "loaded_keys", label)
    skipped = _key_list(ex, result[1], "skipped_keys", label)

    sd_keys = [key for key, _, _ in given]
    mismatched = [k for k, v, _ in given if k in own and tuple(v.shape) != tuple(own[k].shape)]
    unknown = [k for k in sd_keys if k not in own]
    expected_loaded = [k for k in sd_keys if k in own and k not in mismatched]
    expected_skipped = [k for k in sd_keys if k not in expected_loaded]
    retyped = [k for k, v, _ in given if k in expected_loaded and v.dtype != own[k].dtype]
    if list(loaded) != expected_loaded or list(skipped) != expected_skipped:
        hint = _lists_diagnosis(
            list(loaded),
            list(skipped),
            expected_loaded,
            expected_skipped,
            mismatched,
            unknown,
            sd_keys,
            buffers,
            retyped,
        )
        mistake, fix = hint if hint else (None, "loaded: name in the model and same shape; skipped: the rest")
        if list(loaded) != expected_loaded:
            problem = f"loaded_keys is {list(loaded)}, expected {expected_loaded}"
        else:
            problem = f"skipped_keys is {list(skipped)}, expected {expected_skipped}"
        ex.fail(
            problem,
            case=label,
            mistake=mistake,
            fix=fix,
        )
    ex.passed()

    # the state_dict given is left as it was
    if list(state_dict.keys()) != sd_keys or any(
        state_dict[k] is not value or not _equal(value, copy_) for k, value, copy_ in given
    ):
        ex.fail(
            "load_matching changed the state_dict it was given",
            case=label,
            fix="read from it; build a new dict for the entries to load",
        )

    # values: loaded entries copied, everything else untouched, same Parameter objects
    after = model.state_dict()
    for name, parameter in parameters.items():
        if _attribute(model, name) is not parameter:
            ex.fail(
                f"model.{name} is a new object after loading",
                case=label,
                mistake="parameters replaced (an optimizer built before would no longer train them)",
                fix="copy values into the existing tensors: load_state_dict(subset, strict=False) does",
            )
    values = {key: value for key, value, _ in given}
    for key in own:
        now = after[key]
        if key in expected_loaded:
            want = values[key].to(device=now.device, dtype=now.dtype)
            if not _equal(now.detach(), want):
                ex.fail(
                    f"model entry {key} does not hold the state_dict's value after loading",
                    case=label,
                    mistake="buffers not loaded" if key in buffers else "a matching entry was not loaded",
                    fix="load every key whose name and shape match, buffers included",
                )
            shared = now.untyped_storage().data_ptr() == values[key].untyped_storage().data_ptr()
            if now.device.type == "cpu" and shared:
                ex.fail(
                    f"model entry {key} shares memory with the state_dict's tensor",
                    case=label,
                    mistake="values aliased instead of copied (assign=True or .data = ...)",
                    fix="`model.load_state_dict(subset, strict=False)` copies the values",
                )
        elif not _equal(now.detach(), own[key]):
            ex.fail(
                f"model entry {key} changed although it was not loaded",
                case=label,
                fix="leave the model's other entries untouched",
            )
    ex.passed()


def check_load_matching(load_matching, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Does ``load_matching(model, state_dict)`` load exactly the entries whose name and shape match, leave
    the rest of the model untouched, and report ``(loaded_keys, skipped_keys)`` in the state_dict's order?
    Core: a pretrained model with another head, and the same architecture. ``part="edge"``: unknown
    entries, entries the state_dict lacks, other orders, a plain dict, an empty state_dict, another input
    size and another dtype."""
    __tracebackhide__ = True
    cases = _match_cases(part, hidden, seed)
    with Exercise("load_matching") as ex:
        for device in ex.devices:
            for index, case in enumerate(cases):
                _check_match_case(ex, load_matching, case, seed * 100 + index, device)


protect_module(__name__)
