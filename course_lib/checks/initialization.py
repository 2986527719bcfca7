"""Checks for notebook 05_initialization: ``init_normal``, ``xavier_uniform`` and ``my_init``.

Initialization draws random numbers, so these checks are statistical. They run the student's function
under a fixed seed (``seeded``, which leaves the notebook's own generator untouched) on large tensors
(10^5 to 10^6 entries in the visible cases) and compare sample statistics with the target distribution.
Every margin is at least 8 standard errors of the statistic (the comments next to the numbers give
them): for a correct answer each statistic leaves its margin with probability below 1e-12 (Gaussian tail
for the sample mean and variance; Bernstein's inequality for the bounded statistics), so a check with
a few dozen such statistics fails a correct answer far less than once in a million runs, while every
known mistake moves a statistic by dozens of margins. Bounds (``|w| <= a``) are checked exactly, up to
float rounding. Fans are computed like ``torch.nn.init``.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from course_lib.checks._core import Exercise, describe, seeded
from course_lib.checks._integrity import ORIGINALS, protect_module

__all__ = ["check_init_normal", "check_xavier_uniform", "check_my_init"]

_equal = ORIGINALS["equal"]
_type = ORIGINALS["type"]

# Captured when the checks are imported: PyTorch's fan computation, and the function xavier_uniform
# must not call (recognised by its code object, however the student imported or renamed it).
_torch_fans = torch.nn.init._calculate_fan_in_and_fan_out
_XAVIER_CODE = torch.nn.init.xavier_uniform_.__code__

# Margin of every statistical test, in standard errors of the statistic. A normal tail beyond 8 sigma
# has probability 1.2e-15 (two-sided); the bounded statistics below obey Bernstein's inequality,
# which gives below 1e-12 at this margin for the sample sizes used (n >= 500).
_Z = 8.0
# Statistical tests need this many values; smaller tensors are only checked exactly (range, in place).
_MIN_STATISTICS = 500
# Relative slack on exact bounds: a bound computed in float64 and applied in float32 rounds by ~6e-8.
_ROUNDING = 1e-5


# -- shared helpers -------------------------------------------------------------------------------


class LinearSubclass(nn.Linear):
    """A subclass of nn.Linear: ``isinstance(m, nn.Linear)`` sees it, ``type(m) == nn.Linear`` does not."""


class Scale(nn.Module):
    """A custom module with parameters named like a Linear's (``weight``, ``bias``) that is not one."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(features))
        self.bias = nn.Parameter(torch.randn(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight + self.bias


def _values(tensor: torch.Tensor) -> torch.Tensor:
    """The entries of a tensor as float64 on the CPU, for statistics."""
    return tensor.detach().to("cpu", torch.float64).flatten()


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


@dataclass
class _Entry:
    """One parameter or buffer as it was before the student's call."""

    name: str
    tensor: torch.Tensor
    copy: torch.Tensor
    pointer: int
    parameter: bool


def _snapshot(module: nn.Module) -> list[_Entry]:
    entries = [
        _Entry(name, t, t.detach().clone(), t.data_ptr(), True) for name, t in module.named_parameters()
    ]
    entries += [
        _Entry(name, t, t.detach().clone(), t.data_ptr(), False) for name, t in module.named_buffers()
    ]
    return entries


def _current(module: nn.Module) -> dict[str, torch.Tensor]:
    return dict(itertools.chain(module.named_parameters(), module.named_buffers()))


def _new_parameter(fix: str) -> tuple[str, str]:
    return (
        "not in place: a new nn.Parameter was assigned to the layer (an optimizer built before the call "
        "would keep training the old one)",
        fix,
    )


def _new_storage(fix: str) -> tuple[str, str]:
    return (
        "not in place: `.data = ...` gave the parameter new memory instead of writing into its own",
        fix,
    )


_NOT_LINEAR = (
    "non-Linear modules touched: the function changes modules that are not nn.Linear",
    "do nothing unless `isinstance(module, nn.Linear)`",
)
_SUBCLASS = (
    "subclasses of nn.Linear skipped: `type(module) == nn.Linear` (or `is`) is False for a subclass",
    "test with `isinstance(module, nn.Linear)`, which is True for nn.Linear and its subclasses",
)
_NO_GRAD = (
    "in-place write on a parameter that requires grad, outside torch.no_grad()",
    "wrap the writes in `with torch.no_grad():` (nn.init's functions do this for you)",
)


def _common_hints(exc: BaseException) -> tuple[str, str] | None:
    text = str(exc)
    if "leaf Variable that requires grad" in text or "requires grad is being used in an in-place" in text:
        return _NO_GRAD
    if "cannot assign" in text and "parameter" in text:
        return (
            "not in place: a plain tensor was assigned to a parameter's name",
            "write into the existing parameter with an in-place operation under `torch.no_grad()`",
        )
    return None


def _init_hints(exc: BaseException) -> tuple[str, str] | None:
    hint = _common_hints(exc)
    if hint:
        return hint
    if "NoneType" in str(exc):
        return (
            "a layer built with bias=False has `module.bias = None`, and the code uses it anyway",
            "check `if module.bias is not None:` before touching the bias",
        )
    return None


def _check_parameters_kept(
    ex: Exercise, module: nn.Module, before: list[_Entry], label: str, fix: str
) -> dict[str, torch.Tensor]:
    """The module's parameters must be the same objects, in the same memory, still requiring grad."""
    now = dict(module.named_parameters())
    names = [entry.name for entry in before if entry.parameter]
    if list(now) != names:
        ex.fail(
            f"the layer's parameters are now {list(now)}, expected {names}",
            case=label,
            fix="write into the existing parameters; add or remove none (a bias=False layer has no bias)",
        )
    for entry in before:
        if not entry.parameter:
            continue
        if now[entry.name] is not entry.tensor:
            ex.fail(
                f"layer.{entry.name} is a new object after the call",
                case=label,
                mistake=_new_parameter(fix)[0],
                fix=fix,
            )
        if entry.tensor.data_ptr() != entry.pointer:
            ex.fail(
                f"layer.{entry.name} is stored in new memory after the call",
                case=label,
                mistake=_new_storage(fix)[0],
                fix=fix,
            )
        if not entry.tensor.requires_grad:
            ex.fail(
                f"layer.{entry.name} no longer requires grad",
                case=label,
                fix="initialization changes values only; leave requires_grad as it was",
            )
    ex.passed()
    return now


def _check_untouched(ex: Exercise, module: nn.Module, before: list[_Entry], name: str, label: str) -> None:
    """Every parameter and buffer of a module that is not an nn.Linear must be exactly as it was."""
    now = _current(module)
    for entry in before:
        tensor = now.get(entry.name)
        changed = (
            tensor is not entry.tensor
            or tensor.data_ptr() != entry.pointer
            or not _equal(tensor.detach(), entry.copy)
        )
        if changed:
            ex.fail(
                f"{entry.name} of {name} changed, but a {_type(module).__name__} is not an nn.Linear",
                case=label,
                mistake=_NOT_LINEAR[0],
                fix=_NOT_LINEAR[1],
            )
    ex.passed()


def _other_modules(sizes: tuple[int, int, int]) -> list[tuple[str, nn.Module]]:
    """Modules that are not nn.Linear, several with parameters named weight and bias (build seeded)."""
    a, b, c = sizes
    norm = nn.BatchNorm1d(b)
    with torch.no_grad():  # move BatchNorm off its ones / zeros, so "set the bias to zero" shows
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
        norm.running_mean.normal_()
        norm.running_var.uniform_(0.5, 1.5)
    return [
        (f"nn.Conv1d({a}, {b}, 3)", nn.Conv1d(a, b, 3)),
        (f"nn.BatchNorm1d({b})", norm),
        (f"nn.Bilinear({a}, {b}, {c})", nn.Bilinear(a, b, c)),
        (f"nn.Embedding({b}, {c})", nn.Embedding(b, c)),
        (f"nn.LayerNorm({c})", nn.LayerNorm(c)),
        (f"Scale({c}) (a custom module with weight and bias)", Scale(c)),
    ]


def _random_int(generator: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=generator))


# -- statistics -----------------------------------------------------------------------------------

_WITHIN_1_STD = math.erf(1 / math.sqrt(2))  # 0.6827: share of a normal sample within one std of its mean
_WITHIN_2_STD = math.erf(2 / math.sqrt(2))  # 0.9545


def _normal_problem(w: torch.Tensor, std: float) -> str | None:
    """Why ``w`` (float64, flat) is not a sample of N(0, std^2), or None."""
    n = w.numel()
    if not bool(torch.isfinite(w).all()):
        return "has values that are not finite"
    mean, sample_std = w.mean().item(), w.std().item()
    # The sample std of n normal draws has relative standard error 1 / sqrt(2 (n - 1)): 7.1e-4 for 10^6
    # draws, so the margin is 0.57%; std 0.1 or 0.0001 instead of 0.01 is thousands of margins away.
    if abs(sample_std / std - 1) > _Z / math.sqrt(2 * (n - 1)):
        return f"has std {sample_std:.3g}, expected {std:g}"
    # The sample mean has standard error std / sqrt(n): 1e-5 for 10^6 draws of std 0.01.
    if abs(mean) > _Z * std / math.sqrt(n):
        return f"has mean {mean:.3g}, expected 0 (within {_Z * std / math.sqrt(n):.2g})"
    # The shape: the share within 1 and 2 std of 0, binomial standard error sqrt(p (1 - p) / n) (4.7e-4
    # and 2.1e-4 for 10^6 draws). A uniform sample with the same std has 0.577 and 1.0 there.
    for k, p in ((1, _WITHIN_1_STD), (2, _WITHIN_2_STD)):
        share = (w.abs() < k * std).double().mean().item()
        if abs(share - p) > _Z * math.sqrt(p * (1 - p) / n):
            return (
                f"does not look normal: {share:.3f} of the values lie within {k} std of 0, "
                f"expected {p:.3f} for a normal distribution"
            )
    return None


def _uniform_problem(w: torch.Tensor, bound: float) -> str | None:
    """Why ``w`` (float64, flat) is not a sample of U(-bound, bound), or None."""
    n = w.numel()
    if not bool(torch.isfinite(w).all()):
        return "has values that are not finite"
    largest, smallest = w.max().item(), w.min().item()
    if max(largest, -smallest) > bound * (1 + _ROUNDING):
        return (
            f"has values up to {max(largest, -smallest):.4g} in absolute value, beyond the bound {bound:.4g}"
        )
    if n < _MIN_STATISTICS:
        return None
    # The extremes: P(all n draws below a (1 - t)) = (1 - t / 2)^n <= exp(-n t / 2), below 1e-12 for
    # t = 56 / n (4.7e-4 of a for 1.2 * 10^5 values).
    t = min(0.5, 56 / n)
    if largest < bound * (1 - t) or -smallest < bound * (1 - t):
        return (
            f"has values from {smallest:.4g} to {largest:.4g}, expected them to reach close to "
            f"-{bound:.4g} and {bound:.4g} with {n} values"
        )
    # U(-a, a) has std a / sqrt(3); the sample std has relative standard error sqrt(1 / 5) / sqrt(n)
    # (Var(x^2) = 4 a^4 / 45), 1.3e-3 for 1.2 * 10^5 values: a margin of 1%.
    std = bound / math.sqrt(3)
    sample_std = w.std().item()
    if abs(sample_std / std - 1) > _Z * math.sqrt(0.2 / n):
        return f"has std {sample_std:.4g}, expected a / sqrt(3) = {std:.4g} for U(-a, a)"
    if abs(w.mean().item()) > _Z * std / math.sqrt(n):
        return f"has mean {w.mean().item():.3g}, expected 0"
    return None


def _close(value: float, target: float, tolerance: float = 0.05) -> bool:
    return abs(value / target - 1) < tolerance


# -- init_normal ----------------------------------------------------------------------------------

_NORMAL_FIX = (
    "write into the existing parameters: `nn.init.normal_(module.weight, mean=0.0, std=0.01)` and "
    "`nn.init.zeros_(module.bias)`"
)
_STD_01 = (
    "std 0.1 instead of 0.01 (the variance 0.01 taken as the std?): N(0, 0.01^2) means std 0.01 and "
    "variance 0.0001; 0.01 is the std, not the variance, and sqrt(0.01) = 0.1",
    "nn.init.normal_(module.weight, mean=0.0, std=0.01)",
)
_STD_SQUARED = (
    "std 0.0001 instead of 0.01: 0.01^2 = 0.0001 is the variance, and normal_ / torch.randn take the std",
    "nn.init.normal_(module.weight, mean=0.0, std=0.01)",
)


def _normal_diagnosis(w: torch.Tensor) -> tuple[str, str] | None:
    sample_std, mean = w.std().item(), w.mean().item()
    if _close(sample_std, 1.0) and abs(mean - 0.01) < 0.005:
        return (
            "`normal_(weight, 0.01)` sets the mean to 0.01 and leaves std 1: the second argument is the mean",
            "name it: nn.init.normal_(module.weight, mean=0.0, std=0.01)",
        )
    if _close(sample_std, 0.1):
        return _STD_01
    if _close(sample_std, 0.0001):
        return _STD_SQUARED
    if _close(sample_std, 1.0):
        return ("unscaled torch.randn: std 1 instead of 0.01", "multiply by 0.01, or use nn.init.normal_")
    if w.abs().max().item() <= sample_std * math.sqrt(3) * (1 + 1e-3):
        return (
            "uniform distribution instead of normal (uniform_ or torch.rand)",
            "draw from a normal distribution: nn.init.normal_(module.weight, mean=0.0, std=0.01)",
        )
    if _close(sample_std, 0.01, 0.02):
        return ("the mean is not 0", "nn.init.normal_(module.weight, mean=0.0, std=0.01)")
    return None


def _check_normal_linear(ex: Exercise, layer: nn.Linear, before: list[_Entry], label: str) -> None:
    """After init_normal: same parameters, weight ~ N(0, 0.01^2), bias all zeros."""
    now = _check_parameters_kept(ex, layer, before, label, _NORMAL_FIX)
    entries = {entry.name: entry for entry in before}
    weight = now["weight"]
    if _equal(weight.detach(), entries["weight"].copy):
        subclass = _type(layer) is not nn.Linear
        ex.fail(
            "the weight was not changed",
            case=label,
            mistake=_SUBCLASS[0] if subclass else "the weight was not initialized",
            fix=_SUBCLASS[1] if subclass else _NORMAL_FIX,
        )
    problem = _normal_problem(_values(weight), 0.01)
    if problem:
        hint = _normal_diagnosis(_values(weight))
        ex.fail(
            f"the weight {problem} (N(0, 0.01^2) expected)",
            case=label,
            mistake=hint[0] if hint else None,
            fix=hint[1] if hint else _NORMAL_FIX,
        )
    ex.passed()
    bias = now.get("bias")
    if bias is not None and not bool((bias.detach() == 0).all()):
        left = _equal(bias.detach(), entries["bias"].copy)
        ex.fail(
            "the bias is not all zeros" + (" (it still holds its old values)" if left else ""),
            case=label,
            mistake="bias left alone" if left else "the bias was changed, but not to zeros",
            fix="set it to zero: `nn.init.zeros_(module.bias)` (when `module.bias is not None`)",
        )
    ex.passed()


def _normal_cases(hidden: bool, seed: int) -> list[tuple[str, Callable[[], nn.Linear], torch.dtype]]:
    """Linear layers to initialize: one with 10^6 weights (tight statistics), a subclass and a bias-free
    layer with 2.4 * 10^5 and 2.5 * 10^5 weights; hidden: four more of random sizes (>= 9 * 10^4)."""
    cases = [
        ("nn.Linear(1000, 1000)", lambda: nn.Linear(1000, 1000), torch.float32),
        (
            "LinearSubclass(400, 600), a subclass of nn.Linear",
            lambda: LinearSubclass(400, 600),
            torch.float32,
        ),
        ("nn.Linear(500, 500, bias=False)", lambda: nn.Linear(500, 500, bias=False), torch.float32),
    ]
    if hidden:
        generator = torch.Generator().manual_seed(seed)
        for index in range(4):
            in_features, out_features = _random_int(generator, 300, 1000), _random_int(generator, 300, 1000)
            bias = index != 2
            kind = LinearSubclass if index == 3 else nn.Linear
            name = f"{kind.__name__}({in_features}, {out_features}, bias={bias})"
            dtype = torch.float64 if index % 2 else torch.float32
            cases.append((name, lambda k=kind, i=in_features, o=out_features, b=bias: k(i, o, bias=b), dtype))
    return cases


def check_init_normal(init_normal, *, hidden: bool = False, seed: int = 0) -> None:
    """Does ``init_normal(module)`` draw every nn.Linear's weight from N(0, 0.01^2) and zero its bias, in
    place, leave every other module alone, and work through ``model.apply``?"""
    __tracebackhide__ = True
    with Exercise("init_normal") as ex:
        for device in ex.devices:
            # 1. Linear layers, a subclass and a bias-free layer, called directly.
            for index, (name, build, dtype) in enumerate(_normal_cases(hidden, seed)):
                with seeded(seed * 1000 + index):
                    layer = build().to(device=device, dtype=dtype)
                label = f"init_normal({name}), {_dtype(dtype)} on {device}"
                before = _snapshot(layer)
                with seeded(seed * 1000 + 100 + index):
                    ex.call(init_normal, layer, case=label, hints=_init_hints)
                _check_normal_linear(ex, layer, before, label)
            # 2. Modules that are not nn.Linear, called directly: nothing may change.
            generator = torch.Generator().manual_seed(seed)
            sizes = (4, 6, 5) if not hidden else tuple(_random_int(generator, 2, 12) for _ in range(3))
            with seeded(seed * 1000 + 200):
                others = _other_modules(sizes)
            for index, (name, module) in enumerate(others):
                module.to(device)
                before = _snapshot(module)
                call = f"init_normal({name}) on {device}"
                with seeded(seed * 1000 + 300 + index):
                    ex.call(init_normal, module, case=call, hints=_init_hints)
                _check_untouched(ex, module, before, name, call)
            # 3. Through model.apply on a Sequential mixing both kinds.
            widths = (
                (300, 500, 400) if not hidden else tuple(_random_int(generator, 300, 600) for _ in range(3))
            )
            dtype = torch.float64 if hidden else torch.float32
            with seeded(seed * 1000 + 400):
                model = nn.Sequential(
                    nn.Linear(widths[0], widths[1]),
                    nn.ReLU(),
                    nn.BatchNorm1d(widths[1]),
                    LinearSubclass(widths[1], widths[2]),
                    Scale(widths[2]),
                ).to(device=device, dtype=dtype)
                with torch.no_grad():
                    model[2].bias.normal_()
            label = (
                f"model.apply(init_normal) on Sequential(Linear{widths[:2]}, ReLU, BatchNorm1d({widths[1]}), "
                f"LinearSubclass{widths[1:]}, Scale({widths[2]})), {_dtype(dtype)} on {device}"
            )
            snapshots = {index: _snapshot(module) for index, module in enumerate(model)}
            with seeded(seed * 1000 + 500):
                ex.call(model.apply, init_normal, case=label, hints=_init_hints)
            for index, module in enumerate(model):
                if isinstance(module, nn.Linear):
                    _check_normal_linear(ex, module, snapshots[index], f"{label}, layer [{index}]")
                else:
                    _check_untouched(ex, module, snapshots[index], f"model[{index}]", label)


# -- xavier_uniform -------------------------------------------------------------------------------


@dataclass
class _XavierCase:
    """One tensor for xavier_uniform: its shape, the gain (None: the default) and dtype."""

    shape: tuple[int, ...]
    gain: float | None
    dtype: torch.dtype
    parameter: bool = False


_XAVIER_VISIBLE = [
    _XavierCase((600, 200), None, torch.float32),  # fan_out = 3 fan_in: Kaiming's bounds are far off
    _XavierCase((250, 400), 5 / 3, torch.float32),  # gain != 1 (tanh's)
    _XavierCase((64, 32, 5), math.sqrt(2), torch.float32),  # Conv1d weight: receptive field 5
    _XavierCase((32, 16, 3, 3), 1.0, torch.float64),  # Conv2d weight: receptive field 9
    _XavierCase((100, 300), math.sqrt(2), torch.float32, parameter=True),  # an nn.Linear(300, 100) weight
]


def _xavier_hidden_cases(seed: int) -> list[_XavierCase]:
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for index in range(8):
        dtype = torch.float64 if index % 2 else torch.float32
        while True:
            kernel = tuple(_random_int(generator, 1, 5) for _ in range(index % 4))  # 2-D to 5-D
            shape = (_random_int(generator, 8, 400), _random_int(generator, 8, 400), *kernel)
            if math.prod(shape) >= 5 * _MIN_STATISTICS and math.prod(shape) <= 400_000:
                break
        gain = round(0.5 + 2.5 * float(torch.rand((), generator=generator)), 3)
        cases.append(_XavierCase(shape, gain, dtype, parameter=index == 5))
    cases.append(_XavierCase((3, 5), 2.0, torch.float64))  # small: exact checks only
    cases.append(_XavierCase((2, 3, 1, 1), 0.5, torch.float32))
    return cases


class _CallWatcher:
    """Notes whether a given Python function runs inside the block. A profile hook sees every Python call
    by its code object, so it catches the function however it was imported, aliased or wrapped; the hook
    that was installed before (a debugger's, say) is chained to and restored afterwards."""

    def __init__(self, code) -> None:
        self._code = code
        self.called = False
        self._previous = None

    def _hook(self, frame, event, arg):
        if event == "call" and frame.f_code is self._code:
            self.called = True
        if self._previous is not None:
            self._previous(frame, event, arg)

    def __enter__(self) -> _CallWatcher:
        self._previous = sys.getprofile()
        sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc) -> bool:
        sys.setprofile(self._previous)
        return False


