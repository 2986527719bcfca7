"""Checks for notebook 09_training_loops: ``train_one_epoch``, ``evaluate``, ``predict_proba``, ``fit`` and
``classification_metrics``.

The student's functions run on a small network wrapped in a probe that records, at every forward pass,
the model's mode, whether gradients were tracked, which loader's batch it was, and a token that lives
exactly as long as that pass's autograd graph; the loaders record every batch they yield; and a
``TorchFunctionMode`` records which tensors went through ``.to(device)``, so that a missing move is caught
on a CPU-only machine too. ``fit`` also meets a spy scheduler (when and how often it is stepped), an
optimizer whose step hook sees the gradient it is about to use (clipping), and an SGD whose learning rate
is scripted per epoch, negative to climb the loss, so that the validation loss falls and rises exactly
where a case needs it (best epoch, early stopping). Results are compared with a reference run on a deep
copy of the same model (and with scikit-learn for the metrics); known mistakes are recognised by
simulating them. Each exercise worth 3 points or more has a core part and an edge-case part
(``part="edge"``); ``hidden=True`` adds random sizes, batch sizes, losses, optimizers and float64.
"""

from __future__ import annotations

import copy
import math
import types
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import StepLR
from torch.overrides import TorchFunctionMode
from torch.utils.data import DataLoader, TensorDataset

from course_lib.checks._core import Exercise, describe, seeded, tolerances
from course_lib.checks._integrity import ORIGINALS, protect_module
from course_lib.protocol import CORE, EDGE

__all__ = [
    "check_classification_metrics",
    "check_evaluate",
    "check_fit",
    "check_predict_proba",
    "check_train_one_epoch",
]

_equal = ORIGINALS["equal"]
_type = ORIGINALS["type"]
_isinstance = ORIGINALS["isinstance"]


# -- recording what the student's loop does --------------------------------------------------------


