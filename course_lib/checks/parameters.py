"""Checks for notebook 03_parameters: ``count_parameters``, ``parameter_shapes``, ``freeze`` and
``RunningMean``.

The first three run the student's function on models built here (shared layers, tied parameters,
BatchNorm buffers, frozen parts, names such as ``fc`` next to ``fc2``) and compare with what
``model.parameters()`` / ``named_parameters()`` report; ``RunningMean`` is compared, step by step, with
the update rule computed here. Every check runs on each available device; the edge-case parts
(``part="edge"``) and ``parameter_shapes`` also run on ``meta`` (shapes without data), so a tensor that does
not follow ``.to()`` is caught on a CPU-only machine too. The exercises worth 3 points or more have a core
part (the main behaviour) and an edge part (options, empty models, eval mode, dtypes, the state_dict);
``hidden=True`` adds random models of either kind.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from course_lib.checks._core import Exercise, describe, seeded
from course_lib.checks._integrity import ORIGINALS, protect_module
from course_lib.protocol import CORE, EDGE

__all__ = ["check_count_parameters", "check_parameter_shapes", "check_freeze", "check_RunningMean"]

_equal = ORIGINALS["equal"]
_type = ORIGINALS["type"]

_META = torch.device("meta")


# -- test models ------------------------------------------------------------------------------------
class _Backbone(nn.Module):
    """A feature extractor whose names start like the head's: ``layers.0``, ``fc``, ``norm``."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(features, features), nn.ReLU(), nn.Linear(features, features))
        self.fc = nn.Linear(features, features)
        self.norm = nn.BatchNorm1d(features)


class _FcNet(nn.Module):
    """A root parameter ``scale``, a ``backbone`` holding its own ``fc``, and a head ``fc`` then ``fc2``
    (so that ``"fc"`` read as a plain string prefix or substring keeps too much)."""

    def __init__(self, features: int = 4, hidden: int = 5, out_features: int = 3) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(features))
        self.backbone = _Backbone(features)
        self.fc = nn.Linear(features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)


class _Reversed(nn.Module):
    """Submodules registered out of alphabetical order: ``encoder`` after ``head`` and ``bias`` last."""

    def __init__(self, features: int = 3) -> None:
        super().__init__()
        self.head = nn.Linear(features, 2)
        self.encoder = nn.Sequential(nn.Linear(features, features), nn.Tanh())
        self.gain = nn.Parameter(torch.ones(2, 1))


class _Tied(nn.Module):
    """Two Linear layers sharing one weight Parameter (tied), plus a BatchNorm with buffers."""

    def __init__(self, features: int = 4) -> None:
        super().__init__()
        self.encoder = nn.Linear(features, features)
        self.norm = nn.BatchNorm1d(features)
        self.decoder = nn.Linear(features, features)
        self.decoder.weight = self.encoder.weight


def _shared_mlp(in_features: int, hidden: int, out_features: int, norm: bool) -> nn.Sequential:
    """Linear, the same Linear(hidden, hidden) used twice, optional BatchNorm1d, Linear."""
    shared = nn.Linear(hidden, hidden)
    layers: list[nn.Module] = [nn.Linear(in_features, hidden), nn.ReLU(), shared, nn.ReLU(), shared]
    if norm:
        layers.append(nn.BatchNorm1d(hidden))
    layers.append(nn.Linear(hidden, out_features))
    return nn.Sequential(*layers)


def _mlp(sizes: list[int], norm: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for index, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if index < len(sizes) - 2:
            if norm:
                layers.append(nn.BatchNorm1d(b))
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _build(factory: Callable[[], nn.Module], device: torch.device, dtype: torch.dtype) -> nn.Module:
    """A fresh model from ``factory`` on ``device``; its random init never touches the notebook's RNG."""
    if device.type == "meta":
        with torch.device("meta"):
            return factory().to(dtype=dtype)
    with seeded(0):
        model = factory()
    return model.to(device=device, dtype=dtype)


def _frozen(model: nn.Module, names: set[str]) -> nn.Module:
    """Freeze the parameters whose names are in ``names`` (for models built with frozen parts)."""
    for name, parameter in model.named_parameters():
        if name in names:
            parameter.requires_grad_(False)
    return model


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


@dataclass
class _ModelCase:
    """A model to build fresh for each call, and how to describe it in a failure message."""

    label: str
    factory: Callable[[], nn.Module]
    frozen: set[str] = field(default_factory=set)
    dtype: torch.dtype = torch.float32
    meta_only: bool = False  # large models: counted on the meta device only (no memory, same numbers)

    def build(self, device: torch.device) -> nn.Module:
        return _frozen(_build(self.factory, device, self.dtype), self.frozen)

    def describe(self, device: torch.device) -> str:
        frozen = f", frozen: {', '.join(sorted(self.frozen))}" if self.frozen else ""
        return f"{self.label}{frozen} ({_dtype_name(self.dtype)} on {device})"


def _draw(generator: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=generator))


def _random_cases(seed: int) -> list[_ModelCase]:
    """Random MLPs (with and without BatchNorm and shared layers) with random frozen parts and dtypes."""
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for index in range(6):
        dtype = (torch.float32, torch.float64)[index % 2]
        sizes = [_draw(generator, 1, 9) for _ in range(_draw(generator, 2, 5))]
        norm = bool(_draw(generator, 0, 1))
        if index % 3 == 2:
            a, h, o = _draw(generator, 1, 6), _draw(generator, 1, 6), _draw(generator, 1, 6)
            factory = functools.partial(_shared_mlp, a, h, o, norm)
            label = f"shared MLP {a}->{h}->{h}->{h}->{o}" + (" with BatchNorm1d" if norm else "")
        else:
            factory = functools.partial(_mlp, sizes, norm)
            label = f"MLP {sizes}" + (" with BatchNorm1d" if norm else "")
        with seeded(0):
            names = [name for name, _ in factory().named_parameters()]
        frozen = {name for name in names if _draw(generator, 0, 2) == 0}
        cases.append(_ModelCase(label, factory, frozen, dtype))
    return cases


# -- count_parameters -------------------------------------------------------------------------------
def _count(parameters, trainable_only: bool) -> int:
    return sum(p.numel() for p in parameters if p.requires_grad or not trainable_only)


