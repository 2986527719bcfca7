"""10_saving_loading: the contract's mistakes for save_checkpoint, load_checkpoint and load_matching."""

from tests.catalogue import Alternative, Mistake

NOTEBOOK = "10_saving_loading"

MISTAKES = [
    # save_checkpoint
    Mistake(
        "save_checkpoint",
        "optimizer state not saved",
        """
import os

import torch


def save_checkpoint(path, model, optimizer, epoch, **extra):
    checkpoint = {"model": model.state_dict(), "epoch": epoch, "extra": extra}
    temporary = os.fspath(path) + ".tmp"
    torch.save(checkpoint, temporary)
    os.replace(temporary, path)
""",
        "optimizer state not saved",
    ),
    Mistake(
        "save_checkpoint",
        "optimizer saved as None",
        """
import os

import torch


def save_checkpoint(path, model, optimizer, epoch, **extra):
    checkpoint = {"model": model.state_dict(), "optimizer": None, "epoch": epoch, "extra": extra}
    temporary = os.fspath(path) + ".tmp"
    torch.save(checkpoint, temporary)
    os.replace(temporary, path)
""",
        "optimizer state not saved",
    ),
    Mistake(
        "save_checkpoint",
        "whole model pickled",
        """
import os

import torch


def save_checkpoint(path, model, optimizer, epoch, **extra):
    checkpoint = {
        "model": model,
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "epoch": epoch,
        "extra": extra,
    }
    temporary = os.fspath(path) + ".tmp"
    torch.save(checkpoint, temporary)
    os.replace(temporary, path)
""",
        "whole model pickled",
    ),
    Mistake(
        "save_checkpoint",
        "optimizer object pickled",
        """
import os

import torch


def save_checkpoint(path, model, optimizer, epoch, **extra):
    checkpoint = {"model": model.state_dict(), "optimizer": optimizer, "epoch": epoch, "extra": extra}
    temporary = os.fspath(path) + ".tmp"
    torch.save(checkpoint, temporary)
    os.replace(temporary, path)
""",
        "optimizer object itself pickled",
    ),
    Mistake(
        "save_checkpoint",
        "non-atomic write",
        """
import torch


def save_checkpoint(path, model, optimizer, epoch, **extra):
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "epoch": epoch,
        "extra": extra,
    }
    torch.save(checkpoint, path)
""",
        "non-atomic write",
    ),
    Mistake(
        "save_checkpoint",
        "rewritten in place from memory",
        """
import io

import torch


def save_checkpoint(path, model, optimizer, epoch, **extra):
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "epoch": epoch,
        "extra": extra,
    }
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    with open(path, "wb") as file:
        file.write(buffer.getvalue())
""",
        "non-atomic write",
    ),
    Mistake(
        "save_checkpoint",
        "temporary file copied over the checkpoint",
        """
import os
import shutil

import torch


def save_checkpoint(path, model, optimizer, epoch, **extra):
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "epoch": epoch,
        "extra": extra,
    }
    temporary = os.fspath(path) + ".tmp"
    try:
        torch.save(checkpoint, temporary)
        shutil.copyfile(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
""",
        "non-atomic write",
    ),
    Mistake(
        "save_checkpoint",
        "temporary file in another folder",
        """
import os
import tempfile

import torch


def save_checkpoint(path, model, optimizer, epoch, **extra):
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "epoch": epoch,
        "extra": extra,
    }
    handle, temporary = tempfile.mkstemp(suffix=".pt")  # in /tmp, not next to the checkpoint
    os.close(handle)
    try:
        torch.save(checkpoint, temporary)
        os.replace(temporary, path)
    except BaseException:
        os.remove(temporary)
        raise
""",
        "temporary file in another folder",
    ),
    Mistake(
        "save_checkpoint",
        "shutil.move from the temporary folder",
        """
import shutil
import tempfile
from pathlib import Path

import torch


def save_checkpoint(path, model, optimizer, epoch, **extra):
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "epoch": epoch,
        "extra": extra,
    }
    with tempfile.TemporaryDirectory() as folder:
        temporary = Path(folder) / "checkpoint.pt"
        torch.save(checkpoint, temporary)
        shutil.move(temporary, path)
""",
        "temporary file in another folder",
    ),
    Mistake(
        "save_checkpoint",
        "extra not stored under extra",
        """
import os

import torch


def save_checkpoint(path, model, optimizer, epoch, **extra):
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "epoch": epoch,
        **extra,
    }
    temporary = os.fspath(path) + ".tmp"
    torch.save(checkpoint, temporary)
    os.replace(temporary, path)
""",
        'extra not stored under "extra"',
    ),
    Mistake(
        "save_checkpoint",
        "parameters only",
        """
import os

import torch


def save_checkpoint(path, model, optimizer, epoch, **extra):
    checkpoint = {
        "model": dict(model.named_parameters()),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "epoch": epoch,
        "extra": extra,
    }
    temporary = os.fspath(path) + ".tmp"
    torch.save(checkpoint, temporary)
    os.replace(temporary, path)
""",
        "only the parameters saved",
    ),
    Mistake(
        "save_checkpoint",
        "temporary file left behind after a failed save",
        """
import os

import torch


def save_checkpoint(path, model, optimizer, epoch, **extra):
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "epoch": epoch,
        "extra": extra,
    }
    temporary = os.fspath(path) + ".tmp"
    torch.save(checkpoint, temporary)
    os.replace(temporary, path)
""",
        "temporary file left behind",
    ),
    Mistake(
        "save_checkpoint",
        "error swallowed",
        """
import os

import torch


def save_checkpoint(path, model, optimizer, epoch, **extra):
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "epoch": epoch,
        "extra": extra,
    }
    temporary = os.fspath(path) + ".tmp"
    try:
        torch.save(checkpoint, temporary)
        os.replace(temporary, path)
    except Exception:
        os.remove(temporary)
""",
        "the error was swallowed",
    ),
    Mistake(
        "save_checkpoint",
        "pathlib.Path not supported",
        """
import os

import torch


def save_checkpoint(path, model, optimizer, epoch, **extra):
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "epoch": epoch,
        "extra": extra,
    }
    temporary = path + ".tmp"
    try:
        torch.save(checkpoint, temporary)
        os.replace(temporary, path)
    except BaseException:
        os.remove(temporary)
        raise
""",
        "path can be a str or a pathlib.Path",
    ),
    Mistake(
        "save_checkpoint",
        "state_dict not called",
        """
import os

import torch


def save_checkpoint(path, model, optimizer, epoch, **extra):
    checkpoint = {
        "model": model.state_dict,
        "optimizer": None if optimizer is None else optimizer.state_dict,
        "epoch": epoch,
        "extra": extra,
    }
    temporary = os.fspath(path) + ".tmp"
    torch.save(checkpoint, temporary)
    os.replace(temporary, path)
""",
        "state_dict not called",
    ),
    Mistake(
        "save_checkpoint",
        "relative temporary name (in the working directory)",
        """
import os

import torch


def save_checkpoint(path, model, optimizer, epoch, **extra):
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "epoch": epoch,
        "extra": extra,
    }
    temporary = os.path.basename(os.fspath(path)) + ".partial"  # relative: the working directory
    try:
        torch.save(checkpoint, temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
""",
        "temporary file in another folder",
    ),
    Mistake(
        "save_checkpoint",
        "previous checkpoint removed before the rename",
        """
import os

import torch


def save_checkpoint(path, model, optimizer, epoch, **extra):
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "epoch": epoch,
        "extra": extra,
    }
    temporary = os.fspath(path) + ".tmp"
    try:
        torch.save(checkpoint, temporary)
    except BaseException:
        os.remove(temporary)
        raise
    if os.path.exists(path):
        os.remove(path)  # os.rename would refuse to overwrite it on Windows
    os.rename(temporary, path)
""",
        "previous checkpoint removed before the rename",
    ),
    Mistake(
        "save_checkpoint",
        "arguments of os.replace swapped",
        """
import os

import torch


def save_checkpoint(path, model, optimizer, epoch, **extra):
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "epoch": epoch,
        "extra": extra,
    }
    temporary = os.fspath(path) + ".tmp"
    try:
        torch.save(checkpoint, temporary)
        os.replace(path, temporary)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
""",
        "arguments of os.replace swapped",
    ),
    Mistake(
        "save_checkpoint",
        "backup copy, then overwritten in place",
        """
import os
import shutil

import torch


def save_checkpoint(path, model, optimizer, epoch, **extra):
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "epoch": epoch,
        "extra": extra,
    }
    path = os.fspath(path)
    if os.path.exists(path):
        shutil.copyfile(path, path + ".bak")
    torch.save(checkpoint, path)
    if os.path.exists(path + ".bak"):
        os.remove(path + ".bak")
""",
        "non-atomic write",
    ),
    Mistake(
        "save_checkpoint",
        "mkstemp's file descriptor never closed",
        """
import os
import tempfile

import torch


def save_checkpoint(path, model, optimizer, epoch, **extra):
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "epoch": epoch,
        "extra": extra,
    }
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)))
    try:
        torch.save(checkpoint, temporary)
        os.replace(temporary, path)
    except BaseException:
        os.remove(temporary)
        raise
""",
        "file left open",
    ),
    Mistake(
        "save_checkpoint",
        "pickle.dump instead of torch.save",
        """
import os
import pickle


def save_checkpoint(path, model, optimizer, epoch, **extra):
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "epoch": epoch,
        "extra": extra,
    }
    temporary = os.fspath(path) + ".tmp"
    try:
        with open(temporary, "wb") as file:
            pickle.dump(checkpoint, file)
        os.replace(temporary, path)
    except BaseException:
        os.remove(temporary)
        raise
""",
        "torch.save(checkpoint, file)",
    ),
    # load_checkpoint
    Mistake(
        "load_checkpoint",
        "optimizer state not loaded",
        """
import torch


def load_checkpoint(path, model, optimizer=None, map_location="cpu"):
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    model.load_state_dict(checkpoint["model"])
    return {"epoch": checkpoint["epoch"], **checkpoint["extra"]}
""",
        "optimizer state not loaded",
    ),
    Mistake(
        "load_checkpoint",
        "weights_only missing",
        """
import torch


def load_checkpoint(path, model, optimizer=None, map_location="cpu"):
    checkpoint = torch.load(path, map_location=map_location)
    model.load_state_dict(checkpoint["model"])
    if optimizer is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
    return {"epoch": checkpoint["epoch"], **checkpoint["extra"]}
""",
        "weights_only=True missing",
    ),
    Mistake(
        "load_checkpoint",
        "fallback to weights_only=False",
        """
import pickle

import torch


def load_checkpoint(path, model, optimizer=None, map_location="cpu"):
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    model.load_state_dict(checkpoint["model"])
    if optimizer is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
    return {"epoch": checkpoint["epoch"], **checkpoint["extra"]}
""",
        "ran the code hidden in it",
    ),
    Mistake(
        "load_checkpoint",
        "whole checkpoint returned",
        """
import torch


def load_checkpoint(path, model, optimizer=None, map_location="cpu"):
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    model.load_state_dict(checkpoint["model"])
    if optimizer is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
    return checkpoint
""",
        "returned the whole checkpoint",
    ),
    Mistake(
        "load_checkpoint",
        "epoch left out of the returned dict",
        """
import torch


def load_checkpoint(path, model, optimizer=None, map_location="cpu"):
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    model.load_state_dict(checkpoint["model"])
    if optimizer is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
    return checkpoint["extra"]
""",
        "missing ['epoch']",
    ),
    Mistake(
        "load_checkpoint",
        "map_location not passed",
        """
import torch


def load_checkpoint(path, model, optimizer=None, map_location="cpu"):
    checkpoint = torch.load(path, weights_only=True)
    model.load_state_dict(checkpoint["model"])
    if optimizer is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
    return {"epoch": checkpoint["epoch"], **checkpoint["extra"]}
""",
        "map_location not passed to torch.load",
    ),
    Mistake(
        "load_checkpoint",
        "optimizer=None not handled",
        """
import torch


def load_checkpoint(path, model, optimizer=None, map_location="cpu"):
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    return {"epoch": checkpoint["epoch"], **checkpoint["extra"]}
""",
        "optimizer=None not handled",
    ),
    Mistake(
        "load_checkpoint",
        "whole checkpoint passed to load_state_dict with strict=False",
        """
import torch


def load_checkpoint(path, model, optimizer=None, map_location="cpu"):
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    model.load_state_dict(checkpoint, strict=False)
    if optimizer is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
    return {"epoch": checkpoint["epoch"], **checkpoint["extra"]}
""",
        "model state not restored",
    ),
    Mistake(
        "load_checkpoint",
        "assign=True replaces the parameters",
        """
import torch


def load_checkpoint(path, model, optimizer=None, map_location="cpu"):
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    model.load_state_dict(checkpoint["model"], assign=True)
    if optimizer is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
    return {"epoch": checkpoint["epoch"], **checkpoint["extra"]}
""",
        "parameters replaced",
    ),
    Mistake(
        "load_checkpoint",
        "extra nested in the returned dict",
        """
import torch


def load_checkpoint(path, model, optimizer=None, map_location="cpu"):
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    model.load_state_dict(checkpoint["model"])
    if optimizer is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
    return {"epoch": checkpoint["epoch"], "extra": checkpoint["extra"]}
""",
        "extra nested instead of merged",
    ),
    Mistake(
        "load_checkpoint",
        "state loaded into a new optimizer",
        """
import torch


def load_checkpoint(path, model, optimizer=None, map_location="cpu"):
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    model.load_state_dict(checkpoint["model"])
    if optimizer is not None:
        optimizer = type(optimizer)(model.parameters(), **optimizer.defaults)
        optimizer.load_state_dict(checkpoint["optimizer"])
    return {"epoch": checkpoint["epoch"], **checkpoint["extra"]}
""",
        "optimizer state not loaded",
    ),
    Mistake(
        "load_checkpoint",
        "map_location hard-coded",
        """
import torch


def load_checkpoint(path, model, optimizer=None, map_location="cpu"):
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(checkpoint["model"])
    if optimizer is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
    return {"epoch": checkpoint["epoch"], **checkpoint["extra"]}
""",
        "map_location ignored",
    ),
    Mistake(
        "load_checkpoint",
        "loading errors swallowed",
        """
import torch


def load_checkpoint(path, model, optimizer=None, map_location="cpu"):
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception:
        return {"epoch": 0}
    model.load_state_dict(checkpoint["model"])
    if optimizer is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
    return {"epoch": checkpoint["epoch"], **checkpoint["extra"]}
""",
        "the UnpicklingError was swallowed",
    ),
    # load_matching
    Mistake(
        "load_matching",
        "strict=False alone",
        """
def load_matching(model, state_dict):
    result = model.load_state_dict(state_dict, strict=False)
    skipped = list(result.unexpected_keys)
    loaded = [key for key in state_dict if key not in skipped]
    return loaded, skipped
""",
        "strict=False alone",
    ),
    Mistake(
        "load_matching",
        "skipped keys not reported",
        """
def load_matching(model, state_dict):
    own = model.state_dict()
    matching = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matching, strict=False)
    return list(matching), []
""",
        "skipped keys not reported",
    ),
    Mistake(
        "load_matching",
        "only unknown names reported as skipped",
        """
def load_matching(model, state_dict):
    own = model.state_dict()
    matching = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matching, strict=False)
    return list(matching), [k for k in state_dict if k not in own]
""",
        "skipped keys not reported",
    ),
    Mistake(
        "load_matching",
        "shape-mismatched keys reported as loaded",
        """
def load_matching(model, state_dict):
    own = model.state_dict()
    loaded = [k for k in state_dict if k in own]
    skipped = [k for k in state_dict if k not in own]
    model.load_state_dict(
        {k: state_dict[k] for k in loaded if state_dict[k].shape == own[k].shape}, strict=False
    )
    return loaded, skipped
""",
        "shape-mismatched keys reported as loaded",
    ),
    Mistake(
        "load_matching",
        "order not the state_dict's",
        """
def load_matching(model, state_dict):
    own = model.state_dict()
    loaded = [k for k in own if k in state_dict and state_dict[k].shape == own[k].shape]
    skipped = [k for k in state_dict if k not in loaded]
    model.load_state_dict({k: state_dict[k] for k in loaded}, strict=False)
    return loaded, skipped
""",
        "order not the state_dict's",
    ),
    Mistake(
        "load_matching",
        "parameters only (buffers skipped)",
        """
def load_matching(model, state_dict):
    own = dict(model.named_parameters())
    loaded, skipped = [], []
    for key, value in state_dict.items():
        (loaded if key in own and own[key].shape == value.shape else skipped).append(key)
    model.load_state_dict({k: state_dict[k] for k in loaded}, strict=False)
    return loaded, skipped
""",
        "buffers reported as skipped",
    ),
    Mistake(
        "load_matching",
        "strict left True",
        """
def load_matching(model, state_dict):
    own = model.state_dict()
    loaded, skipped = [], []
    for key, value in state_dict.items():
        (loaded if key in own and own[key].shape == value.shape else skipped).append(key)
    model.load_state_dict({k: state_dict[k] for k in loaded})
    return loaded, skipped
""",
        "strict=True (the default) requires every entry",
    ),
    Mistake(
        "load_matching",
        "assign=True replaces the parameters",
        """
def load_matching(model, state_dict):
    own = model.state_dict()
    loaded, skipped = [], []
    for key, value in state_dict.items():
        (loaded if key in own and own[key].shape == value.shape else skipped).append(key)
    model.load_state_dict({k: state_dict[k] for k in loaded}, strict=False, assign=True)
    return loaded, skipped
""",
        "parameters replaced",
    ),
    Mistake(
        "load_matching",
        "state_dict emptied",
        """
def load_matching(model, state_dict):
    own = model.state_dict()
    loaded, skipped = [], []
    for key in list(state_dict):
        value = state_dict.pop(key)
        (loaded if key in own and own[key].shape == value.shape else skipped).append(key)
        if key in loaded:
            model.load_state_dict({key: value}, strict=False)
    return loaded, skipped
""",
        "changed the state_dict it was given",
    ),
    Mistake(
        "load_matching",
        "sizes compared with numel()",
        """
def load_matching(model, state_dict):
    own = model.state_dict()
    loaded, skipped = [], []
    for key, value in state_dict.items():
        if key in own and own[key].numel() == value.numel():
            loaded.append(key)
        else:
            skipped.append(key)
    model.load_state_dict({key: state_dict[key] for key in loaded}, strict=False)
    return loaded, skipped
""",
        "shapes compared only in part",
    ),
    Mistake(
        "load_matching",
        "the two lists swapped",
        """
def load_matching(model, state_dict):
    own = model.state_dict()
    loaded, skipped = [], []
    for key, value in state_dict.items():
        (loaded if key in own and own[key].shape == value.shape else skipped).append(key)
    model.load_state_dict({k: state_dict[k] for k in loaded}, strict=False)
    return skipped, loaded
""",
        "the two lists swapped",
    ),
    Mistake(
        "load_matching",
        "values aliased with .data",
        """
def load_matching(model, state_dict):
    own = model.state_dict()
    loaded, skipped = [], []
    for key, value in state_dict.items():
        (loaded if key in own and own[key].shape == value.shape else skipped).append(key)
    for key in loaded:
        module_name, _, name = key.rpartition(".")
        getattr(model.get_submodule(module_name), name).data = state_dict[key]
    return loaded, skipped
""",
        "values aliased instead of copied",
    ),
    Mistake(
        "load_matching",
        "copy_ into parameters outside torch.no_grad()",
        """
def load_matching(model, state_dict):
    own = dict(model.named_parameters())
    own.update(model.named_buffers())
    loaded, skipped = [], []
    for key, value in state_dict.items():
        if key in own and own[key].shape == value.shape:
            own[key].copy_(value)
            loaded.append(key)
        else:
            skipped.append(key)
    return loaded, skipped
""",
        "in-place copy into a parameter outside torch.no_grad()",
    ),
    Mistake(
        "load_matching",
        "dtype compared too",
        """
def load_matching(model, state_dict):
    own = model.state_dict()
    loaded, skipped = [], []
    for key, value in state_dict.items():
        target = own.get(key)
        if target is not None and target.shape == value.shape and target.dtype == value.dtype:
            loaded.append(key)
        else:
            skipped.append(key)
    model.load_state_dict({key: state_dict[key] for key in loaded}, strict=False)
    return loaded, skipped
""",
        "keys skipped because their dtype differs",
    ),
    Mistake(
        "load_matching",
        "the model's leftover entries reported as skipped",
        """
def load_matching(model, state_dict):
    own = model.state_dict()
    loaded = [k for k, v in state_dict.items() if k in own and own[k].shape == v.shape]
    skipped = [k for k in own if k not in loaded]
    model.load_state_dict({k: state_dict[k] for k in loaded}, strict=False)
    return loaded, skipped
""",
        "keys that are not in the state_dict listed",
    ),
    Mistake(
        "load_matching",
        "sets returned",
        """
def load_matching(model, state_dict):
    own = model.state_dict()
    loaded = {k for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict({k: state_dict[k] for k in loaded}, strict=False)
    return loaded, set(state_dict) - loaded
""",
        "expected a list of keys",
    ),
]

