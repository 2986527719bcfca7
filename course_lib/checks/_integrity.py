"""Tamper evidence for the checks.

A test cell trusts three things: PyTorch's comparison functions, Python's builtins and the course's own
check functions. Student code runs in the same kernel and could replace any of them (``torch.allclose =
lambda *a, **k: True``). This module records them when course_lib is imported, in the notebook's setup
cell, before any student code has run, and lets every check ask whether anything was replaced since.
The course's check modules also refuse attribute assignment and always hand out their original
functions, so a replaced check is never the one a test cell calls.

This protects against code in the notebook; it is not a sandbox. The grader's own defences live
outside the kernel (see the README's threat model).
"""

from __future__ import annotations

import builtins
import math
import os
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F
import torch.testing._comparison as _comparison
from torch import nn

__all__ = ["protect_module", "tampered", "ORIGINALS"]

# Names rebound by the tools themselves, not by student code: IPython's output history and ipykernel's
# input() after every cell, and torch.manual_seed, wrapped when torch._dynamo is first imported.
_REBOUND = {
    "builtins": frozenset({"_", "__", "___", "input", "raw_input"}),
    "torch": frozenset({"manual_seed"}),
}

# The comparison functions the checks use, captured before any student code runs.
ORIGINALS = types.MappingProxyType(
    {
        "assert_close": torch.testing.assert_close,
        "allclose": torch.allclose,
        "equal": torch.equal,
        "isinstance": builtins.isinstance,
        "type": builtins.type,
    }
)

_TORCH_DIR = os.path.dirname(torch.__file__)
_MISSING = object()
# The builtins this module relies on, kept so that replacing one later cannot break the tamper check.
_isinstance, _vars, _dir, _type = builtins.isinstance, builtins.vars, builtins.dir, builtins.type


def _lookup(container: object, name: str) -> object:
    """What ``container.name`` resolves to: a module's entry, or for a class the first in its MRO."""
    if _isinstance(container, _type):
        for klass in container.__mro__:
            if name in _vars(klass):
                return _vars(klass)[name]
        return _MISSING
    return _vars(container).get(name, _MISSING)


def _entries_of(label: str, container: object, private: bool = False) -> list[tuple]:
    """Watch the public names and dunders of ``container`` (its private names too if ``private``); for a
    class, also the names it inherits, so that shadowing an inherited method counts as replacing it."""
    skip = _REBOUND.get(label, frozenset())
    names = _dir(container) if _isinstance(container, _type) else list(_vars(container))
    entries = []
    for name in names:
        if name in skip or (not private and name.startswith("_") and not name.endswith("__")):
            continue
        obj = _lookup(container, name)
        code = obj.__code__ if _isinstance(obj, types.FunctionType) else None
        entries.append((label, container, name, obj, code))
    return entries


_WATCHED: tuple = tuple(
    _entries_of("builtins", builtins)
    + _entries_of("torch", torch)
    + _entries_of("torch.Tensor", torch.Tensor)
    + _entries_of("torch.testing", torch.testing)
    + _entries_of("torch.testing._comparison", _comparison, private=True)
    + _entries_of("torch.nn.functional", F)
    + _entries_of("torch.nn.Module", nn.Module)
    + _entries_of("torch.nn.Linear", nn.Linear)
    + _entries_of("torch.nn.Parameter", nn.Parameter)
    + _entries_of("numpy", np)
    + _entries_of("math", math)
)

# module name -> {name: object} as recorded, and {(module, name): code} for its functions
_SNAPSHOTS: dict[str, types.MappingProxyType] = {}
_CODES: dict[tuple[str, str], types.CodeType] = {}


class _ProtectedModule(types.ModuleType):
    """A course module whose recorded names cannot be reassigned or deleted, and always read back as
    recorded (even after ``module.__dict__[name] = ...``)."""

    def __getattribute__(self, name: str):
        snapshot = _SNAPSHOTS.get(types.ModuleType.__getattribute__(self, "__name__"))
        if snapshot is not None and name in snapshot and name != "__dict__":
            return snapshot[name]
        return types.ModuleType.__getattribute__(self, name)

    def __setattr__(self, name: str, value: object) -> None:
        module_name = types.ModuleType.__getattribute__(self, "__name__")
        if name in _SNAPSHOTS.get(module_name, ()):
            raise AttributeError(
                f"{module_name}.{name} belongs to the course's checks and cannot be replaced; "
                "restart the kernel to undo the change"
            )
        types.ModuleType.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        module_name = types.ModuleType.__getattribute__(self, "__name__")
        if name in _SNAPSHOTS.get(module_name, ()):
            raise AttributeError(f"{module_name}.{name} belongs to the course's checks and cannot be deleted")
        types.ModuleType.__delattr__(self, name)


def protect_module(module_name: str) -> None:
    """Record a course module's names and make the module read-only for them (call at its end)."""
    module = sys.modules[module_name]
    namespace = dict(_vars(module))
    _SNAPSHOTS[module_name] = types.MappingProxyType(namespace)
    for name, obj in namespace.items():
        if _isinstance(obj, types.FunctionType):
            _CODES[(module_name, name)] = obj.__code__
    module.__class__ = _ProtectedModule


def _genuine_originals() -> list[str]:
    """The captured comparison functions must come from torch itself (not from code run earlier)."""
    problems = []
    func = ORIGINALS["assert_close"]
    if not _isinstance(func, types.FunctionType) or not func.__code__.co_filename.startswith(_TORCH_DIR):
        problems.append("torch.testing.assert_close (already replaced before course_lib was imported)")
    for name in ("allclose", "equal"):
        if _type(ORIGINALS[name]) is not types.BuiltinFunctionType:
            problems.append(f"torch.{name} (already replaced before course_lib was imported)")
    return problems


def tampered() -> list[str]:
    """Names of watched functions that were replaced, deleted or had their code swapped since import."""
    problems = _genuine_originals()
    for label, container, name, obj, code in _WATCHED:
        if _lookup(container, name) is not obj:
            problems.append(f"{label}.{name}")
        elif code is not None and obj.__code__ is not code:
            problems.append(f"{label}.{name} (its code was swapped)")
    for module_name, snapshot in _SNAPSHOTS.items():
        module = sys.modules.get(module_name)
        if _type(module) is not _ProtectedModule:
            problems.append(f"{module_name} (the module was replaced)")
            continue
        namespace = types.ModuleType.__getattribute__(module, "__dict__")
        for name, obj in snapshot.items():
            if namespace.get(name, _MISSING) is not obj:
                problems.append(f"{module_name}.{name}")
            elif (module_name, name) in _CODES and obj.__code__ is not _CODES[(module_name, name)]:
                problems.append(f"{module_name}.{name} (its code was swapped)")
    return problems


protect_module(__name__)
