"""Checks for notebook 05_initialization: ``init_normal``, ``xavier_uniform``, ``my_init`` and ``init_lstm``.

Initialization draws random numbers, so these checks are statistical. They run the student's function
under a fixed seed (``seeded``, which leaves the notebook's own generator untouched) on large tensors
(10^5 to 10^6 entries in the visible cases) and compare sample statistics with the target distribution.
Every margin is at least 8 standard errors of the statistic (the comments next to the numbers give
them): for a correct answer each statistic leaves its margin with probability below 1e-12 (Gaussian tail
for the sample mean and variance; Bernstein's inequality for the bounded statistics), so a check with
a few dozen such statistics fails a correct answer far less than once in a million runs, while every
known mistake moves a statistic by dozens of margins. Bounds (``|w| <= a``) are checked exactly, up to
float rounding. Fans are computed like ``torch.nn.init``.

``init_lstm`` is checked parameter by parameter: ``weight_ih_l*`` with the uniform statistics above,
``weight_hh_l*`` exactly (``W^T W = I`` within ``_ORTHOGONAL_ATOL``, and no zero entries, which a random
orthogonal matrix never has), the biases exactly (zeros, ones in ``bias_ih_l*[H:2H]``). Each check takes
``part``: ``"core"`` for the main behaviour, ``"edge"`` for the edge cases (a second test cell).
"""

from __future__ import annotations

import itertools
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from course_lib.checks._core import Exercise, Scale, describe, seeded
from course_lib.checks._integrity import ORIGINALS, protect_module
from course_lib.protocol import CORE, EDGE

__all__ = ["check_init_normal", "check_xavier_uniform", "check_my_init", "check_init_lstm"]

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


def _check_weight_changed(
    ex: Exercise, layer: nn.Linear, before: list[_Entry], label: str, fix: str
) -> tuple[dict[str, torch.Tensor], dict[str, _Entry]]:
    """After an init of a Linear's weight: the parameters kept (``_check_parameters_kept``) and the weight
    changed. Returns the parameters now and the entries before, by name."""
    now = _check_parameters_kept(ex, layer, before, label, fix)
    entries = {entry.name: entry for entry in before}
    if _equal(now["weight"].detach(), entries["weight"].copy):
        subclass = _type(layer) is not nn.Linear
        ex.fail(
            "the weight was not changed",
            case=label,
            mistake=_SUBCLASS[0] if subclass else "the weight was not initialized",
            fix=_SUBCLASS[1] if subclass else fix,
        )
    return now, entries


