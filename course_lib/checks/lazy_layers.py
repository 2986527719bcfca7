"""Checks for notebook 06_lazy_layers: ``lazy_mlp``, ``materialize``, ``init_lazy`` and ``LazyScale``.

Lazy layers create their parameters at the first forward call. Each check builds small lazy models,
runs the student's code on every available device and compares what it leaves behind with what
PyTorch's own lazy modules do: which parameters exist and when, their shapes, dtype and device, the
train/eval flags, the autograd state during the dry run, and whether an optimizer built before the
first call trains them. The checks of an exercise worth 3 points or more come in two parts, its core
behaviour (``part="core"``) and its edge cases (``part="edge"``); ``hidden=True`` adds random sizes and
dtypes (used by the hidden tests at grading time).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parameter import UninitializedTensorMixin

from course_lib.checks._core import Exercise, describe, seeded
from course_lib.checks._integrity import ORIGINALS, protect_module
from course_lib.protocol import CORE, EDGE

__all__ = ["check_lazy_mlp", "check_materialize", "check_init_lazy", "check_LazyScale"]

_equal = ORIGINALS["equal"]
_isinstance = ORIGINALS["isinstance"]
_type = ORIGINALS["type"]

# nn.Module's own methods, so that a student's subclass cannot change what the checks see.
_modules = nn.Module.modules
_named_modules = nn.Module.named_modules
_named_parameters = nn.Module.named_parameters
_named_buffers = nn.Module.named_buffers


def _is_lazy(tensor: object) -> bool:
    """True for an UninitializedParameter or UninitializedBuffer (a lazy tensor with no data yet)."""
    return _isinstance(tensor, UninitializedTensorMixin)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _draw(generator: torch.Generator, low: int, high: int) -> int:
    """A random int in [low, high] from ``generator``."""
    return int(torch.randint(low, high + 1, (1,), generator=generator))


def _randn(shape: tuple[int, ...], seed: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=dtype).to(device)


def _lazy_names(model: nn.Module) -> list[str]:
    """Names of the parameters and buffers of ``model`` that are still uninitialized."""
    tensors = [*_named_parameters(model), *_named_buffers(model)]
    return [name for name, tensor in tensors if _is_lazy(tensor)]


# -- lazy_mlp ----------------------------------------------------------------------------------------


def _kind(module: object) -> str:
    if _isinstance(module, nn.LazyLinear):
        return f"LazyLinear({module.out_features})"
    if _type(module) is nn.Linear:
        return f"Linear({module.in_features}, {module.out_features})"
    return _type(module).__name__ + "()"


_MATERIALIZED = (
    "plain nn.Linear with a guessed in_features, or LazyLinear layers already materialized by a forward "
    "call inside lazy_mlp"
)


def _layers(model: nn.Module) -> list[object]:
    """The layers of an nn.Sequential in order, repeats included (``children()`` lists a module used
    twice, such as one shared ReLU, only once)."""
    registered = object.__getattribute__(model, "_modules")
    return list(dict.values(registered)) if _isinstance(registered, dict) else []


_OTHER_ACTIVATIONS = (nn.Tanh, nn.Sigmoid, nn.GELU, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.Softplus)


def _lazy_mlp_structure(ex: Exercise, model: nn.Module, hidden: list[int], out_features: int, label: str):
    """Fail unless ``model`` is [LazyLinear(h), ReLU] * len(hidden) + [LazyLinear(out_features)], unused."""
    children = _layers(model)
    kinds = [_kind(child) for child in children]
    expected = [k for h in hidden for k in (f"LazyLinear({h})", "ReLU()")] + [f"LazyLinear({out_features})"]
    seen = f"children {kinds}, expected {expected}"
    if any(_type(child) is nn.Linear for child in children):
        ex.fail(
            f"the model holds nn.Linear layers whose in_features is already fixed: {seen}",
            case=label,
            mistake=_MATERIALIZED,
            fix="build every layer as nn.LazyLinear(out_features) and do not call the model inside "
            "lazy_mlp: in_features must come from the first real input",
        )
    linears = [child for child in children if _isinstance(child, nn.LazyLinear)]
    relus = [child for child in children if _isinstance(child, nn.ReLU)]
    others = sorted({_kind(child) for child in children if _isinstance(child, _OTHER_ACTIVATIONS)})
    if others and len(relus) < len(hidden):
        ex.fail(
            f"the activations are {others}, not ReLU: {seen}",
            case=label,
            mistake="another activation instead of ReLU",
            fix="put an nn.ReLU() after every hidden nn.LazyLinear(h)",
        )
    if len(linears) != len(hidden) + 1:
        ex.fail(
            f"{len(linears)} LazyLinear layers, expected {len(hidden) + 1} (one per hidden size, then the "
            f"final one): {seen}",
            case=label,
            fix="one nn.LazyLinear(h) per entry of hidden_sizes, then nn.LazyLinear(out_features)",
        )
    if children and _isinstance(children[-1], nn.ReLU):
        ex.fail(
            f"the model ends with a ReLU: {seen}",
            case=label,
            mistake="ReLU after the final layer (the outputs could never be negative)",
            fix="put a ReLU after each hidden LazyLinear only; the final LazyLinear(out_features) comes last",
        )
    if len(relus) < len(hidden):
        ex.fail(
            f"{len(relus)} ReLU modules for {len(hidden)} hidden layers: {seen}",
            case=label,
            mistake="missing ReLU between the layers (without it the layers collapse into one linear map)",
            fix="append nn.ReLU() after every hidden nn.LazyLinear(h)",
        )
    final = linears[-1].out_features
    if final != out_features:
        ex.fail(
            f"the final layer has out_features={final}, expected {out_features}",
            case=label,
            mistake="wrong final size",
            fix="finish with nn.LazyLinear(out_features)",
        )
    if kinds != expected:
        sizes = [layer.out_features for layer in linears[:-1]]
        if sorted(sizes) == sorted(hidden) and sizes != list(hidden):
            mistake = "hidden sizes in the wrong order (the first hidden layer has hidden_sizes[0] features)"
        elif sizes != list(hidden):
            mistake = "wrong hidden sizes: hidden layer i must be nn.LazyLinear(hidden_sizes[i])"
        else:
            mistake = None
        ex.fail(
            f"the layers are not the expected ones in the expected order: {seen}",
            case=label,
            mistake=mistake,
            fix="alternate nn.LazyLinear(h) and nn.ReLU() for each h in hidden_sizes, in that order",
        )
    for index, layer in enumerate(linears):
        if layer.bias is None:
            ex.fail(
                f"LazyLinear layer {index} has no bias",
                case=label,
                fix="keep the default bias=True: nn.LazyLinear(out_features)",
            )
    existing = [name for name, p in _named_parameters(model) if not _is_lazy(p)]
    if existing or not all(layer.has_uninitialized_params() for layer in linears):
        ex.fail(
            f"parameters exist before the first forward call: {existing}",
            case=label,
            mistake="already materialized",
            fix="return the model without calling it: nothing may exist before the first real input",
        )
    ex.passed()
    return children


def _mlp_reference(children: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """The MLP's output recomputed from its layers' parameters with F.linear and F.relu."""
    with torch.no_grad():
        for child in children:
            x = F.relu(x) if _isinstance(child, nn.ReLU) else F.linear(x, child.weight, child.bias)
    return x


@dataclass
class _MLPCase:
    hidden: list[int]
    out_features: int
    in_features: int
    batch: int
    dtype: torch.dtype = torch.float32


# Core: one and two hidden layers. Edge: no hidden layer, three of them, float64, a batch of one.
_MLP_CASES = {
    CORE: [_MLPCase([8], 3, 5, 4), _MLPCase([16, 8], 2, 7, 3)],
    EDGE: [
        _MLPCase([], 4, 6, 2),  # no hidden layer: just the final LazyLinear
        _MLPCase([6, 9, 5], 3, 4, 1, torch.float64),
    ],
}


def _hidden_mlp_cases(seed: int, part: str) -> list[_MLPCase]:
    generator = torch.Generator().manual_seed(seed)
    if part == CORE:
        plan = [(depth, torch.float32) for depth in (1, 2, 3)] + [(2, torch.float64)]
    else:
        plan = [(0, torch.float32), (0, torch.float64), (1, torch.float64), (4, torch.float64)]
    cases = []
    for depth, dtype in plan:
        sizes = [_draw(generator, 1, 12) for _ in range(depth)]
        batch = _draw(generator, 2, 5) if part == CORE else _draw(generator, 1, 3)
        cases.append(_MLPCase(sizes, _draw(generator, 1, 6), _draw(generator, 1, 10), batch, dtype))
    return cases


def _mlp_hints(hidden_sizes: list[int]):
    def hints(exc: BaseException):
        if not hidden_sizes and _isinstance(exc, IndexError):
            return (
                "hidden_sizes=[] not handled (the code reads hidden_sizes[0], or the last layer built)",
                "with no hidden size the model is a single nn.LazyLinear(out_features): loop over "
                "hidden_sizes, then append the final layer",
            )
        return None

    return hints


def check_lazy_mlp(lazy_mlp, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Does ``lazy_mlp(hidden_sizes, out_features)`` return an unused nn.Sequential of LazyLinear + ReLU
    pairs and a final LazyLinear(out_features), which becomes a working MLP at its first call? Core: one
    and two hidden layers; ``part="edge"``: no hidden layer, deeper models, float64, a batch of one."""
    __tracebackhide__ = True
    cases = _hidden_mlp_cases(seed, part) if hidden else _MLP_CASES[part]
    with Exercise("lazy_mlp") as ex:
        for device in ex.devices:
            for index, case in enumerate(cases):
                label = f"lazy_mlp({case.hidden}, {case.out_features})"
                given = list(case.hidden)
                with seeded(seed + index):
                    model = ex.call(
                        lazy_mlp, given, case.out_features, case=label, hints=_mlp_hints(case.hidden)
                    )
                if given != case.hidden:
                    ex.fail(
                        f"lazy_mlp changed the list it was given: hidden_sizes {case.hidden} became {given}",
                        case=label,
                        mistake="hidden_sizes modified (hidden_sizes.append(...) changes the caller's list)",
                        fix="leave the argument alone: loop over hidden_sizes, then append the final "
                        "layer to your own list of layers",
                    )
                ex.expect_instance(
                    model, nn.Sequential, "lazy_mlp's result", case=label, fix="return nn.Sequential(*layers)"
                )
                hidden_sizes = case.hidden
                children = _lazy_mlp_structure(ex, model, hidden_sizes, case.out_features, label)

                x = _randn((case.batch, case.in_features), seed * 1000 + index, case.dtype, device)
                label = (
                    f"{label}, then .to({device}, {_dtype_name(case.dtype)}) and a first call on x of shape "
                    f"{tuple(x.shape)}"
                )
                ex.call(model.to, device=device, dtype=case.dtype, case=label)
                with seeded(seed + index):
                    y = ex.call(model, x, case=label)
                sizes = [case.in_features, *hidden_sizes, case.out_features]
                layers = [child for child in children if not _isinstance(child, nn.ReLU)]
                for position, layer in enumerate(layers):
                    got = (layer.in_features, layer.out_features)
                    if _type(layer) is not nn.Linear or got != (sizes[position], sizes[position + 1]):
                        ex.fail(
                            f"after the first call, layer {position} is {_kind(layer)}, expected "
                            f"Linear({sizes[position]}, {sizes[position + 1]})",
                            case=label,
                            fix="use nn.LazyLinear layers: they become nn.Linear with in_features taken "
                            "from their first input",
                        )
                    ex.passed()
                expected = _mlp_reference(children, x)
                ex.assert_close(y, expected, "the output", case=label)