def _linear_only(model: nn.Module, trainable_only: bool) -> int:
    """What counting only the nn.Linear layers' parameters gives (each tensor once)."""
    seen: dict[int, int] = {}
    for module in model.modules():
        if isinstance(module, nn.Linear):
            for p in module.parameters(recurse=False):
                if p.requires_grad or not trainable_only:
                    seen[id(p)] = p.numel()
    return sum(seen.values())


def _count_diagnosis(model: nn.Module, trainable_only: bool, got: int) -> tuple[str, str] | None:
    unique = list(model.parameters())
    every_use = [p for _, p in model.named_parameters(remove_duplicate=False)]
    buffers = sum(b.numel() for b in model.buffers())
    state_total = sum(v.numel() for v in model.state_dict().values())
    counted = [p for p in unique if p.requires_grad or not trainable_only]
    by_address = {p.data_ptr(): p.numel() for p in counted}
    candidates = [
        (
            state_total if state_total != _count(unique, False) else None,
            "counting the state_dict: it also holds buffers (BatchNorm's running statistics) and lists "
            "a shared tensor once per name",
            "count model.parameters(), which yields each parameter tensor once and no buffers",
        ),
        (
            _count(unique, False) if trainable_only else None,
            "trainable_only ignored: frozen parameters (requires_grad=False) were counted",
            "when trainable_only is True, count only parameters with p.requires_grad",
        ),
        (
            _count(unique, True) if not trainable_only else None,
            "frozen parameters left out although trainable_only=False",
            "filter on p.requires_grad only when trainable_only is True",
        ),
        (
            sum(p.numel() for p in unique if not p.requires_grad) if trainable_only else None,
            "trainable_only inverted: counted the frozen parameters instead of the trainable ones",
            "keep the parameters with p.requires_grad == True",
        ),
        (
            sum(p.numel() for p in unique if p.grad is not None) if trainable_only else None,
            "trainable read from p.grad (None until a backward reaches the parameter) instead of "
            "p.requires_grad",
            "a parameter is trainable when p.requires_grad is True, whether or not it has a .grad yet",
        ),
        (
            _count(every_use, trainable_only),
            "shared tensors counted twice (once per name or per module that uses them)",
            "model.parameters() already yields a shared tensor once: sum p.numel() over it",
        ),
        (
            _count(unique, trainable_only) + buffers if buffers else None,
            "buffers counted as parameters (model.buffers() holds no parameters)",
            "count model.parameters() only",
        ),
        (
            sum(1 for p in unique if p.requires_grad or not trainable_only),
            "counted parameter tensors instead of scalar entries",
            "add up p.numel() for each parameter tensor",
        ),
        (
            _linear_only(model, trainable_only),
            "only the nn.Linear layers counted: other modules (BatchNorm, parameters set on a module "
            "directly) hold parameters too",
            "sum p.numel() over model.parameters(), which reaches every registered parameter",
        ),
        (
            sum(by_address.values()) if len(by_address) < len(counted) else None,
            "parameters told apart by memory address (p.data_ptr()): tensors without memory of their own "
            "(on the meta device, or empty ones) all have data_ptr() 0",
            "model.parameters() already yields each tensor once: sum p.numel() over it",
        ),
    ]
    for value, mistake, fix in candidates:
        if value is not None and value == got:
            return mistake, fix
    return None


# The core cases: counting every parameter (shared tensors once, no buffers, frozen ones included), with
# trainable_only left at its default or False. The edge cases: trainable_only=True (also by position),
# models without parameters or with buffers only, and the meta device.
def _count_cases(part: str, hidden: bool, seed: int) -> list[tuple[_ModelCase, bool | None]]:
    """(model, trainable_only); None means: call without the argument (its default)."""
    if part == CORE:
        visible: list[tuple[_ModelCase, bool | None]] = [
            (_ModelCase("MLP Linear(4, 8), ReLU, Linear(8, 2)", lambda: _mlp([4, 8, 2])), None),
            (
                _ModelCase(
                    "Linear(2, 3), the same Linear(3, 3) used twice, BatchNorm1d(3), Linear(3, 1)",
                    lambda: _shared_mlp(2, 3, 1, norm=True),
                ),
                False,
            ),
            (_ModelCase("tied encoder/decoder weight and BatchNorm1d(4)", _Tied), None),
            (
                _ModelCase("MLP [3, 6, 4, 2]", lambda: _mlp([3, 6, 4, 2]), frozen={"2.weight", "4.bias"}),
                False,
            ),
            (_ModelCase("scale, backbone, fc, fc2", _FcNet, frozen={"fc.bias"}), None),
        ]
    else:
        visible = [
            (
                _ModelCase("MLP [3, 6, 4, 2]", lambda: _mlp([3, 6, 4, 2]), frozen={"0.weight", "0.bias"}),
                True,
            ),
            (_ModelCase("scale, backbone, fc, fc2", _FcNet, frozen={"scale", "fc.bias"}), True),
            (
                _ModelCase(
                    "Linear(2, 3), the same Linear(3, 3) used twice, BatchNorm1d(3), Linear(3, 1)",
                    lambda: _shared_mlp(2, 3, 1, norm=True),
                    frozen={"0.weight"},
                ),
                True,
            ),
            (_ModelCase("MLP [4, 5, 2]", lambda: _mlp([4, 5, 2])), True),
            (_ModelCase("nn.ReLU() (no parameters)", nn.ReLU), True),
            (
                _ModelCase(
                    "nn.BatchNorm1d(4, affine=False) (buffers only)", lambda: nn.BatchNorm1d(4, affine=False)
                ),
                None,
            ),
            (
                _ModelCase(
                    "MLP [5, 7, 3], all frozen",
                    lambda: _mlp([5, 7, 3]),
                    {"0.weight", "0.bias", "2.weight", "2.bias"},
                ),
                True,
            ),
        ]
    if not hidden:
        return visible
    generator = torch.Generator().manual_seed(seed + 1)
    cases: list[tuple[_ModelCase, bool | None]] = []
    for case in _random_cases(seed):
        flag = bool(_draw(generator, 0, 1))
        cases.append((case, True if part == EDGE else (None if flag else False)))
    if part == EDGE:
        big = _draw(generator, 1000, 3000)
        cases.append(
            (
                _ModelCase(
                    f"Linear({big}, {big}), BatchNorm1d({big})",
                    lambda: nn.Sequential(nn.Linear(big, big), nn.BatchNorm1d(big)),
                    frozen={"1.weight"},
                    meta_only=True,
                ),
                True,
            )
        )
    return cases + visible


