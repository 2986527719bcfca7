"""Checks for notebook 01_linear: ``linear_forward``, ``make_linear`` and ``linear_param_count``.

Each check compares the student's function with PyTorch's own ``nn.functional.linear`` / ``nn.Linear``
on every available device; ``hidden=True`` adds random shapes, dtypes and edge cases (used by the hidden
tests at grading time).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from course_lib.checks._core import Exercise, dtype_on
from course_lib.checks._integrity import ORIGINALS, protect_module
from course_lib.protocol import CORE, EDGE

__all__ = ["check_linear_forward", "check_make_linear", "check_linear_param_count"]

_equal = ORIGINALS["equal"]
_type = ORIGINALS["type"]


def _shape(t: torch.Tensor | None) -> str:
    return "None" if t is None else str(tuple(t.shape))


@dataclass
class _Case:
    """One input for linear_forward / make_linear: x (..., in), weight (out, in), bias (out,) or None."""

    x_shape: tuple[int, ...]
    out_features: int
    bias: bool
    dtype: torch.dtype

    def tensors(self, seed: int, device: torch.device):
        generator = torch.Generator().manual_seed(seed)
        in_features = self.x_shape[-1]
        dtype = dtype_on(device, self.dtype)
        x = torch.randn(self.x_shape, generator=generator, dtype=dtype)
        weight = torch.randn(self.out_features, in_features, generator=generator, dtype=dtype)
        bias = torch.randn(self.out_features, generator=generator, dtype=dtype) if self.bias else None
        return x.to(device), weight.to(device), None if bias is None else bias.to(device)


def _describe_case(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> str:
    dtype = str(x.dtype).removeprefix("torch.")
    return f"x {_shape(x)}, weight {_shape(weight)}, bias {_shape(bias)}, {dtype} on {x.device}"


# The core cases: 2-D input with a bias. The edge cases: other input ranks and no bias.
_VISIBLE_CASES = {
    CORE: [
        _Case((2, 3), 4, True, torch.float32),
        _Case((4, 4), 4, True, torch.float32),  # square weight: catches a missing transpose
        _Case((3, 2), 3, True, torch.float32),  # batch == out_features: catches bias on the wrong axis
    ],
    EDGE: [
        _Case((3,), 2, True, torch.float32),  # 1-D input
        _Case((2, 5, 3), 4, False, torch.float32),  # 3-D input, no bias
        _Case((4, 3), 2, False, torch.float32),  # 2-D input, no bias
    ],
}


def _hidden_cases(seed: int, part: str = CORE) -> list[_Case]:
    generator = torch.Generator().manual_seed(seed)

    def draw(low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (1,), generator=generator))

    cases = []
    if part == CORE:
        for dtype in (torch.float32, torch.float64):
            for _ in range(3):
                cases.append(_Case((draw(1, 6), draw(1, 9)), draw(1, 9), True, dtype))
        size = draw(2, 7)
        cases.append(_Case((size, size), size, True, torch.float64))  # square, random size
        return cases
    for dtype in (torch.float32, torch.float64):
        for leading in (0, 1, 2, 3):
            in_features, out_features = draw(1, 9), draw(1, 9)
            shape = tuple(draw(1, 5) for _ in range(leading)) + (in_features,)
            cases.append(_Case(shape, out_features, bool(draw(0, 1)), dtype))
    cases.append(_Case((0, draw(1, 6)), draw(1, 6), True, torch.float32))  # empty batch
    return cases


class _CallRecorder(TorchFunctionMode):
    """Notes which torch functions run inside it (to see whether F.linear was used)."""

    def __init__(self) -> None:
        super().__init__()
        self.used_linear = False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.linear:
            self.used_linear = True
        return func(*args, **(kwargs or {}))


_IN_PLACE = (
    "input modified in place (an operation ending in _ such as add_ or unsqueeze_, `+=` on x, "
    "or assigning into x[...])"
)


def _forward_hints(x: torch.Tensor, weight: torch.Tensor):
    def hints(exc: BaseException):
        text = str(exc)
        if "in-place operation" in text:
            return (_IN_PLACE, "compute a new tensor: `x @ weight.T + bias` leaves x untouched")
        if x.dim() != 2 and any(word in text for word in ("2D", "matrix", "must be a matrix", "2-D")):
            return (
                "only 2-D input works",
                "use `x @ weight.T` (torch.matmul), which broadcasts over any leading dimensions, "
                "instead of torch.mm or indexing x[:, ...]",
            )
        if "cannot be multiplied" in text or "size mismatch" in text:
            return (
                "weight not transposed: weight has shape (out_features, in_features)",
                "multiply by the transpose: `x @ weight.T`",
            )
        if "must match the size of tensor" in text:
            return (
                "bias added on the wrong axis",
                "add bias (out_features,) to the last dimension: `... + bias`",
            )
        return None

    return hints


def _forward_diagnosis(ex: Exercise, x, weight, bias):
    def diagnose(actual: torch.Tensor):
        with torch.no_grad():
            candidates = []
            if weight.shape[0] == weight.shape[1]:
                wrong = x @ weight
                candidates.append(
                    (
                        "weight not transposed",
                        wrong if bias is None else wrong + bias,
                        "weight has shape (out_features, in_features): use `x @ weight.T`",
                    )
                )
            product = x @ weight.T
            if bias is not None:
                candidates.append(
                    ("bias ignored", product, "add the bias when it is given: `x @ weight.T + bias`")
                )
                if product.dim() >= 1 and product.shape[0] == bias.shape[0]:
                    shaped = bias.reshape((-1,) + (1,) * (product.dim() - 1))
                    candidates.append(
                        (
                            "bias added on the wrong axis (along the batch, not the features)",
                            product + shaped,
                            "add bias to the last dimension: `x @ weight.T + bias`",
                        )
                    )
                candidates.append(("bias added twice", product + 2 * bias, "add the bias once"))
        found = ex.first_match(actual, candidates)
        if found is not None:
            return found
        if x.dim() != 2:
            return (
                "only 2-D input handled correctly",
                "`x @ weight.T + bias` works for x of shape (in,), (N, in) and (N, M, in) alike",
            )
        return None

    return diagnose


def check_linear_forward(linear_forward, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Does ``linear_forward(x, weight, bias)`` compute ``F.linear`` with gradients, without changing its
    inputs and without calling ``F.linear`` or ``nn.Linear``? Core: 2-D input with a bias; ``part="edge"``:
    1-D and 3-D input, no bias (hidden: any rank, empty batch)."""
    __tracebackhide__ = True
    cases = _hidden_cases(seed, part) if hidden else _VISIBLE_CASES[part]
    with Exercise("linear_forward") as ex:
        for device in ex.devices:
            for index, case in enumerate(cases):
                x, weight, bias = case.tensors(seed * 1000 + index, device)
                label = _describe_case(x, weight, bias)
                hints = _forward_hints(x, weight)
                # First with plain tensors: the values, and that the inputs come back untouched.
                before = [(t, t.clone(), t._version) for t in (x, weight, bias) if t is not None]
                recorder = _CallRecorder()
                with recorder:
                    y = ex.call(linear_forward, x, weight, bias, case=label, hints=hints)
                if recorder.used_linear:
                    ex.fail(
                        "your code calls torch.nn.functional.linear (or an nn.Linear layer)",
                        case=label,
                        fix="compute it yourself from x, weight and bias with `@` and `+`",
                    )
                for tensor, copy, version in before:
                    if tensor._version != version or not _equal(tensor, copy):
                        ex.fail(
                            "your code changed its input tensors",
                            case=label,
                            mistake=_IN_PLACE,
                            fix="compute a new tensor: `x @ weight.T + bias` leaves x untouched",
                        )
                expected = F.linear(x, weight, bias)
                ex.assert_close(
                    y, expected, "the output", case=label, diagnose=_forward_diagnosis(ex, x, weight, bias)
                )
                # Then with inputs that require grad: gradients must reach all three.
                for tensor in (x, weight, bias):
                    if tensor is not None:
                        tensor.requires_grad_(True)
                y = ex.expect_tensor(
                    ex.call(linear_forward, x, weight, bias, case=label, hints=hints),
                    "the output",
                    case=label,
                )
                expected = F.linear(x, weight, bias)
                if y.numel() == 0:
                    continue
                if not y.requires_grad:
                    ex.fail(
                        "the output does not require grad although x, weight and bias do",
                        case=label,
                        mistake="the computation left autograd (torch.no_grad(), .detach(), .data or numpy)",
                        fix="compute with torch operations on the tensors you were given",
                    )
                grad_output = torch.randn(
                    y.shape, generator=torch.Generator().manual_seed(seed + index), dtype=y.dtype
                ).to(device)
                inputs = [t for t in (x, weight, bias) if t is not None]
                grads = torch.autograd.grad(y, inputs, grad_output, allow_unused=True)
                expected_grads = torch.autograd.grad(expected, inputs, grad_output)
                names = ("x", "weight", "bias")[: len(inputs)]
                for name, grad, expected_grad in zip(names, grads, expected_grads, strict=True):
                    if grad is None:
                        ex.fail(
                            f"no gradient reaches {name}",
                            case=label,
                            fix=f"use {name} itself in the computation (not a detached copy)",
                        )
                    ex.assert_close(grad, expected_grad, f"the gradient with respect to {name}", case=label)


