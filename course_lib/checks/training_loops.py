"""Checks for notebook 09_training_loops: ``train_one_epoch``, ``evaluate`` and ``classification_metrics``.

The epoch functions are run on a small network wrapped in a probe that records, at every forward pass,
the model's mode, whether gradients were tracked, and a token that lives exactly as long as that pass's
autograd graph; the loader records every batch it yields; and a ``TorchFunctionMode`` records which
batch tensors went through ``.to(device)``. Results are compared with a reference loop run on a deep copy
of the same model (and with scikit-learn for the metrics); known mistakes are recognised by simulating
them. ``hidden=True`` adds random sizes, batch sizes, losses, optimizers and float64.
"""

from __future__ import annotations

import copy
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.data import DataLoader, TensorDataset

from course_lib.checks._core import Exercise, describe, seeded, tolerances
from course_lib.checks._integrity import ORIGINALS, protect_module

__all__ = ["check_classification_metrics", "check_evaluate", "check_train_one_epoch"]

_equal = ORIGINALS["equal"]
_type = ORIGINALS["type"]
_isinstance = ORIGINALS["isinstance"]


# -- recording what the student's loop does --------------------------------------------------------


class _Record:
    """What one call of the student's function did, filled in by the loader, the probe and the mode."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.passes: list[list[tuple[torch.Tensor, ...]]] = []  # batches yielded, per pass over the loader
        self.batch_tensors: dict[int, torch.Tensor] = {}  # id -> every tensor the loader yielded
        self.derived: dict[int, tuple[weakref.ref, tuple[torch.Tensor, ...]]] = {}  # views/casts of them
        self.moved: set[int] = set()  # ids of yielded tensors that went through a move to `device`
        self.forwards: list[tuple[bool, bool, int]] = []  # (training, grad enabled, pass index)
        self.tokens: list[weakref.ref] = []  # one per forward pass with autograd: alive with its graph
        self.kept_graphs = 0  # graphs of batches j-2 and older still alive at the last forward pass
        self.older_graphs = 0
        self.in_model = False


class _Token:
    """An object that lives exactly as long as the autograd node holding it (see _GraphMarker)."""

    __slots__ = ("__weakref__",)


class _GraphMarker(torch.autograd.Function):
    """Identity whose backward node holds a token: the token dies when that forward pass's graph is freed."""

    @staticmethod
    def forward(ctx, output: torch.Tensor, token: _Token) -> torch.Tensor:
        ctx.token = token
        return output.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