class _Record:
    """What one call of the student's function did, filled in by the loader, the probe and the mode."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.passes: list[list[tuple[torch.Tensor, ...]]] = []  # batches yielded, per pass over a loader
        self.pass_names: list[str] = []  # which loader made each pass ("train", "val", ...)
        self.batch_tensors: dict[int, torch.Tensor] = {}  # id -> every tensor the loader yielded
        self.derived: dict[int, tuple[weakref.ref, tuple[torch.Tensor, ...]]] = {}  # views/casts of them
        self.moved: set[int] = set()  # ids of yielded tensors that went through a move to `device`
        self.forwards: list[tuple[bool, bool, int]] = []  # (training, grad enabled, pass index)
        self.tokens: list[weakref.ref] = []  # one per forward pass with autograd: alive with its graph
        self.kept_graphs = 0  # graphs of batches j-2 and older still alive at the last forward pass
        self.older_graphs = 0
        self.in_model = False
        self.loads: list[bool] = []  # per model.load_state_dict call: did it get the model's own tensors?


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

    def load_state_dict(self, state_dict, *args, **kwargs):
        """Load as usual, noting whether the tensors given are the model's own (a state_dict kept by
        reference, which has followed the training since)."""
        record = self.record
        if record is not None:
            own = {
                t.untyped_storage().data_ptr()
                for t in self.state_dict().values()
                if t.device.type != "meta" and t.numel()
            }
            values = state_dict.values() if hasattr(state_dict, "values") else ()
            record.loads.append(
                any(
                    _type(t) in (torch.Tensor, nn.Parameter)
                    and t.device.type != "meta"
                    and t.numel()
                    and t.untyped_storage().data_ptr() in own
                    for t in values
                )
            )
        return super().load_state_dict(state_dict, *args, **kwargs)

    def __deepcopy__(self, memo):
        # A copy without the record (it would copy every recorded batch), each submodule in its mode.
        clone = _Probe(copy.deepcopy(self.net, memo))
        clone.training = self.training
        return clone


class _Loader(DataLoader):
    """An ordered DataLoader that records every batch it yields (a real DataLoader: `len(loader)`,
    `loader.dataset` and `loader.batch_size` work as usual). With its own generator, iterating it never
    draws from the global random generator (which a model's dropout uses)."""

    def __init__(
        self, dataset: TensorDataset, batch_size: int, name: str = "loader", own_generator: bool = False
    ) -> None:
        generator = torch.Generator().manual_seed(0) if own_generator else None
        super().__init__(dataset, batch_size=batch_size, shuffle=False, generator=generator)
        self.name = name
        self.record: _Record | None = None

    def __iter__(self):
        record = self.record
        if record is None:
            yield from super().__iter__()
            return
        batches: list[tuple[torch.Tensor, ...]] = []
        record.passes.append(batches)
        record.pass_names.append(self.name)
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


# Core: the loop itself (mode, zero_grad, step, the mean per sample with a smaller last batch). Edge
# cases: float64 and Adam, an epoch of full batches only, and what the values cannot show: every batch
# moved to the device, and no batch's autograd graph kept alive.
_TRAIN_VISIBLE = {
    CORE: [
        _Case(10, 4, 5, 6, 3, "classification", torch.float32, "sgd"),
        _Case(11, 3, 4, 5, 2, "regression", torch.float32, "momentum"),
    ],
    EDGE: [
        _Case(7, 5, 3, 4, 4, "classification", torch.float64, "adam"),
        _Case(13, 3, 4, 5, 3, "classification", torch.float32, "sgd"),
        _Case(12, 4, 3, 4, 2, "regression", torch.float32, "sgd"),
    ],
}


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


def check_train_one_epoch(train_one_epoch, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Does ``train_one_epoch(model, loader, loss_fn, optimizer, device)`` put the model in train mode,
    zero the gradients, step once per batch exactly as a reference loop does, and return the epoch's mean
    loss per sample as a Python float? ``part="edge"``: float64, Adam, full batches only, and every batch
    moved to the device without keeping any batch's autograd graph alive."""
    __tracebackhide__ = True
    cases = list(_TRAIN_VISIBLE[part])
    if hidden:
        cases += _random_cases(seed, 5) if part == CORE else _random_cases(seed + 7, 4)[1:]
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
                if part == EDGE and record.older_graphs >= 1 and 2 * record.kept_graphs > record.older_graphs:
                    ex.fail(
                        f"when the last batch ran, the autograd graphs of {record.kept_graphs} of the "
                        f"{record.older_graphs} batches before the previous one were still alive",
                        case=label,
                        mistake=_GRAPH_KEPT,
                        fix=_GRAPH_FIX,
                    )
                ex.passed()
                unmoved = _unmoved_batches(record) if part == EDGE else 0
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


# Core: the values, computed in eval mode without gradients. Edge cases: float64, and the state the
# model is left in (its mode, parameters, buffers and .grad) and every batch moved to the device.
_EVAL_VISIBLE = {
    CORE: [
        (_Case(11, 4, 5, 8, 3, "classification", torch.float32), "train"),
        (_Case(14, 5, 4, 6, 4, "classification", torch.float32), "eval"),
    ],
    EDGE: [
        (_Case(9, 3, 3, 5, 2, "classification", torch.float64), "train"),
        (_Case(10, 4, 4, 6, 3, "classification", torch.float32), "eval"),
    ],
}


def _modes(model: nn.Module) -> list[bool]:
    return [module.training for module in model.modules()]


def _describe_mode(training: bool) -> str:
    return "train" if training else "eval"


def _evaluate_left_alone(ex: Exercise, model, modes, state, grads, record: _Record, label: str) -> None:
    """After evaluate: the model in the mode it was in, its state and .grad untouched, every batch moved."""
    if _modes(model) != modes:
        ex.fail(
            f"the model was in {_describe_mode(modes[0])} mode before evaluate and is in "
            f"{_describe_mode(model.training)} mode after",
            case=label,
            mistake="mode not restored",
            fix="remember `was_training = model.training` first and call `model.train(was_training)` "
            "at the end",
        )
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


def check_evaluate(evaluate, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Does ``evaluate(model, loader, loss_fn, device)`` return the mean loss per sample and the accuracy as
    Python floats, running the model in eval mode without gradients? ``part="edge"``: float64, and the
    model left in the mode it was in with its parameters, buffers and ``.grad`` untouched, every batch
    moved to the device."""
    __tracebackhide__ = True
    cases = list(_EVAL_VISIBLE[part])
    if hidden:
        count = 5 if part == CORE else 4
        for index, case in enumerate(_random_cases(seed, count, min_last=2)):
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
                ex.passed(4)
                if part == EDGE:
                    _evaluate_left_alone(ex, model, modes, state, grads, record, label)

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


# -- predict_proba ----------------------------------------------------------------------------------------


@dataclass
class _ProbaCase:
    """``x (n, in_features)`` for a network with batch norm and dropout, in mode ``start`` before the call:
    "train", "eval", or "mixed" (the model in train mode with its batch norm frozen in eval mode)."""

    n: int
    in_features: int
    hidden: int
    classes: int
    dtype: torch.dtype
    start: str

    def label(self, device: torch.device) -> str:
        dtype = str(self.dtype).removeprefix("torch.")
        mode = {
            "train": "model in train mode",
            "eval": "model in eval mode",
            "mixed": "model in train mode with its BatchNorm1d submodule in eval mode",
        }[self.start]
        return f"x ({self.n}, {self.in_features}), {self.classes} classes, {dtype} on {device}, {mode}"

    def layers(self) -> list[nn.Module]:
        return _eval_layers(
            _Case(self.n, self.n, self.in_features, self.hidden, self.classes, "classification", self.dtype)
        )


# Core: the probabilities themselves, in eval mode without gradients, and the mode restored. Edge cases:
# float64, as many samples as classes, one sample, every submodule's own mode restored (a model in
# train mode with a frozen batch norm), and x moved to the model's device.
_PROBA_VISIBLE = {
    CORE: [
        _ProbaCase(6, 5, 8, 3, torch.float32, "train"),
        _ProbaCase(5, 4, 6, 4, torch.float32, "eval"),
    ],
    EDGE: [
        _ProbaCase(7, 5, 8, 4, torch.float32, "mixed"),
        _ProbaCase(3, 3, 5, 3, torch.float64, "train"),
        _ProbaCase(1, 4, 6, 5, torch.float32, "eval"),
    ],
}

_SOFTMAX_FIX = "return `model(x).softmax(dim=1)`: one probability per class, each row summing to 1"
_PROBA_NOT_MOVED = "x not moved to the model's device"
_PROBA_MOVE_FIX = (
    "move x first: `x = x.to(next(model.parameters()).device)` (a model's device is that of its parameters)"
)


def _proba_hints(exc: BaseException):
    text = str(exc)
    if "same device" in text or "expected device" in text:
        return _PROBA_NOT_MOVED, _PROBA_MOVE_FIX
    if "more than 1 value per channel when training" in text:
        return (
            "model left in train mode (model.eval() not called)",
            "call `model.eval()` before the forward pass, and restore the mode afterwards",
        )
    return None


def _proba_diagnosis(ex: Exercise, logits: torch.Tensor):
    def diagnose(actual: torch.Tensor):
        candidates = [
            (
                "softmax over dim 0 (over the samples): each column sums to 1 instead of each row",
                logits.softmax(dim=0),
            ),
            (
                "log-probabilities returned (log_softmax) instead of probabilities",
                logits.log_softmax(dim=1),
            ),
            (
                "sigmoid instead of softmax: each class scored on its own, the rows do not sum to 1",
                torch.sigmoid(logits),
            ),
            ("the logits returned, without softmax", logits),
        ]
        for mistake, wrong in candidates:
            if ex.is_close(actual.to(wrong.device), wrong):
                return mistake, _SOFTMAX_FIX
        return None

    return diagnose


def _mode_text(model: nn.Module) -> str:
    return ", ".join(
        f"{name or '(model)'}: {_describe_mode(module.training)}" for name, module in model.named_modules()
    )


def check_predict_proba(predict_proba, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Does ``predict_proba(model, x)`` return the softmax over the classes of the model's output in eval
    mode, computed without gradients, and leave the model in the mode it was in? ``part="edge"``: float64,
    one sample, as many samples as classes, every submodule's own mode restored, x moved to the model's
    device (every move is recorded, so a missing one is caught on a CPU too)."""
    __tracebackhide__ = True
    cases = list(_PROBA_VISIBLE[part])
    if hidden:
        generator = torch.Generator().manual_seed(seed)

        def draw(low: int, high: int) -> int:
            return int(torch.randint(low, high + 1, (1,), generator=generator))

        starts = ("train", "eval") if part == CORE else ("mixed", "train", "eval")
        for index in range(5 if part == CORE else 4):
            classes = draw(2, 7)
            n = classes if part == EDGE and index == 1 else draw(2, 12)
            dtype = torch.float64 if (index % 2 if part == CORE else index % 2 == 0) else torch.float32
            cases.append(_ProbaCase(n, draw(1, 6), draw(2, 8), classes, dtype, starts[index % len(starts)]))
    with Exercise("predict_proba") as ex:
        for device in ex.devices:
            for index, case in enumerate(cases):
                label = case.label(device)
                model = _build(case, seed * 1000 + index, _ProbaCase.layers, device)
                model.train(case.start != "eval")
                if case.start == "mixed":
                    model.net[1].eval()
                x = torch.randn(
                    case.n,
                    case.in_features,
                    generator=torch.Generator().manual_seed(seed * 1000 + index),
                    dtype=case.dtype,
                )  # on the CPU, like a batch from a loader: predict_proba moves it
                modes = _modes(model)
                state = {name: t.detach().clone() for name, t in model.state_dict().items()}
                x_before = x.clone()
                reference = copy.deepcopy(model.net).eval()

                record = _Record(device)
                record.batch_tensors[id(x)] = x
                record.passes.append([(x,)])
                model.record = record
                with seeded(seed + index), _DeviceMoves(record):
                    result = ex.call(predict_proba, model, x, case=label, hints=_proba_hints)
                model.record = None

                if not record.forwards:
                    ex.fail("the model was never called", case=label, fix="compute `model(x)`")
                if any(training for training, _, _ in record.forwards):
                    ex.fail(
                        "the model was in training mode during the forward pass",
                        case=label,
                        mistake="dropout left active (train mode): model.eval() not called (dropout zeroes "
                        "random activations and batch norm uses the batch's own statistics)",
                        fix="call `model.eval()` before the forward pass, and restore the mode afterwards",
                    )
                if any(grad for _, grad, _ in record.forwards):
                    ex.fail(
                        "the forward pass built an autograd graph",
                        case=label,
                        mistake="gradients tracked (no torch.no_grad()): predictions need no graph",
                        fix="compute inside `with torch.no_grad():` (or `torch.inference_mode()`)",
                    )
                ex.passed(3)
                if (
                    _type(result) is torch.Tensor
                    and result.shape == (case.n,)
                    and not result.is_floating_point()
                ):
                    ex.fail(
                        f"returned class indices ({describe(result)}), expected probabilities of shape "
                        f"{(case.n, case.classes)}",
                        case=label,
                        mistake="argmax returned instead of the probabilities",
                        fix=_SOFTMAX_FIX,
                    )
                result = ex.expect_tensor(result, "the probabilities", case=label)
                if result.device != device and result.device != x.device:
                    ex.fail(
                        f"the probabilities are on {result.device}, expected {device} (the model's device)",
                        case=label,
                        fix="return the softmax of the model's output, where the model computed it",
                    )
                with torch.no_grad():
                    logits = reference(x.to(device))
                expected = logits.softmax(dim=1).to(result.device)
                ex.assert_close(
                    result, expected, "the probabilities", case=label, diagnose=_proba_diagnosis(ex, logits)
                )
                if result.requires_grad:
                    ex.fail(
                        "the probabilities require grad",
                        case=label,
                        mistake="gradients tracked (no torch.no_grad())",
                        fix="compute inside `with torch.no_grad():`",
                    )
                if _modes(model) != modes:
                    top_level = [modes[0]] * len(modes)
                    per_module = case.start == "mixed" and _modes(model) == top_level
                    before = copy.deepcopy(model.net)
                    for module, training in zip(before.modules(), modes[1:], strict=True):
                        module.training = training
                    ex.fail(
                        f"the model's modes were ({'model: ' + _describe_mode(modes[0])}; "
                        f"{_mode_text(before)}) before predict_proba and are ({_mode_text(model)}) after",
                        case=label,
                        mistake="mode restored only at the top level: model.train(was_training) switches "
                        "every submodule, so a submodule that was in its own mode is not restored"
                        if per_module
                        else "mode not restored",
                        fix="remember each submodule's mode first, `modes = [m.training for m in "
                        "model.modules()]`, and set them back at the end: `for m, mode in "
                        "zip(model.modules(), modes): m.train(mode)`"
                        if per_module
                        else "remember `was_training = model.training` first and call "
                        "`model.train(was_training)` at the end",
                    )
                after = model.state_dict()
                for name, value in state.items():
                    if not _equal(after[name].detach(), value):
                        ex.fail(
                            f"predict_proba changed the model's {name.removeprefix('net.')}",
                            case=label,
                            fix="predicting reads the model; it never trains or updates it",
                        )
                if not _equal(x, x_before):
                    ex.fail("predict_proba changed x", case=label, fix="do not modify x in place")
                if part == EDGE and id(x) not in record.moved:
                    ex.fail(
                        f"x was used without `.to(device)` (the model is on {device})",
                        case=label,
                        mistake=_PROBA_NOT_MOVED,
                        fix=_PROBA_MOVE_FIX,
                    )
                ex.passed(3)


# -- fit ---------------------------------------------------------------------------------------------------


class _ScriptedSGD(torch.optim.Optimizer):
    """Plain SGD whose learning rate in epoch e is ``lr * script[e]``, the epoch counted from the steps
    taken. A negative factor steps up the loss, so that a case's validation loss falls and rises where it
    needs to (a best epoch before the last, early stopping at a known epoch)."""

    def __init__(self, params, lr: float, script: tuple[float, ...], steps_per_epoch: int) -> None:
        super().__init__(params, {"lr": lr})
        self.script = script
        self.steps_per_epoch = steps_per_epoch
        self.steps = 0

    @torch.no_grad()
    def step(self, closure=None):
        factor = self.script[min(self.steps // self.steps_per_epoch, len(self.script) - 1)]
        for group in self.param_groups:
            for parameter in group["params"]:
                if parameter.grad is not None:
                    parameter.add_(parameter.grad, alpha=-group["lr"] * factor)
        self.steps += 1


@dataclass
class _FitCase:
    """Blobs of ``classes`` classes for a small Tanh network (with dropout if asked), and fit's options."""

    n_train: int
    n_val: int
    batch_size: int
    val_batch_size: int
    in_features: int
    hidden: int
    classes: int
    epochs: int
    dtype: torch.dtype = torch.float32
    script: tuple[float, ...] | None = None  # learning-rate factors per epoch of a _ScriptedSGD
    optimizer: str = "sgd"  # without a script: "sgd", "momentum" or "adam"
    lr: float = 0.2
    scheduler: bool = False  # a StepLR(step_size=1, gamma=0.5) that records when it is stepped
    patience: int | None = None
    max_grad_norm: float | None = None
    dropout: bool = False
    start: str = "train"  # the model's mode before the call

    def label(self, device: torch.device) -> str:
        def sizes(n: int, size: int) -> list[int]:
            return [size] * (n // size) + ([n % size] if n % size else [])

        if self.script is not None:
            factors = ", ".join(f"{self.lr * f:+g}" for f in self.script[: self.epochs])
            optimizer = (
                f"an SGD whose learning rate per epoch is scripted ({factors}; negative climbs the loss)"
            )
        else:
            optimizer = {
                "sgd": f"SGD(lr={self.lr})",
                "momentum": f"SGD(lr={self.lr}, momentum=0.9)",
                "adam": f"Adam(lr={self.lr})",
            }[self.optimizer]
        parts = [
            f"{self.n_train} training samples in batches of {sizes(self.n_train, self.batch_size)}",
            f"{self.n_val} validation samples in batches of {sizes(self.n_val, self.val_batch_size)}",
            f"epochs={self.epochs}",
            optimizer,
        ]
        if self.scheduler:
            parts.append("scheduler=StepLR(optimizer, step_size=1, gamma=0.5)")
        if self.patience is not None:
            parts.append(f"patience={self.patience}")
        if self.max_grad_norm is not None:
            parts.append(f"max_grad_norm={self.max_grad_norm}")
        if self.dropout:
            parts.append("a model with dropout")
        parts.append(f"model in {self.start} mode before the call")
        parts.append(f"{str(self.dtype).removeprefix('torch.')} on {device}")
        return ", ".join(parts)

    def datasets(self, generator: torch.Generator) -> tuple[TensorDataset, TensorDataset]:
        """Training blobs, and validation samples near the first training samples (so that the validation
        loss follows the training: down when the scripted rate descends, up when it climbs)."""
        centres = 1.5 * torch.randn(self.classes, self.in_features, generator=generator, dtype=self.dtype)
        y = torch.randint(0, self.classes, (self.n_train,), generator=generator)
        x = centres[y] + torch.randn(self.n_train, self.in_features, generator=generator, dtype=self.dtype)
        noise = 0.3 * torch.randn(self.n_val, self.in_features, generator=generator, dtype=self.dtype)
        return TensorDataset(x, y), TensorDataset(x[: self.n_val] + noise, y[: self.n_val].clone())

    def layers(self) -> list[nn.Module]:
        dropout = [nn.Dropout(p=0.5)] if self.dropout else []
        return [
            nn.Linear(self.in_features, self.hidden),
            nn.Tanh(),
            *dropout,
            nn.Linear(self.hidden, self.classes),
        ]

    def make_optimizer(self, parameters, steps_per_epoch: int) -> torch.optim.Optimizer:
        if self.script is not None:
            return _ScriptedSGD(parameters, self.lr, self.script, steps_per_epoch)
        if self.optimizer == "adam":
            return torch.optim.Adam(parameters, lr=self.lr)
        if self.optimizer == "momentum":
            return torch.optim.SGD(parameters, lr=self.lr, momentum=0.9)
        return torch.optim.SGD(parameters, lr=self.lr)


class _StepWatch:
    """Hooks on an optimizer and the model's parameters: counts optimizer steps and, with
    ``max_grad_norm``, checks at each step that the gradient about to be used is the clipped one (against
    the gradient backward() left, seen by a post-accumulate hook), and after each step that nothing scales
    the gradient any more (clipping after the step)."""

    def __init__(self, optimizer: torch.optim.Optimizer, parameters, max_grad_norm: float | None) -> None:
        self.steps = 0
        self.max_grad_norm = max_grad_norm
        self.parameters = list(parameters)
        self.raw: dict[int, torch.Tensor] = {}
        self.problem: tuple[str, float, float] | None = None  # (kind, norm used by step, norm of backward's)
        self.kept: list[tuple[torch.Tensor, torch.Tensor]] = []  # (a .grad at the end of a step, its copy)
        self.scaled_after_step = False
        self.handles = [
            optimizer.register_step_pre_hook(self._before_step),
            optimizer.register_step_post_hook(self._after_step),
        ]
        if max_grad_norm is not None:
            for parameter in self.parameters:
                self.handles.append(parameter.register_post_accumulate_grad_hook(self._accumulated))

    def _accumulated(self, parameter: torch.Tensor) -> None:
        self.raw[id(parameter)] = parameter.grad.detach().clone()

    def _close(self, a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
        rtol, atol = tolerances(a[0].dtype)
        return all(bool(torch.isclose(x, y, rtol=rtol, atol=atol).all()) for x, y in zip(a, b, strict=True))

    def _scaled_since(self) -> None:
        for grad, copy_ in self.kept:
            if _equal(grad, copy_):
                continue
            norm = float((copy_ * copy_).sum())
            factor = float((grad * copy_).sum()) / norm if norm > 0 else 0.0
            if 0.0 < factor < 1.0 - 1e-6 and self._close([grad], [copy_ * factor]):
                self.scaled_after_step = True
        self.kept = []

    def _before_step(self, optimizer, args, kwargs) -> None:
        self._scaled_since()
        if self.max_grad_norm is None or self.problem is not None:
            return
        pairs = [(p, p.grad.detach()) for p in self.parameters if p.grad is not None]
        if not pairs or any(id(p) not in self.raw for p, _ in pairs):
            return
        raw = [self.raw[id(p)] for p, _ in pairs]
        current = [grad for _, grad in pairs]
        self.raw = {}
        norms = torch.stack([torch.linalg.vector_norm(r) for r in raw])
        total = float(torch.linalg.vector_norm(norms))
        coefficient = min(1.0, self.max_grad_norm / (total + 1e-6))
        if self._close(current, [r * coefficient for r in raw]):
            return
        used = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in current])))
        if self._close(current, raw):
            kind = "unclipped"
        elif self._close(
            current,
            [r * min(1.0, self.max_grad_norm / (float(n) + 1e-6)) for r, n in zip(raw, norms, strict=True)],
        ):
            kind = "per_parameter"
        elif self._close(current, [r.clamp(-self.max_grad_norm, self.max_grad_norm) for r in raw]):
            kind = "value"
        else:
            kind = "other"
        self.problem = (kind, used, total)

    def _after_step(self, optimizer, args, kwargs) -> None:
        self.steps += 1
        if self.max_grad_norm is not None:
            self.kept = [(p.grad, p.grad.detach().clone()) for p in self.parameters if p.grad is not None]

    def finish(self) -> None:
        self._scaled_since()
        for handle in self.handles:
            handle.remove()


class _SpyStepLR(StepLR):
    """StepLR(step_size=1, gamma=0.5) noting, at each step() call, how many optimizer steps came before."""

    def __init__(self, optimizer: torch.optim.Optimizer, watch: _StepWatch) -> None:
        self.calls: list[int] | None = None  # None during StepLR's own first step in __init__
        self.watch = watch
        super().__init__(optimizer, step_size=1, gamma=0.5)
        self.calls = []

    def step(self, *args, **kwargs):
        if self.calls is not None:
            self.calls.append(self.watch.steps)
        return super().step(*args, **kwargs)


@dataclass
class _Run:
    """What a correct fit does on a case, epoch by epoch, for all ``epochs`` (early stopping aside)."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    batch_losses: list[list[tuple[float, int]]] = field(default_factory=list)  # training, per epoch
    val_batches: list[list[tuple[float, int]]] = field(default_factory=list)
    train_set_loss: list[float] = field(default_factory=list)  # loss on the training data in eval mode
    states: list[dict[str, torch.Tensor]] = field(default_factory=list)  # after each epoch


def _evaluate_batches(net: nn.Module, batches, loss_fn) -> tuple[float, float, list[tuple[float, int]]]:
    net.eval()
    with torch.no_grad():
        pairs, correct = [], 0
        for x, y in batches:
            logits = net(x)
            pairs.append((loss_fn(logits, y).item(), len(y)))
            correct += int((logits.argmax(dim=1) == y).sum())
    count = sum(size for _, size in pairs)
    return sum(loss * size for loss, size in pairs) / count, correct / count, pairs


def _reference_fit(
    case: _FitCase, net: nn.Module, train_batches, val_batches, loss_fn, *, zero_grad=True
) -> _Run:
    """A correct fit (or, with zero_grad=False, the classic mistake) for every epoch of the case."""
    optimizer = case.make_optimizer(net.parameters(), len(train_batches))
    scheduler = StepLR(optimizer, step_size=1, gamma=0.5) if case.scheduler else None
    run = _Run()
    for _ in range(case.epochs):
        net.train()
        losses = []
        for x, y in train_batches:
            if zero_grad:
                optimizer.zero_grad()
            loss = loss_fn(net(x), y)
            loss.backward()
            if case.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(net.parameters(), case.max_grad_norm)
            optimizer.step()
            losses.append((loss.item(), len(x)))
        run.batch_losses.append(losses)
        run.train_loss.append(sum(loss * size for loss, size in losses) / sum(size for _, size in losses))
        val_loss, accuracy, pairs = _evaluate_batches(net, val_batches, loss_fn)
        run.val_loss.append(val_loss)
        run.val_accuracy.append(accuracy)
        run.val_batches.append(pairs)
        run.train_set_loss.append(_evaluate_batches(net, train_batches, loss_fn)[0])
        run.states.append({name: t.detach().clone() for name, t in net.state_dict().items()})
        if scheduler is not None:
            scheduler.step()
    return run


def _epochs_run(val_loss: list[float], patience: int | None, rule: str = "right") -> int:
    """How many epochs a fit runs with ``patience`` under a stopping rule: "right" stops after `patience`
    epochs in a row without a new lowest validation loss; "late" and "early" one epoch after or before
    that; "no_reset" counts every epoch without a new lowest, in a row or not."""
    if patience is None:
        return len(val_loss)
    limit = {"right": patience, "late": patience + 1, "early": patience - 1, "no_reset": patience}[rule]
    best, waited, total = math.inf, 0, 0
    for epoch, loss in enumerate(val_loss):
        if loss < best:
            best, waited = loss, 0
        else:
            waited, total = waited + 1, total + 1
        if (total if rule == "no_reset" else waited) >= limit:
            return epoch + 1
    return len(val_loss)


def _first_best(values: list[float], *, highest: bool = False, last: bool = False) -> int:
    order = range(len(values) - 1, -1, -1) if last else range(len(values))
    pick = max if highest else min
    return pick(order, key=values.__getitem__)


_HISTORY_KEYS = ("train_loss", "val_loss", "val_accuracy")
_FIT_RETURN = "return {'train_loss': [...], 'val_loss': [...], 'val_accuracy': [...], 'best_epoch': int}"
_EPOCH_LOOP = (
    "per epoch: model.train(), then per batch zero_grad, forward, loss, backward, "
    "(clip_grad_norm_ when max_grad_norm is given), step"
)


class _FitExercise(Exercise):
    """An Exercise whose failures add a note when the student's fit calls their own epoch functions."""

    note = ""

    def fail(self, problem, *, case=None, mistake=None, fix=None):
        if self.note:
            fix = f"{fix}. {self.note}" if fix else self.note
        super().fail(problem, case=case, mistake=mistake, fix=fix)


def _helpers_used(fit: Any) -> list[str]:
    """The notebook's own epoch functions that ``fit`` calls by name (train_one_epoch, evaluate)."""
    code = getattr(fit, "__code__", None)
    namespace = getattr(fit, "__globals__", None)
    if code is None or _type(namespace) is not dict:
        return []
    return [
        name
        for name in ("train_one_epoch", "evaluate")
        if name in code.co_names and _isinstance(namespace.get(name), types.FunctionType)
    ]


def _fit_hints(exc: BaseException):
    text = str(exc)
    if "same device" in text or "expected device" in text:
        return _NOT_MOVED, _MOVE_FIX
    if "NoneType" in text and "step" in text:
        return (
            "scheduler.step() called although scheduler is None",
            "step the scheduler only when one is given: `if scheduler is not None: scheduler.step()`",
        )
    if "NoneType" in text and ("float()" in text or "max_norm" in text):
        return (
            "clip_grad_norm_ called with max_grad_norm=None",
            "clip only when a norm is given: `if max_grad_norm is not None: clip_grad_norm_(...)`",
        )
    if "NoneType" in text and "not supported between" in text:
        return (
            "patience=None compared with a number",
            "stop early only when patience is given: `if patience is not None and ...`",
        )
    if "unexpected keyword argument" in text:
        return (
            "fit does not take the keyword arguments of the exercise",
            "define fit(model, train_loader, val_loader, loss_fn, optimizer, device, epochs, "
            "scheduler=None, patience=None, max_grad_norm=None)",
        )
    return None


def _fit_history(ex: Exercise, result: Any, steps_per_epoch: int, label: str) -> tuple[dict, int]:
    """The history lists (Python floats) and best_epoch (an int) from fit's result."""
    if not _isinstance(result, dict):
        ex.fail(f"expected a dict, got {describe(result)}", case=label, fix=_FIT_RETURN)
    keys = dict.keys(result)
    for key in (*_HISTORY_KEYS, "best_epoch"):
        if key not in keys:
            ex.fail(
                f"the dict has no key {key!r} (keys: {sorted(map(str, keys))})", case=label, fix=_FIT_RETURN
            )
    history = {}
    for key in _HISTORY_KEYS:
        values = dict.__getitem__(result, key)
        if _type(values) not in (list, tuple):
            ex.fail(
                f"result[{key!r}] should be a list, got {describe(values)}",
                case=label,
                fix=f"append one Python float per epoch to a list: {_FIT_RETURN}",
            )
        history[key] = [
            _return_float(ex, value, f"result[{key!r}][{epoch}]", case=label, graph_mistake=True)
            for epoch, value in enumerate(values)
        ]
    best = ex.expect_int(dict.__getitem__(result, "best_epoch"), "result['best_epoch']", case=label)
    return history, best


def _check_fit_record(ex: Exercise, record: _Record, label: str) -> None:
    """Edge cases: modes and grad mode of the training and validation passes, every batch moved."""
    unmoved = _unmoved_batches(record)
    if unmoved:
        ex.fail(
            f"{unmoved} batch(es) from the loaders were used without `.to(device)`",
            case=label,
            mistake=_NOT_MOVED,
            fix=_MOVE_FIX,
        )
    train_epochs: dict[int, list[tuple[bool, bool]]] = {}
    val_forwards = []
    train_passes = [i for i, name in enumerate(record.pass_names) if name == "train"]
    for training, grad, index in record.forwards:
        name = record.pass_names[index] if 0 <= index < len(record.pass_names) else ""
        if name == "train":
            train_epochs.setdefault(train_passes.index(index), []).append((training, grad))
        elif name == "val":
            val_forwards.append((training, grad))
    if not train_epochs or not val_forwards:
        missing = "train_loader" if not train_epochs else "val_loader"
        ex.fail(
            f"the model was never run on batches from {missing}",
            case=label,
            fix="each epoch trains on train_loader, then evaluates on val_loader",
        )
    eval_epochs = [epoch for epoch, passes in sorted(train_epochs.items()) if not all(t for t, _ in passes)]
    if eval_epochs:
        later = eval_epochs[0] > 0
        ex.fail(
            f"the model was in eval mode while training in epoch(s) {eval_epochs}",
            case=label,
            mistake="model not put back in train mode at the start of each epoch (validation left it in "
            "eval mode)"
            if later
            else "model left in eval mode during training (model.train() not called)",
            fix="call `model.train()` at the start of every epoch, before its training batches",
        )
    if not all(grad for passes in train_epochs.values() for _, grad in passes):
        ex.fail(
            "training forward passes ran with gradients switched off",
            case=label,
            fix="only the validation runs under torch.no_grad()",
        )
    if any(training for training, _ in val_forwards):
        ex.fail(
            "the model was in training mode during validation",
            case=label,
            mistake="validation run in training mode (dropout active): model.eval() not called before "
            "evaluating on val_loader",
            fix="evaluate like evaluate does: model.eval() and torch.no_grad() (then model.train() again "
            "for the next epoch)",
        )
    if any(grad for _, grad in val_forwards):
        ex.fail(
            "validation forward passes built autograd graphs",
            case=label,
            mistake="gradients tracked during validation (no torch.no_grad())",
            fix="evaluate on val_loader inside `with torch.no_grad():`",
        )
    ex.passed(3)


def _check_scheduler(ex: Exercise, calls: list[int], runs: int, steps_per_epoch: int, label: str) -> None:
    expected = [(epoch + 1) * steps_per_epoch for epoch in range(runs)]
    if calls == expected:
        ex.passed()
        return
    seen = f"scheduler.step() was called {len(calls)} time(s), after {calls[:8]} optimizer steps"
    wanted = f"expected once per epoch, after that epoch's {steps_per_epoch} steps: after {expected}"
    if not calls:
        mistake, fix = "scheduler never stepped", "call `scheduler.step()` once at the end of every epoch"
    elif len(calls) == runs * steps_per_epoch:
        mistake = "scheduler stepped per batch (the learning rate decays once per batch, not per epoch)"
        fix = "call `scheduler.step()` once per epoch, after the epoch's batches, outside the batch loop"
    elif calls == [epoch * steps_per_epoch for epoch in range(runs)]:
        mistake = "scheduler stepped before the epoch's optimizer steps (each epoch trains at the next rate)"
        fix = "call `scheduler.step()` after the epoch's training, not before it"
    else:
        mistake, fix = None, "call `scheduler.step()` exactly once per epoch, after the epoch's training"
    ex.fail(f"{seen}; {wanted}", case=label, mistake=mistake, fix=fix)


def _check_clipping(ex: Exercise, watch: _StepWatch, helpers: list[str], label: str) -> None:
    if watch.problem is None:
        ex.passed()
        return
    kind, used, total = watch.problem
    limit = watch.max_grad_norm
    problem = (
        f"optimizer.step() used a gradient of norm {used:.4g}; backward() gave {total:.4g}, which "
        f"clip_grad_norm_(model.parameters(), {limit}) scales to norm {min(total, limit):.4g}"
    )
    fix = (
        "clip between backward and step: `loss.backward()`, then "
        "`torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)`, then `optimizer.step()`"
    )
    if "train_one_epoch" in helpers:
        fix += "; train_one_epoch cannot clip, so write the epoch's loop in fit when max_grad_norm is given"
    if kind == "unclipped" and watch.scaled_after_step:
        mistake = "clipping after step: the gradient was clipped after optimizer.step() had used it"
    elif kind == "unclipped":
        mistake = (
            "gradient not clipped when optimizer.step() ran: clipping before backward (backward then "
            "writes the whole gradient), or max_grad_norm ignored"
        )
    elif kind == "per_parameter":
        mistake = "each parameter's gradient clipped on its own instead of their total norm"
        fix = "clip all of them together: `clip_grad_norm_(model.parameters(), max_grad_norm)`"
    elif kind == "value":
        mistake = "clip_grad_value_ used: it clips each entry, not the norm"
        fix = "use `torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)`"
    else:
        mistake = None
    ex.fail(problem, case=label, mistake=mistake, fix=fix)


def _check_length(
    ex: Exercise, history: dict, case: _FitCase, run: _Run, expected: int, steps: int, label: str
) -> None:
    lengths = {key: len(values) for key, values in history.items()}
    got = lengths["train_loss"]
    if steps > 1 and got == expected * steps and got != expected:
        ex.fail(
            f"result['train_loss'] has {got} entries, expected one per epoch run ({expected})",
            case=label,
            mistake="history of batch losses: one entry per batch instead of one per epoch",
            fix="append the epoch's mean loss per sample once per epoch, after its batches",
        )
    if len(set(lengths.values())) > 1:
        ex.fail(
            f"the history lists have different lengths: {lengths}",
            case=label,
            fix="append to train_loss, val_loss and val_accuracy once per epoch",
        )
    if got == expected:
        ex.passed()
        return
    problem = f"the history has {got} epochs, expected {expected}"
    if case.patience is None:
        ex.fail(problem, case=label, fix=f"run exactly `epochs` epochs ({case.epochs}) when patience is None")
    best = _first_best(run.val_loss[:expected])
    problem += (
        f": validation losses {[round(v, 4) for v in run.val_loss[: max(got, expected)]]}, the lowest "
        f"at epoch {best}, so with patience={case.patience} fit stops after epoch {expected - 1}"
    )
    variants = [
        (
            "late",
            "early stopping one epoch late: it ran one more epoch after `patience` epochs in a row "
            "without a new lowest validation loss",
        ),
        (
            "early",
            "early stopping one epoch early: it stopped after patience - 1 epochs without a new lowest "
            "validation loss",
        ),
        (
            "no_reset",
            "the count of epochs without improvement is not reset to 0 when the validation loss reaches a "
            "new lowest",
        ),
    ]
    mistake = next((m for rule, m in variants if _epochs_run(run.val_loss, case.patience, rule) == got), None)
    if mistake is None and got == case.epochs:
        mistake = "patience ignored: every epoch ran although the validation loss stopped improving"
    ex.fail(
        problem,
        case=label,
        mistake=mistake,
        fix="count the epochs in a row without a new lowest validation loss (reset to 0 at each new "
        "lowest) and stop as soon as the count reaches patience",
    )


def _check_fit_values(
    ex, history, run: _Run, variant, initial_val: tuple[float, float], dtype, label
) -> None:
    """The history, epoch by epoch, against the reference run; ``variant()`` runs the no-zero_grad loop."""
    for epoch in range(len(history["train_loss"])):
        value = history["train_loss"][epoch]
        expected = run.train_loss[epoch]
        if not _float_close(value, expected, dtype):
            mistake, fix = _loss_diagnosis(
                value, run.batch_losses[epoch], dtype, len(run.batch_losses[epoch])
            )
            if mistake is None and _float_close(value, variant().train_loss[epoch], dtype):
                mistake = "no zero_grad: gradients of earlier batches were added to each batch's"
                fix = "call `optimizer.zero_grad()` once per batch, before `loss.backward()`"
            ex.fail(
                f"result['train_loss'][{epoch}] is {value:.6g}, expected the epoch's mean training loss per "
                f"sample {expected:.6g}",
                case=label,
                mistake=mistake,
                fix=fix or _EPOCH_LOOP,
            )
        value = history["val_loss"][epoch]
        expected = run.val_loss[epoch]
        if not _float_close(value, expected, dtype):
            known = [
                (
                    ([initial_val[0]] + run.val_loss)[epoch],
                    "validation run before the epoch's training (each entry is one epoch behind)",
                    "train first, then evaluate the model the epoch has trained",
                ),
                (
                    run.train_set_loss[epoch],
                    "validation run on the training data (train_loader) instead of val_loader",
                    "evaluate on val_loader",
                ),
                (
                    run.train_loss[epoch],
                    "the training loss stored as the validation loss",
                    "evaluate on val_loader and store that loss",
                ),
            ]
            mistake, fix = next(
                ((m, f) for wrong, m, f in known if _float_close(value, wrong, dtype)),
                _loss_diagnosis(value, run.val_batches[epoch], dtype, len(run.val_batches[epoch])),
            )
            ex.fail(
                f"result['val_loss'][{epoch}] is {value:.6g}, expected the mean validation loss per sample "
                f"after epoch {epoch}'s training, {expected:.6g}",
                case=label,
                mistake=mistake,
                fix=fix or "after each epoch's training, evaluate on val_loader like evaluate does",
            )
        value = history["val_accuracy"][epoch]
        expected = run.val_accuracy[epoch]
        if not math.isclose(value, expected, abs_tol=1e-6):
            known = [
                (100 * expected, "accuracy given as a percentage", "return a fraction in [0, 1]"),
                (
                    ([initial_val[1]] + run.val_accuracy)[epoch],
                    "validation run before the epoch's training",
                    "train first, then evaluate",
                ),
            ]
            mistake, fix = next(
                ((m, f) for wrong, m, f in known if math.isclose(value, wrong, abs_tol=1e-6)), (None, None)
            )
            ex.fail(
                f"result['val_accuracy'][{epoch}] is {value:.6g}, expected {expected:.6g}",
                case=label,
                mistake=mistake,
                fix=fix
                or "the fraction of validation samples whose argmax over the classes equals the target",
            )
    ex.passed(3)


def _same_state(ex: Exercise, state: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> bool:
    return all(ex.is_close(state[name], value) for name, value in reference.items())


def _check_best(ex, best: int, model: _Probe, run: _Run, runs: int, record: _Record, label) -> None:
    expected = _first_best(run.val_loss[:runs])
    losses = [round(v, 4) for v in run.val_loss[:runs]]
    if best != expected:
        candidates = [
            (
                expected + 1,
                "best_epoch counted from 1: epochs are counted from 0",
                "report the epoch's index",
            ),
            (
                _first_best(run.val_accuracy[:runs], highest=True),
                "best epoch chosen by the highest validation accuracy, not the lowest validation loss",
                "keep the epoch whose validation loss is the lowest",
            ),
            (
                runs - 1,
                "the last epoch reported as the best instead of the one with the lowest validation loss",
                "remember the epoch whenever its validation loss is a new lowest",
            ),
            (
                _first_best(run.val_accuracy[:runs], highest=True, last=True),
                "best epoch chosen by the highest validation accuracy, not the lowest validation loss",
                "keep the epoch whose validation loss is the lowest",
            ),
        ]
        mistake, fix = next(((m, f) for epoch, m, f in candidates if best == epoch), (None, None))
        ex.fail(
            f"result['best_epoch'] is {best}, expected {expected} (validation losses {losses})",
            case=label,
            mistake=mistake,
            fix=fix or "best_epoch is the epoch (counted from 0) with the lowest validation loss",
        )
    state = {name.removeprefix("net."): t.detach() for name, t in model.state_dict().items()}
    if _same_state(ex, state, run.states[expected]):
        ex.passed(2)
        return
    copy_fix = (
        "save a copy whenever the validation loss is a new lowest, `best_state = "
        "copy.deepcopy(model.state_dict())` (or `{k: v.detach().clone() for k, v in "
        "model.state_dict().items()}`), and `model.load_state_dict(best_state)` before returning"
    )
    problem = f"on return the model does not hold the weights of epoch {expected}, the best (losses {losses})"
    if _same_state(ex, state, run.states[runs - 1]):
        problem = problem.replace("does not hold", "holds the weights of the last epoch, not")
        if any(record.loads):
            mistake = (
                "best weights kept by reference: model.state_dict() returns the model's own tensors, which "
                "later training kept changing, so loading them back restores the last epoch"
            )
        else:
            mistake = (
                "best weights never loaded back into the model you were given (`model = best_model` inside "
                "fit changes only fit's local name), or kept by reference (model.state_dict() without a copy)"
            )
        ex.fail(problem, case=label, mistake=mistake, fix=copy_fix)
    for epoch in range(runs):
        if _same_state(ex, state, run.states[epoch]):
            highest = _first_best(run.val_accuracy[:runs], highest=True)
            mistake = (
                "the weights of the epoch with the highest validation accuracy restored"
                if epoch == highest
                else None
            )
            ex.fail(f"{problem}: it holds those of epoch {epoch}", case=label, mistake=mistake, fix=copy_fix)
    ex.fail(problem, case=label, fix=copy_fix)


# Core: the history, the training and the validation of every epoch, and the best weights restored
# (a scripted learning rate puts the lowest validation loss at epoch 2 of 5, with the highest accuracy
# elsewhere). Edge cases: a scheduler, early stopping (scripted so that the validation loss improves,
# worsens for one epoch and improves again before it stalls), gradient clipping, and a model with dropout
# starting in eval mode (validation in eval mode without gradients, training in train mode every epoch,
# batches moved to the device).
_FIT_VISIBLE = {
    CORE: [
        _FitCase(10, 7, 4, 3, 4, 6, 3, 5, script=(1, 1, 1, -1, -1), lr=0.3),
        _FitCase(9, 8, 4, 5, 3, 5, 4, 3, torch.float64, optimizer="momentum", lr=0.1),
    ],
    EDGE: [
        _FitCase(9, 6, 3, 4, 3, 5, 3, 3, optimizer="sgd", lr=0.5, scheduler=True),
        _FitCase(10, 7, 4, 4, 4, 6, 3, 10, script=(1, 1, -1, 2, -1, 2, -1, -1, -1, -1), lr=0.2, patience=2),
        _FitCase(10, 6, 4, 3, 4, 6, 3, 2, optimizer="sgd", lr=0.5, max_grad_norm=0.05),
        _FitCase(10, 8, 4, 4, 4, 8, 3, 3, optimizer="sgd", lr=0.3, dropout=True, start="eval"),
    ],
}


def _random_fit_cases(seed: int, part: str) -> list[_FitCase]:
    generator = torch.Generator().manual_seed(seed)

    def draw(low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (1,), generator=generator))

    def sizes() -> dict[str, int]:
        n_train = draw(5, 14)
        return {
            "n_train": n_train,
            "n_val": draw(3, n_train),
            "batch_size": draw(2, 5),
            "val_batch_size": draw(2, 6),
            "in_features": draw(2, 6),
            "hidden": draw(3, 8),
            "classes": draw(2, 4),
        }

    def script(epochs: int) -> tuple[float, ...]:
        return tuple(float((-1, 1, 2)[draw(0, 2)]) for _ in range(epochs))

    if part == CORE:
        epochs = draw(3, 6)
        return [
            _FitCase(**sizes(), epochs=epochs, script=script(epochs), lr=0.2),
            _FitCase(**sizes(), epochs=draw(2, 4), dtype=torch.float64, optimizer="adam", lr=0.05),
            _FitCase(**sizes(), epochs=draw(2, 4), optimizer="momentum", lr=0.1),
        ]
    epochs = draw(5, 9)
    return [
        _FitCase(**sizes(), epochs=draw(2, 4), optimizer="momentum", lr=0.2, scheduler=True),
        _FitCase(**sizes(), epochs=epochs, script=script(epochs), lr=0.2, patience=draw(1, 3)),
        _FitCase(**sizes(), epochs=4, script=(-1, -1, -1, -1), lr=0.2, patience=1),  # best at epoch 0
        _FitCase(**sizes(), epochs=draw(2, 3), dtype=torch.float64, lr=0.3, max_grad_norm=0.02 * draw(1, 5)),
        _FitCase(**sizes(), epochs=2, lr=0.3, max_grad_norm=100.0),  # a norm too large to clip anything
        _FitCase(**sizes(), epochs=draw(2, 3), lr=0.3, dropout=True, start=("train", "eval")[draw(0, 1)]),
    ]


def check_fit(fit, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Does ``fit(model, train_loader, val_loader, loss_fn, optimizer, device, epochs)`` train and evaluate
    epoch after epoch like a reference loop, return the history and the best epoch, and leave the model with
    the weights of the epoch of lowest validation loss? ``part="edge"``: a scheduler stepped once per epoch,
    early stopping with ``patience`` at the exact epoch, gradient clipping with ``max_grad_norm`` between
    backward and step, validation in eval mode without gradients on a model with dropout, training in
    train mode every epoch, every batch moved to the device."""
    __tracebackhide__ = True
    cases = list(_FIT_VISIBLE[part]) + (_random_fit_cases(seed, part) if hidden else [])
    with _FitExercise("fit") as ex:
        helpers = _helpers_used(fit)
        if helpers:
            ex.note = (
                f"(your fit calls your own {' and '.join(helpers)} from the cells above: check that their "
                "tests pass too)"
            )
        for device in ex.devices:
            for index, case in enumerate(cases):
                _check_fit_case(ex, fit, case, device, seed * 1000 + index, part, helpers)


def _check_fit_case(ex, fit, case: _FitCase, device, seed: int, part: str, helpers: list[str]) -> None:
    __tracebackhide__ = True
    label = case.label(device)
    train_set, val_set = case.datasets(torch.Generator().manual_seed(seed))
    model = _build(case, seed, _FitCase.layers, device)
    model.train(case.start == "train")
    initial = copy.deepcopy(model.net)
    train_loader = _Loader(train_set, case.batch_size, "train", own_generator=True)
    val_loader = _Loader(val_set, case.val_batch_size, "val", own_generator=True)
    steps = len(train_loader)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = case.make_optimizer(model.parameters(), steps)
    watch = _StepWatch(optimizer, model.parameters(), case.max_grad_norm)
    options: dict[str, Any] = {}
    if case.scheduler:
        options["scheduler"] = scheduler = _SpyStepLR(optimizer, watch)
    if case.patience is not None:
        options["patience"] = case.patience
    if case.max_grad_norm is not None:
        options["max_grad_norm"] = case.max_grad_norm

    record = _Record(device)
    model.record = train_loader.record = val_loader.record = record
    try:
        with seeded(seed), _DeviceMoves(record):
            result = ex.call(
                fit,
                model,
                train_loader,
                val_loader,
                loss_fn,
                optimizer,
                device,
                case.epochs,
                case=label,
                hints=_fit_hints,
                **options,
            )
    finally:
        model.record = train_loader.record = val_loader.record = None
        watch.finish()

    history, best = _fit_history(ex, result, steps, label)
    runs = len(history["train_loss"])
    if part == EDGE:
        _check_fit_record(ex, record, label)
        if case.scheduler:
            _check_scheduler(ex, scheduler.calls, runs, steps, label)
        if case.max_grad_norm is not None:
            _check_clipping(ex, watch, helpers, label)

    train_batches = [_on(batch, device) for batch in DataLoader(train_set, batch_size=case.batch_size)]
    val_batches = [_on(batch, device) for batch in DataLoader(val_set, batch_size=case.val_batch_size)]
    with seeded(seed):
        run = _reference_fit(case, copy.deepcopy(initial), train_batches, val_batches, loss_fn)
    initial_val = _evaluate_batches(copy.deepcopy(initial), val_batches, loss_fn)[:2]
    variants: dict[str, _Run] = {}

    def variant() -> _Run:
        if "no_zero_grad" not in variants:
            with seeded(seed):
                variants["no_zero_grad"] = _reference_fit(
                    case, copy.deepcopy(initial), train_batches, val_batches, loss_fn, zero_grad=False
                )
        return variants["no_zero_grad"]

    expected = _epochs_run(run.val_loss, case.patience)
    _check_length(ex, history, case, run, expected, steps, label)
    _check_fit_values(ex, history, run, variant, initial_val, case.dtype, label)
    _check_best(ex, best, model, run, runs, record, label)


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


_METRICS_VISIBLE = {
    # Core: every class occurs and is predicted, classes of unequal sizes (macro, micro and weighted
    # averages differ). The draws are fixed, chosen so that every simulated mistake gives numbers that
    # differ from the right ones and from each other.
    CORE: [
        _MetricsCase(20, 3, torch.float32, seed=0),
        _MetricsCase(24, 4, torch.float64, seed=1),
    ],
    # Edge cases: classes never predicted or absent from the targets (0/0), N == C (argmax over dim 0 has
    # the right shape and wrong values), every prediction right.
    EDGE: [
        _MetricsCase(5, 5, torch.float32, absent=(4,), never_predicted=(3, 4), seed=0),
        _MetricsCase(16, 4, torch.float32, absent=(3,), never_predicted=(2, 3), seed=0),
        _MetricsCase(20, 3, torch.float32, never_predicted=(1,)),
        _MetricsCase(6, 3, torch.float64, perfect=True),
    ],
}


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


def check_classification_metrics(
    classification_metrics, *, part: str = CORE, hidden: bool = False, seed: int = 0
) -> None:
    """Does ``classification_metrics(logits, targets, num_classes)`` return accuracy and macro precision,
    recall and F1 over all classes as Python floats, agreeing with scikit-learn (zero_division=0)?
    ``part="edge"``: classes never predicted or absent (no NaN), as many samples as classes, all right."""
    __tracebackhide__ = True
    cases = list(_METRICS_VISIBLE[part])
    if hidden:
        generator = torch.Generator().manual_seed(seed)

        def draw(low: int, high: int) -> int:
            return int(torch.randint(low, high + 1, (1,), generator=generator))

        for index in range(6):
            num_classes = draw(2, 9)
            dtype = torch.float64 if index % 2 else torch.float32
            if part == CORE:
                cases.append(_MetricsCase(draw(num_classes, 60), num_classes, dtype))
                continue
            n = num_classes if index == 0 else draw(2, 60)
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