def _parameter_problem(ex: Exercise, layer: nn.Linear, name: str, given: torch.Tensor, label: str) -> None:
    value = layer._parameters.get(name) if _type(layer._parameters) is dict else None
    attribute = getattr(layer, name, None)
    if value is None or _type(value) is not nn.Parameter or attribute is not value:
        ex.fail(
            f"layer.{name} is not a registered nn.Parameter (got {_type(attribute).__name__})",
            case=label,
            mistake="plain tensor assigned instead of nn.Parameter",
            fix=f"wrap it: `layer.{name} = nn.Parameter(tensor.clone())`, or copy into the existing "
            f"parameter: `with torch.no_grad(): layer.{name}.copy_(tensor)`",
        )
    if tuple(value.shape) != tuple(given.shape):
        ex.fail(
            f"layer.{name} has shape {tuple(value.shape)}, expected {tuple(given.shape)}",
            case=label,
            mistake="in/out swapped" if name == "weight" else None,
            fix="nn.Linear(in_features, out_features) stores weight as (out_features, in_features)",
        )
    if value.dtype != given.dtype or value.device != given.device:
        ex.fail(
            f"layer.{name} is {value.dtype} on {value.device}, expected {given.dtype} on {given.device} "
            "like the tensor given",
            case=label,
            fix="create the layer with dtype=weight.dtype, device=weight.device (or call .to() on it)",
        )
    if not value.requires_grad:
        ex.fail(
            f"layer.{name} does not require grad",
            case=label,
            fix="parameters of a fresh layer train: keep requires_grad=True",
        )
    if given.device.type == "meta":
        ex.passed()
        return
    if value.untyped_storage().data_ptr() == given.untyped_storage().data_ptr():
        ex.fail(
            f"layer.{name} shares memory with the tensor you were given",
            case=label,
            mistake="the layer aliases the caller's tensors (training the layer would change them)",
            fix=f"store a copy: `nn.Parameter({name}.detach().clone())` or copy_ into the layer's own",
        )
    if not _equal(value.detach(), given.detach()):
        ex.fail(
            f"layer.{name} does not hold the values given",
            case=label,
            fix=f"copy the given {name} into the layer",
        )
    ex.passed()