class _Probe(nn.Module):
    """Wraps ``net``; each forward pass records the mode, grad mode and pass, and marks its graph."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.record: _Record | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        record = self.record
        if record is None:
            return self.net(x)
        record.forwards.append((self.training, torch.is_grad_enabled(), len(record.passes) - 1))
        record.in_model = True
        try:
            output = self.net(x)
        finally:
            record.in_model = False
        if output.requires_grad:
            # How many graphs of batches at least two forward passes old are still alive? In a correct
            # loop none: `loss` and the output are rebound at the next batch and the graph is freed.
            older = record.tokens[:-1]
            record.older_graphs = len(older)
            record.kept_graphs = sum(1 for ref in older if ref() is not None)
            token = _Token()
            record.tokens.append(weakref.ref(token))
            output = _GraphMarker.apply(output, token)
        return output


class _Loader(DataLoader):
    """An ordered DataLoader that records every batch it yields (a real DataLoader: `len(loader)`,
    `loader.dataset` and `loader.batch_size` work as usual)."""

    def __init__(self, dataset: TensorDataset, batch_size: int) -> None:
        super().__init__(dataset, batch_size=batch_size, shuffle=False)
        self.record: _Record | None = None

    def __iter__(self):
        record = self.record
        if record is None:
            yield from super().__iter__()
            return
        batches: list[tuple[torch.Tensor, ...]] = []
        record.passes.append(batches)
        for batch in super().__iter__():
            batches.append(tuple(batch))
            for tensor in batch:
                record.batch_tensors[id(tensor)] = tensor
            yield batch


def _as_device(value: Any) -> torch.device | None:
    if _type(value) is torch.Tensor or _type(value) is nn.Parameter:
        return value.device
    if _type(value) in (str, int, torch.device):
        try:
            return torch.device(value)
        except (RuntimeError, TypeError, ValueError):
            return None
    return None


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


class _DeviceMoves(TorchFunctionMode):
    """Records which tensors yielded by the loader are moved to ``record.device``.

    A tensor counts as moved when it (or a view or cast of it, such as ``x.view(len(x), -1)``) is the
    tensor of ``Tensor.to(device)`` (also ``to(device=...)``, ``to(other_tensor)`` on that device and
    ``to(device, dtype)``), ``Tensor.cuda()`` or ``Tensor.cpu()`` on a matching device, or
    ``torch.as_tensor(t, device=device)``. On a CPU-only machine ``x.to("cpu")`` returns ``x`` itself,
    so the values cannot tell a moved batch from one left where it was; this record can.
    """

    _MOVES = (torch.Tensor.to, torch.Tensor.cuda, torch.Tensor.cpu, torch.as_tensor)

    def __init__(self, record: _Record) -> None:
        super().__init__()
        self.record = record

    def _roots(self, tensor: Any) -> tuple[torch.Tensor, ...]:
        record = self.record
        if _type(tensor) is not torch.Tensor:
            return ()
        if record.batch_tensors.get(id(tensor)) is tensor:
            return (tensor,)
        entry = record.derived.get(id(tensor))
        if entry is not None and entry[0]() is tensor:
            return entry[1]
        return ()

    def _moves_to_device(self, func, args, kwargs) -> bool:
        device = self.record.device
        if func is torch.Tensor.cpu:
            return device.type == "cpu"
        if func is torch.Tensor.cuda:
            target = _as_device(args[1] if len(args) > 1 else kwargs.get("device", "cuda"))
            target = torch.device("cuda") if target is not None and target.type != "cuda" else target
            return target is not None and _same_device(target, device)
        candidates = list(args[1:]) + [kwargs.get("device")]
        return any((d := _as_device(c)) is not None and _same_device(d, device) for c in candidates)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if self.record.in_model or not args:
            return result
        roots = self._roots(args[0])
        if roots:
            if any(func is move for move in self._MOVES) and self._moves_to_device(func, args, kwargs):
                self.record.moved.update(id(root) for root in roots)
            elif _type(result) is torch.Tensor and result is not args[0]:
                self.record.derived[id(result)] = (weakref.ref(result), roots)
        return result


def _unmoved_batches(record: _Record) -> int:
    """How many batches, in the passes over the loader during which the model ran, have a tensor that
    never went through a move to the device."""
    used = {index for _, _, index in record.forwards}
    return sum(
        1
        for index in used
        if 0 <= index < len(record.passes)
        for batch in record.passes[index]
        if any(id(tensor) not in record.moved for tensor in batch)
    )


# -- the cases -------------------------------------------------------------------------------------------


@dataclass
class _Case:
    """A dataset of ``n`` samples in batches of ``batch_size`` for a small network."""

    n: int
    batch_size: int
    in_features: int
    hidden: int
    out_features: int
    task: str  # "classification" (CrossEntropyLoss) or "regression" (MSELoss)
    dtype: torch.dtype
    optimizer: str = "sgd"  # "sgd", "momentum" or "adam"

    def label(self, device: torch.device, extra: str = "") -> str:
        sizes = [self.batch_size] * (self.n // self.batch_size) + (
            [self.n % self.batch_size] if self.n % self.batch_size else []
        )
        loss = "CrossEntropyLoss" if self.task == "classification" else "MSELoss"
        dtype = str(self.dtype).removeprefix("torch.")
        text = f"{self.n} samples in batches of {sizes}, {loss}, {dtype} on {device}"
        return f"{text}, {extra}" if extra else text

    def dataset(self, generator: torch.Generator) -> TensorDataset:
        x = torch.randn(self.n, self.in_features, generator=generator, dtype=self.dtype)
        last = self.n % self.batch_size or self.batch_size
        if self.task == "classification":
            y = torch.randint(0, self.out_features, (self.n,), generator=generator)
            x[-last:] *= 3.0  # a harder last batch: its mean loss differs from the others'
        else:
            y = torch.randn(self.n, self.out_features, generator=generator, dtype=self.dtype)
            y[-last:] *= 4.0
        return TensorDataset(x, y)

    def loss_fn(self) -> nn.Module:
        return nn.CrossEntropyLoss() if self.task == "classification" else nn.MSELoss()

    def make_optimizer(self, parameters) -> torch.optim.Optimizer:
        if self.optimizer == "adam":
            return torch.optim.Adam(parameters, lr=0.05)
        if self.optimizer == "momentum":
            return torch.optim.SGD(parameters, lr=0.1, momentum=0.9)
        return torch.optim.SGD(parameters, lr=0.2)


def _build(
    case: _Case, seed: int, layers: Callable[[_Case], list[nn.Module]], device: torch.device
) -> _Probe:
    with seeded(seed):  # our own initialisation, without moving the notebook's random generator
        net = nn.Sequential(*layers(case))
    return _Probe(net.to(device=device, dtype=case.dtype))


def _train_layers(case: _Case) -> list[nn.Module]:
    return [nn.Linear(case.in_features, case.hidden), nn.Tanh(), nn.Linear(case.hidden, case.out_features)]


def _eval_layers(case: _Case) -> list[nn.Module]:
    norm = nn.BatchNorm1d(case.hidden)
    with torch.no_grad():  # running statistics far from a batch's own, so train mode changes the outputs
        norm.running_mean.uniform_(-1.0, 1.0)
        norm.running_var.uniform_(0.5, 2.0)
    return [
        nn.Linear(case.in_features, case.hidden),
        norm,
        nn.ReLU(),
        nn.Dropout(p=0.5),
        nn.Linear(case.hidden, case.out_features),
    ]


def _on(batch: list[torch.Tensor], device: torch.device) -> tuple[torch.Tensor, ...]:
    return tuple(t.to(device) for t in batch)


def _reference_epoch(net, batches, loss_fn, optimizer, *, zero_grad: bool = True) -> list[tuple[float, int]]:
    """A correct epoch (or, with zero_grad=False, the classic mistake); returns (batch mean loss, size)."""
    net.train()
    losses = []
    for x, y in batches:
        if zero_grad:
            optimizer.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        optimizer.step()
        losses.append((loss.item(), len(x)))
    return losses


def _float_close(actual: float, expected: float, dtype: torch.dtype) -> bool:
    rtol, atol = tolerances(dtype)
    return math.isclose(actual, expected, rel_tol=max(rtol, 1e-6), abs_tol=max(atol, 1e-6))


def _loss_diagnosis(value: float, losses: list[tuple[float, int]], dtype: torch.dtype, loader_len: int):
    """Name the averaging mistake whose result equals ``value``, from the batch losses and sizes."""
    count = sum(size for _, size in losses)
    batch_size = max(size for _, size in losses)
    total = sum(loss * size for loss, size in losses)
    candidates = [
        (
            "mean of batch means: the smaller last batch counts as much as a full one",
            sum(loss for loss, _ in losses) / len(losses),
            "add `loss.item() * len(x)` per batch and divide the total by the number of samples",
        ),
        (
            "only the last batch's loss returned",
            losses[-1][0],
            "average over the whole epoch: sum `loss.item() * len(x)` and divide by the number of samples",
        ),
        (
            "sum of the batch means, not divided",
            sum(loss for loss, _ in losses),
            "divide by the number of samples (after weighting each batch by its size)",
        ),
        (
            "sum over samples not divided by the number of samples",
            total,
            "divide the total by the number of samples seen",
        ),
        (
            "divided by len(loader) * batch_size, which overcounts a smaller last batch",
            total / (loader_len * batch_size),
            "divide by the number of samples seen (or len(loader.dataset))",
        ),
    ]
    expected = total / count
    for mistake, wrong, fix in candidates:
        if not _float_close(wrong, expected, dtype) and _float_close(value, wrong, dtype):
            return mistake, fix
    return None, None


_GRAPH_KEPT = "loss tensors accumulated (graph kept) instead of .item()"
_GRAPH_FIX = (
    "add the Python number `loss.item() * len(x)` to the total: summing (or storing) loss tensors keeps "
    "every batch's autograd graph alive and returns a tensor"
)
_NOT_MOVED = "data not moved to the device"
_MOVE_FIX = "move every tensor of the batch before using it: `x, y = x.to(device), y.to(device)`"


def _train_hints(exc: BaseException):
    text = str(exc)
    if "same device" in text or "expected device" in text:
        return _NOT_MOVED, _MOVE_FIX
    if "backward through the graph a second time" in text:
        return _GRAPH_KEPT, _GRAPH_FIX
    if "does not require grad" in text:
        return (
            "the loss was computed under torch.no_grad() (or from detached values)",
            "train with gradients on: no torch.no_grad() in train_one_epoch",
        )
    return None


def _evaluate_hints(exc: BaseException):
    text = str(exc)
    if "same device" in text or "expected device" in text:
        return _NOT_MOVED, _MOVE_FIX
    if "does not require grad" in text:
        return (
            "backward() called in evaluate",
            "evaluation computes no gradients: no loss.backward() and no optimizer in evaluate",
        )
    return None


def _return_float(ex: Exercise, value: Any, what: str, *, case: str, graph_mistake: bool = False) -> float:
    """``value`` must be a Python float; a tensor with a graph is named as the graph-keeping mistake."""
    if value is None:
        ex.fail(f"{what} is None", case=case, fix="did you forget `return`?")
    if _type(value) is torch.Tensor:
        if graph_mistake and value.grad_fn is not None:
            ex.fail(
                f"{what} is a tensor with a grad_fn ({describe(value)})",
                case=case,
                mistake=_GRAPH_KEPT,
                fix=_GRAPH_FIX,
            )
        ex.fail(
            f"{what} should be a Python float, got a {describe(value)}",
            case=case,
            mistake="a tensor returned instead of a Python float",
            fix="accumulate Python numbers with `.item()` (or call `.item()` on the result)",
        )
    return ex.expect_float(value, what, case=case)


# -- train_one_epoch ----------------------------------------------------------------------------------


_TRAIN_VISIBLE = [
    _Case(10, 4, 5, 6, 3, "classification", torch.float32, "sgd"),
    _Case(11, 3, 4, 5, 2, "regression", torch.float32, "momentum"),
    _Case(7, 5, 3, 4, 4, "classification", torch.float64, "adam"),
]


def _random_cases(seed: int, count: int, *, min_last: int = 1) -> list[_Case]:
    generator = torch.Generator().manual_seed(seed)

    def draw(low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (1,), generator=generator))

    cases = []
    for index in range(count):
        batch_size = draw(max(2, min_last + 1), 8)
        n = batch_size * draw(2, 5) + draw(min_last, batch_size - 1)  # a smaller last batch
        if index == count - 1:
            n = batch_size * draw(1, 3)  # and one epoch of full batches only
        task = "classification" if index % 2 == 0 else "regression"
        dtype = torch.float64 if index % 3 == 1 else torch.float32
        optimizer = ("sgd", "momentum", "adam")[draw(0, 2)]
        cases.append(_Case(n, batch_size, draw(1, 6), draw(2, 8), draw(2, 5), task, dtype, optimizer))
    return cases


def check_train_one_epoch(train_one_epoch, *, hidden: bool = False, seed: int = 0) -> None:
    """Does ``train_one_epoch(model, loader, loss_fn, optimizer, device)`` put the model in train mode,
    move every batch to the device, zero the gradients, step once per batch exactly as a reference loop
    does, and return the epoch's mean loss per sample as a Python float without keeping graphs alive?"""
    __tracebackhide__ = True
    cases = list(_TRAIN_VISIBLE) + (_random_cases(seed, 6) if hidden else [])
    with Exercise("train_one_epoch") as ex:
        for device in ex.devices:
            for index, case in enumerate(cases):
                generator = torch.Generator().manual_seed(seed * 1000 + index)
                dataset = case.dataset(generator)
                label = case.label(device, "model in eval mode before the call")
                model = _build(case, seed * 1000 + index, _train_layers, device)
                model.eval()  # train_one_epoch must switch it to train mode itself
                reference = copy.deepcopy(model.net)
                no_zero_grad = copy.deepcopy(model.net)
                initial = [p.detach().clone() for p in model.parameters()]
                loader = _Loader(dataset, case.batch_size)
                loss_fn = case.loss_fn()
                optimizer = case.make_optimizer(model.parameters())

                record = _Record(device)
                model.record = loader.record = record
                with seeded(seed + index), _DeviceMoves(record):
                    result = ex.call(
                        train_one_epoch,
                        model,
                        loader,
                        loss_fn,
                        optimizer,
                        device,
                        case=label,
                        hints=_train_hints,
                    )
                model.record = loader.record = None

                if not record.forwards:
                    ex.fail(
                        "the model was never called",
                        case=label,
                        fix="for each batch from the loader compute `loss_fn(model(x), y)`",
                    )
                if not all(training for training, _, _ in record.forwards):
                    ex.fail(
                        "the model was in eval mode during the forward passes",
                        case=label,
                        mistake="model left in eval mode (dropout and batch norm behave as in evaluation)",
                        fix="call `model.train()` at the start of train_one_epoch",
                    )
                if not all(grad for _, grad, _ in record.forwards):
                    ex.fail(
                        "the forward passes ran with gradients switched off",
                        case=label,
                        mistake="torch.no_grad() (or inference_mode) around the training forward pass",
                        fix="only evaluation runs under torch.no_grad()",
                    )
                value = _return_float(ex, result, "the returned loss", case=label, graph_mistake=True)
                if record.older_graphs >= 1 and 2 * record.kept_graphs > record.older_graphs:
                    ex.fail(
                        f"when the last batch ran, the autograd graphs of {record.kept_graphs} of the "
                        f"{record.older_graphs} batches before the previous one were still alive",
                        case=label,
                        mistake=_GRAPH_KEPT,
                        fix=_GRAPH_FIX,
                    )
                ex.passed()
                unmoved = _unmoved_batches(record)
                if unmoved:
                    ex.fail(
                        f"{unmoved} batch(es) from the loader were used without `.to(device)` "
                        f"(device={device})",
                        case=label,
                        mistake=_NOT_MOVED,
                        fix=_MOVE_FIX,
                    )
                ex.passed()

                batches = [_on(batch, device) for batch in DataLoader(dataset, batch_size=case.batch_size)]
                losses = _reference_epoch(
                    reference, batches, loss_fn, case.make_optimizer(reference.parameters())
                )
                _reference_epoch(
                    no_zero_grad,
                    batches,
                    loss_fn,
                    case.make_optimizer(no_zero_grad.parameters()),
                    zero_grad=False,
                )
                expected_params = list(reference.parameters())
                simulated = [
                    (
                        "no zero_grad: gradients of earlier batches were added to each batch's",
                        list(no_zero_grad.parameters()),
                        "call `optimizer.zero_grad()` once per batch, before `loss.backward()`",
                    ),
                    (
                        "optimizer.step() not called, called before loss.backward(), or gradients zeroed "
                        "between backward() and step()",
                        initial,
                        "per batch: zero_grad(), forward, loss, loss.backward(), then optimizer.step()",
                    ),
                ]

                def diagnose(_actual, simulated=simulated, model=model):
                    for mistake, params, fix in simulated:
                        if all(ex.is_close(p, q) for p, q in zip(model.parameters(), params, strict=True)):
                            return mistake, fix
                    return None

                for (name, parameter), expected in zip(
                    model.named_parameters(), expected_params, strict=True
                ):
                    ex.assert_close(
                        parameter.detach(),
                        expected.detach(),
                        f"parameter {name.removeprefix('net.')} after the epoch",
                        case=label,
                        diagnose=diagnose,
                    )

                expected_value = sum(loss * size for loss, size in losses) / sum(size for _, size in losses)
                if not _float_close(value, expected_value, case.dtype):
                    mistake, fix = _loss_diagnosis(value, losses, case.dtype, len(loader))
                    ex.fail(
                        f"returned {value:.6g}, expected the mean loss per sample over the epoch, "
                        f"{expected_value:.6g}",
                        case=label,
                        mistake=mistake,
                        fix=fix
                        or "sum `loss.item() * len(x)` over the batches and divide by the number of samples",
                    )
                ex.passed()