def _xavier_hints(exc: BaseException) -> tuple[str, str] | None:
    text = str(exc)
    if _common_hints(exc) is _NO_GRAD:
        return (
            "in-place write on a tensor that requires grad, outside torch.no_grad()",
            "wrap the write in `with torch.no_grad():` (nn.init's functions do this for you)",
        )
    if "values to unpack" in text or ("index" in text and "out of range" in text):
        return (
            "only 2-D tensors handled: a conv weight has shape (out_channels, in_channels, *kernel_size)",
            "fan_in = size(1) * receptive field, fan_out = size(0) * receptive field, where the receptive "
            "field is the product of the sizes from dim 2 on (1 for a 2-D weight)",
        )
    return None


_XAVIER_FIX = "a = gain * sqrt(6 / (fan_in + fan_out)), then `tensor.uniform_(-a, a)` under torch.no_grad()"


def _xavier_diagnosis(w: torch.Tensor, shape: tuple[int, ...], gain: float) -> tuple[str, str] | None:
    fan_in, fan_out = _torch_fans(torch.empty(shape, device="meta"))
    bound = gain * math.sqrt(6 / (fan_in + fan_out))
    kaiming = (
        "Kaiming's bound (from fan_in alone): Xavier's uses both fans",
        "a = gain * sqrt(6 / (fan_in + fan_out))",
    )
    wrong_fans = (
        "fans from the wrong dimensions for conv weights: the receptive field (product of the sizes from "
        "dim 2 on) was left out or the wrong sizes were used",
        "fan_in = size(1) * receptive field, fan_out = size(0) * receptive field",
    )
    candidates = [
        (gain * math.sqrt(3 / fan_in), kaiming),
        (math.sqrt(6 / fan_in), kaiming),
        (gain * math.sqrt(6 / fan_in), kaiming),
        (
            gain * math.sqrt(6 / fan_out),
            ("the bound from fan_out alone", "a = gain * sqrt(6 / (fan_in + fan_out))"),
        ),
        (math.sqrt(6 / (fan_in + fan_out)), ("gain ignored", "multiply the bound by gain")),
        (gain**2 * math.sqrt(6 / (fan_in + fan_out)), ("gain applied twice", "multiply by gain once")),
        (
            gain * math.sqrt(2 / (fan_in + fan_out)),
            ("the Xavier std used as the bound: U(-a, a) has std a / sqrt(3)", "a = sqrt(3) * std"),
        ),
        (gain * 6 / (fan_in + fan_out), ("square root forgotten", "a = gain * sqrt(6 / (fan_in + fan_out))")),
    ]
    if len(shape) > 2:
        candidates += [
            (gain * math.sqrt(6 / (shape[0] + shape[1])), wrong_fans),
            (gain * math.sqrt(6 / (shape[-1] + shape[-2])), wrong_fans),
            (gain * math.sqrt(6 / (shape[0] * shape[1] * 2)), wrong_fans),
        ]
    for candidate, hint in candidates:
        if abs(candidate / bound - 1) > 0.02 and _uniform_problem(w, candidate) is None:
            return hint
    if w.numel() >= _MIN_STATISTICS and w.min().item() >= 0:
        return (
            "U(0, a) instead of U(-a, a): torch.rand draws from [0, 1)",
            "tensor.uniform_(-a, a), or (2 * torch.rand(...) - 1) * a",
        )
    if w.numel() >= _MIN_STATISTICS and _normal_problem(w, bound / math.sqrt(3)) is None:
        return (
            "normal distribution instead of uniform (xavier_normal_, normal_ or torch.randn)",
            "draw from U(-a, a): tensor.uniform_(-a, a)",
        )
    return None


