"""Checks for notebook 07_custom_layers: ``CenteredLayer``, ``MyLinear``, ``ScalingLayer``,
``LearnableLeakyReLU``, ``Residual`` and ``ResidualConvBlock``.

Each check builds the student's layer, inspects what it registers (parameters, buffers, submodules) with
``nn.Module``'s own methods, and compares its outputs and gradients with what PyTorch computes
(``x - x.mean()``, ``nn.Linear``, ``scale * x``, ``nn.PReLU``, ``x + module(x)``, and ``F.conv2d`` /
``F.batch_norm`` from the block's own parameters and buffers) on every available device. The checks of
exercises worth 3 points or more take ``part`` (``"core"`` or ``"edge"``: two test cells, partial
credit); ``hidden=True`` adds random sizes, values, dtypes and edge cases (used by the hidden tests at
grading time).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from course_lib.checks._core import Exercise, seeded
from course_lib.checks._integrity import ORIGINALS, protect_module
from course_lib.protocol import CORE, EDGE

__all__ = [
    "check_CenteredLayer",
    "check_MyLinear",
    "check_ScalingLayer",
    "check_LearnableLeakyReLU",
    "check_Residual",
    "check_ResidualConvBlock",
]

_equal = ORIGINALS["equal"]
_type = ORIGINALS["type"]
_MISSING = object()
_GRAD_DTYPES = (torch.float32, torch.float64)


# -- shared helpers ------------------------------------------------------------------------------------
def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _randn(shape: tuple[int, ...], seed: int, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """Standard normal values drawn on the CPU from their own generator, then cast and moved."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype).to(device)


def _describe_x(x: torch.Tensor) -> str:
    layout = "" if x.is_contiguous() else ", not contiguous"
    return f"x {tuple(x.shape)}, {_dtype_name(x.dtype)} on {x.device}{layout}"


def _draw(generator: torch.Generator, low: int, high: int) -> int:
    """A random integer in [low, high] from ``generator``."""
    return int(torch.randint(low, high + 1, (1,), generator=generator))


def _construction_hints(signature: str) -> Callable[[BaseException], tuple[str, str] | None]:
    """Hints for exceptions raised while building a layer."""

    def hints(exc: BaseException):
        text = str(exc)
        if "__init__() call" in text:
            return (
                "super().__init__() not called before assigning parameters or submodules",
                "make `super().__init__()` the first line of __init__",
            )
        if "unexpected keyword argument" in text or "positional argument" in text:
            return (
                "arguments named or ordered differently from the exercise",
                f"use the signature given in the exercise: {signature}",
            )
        if "cannot assign" in text and "parameter" in text:
            return (
                "a plain tensor assigned over a registered parameter",
                "assign an nn.Parameter (or None), e.g. `self.bias = nn.Parameter(torch.empty(...))`",
            )
        return None

    return hints


def _expect_module(ex: Exercise, layer: object, what: str, case: str) -> nn.Module:
    ex.expect_instance(
        layer,
        nn.Module,
        what,
        case=case,
        fix="subclass nn.Module (`class X(nn.Module):`) and call super().__init__() in __init__",
    )
    if "_parameters" not in vars(layer):
        ex.fail(
            f"{what} is not set up as a module",
            case=case,
            mistake="super().__init__() not called in __init__",
            fix="make `super().__init__()` the first line of __init__",
        )
    return layer


def _names(mapping) -> str:
    return ", ".join(repr(name) for name in mapping) or "none"


def _unchanged(x: torch.Tensor, copy: torch.Tensor, version: int) -> bool:
    return x._version == version and _equal(x, copy)


def _grads(ex: Exercise, output: torch.Tensor, inputs: dict[str, torch.Tensor], grad_output, case: str):
    """Gradients of ``output`` (weighted by ``grad_output``) for each named input; fail if one is missing."""
    if not output.requires_grad:
        ex.fail(
            "the output does not require grad although the input and the parameters do",
            case=case,
            mistake="the computation left autograd (.detach(), .item(), .data, numpy or torch.no_grad())",
            fix="compute the output with torch operations on x and the layer's parameters",
        )
    grads = torch.autograd.grad(output, list(inputs.values()), grad_output, allow_unused=True)
    for name, grad in zip(inputs, grads, strict=True):
        if grad is None:
            ex.fail(
                f"no gradient reaches {name}",
                case=case,
                mistake=f"{name} not used in the computation, or used through a detached copy",
                fix=f"use {name} itself (not {name}.item(), {name}.data or {name}.detach())",
            )
    return dict(zip(inputs, grads, strict=True))


_IN_PLACE = (
    "input modified in place (an operation ending in _ such as sub_ or add_, `-=` / `+=` on x, "
    "or assigning into x[...])"
)


def _in_place_hint(exc: BaseException) -> tuple[str, str] | None:
    if "in-place operation" in str(exc):
        return (_IN_PLACE, "compute a new tensor and return it; leave x as it was")
    return None


# -- CenteredLayer ---------------------------------------------------------------------------------
def _centered_cases(hidden: bool, seed: int) -> list[tuple[tuple[int, ...], torch.dtype, bool]]:
    """(shape, dtype, transposed) for CenteredLayer's inputs."""
    cases = [
        ((4, 3), torch.float32, False),  # per-feature and per-sample means differ from the global mean
        ((2, 3, 5), torch.float32, False),
        ((6,), torch.float32, False),
        ((3, 3), torch.float64, False),
    ]
    if not hidden:
        return cases
    generator = torch.Generator().manual_seed(seed)
    dtypes = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
    for index in range(8):
        dims = _draw(generator, 1, 4)
        shape = tuple(_draw(generator, 2, 6) for _ in range(dims))
        cases.append((shape, dtypes[index % len(dtypes)], False))
    cases.append(((), torch.float32, False))  # a 0-dim tensor: x - x.mean() is 0
    cases.append(((_draw(generator, 2, 5), _draw(generator, 3, 6)), torch.float64, True))  # not contiguous
    return cases


def _centered_input(shape, dtype, transposed, seed, device) -> torch.Tensor:
    if transposed:
        return _randn(shape[::-1], seed, dtype, device).transpose(0, 1)
    # An offset so that the mean is far from 0 and forgetting to subtract it shows.
    return _randn(shape, seed, dtype, device) + 1.5


def _centered_hints(exc: BaseException):
    text = str(exc)
    if "view size is not compatible" in text:
        return (
            "view() used on an input that is not contiguous",
            "use x.mean() over all elements directly, or x.reshape(-1) instead of x.view(-1)",
        )
    return _in_place_hint(exc)


def _centered_diagnosis(ex: Exercise, x: torch.Tensor):
    fix_dim = "take the mean over all elements: `x - x.mean()` (no dim argument)"

    def diagnose(actual: torch.Tensor):
        with torch.no_grad():
            candidates = []
            if x.dim() >= 2:
                candidates.append(
                    ("mean over one dimension (per-feature centering with x.mean(0))", x - x.mean(0), fix_dim)
                )
            if x.dim() >= 1:
                per_sample = x - x.mean(-1, keepdim=True)
                candidates.append(
                    ("mean over one dimension (per-sample centering with x.mean(-1))", per_sample, fix_dim)
                )
            for dim in range(1, x.dim() - 1):
                candidates.append(
                    (
                        f"mean over one dimension (x.mean({dim}))",
                        x - x.mean(dim, keepdim=True),
                        fix_dim,
                    )
                )
            centered = x - x.mean()
            candidates += [
                ("sign flipped: x.mean() - x", -centered, "subtract the mean from x: `x - x.mean()`"),
                ("the mean returned instead of x minus the mean", x.mean(), "return `x - x.mean()`"),
                ("x returned unchanged", x, "subtract the mean: `x - x.mean()`"),
            ]
            if x.numel() > 1:
                candidates.append(
                    (
                        "also divided by the standard deviation (standardizing; CenteredLayer only centers)",
                        centered / x.std(),
                        "return `x - x.mean()` without dividing",
                    )
                )
        return ex.first_match(actual, candidates)

    return diagnose


def check_CenteredLayer(CenteredLayer, *, hidden: bool = False, seed: int = 0) -> None:
    """Is ``CenteredLayer()`` a parameter-free module whose forward returns ``x - x.mean()`` (the mean over
    all elements) for any shape and floating dtype, with gradients, leaving its input untouched?"""
    __tracebackhide__ = True
    cases = _centered_cases(hidden, seed)
    with Exercise("CenteredLayer") as ex:
        label = "CenteredLayer()"
        layer = ex.call(CenteredLayer, case=label, hints=_construction_hints("CenteredLayer()"))
        _expect_module(ex, layer, "CenteredLayer()", label)
        parameters = dict(nn.Module.named_parameters(layer))
        if parameters:
            ex.fail(
                f"CenteredLayer() has parameters ({_names(parameters)}); it should have none",
                case=label,
                mistake="parameters added: centering has nothing to learn",
                fix="remove the nn.Parameter; forward only computes `x - x.mean()`",
            )
        buffers = dict(nn.Module.named_buffers(layer))
        if buffers:
            ex.fail(
                f"CenteredLayer() has buffers ({_names(buffers)}); it should have none",
                case=label,
                mistake="buffers added: the mean is computed from each input, never stored",
                fix="compute the mean inside forward: `x - x.mean()`",
            )
        ex.passed()
        for device in ex.devices:
            for index, (shape, dtype, transposed) in enumerate(cases):
                x = _centered_input(shape, dtype, transposed, seed * 1000 + index, device)
                label = _describe_x(x)
                copy, version = x.clone(), x._version
                y = ex.call(layer, x, case=label, hints=_centered_hints)
                if not _unchanged(x, copy, version):
                    ex.fail(
                        "your layer changed its input tensor",
                        case=label,
                        mistake=_IN_PLACE,
                        fix="return a new tensor: `x - x.mean()` leaves x untouched",
                    )
                ex.assert_close(
                    y, x - x.mean(), "the output", case=label, diagnose=_centered_diagnosis(ex, x)
                )
                if dtype not in _GRAD_DTYPES or x.numel() < 2:
                    continue
                x = x.detach().clone().requires_grad_(True)
                y = ex.expect_tensor(ex.call(layer, x, case=label, hints=_centered_hints), "the output")
                grad_output = _randn(tuple(y.shape), seed + index, dtype, device)
                grad = _grads(ex, y, {"x": x}, grad_output, label)["x"]
                detached = grad_output  # what a mean cut from the graph gives: the mean acts as a constant

                def diagnose(actual, detached=detached):
                    if ex.is_close(actual, detached):
                        return (
                            "mean detached from the graph (.detach(), .item() or .data): the gradient of "
                            "x - x.mean() also flows through the mean",
                            "use `x.mean()` itself in the computation",
                        )
                    return None

                expected = grad_output - grad_output.mean()
                ex.assert_close(
                    grad, expected, "the gradient with respect to x", case=label, diagnose=diagnose
                )


# -- MyLinear ----------------------------------------------------------------------------------------
_LINEAR_SIGNATURE = "MyLinear(in_features, out_features, bias=True)"
_RANDN = "torch.randn init: std 1 instead of nn.Linear's ~1/sqrt(3 in_features)"
_INIT_FIX = (
    "initialize like nn.Linear: `nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))`, and the bias "
    "from U(-1/sqrt(in_features), 1/sqrt(in_features)) with `nn.init.uniform_(self.bias, -bound, bound)`"
)


def _linear_label(in_features: int, out_features: int, bias: bool) -> str:
    return f"MyLinear({in_features}, {out_features}, bias={bias})"


def _plain_tensor(layer: nn.Module, name: str) -> object:
    """The attribute ``name`` of ``layer`` as stored outside its registries (``_MISSING`` if absent)."""
    return vars(layer).get(name, _MISSING)