def check_count_parameters(
    count_parameters, *, part: str = CORE, hidden: bool = False, seed: int = 0
) -> None:
    """Does ``count_parameters(model, trainable_only)`` count scalar parameters, each shared tensor once,
    no buffers, and only the trainable ones when asked, as a Python int? Core: every parameter counted
    (``trainable_only`` at its default or False); ``part="edge"``: ``trainable_only=True`` (also given by
    position), models without parameters or with buffers only, and the meta device."""
    __tracebackhide__ = True
    cases = _count_cases(part, hidden, seed)
    with Exercise("count_parameters") as ex:
        devices = [*ex.devices, _META] if part == EDGE else list(ex.devices)
        for device in devices:
            for case, trainable_only in cases:
                if case.meta_only and device.type != "meta":
                    continue
                model = case.build(device)
                flags = [p.requires_grad for p in model.parameters()]
                label = case.describe(device)
                if trainable_only is None:
                    label += ", trainable_only left at its default"
                    got = ex.call(count_parameters, model, case=label)
                else:
                    label += f", trainable_only={trainable_only}"
                    got = ex.call(count_parameters, model, trainable_only=trainable_only, case=label)
                got = ex.expect_int(got, "the count", case=label)
                if [p.requires_grad for p in model.parameters()] != flags:
                    ex.fail(
                        "count_parameters changed requires_grad of the model's parameters",
                        case=label,
                        fix="only read p.requires_grad; counting must not freeze or unfreeze anything",
                    )
                expected = _count(model.parameters(), bool(trainable_only))
                if got != expected:
                    mistake, fix = _count_diagnosis(model, bool(trainable_only), got) or (
                        None,
                        "sum p.numel() over model.parameters(), keeping only p.requires_grad ones "
                        "when trainable_only is True",
                    )
                    ex.fail(f"returned {got}, expected {expected}", case=label, mistake=mistake, fix=fix)
                ex.passed()
        if part == EDGE:
            _check_positional_flag(ex, count_parameters)


def _check_positional_flag(ex: Exercise, count_parameters) -> None:
    """``trainable_only`` may also be given by position."""
    model = _frozen(_build(lambda: _mlp([3, 4, 2]), torch.device("cpu"), torch.float32), {"0.weight"})
    label = "MLP [3, 4, 2], frozen: 0.weight, trainable_only=True given by position"
    got = ex.expect_int(ex.call(count_parameters, model, True, case=label), "the count", case=label)
    expected = _count(model.parameters(), True)
    if got != expected:
        mistake, fix = _count_diagnosis(model, True, got) or (
            None,
            "keep the signature (model, trainable_only)",
        )
        ex.fail(f"returned {got}, expected {expected}", case=label, mistake=mistake, fix=fix)
    ex.passed()


# -- parameter_shapes -------------------------------------------------------------------------------
def _shape_cases(hidden: bool, seed: int) -> list[_ModelCase]:
    visible = [
        _ModelCase("Linear(3, 2)", lambda: nn.Linear(3, 2)),
        _ModelCase("head, encoder, gain (registered in that order)", _Reversed),
        _ModelCase("MLP with BatchNorm1d [4, 6, 2]", lambda: _mlp([4, 6, 2], norm=True), frozen={"0.weight"}),
        _ModelCase("the same Linear(3, 3) used twice", lambda: _shared_mlp(2, 3, 1, norm=False)),
        _ModelCase("tied encoder/decoder weight", _Tied),
        _ModelCase(
            "12 Linear(2, 2) in a Sequential", lambda: nn.Sequential(*(nn.Linear(2, 2) for _ in range(12)))
        ),
        _ModelCase("scale, backbone, fc, fc2", _FcNet),
        _ModelCase("nn.ReLU() (no parameters)", nn.ReLU),
        _ModelCase(
            "nested Sequential",
            lambda: nn.Sequential(nn.Sequential(nn.Linear(2, 3), nn.ReLU()), nn.Linear(3, 1, bias=False)),
        ),
    ]
    return _random_cases(seed) + visible if hidden else visible


def _shape_keys_diagnosis(model: nn.Module, got: list[str], expected: list[str]) -> tuple[str, str, str]:
    """(problem, mistake, fix) for keys that differ from named_parameters()'s."""
    if sorted(got) == sorted(expected):
        mistake = "sorted the names" if got == sorted(expected) else "keys inserted in another order"
        return (
            f"the keys hold the right names in another order: {got} instead of named_parameters() order "
            f"{expected}",
            mistake,
            "build the dict while iterating over model.named_parameters(), in the order it yields",
        )
    every_use = [name for name, _ in model.named_parameters(remove_duplicate=False)]
    state = list(model.state_dict())
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    short = [name.rsplit(".", 1)[-1] for name in expected]
    has_buffers = any(True for _ in model.buffers())
    known = [
        (
            state if has_buffers else None,
            "buffers included: these are the state_dict's keys (running_mean, num_batches_tracked, ...)",
            "iterate over model.named_parameters(): buffers are not parameters",
        ),
        (
            every_use,
            "a shared parameter listed under each of its names (named_parameters(remove_duplicate=False) "
            "or the state_dict's keys)",
            "use model.named_parameters() with its default, which lists a shared tensor once",
        ),
        (
            trainable,
            "frozen parameters left out: requires_grad does not decide whether a tensor is a parameter",
            "list every parameter from model.named_parameters()",
        ),
        (
            list(dict.fromkeys(short)),
            "names without the module path (use the full names named_parameters() gives, e.g. '0.weight')",
            "take the names from model.named_parameters() on the whole model",
        ),
    ]
    for names, mistake, fix in known:
        if names is not None and got == names:
            return f"the keys are {got}, expected {expected}", mistake, fix
    return f"the keys are {got}, expected {expected}", None, "use the names model.named_parameters() yields"