def check_xavier_uniform(xavier_uniform, *, hidden: bool = False, seed: int = 0) -> None:
    """Does ``xavier_uniform(tensor, gain)`` fill the tensor in place with U(-a, a), a = gain * sqrt(6 /
    (fan_in + fan_out)) with PyTorch's fans, and return it, without calling nn.init.xavier_uniform_?"""
    __tracebackhide__ = True
    cases = _XAVIER_VISIBLE if not hidden else _xavier_hidden_cases(seed) + _XAVIER_VISIBLE
    with Exercise("xavier_uniform") as ex:
        for device in ex.devices:
            for index, case in enumerate(cases):
                generator = torch.Generator().manual_seed(seed * 1000 + index)
                # Start far outside any bound, so that values left behind are obvious.
                tensor = (100 * torch.randn(case.shape, generator=generator, dtype=case.dtype)).to(device)
                if case.parameter:
                    tensor = nn.Parameter(tensor)
                gain = 1.0 if case.gain is None else case.gain
                label = (
                    f"xavier_uniform(tensor of shape {case.shape}"
                    + ("" if case.gain is None else f", gain={case.gain:.4g}")
                    + f"), {_dtype(case.dtype)} on {device}"
                    + (", the tensor an nn.Parameter" if case.parameter else "")
                )
                copy, pointer = tensor.detach().clone(), tensor.data_ptr()
                kwargs = {} if case.gain is None else {"gain": case.gain}
                watcher = _CallWatcher(_XAVIER_CODE)
                with seeded(seed * 1000 + 100 + index), watcher:
                    result = ex.call(xavier_uniform, tensor, case=label, hints=_xavier_hints, **kwargs)
                if watcher.called:
                    ex.fail(
                        "your code calls torch.nn.init.xavier_uniform_",
                        case=label,
                        fix="compute the bound from the fans and the gain yourself: " + _XAVIER_FIX,
                    )
                if result is not tensor:
                    unchanged = tensor.data_ptr() == pointer and _equal(tensor.detach(), copy)
                    if unchanged:
                        ex.fail(
                            f"the tensor given was left unchanged (the function returned {describe(result)})",
                            case=label,
                            mistake="not in place: the values went into a new tensor",
                            fix="fill the tensor you were given (`tensor.uniform_(-a, a)` under "
                            "torch.no_grad()) and return it",
                        )
                    ex.fail(
                        f"returned {describe(result)}, not the tensor given",
                        case=label,
                        mistake=(
                            "the tensor is filled but not returned"
                            if result is None
                            else "another tensor object returned (a copy or a view of the one given)"
                        )
                        + " (nn.init's functions return the very tensor they were given, so calls chain)",
                        fix="end with `return tensor`",
                    )
                if tensor.data_ptr() != pointer:
                    ex.fail(
                        "the tensor is stored in new memory after the call",
                        case=label,
                        mistake=_new_storage(_XAVIER_FIX)[0],
                        fix=_XAVIER_FIX,
                    )
                if case.parameter and not tensor.requires_grad:
                    ex.fail("the parameter no longer requires grad", case=label, fix="change values only")
                fan_in, fan_out = _torch_fans(tensor)
                bound = gain * math.sqrt(6 / (fan_in + fan_out))
                w = _values(tensor)
                problem = _uniform_problem(w, bound)
                if problem:
                    hint = _xavier_diagnosis(w, case.shape, gain)
                    ex.fail(
                        f"the filled tensor {problem}; expected U(-a, a) with "
                        f"a = gain * sqrt(6 / (fan_in + fan_out)) = "
                        f"{gain:.4g} * sqrt(6 / ({fan_in} + {fan_out})) = {bound:.4g}",
                        case=label,
                        mistake=hint[0] if hint else None,
                        fix=hint[1] if hint else _XAVIER_FIX,
                    )
                ex.passed()