def _linear_structure(ex: Exercise, layer: nn.Module, in_features: int, out_features: int, bias: bool, label):
    """Registered parameters named weight (out, in) and bias (out,) (none with bias=False), as nn.Linear."""
    if issubclass(_type(layer), nn.Linear):
        ex.fail(
            "MyLinear subclasses nn.Linear, so nn.Linear does all the work",
            case=label,
            fix="subclass nn.Module and create the weight and bias parameters yourself",
        )
    parameters = dict(nn.Module.named_parameters(layer))
    expected = ["weight", "bias"] if bias else ["weight"]
    if set(parameters) != set(expected):
        nested = [name for name in parameters if "." in name]
        if nested:
            ex.fail(
                f"MyLinear's parameters are {_names(parameters)}; expected {_names(expected)}",
                case=label,
                mistake="wraps an nn.Linear (or another module) instead of holding its own parameters",
                fix="create `self.weight = nn.Parameter(torch.empty(out_features, in_features))` (and "
                "`self.bias`) in MyLinear itself",
            )
        for name in expected:
            if name in parameters:
                continue
            value = _plain_tensor(layer, name)
            if isinstance(value, torch.Tensor):
                ex.fail(
                    f"layer.{name} is a plain tensor, not an nn.Parameter: parameters(), state_dict(), "
                    "optimizers and .to() do not see it",
                    case=label,
                    mistake="plain tensors (not parameters) assigned as attributes",
                    fix=f"wrap it: `self.{name} = nn.Parameter(torch.empty(...))`",
                )
            ex.fail(
                f"MyLinear has no parameter named {name!r} (its parameters: {_names(parameters)})",
                case=label,
                fix="name the parameters `weight` and `bias`, as nn.Linear does, so that state_dicts match",
            )
        if not bias and "bias" in parameters:
            ex.fail(
                "MyLinear(..., bias=False) has a bias parameter",
                case=label,
                mistake="bias=False ignored",
                fix='with bias=False create no bias: `self.register_parameter("bias", None)`',
            )
        extra = [name for name in parameters if name not in expected]
        ex.fail(
            f"MyLinear has extra parameters {_names(extra)}; nn.Linear has only {_names(expected)}",
            case=label,
            fix="keep only the weight and bias parameters",
        )
    weight = parameters["weight"]
    if getattr(layer, "weight", None) is not weight:
        ex.fail("layer.weight is not the registered weight parameter", case=label)
    if tuple(weight.shape) != (out_features, in_features):
        swapped = tuple(weight.shape) == (in_features, out_features)
        ex.fail(
            f"layer.weight has shape {tuple(weight.shape)}, expected {(out_features, in_features)}",
            case=label,
            mistake="weight stored (in, out) instead of (out, in)" if swapped else None,
            fix="store it as nn.Linear does, (out_features, in_features), and compute `x @ weight.T`",
        )
    if bias:
        if getattr(layer, "bias", None) is not parameters["bias"]:
            ex.fail("layer.bias is not the registered bias parameter", case=label)
        if tuple(parameters["bias"].shape) != (out_features,):
            ex.fail(
                f"layer.bias has shape {tuple(parameters['bias'].shape)}, expected {(out_features,)}",
                case=label,
                fix="the bias has one entry per output feature: torch.empty(out_features)",
            )
    for name, value in parameters.items():
        if value.dtype != torch.float32:
            ex.fail(
                f"layer.{name} has dtype {value.dtype}, expected torch.float32 (nn.Linear's default)",
                case=label,
                fix="create it with torch.empty(...) without a dtype",
            )
        if not value.requires_grad:
            ex.fail(f"layer.{name} does not require grad", case=label, fix="parameters of a new layer train")
    reference = list(nn.Linear(in_features, out_features, bias=bias, device="meta").state_dict())
    keys = list(nn.Module.state_dict(layer))
    if sorted(keys) != sorted(reference):
        ex.fail(
            f"MyLinear's state_dict has keys {_names(keys)}, nn.Linear's has {_names(reference)}",
            case=label,
            fix="register nothing but the weight and bias parameters (no buffers)",
        )
    ex.passed()


def _check_extra_repr(ex: Exercise, layer: nn.Module, in_features: int, out_features: int, bias: bool, label):
    expected = nn.Linear(in_features, out_features, bias=bias, device="meta").extra_repr()
    text = ex.call(layer.extra_repr, case=f"{label}.extra_repr()")
    if _type(text) is not str:
        ex.fail(
            f"extra_repr() should return a str, got {_type(text).__name__}",
            case=label,
            fix=f"return the string, e.g. {expected!r}",
        )
    if text == "":
        ex.fail(
            f"extra_repr() returned '', expected {expected!r} (what print(model) shows inside MyLinear(...))",
            case=label,
            mistake="extra_repr missing (nn.Module's default returns an empty string)",
            fix='define `def extra_repr(self): return f"in_features={self.in_features}, '
            'out_features={self.out_features}, bias={self.bias is not None}"`',
        )
    if text != expected:
        mistake = None
        if "tensor" in text or "Parameter" in text or "bias=None" in text:
            mistake = "bias=self.bias prints the tensor; nn.Linear prints whether there is a bias"
        ex.fail(
            f"extra_repr() returned {text!r}, expected {expected!r} (exactly nn.Linear's)",
            case=label,
            mistake=mistake,
            fix='use `f"in_features={...}, out_features={...}, bias={self.bias is not None}"`',
        )
    ex.passed()


def _linear_forward_hints(x: torch.Tensor):
    def hints(exc: BaseException):
        text = str(exc)
        if x.dim() != 2 and any(word in text for word in ("2D", "2-D", "matrix", "matrices")):
            return (
                "only 2-D input works",
                "use `x @ self.weight.T + self.bias` or F.linear, which accept any leading dimensions, "
                "instead of torch.mm / torch.addmm",
            )
        if "cannot be multiplied" in text:
            return (
                "weight used without the transpose (x @ weight)",
                "weight is (out_features, in_features): compute `x @ self.weight.T`",
            )
        if "is not on the expected device" in text or "Expected all tensors to be on the same device" in text:
            return (
                "a tensor created in forward on the default device instead of x's device",
                "create it with device=x.device, or avoid it: F.linear(x, self.weight, self.bias) accepts "
                "bias=None",
            )
        return _in_place_hint(exc)

    return hints