# -- evaluate ----------------------------------------------------------------------------------------------


_EVAL_VISIBLE = [
    (_Case(11, 4, 5, 8, 3, "classification", torch.float32), "train"),
    (_Case(14, 5, 4, 6, 4, "classification", torch.float32), "eval"),
    (_Case(9, 3, 3, 5, 2, "classification", torch.float64), "train"),
]


def _modes(model: nn.Module) -> list[bool]:
    return [module.training for module in model.modules()]


def _describe_mode(training: bool) -> str:
    return "train" if training else "eval"


def check_evaluate(evaluate, *, hidden: bool = False, seed: int = 0) -> None:
    """Does ``evaluate(model, loader, loss_fn, device)`` return the mean loss per sample and the accuracy as
    Python floats, running the model in eval mode without gradients, leaving parameters, buffers and
    ``.grad`` untouched and the model in the mode it was in?"""
    __tracebackhide__ = True
    cases = list(_EVAL_VISIBLE)
    if hidden:
        for index, case in enumerate(_random_cases(seed, 6, min_last=2)):
            case.task = "classification"
            cases.append((case, "train" if index % 2 == 0 else "eval"))
    with Exercise("evaluate") as ex:
        for device in ex.devices:
            for index, (case, start) in enumerate(cases):
                generator = torch.Generator().manual_seed(seed * 1000 + index)
                dataset = case.dataset(generator)
                label = case.label(device, f"model in {start} mode before the call")
                model = _build(case, seed * 1000 + index, _eval_layers, device)
                model.train(start == "train")
                for parameter in model.parameters():
                    parameter.grad = torch.randn(
                        parameter.shape, generator=generator, dtype=parameter.dtype
                    ).to(device)
                modes = _modes(model)
                state = {name: t.detach().clone() for name, t in model.state_dict().items()}
                grads = [p.grad.clone() for p in model.parameters()]
                reference = copy.deepcopy(model.net).eval()
                loader = _Loader(dataset, case.batch_size)
                loss_fn = case.loss_fn()

                record = _Record(device)
                model.record = loader.record = record
                with seeded(seed + index), _DeviceMoves(record):
                    result = ex.call(
                        evaluate, model, loader, loss_fn, device, case=label, hints=_evaluate_hints
                    )
                model.record = loader.record = None

                if not _isinstance(result, dict):
                    ex.fail(
                        f"expected a dict {{'loss': float, 'accuracy': float}}, got {describe(result)}",
                        case=label,
                        fix="return {'loss': mean_loss, 'accuracy': fraction_correct}",
                    )
                missing = [key for key in ("loss", "accuracy") if key not in dict.keys(result)]
                if missing:
                    ex.fail(
                        f"the dict has no key {missing[0]!r} (keys: {sorted(map(str, dict.keys(result)))})",
                        case=label,
                        fix="return {'loss': mean_loss, 'accuracy': fraction_correct}",
                    )
                loss = _return_float(ex, dict.__getitem__(result, "loss"), "result['loss']", case=label)
                accuracy = _return_float(
                    ex, dict.__getitem__(result, "accuracy"), "result['accuracy']", case=label
                )
                if not record.forwards:
                    ex.fail("the model was never called", case=label, fix="compute model(x) for every batch")
                if any(training for training, _, _ in record.forwards):
                    ex.fail(
                        "the model was in training mode during evaluation",
                        case=label,
                        mistake="dropout left active: model.eval() not called (dropout zeroes random "
                        "activations and batch norm uses each batch's own statistics)",
                        fix="call `model.eval()` before the loop",
                    )
                if any(grad for _, grad, _ in record.forwards):
                    ex.fail(
                        "the forward passes built autograd graphs",
                        case=label,
                        mistake="gradients tracked during evaluation (no torch.no_grad())",
                        fix="run the loop inside `with torch.no_grad():` (or `torch.inference_mode()`)",
                    )
                if _modes(model) != modes:
                    ex.fail(
                        f"the model was in {_describe_mode(modes[0])} mode before evaluate and is in "
                        f"{_describe_mode(model.training)} mode after",
                        case=label,
                        mistake="mode not restored",
                        fix="remember `was_training = model.training` first and call "
                        "`model.train(was_training)` at the end",
                    )
                ex.passed(4)
                after = model.state_dict()
                for name, before in state.items():
                    if not _equal(after[name].detach(), before):
                        ex.fail(
                            f"evaluate changed the model's {name.removeprefix('net.')}",
                            case=label,
                            fix="evaluation reads the model; it never trains or updates it",
                        )
                for (name, parameter), before in zip(model.named_parameters(), grads, strict=True):
                    if parameter.grad is None or not _equal(parameter.grad, before):
                        ex.fail(
                            f"evaluate changed {name.removeprefix('net.')}.grad",
                            case=label,
                            fix="no backward() and no zero_grad() in evaluate: it must not touch .grad",
                        )
                unmoved = _unmoved_batches(record)
                if unmoved:
                    ex.fail(
                        f"{unmoved} batch(es) from the loader were used without `.to(device)`",
                        case=label,
                        mistake=_NOT_MOVED,
                        fix=_MOVE_FIX,
                    )
                ex.passed(3)

                x, y = dataset.tensors
                with torch.no_grad():
                    logits = reference(x.to(device))
                    y = y.to(device)
                    batch_losses = [
                        (
                            loss_fn(logits[i : i + case.batch_size], y[i : i + case.batch_size]).item(),
                            len(y[i : i + case.batch_size]),
                        )
                        for i in range(0, case.n, case.batch_size)
                    ]
                    hits = logits.argmax(dim=1) == y
                expected_loss = sum(b * s for b, s in batch_losses) / case.n
                if not _float_close(loss, expected_loss, case.dtype):
                    mistake, fix = _loss_diagnosis(loss, batch_losses, case.dtype, len(loader))
                    ex.fail(
                        f"result['loss'] is {loss:.6g}, expected the loss per sample {expected_loss:.6g}",
                        case=label,
                        mistake=mistake,
                        fix=fix
                        or "sum `loss.item() * len(x)` over the batches and divide by the number of samples",
                    )
                correct = int(hits.sum())
                expected_accuracy = correct / case.n
                if not math.isclose(accuracy, expected_accuracy, abs_tol=1e-6):
                    by_batch = [
                        float(hits[i : i + case.batch_size].double().mean())
                        for i in range(0, case.n, case.batch_size)
                    ]
                    known = [
                        (
                            100 * expected_accuracy,
                            "accuracy given as a percentage",
                            "return a fraction in [0, 1]: correct / total",
                        ),
                        (
                            float(correct),
                            "the number of correct predictions, not divided",
                            "divide by the number of samples",
                        ),
                        (
                            sum(by_batch) / len(by_batch),
                            "mean of batch accuracies: the smaller last batch counts as much as a full one",
                            "count correct predictions over the epoch and divide by the number of samples",
                        ),
                    ]
                    mistake, fix = next(
                        ((m, f) for wrong, m, f in known if math.isclose(accuracy, wrong, abs_tol=1e-6)),
                        (
                            None,
                            "accuracy = (number of samples whose argmax over classes equals the target) / n",
                        ),
                    )
                    ex.fail(
                        f"result['accuracy'] is {accuracy:.6g}, expected {expected_accuracy:.6g}",
                        case=label,
                        mistake=mistake,
                        fix=fix,
                    )
                ex.passed(2)