# -- my_init --------------------------------------------------------------------------------------

_MY_INIT_FIX = (
    "inside `with torch.no_grad():` write into module.weight: `.uniform_(-10, 10)`, then set the entries "
    "with |w| < 5 to zero (`module.weight[module.weight.abs() < 5] = 0`)"
)


def _my_init_problem(w: torch.Tensor) -> tuple[str, tuple[str, str] | None] | None:
    """Why ``w`` (float64, flat) is not U(-10, 10) with |w| < 5 zeroed, with a diagnosis, or None."""
    n = w.numel()
    if not bool(torch.isfinite(w).all()):
        return "has values that are not finite", None
    kept = w[w != 0]
    m = kept.numel()
    if m == 0:
        return "is all zeros", (
            "every value had |w| < 5: drawn from U(-5, 5) (or a narrower range) instead of U(-10, 10)",
            _MY_INIT_FIX,
        )
    size = kept.abs()
    if size.max().item() > 10 * (1 + _ROUNDING):
        return f"has values up to {size.max().item():.4g} in absolute value, beyond 10", (
            "not drawn from U(-10, 10) (torch.randn * 10 is a normal distribution, unbounded)",
            _MY_INIT_FIX,
        )
    if size.min().item() < 5 * (1 - _ROUNDING):
        if size.max().item() <= 5 * (1 + _ROUNDING):
            mistake = (
                "zeroed the wrong entries: those with |w| >= 5 were set to zero and the small ones kept",
                "zero the entries with |w| < 5: `w[w.abs() < 5] = 0`, or multiply by `(w.abs() >= 5)`",
            )
        elif m == n:
            mistake = ("entries with |w| < 5 not set to zero", _MY_INIT_FIX)
        else:
            mistake = None
        return f"has nonzero values as small as {size.min().item():.3g} in absolute value", mistake
    zero_share = 1 - m / n
    # P(|w| < 5) = 1/2 under U(-10, 10): binomial standard error 0.5 / sqrt(n), 5e-4 for 10^6 values.
    if abs(zero_share - 0.5) > _Z * 0.5 / math.sqrt(n):
        return f"has {zero_share:.1%} zeros, expected about 50% (|w| < 5 under U(-10, 10))", None
    positive = (kept > 0).double().mean().item()
    # The kept values split evenly by sign: standard error 0.5 / sqrt(m).
    if abs(positive - 0.5) > _Z * 0.5 / math.sqrt(m):
        mistake = None
        if positive > 0.99:
            mistake = ("U(0, 10) instead of U(-10, 10): only positive values", "uniform_(-10, 10)")
        return f"has {positive:.1%} of its nonzero values positive, expected about 50%", mistake
    # |w| of the kept values is U(5, 10): mean 7.5, std 5 / sqrt(12) = 1.443; standard errors 1.443 /
    # sqrt(m) for the mean (2e-3 for m = 5 * 10^5) and sqrt(0.2 / m) relative for the std.
    mean, std = size.mean().item(), size.std().item()
    if abs(mean - 7.5) > _Z * (5 / math.sqrt(12)) / math.sqrt(m):
        return f"has nonzero values of mean absolute value {mean:.4g}, expected 7.5 (uniform on 5..10)", None
    if abs(std / (5 / math.sqrt(12)) - 1) > _Z * math.sqrt(0.2 / m):
        return f"has |nonzero values| with std {std:.4g}, expected 5 / sqrt(12) = 1.443", None
    # Extremes: P(all m values of |w| above 5 + 5 t) = (1 - t)^m <= exp(-m t) < 1e-12 for t = 28 / m.
    t = min(0.5, 28 / m)
    if size.min().item() > 5 + 5 * t or size.max().item() < 10 - 5 * t:
        return (
            f"has |nonzero values| from {size.min().item():.4g} to {size.max().item():.4g}, "
            "expected to reach close to 5 and 10",
            None,
        )
    return None