# -- materialize and init_lazy: the dry run -------------------------------------------------------------


class _Net(nn.Module):
    """A model that is not an nn.Sequential: lazy conv features, flatten, a lazy classifier."""

    def __init__(self, channels: int, out_features: int) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.LazyConv2d(channels, kernel_size=3), nn.ReLU())
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.25), nn.LazyLinear(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass
class _LazyModel:
    """One test model for materialize / init_lazy, with its example input and a description."""

    model: nn.Module
    x: torch.Tensor
    label: str


def _lazy_models(seed: int, hidden: bool, device: torch.device, part: str) -> list[_LazyModel]:
    """Lazy models for materialize / init_lazy. Core: every module in the model's own mode (train, or
    eval), a BatchNorm among them. Edge: children in another mode than the model, a model that is not
    a Sequential, lazy and eager layers mixed, float64."""
    generator = torch.Generator().manual_seed(seed)
    if hidden:
        dtypes = (torch.float32, torch.float64)
    else:
        dtypes = (torch.float32,) if part == CORE else (torch.float64,)
    found: list[_LazyModel] = []

    def add(model: nn.Module, x: torch.Tensor, what: str) -> None:
        dt = _dtype_name(x.dtype)
        shape = ", ".join(str(size) for size in x.shape)
        found.append(_LazyModel(model, x, f"{what}, x ({shape}), {dt} on {device}"))

    for round_index, dtype in enumerate(dtypes):
        h, out = (_draw(generator, 2, 9), _draw(generator, 1, 5)) if hidden else (8, 3)
        in_features, batch = (_draw(generator, 1, 9), _draw(generator, 2, 5)) if hidden else (5, 4)
        side = _draw(generator, 4, 7) if hidden else 6
        base = seed * 100 + round_index * 10

        def x_of(*shape: int, offset: int = 0, _dtype: torch.dtype = dtype, _base: int = base):
            return _randn(shape, _base + offset, _dtype, device)

        def normed(h: int = h, out: int = out) -> nn.Sequential:
            return nn.Sequential(nn.LazyLinear(h), nn.LazyBatchNorm1d(), nn.ReLU(), nn.LazyLinear(out))

        with seeded(base):  # building the models must not move the notebook's own random generator
            if part == CORE:
                dropout = nn.Sequential(nn.LazyLinear(h), nn.ReLU(), nn.Dropout(0.5), nn.LazyLinear(out))
                add(
                    dropout.train(),
                    x_of(batch, in_features),
                    f"Sequential(LazyLinear({h}), ReLU, Dropout, LazyLinear({out})) in train mode",
                )
                add(
                    normed().eval(),
                    x_of(batch, in_features, offset=1),
                    f"Sequential(LazyLinear({h}), LazyBatchNorm1d, ReLU, LazyLinear({out})) in eval mode",
                )
                add(
                    normed().train(),
                    x_of(batch, in_features, offset=2),
                    f"Sequential(LazyLinear({h}), LazyBatchNorm1d, ReLU, LazyLinear({out})) in train mode",
                )
                continue
            mlp = nn.Sequential(nn.LazyLinear(h), nn.ReLU(), nn.Dropout(0.5), nn.LazyLinear(out))
            mlp.train()
            mlp[2].eval()
            add(
                mlp,
                x_of(batch, in_features),
                f"Sequential(LazyLinear({h}), ReLU, Dropout, LazyLinear({out})) in train mode with its "
                "Dropout in eval mode",
            )
            model = normed().eval()
            model[1].train()
            add(
                model,
                x_of(batch, in_features, offset=1),
                f"Sequential(LazyLinear({h}), LazyBatchNorm1d, ReLU, LazyLinear({out})) in eval mode with "
                "its BatchNorm in train mode",
            )
            net = _Net(channels=h, out_features=out)
            eval_net = bool(round_index % 2)
            net.train(not eval_net)
            net.head[1].train(eval_net)  # its Dropout in the other mode
            add(
                net,
                x_of(batch, 2, side, side, offset=2),
                f"a conv net (LazyConv2d, ReLU, Flatten, Dropout, LazyLinear({out})) in "
                f"{'eval' if eval_net else 'train'} mode with its Dropout in "
                f"{'train' if eval_net else 'eval'} mode",
            )
            mixed = nn.Sequential(
                nn.LazyLinear(h), nn.ReLU(), nn.Linear(h, h + 1), nn.ReLU(), nn.LazyLinear(out)
            )
            mixed.eval()
            add(
                mixed,
                x_of(batch, in_features, offset=3),
                f"Sequential(LazyLinear({h}), ReLU, Linear({h}, {h + 1}), ReLU, LazyLinear({out})) in eval "
                "mode",
            )
    for item in found:
        item.model.to(device=device, dtype=item.x.dtype)
    return found


@dataclass
class _DryRunRecord:
    """What a forward hook on the root module saw during the student's call."""

    grad_enabled: bool
    inference_mode: bool
    output_requires_grad: bool
    batchnorm_training: bool  # a BatchNorm that keeps running statistics ran in training mode


def _requires_grad(output: object) -> bool:
    return _isinstance(output, torch.Tensor) and bool(output.requires_grad)


def _run_with_dry_run_probe(model: nn.Module, call, seed: int):
    """Run ``call()`` (which calls the student's function on ``model`` through ex.call) with a forward
    hook on ``model`` recording each call; returns ``(result, records, grad_mode_after, modes_before)``.
    The hook is removed afterwards."""
    records: list[_DryRunRecord] = []

    def probe(module, inputs, output):
        batchnorm_training = any(
            _isinstance(m, _BatchNorm) and m.training and m.track_running_stats for m in _modules(module)
        )
        records.append(
            _DryRunRecord(
                torch.is_grad_enabled(),
                torch.is_inference_mode_enabled(),
                _requires_grad(output),
                batchnorm_training,
            )
        )

    modes_before = [(name or "the model", module.training) for name, module in _named_modules(model)]
    handle = model.register_forward_hook(probe)
    try:
        with torch.enable_grad(), seeded(seed):
            result = call()
            grad_mode_after = torch.is_grad_enabled()
    finally:
        handle.remove()
    return result, records, grad_mode_after, modes_before


def _dry_run_problems(
    ex: Exercise,
    name: str,
    model: nn.Module,
    result: object,
    records: list[_DryRunRecord],
    grad_mode_after: bool,
    modes_before: list[tuple[str, bool]],
    case: str,
) -> None:
    """Fail on the first way the dry run went wrong: grad mode, number of calls, graph, return value,
    lazy tensors left, parameters made inference tensors, train/eval flags changed."""
    if not grad_mode_after:
        ex.fail(
            f"gradients are still disabled after {name} returned",
            case=case,
            mistake="grad mode left off: torch.set_grad_enabled(False) without turning it back on",
            fix="use the context manager `with torch.no_grad(): model(example_input)`, which restores it",
        )
    if not records:
        ex.fail(
            "the model itself was never called (its forward hooks never ran)",
            case=case,
            mistake="no dry run, or model.forward(x) called directly (it skips the model's hooks; lazy "
            "layers materialize in such a hook)",
            fix="call the model itself, once: `model(example_input)`",
        )
    if len(records) > 1:
        ex.fail(
            f"the model ran {len(records)} times; a dry run is one call",
            case=case,
            mistake="two forward calls (each one costs time, and in train mode updates BatchNorm statistics)",
            fix="call `model(example_input)` once",
        )
    if records[0].inference_mode:
        ex.fail(
            "the dry run ran under torch.inference_mode()",
            case=case,
            mistake="dry run under torch.inference_mode: the parameters are created as inference tensors, "
            "which never receive gradients",
            fix="use `with torch.no_grad():` for the dry run",
        )
    if records[0].grad_enabled or records[0].output_requires_grad:
        ex.fail(
            "the dry run recorded an autograd graph (gradients were enabled during the forward call)",
            case=case,
            mistake="graph built: the dry run was not wrapped in torch.no_grad()",
            fix="`with torch.no_grad(): model(example_input)`: a dry run only needs the shapes",
        )
    if result is not model:
        ex.fail(
            f"{name} returned {describe(result)}, not the model it was given",
            case=case,
            mistake="returning something else (the dry run's output, or a copy)",
            fix="the dry run changes the model in place: `return model`",
        )
    left = _lazy_names(model)
    if left:
        ex.fail(
            f"uninitialized tensors remain after {name}: {left}",
            case=case,
            fix="one call `model(example_input)` with an input that reaches every layer materializes "
            "them all",
        )
    inference = [n for n, p in _named_parameters(model) if p.is_inference()]
    if inference:
        ex.fail(
            f"parameters {inference} are inference tensors",
            case=case,
            mistake="dry run under torch.inference_mode: its parameters never receive gradients",
            fix="use `with torch.no_grad():` for the dry run",
        )
    modes_after = {name or "the model": module.training for name, module in _named_modules(model)}
    changed = [(n, before) for n, before in modes_before if modes_after.get(n, before) != before]
    if changed:
        listed = ", ".join(
            f"{n} {'train' if b else 'eval'} -> {'eval' if b else 'train'}" for n, b in changed
        )
        states_after = set(modes_after.values())
        own_flag = modes_before[0][1]  # named_modules() yields the model itself first
        if states_after == {own_flag} and len(set(before for _, before in modes_before)) > 1:
            mistake = (
                "mode changed: every submodule now has the model's own flag (model.train(was_training) "
                "sets it on every child, and so does m.train(flag) on a parent put back after its children)"
            )
        elif states_after == {False}:
            mistake = (
                "mode changed: model.eval() left on after the dry run (or the mode restored with "
                "model.train(was_training), which sets every submodule to the model's own flag)"
            )
        elif states_after == {True}:
            mistake = (
                "mode changed: train() forced after the dry run (model.train(), or model.train(was_training) "
                "to restore, sets every submodule, also those that were in eval mode)"
            )
        else:
            mistake = (
                "mode changed by the dry run (module.train(flag) also sets every child of that module: "
                "flags put back children first are overwritten by their parent's)"
            )
        ex.fail(
            f"train/eval flags changed: {listed}",
            case=case,
            mistake=mistake,
            fix="save every submodule's flag first, `modes = [(m, m.training) for m in model.modules()]`, "
            "and after the dry run put each one back with `m.training = flag` (m.train(flag) would also "
            "set m's children)",
        )
    ex.passed()


_STATISTICS_NOTE = (
    "note: your dry run ran with a BatchNorm in training mode, so it folded the example batch into that "
    "layer's running statistics. That meets the exercise (full marks); a dry run in eval mode, with every "
    "flag put back afterwards, would have left the statistics as they were."
)


def check_materialize(materialize, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Does ``materialize(model, example_input)`` run exactly one forward call under torch.no_grad(),
    leave every submodule's train/eval flag as it was, leave no uninitialized parameter, and return the
    model itself? Core: models whose modules are all in the model's mode (train or eval); ``part="edge"``:
    children in another mode than the model, a conv net, lazy and eager layers mixed, float64. A dry run
    in training mode passes (the contract allows it); a visible run then prints a note."""
    __tracebackhide__ = True
    statistics_updated = False
    with Exercise("materialize") as ex:
        for device in ex.devices:
            for index, item in enumerate(_lazy_models(seed, hidden, device, part)):
                result, records, grad_after, modes = _run_with_dry_run_probe(
                    item.model,
                    lambda item=item: ex.call(materialize, item.model, item.x, case=item.label),
                    seed + index,
                )
                _dry_run_problems(
                    ex, "materialize", item.model, result, records, grad_after, modes, item.label
                )
                statistics_updated = statistics_updated or records[0].batchnorm_training
    if statistics_updated and not hidden:
        print(_STATISTICS_NOTE)


_WEIGHT_VALUE = 0.3125  # exact in every float dtype: a fill is recognizable by equality
_BIAS_VALUE = -0.0625
_INIT_TYPES = (nn.Linear, nn.Conv2d)
_BEFORE_DRY_RUN = "init applied before the dry run: lazy parameters do not exist yet"


class _RecordingInit:
    """An init_fn that fills Linear/Conv2d weights with a constant and records every call.

    ``exact=True`` targets ``type(module) is nn.Linear`` (as d2l does): a LazyLinear is silently skipped.
    ``exact=False`` targets ``isinstance``: a LazyLinear matches and filling its uninitialized weight
    raises, as most real init functions do."""

    def __init__(self, exact: bool) -> None:
        self.exact = exact
        self.calls: dict[int, int] = {}
        self.lazy_when_called: set[int] = set()

    def __call__(self, module: nn.Module) -> None:
        key = id(module)
        self.calls[key] = self.calls.get(key, 0) + 1
        own = [*_named_parameters(module, recurse=False), *_named_buffers(module, recurse=False)]
        if any(_is_lazy(tensor) for _, tensor in own):
            self.lazy_when_called.add(key)
        hit = _type(module) in _INIT_TYPES if self.exact else _isinstance(module, _INIT_TYPES)
        if hit:
            with torch.no_grad():
                module.weight.fill_(_WEIGHT_VALUE)
                if module.bias is not None:
                    module.bias.fill_(_BIAS_VALUE)


def _init_hints(exc: BaseException):
    if "uninitialized parameter" in str(exc):
        return (
            _BEFORE_DRY_RUN + " (init_fn touched an UninitializedParameter)",
            "run the dry run first (materialize), then `model.apply(init_fn)`",
        )
    return None


def check_init_lazy(init_lazy, *, hidden: bool = False, seed: int = 0) -> None:
    """Does ``init_lazy(model, example_input, init_fn)`` materialize the model with one dry run under
    torch.no_grad(), then apply ``init_fn`` once to every submodule, and return the model?"""
    __tracebackhide__ = True
    with Exercise("init_lazy") as ex:
        for device in ex.devices:
            for exact in (True, False) if hidden else (True,):
                models = [*_lazy_models(seed + 1, hidden, device, CORE)]
                models += _lazy_models(seed + 2, hidden, device, EDGE)
                for index, item in enumerate(models):
                    init_fn = _RecordingInit(exact)
                    label = f"{item.label}; init_fn fills Linear and Conv2d weights with {_WEIGHT_VALUE}"
                    result, records, grad_after, modes = _run_with_dry_run_probe(
                        item.model,
                        lambda item=item, init_fn=init_fn, label=label: ex.call(
                            init_lazy, item.model, item.x, init_fn, case=label, hints=_init_hints
                        ),
                        seed + index,
                    )
                    _dry_run_problems(ex, "init_lazy", item.model, result, records, grad_after, modes, label)
                    _init_problems(ex, item.model, init_fn, label)


def _init_problems(ex: Exercise, model: nn.Module, init_fn: _RecordingInit, label: str) -> None:
    modules = list(_named_modules(model))
    if not any(init_fn.calls.get(id(module)) for _, module in modules):
        ex.fail(
            "init_fn was never called",
            case=label,
            fix="after the dry run, `model.apply(init_fn)` calls it on every submodule",
        )
    for name, module in modules:
        if _type(module) not in _INIT_TYPES:
            continue
        expected_weight = torch.full_like(module.weight, _WEIGHT_VALUE)
        if not _equal(module.weight.detach(), expected_weight):
            before = id(module) in init_fn.lazy_when_called
            ex.fail(
                f"{name}.weight does not hold the value init_fn wrote ({_WEIGHT_VALUE}): it has PyTorch's "
                "default initialization",
                case=label,
                mistake=_BEFORE_DRY_RUN if before else "init_fn not applied to this layer after the dry run",
                fix="run the dry run first, then `model.apply(init_fn)`",
            )
    for name, module in modules:
        count = init_fn.calls.get(id(module), 0)
        if count != 1:
            where = name or "the model itself"
            ex.fail(
                f"init_fn was called {count} times on {where}, expected once on every submodule",
                case=label,
                mistake="init_fn applied twice" if count > 1 else "init_fn not applied to every submodule",
                fix="call `model.apply(init_fn)` once: it visits every submodule, then the model itself",
            )
    ex.passed()


# -- LazyScale ---------------------------------------------------------------------------------------

_PLACEHOLDER = "placeholder created in forward: invisible to an optimizer built before the first call"
_DECLARE = (
    "subclass LazyModuleMixin first (`class LazyScale(LazyModuleMixin, nn.Module)`), declare "
    "`self.weight = UninitializedParameter()` in __init__, and materialize it in initialize_parameters"
)
_MATERIALIZE = (
    "materialize the existing parameter in place: `self.weight.materialize((x.shape[-1],), dtype=x.dtype, "
    "device=x.device)`, then fill it with ones under torch.no_grad()"
)


def _scale_hints(exc: BaseException):
    text = str(exc)
    if "uninitialized parameter" in text:
        return (
            "forward used weight before initialize_parameters ran (LazyModuleMixin missing, or not the "
            "first base class)",
            "`class LazyScale(LazyModuleMixin, nn.Module)`: the mixin must come first so that its "
            "pre-forward hook calls initialize_parameters",
        )
    if "not been fully initialized" in text:
        return ("initialize_parameters did not materialize weight", _MATERIALIZE)
    if "no attribute 'materialize'" in text:
        return (
            "initialize_parameters not guarded: weight was already materialized (by load_state_dict) and "
            "cannot be materialized again",
            "wrap its body in `if self.has_uninitialized_params():`, as nn.LazyLinear does",
        )
    if "cannot assign" in text and "parameter" in text:
        return ("plain tensor assigned instead of a Parameter", _MATERIALIZE)
    if "leaf Variable that requires grad" in text:
        return (
            "the weight was filled in place while autograd was recording",
            "fill it inside `with torch.no_grad():` (or with nn.init.ones_, which does that for you)",
        )
    if "must match the size of tensor" in text:
        return (
            "weight of the wrong shape: it needs one entry per feature, x.shape[-1] (not x.shape[0], the "
            "batch size)",
            _MATERIALIZE,
        )
    return None


def _load_hints(exc: BaseException):
    text = str(exc)
    # An UninitializedParameter has no shape (torch.Size([0])): only the mixin's hook gives it one.
    if "uninitialized parameter" in text or "in the model are torch.Size([0])" in text:
        return (
            "LazyModuleMixin missing (or not the first base class): without its load_state_dict hook, a "
            "fresh LazyScale cannot give its placeholder the loaded weight's shape",
            "`class LazyScale(LazyModuleMixin, nn.Module)`, and materialize weight in initialize_parameters",
        )
    return _scale_hints(exc)


def _scale_weight(ex: Exercise, module: nn.Module, label: str, *, before_call: bool) -> nn.Parameter:
    """The module's registered ``weight`` parameter, failing with the placeholder or buffer diagnosis."""
    parameters = dict(_named_parameters(module))
    weight = parameters.get("weight")
    if weight is None:
        buffers = dict(_named_buffers(module))
        attribute = module.__dict__.get("weight", None)
        if "weight" in buffers:
            ex.fail(
                "weight is a buffer, not a parameter: optimizers never see it",
                case=label,
                mistake="plain tensor instead of Parameter (registered as a buffer)",
                fix=_DECLARE,
            )
        seen = (
            "no parameter named weight" if attribute is None else f"weight is a plain {describe(attribute)}"
        )
        ex.fail(
            f"{seen} {'before the first call' if before_call else 'after the first call'} "
            f"(parameters: {sorted(parameters)})",
            case=label,
            mistake=_PLACEHOLDER if before_call else "plain tensor instead of Parameter",
            fix=_DECLARE,
        )
    others = sorted(set(parameters) - {"weight"})
    if others:
        ex.fail(
            f"LazyScale has parameters besides weight: {others}",
            case=label,
            fix="its only parameter is weight (F,)",
        )
    return weight


def _weight_diagnosis(x: torch.Tensor):
    def diagnose(actual: torch.Tensor):
        if actual.shape == x.shape:
            return ("weight of shape (N, F): it should hold one number per feature", _MATERIALIZE)
        if actual.dim() == 0:
            return ("scalar weight: it should hold one number per feature", _MATERIALIZE)
        if actual.shape == (x.shape[0],) and x.shape[0] != x.shape[-1]:
            return ("weight sized by the batch, x.shape[0], not by the features, x.shape[-1]", _MATERIALIZE)
        if actual.shape != (x.shape[-1],):
            return None
        if actual.dtype != x.dtype or actual.device != x.device:
            return (
                "the input's dtype and device ignored: materialize without dtype= and device= keeps the "
                "placeholder's default (float32, CPU)",
                _MATERIALIZE,
            )
        return (
            "weight not set to ones (materialize allocates memory without initializing it)",
            "fill it: `with torch.no_grad(): self.weight.fill_(1.0)` (or nn.init.ones_(self.weight))",
        )

    return diagnose


def _output_diagnosis(ex: Exercise, x: torch.Tensor):
    def diagnose(actual: torch.Tensor):
        if ex.is_close(actual, x):
            return ("forward ignores weight", "return `x * self.weight`")
        return None

    return diagnose


@dataclass
class _ScaleCase:
    batch: int
    features: int
    dtype: torch.dtype
    dry_run: bool = False  # the first call under torch.no_grad(), as materialize does


def _check_one_scale(ex: Exercise, LazyScale, case: _ScaleCase, device: torch.device, seed: int) -> None:
    x = _randn((case.batch, case.features), seed, case.dtype, device)
    label = f"LazyScale(), first call on x of shape {tuple(x.shape)}, {_dtype_name(case.dtype)} on {device}"
    if case.dry_run:
        label += " under torch.no_grad() (a dry run), then trained"
    with seeded(seed):
        module = ex.call(LazyScale, case="LazyScale()", hints=_scale_hints)
    ex.expect_instance(
        module, nn.Module, "LazyScale()", case=label, fix="subclass LazyModuleMixin and nn.Module"
    )

    weight = _scale_weight(ex, module, label, before_call=True)
    if not _is_lazy(weight):
        ex.fail(
            f"before the first call weight is already a {describe(weight)}, not an UninitializedParameter",
            case=label,
            mistake="weight created with a fixed shape before the input is known",
            fix=_DECLARE,
        )
    ex.passed()

    # Built before the first call, as a training script would: it must train the weight the call creates.
    optimizer = torch.optim.SGD([p for _, p in _named_parameters(module)], lr=0.1)
    with seeded(seed), torch.set_grad_enabled(not case.dry_run):
        y = ex.call(module, x, case=label, hints=_scale_hints)
    weight = _scale_weight(ex, module, label, before_call=False)
    if _type(weight) is not nn.Parameter:
        ex.fail(
            f"after the first call weight is a {_type(weight).__name__}, expected an nn.Parameter",
            case=label,
            fix=_MATERIALIZE,
        )
    ex.assert_close(
        weight.detach(),
        torch.ones(case.features, dtype=case.dtype, device=device),
        "weight after the first call",
        case=label,
        diagnose=_weight_diagnosis(x),
    )
    if not weight.requires_grad:
        ex.fail(
            "weight does not require grad",
            case=label,
            fix="a materialized parameter trains: keep requires_grad",
        )
    ex.assert_close(y, x * 1.0, "the output of the first call (x * ones)", case=label)

    # A later call multiplies by whatever weight holds now.
    new_weight = _randn((case.features,), seed + 1, case.dtype, device)
    with torch.no_grad():
        weight.copy_(new_weight)
    y = ex.call(module, x, case=label, hints=_scale_hints)
    ex.assert_close(
        y,
        x * new_weight,
        "the output with weight set to other values (x * weight)",
        case=label,
        diagnose=_output_diagnosis(ex, x),
    )

    # One SGD step with the optimizer built before the first call.
    grad_output = _randn(tuple(x.shape), seed + 2, case.dtype, device)
    optimizer.zero_grad()
    y = ex.call(module, x, case=label, hints=_scale_hints)
    loss = (ex.expect_tensor(y, "the output", case=label) * grad_output).sum()
    loss.backward()
    optimizer.step()
    expected = new_weight - 0.1 * (x * grad_output).sum(0)
    if _equal(weight.detach(), new_weight):
        replaced = all(p is not weight for group in optimizer.param_groups for p in group["params"])
        ex.fail(
            "an optimizer built before the first call did not change weight after loss.backward(); "
            "optimizer.step()",
            case=label,
            mistake=_PLACEHOLDER
            + (" (weight was replaced by a new Parameter on the first call)" if replaced else ""),
            fix=_MATERIALIZE,
        )
    ex.assert_close(weight.detach(), expected, "weight after one SGD step (lr=0.1)", case=label)


def _check_scale_state_dict(ex: Exercise, LazyScale, device: torch.device, seed: int, features: int) -> None:
    """A materialized LazyScale's state_dict loads into a fresh one, whose first call then uses it."""
    x = _randn((3, features), seed, torch.float32, device)
    label = (
        f"state_dict of a LazyScale materialized on x {tuple(x.shape)}, loaded into a fresh LazyScale "
        f"on {device}"
    )
    with seeded(seed):
        source = ex.call(LazyScale, case=label, hints=_scale_hints)
        ex.call(source, x, case=label, hints=_scale_hints)
    weight = _scale_weight(ex, source, label, before_call=False)
    with torch.no_grad():
        weight.copy_(_randn((features,), seed + 1, torch.float32, device))
    state = ex.call(source.state_dict, case=label)
    with seeded(seed):
        fresh = ex.call(LazyScale, case=label, hints=_scale_hints)
    ex.call(fresh.to, device, case=label)
    ex.call(fresh.load_state_dict, state, case=label, hints=_load_hints)
    loaded = _scale_weight(ex, fresh, label, before_call=False)
    ex.assert_close(loaded.detach(), weight.detach(), "the loaded weight", case=label)
    y = ex.call(fresh, x, case=label + ", then called", hints=_scale_hints)
    if ex.is_close(y, x) and not ex.is_close(weight.detach(), torch.ones_like(weight)):
        ex.fail(
            "the first call after load_state_dict reset weight to ones",
            case=label,
            mistake="initialize_parameters not guarded: it overwrites loaded weights on the first call",
            fix="wrap its body in `if self.has_uninitialized_params():`, as nn.LazyLinear does",
        )
    ex.assert_close(y, x * weight.detach(), "the output after loading (x * loaded weight)", case=label)


# Core: float32 inputs, the weight trained by an optimizer built before the first call. Edge: the input's
# dtype (float64), a single feature, a first call under torch.no_grad(), and a state_dict round trip.
_SCALE_CASES = {
    CORE: [_ScaleCase(4, 3, torch.float32), _ScaleCase(3, 3, torch.float32)],
    EDGE: [
        _ScaleCase(2, 5, torch.float64),
        _ScaleCase(1, 1, torch.float64),
        _ScaleCase(3, 4, torch.float32, dry_run=True),
    ],
}


def _hidden_scale_cases(seed: int, part: str) -> list[_ScaleCase]:
    generator = torch.Generator().manual_seed(seed)
    if part == CORE:
        return [_ScaleCase(_draw(generator, 1, 6), _draw(generator, 1, 12), torch.float32) for _ in range(4)]
    cases = [_ScaleCase(_draw(generator, 1, 6), _draw(generator, 1, 12), torch.float64) for _ in range(2)]
    cases.append(_ScaleCase(_draw(generator, 1, 6), _draw(generator, 1, 12), torch.float64, dry_run=True))
    return cases


def check_LazyScale(LazyScale, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Is ``LazyScale()`` a lazy module whose UninitializedParameter ``weight`` becomes ones of shape
    (F,) with the input's dtype and device at the first call, is trained by an optimizer built before
    that call, multiplies its input, and saves and loads with state_dict? Core: float32 inputs;
    ``part="edge"``: float64, one feature, a first call under torch.no_grad(), a state_dict loaded into a
    fresh LazyScale."""
    __tracebackhide__ = True
    cases = _hidden_scale_cases(seed, part) if hidden else _SCALE_CASES[part]
    with Exercise("LazyScale") as ex:
        for device in ex.devices:
            for index, case in enumerate(cases):
                _check_one_scale(ex, LazyScale, case, device, seed * 100 + index)
            if part == EDGE:
                _check_scale_state_dict(ex, LazyScale, device, seed + 7, cases[0].features + 1)


protect_module(__name__)