# -- classification_metrics ------------------------------------------------------------------------------

_KEYS = ("accuracy", "precision", "recall", "f1")
_METRICS_FIX = (
    "per class c: precision TP/(TP+FP), recall TP/(TP+FN), F1 2TP/(2TP+FP+FN), each 0 when its denominator "
    "is 0; then the plain mean over all num_classes classes (scikit-learn's average='macro', zero_division=0)"
)


def _sklearn_metrics(
    preds, targets, num_classes: int, average: str = "macro", labels=None
) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    labels = list(range(num_classes)) if labels is None else labels
    precision, recall, f1, _ = precision_recall_fscore_support(
        targets, preds, labels=labels, average=average, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(targets, preds)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
    }


def _simulated_metrics(logits: torch.Tensor, targets: torch.Tensor, num_classes: int):
    """[(mistake, fix, metrics it would return)] for the known mistakes."""
    import numpy as np

    preds = logits.argmax(dim=1).cpu().numpy()
    truth = targets.cpu().numpy()
    right = _sklearn_metrics(preds, truth, num_classes)
    out = []
    if logits.shape[0] == logits.shape[1]:
        out.append(
            (
                "argmax over the wrong dimension: argmax(dim=0) picks, for each class, the sample with the "
                "highest score",
                "the class of each sample is `logits.argmax(dim=1)` (logits have shape (N, num_classes))",
                _sklearn_metrics(logits.argmax(dim=0).cpu().numpy(), truth, num_classes),
            )
        )
    out.append(
        (
            "micro averaging (precision, recall and F1 pooled over all samples, which equals the accuracy)",
            "macro-average: compute each class's precision, recall and F1, then take the plain mean over "
            "all num_classes classes",
            _sklearn_metrics(preds, truth, num_classes, average="micro"),
        )
    )
    out.append(
        (
            "weighted averaging (each class weighted by its number of samples) instead of macro",
            "take the plain mean over the classes",
            _sklearn_metrics(preds, truth, num_classes, average="weighted"),
        )
    )
    per_class = np.array(
        [
            [((preds == c) & (truth == c)).sum(), (preds == c).sum(), (truth == c).sum()]
            for c in range(num_classes)
        ],
        dtype=np.float64,
    )
    tp, predicted, actual = per_class.T
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = tp / predicted
        recall = tp / actual
        f1 = 2 * tp / (predicted + actual)
        nan_means = {
            "accuracy": right["accuracy"],
            "precision": float(np.nanmean(precision)) if not np.isnan(precision).all() else 0.0,
            "recall": float(np.nanmean(recall)) if not np.isnan(recall).all() else 0.0,
            "f1": float(np.nanmean(f1)) if not np.isnan(f1).all() else 0.0,
        }
    out.append(
        (
            "classes whose precision (or recall) is 0/0 left out of the mean instead of counted as 0",
            "a class never predicted counts precision 0 (absent from targets: recall 0) in the mean over "
            "all num_classes classes",
            nan_means,
        )
    )
    present = sorted(set(truth.tolist()))
    out.append(
        (
            "only the classes present in targets averaged, not all num_classes classes",
            "average over range(num_classes): absent classes count 0",
            _sklearn_metrics(preds, truth, num_classes, labels=present),
        )
    )
    seen = sorted(set(truth.tolist()) | set(preds.tolist()))
    out.append(
        (
            "only the classes present in targets or predictions averaged, not all num_classes classes",
            "average over range(num_classes): classes that never occur count 0",
            _sklearn_metrics(preds, truth, num_classes, labels=seen),
        )
    )
    p, r = right["precision"], right["recall"]
    out.append(
        (
            "f1 computed from the macro precision and recall (2PR / (P + R)) instead of the mean of the "
            "per-class F1 scores",
            "compute F1 for each class, then average: F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)",
            dict(right, f1=2 * p * r / (p + r) if p + r > 0 else 0.0),
        )
    )
    out.append(
        (
            "metrics given as percentages",
            "return fractions in [0, 1]",
            {key: 100 * value for key, value in right.items()},
        )
    )
    return right, out