def _linear_diagnosis(ex: Exercise, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
    def diagnose(actual: torch.Tensor):
        with torch.no_grad():
            product = x @ weight.T
            candidates = []
            if bias is not None:
                candidates.append(
                    ("bias ignored in forward", product, "add the bias: `x @ self.weight.T + self.bias`")
                )
                candidates.append(("bias added twice", product + 2 * bias, "add the bias once"))
            if weight.shape[0] == weight.shape[1]:
                wrong = x @ weight
                candidates.append(
                    (
                        "weight used without the transpose (x @ weight)",
                        wrong if bias is None else wrong + bias,
                        "weight is (out_features, in_features): compute `x @ self.weight.T`",
                    )
                )
        return ex.first_match(actual, candidates)

    return diagnose


def _load_hints(exc: BaseException):
    text = str(exc)
    if "size mismatch" in text:
        return (
            "weight stored (in, out) instead of (out, in), or a parameter of another shape",
            "store weight as (out_features, in_features) and bias as (out_features,), as nn.Linear",
        )
    if "Missing key" in text or "Unexpected key" in text:
        return ("parameters named differently from nn.Linear's", "name them `weight` and `bias`")
    return None


def _linear_interchange(
    ex: Exercise, MyLinear, config, seed: int, device: torch.device, shapes, *, both_ways: bool
) -> None:
    """nn.Linear's state_dict loads into MyLinear (strict) and gives the same outputs and gradients; with
    ``both_ways``, MyLinear's also loads into nn.Linear."""
    in_features, out_features, bias = config
    label = f"{_linear_label(*config)} on {device}"
    hints = _construction_hints(_LINEAR_SIGNATURE)
    with seeded(seed):
        layer = ex.call(MyLinear, in_features, out_features, bias=bias, case=label, hints=hints)
        reference = nn.Linear(in_features, out_features, bias=bias).to(device)
    nn.Module.to(layer, device)
    ex.call(
        nn.Module.load_state_dict,
        layer,
        reference.state_dict(),
        strict=True,
        case=f"{label}: load_state_dict(nn.Linear's state_dict, strict=True)",
        hints=_load_hints,
    )
    for index, shape in enumerate(shapes):
        x = _randn(shape + (in_features,), seed + index, torch.float32, device)
        case = f"{label} holding nn.Linear's values, {_describe_x(x)}"
        copy, version = x.clone(), x._version
        y = ex.call(layer, x, case=case, hints=_linear_forward_hints(x))
        if not _unchanged(x, copy, version):
            ex.fail("your layer changed its input tensor", case=case, mistake=_IN_PLACE)
        diagnose = _linear_diagnosis(
            ex, x, reference.weight.detach(), None if not bias else reference.bias.detach()
        )
        ex.assert_close(
            y, reference(x), "the output (compared with nn.Linear's)", case=case, diagnose=diagnose
        )
    # Gradients reach x, weight and bias as they do in nn.Linear.
    x = _randn((3, in_features), seed, torch.float32, device).requires_grad_(True)
    case = f"{label} holding nn.Linear's values, {_describe_x(x)}, backward"
    y = ex.expect_tensor(
        ex.call(layer, x, case=case, hints=_linear_forward_hints(x)), "the output", case=case
    )
    grad_output = _randn((3, out_features), seed + 7, torch.float32, device)
    mine = {"x": x, "weight": layer.weight} | ({"bias": layer.bias} if bias else {})
    theirs = {"x": x, "weight": reference.weight} | ({"bias": reference.bias} if bias else {})
    got = _grads(ex, y, mine, grad_output, case)
    expected = dict(
        zip(theirs, torch.autograd.grad(reference(x), list(theirs.values()), grad_output), strict=True)
    )
    for name in mine:
        ex.assert_close(got[name], expected[name], f"the gradient with respect to {name}", case=case)
    if not both_ways:
        return
    # The other way round: MyLinear's state_dict loads into nn.Linear, which then computes the same.
    with seeded(seed + 1):
        layer = ex.call(MyLinear, in_features, out_features, bias=bias, case=label, hints=hints)
        other = nn.Linear(in_features, out_features, bias=bias).to(device)
    nn.Module.to(layer, device)
    state = nn.Module.state_dict(layer)
    try:
        other.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        ex.fail(
            f"nn.Linear cannot load MyLinear's state_dict: {str(exc).strip().splitlines()[0]}",
            case=label,
            fix="hold exactly nn.Linear's parameters: weight (out_features, in_features), "
            "bias (out_features,)",
        )
    x = _randn((4, in_features), seed + 3, torch.float32, device)
    case = f"nn.Linear holding {label}'s state_dict, {_describe_x(x)}"
    y = ex.call(layer, x, case=case, hints=_linear_forward_hints(x))
    ex.assert_close(other(x), ex.expect_tensor(y, "the output", case=case), "nn.Linear's output", case=case)


def _linear_dtype_and_meta(ex: Exercise, MyLinear, config, seed: int) -> None:
    """The parameters follow .to(torch.float64) and .to("meta"), and forward works there."""
    in_features, out_features, bias = config
    label = _linear_label(*config)
    hints = _construction_hints(_LINEAR_SIGNATURE)
    with seeded(seed):
        layer = ex.call(MyLinear, in_features, out_features, bias=bias, case=label, hints=hints)
        reference = nn.Linear(in_features, out_features, bias=bias, dtype=torch.float64)
    nn.Module.to(layer, torch.float64)
    for name, value in nn.Module.named_parameters(layer):
        if value.dtype != torch.float64:
            ex.fail(f"after .to(torch.float64), layer.{name} is {value.dtype}", case=label)
    ex.call(
        nn.Module.load_state_dict,
        layer,
        reference.state_dict(),
        strict=True,
        case=f"{label}.to(torch.float64): load_state_dict(nn.Linear's float64 state_dict, strict=True)",
        hints=_load_hints,
    )
    x = _randn((2, 3, in_features), seed, torch.float64, "cpu")
    case = f"{label}.to(torch.float64), {_describe_x(x)}"
    y = ex.call(layer, x, case=case, hints=_linear_forward_hints(x))
    ex.assert_close(y, reference(x), "the output", case=case)

    with seeded(seed):
        layer = ex.call(MyLinear, in_features, out_features, bias=bias, case=label, hints=hints)
    nn.Module.to(layer, "meta")
    x = torch.empty(5, in_features, device="meta")
    case = f'{label}.to("meta"), {_describe_x(x)} (the meta device holds shapes, no data)'
    y = ex.expect_tensor(
        ex.call(layer, x, case=case, hints=_linear_forward_hints(x)), "the output", case=case
    )
    if y.device.type != "meta" or tuple(y.shape) != (5, out_features):
        ex.fail(
            f"the output is {tuple(y.shape)} on {y.device}, expected {(5, out_features)} on meta",
            case=case,
            fix="compute from x and the layer's own parameters only (no tensors made on the CPU in forward)",
        )
    ex.passed()


def _init_statistics(values: torch.Tensor) -> tuple[float, float, float]:
    values = values.detach().reshape(-1)  # float32 reductions over 10^6 values are exact to ~1e-6
    return values.abs().max().item(), values.std().item(), values.mean().item()


def _check_init(ex: Exercise, MyLinear, in_features: int, out_features: int, seed: int) -> None:
    """Weight and bias drawn like nn.Linear's: uniform on [-b, b] with b = 1/sqrt(in_features).

    The weight has n >= 10^6 entries and the bias >= 1000. For a correct U(-b, b) sample (each a bound
    that a correct answer crosses with probability < 1e-6, most far less):
      - all |w| <= b: always (uniform_ never exceeds its bound; 1e-5 relative slack for rounding);
      - max |w| >= b (1 - 1e-4): fails with probability (1 - 1e-4)^n <= e^-100;
        max |bias| >= b (1 - 0.02): (0.98)^1000 = 2e-9;
      - std within 1% of b/sqrt(3): the relative spread of a sample std is sqrt(0.8 / n) / 2 <= 4.5e-4,
        so 1% is >= 22 sigma; bias: 10% with n >= 1000 is >= 7 sigma;
      - |mean| <= 0.01 b: sigma = b / sqrt(3 n) <= 5.8e-4 b (17 sigma); bias: 0.15 b is >= 8 sigma.
    """
    label = _linear_label(in_features, out_features, True)
    with seeded(seed):
        layer = ex.call(
            MyLinear,
            in_features,
            out_features,
            bias=True,
            case=label,
            hints=_construction_hints(_LINEAR_SIGNATURE),
        )
    _linear_structure(ex, layer, in_features, out_features, True, label)
    bound = 1 / math.sqrt(in_features)
    case = f"{label}, a large layer to measure the initial values"
    for name, top_slack, std_tolerance, mean_tolerance in (
        ("weight", 1e-4, 0.01, 0.01),
        ("bias", 0.02, 0.10, 0.15),
    ):
        values = getattr(layer, name)
        if not bool(torch.isfinite(values).all()):
            ex.fail(
                f"layer.{name} holds inf or nan after construction",
                case=case,
                mistake="parameters left uninitialized (torch.empty without an init)",
                fix=_INIT_FIX,
            )
        largest, std, mean = _init_statistics(values)
        seen = f"max |{name}| = {largest:.4g}, std = {std:.4g}, mean = {mean:.3g}"
        wanted = (
            f"values in [-{bound:.4g}, {bound:.4g}] (1/sqrt(in_features)), std {bound / math.sqrt(3):.4g}"
        )
        in_range = bound * (1 - top_slack) <= largest <= bound * (1 + 1e-5)
        centered = abs(mean) <= mean_tolerance * bound
        spread = abs(std / (bound / math.sqrt(3)) - 1) <= std_tolerance
        if in_range and centered and spread:
            continue
        ratio = largest / bound
        if abs(std - 1) < 0.05:
            mistake = _RANDN if name == "weight" else "bias drawn with torch.randn (std 1)"
        elif largest == 0:
            mistake = f"{name} initialized to zeros"
        elif name == "weight" and abs(ratio - math.sqrt(6)) < 0.05:
            mistake = "kaiming_uniform_ without a=math.sqrt(5) (its bound is then sqrt(6 / in_features))"
        elif (
            name == "weight" and abs(ratio - math.sqrt(6 * in_features / (in_features + out_features))) < 0.05
        ):
            mistake = "xavier_uniform_ (Glorot) instead of nn.Linear's init"
        elif name == "bias" and abs(largest * math.sqrt(out_features) - 1) < 0.05:
            mistake = "bias bound computed from out_features instead of in_features"
        elif mean > 0.25 * bound and largest <= bound * (1 + 1e-5):
            mistake = "values drawn from [0, b) (torch.rand) instead of [-b, b]"
        elif largest > bound * (1 + 1e-5):
            mistake = f"{name} values outside nn.Linear's range ±1/sqrt(in_features)"
        else:
            mistake = None
        ex.fail(
            f"layer.{name} is not initialized like nn.Linear's: {seen}; expected {wanted}",
            case=case,
            mistake=mistake,
            fix=_INIT_FIX,
        )
    ex.passed()


def _linear_configs(part: str, hidden: bool, seed: int) -> list[tuple[int, int, bool]]:
    """(in_features, out_features, bias): with a bias for the core part, without one too for the edge."""
    configs = [(3, 2, True), (4, 4, True)] if part == CORE else [(5, 3, False), (3, 2, True)]
    if hidden:
        generator = torch.Generator().manual_seed(seed)
        for _ in range(4):
            bias = part == CORE or bool(_draw(generator, 0, 1))
            configs.append((_draw(generator, 1, 9), _draw(generator, 1, 9), bias))
        size = _draw(generator, 2, 7)
        configs.append((size, size, part == CORE))
    return configs


def check_MyLinear(MyLinear, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Is ``MyLinear(in_features, out_features, bias=True)`` interchangeable with ``nn.Linear``? Core: the
    same parameters (names, shapes, initialization), and once nn.Linear's state_dict is loaded with
    strict=True, the same outputs and gradients for 2-D input. ``part="edge"``: ``bias=False``, extra_repr,
    1-D and 3-D input, MyLinear's state_dict loaded into nn.Linear, ``.to(torch.float64)`` and the meta
    device (hidden: an empty batch, 4-D input)."""
    __tracebackhide__ = True
    configs = _linear_configs(part, hidden, seed)
    if part == CORE:
        shapes = [(2,), (4,)] + ([(7,)] if hidden else [])  # x of shape (N, in_features)
    else:
        shapes = [(), (2, 3)] + ([(0,), (2, 1, 3)] if hidden else [])
    with Exercise("MyLinear") as ex:
        hints = _construction_hints(_LINEAR_SIGNATURE)
        label = "MyLinear(in_features=2, out_features=6, bias=True)"
        with seeded(seed):
            layer = ex.call(MyLinear, in_features=2, out_features=6, bias=True, case=label, hints=hints)
        _expect_module(ex, layer, "MyLinear(...)", label)
        for index, config in enumerate(configs):
            label = _linear_label(*config)
            with seeded(seed + index):
                layer = ex.call(MyLinear, *config[:2], bias=config[2], case=label, hints=hints)
            _expect_module(ex, layer, "MyLinear(...)", label)
            _linear_structure(ex, layer, *config, label)
            if part == EDGE:
                _check_extra_repr(ex, layer, *config, label)
            for device in ex.devices:
                _linear_interchange(
                    ex, MyLinear, config, seed * 100 + index, device, shapes, both_ways=part == EDGE
                )
        if part == EDGE:
            for index, config in enumerate(configs[: 4 if hidden else 2]):
                _linear_dtype_and_meta(ex, MyLinear, config, seed * 100 + index)
            return
        generator = torch.Generator().manual_seed(seed)
        sizes = [(800, 1500)]
        if hidden:
            in_features = _draw(generator, 500, 1500)
            sizes.append((in_features, max(1000, math.ceil(1e6 / in_features))))
        for index, (in_features, out_features) in enumerate(sizes):
            _check_init(ex, MyLinear, in_features, out_features, seed * 10 + index)


# -- ScalingLayer ------------------------------------------------------------------------------------
def _scaling_hints(exc: BaseException):
    text = str(exc)
    if "floating point" in text and "require gradients" in text:
        return (
            "int dtype: torch.tensor(2) is an int64 tensor, and integer tensors cannot be learned",
            "convert first: `nn.Parameter(torch.tensor(float(scale)))` gives a float32 0-dim tensor",
        )
    construction = _construction_hints("ScalingLayer(scale=1.0)")(exc)
    return construction or _in_place_hint(exc)


def _scale_parameter(ex: Exercise, layer: nn.Module, label: str) -> nn.Parameter:
    """The registered 0-dim float32 parameter ``scale`` (the module's only parameter)."""
    parameters = dict(nn.Module.named_parameters(layer))
    fix = "`self.scale = nn.Parameter(torch.tensor(float(scale)))`"
    if "scale" not in parameters:
        if "scale" in dict(nn.Module.named_buffers(layer)):
            ex.fail(
                "layer.scale is a buffer, not a parameter",
                case=label,
                mistake="scale registered as a buffer: buffers are saved but not learnable",
                fix=fix,
            )
        value = _plain_tensor(layer, "scale")
        if value is _MISSING:
            ex.fail(
                f"ScalingLayer has no parameter named 'scale' (its parameters: {_names(parameters)})",
                case=label,
                fix=fix,
            )
        if _type(value) in (float, int):
            ex.fail(
                f"layer.scale is a plain Python {_type(value).__name__}, not a parameter",
                case=label,
                mistake="plain float attribute: not learnable and not in parameters(), so no optimizer "
                "can train it",
                fix=fix,
            )
        if isinstance(value, torch.Tensor):
            ex.fail(
                "layer.scale is a plain tensor, not an nn.Parameter",
                case=label,
                mistake="not an nn.Parameter: a tensor attribute (even with requires_grad=True) is not "
                "registered, so parameters(), optimizers, state_dict() and .to() miss it",
                fix=fix,
            )
        ex.fail(f"layer.scale is a {_type(value).__name__}, expected an nn.Parameter", case=label, fix=fix)
    if set(parameters) != {"scale"}:
        ex.fail(
            f"ScalingLayer has parameters {_names(parameters)}; expected only 'scale'",
            case=label,
            fix="register one parameter, `self.scale`",
        )
    scale = parameters["scale"]
    if getattr(layer, "scale", None) is not scale:
        ex.fail("layer.scale is not the registered parameter", case=label, fix=fix)
    if tuple(scale.shape) != ():
        ex.fail(
            f"layer.scale has shape {tuple(scale.shape)}, expected () (a 0-dim tensor)",
            case=label,
            mistake="shape (1,) instead of 0-dim: torch.tensor([scale]) or torch.ones(1) * scale"
            if tuple(scale.shape) == (1,)
            else None,
            fix="make a 0-dim tensor: torch.tensor(float(scale)) (no brackets around scale)",
        )
    if scale.dtype != torch.float32:
        integer = not scale.dtype.is_floating_point
        ex.fail(
            f"layer.scale has dtype {scale.dtype}, expected torch.float32",
            case=label,
            mistake="int dtype: torch.tensor(2) is int64 (and integer tensors cannot be learned)"
            if integer
            else "dtype other than float32 (PyTorch's default for parameters)",
            fix="`torch.tensor(float(scale))` is float32 whether scale is an int or a float",
        )
    if not scale.requires_grad:
        ex.fail(
            "layer.scale does not require grad",
            case=label,
            mistake="requires_grad=False: the scale would never be trained",
            fix="keep nn.Parameter's default requires_grad=True",
        )
    return scale


def _scaling_configs(hidden: bool, seed: int) -> list[tuple[tuple, dict, float, str]]:
    """(args, kwargs, expected value, label) for building a ScalingLayer."""
    configs = [
        ((), {}, 1.0, "ScalingLayer()"),
        ((2,), {}, 2.0, "ScalingLayer(2) (an int)"),
        ((), {"scale": 0.5}, 0.5, "ScalingLayer(scale=0.5)"),
        ((-3.0,), {}, -3.0, "ScalingLayer(-3.0)"),
    ]
    if hidden:
        generator = torch.Generator().manual_seed(seed)
        for _ in range(3):
            value = round(float(torch.empty(()).uniform_(-5, 5, generator=generator)), 3)
            configs.append(((value,), {}, value, f"ScalingLayer({value})"))
        number = _draw(generator, -9, 9) or 7
        configs.append(((), {"scale": number}, float(number), f"ScalingLayer(scale={number}) (an int)"))
        configs.append(((0.0,), {}, 0.0, "ScalingLayer(0.0)"))
    return configs


def check_ScalingLayer(ScalingLayer, *, hidden: bool = False, seed: int = 0) -> None:
    """Does ``ScalingLayer(scale=1.0)`` hold a learnable 0-dim float32 parameter ``scale`` (also when given
    an int), return ``scale * x`` with gradients reaching x and scale, and follow ``.to(torch.float64)``?"""
    __tracebackhide__ = True
    configs = _scaling_configs(hidden, seed)
    shapes = [(4, 3), (5,), (), (2, 3, 4)]
    if hidden:
        generator = torch.Generator().manual_seed(seed + 1)
        shapes += [tuple(_draw(generator, 1, 5) for _ in range(_draw(generator, 1, 4))), (0, 3)]
    with Exercise("ScalingLayer") as ex:
        for config_index, (args, kwargs, value, label) in enumerate(configs):
            layer = ex.call(ScalingLayer, *args, case=label, hints=_scaling_hints, **kwargs)
            _expect_module(ex, layer, label, label)
            scale = _scale_parameter(ex, layer, label)
            expected_scale = torch.tensor(value, dtype=torch.float32)

            def diagnose(actual, value=value):
                if value != 1.0 and actual.item() == 1.0:
                    return ("the scale argument ignored", "start the parameter from the given scale")
                return None

            ex.assert_close(scale.detach(), expected_scale, "layer.scale", case=label, diagnose=diagnose)
            for device in ex.devices:
                nn.Module.to(layer, device)
                for index, shape in enumerate(shapes):
                    seed_x = seed * 1000 + config_index * 10 + index
                    x = _randn(shape, seed_x, torch.float32, device)
                    case = f"{label}, {_describe_x(x)}"
                    copy, version = x.clone(), x._version
                    y = ex.call(layer, x, case=case, hints=_scaling_hints)
                    if not _unchanged(x, copy, version):
                        ex.fail("your layer changed its input tensor", case=case, mistake=_IN_PLACE)
                    ex.assert_close(y, expected_scale.to(device) * x, "the output", case=case)
                    if x.numel() == 0:
                        continue
                    x.requires_grad_(True)
                    y = ex.expect_tensor(ex.call(layer, x, case=case, hints=_scaling_hints), "the output")
                    grad_output = _randn(tuple(y.shape), seed_x + 1, torch.float32, device)
                    grads = _grads(ex, y, {"x": x, "scale": layer.scale}, grad_output, case)
                    with torch.no_grad():
                        expected_x = expected_scale.to(device) * grad_output
                        expected_s = (grad_output * x).sum()
                    ex.assert_close(grads["x"], expected_x, "the gradient with respect to x", case=case)
                    ex.assert_close(
                        grads["scale"], expected_s, "the gradient with respect to scale", case=case
                    )
            # The parameter follows the module to another dtype.
            layer = ex.call(ScalingLayer, *args, case=label, hints=_scaling_hints, **kwargs)
            nn.Module.to(layer, torch.float64)
            case = f"{label}.to(torch.float64)"
            moved = getattr(layer, "scale", None)
            if not isinstance(moved, torch.Tensor) or moved.dtype != torch.float64:
                ex.fail(
                    "after .to(torch.float64), layer.scale is not float64", case=case, fix="use nn.Parameter"
                )
            x = _randn((3, 2), seed, torch.float64, "cpu")
            y = ex.call(layer, x, case=f"{case}, {_describe_x(x)}", hints=_scaling_hints)
            ex.assert_close(y, value * x, "the output", case=f"{case}, {_describe_x(x)}")


# -- LearnableLeakyReLU ----------------------------------------------------------------------------
_LEAKY_SIGNATURE = "LearnableLeakyReLU(num_parameters=1, init=0.25)"
_LEAKY_FIX = "`self.weight = nn.Parameter(torch.full((num_parameters,), float(init)))`"
_PER_CHANNEL_FIX = (
    "give the weight the shape (1, C, 1, ..., 1) before multiplying, so that slope c scales channel c "
    "(dim 1): `weight.reshape((1, -1) + (1,) * (x.dim() - 2))` when x.dim() >= 2"
)
_NOT_A_NUMBER = (
    "the slope used as a Python number (F.leaky_relu(x, negative_slope), .item() or float()): autograd "
    "cannot reach the weight, so it never learns, and one number cannot hold a slope per channel"
)
_LAST_DIM = "channels taken from the last dim: the weight broadcast against x's last dimension, not dim 1"


class _PreluRecorder(TorchFunctionMode):
    """Notes whether PyTorch's own PReLU (nn.PReLU, F.prelu, Tensor.prelu) or F.leaky_relu ran inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.used_prelu = False
        self.used_leaky_relu = False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in ("prelu", "_prelu_kernel"):
            self.used_prelu = True
        elif name in ("leaky_relu", "leaky_relu_"):
            self.used_leaky_relu = True
        return func(*args, **(kwargs or {}))


def _channel_slopes(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``weight`` shaped to broadcast along dim 1 of ``x`` (as nn.PReLU does)."""
    if weight.numel() == 1 or x.dim() < 2:
        return weight.reshape(())
    return weight.reshape((1, -1) + (1,) * (x.dim() - 2))


def _leaky_hints(num_parameters: int):
    def hints(exc: BaseException):
        text = str(exc)
        if "must be Number" in text or "converted to Scalar" in text or "converted to Python scalars" in text:
            return (_NOT_A_NUMBER, "compute `torch.where(x >= 0, x, weight * x)` with the weight itself")
        if num_parameters > 1 and "must match the size of tensor" in text:
            return (_LAST_DIM, _PER_CHANNEL_FIX)
        if "floating point" in text and "require gradients" in text:
            return (
                "init given as an int made an integer tensor (torch.full((n,), 0) is int64), and integer "
                "tensors cannot be learned",
                "convert it: `torch.full((num_parameters,), float(init))`",
            )
        return _construction_hints(_LEAKY_SIGNATURE)(exc) or _in_place_hint(exc)

    return hints


def _leaky_structure(ex: Exercise, layer: nn.Module, num_parameters: int, init: float, label: str):
    """One registered float32 parameter ``weight (num_parameters,)`` filled with ``init``, as nn.PReLU's."""
    if issubclass(_type(layer), nn.PReLU) or any(
        isinstance(module, nn.PReLU) for module in nn.Module.modules(layer)
    ):
        ex.fail(
            "LearnableLeakyReLU is or wraps an nn.PReLU, so PyTorch's PReLU does all the work",
            case=label,
            mistake="calls nn.PReLU / F.prelu",
            fix="subclass nn.Module, create the weight parameter and compute the output yourself",
        )
    parameters = dict(nn.Module.named_parameters(layer))
    buffers = dict(nn.Module.named_buffers(layer))
    if "weight" not in parameters:
        if "weight" in buffers:
            ex.fail(
                "layer.weight is a buffer, not a parameter",
                case=label,
                mistake="slope registered as a buffer: saved in the state_dict, but not learnable",
                fix=_LEAKY_FIX,
            )
        plain = [
            (name, value)
            for name, value in vars(layer).items()
            if not name.startswith("_") and _type(value) in (float, int, torch.Tensor)
        ]
        if plain:
            name, value = plain[0]
            kind = "plain tensor" if _type(value) is torch.Tensor else f"Python {_type(value).__name__}"
            ex.fail(
                f"LearnableLeakyReLU has no parameter named 'weight'; its slope is a {kind} attribute "
                f"`{name}`",
                case=label,
                mistake="slope a plain float or tensor (not learnable): nn.Module registers only "
                "nn.Parameter attributes, so parameters(), optimizers and state_dict() miss it",
                fix=_LEAKY_FIX,
            )
        ex.fail(
            f"LearnableLeakyReLU has no parameter named 'weight' (its parameters: {_names(parameters)})",
            case=label,
            fix="name it `weight`, as nn.PReLU does, so that the two exchange state_dicts",
        )
    if set(parameters) != {"weight"} or buffers:
        ex.fail(
            f"LearnableLeakyReLU has parameters {_names(parameters)} and buffers {_names(buffers)}; "
            "nn.PReLU has one parameter, 'weight', and no buffers",
            case=label,
            fix="register only the weight parameter",
        )
    weight = parameters["weight"]
    if getattr(layer, "weight", None) is not weight:
        ex.fail("layer.weight is not the registered weight parameter", case=label, fix=_LEAKY_FIX)
    shape = tuple(weight.shape)
    if shape != (num_parameters,):
        if shape == ():
            mistake = (
                "weight of shape () (a 0-dim tensor): nn.PReLU's weight has shape (num_parameters,), "
                "(1,) for a single slope"
            )
        elif shape == (1,):
            mistake = "num_parameters ignored: one slope instead of one per channel"
        else:
            mistake = None
        ex.fail(
            f"layer.weight has shape {shape}, expected {(num_parameters,)}",
            case=label,
            mistake=mistake,
            fix=_LEAKY_FIX,
        )
    if weight.dtype != torch.float32:
        ex.fail(
            f"layer.weight has dtype {weight.dtype}, expected torch.float32 (nn.PReLU's default)",
            case=label,
            fix=_LEAKY_FIX,
        )
    if not weight.requires_grad:
        ex.fail(
            "layer.weight does not require grad",
            case=label,
            mistake="requires_grad=False: the slopes would never be trained",
            fix="keep nn.Parameter's default requires_grad=True",
        )
    expected = torch.full((num_parameters,), float(init), device=weight.device)
    if weight.device.type != "meta" and not _equal(weight.detach(), expected):
        values = [round(v, 4) for v in weight.detach().cpu().tolist()]
        ignored = init != 0.25 and _equal(weight.detach(), torch.full_like(expected, 0.25))
        ex.fail(
            f"layer.weight holds {values}, expected every entry equal to init={init!r}",
            case=label,
            mistake="init argument ignored (0.25 hard-coded)" if ignored else None,
            fix=_LEAKY_FIX,
        )
    ex.passed()
    return weight


def _leaky_diagnosis(ex: Exercise, x: torch.Tensor, weight: torch.Tensor):
    """Which known mistake gives ``actual`` for input ``x`` and slopes ``weight (C,)``."""

    def diagnose(actual: torch.Tensor):
        if actual.dim() > x.dim():
            return (
                "the weight reshaped for one input rank only (e.g. always to (1, C, 1, 1)), so broadcasting "
                "added dimensions to the output",
                "reshape it according to x: `(1, C)` followed by x.dim() - 2 ones (no reshape for 1-D x)",
            )
        with torch.no_grad():
            slopes = _channel_slopes(weight, x)
            candidates = [
                (
                    "slope applied to the positive part (weight * x where x >= 0): PReLU keeps x where "
                    "x >= 0 and scales the negative part",
                    torch.where(x >= 0, slopes * x, x),
                    "return `torch.where(x >= 0, x, weight * x)`",
                ),
                ("slope applied to both parts (weight * x everywhere)", slopes * x, "scale only x < 0"),
                (
                    "negative part set to 0, as ReLU does: the slope is not used",
                    x.clamp(min=0),
                    "scale the negative part by the weight: `torch.where(x >= 0, x, weight * x)`",
                ),
                ("x returned unchanged", x, "scale the negative part by the weight"),
                (
                    "F.leaky_relu's default slope 0.01 used instead of the layer's weight",
                    torch.where(x >= 0, x, 0.01 * x),
                    "use the weight: `torch.where(x >= 0, x, weight * x)`",
                ),
                (
                    "torch.maximum(x, weight * x), which equals PReLU only for slopes between 0 and 1",
                    torch.maximum(x, slopes * x),
                    "choose by the sign of x: `torch.where(x >= 0, x, weight * x)`",
                ),
            ]
            if weight.numel() > 1 and x.dim() >= 3 and x.shape[-1] == weight.numel():
                candidates.append((_LAST_DIM, torch.where(x >= 0, x, weight * x), _PER_CHANNEL_FIX))
        found = ex.first_match(actual, candidates)
        if found is not None:
            return found
        if weight.numel() > 1:
            return ("per-channel slopes not applied along dim 1", _PER_CHANNEL_FIX)
        return None

    return diagnose


def _leaky_input(shape: tuple[int, ...], seed: int, dtype: torch.dtype, device, zeros: bool) -> torch.Tensor:
    """Normal values; with ``zeros``, every fifth one exactly 0 (where `x >= 0` and `x > 0` agree)."""
    x = _randn(shape, seed, torch.float64, "cpu")
    if zeros:
        x.view(-1)[::5] = 0.0
    else:
        x[x == 0] = 0.5  # gradients at exactly 0 differ between correct formulas: none there
    return x.to(dtype).to(device)


def _leaky_forward(ex: Exercise, layer: nn.Module, x: torch.Tensor, num_parameters: int, case: str):
    """``layer(x)``, failing if PyTorch's PReLU computed it or x was changed in place."""
    recorder = _PreluRecorder()
    copy, version = x.detach().clone(), x._version
    with recorder:
        y = ex.call(layer, x, case=case, hints=_leaky_hints(num_parameters))
    if recorder.used_prelu:
        ex.fail(
            "your layer calls PyTorch's own PReLU (nn.PReLU, F.prelu or Tensor.prelu)",
            case=case,
            mistake="calls nn.PReLU / F.prelu",
            fix="compute it yourself: `torch.where(x >= 0, x, weight * x)` (weight shaped for dim 1)",
        )
    if x.device.type != "meta" and not _unchanged(x.detach(), copy, version):
        ex.fail(
            "your layer changed its input tensor",
            case=case,
            mistake=_IN_PLACE,
            fix="return a new tensor: torch.where(...) leaves x untouched",
        )
    return ex.expect_tensor(y, "the output", case=case), recorder


def _leaky_compare(
    ex: Exercise,
    layer: nn.Module,
    reference: nn.PReLU,
    x: torch.Tensor,
    label: str,
    *,
    weight_grad: bool,
    seed: int,
) -> None:
    """Same output as ``reference`` (nn.PReLU with the same slopes) for ``x`` (exact zeros included),
    and the same gradients for x without zeros: with respect to x, and to the weight if ``weight_grad``."""
    num_parameters = reference.num_parameters
    case = f"{label}, {_describe_x(x)}"
    y, _ = _leaky_forward(ex, layer, x, num_parameters, case)
    with torch.no_grad():
        expected = reference(x)
    diagnose = _leaky_diagnosis(ex, x, reference.weight.detach())
    ex.assert_close(y, expected, "the output (compared with nn.PReLU's)", case=case, diagnose=diagnose)
    if x.dtype not in _GRAD_DTYPES or x.numel() == 0 or x.device.type == "meta":
        return
    x = _leaky_input(tuple(x.shape), seed + 1, x.dtype, x.device, zeros=False).requires_grad_(True)
    case = f"{label}, {_describe_x(x)}, backward"
    y, recorder = _leaky_forward(ex, layer, x, num_parameters, case)
    grad_output = _randn(tuple(y.shape), seed + 2, x.dtype, x.device)
    targets = {"x": x} | ({"weight": layer.weight} if weight_grad else {})
    theirs = [x] + ([reference.weight] if weight_grad else [])
    if weight_grad:
        reaches = y.requires_grad and (
            torch.autograd.grad(y, [layer.weight], grad_output, retain_graph=True, allow_unused=True)[0]
            is not None
        )
        if not reaches:
            ex.fail(
                "no gradient reaches layer.weight",
                case=case,
                mistake=_NOT_A_NUMBER
                if recorder.used_leaky_relu
                else "the weight taken out of the graph "
                "(.item(), float(), .data or .detach()): it would never learn",
                fix="compute with the parameter itself: `torch.where(x >= 0, x, weight * x)`",
            )
    got = _grads(ex, y, targets, grad_output, case)
    expected = torch.autograd.grad(reference(x), theirs, grad_output)
    for (name, grad), reference_grad in zip(got.items(), expected, strict=True):
        ex.assert_close(grad, reference_grad, f"the gradient with respect to {name}", case=case)


def _prelu_like(num_parameters: int, weight: torch.Tensor | None, init: float, device, dtype=torch.float32):
    """nn.PReLU(num_parameters, init), holding ``weight`` if given."""
    reference = nn.PReLU(num_parameters, init=float(init))
    if weight is not None:
        with torch.no_grad():
            reference.weight.copy_(weight)
    return reference.to(device=device, dtype=dtype)


def _load_prelu_state(ex: Exercise, layer: nn.Module, reference: nn.PReLU, label: str) -> None:
    """nn.PReLU's state_dict loads into the student's layer with strict=True."""

    def hints(exc: BaseException):
        text = str(exc)
        if "size mismatch" in text:
            return (
                "weight of another shape than nn.PReLU's (num_parameters,)",
                "create the weight with shape (num_parameters,): torch.full((num_parameters,), init)",
            )
        if "Missing key" in text or "Unexpected key" in text:
            return ("parameter named differently from nn.PReLU's", "name it `weight`")
        return None

    ex.call(
        nn.Module.load_state_dict,
        layer,
        reference.state_dict(),
        strict=True,
        case=f"{label}: load_state_dict(nn.PReLU's state_dict, strict=True)",
        hints=hints,
    )


def _prelu_loads_mine(ex: Exercise, layer: nn.Module, num_parameters: int, label: str, device) -> nn.PReLU:
    """The student's state_dict loads into nn.PReLU with strict=True; returns that nn.PReLU."""
    other = nn.PReLU(num_parameters).to(device)
    state = nn.Module.state_dict(layer)
    try:
        other.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        shapes = {name: tuple(value.shape) for name, value in state.items() if _type(value) is torch.Tensor}
        ex.fail(
            f"nn.PReLU({num_parameters}) cannot load your layer's state_dict {shapes}: "
            f"{str(exc).strip().splitlines()[-1].strip()}",
            case=label,
            mistake="weight of shape () (a 0-dim tensor): a (1,) entry loads into a 0-dim parameter, but "
            "not the other way round"
            if shapes.get("weight") == ()
            else None,
            fix="hold exactly nn.PReLU's parameter: weight of shape (num_parameters,)",
        )
    return other


def _leaky_core_configs(hidden: bool, seed: int):
    """(args, kwargs, num_parameters, init, label) of the layers the core part builds."""
    configs = [
        ((), {}, 1, 0.25, "LearnableLeakyReLU()"),
        ((1, 0.1), {}, 1, 0.1, "LearnableLeakyReLU(1, 0.1)"),
        ((), {"init": -0.5}, 1, -0.5, "LearnableLeakyReLU(init=-0.5)"),
        ((), {"num_parameters": 4, "init": 0.2}, 4, 0.2, "LearnableLeakyReLU(num_parameters=4, init=0.2)"),
    ]
    if hidden:
        generator = torch.Generator().manual_seed(seed)
        for _ in range(3):
            init = round(float(torch.empty(()).uniform_(-1, 2, generator=generator)), 3)
            configs.append(((1, init), {}, 1, init, f"LearnableLeakyReLU(1, {init})"))
        channels = _draw(generator, 2, 7)
        configs.append(((channels,), {}, channels, 0.25, f"LearnableLeakyReLU({channels})"))
    return configs


def _check_leaky_core(ex: Exercise, LearnableLeakyReLU, hidden: bool, seed: int) -> None:
    """The weight as nn.PReLU's; one slope: the output, and the gradient with respect to x."""
    shapes = [(4, 3), (2, 5, 3), (2, 3, 4, 4)]
    dtypes = [torch.float32]
    if hidden:
        generator = torch.Generator().manual_seed(seed + 1)
        shapes += [tuple(_draw(generator, 1, 5) for _ in range(_draw(generator, 2, 4))) for _ in range(3)]
        dtypes.append(torch.float64)
    for config_index, (args, kwargs, num_parameters, init, label) in enumerate(
        _leaky_core_configs(hidden, seed)
    ):
        layer = ex.call(LearnableLeakyReLU, *args, case=label, hints=_leaky_hints(num_parameters), **kwargs)
        _expect_module(ex, layer, label, label)
        _leaky_structure(ex, layer, num_parameters, init, label)
        if num_parameters > 1:
            continue  # per-channel slopes: the edge cases
        for device in ex.devices:
            for dtype in dtypes:
                nn.Module.to(layer, device=device, dtype=dtype)
                reference = _prelu_like(1, None, init, device, dtype)
                case = f"{label}" + ("" if dtype == torch.float32 else ".to(torch.float64)")
                for index, shape in enumerate(shapes):
                    seed_x = seed * 1000 + config_index * 10 + index
                    x = _leaky_input(shape, seed_x, dtype, device, zeros=True)
                    _leaky_compare(ex, layer, reference, x, case, weight_grad=False, seed=seed_x)


def _edge_slopes(num_parameters: int, seed: int) -> torch.Tensor:
    """Distinct slopes, negative ones and one above 1 included (so torch.maximum(x, weight * x) shows)."""
    if num_parameters == 1:
        return torch.tensor([0.6 if seed % 2 == 0 else 1.5])
    slopes = torch.linspace(-0.5, 1.5, num_parameters)
    generator = torch.Generator().manual_seed(seed)
    return slopes[torch.randperm(num_parameters, generator=generator)]


def _leaky_edge_configs(hidden: bool, seed: int):
    """(args, kwargs, num_parameters, init, label, input shapes) for the edge part."""
    configs = [
        ((1, 0.3), {}, 1, 0.3, "LearnableLeakyReLU(1, 0.3)", [(7,), (3, 2), (1,)]),  # 1-D input
        (
            (),
            {"num_parameters": 3, "init": 0.1},
            3,
            0.1,
            "LearnableLeakyReLU(num_parameters=3, init=0.1)",
            [(4, 3), (2, 3, 5), (2, 3, 3), (2, 3, 4, 5), (1, 3, 2, 3)],
        ),
        ((2, 0), {}, 2, 0, "LearnableLeakyReLU(2, 0) (init an int)", [(5, 2), (3, 2, 4)]),
    ]
    if hidden:
        generator = torch.Generator().manual_seed(seed)
        for _ in range(3):
            channels = _draw(generator, 2, 6)
            shapes = [
                (_draw(generator, 1, 4), channels) + tuple(_draw(generator, 1, 5) for _ in range(rank))
                for rank in range(3)
            ]
            shapes.append((0, channels))  # an empty batch
            label = f"LearnableLeakyReLU({channels}, 0.25)"
            configs.append(((channels, 0.25), {}, channels, 0.25, label, shapes))
    return configs


def _check_leaky_edge(ex: Exercise, LearnableLeakyReLU, hidden: bool, seed: int) -> None:
    """Per-channel slopes on dim 1 and 1-D input, nn.PReLU's state_dict both ways with the same outputs
    and gradients (the weight's included), float64 and the meta device."""
    for config_index, (args, kwargs, num_parameters, init, label, shapes) in enumerate(
        _leaky_edge_configs(hidden, seed)
    ):
        hints = _leaky_hints(num_parameters)
        for device in ex.devices:
            layer = ex.call(LearnableLeakyReLU, *args, case=label, hints=hints, **kwargs)
            _expect_module(ex, layer, label, label)
            _leaky_structure(ex, layer, num_parameters, init, label)
            nn.Module.to(layer, device)
            slopes = _edge_slopes(num_parameters, seed + config_index)
            reference = _prelu_like(num_parameters, slopes, init, device)
            _load_prelu_state(ex, layer, reference, label)
            case = f"{label} holding nn.PReLU's slopes {[round(v, 3) for v in slopes.tolist()]}"
            for index, shape in enumerate(shapes):
                seed_x = seed * 1000 + config_index * 10 + index
                x = _leaky_input(shape, seed_x, torch.float32, device, zeros=True)
                _leaky_compare(ex, layer, reference, x, case, weight_grad=True, seed=seed_x)
            # The other way round: the layer's state_dict in nn.PReLU gives the same outputs.
            other = _prelu_loads_mine(ex, layer, num_parameters, label, device)
            x = _leaky_input(shapes[0], seed + 5, torch.float32, device, zeros=True)
            _leaky_compare(
                ex, layer, other, x, f"nn.PReLU holding {label}'s state_dict", weight_grad=False, seed=seed
            )
        # float64, then the meta device (shapes only: a tensor made on the CPU in forward shows there).
        layer = ex.call(LearnableLeakyReLU, *args, case=label, hints=hints, **kwargs)
        nn.Module.to(layer, torch.float64)
        if layer.weight.dtype != torch.float64:
            ex.fail(f"after .to(torch.float64), layer.weight is {layer.weight.dtype}", case=label)
        reference = _prelu_like(
            num_parameters, _edge_slopes(num_parameters, seed), init, "cpu", torch.float64
        )
        _load_prelu_state(ex, layer, reference, f"{label}.to(torch.float64)")
        x = _leaky_input(shapes[min(1, len(shapes) - 1)], seed + 7, torch.float64, "cpu", zeros=True)
        _leaky_compare(ex, layer, reference, x, f"{label}.to(torch.float64)", weight_grad=True, seed=seed)
        nn.Module.to(layer, "meta")
        x = torch.empty(shapes[0], device="meta")
        case = f'{label}.to("meta"), {_describe_x(x)} (the meta device holds shapes, no data)'
        y, _ = _leaky_forward(ex, layer, x, num_parameters, case)
        if y.device.type != "meta" or y.shape != x.shape:
            ex.fail(
                f"the output is {tuple(y.shape)} on {y.device}, expected {tuple(x.shape)} on meta",
                case=case,
                fix="compute from x and the layer's own weight only (no tensors made on the CPU in forward)",
            )
        ex.passed()


def check_LearnableLeakyReLU(
    LearnableLeakyReLU, *, part: str = CORE, hidden: bool = False, seed: int = 0
) -> None:
    """Does ``LearnableLeakyReLU(num_parameters=1, init=0.25)`` compute what nn.PReLU does, ``x`` where
    ``x >= 0`` and ``weight * x`` elsewhere, with a learnable ``weight (num_parameters,)`` filled with
    ``init``, without calling nn.PReLU or F.prelu? Core: the weight, and with one slope the output and
    the gradient with respect to x for any input shape. ``part="edge"``: one slope per channel of dim 1
    on (N, C), (N, C, L) and (N, C, H, W), 1-D input, nn.PReLU's state_dict loaded both ways with
    strict=True, the gradient with respect to the weight, an int init, float64 and the meta device."""
    __tracebackhide__ = True
    with Exercise("LearnableLeakyReLU") as ex:
        if part == CORE:
            _check_leaky_core(ex, LearnableLeakyReLU, hidden, seed)
        else:
            _check_leaky_edge(ex, LearnableLeakyReLU, hidden, seed)


# -- Residual ------------------------------------------------------------------------------------------
class _BatchMean(nn.Module):
    """(N, F) -> (1, F): broadcasts against x, so only a shape check notices the change."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(0, keepdim=True)


class _SumFirst(nn.Module):
    """(N, F) -> (F,): broadcasts against x too."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(0)


class _Transpose(nn.Module):
    """(N, F) -> (F, N): the same number of elements, another shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(0, 1)


def _residual_registration(ex: Exercise, residual: nn.Module, inner: nn.Module, label: str) -> None:
    """The wrapped module is registered as the submodule ``module`` (itself, not a copy)."""
    modules = dict(nn.Module.named_modules(residual))
    fix = "assign it as an attribute in __init__: `self.module = module` (after super().__init__())"
    if "module" not in modules:
        others = [name for name, sub in modules.items() if sub is inner]
        if others:
            ex.fail(
                f"the wrapped module is registered as {others[0]!r}; the exercise names it 'module'",
                case=label,
                fix="keep it as `self.module = module`",
            )
        registered = _names([name for name in modules if name])
        ex.fail(
            f"Residual has no registered submodule 'module' (registered: {registered})",
            case=label,
            mistake="module not registered: nn.Module only sees a submodule assigned as an attribute; one "
            "kept in a list or tuple, or written through __dict__ / object.__setattr__, is invisible to "
            "parameters(), state_dict() and .to()",
            fix=fix,
        )
    if modules["module"] is not inner:
        ex.fail(
            "residual.module is not the module given to Residual",
            case=label,
            mistake="a copy of the module kept instead of the module itself (training the Residual would "
            "not train the module you passed)",
            fix="keep the module itself: `self.module = module`",
        )
    mine = [id(p) for p in nn.Module.parameters(residual)]
    theirs = [id(p) for p in nn.Module.parameters(inner)]
    if sorted(mine) != sorted(theirs):
        ex.fail(
            f"Residual has {len(mine)} parameters, the wrapped module {len(theirs)}; they should be the same",
            case=label,
            fix="register nothing but the wrapped module",
        )
    ex.passed()


def _residual_diagnosis(ex: Exercise, x: torch.Tensor, inner_out: torch.Tensor):
    def diagnose(actual: torch.Tensor):
        if ex.is_close(actual, inner_out):
            return (
                "missing skip connection: returns module(x)",
                "add the input: `return x + self.module(x)`",
            )
        if ex.is_close(actual, x):
            return ("returns x without the module", "return `x + self.module(x)`")
        if ex.is_close(actual, 2 * x + inner_out) or ex.is_close(actual, x + 2 * inner_out):
            return ("x or module(x) added twice", "return `x + self.module(x)`")
        return None

    return diagnose


def _residual_shape_hints(x_shape: tuple, y_shape: tuple):
    wanted = 'raise ValueError(f"... {tuple(x.shape)} ... {tuple(y.shape)}") when y.shape != x.shape'

    def hints(exc: BaseException):
        if _type(exc) is AssertionError:
            return ("assert used instead of raising ValueError", wanted)
        return (
            f"shape check missing: x + module(x) failed inside torch instead of raising ValueError "
            f"({x_shape} vs {y_shape})",
            wanted,
        )

    return hints


_NO_ERROR = object()


def _residual_cases(hidden: bool, seed: int):
    """(inner module, x shape, dtype) that keep the shape."""
    with seeded(seed):
        cases = [
            (nn.Linear(4, 4), (3, 4), torch.float32),
            (nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4)), (2, 5, 4), torch.float32),
            (nn.Tanh(), (5,), torch.float32),
        ]
        if hidden:
            generator = torch.Generator().manual_seed(seed)
            for dtype in (torch.float32, torch.float64):
                features = _draw(generator, 1, 9)
                shape = tuple(_draw(generator, 1, 5) for _ in range(_draw(generator, 0, 2))) + (features,)
                hidden_size = _draw(generator, 1, 9)
                inner = nn.Sequential(
                    nn.Linear(features, hidden_size), nn.ReLU(), nn.Linear(hidden_size, features)
                )
                cases.append((inner.to(dtype), shape, dtype))
    return cases


def _shape_changers(hidden: bool, seed: int):
    """(inner module, x shape) whose output shape differs from x's; some of them broadcast."""
    with seeded(seed):
        changers = [
            (nn.Linear(4, 5), (3, 4)),
            (nn.Linear(4, 1), (3, 4)),  # (3, 1) broadcasts against (3, 4)
            (_BatchMean(), (3, 4)),  # (1, 4) broadcasts
            (_Transpose(), (3, 4)),  # (4, 3): same numel
        ]
        if hidden:
            generator = torch.Generator().manual_seed(seed + 1)
            rows, features = _draw(generator, 2, 6), _draw(generator, 2, 6)
            other = features + _draw(generator, 1, 4)
            changers += [
                (nn.Linear(features, other), (rows, features)),
                (nn.Linear(features, 1), (2, rows, features)),
                (_SumFirst(), (rows, features)),  # (features,) broadcasts
            ]
    return changers


def _residual_float64(ex: Exercise, residual: nn.Module, inner: nn.Module, shape, seed: int, label) -> None:
    """The wrapped module follows the Residual to float64, and the output is x + module(x) there."""
    nn.Module.to(residual, torch.float64)
    x = _randn(shape, seed, torch.float64, "cpu")
    case = f"{label}.to(torch.float64), {_describe_x(x)}"
    copy, version = x.clone(), x._version
    y = ex.call(residual, x, case=case, hints=_in_place_hint)
    if not _unchanged(x, copy, version):
        ex.fail("your layer changed its input tensor", case=case, mistake=_IN_PLACE)
    with torch.no_grad():
        inner_out = inner(x)
    diagnose = _residual_diagnosis(ex, x, inner_out)
    ex.assert_close(y, x + inner_out, "the output", case=case, diagnose=diagnose)


def check_Residual(Residual, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Core: does ``Residual(module)`` register ``module`` as ``self.module`` and return ``x + module(x)``
    with gradients, leaving x untouched? ``part="edge"``: does it follow ``.to(torch.float64)``, and raise
    a ValueError naming both shapes as tuples when module changes the shape (even when the two shapes
    would broadcast)?"""
    __tracebackhide__ = True
    hints = _construction_hints("Residual(module)")
    with Exercise("Residual") as ex:
        for index, (inner, shape, dtype) in enumerate(_residual_cases(hidden, seed)):
            label = f"Residual({_short(inner)})"
            residual = ex.call(Residual, inner, case=label, hints=hints)
            _expect_module(ex, residual, label, label)
            _residual_registration(ex, residual, inner, label)
            if part == EDGE:
                _residual_float64(ex, residual, inner, shape, seed, label)
                continue
            for device in ex.devices:
                nn.Module.to(residual, device)
                x = _randn(shape, seed * 1000 + index, dtype, device)
                case = f"{label}, {_describe_x(x)}"
                copy, version = x.clone(), x._version
                y = ex.call(residual, x, case=case, hints=_in_place_hint)
                if not _unchanged(x, copy, version):
                    ex.fail(
                        "your layer changed its input tensor",
                        case=case,
                        mistake=_IN_PLACE,
                        fix="return a new tensor: `x + self.module(x)` (not `x += ...`)",
                    )
                with torch.no_grad():
                    inner_out = inner(x)
                ex.assert_close(
                    y, x + inner_out, "the output", case=case, diagnose=_residual_diagnosis(ex, x, inner_out)
                )
                # Gradients reach x and the wrapped module's parameters.
                x = x.detach().clone().requires_grad_(True)
                y = ex.expect_tensor(ex.call(residual, x, case=case, hints=_in_place_hint), "the output")
                targets = {"x": x} | {f"module.{n}": p for n, p in inner.named_parameters()}
                grad_output = _randn(tuple(y.shape), seed + index, dtype, device)
                got = _grads(ex, y, targets, grad_output, case)
                expected = torch.autograd.grad(x + inner(x), list(targets.values()), grad_output)
                for (name, grad), reference in zip(got.items(), expected, strict=True):
                    ex.assert_close(grad, reference, f"the gradient with respect to {name}", case=case)
        if part == CORE:
            return
        for index, (inner, shape) in enumerate(_shape_changers(hidden, seed)):
            label = f"Residual({_short(inner)})"
            residual = ex.call(Residual, inner, case=label, hints=hints)
            _expect_module(ex, residual, label, label)
            for device in ex.devices:
                nn.Module.to(residual, device)
                x = _randn(shape, seed + index, torch.float32, device)
                with torch.no_grad():
                    y_shape = tuple(inner(x).shape)
                x_shape = tuple(shape)
                case = f"{label}, {_describe_x(x)}: module(x) has shape {y_shape}"

                def attempt(residual=residual, x=x):
                    try:
                        residual(x)
                    except ValueError as exc:
                        return exc
                    return _NO_ERROR

                outcome = ex.call(attempt, case=case, hints=_residual_shape_hints(x_shape, y_shape))
                if outcome is _NO_ERROR:
                    ex.fail(
                        f"no ValueError although module changed the shape from {x_shape} to {y_shape}",
                        case=case,
                        mistake="shape check missing: x + module(x) broadcast the two shapes silently",
                        fix="compare the shapes first: `if y.shape != x.shape: raise ValueError(...)`",
                    )
                message = str(outcome)
                if str(x_shape) in message and str(y_shape) in message:
                    ex.passed()
                    continue
                if "torch.Size" in message:
                    mistake = "message with torch.Size(...) instead of tuples"
                elif str(list(x_shape)) in message or str(list(y_shape)) in message:
                    mistake = "shapes shown as lists instead of tuples"
                else:
                    mistake = None
                ex.fail(
                    f"the ValueError's message should show both shapes as tuples, {x_shape} and {y_shape}; "
                    f"it says {message!r}",
                    case=case,
                    mistake=mistake,
                    fix='format them with tuple(): f"... {tuple(x.shape)} ... {tuple(y.shape)}"',
                )


# -- ResidualConvBlock -----------------------------------------------------------------------------
_BLOCK_SIGNATURE = "ResidualConvBlock(channels)"
_BLOCK_PARTS = ("conv1", "bn1", "conv2", "bn2")
_CONV_FIX = "nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)"
_PADDING = (
    "padding missing: a 3x3 convolution without padding=1 shrinks H and W by 2, so the block's output no "
    "longer has the shape of x"
)
_BN_EPS, _BN_MOMENTUM = 1e-5, 0.1  # nn.BatchNorm2d's defaults


class _ReferenceBlock(nn.Module):
    """The block the exercise describes: its state_dict keys and shapes are what the student's must have."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)


def _block_hints(exc: BaseException):
    text = str(exc)
    if "must match the size of tensor" in text or "Kernel size can't be greater" in text:
        return (_PADDING, f"create each conv as {_CONV_FIX}")
    if "expected 2D or 3D input" in text:
        return (
            "nn.BatchNorm1d used on 4-D input (N, C, H, W)",
            "use nn.BatchNorm2d(channels): one mean and variance per channel, over N, H and W",
        )
    if "expected input" in text and "channels" in text:
        return ("a convolution with another number of channels", f"both convs are {_CONV_FIX}")
    if "in-place operation" in text:
        return (_IN_PLACE, "add into a new tensor: `out = out + x` (`identity = x` does not copy x)")
    return _construction_hints(_BLOCK_SIGNATURE)(exc)


def _block_parts(ex: Exercise, block: nn.Module, channels: int, label: str) -> dict[str, nn.Module]:
    """The submodules conv1, bn1, conv2 and bn2: two distinct 3x3 convs (C -> C) and two distinct norms."""
    registry = vars(block).get("_modules")
    children = {k: v for k, v in registry.items() if v is not None} if _type(registry) is dict else {}
    missing = [name for name in _BLOCK_PARTS if name not in children]
    if missing:
        keys = list(nn.Module.state_dict(block))
        shown = ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "")
        containers = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
        if missing == ["bn2"]:
            mistake = "one BatchNorm reused for both convs (bn1 after conv1 and conv2; no bn2)"
        elif any(isinstance(child, containers) for child in children.values()):
            mistake = (
                "the layers kept in an nn.Sequential (or another container), so the state_dict keys are "
                "like body.0.weight: the exercise requires the names conv1, bn1, conv2 and bn2"
            )
        elif not children and any(_type(value) in (list, tuple) for value in vars(block).values()):
            mistake = "layers kept in a Python list or tuple: nn.Module does not register them"
        else:
            mistake = None
        ex.fail(
            f"ResidualConvBlock has no submodule {', '.join(missing)} (its submodules: {_names(children)}; "
            f"state_dict keys: {shown or 'none'})",
            case=label,
            mistake=mistake,
            fix="assign the four layers as attributes named exactly conv1, bn1, conv2 and bn2 (the "
            "exercise fixes them: state_dict keys conv1.weight, bn1.weight, ...)",
        )
    parts = {name: children[name] for name in _BLOCK_PARTS}
    if parts["bn1"] is parts["bn2"]:
        ex.fail(
            "bn1 and bn2 are the same module",
            case=label,
            mistake="one BatchNorm reused for both convs: each conv needs its own BatchNorm, with its own "
            "weight, bias and running statistics",
            fix="create two: `self.bn1 = nn.BatchNorm2d(channels)` and `self.bn2 = nn.BatchNorm2d(channels)`",
        )
    if parts["conv1"] is parts["conv2"]:
        ex.fail(
            "conv1 and conv2 are the same module",
            case=label,
            mistake="one convolution reused for both: the block has two, each with its own weight",
            fix=f"create two, each {_CONV_FIX}",
        )
    for name in ("conv1", "conv2"):
        weight = parts[name]._parameters.get("weight") if _type(parts[name]._parameters) is dict else None
        if _type(weight) is not nn.Parameter:
            ex.fail(f"{name} has no weight parameter", case=label, fix=f"make {name} an {_CONV_FIX}")
        if tuple(weight.shape) != (channels, channels, 3, 3):
            shape = tuple(weight.shape)
            ex.fail(
                f"{name}.weight has shape {shape}, expected {(channels, channels, 3, 3)} "
                "(out_channels, in_channels, 3, 3)",
                case=label,
                mistake="kernel size other than 3x3" if shape[:2] == (channels, channels) else None,
                fix=f"{name} = {_CONV_FIX}",
            )
    ex.passed()
    return parts


def _module_tensor(module: nn.Module, name: str) -> torch.Tensor | None:
    """A parameter or buffer registered directly on ``module`` (None if it has none of that name)."""
    for registry in (module._parameters, module._buffers):
        if _type(registry) is dict and name in registry:
            value = registry[name]
            return value if _type(value) in (torch.Tensor, nn.Parameter) else None
    return None


def _block_tensors(parts: dict[str, nn.Module]) -> dict[str, torch.Tensor | None]:
    """The student's parameters (themselves, for gradients) and copies of the running statistics."""
    tensors = {}
    for name in ("conv1", "conv2"):
        tensors[f"{name}.weight"] = _module_tensor(parts[name], "weight")
        tensors[f"{name}.bias"] = _module_tensor(parts[name], "bias")
    for name in ("bn1", "bn2"):
        for key in ("weight", "bias"):
            tensors[f"{name}.{key}"] = _module_tensor(parts[name], key)
        for key in ("running_mean", "running_var"):
            value = _module_tensor(parts[name], key)
            tensors[f"{name}.{key}"] = None if value is None else value.detach().clone()
    return tensors


def _randomize_block(parts: dict[str, nn.Module], channels: int, seed: int) -> None:
    """Random weights, biases and running statistics, so that every mix-up of the four layers shows."""
    generator = torch.Generator().manual_seed(seed)

    def fill(tensor: torch.Tensor | None, values: torch.Tensor) -> None:
        if tensor is not None and tensor.shape == values.shape and tensor.device.type != "meta":
            tensor.copy_(values)

    with torch.no_grad():
        for name in ("conv1", "conv2"):
            shape = (channels, channels, 3, 3)
            fill(_module_tensor(parts[name], "weight"), torch.randn(shape, generator=generator) / channels)
            fill(_module_tensor(parts[name], "bias"), torch.randn(channels, generator=generator))
        for name in ("bn1", "bn2"):
            fill(_module_tensor(parts[name], "weight"), torch.rand(channels, generator=generator) + 0.5)
            fill(_module_tensor(parts[name], "bias"), torch.randn(channels, generator=generator) / 2)
            fill(_module_tensor(parts[name], "running_mean"), torch.randn(channels, generator=generator) / 2)
            fill(
                _module_tensor(parts[name], "running_var"),
                torch.rand(channels, generator=generator) * 1.5 + 0.5,
            )


def _bn(h: torch.Tensor, t: dict, name: str, training: bool) -> torch.Tensor:
    return F.batch_norm(
        h,
        t[f"{name}.running_mean"],
        t[f"{name}.running_var"],
        t[f"{name}.weight"],
        t[f"{name}.bias"],
        training=training,
        momentum=_BN_MOMENTUM,
        eps=_BN_EPS,
    )


def _conv(h: torch.Tensor, t: dict, name: str) -> torch.Tensor:
    return F.conv2d(h, t[f"{name}.weight"], t[f"{name}.bias"], padding=1)


def _block_reference(x: torch.Tensor, t: dict, training: bool) -> torch.Tensor:
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + x) from the tensors ``t`` (whose running stats it updates
    in training mode, as nn.BatchNorm2d does)."""
    h = F.relu(_bn(_conv(x, t, "conv1"), t, "bn1", training))
    return F.relu(_bn(_conv(h, t, "conv2"), t, "bn2", training) + x)


def _block_diagnosis(ex: Exercise, x: torch.Tensor, parts: dict[str, nn.Module], training: bool):
    """Which known mistake gives ``actual``, computed from copies of the block's tensors before the call."""
    t = _block_tensors(parts)

    def diagnose(actual: torch.Tensor):
        n, c, h, w = x.shape
        if tuple(actual.shape) == (n, c, h - 4, w - 4):
            return (_PADDING, f"create each conv as {_CONV_FIX}")
        with torch.no_grad():
            s = {k: None if v is None else v.detach().clone() for k, v in t.items()}
            a = _bn(_conv(x, s, "conv1"), s, "bn1", training)
            c2 = _conv(F.relu(a), s, "conv2")
            b = _bn(c2, s, "bn2", training)
            candidates = [
                (
                    "the skip added after the last ReLU: relu(bn2(...)) + x",
                    F.relu(b) + x,
                    "add x first, then apply the ReLU: `relu(bn2(conv2(...)) + x)`",
                ),
                (
                    "the skip added before bn2: bn2(conv2(...) + x)",
                    F.relu(_bn(c2 + x, s, "bn2", training)),
                    "add x to bn2's output: `relu(bn2(conv2(...)) + x)`",
                ),
                (
                    "ReLU missing between bn1 and conv2",
                    F.relu(_bn(_conv(a, s, "conv2"), s, "bn2", training) + x),
                    "apply a ReLU to bn1's output before conv2",
                ),
                ("the final ReLU missing (after adding x)", b + x, "return `relu(bn2(...) + x)`"),
                ("skip connection missing: x not added", F.relu(b), "add the input: `relu(bn2(...) + x)`"),
                (
                    "one BatchNorm reused for both convs: bn1 also after conv2 (bn2 never used)",
                    F.relu(_bn(c2, s, "bn1", training) + x),
                    "use bn2 after conv2",
                ),
                (
                    "conv1 used twice (conv2 never used)",
                    F.relu(_bn(_conv(F.relu(a), s, "conv1"), s, "bn2", training) + x),
                    "use conv2 for the second convolution",
                ),
                (
                    "ReLU before bn1 (conv1 -> ReLU -> bn1) instead of after it",
                    F.relu(
                        _bn(
                            _conv(_bn(F.relu(_conv(x, s, "conv1")), s, "bn1", training), s, "conv2"),
                            s,
                            "bn2",
                            training,
                        )
                        + x
                    ),
                    "conv1 -> bn1 -> ReLU",
                ),
            ]
            if not training and s["bn1.running_mean"] is not None:
                candidates.insert(
                    0,
                    (
                        "BatchNorm uses the batch's statistics in eval mode, not its running statistics",
                        _block_reference(x, s, training=True),
                        "use nn.BatchNorm2d modules (they follow .eval()), or pass training=self.training "
                        "to F.batch_norm",
                    ),
                )
        return ex.first_match(actual, candidates)

    return diagnose


def _block_forward(ex: Exercise, block: nn.Module, x: torch.Tensor, case: str) -> torch.Tensor:
    copy, version = x.detach().clone(), x._version
    y = ex.call(block, x, case=case, hints=_block_hints)
    if not _unchanged(x.detach(), copy, version):
        ex.fail(
            "your block changed its input tensor",
            case=case,
            mistake=_IN_PLACE + "; `identity = x` does not copy x",
            fix="add into a new tensor: `out = out + x`, then `F.relu(out)`",
        )
    return ex.expect_tensor(y, "the output", case=case)


def _block_output(ex: Exercise, block, parts, x: torch.Tensor, training: bool, case: str) -> None:
    """The output equals the reference computed from the block's own tensors."""
    diagnose = _block_diagnosis(ex, x, parts, training)
    expected_tensors = _block_tensors(parts)
    y = _block_forward(ex, block, x, case)
    with torch.no_grad():
        expected = _block_reference(x, expected_tensors, training)
    ex.assert_close(y, expected, "the output", case=case, diagnose=diagnose)


def _block_gradients(ex: Exercise, block, parts, x: torch.Tensor, seed: int, case: str) -> None:
    """In train mode, gradients reach x and every parameter, as through the reference."""
    x = x.detach().clone().requires_grad_(True)
    tensors = _block_tensors(parts)
    y = _block_forward(ex, block, x, case)
    targets = {"x": x} | {
        name: value for name, value in tensors.items() if _type(value) is nn.Parameter and value.requires_grad
    }
    grad_output = _randn(tuple(x.shape), seed, x.dtype, x.device)
    if y.shape != x.shape:
        ex.fail(f"the output has shape {tuple(y.shape)}, expected {tuple(x.shape)}", case=case)
    got = _grads(ex, y, targets, grad_output, case)
    expected = torch.autograd.grad(_block_reference(x, tensors, True), list(targets.values()), grad_output)
    for (name, grad), reference in zip(got.items(), expected, strict=True):
        ex.assert_close(grad, reference, f"the gradient with respect to {name}", case=case)


def _new_block(ex: Exercise, ResidualConvBlock, channels: int, seed: int, device, dtype=torch.float32):
    label = f"ResidualConvBlock({channels})"
    with seeded(seed):
        block = ex.call(ResidualConvBlock, channels, case=label, hints=_block_hints)
    _expect_module(ex, block, label, label)
    parts = _block_parts(ex, block, channels, label)
    nn.Module.to(block, device=device, dtype=dtype)
    _randomize_block(parts, channels, seed)
    return block, parts, label


def _block_keys(ex: Exercise, block: nn.Module, channels: int, label: str) -> None:
    """Exactly the state_dict keys and shapes of conv1 (no bias) -> bn1 -> conv2 (no bias) -> bn2."""
    reference = _ReferenceBlock(channels).to("meta")
    expected = {key: tuple(value.shape) for key, value in reference.state_dict().items()}
    got = {key: tuple(value.shape) for key, value in nn.Module.state_dict(block).items()}
    if got == expected:
        ex.passed()
        return
    extra = sorted(set(got) - set(expected))
    missing = sorted(set(expected) - set(got))
    if "conv1.bias" in extra or "conv2.bias" in extra:
        mistake = (
            "conv bias left on: BatchNorm subtracts each channel's mean right after the conv, which cancels "
            "a conv bias, so nn.Conv2d(..., bias=False) is the rule before a BatchNorm"
        )
    elif any(key.endswith(("running_mean", "running_var")) for key in missing):
        mistake = (
            "BatchNorm without running statistics (track_running_stats=False), so eval mode cannot use them"
        )
    elif any(key.endswith((".weight", ".bias")) and key.startswith("bn") for key in missing):
        mistake = "BatchNorm without its learnable weight and bias (affine=False)"
    else:
        mistake = None
    shapes = [
        f"{key} {got[key]} instead of {expected[key]}"
        for key in got
        if key in expected and got[key] != expected[key]
    ]
    ex.fail(
        "the state_dict differs from the exercise's block: "
        + "; ".join(
            part
            for part in (
                f"extra keys {', '.join(extra)}" if extra else "",
                f"missing keys {', '.join(missing)}" if missing else "",
                f"shapes {', '.join(shapes)}" if shapes else "",
            )
            if part
        ),
        case=label,
        mistake=mistake,
        fix=f"conv1 and conv2 = {_CONV_FIX}; bn1 and bn2 = nn.BatchNorm2d(channels)",
    )


def _block_round_trip(ex: Exercise, ResidualConvBlock, channels: int, seed: int, device) -> None:
    """A state_dict with these keys loads with strict=True, and the block's own loads into another."""
    label = f"ResidualConvBlock({channels})"
    with seeded(seed):
        block = ex.call(ResidualConvBlock, channels, case=label, hints=_block_hints)
        reference = _ReferenceBlock(channels)
    _expect_module(ex, block, label, label)
    parts = _block_parts(ex, block, channels, label)
    _block_keys(ex, block, channels, label)
    _randomize_block(dict(nn.Module.named_children(reference)), channels, seed + 1)
    nn.Module.to(block, device)
    ex.call(
        nn.Module.load_state_dict,
        block,
        reference.to(device).state_dict(),
        strict=True,
        case=f"{label}: load_state_dict(a state_dict with keys conv1.weight, bn1.weight, ..., strict=True)",
    )
    for key, value in reference.state_dict().items():
        if not _equal(nn.Module.state_dict(block)[key], value):
            ex.fail(f"after load_state_dict, {key} does not hold the loaded values", case=label)
    with seeded(seed + 2):
        other = ex.call(ResidualConvBlock, channels, case=label, hints=_block_hints)
    nn.Module.to(other, device)
    ex.call(
        nn.Module.load_state_dict,
        other,
        nn.Module.state_dict(block),
        strict=True,
        case=f"a second {label}: load_state_dict(the first one's state_dict, strict=True)",
    )
    nn.Module.eval(block)
    nn.Module.eval(other)
    x = _randn((2, channels, 4, 5), seed, torch.float32, device)
    case = f"{label} in eval mode holding loaded values, {_describe_x(x)}"
    _block_output(ex, block, parts, x, False, case)
    y = _block_forward(ex, other, x, f"a second {label} holding the first one's state_dict, in eval mode")
    ex.assert_close(
        y, _block_forward(ex, block, x, case), "the output of the block loaded from it", case=case
    )


def _block_statistics(ex: Exercise, block, parts, x: torch.Tensor, label: str) -> None:
    """One train-mode call updates each BatchNorm's running statistics as nn.BatchNorm2d does (momentum
    0.1, unbiased variance) and counts the batch; an eval-mode call changes none of them."""
    case = f"{label} in train mode, {_describe_x(x)}"
    before = {name: _module_tensor(parts[name], "num_batches_tracked") for name in ("bn1", "bn2")}
    counts = {name: None if value is None else int(value) for name, value in before.items()}
    expected = _block_tensors(parts)
    with torch.no_grad():
        _block_reference(x, expected, training=True)
    old = _block_tensors(parts)
    _block_forward(ex, block, x, case)
    now = _block_tensors(parts)
    for name in ("bn1", "bn2"):
        for key in ("running_mean", "running_var"):
            full = f"{name}.{key}"
            if expected[full] is None or now[full] is None:
                continue
            if ex.is_close(now[full], old[full]):
                ex.fail(
                    f"{full} did not change in train mode",
                    case=case,
                    mistake="running statistics not updated in train mode (BatchNorm computed by hand, or "
                    "F.batch_norm with training=False)",
                    fix="use nn.BatchNorm2d modules: in train mode they update their running statistics",
                )
            ex.assert_close(now[full], expected[full], f"{full} after one train-mode call", case=case)
        count = _module_tensor(parts[name], "num_batches_tracked")
        if counts[name] is not None and count is not None and int(count) != counts[name] + 1:
            ex.fail(
                f"{name}.num_batches_tracked went from {counts[name]} to {int(count)} in one call, expected "
                f"{counts[name] + 1}",
                case=case,
                mistake="one BatchNorm applied twice per call" if int(count) == counts[name] + 2 else None,
                fix="apply bn1 once (after conv1) and bn2 once (after conv2)",
            )
    nn.Module.eval(block)
    old = _block_tensors(parts)
    case = f"{label} in eval mode, {_describe_x(x)}"
    _block_forward(ex, block, x, case)
    now = _block_tensors(parts)
    for key, value in old.items():
        if (
            value is not None
            and key.endswith(("running_mean", "running_var"))
            and not _equal(now[key], value)
        ):
            ex.fail(
                f"{key} changed in eval mode",
                case=case,
                mistake="running statistics updated in eval mode (F.batch_norm with training=True)",
                fix="use nn.BatchNorm2d modules, which follow block.eval()",
            )
    ex.passed()


def _block_core_cases(hidden: bool, seed: int) -> list[tuple[int, tuple[int, int, int, int], torch.dtype]]:
    """(channels, x shape, dtype) for the core part: square inputs in train mode."""
    cases = [(3, (2, 3, 6, 6), torch.float32), (2, (4, 2, 5, 5), torch.float32)]
    if hidden:
        generator = torch.Generator().manual_seed(seed)
        for dtype in (torch.float32, torch.float64):
            channels, size = _draw(generator, 1, 5), _draw(generator, 2, 7)
            cases.append((channels, (_draw(generator, 2, 4), channels, size, size), dtype))
    return cases


def _block_edge_cases(hidden: bool, seed: int) -> list[tuple[int, tuple[int, int, int, int], torch.dtype]]:
    """(channels, x shape, dtype) for the edge part: other heights and widths, one channel, float64."""
    cases = [
        (3, (2, 3, 5, 7), torch.float32),
        (1, (3, 1, 1, 4), torch.float32),
        (2, (2, 2, 8, 3), torch.float64),
    ]
    if hidden:
        generator = torch.Generator().manual_seed(seed)
        for dtype in (torch.float32, torch.float64):
            channels = _draw(generator, 1, 5)
            shape = (_draw(generator, 2, 4), channels, _draw(generator, 1, 9), _draw(generator, 1, 9))
            cases.append((channels, shape, dtype))
    return cases


@contextlib.contextmanager
def _full_float32_convolutions() -> Iterator[None]:
    """Convolutions in full float32 while the block is checked: on recent GPUs cuDNN may otherwise use
    TF32 (a 10-bit mantissa), and two correct blocks could differ by 1e-3. Restored afterwards."""
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = before


def check_ResidualConvBlock(
    ResidualConvBlock, *, part: str = CORE, hidden: bool = False, seed: int = 0
) -> None:
    """Is ``ResidualConvBlock(channels)`` relu(bn2(conv2(relu(bn1(conv1(x))))) + x) with 3x3 convs
    (padding 1) and two BatchNorms held as conv1, bn1, conv2, bn2? Compared with F.conv2d and F.batch_norm
    computed from the block's own parameters and buffers. Core: train mode on square inputs, outputs and
    gradients. ``part="edge"``: the exact state_dict keys (no conv bias) loaded both ways, eval mode with
    the running statistics, their update in train mode, other heights and widths, one channel, float64."""
    __tracebackhide__ = True
    with Exercise("ResidualConvBlock") as ex, _full_float32_convolutions():
        if part == CORE:
            for index, (channels, shape, dtype) in enumerate(_block_core_cases(hidden, seed)):
                for device in ex.devices:
                    block, parts, label = _new_block(
                        ex, ResidualConvBlock, channels, seed + index, device, dtype
                    )
                    nn.Module.train(block)
                    x = _randn(shape, seed * 1000 + index, dtype, device)
                    case = f"{label} in train mode, {_describe_x(x)}"
                    _block_output(ex, block, parts, x, True, case)
                    _block_gradients(ex, block, parts, x, seed + index, f"{case}, backward")
            return
        for device in ex.devices:
            for index, channels in enumerate([3, 2] if hidden else [3]):
                _block_round_trip(ex, ResidualConvBlock, channels, seed + index, device)
        for index, (channels, shape, dtype) in enumerate(_block_edge_cases(hidden, seed)):
            for device in ex.devices:
                block, parts, label = _new_block(ex, ResidualConvBlock, channels, seed + index, device, dtype)
                _block_keys(ex, block, channels, label)
                x = _randn(shape, seed * 1000 + index, dtype, device)
                nn.Module.eval(block)
                suffix = "" if dtype == torch.float32 else ".to(torch.float64)"
                _block_output(ex, block, parts, x, False, f"{label}{suffix} in eval mode, {_describe_x(x)}")
                nn.Module.train(block)
                _block_output(ex, block, parts, x, True, f"{label}{suffix} in train mode, {_describe_x(x)}")
                _block_statistics(ex, block, parts, x, f"{label}{suffix}")


def _short(module: nn.Module) -> str:
    """A one-line description of a module for case labels."""
    text = " ".join(repr(module).split())
    return text if len(text) <= 70 else text[:67] + "..."


protect_module(__name__)