ALTERNATIVES = [
    Alternative(
        "save_checkpoint",
        "NamedTemporaryFile and Path.replace",
        """
import tempfile
from pathlib import Path

import torch


def save_checkpoint(path, model, optimizer, epoch, **extra):
    path = Path(path)
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "epoch": epoch,
        "extra": dict(extra),
    }
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".partial", delete=False) as file:
        temporary = Path(file.name)
        try:
            torch.save(checkpoint, file)
        except BaseException:
            file.close()
            temporary.unlink()
            raise
    temporary.replace(path)
""",
    ),
    Alternative(
        "save_checkpoint",
        "a fixed .tmp name next to the checkpoint, cleaned up in finally",
        """
import os

import torch


def save_checkpoint(path, model, optimizer, epoch, **extra):
    temporary = f"{os.fspath(path)}.tmp"
    try:
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": None if optimizer is None else optimizer.state_dict(),
                "epoch": epoch,
                "extra": extra,
            },
            temporary,
        )
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
""",
    ),
    Alternative(
        "save_checkpoint",
        "pickled in memory first, then written to a temporary file and renamed",
        """
import io
import os

import torch


def save_checkpoint(path, model, optimizer, epoch, **extra):
    buffer = io.BytesIO()
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer and optimizer.state_dict(),
            "epoch": epoch,
            "extra": extra,
        },
        buffer,
    )
    folder, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as file:
        file.write(buffer.getvalue())
    os.rename(temporary, path)
""",
    ),
    Alternative(
        "save_checkpoint",
        "tempfile.mkstemp in the same folder (mode 0600: full marks, and a note)",
        """
import os
import tempfile

import torch


def save_checkpoint(path, model, optimizer, epoch, **extra):
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "epoch": epoch,
        "extra": extra,
    }
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".checkpoint-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(checkpoint, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.remove(temporary)
        raise
""",
    ),
    Alternative(
        "save_checkpoint",
        "os.open with O_CREAT | O_EXCL and mode 0o666, a uuid in the name",
        """
import os
import uuid

import torch


def save_checkpoint(path, model, optimizer, epoch, **extra):
    target = os.path.abspath(os.fspath(path))
    temporary = f"{target}.{uuid.uuid4().hex}.partial"
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(handle, "wb") as file:
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict() if optimizer else None,
                    "epoch": epoch,
                    "extra": extra,
                },
                file,
            )
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise
""",
    ),
    Alternative(
        "load_checkpoint",
        "an open file and a merged dict",
        """
import torch


def load_checkpoint(path, model, optimizer=None, map_location="cpu"):
    with open(path, "rb") as file:
        checkpoint = torch.load(file, map_location=map_location, weights_only=True)
    model.load_state_dict(checkpoint["model"], strict=True)
    if optimizer is not None and checkpoint["optimizer"] is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
    info = dict(checkpoint["extra"])
    info["epoch"] = checkpoint["epoch"]
    return info
""",
    ),
    Alternative(
        "load_checkpoint",
        "positional arguments and dict union",
        """
import torch


def load_checkpoint(path, model, optimizer=None, map_location="cpu"):
    state = torch.load(path, map_location, weights_only=True)
    model.load_state_dict(state["model"])
    if optimizer:
        optimizer.load_state_dict(state["optimizer"])
    return {"epoch": state["epoch"]} | state["extra"]
""",
    ),
    Alternative(
        "load_checkpoint",
        "memory-mapped load (mmap=True)",
        """
import torch


def load_checkpoint(path, model, optimizer=None, map_location="cpu"):
    checkpoint = torch.load(path, map_location=map_location, weights_only=True, mmap=True)
    model.load_state_dict(checkpoint["model"])
    if optimizer is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
    return dict(epoch=checkpoint["epoch"], **checkpoint["extra"])
""",
    ),
    Alternative(
        "load_matching",
        "a set of matching names, then two list comprehensions",
        """
def load_matching(model, state_dict):
    shapes = {name: tensor.shape for name, tensor in model.state_dict().items()}
    matching = {name for name, value in state_dict.items() if shapes.get(name) == value.shape}
    model.load_state_dict({name: state_dict[name] for name in matching}, strict=False)
    return [k for k in state_dict if k in matching], [k for k in state_dict if k not in matching]
""",
    ),
    Alternative(
        "load_matching",
        "copying into model.state_dict()'s tensors",
        """
import torch


def load_matching(model, state_dict):
    own = model.state_dict()
    loaded = [k for k, v in state_dict.items() if k in own and own[k].shape == v.shape]
    skipped = [k for k in state_dict if k not in loaded]
    with torch.no_grad():
        for key in loaded:
            own[key].copy_(state_dict[key])
    return loaded, skipped
""",
    ),
    Alternative(
        "load_matching",
        "named_parameters and named_buffers, load_state_dict on the subset",
        """
def load_matching(model, state_dict):
    shapes = {name: tuple(t.shape) for name, t in model.named_parameters()}
    shapes.update({name: tuple(t.shape) for name, t in model.named_buffers()})
    loaded, skipped = [], []
    for key, value in state_dict.items():
        if shapes.get(key) == tuple(value.shape):
            loaded.append(key)
        else:
            skipped.append(key)
    subset = {key: state_dict[key] for key in loaded}
    missing, unexpected = model.load_state_dict(subset, strict=False)
    assert not unexpected
    return loaded, skipped
""",
    ),
]