@dataclass
class _MetricsCase:
    n: int
    num_classes: int
    dtype: torch.dtype
    absent: tuple[int, ...] = ()  # classes that never occur in the targets
    never_predicted: tuple[int, ...] = ()  # classes the logits never favour
    perfect: bool = False
    seed: int | None = None  # a fixed draw, chosen so that every simulated mistake gives other numbers

    def tensors(self, seed: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(seed if self.seed is None else self.seed)
        allowed = torch.tensor([c for c in range(self.num_classes) if c not in self.absent])
        targets = allowed[torch.randint(0, len(allowed), (self.n,), generator=generator)]
        logits = torch.randn(self.n, self.num_classes, generator=generator, dtype=self.dtype)
        logits += 1.5 * F.one_hot(targets, self.num_classes).to(self.dtype)  # better than chance
        if self.perfect:
            logits = 5.0 * F.one_hot(targets, self.num_classes).to(self.dtype) + 0.1 * logits
        for c in self.never_predicted:
            logits[:, c] -= 100.0
        return logits.to(device), targets.to(device)

    def label(self, device: torch.device) -> str:
        dtype = str(self.dtype).removeprefix("torch.")
        parts = [f"logits ({self.n}, {self.num_classes}), {dtype} on {device}"]
        if self.absent:
            parts.append(f"class(es) {list(self.absent)} absent from targets")
        if self.never_predicted:
            parts.append(f"class(es) {list(self.never_predicted)} never predicted")
        if self.perfect:
            parts.append("every prediction right")
        return ", ".join(parts)


_METRICS_VISIBLE = [
    # N == C: argmax over dim 0 has the right shape and wrong values. These two draws are fixed, chosen
    # so that every simulated mistake gives numbers that differ from the right ones and from each other.
    _MetricsCase(5, 5, torch.float32, absent=(4,), never_predicted=(3, 4), seed=0),
    _MetricsCase(16, 4, torch.float32, absent=(3,), never_predicted=(2, 3), seed=0),
    _MetricsCase(20, 3, torch.float32, never_predicted=(1,)),
    _MetricsCase(6, 3, torch.float64, perfect=True),
]


def _metrics_hints(exc: BaseException):
    text = str(exc)
    if any(
        words in text
        for words in ("must match the size", "inconsistent numbers of samples", "shape mismatch")
    ):
        return (
            "argmax over the wrong dimension (predictions must have one entry per sample)",
            "the class of each sample is `logits.argmax(dim=1)`",
        )
    return None


def check_classification_metrics(classification_metrics, *, hidden: bool = False, seed: int = 0) -> None:
    """Does ``classification_metrics(logits, targets, num_classes)`` return accuracy and macro precision,
    recall and F1 over all classes as Python floats, agreeing with scikit-learn (zero_division=0), with no
    NaN for classes never predicted or absent?"""
    __tracebackhide__ = True
    cases = list(_METRICS_VISIBLE)
    if hidden:
        generator = torch.Generator().manual_seed(seed)

        def draw(low: int, high: int) -> int:
            return int(torch.randint(low, high + 1, (1,), generator=generator))

        for index in range(6):
            num_classes = draw(2, 9)
            n = num_classes if index == 0 else draw(2, 60)
            dtype = torch.float64 if index % 2 else torch.float32
            absent = (draw(0, num_classes - 1),) if num_classes > 2 and index % 3 == 0 else ()
            never = tuple(c for c in (draw(0, num_classes - 1),) if c not in absent) if index % 2 == 0 else ()
            cases.append(_MetricsCase(n, num_classes, dtype, absent, never))
    with Exercise("classification_metrics") as ex:
        for device in ex.devices:
            for index, case in enumerate(cases):
                logits, targets = case.tensors(seed * 1000 + index, device)
                label = case.label(device)
                copies = (logits.clone(), targets.clone())
                result = ex.call(
                    classification_metrics,
                    logits,
                    targets,
                    case.num_classes,
                    case=label,
                    hints=_metrics_hints,
                )
                if not _equal(logits, copies[0]) or not _equal(targets, copies[1]):
                    ex.fail(
                        "classification_metrics changed logits or targets",
                        case=label,
                        fix="compute new tensors; do not modify the inputs in place",
                    )
                if not _isinstance(result, dict):
                    ex.fail(
                        f"expected a dict with keys {list(_KEYS)}, got {describe(result)}",
                        case=label,
                        fix="return {'accuracy': ..., 'precision': ..., 'recall': ..., 'f1': ...}",
                    )
                expected, simulated = _simulated_metrics(logits, targets, case.num_classes)
                values = {}
                for key in _KEYS:
                    if key not in dict.keys(result):
                        ex.fail(f"the dict has no key {key!r}", case=label, fix=f"add result[{key!r}]")
                    values[key] = _return_float(
                        ex, dict.__getitem__(result, key), f"result[{key!r}]", case=label
                    )
                for key in _KEYS:
                    value = values[key]
                    if math.isnan(value):
                        ex.fail(
                            f"result[{key!r}] is NaN",
                            case=label,
                            mistake="NaN: a class never predicted (or absent from targets) gives 0 / 0",
                            fix="count that class's precision (recall, F1) as 0, e.g. divide by "
                            "`count.clamp(min=1)`",
                        )
                    if math.isclose(value, expected[key], rel_tol=1e-5, abs_tol=1e-6):
                        ex.passed()
                        continue
                    mistake, fix = None, _METRICS_FIX
                    for name, remedy, wrong in simulated:
                        if math.isclose(value, wrong[key], rel_tol=1e-5, abs_tol=1e-6):
                            mistake, fix = name, remedy
                            break
                    ex.fail(
                        f"result[{key!r}] is {value:.6g}, expected {expected[key]:.6g}",
                        case=label,
                        mistake=mistake,
                        fix=fix,
                    )


protect_module(__name__)