def check_parameter_shapes(parameter_shapes, *, hidden: bool = False, seed: int = 0) -> None:
    """Does ``parameter_shapes(model)`` map every name of ``named_parameters()``, in its order, to the
    parameter's shape as a tuple?"""
    __tracebackhide__ = True
    cases = _shape_cases(hidden, seed)
    with Exercise("parameter_shapes") as ex:
        for device in [*ex.devices, _META]:
            for case in cases:
                model = case.build(device)
                label = case.describe(device)
                got = ex.call(parameter_shapes, model, case=label)
                if _type(got) is not dict and _type(got) is not OrderedDict:
                    ex.fail(
                        f"expected a dict, got {describe(got)}",
                        case=label,
                        fix="return {name: tuple(p.shape) for name, p in model.named_parameters()}",
                    )
                items = list(dict.items(got))
                for key, _ in items:
                    if _type(key) is not str:
                        ex.fail(
                            f"the keys should be the parameter names (str), found a {describe(key)}",
                            case=label,
                            fix="use the names model.named_parameters() yields",
                        )
                expected = [(name, tuple(p.shape)) for name, p in model.named_parameters()]
                got_keys, expected_keys = [key for key, _ in items], [name for name, _ in expected]
                if got_keys != expected_keys:
                    problem, mistake, fix = _shape_keys_diagnosis(model, got_keys, expected_keys)
                    ex.fail(problem, case=label, mistake=mistake, fix=fix)
                for (name, value), (_, shape) in zip(items, expected, strict=True):
                    _check_shape_value(ex, name, value, shape, label)
                ex.passed()


def _check_shape_value(ex: Exercise, name: str, value: Any, shape: tuple[int, ...], label: str) -> None:
    if isinstance(value, torch.Tensor):
        ex.fail(
            f"the value for {name!r} is the parameter itself ({describe(value)}), not its shape",
            case=label,
            fix="store tuple(p.shape) (or p.shape, a torch.Size, which is a tuple)",
        )
    if _type(value) is not tuple and _type(value) is not torch.Size:
        ex.fail(
            f"the value for {name!r} should be a tuple of ints, got {describe(value)}",
            case=label,
            mistake="a list or another type where a tuple is expected" if _type(value) is list else None,
            fix="store tuple(p.shape) (p.shape itself, a torch.Size, is a tuple too)",
        )
    entries = tuple.__iter__(value)
    ints = []
    for entry in entries:
        if _type(entry) is not int:
            ex.fail(
                f"the value for {name!r} should hold Python ints, found a {describe(entry)}",
                case=label,
                fix="store tuple(p.shape)",
            )
        ints.append(entry)
    if tuple(ints) != shape:
        ex.fail(
            f"the shape for {name!r} is {tuple(ints)}, expected {shape}",
            case=label,
            mistake="transposed shape" if tuple(ints) == shape[::-1] else None,
            fix="store tuple(p.shape) as it is",
        )