def _check_my_init_linear(ex: Exercise, layer: nn.Linear, before: list[_Entry], label: str) -> None:
    """After my_init: same parameters, weight as specified, bias exactly as before."""
    now = _check_parameters_kept(ex, layer, before, label, _MY_INIT_FIX)
    entries = {entry.name: entry for entry in before}
    weight = now["weight"]
    if _equal(weight.detach(), entries["weight"].copy):
        subclass = _type(layer) is not nn.Linear
        ex.fail(
            "the weight was not changed",
            case=label,
            mistake=_SUBCLASS[0] if subclass else "the weight was not initialized",
            fix=_SUBCLASS[1] if subclass else _MY_INIT_FIX,
        )
    found = _my_init_problem(_values(weight))
    if found:
        problem, hint = found
        ex.fail(
            f"the weight {problem} (expected U(-10, 10) with every |w| < 5 set to zero)",
            case=label,
            mistake=hint[0] if hint else None,
            fix=hint[1] if hint else _MY_INIT_FIX,
        )
    ex.passed()
    if "bias" in entries and not _equal(now["bias"].detach(), entries["bias"].copy):
        ex.fail(
            "the bias changed",
            case=label,
            mistake="bias changed: my_init initializes the weight only",
            fix="leave module.bias as it was",
        )
    ex.passed()