def _make_linear_hints(exc: BaseException):
    text = str(exc)
    if "cannot assign" in text and "parameter" in text:
        return (
            "plain tensor assigned instead of nn.Parameter",
            "assign nn.Parameter(tensor.clone()), or copy into the existing parameter "
            "inside `with torch.no_grad():`",
        )
    if "must match the size" in text or "size mismatch" in text or "shape" in text:
        return (
            "in/out swapped: nn.Linear(in_features, out_features) stores weight as "
            "(out_features, in_features)",
            "create nn.Linear(weight.shape[1], weight.shape[0])",
        )
    return None


def check_make_linear(make_linear, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Does ``make_linear(weight, bias)`` return an ``nn.Linear`` of the right size holding copies of the
    given values? Core: float32 with a bias; ``part="edge"``: no bias (``bias=None``), float64, and the
    given device (PyTorch's meta device too, so that a layer left on the CPU is caught without a GPU)."""
    __tracebackhide__ = True
    if part == CORE:
        cases = [_Case((2, 3), 4, True, torch.float32), _Case((3, 3), 5, True, torch.float32)]
    else:
        cases = [_Case((2, 5), 2, False, torch.float64), _Case((2, 4), 3, True, torch.float64)]
    if hidden:
        cases = _hidden_cases(seed, part)[::2] + cases
    with Exercise("make_linear") as ex:
        # meta: a device check even on a CPU-only machine
        devices = list(ex.devices) + ([torch.device("meta")] if part == EDGE else [])
        for device in devices:
            for index, case in enumerate(cases):
                _, weight, bias = case.tensors(seed * 1000 + index, device)
                weight.requires_grad_(True)  # as if taken from another layer
                label = f"weight {_shape(weight)}, bias {_shape(bias)}, {weight.dtype} on {device}"
                snapshot = [(t, t.detach().clone()) for t in (weight, bias) if t is not None]

                layer = ex.call(make_linear, weight, bias, case=label, hints=_make_linear_hints)
                if _type(layer) is not nn.Linear:
                    ex.fail(
                        f"expected an nn.Linear, got {_type(layer).__name__}",
                        case=label,
                        fix="create the layer with nn.Linear(in_features, out_features, bias=...)",
                    )
                out_features, in_features = weight.shape
                got = (layer.in_features, layer.out_features)
                if _type(got[0]) is not int or _type(got[1]) is not int or got != (in_features, out_features):
                    swapped = got == (out_features, in_features)
                    ex.fail(
                        f"in_features, out_features = {got}, expected {(in_features, out_features)} "
                        "(weight has shape (out_features, in_features))",
                        case=label,
                        mistake="in/out swapped" if swapped else None,
                        fix="nn.Linear(weight.shape[1], weight.shape[0])",
                    )
                _parameter_problem(ex, layer, "weight", weight, label)
                if bias is None:
                    if layer.bias is not None or "bias" not in layer._parameters:
                        ex.fail(
                            "the layer has a bias although bias=None was given",
                            case=label,
                            mistake="bias=None ignored",
                            fix="pass bias=False to nn.Linear when bias is None",
                        )
                else:
                    _parameter_problem(ex, layer, "bias", bias, label)
                for tensor, copy in snapshot:
                    if device.type != "meta" and not _equal(tensor.detach(), copy):
                        ex.fail(
                            "make_linear changed the tensors it was given",
                            case=label,
                            fix="copy from them; never write into them",
                        )
                if device.type != "meta":
                    x = torch.randn(
                        3, in_features, generator=torch.Generator().manual_seed(index), dtype=weight.dtype
                    ).to(device)
                    ex.assert_close(
                        ex.call(layer, x, case=label), F.linear(x, weight, bias), "layer(x)", case=label
                    )


def check_linear_param_count(linear_param_count, *, hidden: bool = False, seed: int = 0) -> None:
    """Does ``linear_param_count(in_features, out_features, bias)`` count what ``nn.Linear`` holds?"""
    __tracebackhide__ = True
    cases = [(3, 4, True), (3, 4, False), (1, 1, True), (784, 10, True), (10, 784, False)]
    if hidden:
        generator = torch.Generator().manual_seed(seed)
        for _ in range(6):
            in_f, out_f = (int(v) for v in torch.randint(1, 5000, (2,), generator=generator))
            cases.append((in_f, out_f, bool(torch.randint(0, 2, (1,), generator=generator))))
    with Exercise("linear_param_count") as ex:
        for in_features, out_features, bias in cases:
            label = f"in_features={in_features}, out_features={out_features}, bias={bias}"
            reference = nn.Linear(in_features, out_features, bias=bias, device="meta")
            expected = sum(p.numel() for p in reference.parameters())
            got = ex.expect_int(
                ex.call(linear_param_count, in_features, out_features, bias, case=label),
                "the count",
                case=label,
            )
            if got == expected:
                ex.passed()
                continue
            weights = in_features * out_features
            known = {
                weights: ("bias forgotten" if bias else None, "add out_features bias entries when bias=True"),
                weights + in_features: (
                    "bias miscounted: one bias entry per input instead of per output",
                    "the bias has out_features entries",
                ),
                weights + out_features: (
                    "bias counted although bias=False",
                    "count the bias only when bias is True",
                ),
                in_features + out_features: (
                    "weights added instead of multiplied",
                    "the weight is a matrix of out_features * in_features entries",
                ),
            }
            mistake, fix = known.get(got, (None, "weight: out_features * in_features; bias: out_features"))
            ex.fail(f"returned {got}, expected {expected}", case=label, mistake=mistake, fix=fix)


protect_module(__name__)