def _check_parameters_kept(
    ex: Exercise, module: nn.Module, before: list[_Entry], label: str, fix: str, owner: str = "layer"
) -> dict[str, torch.Tensor]:
    """The module's parameters must be the same objects, in the same memory, still requiring grad."""
    now = dict(module.named_parameters())
    names = [entry.name for entry in before if entry.parameter]
    if list(now) != names:
        ex.fail(
            f"the {owner}'s parameters are now {list(now)}, expected {names}",
            case=label,
            fix="write into the existing parameters; add or remove none (a bias=False layer has no bias)",
        )
    for entry in before:
        if not entry.parameter:
            continue
        if now[entry.name] is not entry.tensor:
            ex.fail(
                f"{owner}.{entry.name} is a new object after the call",
                case=label,
                mistake=_new_parameter(fix)[0],
                fix=fix,
            )
        if entry.tensor.data_ptr() != entry.pointer:
            ex.fail(
                f"{owner}.{entry.name} is stored in new memory after the call",
                case=label,
                mistake=_new_storage(fix)[0],
                fix=fix,
            )
        if not entry.tensor.requires_grad:
            ex.fail(
                f"{owner}.{entry.name} no longer requires grad",
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
    now, entries = _check_weight_changed(ex, layer, before, label, _NORMAL_FIX)
    weight = now["weight"]
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


_LinearCase = tuple[str, Callable[[], nn.Linear], torch.dtype]


def _linear_cases(hidden: bool, seed: int, part: str) -> list[_LinearCase]:
    """Linear layers to initialize. Core: plain nn.Linear layers with a bias, float32 (one with 10^6
    weights for tight statistics, one with 2.4 * 10^5); hidden: three more of random sizes (>= 9 * 10^4
    weights), float32 and float64. Edge: a subclass, a bias-free layer and a float64 layer (2.4 * 10^5 and
    2.5 * 10^5 weights); hidden: three more of random sizes mixing the three."""
    if part == CORE:
        cases: list[_LinearCase] = [
            ("nn.Linear(1000, 1000)", lambda: nn.Linear(1000, 1000), torch.float32),
            ("nn.Linear(600, 400)", lambda: nn.Linear(600, 400), torch.float32),
        ]
    else:
        cases = [
            (
                "LinearSubclass(400, 600), a subclass of nn.Linear",
                lambda: LinearSubclass(400, 600),
                torch.float32,
            ),
            ("nn.Linear(500, 500, bias=False)", lambda: nn.Linear(500, 500, bias=False), torch.float32),
            ("nn.Linear(300, 800)", lambda: nn.Linear(300, 800), torch.float64),
        ]
    if hidden:
        generator = torch.Generator().manual_seed(seed)
        for index in range(3):
            in_features, out_features = _random_int(generator, 300, 1000), _random_int(generator, 300, 1000)
            bias = part == CORE or index != 0
            kind = LinearSubclass if part == EDGE and index != 1 else nn.Linear
            name = f"{kind.__name__}({in_features}, {out_features}, bias={bias})"
            dtype = torch.float64 if index % 2 else torch.float32
            cases.append((name, lambda k=kind, i=in_features, o=out_features, b=bias: k(i, o, bias=b), dtype))
    return cases


def _apply_model(
    part: str, widths: tuple[int, int, int], activation: type[nn.Module], batch_norm: bool
) -> tuple[nn.Sequential, str]:
    """The model a check runs ``model.apply(fn)`` on (build it seeded). Core: Linear, activation, Linear.
    Edge: the same with a non-Linear module that has parameters named weight and bias between them, a
    subclass of nn.Linear and, with ``batch_norm``, a BatchNorm1d whose bias is not zero (for init_normal,
    whose bias zeroing must not reach it)."""
    a, b, c = widths
    if part == CORE:
        model = nn.Sequential(nn.Linear(a, b), activation(), nn.Linear(b, c))
        return model, f"Sequential(Linear({a}, {b}), {activation.__name__}, Linear({b}, {c}))"
    if batch_norm:
        model = nn.Sequential(
            nn.Linear(a, b), activation(), nn.BatchNorm1d(b), LinearSubclass(b, c), Scale(c)
        )
        with torch.no_grad():
            model[2].bias.normal_()
        text = f"Sequential(Linear({a}, {b}), {activation.__name__}, BatchNorm1d({b}), "
        return model, text + f"LinearSubclass({b}, {c}), Scale({c}))"
    model = nn.Sequential(LinearSubclass(a, b), activation(), Scale(b), nn.Linear(b, c))
    return model, f"Sequential(LinearSubclass({a}, {b}), {activation.__name__}, Scale({b}), Linear({b}, {c}))"


def _check_module_init(
    ex: Exercise,
    fn,
    name: str,
    check_linear: Callable[[Exercise, nn.Linear, list[_Entry], str], None],
    *,
    part: str,
    hidden: bool,
    seed: int,
    linear_seed: int,
    sizes: tuple[int, int, int],
    widths: tuple[int, int, int],
    activation: type[nn.Module],
    batch_norm: bool,
) -> None:
    """The checks init_normal and my_init share: Linear layers called directly, modules that are not
    nn.Linear (edge cases only: nothing may change), and ``model.apply(fn)`` on a Sequential."""
    generator = torch.Generator().manual_seed(seed)
    if hidden:
        sizes = tuple(_random_int(generator, 2, 12) for _ in range(3))
        widths = tuple(_random_int(generator, 300, 600) for _ in range(3))
    for device in ex.devices:
        # 1. Linear layers called directly.
        for index, (layer_name, build, dtype) in enumerate(_linear_cases(hidden, linear_seed, part)):
            with seeded(seed * 1000 + index):
                layer = build().to(device=device, dtype=dtype)
            label = f"{name}({layer_name}), {_dtype(dtype)} on {device}"
            before = _snapshot(layer)
            with seeded(seed * 1000 + 100 + index):
                ex.call(fn, layer, case=label, hints=_init_hints)
            check_linear(ex, layer, before, label)
        # 2. Modules that are not nn.Linear, called directly: nothing may change.
        if part == EDGE:
            with seeded(seed * 1000 + 200):
                others = _other_modules(sizes)
            for index, (module_name, module) in enumerate(others):
                module.to(device)
                before = _snapshot(module)
                call = f"{name}({module_name}) on {device}"
                with seeded(seed * 1000 + 300 + index):
                    ex.call(fn, module, case=call, hints=_init_hints)
                _check_untouched(ex, module, before, module_name, call)
        # 3. Through model.apply.
        dtype = torch.float64 if hidden else torch.float32
        with seeded(seed * 1000 + 400):
            model, text = _apply_model(part, widths, activation, batch_norm)
            model = model.to(device=device, dtype=dtype)
        label = f"model.apply({name}) on {text}, {_dtype(dtype)} on {device}"
        snapshots = {index: _snapshot(module) for index, module in enumerate(model)}
        with seeded(seed * 1000 + 500):
            ex.call(model.apply, fn, case=label, hints=_init_hints)
        for index, module in enumerate(model):
            if isinstance(module, nn.Linear):
                check_linear(ex, module, snapshots[index], f"{label}, layer [{index}]")
            else:
                _check_untouched(ex, module, snapshots[index], f"model[{index}]", label)


def check_init_normal(init_normal, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Does ``init_normal(module)`` draw an nn.Linear's weight from N(0, 0.01^2) and zero its bias, in
    place, also through ``model.apply``? Core: plain nn.Linear layers; ``part="edge"``: a subclass of
    nn.Linear, a bias-free layer, float64, and modules that are not nn.Linear (left untouched)."""
    __tracebackhide__ = True
    with Exercise("init_normal") as ex:
        _check_module_init(
            ex,
            init_normal,
            "init_normal",
            _check_normal_linear,
            part=part,
            hidden=hidden,
            seed=seed,
            linear_seed=seed,
            sizes=(4, 6, 5),
            widths=(300, 500, 400),
            activation=nn.ReLU,
            batch_norm=True,
        )


# -- xavier_uniform -------------------------------------------------------------------------------


@dataclass
class _XavierCase:
    """One tensor for xavier_uniform: its shape, the gain (None: the default) and dtype."""

    shape: tuple[int, ...]
    gain: float | None
    dtype: torch.dtype
    parameter: bool = False


# Core: 2-D weights, the default gain and others, a Parameter. Edge: convolution weights (3-D and
# more: the receptive field enters both fans), float64, and tensors too small for statistics.
_XAVIER_VISIBLE = {
    CORE: [
        _XavierCase((600, 200), None, torch.float32),  # fan_out = 3 fan_in: Kaiming's bounds are far off
        _XavierCase((250, 400), 5 / 3, torch.float32),  # gain != 1 (tanh's)
        _XavierCase((100, 300), math.sqrt(2), torch.float32, parameter=True),  # an nn.Linear(300, 100) weight
    ],
    EDGE: [
        _XavierCase((64, 32, 5), math.sqrt(2), torch.float32),  # Conv1d weight: receptive field 5
        _XavierCase((32, 16, 3, 3), 1.0, torch.float64),  # Conv2d weight: receptive field 9
        _XavierCase((16, 8, 3, 3), 0.5, torch.float32, parameter=True),  # an nn.Conv2d(8, 16, 3) weight
        _XavierCase((3, 5), 2.0, torch.float64),  # small: exact checks only
    ],
}


def _xavier_hidden_cases(seed: int, part: str) -> list[_XavierCase]:
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for index in range(4 if part == CORE else 6):
        dtype = torch.float64 if index % 2 else torch.float32
        while True:
            kernel = tuple(_random_int(generator, 1, 5) for _ in range(0 if part == CORE else 1 + index % 3))
            shape = (_random_int(generator, 8, 400), _random_int(generator, 8, 400), *kernel)
            if math.prod(shape) >= 5 * _MIN_STATISTICS and math.prod(shape) <= 400_000:
                break
        gain = round(0.5 + 2.5 * float(torch.rand((), generator=generator)), 3)
        cases.append(_XavierCase(shape, gain, dtype, parameter=index == 2))
    if part == EDGE:
        cases.append(_XavierCase((2, 3, 1, 1), 0.5, torch.float32))  # small: exact checks only
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


def check_xavier_uniform(xavier_uniform, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Does ``xavier_uniform(tensor, gain)`` fill the tensor in place with U(-a, a), a = gain * sqrt(6 /
    (fan_in + fan_out)) with PyTorch's fans, and return it, without calling nn.init.xavier_uniform_?
    Core: 2-D tensors (a Parameter among them); ``part="edge"``: convolution weights (3-D to 5-D),
    float64, and tensors too small for statistics."""
    __tracebackhide__ = True
    cases = _XAVIER_VISIBLE[part]
    if hidden:
        cases = _xavier_hidden_cases(seed, part) + cases
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
    now, entries = _check_weight_changed(ex, layer, before, label, _MY_INIT_FIX)
    weight = now["weight"]
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


def check_my_init(my_init, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Does ``my_init(module)`` fill an nn.Linear's weight in place with U(-10, 10), zeroing the entries
    with |w| < 5, and leave its bias alone, also through ``model.apply``? Core: plain nn.Linear layers;
    ``part="edge"``: a subclass of nn.Linear, a bias-free layer, float64, and modules that are not
    nn.Linear (left untouched)."""
    __tracebackhide__ = True
    with Exercise("my_init") as ex:
        _check_module_init(
            ex,
            my_init,
            "my_init",
            _check_my_init_linear,
            part=part,
            hidden=hidden,
            seed=seed,
            linear_seed=seed + 1,
            sizes=(3, 5, 4),
            widths=(400, 300, 500),
            activation=nn.Tanh,
            batch_norm=False,
        )


# -- init_lstm ------------------------------------------------------------------------------------

_LSTM_FIX = (
    "for every parameter in lstm.named_parameters(), inside `with torch.no_grad():`: weight_ih_l* -> "
    "nn.init.xavier_uniform_, weight_hh_l* -> nn.init.orthogonal_, bias_* -> zeros, then "
    "bias_ih_l*[H:2H] = 1 with H = lstm.hidden_size"
)
_LSTM_NAME = re.compile(
    r"^(?P<kind>weight_ih|weight_hh|weight_hr|bias_ih|bias_hh)_l(?P<layer>\d+)(?P<reverse>_reverse)?$"
)
# |W^T W - I| (entrywise) that an orthogonal matrix computed in the parameter's dtype stays within.
# Householder QR in working precision is orthogonal to a few units of eps times the size; measured for
# PyTorch's orthogonal_ on (800, 200) and smaller: below 6e-7 in float32 and 2e-15 in float64.
_ORTHOGONAL_ATOL = {torch.float32: 1e-4, torch.float64: 1e-10}
_GATES = ("input gate i", "forget gate f", "cell candidate g", "output gate o")


@dataclass
class _LSTMCase:
    """One nn.LSTM to initialize."""

    input_size: int
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    proj_size: int = 0
    bias: bool = True
    batch_first: bool = False
    dtype: torch.dtype = torch.float32

    def build(self) -> nn.LSTM:
        return nn.LSTM(
            self.input_size,
            self.hidden_size,
            num_layers=self.num_layers,
            bias=self.bias,
            batch_first=self.batch_first,
            bidirectional=self.bidirectional,
            proj_size=self.proj_size,
            dtype=self.dtype,
        )

    def __str__(self) -> str:
        options = [
            f"{name}={value}"
            for name, value, default in (
                ("num_layers", self.num_layers, 1),
                ("bias", self.bias, True),
                ("batch_first", self.batch_first, False),
                ("bidirectional", self.bidirectional, False),
                ("proj_size", self.proj_size, 0),
            )
            if value != default
        ]
        return f"nn.LSTM({', '.join([str(self.input_size), str(self.hidden_size), *options])})"


# The sizes keep the bounds a mistake would give well apart from Xavier's a = sqrt(6 / (in + 4H)): PyTorch's
# default 1 / sqrt(H) (equal to it when in = 2H), Xavier per gate block sqrt(6 / (in + H)) and Kaiming's.
_LSTM_VISIBLE = {
    CORE: [_LSTMCase(512, 64), _LSTMCase(48, 160, batch_first=True)],
    EDGE: [
        _LSTMCase(96, 64, num_layers=3),
        _LSTMCase(40, 48, bidirectional=True),
        _LSTMCase(32, 64, num_layers=2, bidirectional=True, batch_first=True, dtype=torch.float64),
        _LSTMCase(24, 80, num_layers=2, proj_size=20),  # weight_hh (320, 20): H != weight_hh.shape[1]
        _LSTMCase(16, 32, bias=False),
    ],
}


def _lstm_hidden_cases(seed: int, part: str) -> list[_LSTMCase]:
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for index in range(3 if part == CORE else 4):
        while True:
            input_size, hidden_size = _random_int(generator, 16, 400), _random_int(generator, 16, 160)
            if abs(input_size / (2 * hidden_size) - 1) > 0.3:  # keep Xavier's bound away from the default's
                break
        dtype = torch.float64 if index % 2 else torch.float32
        if part == CORE:
            cases.append(_LSTMCase(input_size, hidden_size, dtype=dtype))
            continue
        proj_size = _random_int(generator, 4, hidden_size // 2) if index == 2 else 0
        cases.append(
            _LSTMCase(
                input_size,
                hidden_size,
                num_layers=_random_int(generator, 2, 3) if index != 1 else 1,
                bidirectional=index != 0,
                proj_size=proj_size,
                bias=index != 3,
                dtype=dtype,
            )
        )
    return cases


def _lstm_hints(exc: BaseException) -> tuple[str, str] | None:
    hint = _common_hints(exc)
    if hint:
        return hint
    text = str(exc)
    if "has no attribute" in text and "bias_" in text:
        return (
            "an LSTM built with bias=False has no bias_ih_l* / bias_hh_l* parameters, and the code asks "
            "for them",
            "loop over lstm.named_parameters() (it lists only what exists), or check `lstm.bias` first",
        )
    if "has no attribute" in text and ("_l" in text or "_reverse" in text):
        return (
            "a parameter name that this LSTM does not have (check num_layers, bidirectional and proj_size)",
            "loop over lstm.named_parameters() instead of building the names yourself",
        )
    if "fewer than 2 dimensions" in text or "2 or more dimensions" in text:
        return (
            "xavier_uniform_ or orthogonal_ applied to a 1-D bias: they need a matrix",
            "apply them to the weights only; set the biases with zeros_ and fill_",
        )
    return None


def _describe_parameter(name: str) -> str:
    match = _LSTM_NAME.match(name)
    if not match:
        return name
    direction = ", backward direction" if match["reverse"] else ""
    return f"{name} (layer {match['layer']}{direction})"


def _unchanged_mistake(name: str, changed: set[str]) -> tuple[str, str]:
    """Why parameter ``name`` was left exactly as PyTorch initialized it, given the names that changed."""
    match = _LSTM_NAME.match(name)
    kind, layer = match["kind"], int(match["layer"])
    forward_twin = name.removesuffix("_reverse")
    if match["reverse"] and forward_twin in changed:
        return (
            "only the forward direction initialized: the `_reverse` parameters of a bidirectional LSTM (its "
            "backward direction) were left at their defaults",
            "initialize every parameter in lstm.named_parameters(), the `_reverse` ones included",
        )
    if layer > 0 and f"{kind}_l0{match['reverse'] or ''}" in changed:
        return (
            f"only layer 0 initialized: layer {layer}'s parameters (`_l{layer}`) were left at their defaults",
            "initialize the parameters of every layer, l0 to l{num_layers - 1}: loop over "
            "lstm.named_parameters()",
        )
    if kind == "bias_hh" and f"bias_ih_l{layer}{match['reverse'] or ''}" in changed:
        return (
            "bias_hh left at its default values (only bias_ih initialized): PyTorch adds bias_ih and "
            "bias_hh, so both count",
            "set every bias_hh_l* to zero as well",
        )
    if kind.startswith("bias"):
        return ("biases left at default (PyTorch's U(-1/sqrt(H), 1/sqrt(H)))", _LSTM_FIX)
    target = "Xavier-uniform" if kind == "weight_ih" else "orthogonal"
    fix = "nn.init.xavier_uniform_(weight_ih)" if kind == "weight_ih" else "nn.init.orthogonal_(weight_hh)"
    return (f"{kind} left at its default values (PyTorch's U(-1/sqrt(H), 1/sqrt(H)), not {target})", fix)


def _is_orthogonal(w: torch.Tensor, atol: float) -> bool:
    """``W^T W = I`` (more rows than columns) or ``W W^T = I``, entrywise within ``atol``; ``w`` float64."""
    gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    return bool(((gram - eye).abs() <= atol).all())


def _gram_scale(w: torch.Tensor) -> float | None:
    """``c`` when ``W^T W`` (or ``W W^T``) is ``c I`` to 1e-4 relative, else None; ``w`` float64."""
    gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    c = gram.diagonal().mean().item()
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    return c if c > 0 and bool(((gram - c * eye).abs() <= 1e-4 * c).all()) else None


def _lstm_weight_ih_diagnosis(w: torch.Tensor, hidden_size: int) -> tuple[str, str] | None:
    """The likely mistake behind a weight_ih (float64, (4H, in)) that is not Xavier-uniform."""
    four_h, in_size = w.shape
    flat = w.flatten()
    bound = math.sqrt(6 / (in_size + four_h))
    fix = "nn.init.xavier_uniform_(weight_ih)"
    kaiming = ("Kaiming's bound (from fan_in alone)", fix)
    if _gram_scale(w) is not None and w.numel() >= _MIN_STATISTICS:
        return (
            "weight_ih orthogonal instead of Xavier-uniform (weight_ih and weight_hh swapped, or orthogonal_ "
            "applied to every weight?)",
            "nn.init.xavier_uniform_ for weight_ih_l*, nn.init.orthogonal_ for weight_hh_l*",
        )
    candidates = [
        (
            math.sqrt(6 / (in_size + hidden_size)),
            (
                "Xavier per gate block: the fans of one (H, in) gate block instead of the whole (4H, in) "
                "matrix",
                "apply nn.init.xavier_uniform_ to the whole weight_ih_l*: fan_out = 4H",
            ),
        ),
        (
            1 / math.sqrt(hidden_size),
            (
                "weight_ih redrawn from PyTorch's default U(-1/sqrt(H), 1/sqrt(H)) instead of Xavier-uniform",
                "nn.init.xavier_uniform_(weight_ih)",
            ),
        ),
        (math.sqrt(6 / in_size), kaiming),
        (1 / math.sqrt(in_size), kaiming),
        (
            5 / 3 * bound,
            ("Xavier with tanh's gain 5/3: the exercise uses gain 1", fix),
        ),
        (
            math.sqrt(2) * bound,
            ("Xavier with ReLU's gain sqrt(2): the exercise uses gain 1", fix),
        ),
    ]
    for candidate, hint in candidates:
        if abs(candidate / bound - 1) > 0.02 and _uniform_problem(flat, candidate) is None:
            return hint
    if flat.numel() >= _MIN_STATISTICS and _normal_problem(flat, bound / math.sqrt(3)) is None:
        return (
            "normal instead of uniform: xavier_normal_ used for weight_ih",
            "nn.init.xavier_uniform_(weight_ih)",
        )
    if bool((flat == 0).all()):
        return ("weight_ih set to zero", "nn.init.xavier_uniform_(weight_ih)")
    return None


def _lstm_weight_hh_diagnosis(w: torch.Tensor, hidden_size: int) -> tuple[str, str] | None:
    """The likely mistake behind a weight_hh (float64, (4H, H) or (4H, proj_size)) that is not orthogonal."""
    four_h, columns = w.shape
    flat = w.flatten()
    blocks = w.reshape(4, hidden_size, columns)
    if all(_gram_scale(block) is not None for block in blocks):
        return (
            "orthogonal per gate block: each of the four (H, H) gate blocks is orthogonal, so the whole "
            "matrix has W^T W = 4 I; the exercise asks for nn.init.orthogonal_ on the whole (4H, H) matrix",
            "nn.init.orthogonal_(weight_hh) on the whole weight_hh_l*, not on its chunks",
        )
    scale = _gram_scale(w)
    if scale is not None:
        return (
            f"orthogonal with a gain: W^T W = {scale:.4g} I (gain {math.sqrt(scale):.4g}); the exercise uses "
            "gain 1",
            "nn.init.orthogonal_(weight_hh) with the default gain",
        )
    xavier = math.sqrt(6 / (four_h + columns))
    if _uniform_problem(flat, xavier) is None:
        return (
            "weight_hh Xavier-uniform instead of orthogonal (the same init as weight_ih)",
            "nn.init.orthogonal_(weight_hh): the recurrent matrix is applied at every time step",
        )
    if _uniform_problem(flat, 1 / math.sqrt(hidden_size)) is None:
        return (
            "weight_hh redrawn from PyTorch's default U(-1/sqrt(H), 1/sqrt(H)) instead of orthogonal",
            "nn.init.orthogonal_(weight_hh)",
        )
    return None


def _ones_slices(b: torch.Tensor, hidden_size: int) -> list[int]:
    """The gate blocks (0 to 3) of a bias (float64, (4H,)) that are all ones."""
    return [k for k in range(4) if bool((b[k * hidden_size : (k + 1) * hidden_size] == 1).all())]


def _lstm_bias_ih_diagnosis(
    b: torch.Tensor, b_hh: torch.Tensor | None, before: torch.Tensor, hidden_size: int, proj_size: int
) -> tuple[str, str] | None:
    """The likely mistake behind a bias_ih (float64, (4H,)) that is not zero with ones at [H:2H]."""
    h = hidden_size
    ones = _ones_slices(b, h)
    zeros = [k for k in range(4) if bool((b[k * h : (k + 1) * h] == 0).all())]
    left = [k for k in range(4) if bool((b[k * h : (k + 1) * h] == before[k * h : (k + 1) * h]).all())]
    slice_fix = "PyTorch's gate order is i, f, g, o: the forget gate is the second block, bias_ih[H:2H] = 1"
    if proj_size and bool((b[proj_size : 2 * proj_size] == 1).all()) and not bool((b[h : 2 * h] == 1).all()):
        return (
            f"H taken from weight_hh.shape[1], which is proj_size ({proj_size}) when proj_size > 0, not "
            f"hidden_size ({h})",
            "use H = lstm.hidden_size (or bias.numel() // 4)",
        )
    if ones == [0, 1, 2, 3]:
        return ("the whole bias_ih set to 1, not only the forget-gate slice [H:2H]", slice_fix)
    if len(ones) == 1 and ones[0] != 1 and len(zeros) == 3:
        slice_name = {
            0: "the input-gate slice [0:H] set instead of the forget gate's [H:2H]",
            2: "the cell-candidate (g gate) slice [2H:3H] set instead of the forget gate's [H:2H]",
            3: "the output-gate slice [3H:4H] set instead of the forget gate's [H:2H]",
        }[ones[0]]
        return (slice_name, slice_fix)
    if len(zeros) == 4:
        if b_hh is not None and _ones_slices(b_hh, h) == [1]:
            return (
                "the forget-gate bias put in bias_hh instead of bias_ih (the LSTM adds the two, but the "
                "exercise asks for bias_ih[H:2H] = 1 and bias_hh = 0)",
                "set bias_ih_l*[H:2H] = 1 and leave every bias_hh_l* at zero",
            )
        return ("the forget-gate bias not set: every bias is zero", "then set bias_ih_l*[H:2H] = 1")
    if 1 in ones and [k for k in left if k != 1]:
        return (
            "the forget-gate slice set to 1 but the rest of bias_ih not zeroed (still PyTorch's default "
            "values)",
            "zero the whole bias first, then set the slice [H:2H] to 1",
        )
    forget = b[h : 2 * h]
    if bool((forget == forget[0]).all()) and len([k for k in zeros if k != 1]) == 3:
        return (
            f"the forget-gate slice holds {forget[0].item():g}, expected 1",
            "bias_ih[H:2H] = 1 (with bias_hh zero, the effective forget bias is 1)",
        )
    return None


def _check_lstm_parameter(
    ex: Exercise,
    case: _LSTMCase,
    name: str,
    tensor: torch.Tensor,
    before: dict[str, _Entry],
    changed: set[str],
    label: str,
) -> None:
    """One parameter of the LSTM after init_lstm, against the contract (weight_hr_l* is not graded)."""
    kind = _LSTM_NAME.match(name)["kind"]
    what = _describe_parameter(name)
    w = tensor.detach().to(torch.float64)
    if kind != "weight_hr" and name not in changed:
        mistake, fix = _unchanged_mistake(name, changed)
        ex.fail(f"{what} still holds the values PyTorch gave it", case=label, mistake=mistake, fix=fix)
    if not bool(torch.isfinite(w).all()):
        ex.fail(f"{what} has values that are not finite", case=label, fix=_LSTM_FIX)
    h = case.hidden_size
    if kind == "weight_ih":
        fan_in, fan_out = _torch_fans(tensor)
        bound = math.sqrt(6 / (fan_in + fan_out))
        problem = _uniform_problem(_values(tensor), bound)
        if problem:
            hint = _lstm_weight_ih_diagnosis(w.cpu(), h)
            ex.fail(
                f"{what} {problem}; expected Xavier-uniform U(-a, a) with a = sqrt(6 / (fan_in + fan_out)) = "
                f"sqrt(6 / ({fan_in} + {fan_out})) = {bound:.4g}",
                case=label,
                mistake=hint[0] if hint else None,
                fix=hint[1] if hint else _LSTM_FIX,
            )
    elif kind == "weight_hh":
        atol = _ORTHOGONAL_ATOL[tensor.dtype]
        product = "W^T W" if w.shape[0] >= w.shape[1] else "W W^T"
        if not _is_orthogonal(w, atol):
            hint = _lstm_weight_hh_diagnosis(w.cpu(), h)
            ex.fail(
                f"{what} is not orthogonal: {product} differs from the identity by more than {atol:g}",
                case=label,
                mistake=hint[0] if hint else None,
                fix=hint[1] if hint else "nn.init.orthogonal_(weight_hh) on the whole matrix",
            )
        zeros = (w == 0).double().mean().item()
        if zeros > 0.01:  # a random orthogonal matrix has no zero entries
            ex.fail(
                f"{what} is orthogonal but {zeros:.1%} of its entries are zero: not a random orthogonal "
                "matrix",
                case=label,
                mistake="not a random orthogonal matrix (nn.init.eye_ or a fixed identity block?)",
                fix="nn.init.orthogonal_(weight_hh): a random orthogonal matrix",
            )
    elif kind == "bias_ih":
        expected = torch.zeros_like(w)
        expected[h : 2 * h] = 1
        if not _equal(w, expected):
            twin = name.replace("bias_ih", "bias_hh")
            b_hh = before[twin].tensor.detach().to(torch.float64) if twin in before else None
            old = before[name].copy.to("cpu", torch.float64)
            hint = _lstm_bias_ih_diagnosis(
                w.cpu(), None if b_hh is None else b_hh.cpu(), old, h, case.proj_size
            )
            ex.fail(
                f"{what} is not zero with ones in the forget-gate slice [H:2H] = [{h}:{2 * h}]",
                case=label,
                mistake=hint[0] if hint else None,
                fix=hint[1] if hint else _LSTM_FIX,
            )
    elif kind == "bias_hh" and not bool((w == 0).all()):
        mistake = None
        if _ones_slices(w.cpu(), h) == [1]:
            mistake = (
                "both bias_ih and bias_hh set to 1 in the forget-gate slice: the LSTM adds them, so the "
                "effective forget bias is 2"
            )
        ex.fail(
            f"{what} is not all zeros",
            case=label,
            mistake=mistake,
            fix="set bias_hh_l* to zero; only bias_ih_l*[H:2H] holds the forget-gate bias 1",
        )
    ex.passed()


def check_init_lstm(init_lstm, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Does ``init_lstm(lstm)`` initialize an nn.LSTM in place: every weight_ih_l* Xavier-uniform, every
    weight_hh_l* orthogonal, every bias zero except bias_ih_l*[H:2H] = 1? Core: one-layer unidirectional
    LSTMs; ``part="edge"``: several layers, bidirectional, proj_size, bias=False and float64."""
    __tracebackhide__ = True
    cases = _LSTM_VISIBLE[part]
    if hidden:
        cases = _lstm_hidden_cases(seed, part) + cases
    with Exercise("init_lstm") as ex:
        for device in ex.devices:
            for index, case in enumerate(cases):
                with seeded(seed * 1000 + index):
                    lstm = case.build().to(device)
                label = f"init_lstm({case}), {_dtype(case.dtype)} on {device}"
                before = _snapshot(lstm)
                grad_mode = torch.is_grad_enabled()
                with seeded(seed * 1000 + 100 + index):
                    ex.call(init_lstm, lstm, case=label, hints=_lstm_hints)
                if torch.is_grad_enabled() != grad_mode:
                    torch.set_grad_enabled(grad_mode)
                    ex.fail(
                        "gradient tracking is switched off after the call",
                        case=label,
                        mistake="grad mode left off: `torch.set_grad_enabled(False)` (or `torch.no_grad()` "
                        "entered by hand) switches autograd off for the rest of the notebook",
                        fix="use the block form, `with torch.no_grad():`, which switches it back on at "
                        "its end",
                    )
                _check_parameters_kept(ex, lstm, before, label, _LSTM_FIX, owner="lstm")
                entries = {entry.name: entry for entry in before if entry.parameter}
                changed = {
                    name for name, entry in entries.items() if not _equal(entry.tensor.detach(), entry.copy)
                }
                for name, entry in entries.items():
                    _check_lstm_parameter(ex, case, name, entry.tensor, entries, changed, label)


protect_module(__name__)
