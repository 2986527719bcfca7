"""Checks for notebook 07_custom_layers: ``CenteredLayer``, ``MyLinear``, ``ScalingLayer`` and ``Residual``.

Each check builds the student's layer, inspects what it registers (parameters, buffers, submodules) with
``nn.Module``'s own methods, and compares its outputs and gradients with what PyTorch computes
(``x - x.mean()``, ``nn.Linear``, ``scale * x``, ``x + module(x)``) on every available device;
``hidden=True`` adds random sizes, values, dtypes and edge cases (used by the hidden tests at grading time).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from course_lib.checks._core import Exercise, seeded
from course_lib.checks._integrity import ORIGINALS, protect_module

__all__ = ["check_CenteredLayer", "check_MyLinear", "check_ScalingLayer", "check_Residual"]

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
        for mistake, wrong, fix in candidates:
            if ex.is_close(actual, wrong):
                return mistake, fix
        return None

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
        if "tensor" in text or "Parameter" in text:
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
        for mistake, wrong, fix in candidates:
            if ex.is_close(actual, wrong):
                return mistake, fix
        return None

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


def _linear_interchange(ex: Exercise, MyLinear, config, seed: int, device: torch.device, shapes) -> None:
    """nn.Linear's state_dict loads into MyLinear (strict) and gives the same outputs and gradients; and
    MyLinear's loads into nn.Linear."""
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


def _linear_configs(hidden: bool, seed: int) -> list[tuple[int, int, bool]]:
    configs = [(3, 2, True), (4, 4, True), (5, 3, False)]
    if hidden:
        generator = torch.Generator().manual_seed(seed)
        for _ in range(4):
            configs.append((_draw(generator, 1, 9), _draw(generator, 1, 9), bool(_draw(generator, 0, 1))))
        size = _draw(generator, 2, 7)
        configs.append((size, size, True))
    return configs


def check_MyLinear(MyLinear, *, hidden: bool = False, seed: int = 0) -> None:
    """Is ``MyLinear(in_features, out_features, bias=True)`` interchangeable with ``nn.Linear``: the same
    parameters (names, shapes, initialization), the same extra_repr, state_dicts that load both ways
    with strict=True, and the same outputs and gradients for any input shape, dtype and device?"""
    __tracebackhide__ = True
    configs = _linear_configs(hidden, seed)
    shapes = [(), (2,), (2, 3)] + ([(0,), (2, 1, 3)] if hidden else [])
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
            _check_extra_repr(ex, layer, *config, label)
            for device in ex.devices:
                _linear_interchange(ex, MyLinear, config, seed * 100 + index, device, shapes)
        for index, config in enumerate(configs[: 4 if hidden else 2]):
            _linear_dtype_and_meta(ex, MyLinear, config, seed * 100 + index)
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


def check_Residual(Residual, *, hidden: bool = False, seed: int = 0) -> None:
    """Does ``Residual(module)`` register ``module`` as ``self.module``, return ``x + module(x)`` with
    gradients, and raise a ValueError naming both shapes as tuples when module changes the shape (even
    when the two shapes would broadcast)?"""
    __tracebackhide__ = True
    hints = _construction_hints("Residual(module)")
    with Exercise("Residual") as ex:
        for index, (inner, shape, dtype) in enumerate(_residual_cases(hidden, seed)):
            label = f"Residual({_short(inner)})"
            residual = ex.call(Residual, inner, case=label, hints=hints)
            _expect_module(ex, residual, label, label)
            _residual_registration(ex, residual, inner, label)
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
            nn.Module.to(residual, torch.float64)
            x = _randn(shape, seed, torch.float64, "cpu")
            case = f"{label}.to(torch.float64), {_describe_x(x)}"
            y = ex.call(residual, x, case=case)
            with torch.no_grad():
                expected = x + inner(x)
            ex.assert_close(y, expected, "the output", case=case)
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


def _short(module: nn.Module) -> str:
    """A one-line description of a module for case labels."""
    text = " ".join(repr(module).split())
    return text if len(text) <= 70 else text[:67] + "..."


protect_module(__name__)