def check_my_init(my_init, *, hidden: bool = False, seed: int = 0) -> None:
    """Does ``my_init(module)`` fill every nn.Linear's weight in place with U(-10, 10), zeroing the entries
    with |w| < 5, leave its bias and every other module alone, and work through ``model.apply``?"""
    __tracebackhide__ = True
    cases = _normal_cases(hidden, seed + 1)
    with Exercise("my_init") as ex:
        for device in ex.devices:
            for index, (name, build, dtype) in enumerate(cases):
                with seeded(seed * 1000 + index):
                    layer = build().to(device=device, dtype=dtype)
                label = f"my_init({name}), {_dtype(dtype)} on {device}"
                before = _snapshot(layer)
                with seeded(seed * 1000 + 100 + index):
                    ex.call(my_init, layer, case=label, hints=_init_hints)
                _check_my_init_linear(ex, layer, before, label)
            generator = torch.Generator().manual_seed(seed)
            sizes = (3, 5, 4) if not hidden else tuple(_random_int(generator, 2, 12) for _ in range(3))
            with seeded(seed * 1000 + 200):
                others = _other_modules(sizes)
            for index, (name, module) in enumerate(others):
                module.to(device)
                before = _snapshot(module)
                call = f"my_init({name}) on {device}"
                with seeded(seed * 1000 + 300 + index):
                    ex.call(my_init, module, case=call, hints=_init_hints)
                _check_untouched(ex, module, before, name, call)
            widths = (
                (400, 300, 500) if not hidden else tuple(_random_int(generator, 300, 600) for _ in range(3))
            )
            dtype = torch.float64 if hidden else torch.float32
            with seeded(seed * 1000 + 400):
                model = nn.Sequential(
                    LinearSubclass(widths[0], widths[1]),
                    nn.Tanh(),
                    Scale(widths[1]),
                    nn.Linear(widths[1], widths[2]),
                ).to(device=device, dtype=dtype)
            label = (
                f"model.apply(my_init) on Sequential(LinearSubclass{widths[:2]}, Tanh, Scale({widths[1]}), "
                f"Linear{widths[1:]}), {_dtype(dtype)} on {device}"
            )
            snapshots = {index: _snapshot(module) for index, module in enumerate(model)}
            with seeded(seed * 1000 + 500):
                ex.call(model.apply, my_init, case=label, hints=_init_hints)
            for index, module in enumerate(model):
                if isinstance(module, nn.Linear):
                    _check_my_init_linear(ex, module, snapshots[index], f"{label}, layer [{index}]")
                else:
                    _check_untouched(ex, module, snapshots[index], f"model[{index}]", label)


protect_module(__name__)