# -- freeze -----------------------------------------------------------------------------------------
def _keeps(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


@dataclass
class _FreezeCase:
    model: _ModelCase
    keep: Any  # what is passed: a tuple, a list, a bare str, or _DEFAULT
    before: set[str] = field(default_factory=set)  # frozen before the call

    def prefixes(self) -> tuple[str, ...]:
        if self.keep is _DEFAULT:
            return ()
        return (self.keep,) if _type(self.keep) is str else tuple(self.keep)

    def describe_keep(self) -> str:
        return (
            "keep_trainable left at its default" if self.keep is _DEFAULT else f"keep_trainable={self.keep!r}"
        )


_DEFAULT = object()


# The core cases: tuples and lists of module paths and parameter names, where a plain prefix or substring
# match keeps too much ("fc" next to "fc2", "1" next to "10" and "11"). The edge cases: a bare string,
# the default (nothing kept), parameters frozen before the call, a model without parameters, and meta.
def _freeze_cases(part: str, hidden: bool, seed: int) -> list[_FreezeCase]:
    fc_net = _ModelCase("scale, backbone (layers, fc, norm), fc, fc2", _FcNet)
    twelve = _ModelCase(
        "12 Linear(2, 2) in a Sequential", lambda: nn.Sequential(*(nn.Linear(2, 2) for _ in range(12)))
    )
    if part == CORE:
        visible = [
            _FreezeCase(fc_net, ("fc",)),
            _FreezeCase(fc_net, ["backbone.fc", "scale"]),
            _FreezeCase(fc_net, ("fc2.weight", "backbone.layers")),
            _FreezeCase(twelve, ("1",)),
            _FreezeCase(twelve, ["11", "0.bias"]),
        ]
    else:
        visible = [
            _FreezeCase(fc_net, "fc2"),
            _FreezeCase(fc_net, "backbone.layers.0"),
            _FreezeCase(fc_net, _DEFAULT),
            _FreezeCase(
                fc_net, ("fc.bias", "backbone"), before={"backbone.layers.0.weight", "backbone.fc.bias"}
            ),
            _FreezeCase(_ModelCase("nn.ReLU() (no parameters)", nn.ReLU), ()),
        ]
    if not hidden:
        return visible
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for case in _random_cases(seed):
        with seeded(0):
            names = [name for name, _ in case.factory().named_parameters()]
        modules = sorted({name.rsplit(".", 1)[0] for name in names})
        pool = modules + names
        prefixes = [
            pool[_draw(generator, 0, len(pool) - 1)]
            for _ in range(_draw(generator, 0 if part == EDGE else 1, 3))
        ]
        before = set(case.frozen)
        case.frozen = set()
        if part == CORE:
            keep: Any = tuple(prefixes) if _draw(generator, 0, 1) else list(prefixes)
            cases.append(_FreezeCase(case, keep))
            continue
        kind = _draw(generator, 0, 2)
        keep = tuple(prefixes) if kind == 0 else list(prefixes)
        if kind == 2 and prefixes:
            keep = prefixes[0]
        cases.append(_FreezeCase(case, keep, before))
    backbone = _ModelCase("scale, backbone (layers, fc, norm), fc, fc2", _FcNet, dtype=torch.float64)
    if part == CORE:
        cases.append(_FreezeCase(backbone, ("backbone.layers.2", "fc2.weight")))
    else:
        cases.append(_FreezeCase(backbone, ("backbone.layers.2", "fc2.weight"), before={"fc2.weight"}))
        cases.append(_FreezeCase(backbone, "backbone.layers"))
    return cases + visible


def _freeze_diagnosis(
    names: list[str], case: _FreezeCase, got: list[str], returned: bool = True
) -> tuple[str, str] | None:
    """(mistake, fix) for a wrong selection of names: the list returned, or (``returned=False``) the
    names left with requires_grad=True."""
    prefixes = case.prefixes()
    kept = [n for n in names if _keeps(n, prefixes)]
    frozen = [n for n in names if not _keeps(n, prefixes)]
    startswith = [n for n in names if any(n.startswith(p) for p in prefixes)]
    substring = [n for n in names if any(p in n for p in prefixes)]
    if got == frozen and frozen != kept:
        if not returned:
            return (
                "requires_grad inverted: the kept parameters were frozen and the others left trainable",
                "p.requires_grad_(True) for names under a kept prefix, False for the rest",
            )
        return (
            "returned the frozen names instead of the trainable ones",
            "return the names you kept trainable",
        )
    if got == startswith and startswith != kept:
        extra = next(n for n in startswith if n not in kept)
        return (
            f"plain `startswith` match: a prefix also kept {extra!r}, which lies in another module",
            "keep a name when name == prefix or name.startswith(prefix + '.')",
        )
    if got == substring and substring != kept:
        extra = next(n for n in substring if n not in kept)
        return (
            f"substring match (`prefix in name`): kept {extra!r}",
            "keep a name when name == prefix or name.startswith(prefix + '.') (a module path from the root)",
        )
    dotted = [n for n in names if any(n.startswith(p + ".") for p in prefixes)]
    if got == dotted and dotted != kept:
        missed = next(n for n in kept if n not in dotted)
        return (
            f"a prefix that is a whole parameter name not matched ({missed!r}): only "
            "name.startswith(prefix + '.') was tested",
            "keep a name when name == prefix or name.startswith(prefix + '.')",
        )
    first_part = [n for n in names if n.split(".")[0] in prefixes]
    if got == first_part and first_part != kept:
        return (
            "only the first part of each name compared (name.split('.')[0]): a nested path such as "
            "'backbone.fc' never matches, and 'backbone' alone would keep all of backbone",
            "compare the whole path: name == prefix or name.startswith(prefix + '.')",
        )
    if _type(case.keep) is str:
        characters = [n for n in names if _keeps(n, tuple(case.keep))]
        loose = [n for n in names if any(n.startswith(c) for c in case.keep)]
        if got in (characters, loose) and got != kept:
            return (
                "a bare string was iterated character by character",
                "turn a str into a one-element tuple first: `if isinstance(keep_trainable, str): "
                "keep_trainable = (keep_trainable,)`",
            )
    if sorted(got) == sorted(kept):
        return (
            "the right names in another order (named_parameters() order is expected)",
            "collect the names while iterating over model.named_parameters()",
        )
    return None


def _freeze_hints(exc: BaseException):
    text = str(exc)
    if "is not an nn.Module" in text:
        return (
            "a prefix that names a parameter (such as 'scale' or '0.bias') looked up with get_submodule, "
            "which finds modules only",
            "compare names instead: keep a parameter when name == prefix or name.startswith(prefix + '.')",
        )
    if "is not an nn.Parameter" in text:
        return (
            "a prefix that names a module (such as 'fc') looked up with get_parameter, which finds "
            "parameters only",
            "compare names instead: keep a parameter when name == prefix or name.startswith(prefix + '.')",
        )
    return None


def check_freeze(freeze, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Does ``freeze(model, keep_trainable)`` set requires_grad=True exactly on the parameters under the
    given module-path prefixes (a bare string being one prefix), False on all others, leave the train/eval
    mode alone, and return the trainable names in named_parameters() order? Core: tuples and lists of
    module paths and parameter names; ``part="edge"``: a bare string, the default (nothing kept),
    parameters frozen before the call, a model without parameters, and the meta device."""
    __tracebackhide__ = True
    cases = _freeze_cases(part, hidden, seed)
    with Exercise("freeze") as ex:
        devices = [*ex.devices, _META] if part == EDGE else list(ex.devices)
        for device in devices:
            for case in cases:
                model = _frozen(case.model.build(device), case.before)
                named = list(model.named_parameters())
                before = {name: p.requires_grad for name, p in named}
                label = f"{case.model.describe(device)}, {case.describe_keep()}"
                if case.before:
                    label += f"; frozen before the call: {', '.join(sorted(case.before))}"
                if case.keep is _DEFAULT:
                    got = ex.call(freeze, model, case=label, hints=_freeze_hints)
                else:
                    keep = list(case.keep) if _type(case.keep) is list else case.keep
                    got = ex.call(freeze, model, keep, case=label, hints=_freeze_hints)
                _check_freeze_result(ex, model, named, before, case, got, label)


def _check_freeze_result(ex, model, named, before, case: _FreezeCase, got, label: str) -> None:
    names = [name for name, _ in named]
    after = {name: p.requires_grad for name, p in named}
    prefixes = case.prefixes()
    kept = [n for n in names if _keeps(n, prefixes)]
    current = list(model.named_parameters())
    if len(current) != len(named) or any(a is not b for (_, a), (_, b) in zip(current, named, strict=True)):
        ex.fail(
            "freeze replaced parameters of the model",
            case=label,
            fix="change requires_grad on the existing parameters (p.requires_grad_(False))",
        )
    if not model.training:
        if after == before:
            ex.fail(
                "the model was switched to eval mode and no requires_grad changed",
                case=label,
                mistake="model.eval() taken for freezing: eval() only changes how dropout and batch norm "
                "behave; every parameter keeps requires_grad=True and still trains",
                fix="set p.requires_grad_(False) on each parameter to freeze, and leave the mode alone",
            )
        ex.fail(
            "the model was switched to eval mode",
            case=label,
            mistake="model.eval() is not part of freezing (a frozen backbone may still need train mode)",
            fix="only change requires_grad; leave model.train() / model.eval() to the caller",
        )
    wrong = [n for n in names if after[n] != (n in kept)]
    if wrong:
        if after == before and kept != names:
            ex.fail(
                "requires_grad did not change on any parameter",
                case=label,
                mistake="requires_grad set on a copy (p.data, p.detach(), a state_dict value) or never "
                "set to False on the parameters to freeze",
                fix="call p.requires_grad_(keep) on the tensors model.named_parameters() yields",
            )
        trainable = [n for n in names if after[n]]
        mistake, fix = _freeze_diagnosis(names, case, trainable, returned=False) or (None, None)
        if mistake is None and trainable == [n for n in kept if before[n]]:
            not_unfrozen = next(n for n in kept if not after[n])
            ex.fail(
                f"{not_unfrozen!r} is under a kept prefix but has requires_grad=False",
                case=label,
                mistake="kept parameters not set to requires_grad=True (they were frozen before the call)",
                fix="set requires_grad explicitly both ways: p.requires_grad_(name is kept)",
            )
        state = ", ".join(f"{n}={after[n]}" for n in wrong[:4])
        fix = fix or "keep a name when name == prefix or name.startswith(prefix + '.'), freeze all others"
        ex.fail(
            f"wrong requires_grad on {len(wrong)} parameter(s): {state}; expected trainable: {kept}",
            case=label,
            mistake=mistake,
            fix=fix,
        )
    if _type(got) is not list:
        ex.fail(
            f"expected a list of names, got {describe(got)}",
            case=label,
            fix="return the list of names left trainable (did you forget `return`?)",
        )
    for entry in got:
        if _type(entry) is not str:
            ex.fail(
                f"the list should hold parameter names (str), found a {describe(entry)}",
                case=label,
                fix="append the name from model.named_parameters(), not the parameter",
            )
    if got != kept:
        mistake, fix = _freeze_diagnosis(names, case, got) or (
            None,
            "return the names of the parameters left trainable, in named_parameters() order",
        )
        ex.fail(f"returned {got}, expected {kept}", case=label, mistake=mistake, fix=fix)
    ex.passed()


# -- RunningMean ------------------------------------------------------------------------------------
_NOT_A_BUFFER_FIX = (
    "in __init__: self.register_buffer('running_mean', torch.zeros(num_features)); in forward, update "
    "it under torch.no_grad() (or from x.mean(0).detach())"
)


def _running_mean_hints(exc: BaseException):
    text = str(exc)
    if "as parameter" in text or ("leaf Variable" in text and "in-place" in text):
        return (
            "Parameter instead of buffer: running_mean is not learned, so it must not be an nn.Parameter",
            _NOT_A_BUFFER_FIX,
        )
    if "backward through the graph a second time" in text:
        return (
            "graph kept through the buffer: running_mean still refers to the previous batch's graph",
            "update running_mean under torch.no_grad() (or from x.mean(0).detach())",
        )
    if "must match the size of tensor" in text or "doesn't match the broadcast shape" in text:
        return (
            "mean over the wrong dimension: x.mean(1) gives one value per sample, the running mean needs "
            "one per feature",
            "average over the batch: x.mean(0) (or x.mean(dim=0)), of shape (num_features,)",
        )
    return None


def _registered_buffer(ex: Exercise, model: nn.Module, label: str, persistent: bool = False) -> torch.Tensor:
    """The registered ``running_mean`` buffer (and, with ``persistent``, in the state_dict); fail naming
    how it was stored otherwise."""
    parameters = list(nn.Module.named_parameters(model))
    buffers = dict(nn.Module.named_buffers(model))
    if parameters:
        names = [name for name, _ in parameters]
        ex.fail(
            f"RunningMean has parameters {names}; it should have none",
            case=label,
            mistake="Parameter instead of buffer" if "running_mean" in names else None,
            fix=_NOT_A_BUFFER_FIX,
        )
    if "running_mean" not in buffers:
        attribute = model.__dict__.get("running_mean")
        if isinstance(attribute, torch.Tensor):
            ex.fail(
                "running_mean is not a registered buffer",
                case=label,
                mistake="plain tensor attribute (self.running_mean = torch.zeros(...)): it is not in the "
                "state_dict and does not follow .to(device) or .to(dtype)",
                fix=_NOT_A_BUFFER_FIX,
            )
        ex.fail(
            f"no buffer named running_mean (buffers: {list(buffers)})",
            case=label,
            fix=_NOT_A_BUFFER_FIX,
        )
    if persistent and "running_mean" not in nn.Module.state_dict(model):
        ex.fail(
            "running_mean is missing from the state_dict",
            case=label,
            mistake="buffer registered with persistent=False: it would not be saved with the model",
            fix="register_buffer('running_mean', torch.zeros(num_features)) (persistent is the default)",
        )
    buffer = buffers["running_mean"]
    if _type(buffer) is not torch.Tensor:
        ex.fail(
            f"the running_mean buffer holds a {_type(buffer).__name__}; expected a plain tensor",
            case=label,
            mistake="Parameter instead of buffer" if _type(buffer) is nn.Parameter else None,
            fix=_NOT_A_BUFFER_FIX,
        )
    return buffer


def _mean_diagnosis(ex: Exercise, x: torch.Tensor, previous: torch.Tensor, momentum: float):
    def diagnose(actual: torch.Tensor):
        with torch.no_grad():
            batch = x.mean(0)
            candidates = [
                (
                    "momentum applied the other way round: running_mean = m * running_mean + (1 - m) * mean",
                    momentum * previous + (1 - momentum) * batch,
                ),
                ("running_mean replaced by the batch mean (momentum ignored)", batch),
                (
                    "momentum argument ignored (0.1 used whatever momentum was given)",
                    0.9 * previous + 0.1 * batch if momentum != 0.1 else previous + float("nan"),
                ),
                ("running_mean not updated in training mode", previous),
                ("(1 - m) factor forgotten on the old running_mean", previous + momentum * batch),
                (
                    "mean over all entries (x.mean()) instead of per feature (x.mean(0))",
                    (1 - momentum) * previous + momentum * x.mean(),
                ),
                ("sum instead of mean over the batch", (1 - momentum) * previous + momentum * x.sum(0)),
            ]
        for mistake, wrong in candidates:
            if ex.is_close(actual, wrong.to(actual.dtype)):
                return mistake, "running_mean = (1 - momentum) * running_mean + momentum * x.mean(0)"
        return None

    return diagnose


def _output_diagnosis(ex: Exercise, x: torch.Tensor, previous: torch.Tensor, updated: torch.Tensor):
    def diagnose(actual: torch.Tensor):
        with torch.no_grad():
            candidates = [
                ("returned x minus the batch mean instead of the running mean", x - x.mean(0)),
                ("returned x minus running_mean from before this batch's update", x - previous),
                ("returned x unchanged", x),
                ("returned running_mean - x (sign flipped)", updated - x),
            ]
        for mistake, wrong in candidates:
            if ex.is_close(actual, wrong):
                return mistake, "return x - self.running_mean (after updating it in training mode)"
        return None

    return diagnose


@dataclass
class _MeanCase:
    num_features: int
    batch: int
    momentum: float | None  # None: the default (0.1)
    dtype: torch.dtype
    positional: bool = False

    def construct(self, ex: Exercise, RunningMean, label: str):
        if self.momentum is None:
            return ex.call(RunningMean, self.num_features, case=label, hints=_running_mean_hints)
        if self.positional:
            return ex.call(
                RunningMean, self.num_features, self.momentum, case=label, hints=_running_mean_hints
            )
        return ex.call(
            RunningMean, self.num_features, momentum=self.momentum, case=label, hints=_running_mean_hints
        )

    def describe(self, device: torch.device) -> str:
        momentum = "momentum left at its default" if self.momentum is None else f"momentum={self.momentum}"
        how = " (by position)" if self.positional else ""
        return (
            f"RunningMean({self.num_features}), {momentum}{how}, batches of {self.batch}, "
            f"{_dtype_name(self.dtype)} on {device}"
        )


# The core cases: training mode only (the update rule, no graph, the output), float32. The edge cases:
# eval mode between training calls, float64, momentum by position, one sample with momentum 1, the
# buffer following .to(dtype) and .to("meta"), and the state_dict (saved, and loaded into a new module).
_MODES = {CORE: (True, True, True), EDGE: (True, False, False, True, False)}
_GRAD_STEP = {CORE: 1, EDGE: 2}  # the call whose x requires grad


def _mean_cases(part: str, hidden: bool, seed: int) -> list[_MeanCase]:
    if part == CORE:
        visible = [_MeanCase(3, 5, None, torch.float32), _MeanCase(4, 8, 0.3, torch.float32)]
    else:
        visible = [
            _MeanCase(3, 5, None, torch.float32),
            _MeanCase(2, 6, 0.5, torch.float64, positional=True),
            _MeanCase(4, 1, 1.0, torch.float32),  # one sample, momentum 1
        ]
    if not hidden:
        return visible
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for index in range(5):
        momentum = round(float(torch.rand((), generator=generator)) * 0.9 + 0.05, 3)
        dtype = (torch.float32, torch.float64)[index % 2] if part == EDGE else torch.float32
        positional = part == EDGE and index == 2
        cases.append(_MeanCase(_draw(generator, 1, 9), _draw(generator, 2, 12), momentum, dtype, positional))
    if part == EDGE:
        cases.append(_MeanCase(_draw(generator, 2, 6), 1, 1.0, torch.float64))  # one sample, momentum 1
    return visible + cases


def check_RunningMean(RunningMean, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:  # noqa: N802
    """Does ``RunningMean(num_features, momentum)`` keep a ``running_mean`` buffer (zeros, no parameters),
    update it by the momentum rule in training mode without building a graph, and return
    ``x - running_mean``? Core: training mode, float32; ``part="edge"``: eval mode (the stored mean,
    unchanged), float64, momentum by position, one sample, ``.to(dtype)`` and ``.to("meta")``, and the
    state_dict (persistent, and loaded into a new module)."""
    __tracebackhide__ = True
    cases = _mean_cases(part, hidden, seed)
    with Exercise("RunningMean") as ex:
        for device in ex.devices:
            for index, case in enumerate(cases):
                _check_running_mean_case(ex, RunningMean, case, device, seed * 1000 + index, part)
        if part == EDGE:
            for index, case in enumerate(cases[:2]):
                _check_follows_to(ex, RunningMean, case)
                _check_state_dict(ex, RunningMean, case, seed * 1000 + 500 + index)


def _check_running_mean_case(
    ex: Exercise, RunningMean, case: _MeanCase, device, seed: int, part: str
) -> None:
    label = case.describe(device)
    persistent = part == EDGE
    model = ex.expect_instance(
        case.construct(ex, RunningMean, label),
        nn.Module,
        "RunningMean(...)",
        case=label,
        fix="define `class RunningMean(nn.Module)` and call super().__init__() first",
    )
    buffer = _registered_buffer(ex, model, label, persistent)
    expected_default = torch.zeros(case.num_features)
    ex.assert_close(buffer, expected_default, "running_mean right after construction", case=label)
    model = nn.Module.to(model, device=device, dtype=case.dtype)
    momentum = 0.1 if case.momentum is None else case.momentum

    generator = torch.Generator().manual_seed(seed)
    shift = torch.randn(case.num_features, generator=generator, dtype=case.dtype) * 3
    reference = torch.zeros(case.num_features, dtype=case.dtype, device=device)
    # core: train three times (the second with an x that requires grad); edge: train, eval, eval, train,
    # eval, the mode being read at every call
    for step, training in enumerate(_MODES[part]):
        x = (torch.randn(case.batch, case.num_features, generator=generator, dtype=case.dtype) + shift).to(
            device
        )
        x_copy = x.clone()
        with_grad = step == _GRAD_STEP[part]
        if with_grad:
            x.requires_grad_(True)
        nn.Module.train(model, training)
        mode = "train" if training else "eval"
        step_label = f"{label}; call {step + 1} in {mode} mode" + (", x requires grad" if with_grad else "")
        previous = reference.clone()
        stored = _registered_buffer(ex, model, step_label, persistent).detach().clone()
        out = ex.call(model, x, case=step_label, hints=_running_mean_hints)
        buffer = _registered_buffer(ex, model, step_label, persistent)
        if not _equal(x.detach(), x_copy):
            ex.fail(
                "forward changed its input x",
                case=step_label,
                mistake="input modified in place (x -= ... or x.sub_(...))",
                fix="return a new tensor: x - self.running_mean",
            )
        if buffer.requires_grad or buffer.grad_fn is not None:
            ex.fail(
                "after a forward with an input that requires grad, running_mean requires grad "
                f"(grad_fn={type(buffer.grad_fn).__name__ if buffer.grad_fn is not None else None})",
                case=step_label,
                mistake="graph kept through the buffer: each update links running_mean to the batch's "
                "graph, which then grows with every batch (and backward fails the second time)",
                fix="update running_mean under torch.no_grad() (or from x.mean(0).detach())",
            )
        if training:
            reference = (1 - momentum) * previous + momentum * x_copy.mean(0)
            ex.assert_close(
                buffer,
                reference,
                "running_mean after a training-mode call",
                case=step_label,
                diagnose=_mean_diagnosis(ex, x_copy, previous, momentum),
            )
        elif (
            buffer.shape != stored.shape
            or buffer.dtype != stored.dtype
            or buffer.device != stored.device
            or not _equal(buffer.detach(), stored)
        ):
            ex.fail(
                "running_mean changed during an eval-mode call",
                case=step_label,
                mistake="updates in eval mode: the update must happen only when self.training is True",
                fix="wrap the update in `if self.training:` (self.training, the flag; self.train is a "
                "method, which is always truthy)",
            )
        expected = x_copy - reference
        ex.assert_close(
            out,
            expected,
            f"the output in {mode} mode",
            case=step_label,
            diagnose=_output_diagnosis(ex, x_copy, previous, reference),
        )
        if with_grad:
            _check_gradient(ex, out, x, step_label)


def _check_state_dict(ex: Exercise, RunningMean, case: _MeanCase, seed: int) -> None:
    """running_mean is saved in the state_dict, and loading it into a new module restores the mean."""
    label = (
        f"{case.describe(torch.device('cpu'))}, two training calls, then state_dict() loaded into a new one"
    )
    model = case.construct(ex, RunningMean, label)
    _registered_buffer(ex, model, label, persistent=True)
    generator = torch.Generator().manual_seed(seed)
    nn.Module.train(model, True)
    for _ in range(2):
        x = torch.randn(case.batch, case.num_features, generator=generator) + 2.0
        ex.call(model, x, case=label, hints=_running_mean_hints)
    saved = _registered_buffer(ex, model, label, persistent=True).detach().clone()
    state = nn.Module.state_dict(model)
    fresh = case.construct(ex, RunningMean, label)
    ex.call(nn.Module.load_state_dict, fresh, state, case=label)
    loaded = _registered_buffer(ex, fresh, label, persistent=True)
    ex.assert_close(loaded, saved, "running_mean of the new module after load_state_dict", case=label)
    nn.Module.train(fresh, False)
    x = torch.randn(case.batch, case.num_features, generator=generator)
    out = ex.call(fresh, x, case=f"{label}; eval mode", hints=_running_mean_hints)
    ex.assert_close(out, x - saved, "the loaded module's output in eval mode", case=f"{label}; eval mode")


def _check_gradient(ex: Exercise, out: torch.Tensor, x: torch.Tensor, label: str) -> None:
    """d(out)/dx must be the identity: running_mean is a constant for autograd."""
    if not out.requires_grad:
        ex.fail(
            "the output does not require grad although x does",
            case=label,
            mistake="output detached from x (.detach(), .data or torch.no_grad() around the subtraction)",
            fix="compute x - self.running_mean outside torch.no_grad(); only the update goes inside",
        )
    grad_output = torch.randn(out.shape, generator=torch.Generator().manual_seed(7), dtype=out.dtype).to(
        out.device
    )
    (grad,) = torch.autograd.grad(out, x, grad_output, allow_unused=True)
    if grad is None:
        ex.fail("no gradient reaches x", case=label, fix="return x - self.running_mean")
    ex.assert_close(
        grad,
        grad_output,
        "the gradient with respect to x",
        case=label,
        diagnose=lambda _: (
            "graph kept through the buffer: the gradient also flows through the batch mean in running_mean",
            "update running_mean under torch.no_grad() (or from x.mean(0).detach())",
        ),
    )


def _check_follows_to(ex: Exercise, RunningMean, case: _MeanCase) -> None:
    """The buffer follows .to(dtype) and .to("meta"), and the forward runs on meta (shapes only)."""
    for target, name in ((torch.float64, "torch.float64"), (_META, '"meta"')):
        label = f"{case.describe(torch.device('cpu'))}, then model.to({name})"
        model = case.construct(ex, RunningMean, label)
        _registered_buffer(ex, model, label)
        model = nn.Module.to(model, target)
        buffer = _registered_buffer(ex, model, label)
        want_dtype = torch.float64 if target is torch.float64 else torch.float32
        want_device = _META if target is _META else torch.device("cpu")
        if buffer.dtype != want_dtype or buffer.device != want_device:
            ex.fail(
                f"after .to({target}) running_mean is {describe(buffer)}",
                case=label,
                mistake="running_mean replaced by a tensor that does not follow the module",
                fix=_NOT_A_BUFFER_FIX,
            )
        x = torch.zeros(case.batch, case.num_features, dtype=want_dtype, device=want_device)
        nn.Module.train(model, True)
        out = ex.expect_tensor(
            ex.call(model, x, case=label, hints=_running_mean_hints), "the output", case=label
        )
        buffer = _registered_buffer(ex, model, label)
        for what, tensor, shape in (
            ("the output", out, x.shape),
            ("running_mean", buffer, (case.num_features,)),
        ):
            if (
                tensor.device != want_device
                or tensor.dtype != want_dtype
                or tuple(tensor.shape) != tuple(shape)
            ):
                ex.fail(
                    f"{what} is {describe(tensor)}, expected shape {tuple(shape)}, "
                    f"{_dtype_name(want_dtype)}, on {want_device}",
                    case=label,
                    mistake="a tensor created inside forward without the input's device/dtype "
                    "(torch.zeros(...) without device=x.device)",
                    fix="keep the state in the registered buffer and compute from x and self.running_mean",
                )
        ex.passed()


protect_module(__name__)
