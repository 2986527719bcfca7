"""Checks for notebook 08_hooks: ``ActivationRecorder``, ``output_grad_norms`` and ``clamp_output``.

Hooks are state: a hook that is not removed keeps running, and a recorded tensor that is not detached
keeps its whole autograd graph alive. So besides comparing results with what PyTorch itself computes,
every check looks for leaks: hooks left on any module of the model (or in PyTorch's global hook
tables), pre-existing hooks removed, recorded tensors still attached to the graph, and ``.grad`` fields
changed by a function that promised to leave them alone. Each check has two parts: ``part="core"`` (the
main behaviour) and ``part="edge"`` (edge cases); ``hidden=True`` adds random depths, widths, dtypes and
nested models (used by the hidden tests at grading time).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as _module_globals
from torch.utils.hooks import RemovableHandle

from course_lib.checks._core import Exercise, Scale, seeded, tolerances
from course_lib.checks._integrity import ORIGINALS, protect_module
from course_lib.protocol import CORE, EDGE

__all__ = ["check_ActivationRecorder", "check_output_grad_norms", "check_clamp_output"]

_equal = ORIGINALS["equal"]
_type = ORIGINALS["type"]
_isinstance = ORIGINALS["isinstance"]


# -- models the checks hook into ------------------------------------------------------------------------
class _Nested(nn.Module):
    """Linear layers at two depths: ``encoder.fc1`` (inside a Sequential) and ``head``."""

    def __init__(self, in_features: int, hidden: int, out_features: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(OrderedDict(fc1=nn.Linear(in_features, hidden), act=nn.Tanh()))
        self.head = nn.Linear(hidden, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


class _LinearWithAdapter(nn.Linear):
    """A model that is itself an ``nn.Linear`` and has a Linear child ``adapter``: only the child is a
    submodule to record."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features)
        self.adapter = nn.Linear(out_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(torch.relu(super().forward(x)))


class _ScaledLinear(nn.Linear):
    """A subclass of ``nn.Linear``: ``layer_types=(nn.Linear,)`` must match it, as ``isinstance`` does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * super().forward(x)


class _FirstHalf(nn.Module):
    """Returns a view of its input (the first half of its features), so an in-place change to the output
    changes the caller's input too."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., : (x.shape[-1] + 1) // 2]


def _mlp(sizes: list[int], activation: type[nn.Module] = nn.ReLU, last: type[nn.Linear] = nn.Linear):
    """Linear, activation, Linear, ... , Linear (the last one of class ``last``)."""
    layers: list[nn.Module] = []
    for index, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if index == len(sizes) - 2:
            layers.append(last(a, b))
        else:
            layers += [nn.Linear(a, b), activation()]
    return nn.Sequential(*layers)


def _build(factory: Callable[[], nn.Module], seed: int, device: torch.device, dtype: torch.dtype):
    with seeded(seed):  # parameter initialization must not move the notebook's own RNG
        model = factory()
    return model.to(device=device, dtype=dtype)


def _randn(shape, seed: int, device: torch.device, dtype: torch.dtype, scale: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(shape, generator=generator, dtype=dtype)).to(device)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _names(model: nn.Module, layer_types: tuple[type, ...]) -> list[str]:
    """Qualified names of the submodules (not the model itself) that are instances of ``layer_types``."""
    return [name for name, module in model.named_modules() if name and _isinstance(module, layer_types)]


# -- hooks as state: a snapshot of every hook table ------------------------------------------------------
_HOOK_TABLES = {
    "_forward_hooks": "forward hook",
    "_forward_pre_hooks": "forward-pre hook",
    "_backward_hooks": "backward hook",
    "_backward_pre_hooks": "backward-pre hook",
}
_GLOBAL_TABLES = {
    "_global_forward_hooks": "global forward hook",
    "_global_forward_pre_hooks": "global forward-pre hook",
    "_global_backward_hooks": "global backward hook",
    "_global_backward_pre_hooks": "global backward-pre hook",
}


def _hooks(model: nn.Module) -> dict[tuple[str, str], frozenset]:
    """``{(where, kind): ids of the hooks registered there}`` for every module of ``model`` and for
    PyTorch's global module hooks."""
    found = {}
    for name, module in model.named_modules(remove_duplicate=False):
        for table, kind in _HOOK_TABLES.items():
            where = repr(name) if name else f"the {'model' if module._modules else 'module'} itself"
            found[(where, kind)] = frozenset(getattr(module, table))
    for table, kind in _GLOBAL_TABLES.items():
        found[("every module", kind)] = frozenset(getattr(_module_globals, table, {}))
    return found


def _hook_changes(before: dict, after: dict) -> tuple[str, str]:
    """``(added, removed)``: short descriptions such as ``2 forward hooks on '0'``, empty if none."""
    added, removed = [], []
    for key in sorted(set(before) | set(after)):
        where, kind = key
        old, new = before.get(key, frozenset()), after.get(key, frozenset())
        for count, into in ((len(new - old), added), (len(old - new), removed)):
            if count:
                into.append(f"{count} {kind}{'s' if count > 1 else ''} on {where}")
    return ", ".join(added[:4]), ", ".join(removed[:4])


def _expect_no_hook_changes(
    ex: Exercise, model: nn.Module, before: dict, *, when: str, case: str, mistake: str, fix: str
) -> None:
    added, removed = _hook_changes(before, _hooks(model))
    if added:
        ex.fail(f"hooks left registered {when}: {added}", case=case, mistake=mistake, fix=fix)
    if removed:
        ex.fail(
            f"hooks that were there before are gone {when}: {removed}",
            case=case,
            mistake="hooks removed that your code did not add (e.g. module._forward_hooks.clear())",
            fix="remove only your own hooks, through the handles their register_... call returned",
        )
    ex.passed()


def _dict_view(ex: Exercise, value, what: str, *, case: str, fix: str) -> dict:
    """``value`` must be a dict (subclasses allowed); returns a plain dict copy (no student methods)."""
    ex.expect_instance(value, dict, what, case=case, fix=fix)
    return {key: dict.__getitem__(value, key) for key in dict.keys(value)}


def _key_problem(keys, expected: list[str]) -> tuple[str, str] | None:
    """``(mistake, fix)`` when the keys are not qualified names (strings), else None."""
    if all(_type(key) is str for key in keys):
        return None
    if any(_isinstance(key, nn.Module) for key in keys):
        return (
            "keyed by module object instead of by qualified name",
            "iterate `for name, module in model.named_modules()` and use `name` as the key",
        )
    return (
        f"keys should be the qualified names from named_modules() (strings such as {expected[:2]})",
        "use the `name` that named_modules() gives with each module as the key",
    )


# =========================================================================================================
# ActivationRecorder
# =========================================================================================================
_REMOVE_FIX = (
    "keep the handle that register_forward_hook returns (self.handles.append(...)) and call "
    "handle.remove() on each in __exit__"
)


class _BodyError(Exception):
    """Raised by the check inside the with block, to see that the recorder lets it through."""


def _enter(recorder):
    return _type(recorder).__enter__(recorder)


def _exit(recorder, exc_type=None, exc=None, traceback=None):
    return _type(recorder).__exit__(recorder, exc_type, exc, traceback)


def _raise_inside(recorder, model: nn.Module, x: torch.Tensor):
    """Run ``with recorder: model(x); raise _BodyError`` and return the exception that came out (None if
    it was swallowed)."""
    try:
        with recorder:
            model(x)
            raise _BodyError("raised by the check inside the with block")
    except _BodyError as exc:
        return exc
    return None


def _recorder_hints(exc: BaseException):
    text = str(exc)
    if "__exit__" in text and ("positional argument" in text or "takes" in text):
        return (
            "__exit__ with the wrong signature",
            "define `def __exit__(self, exc_type, exc, traceback):` (Python passes the exception, if any)",
        )
    if "__enter__" in text or "__exit__" in text or "context manager" in text:
        return (
            "ActivationRecorder is not a context manager",
            "define __enter__ (register the hooks, `return self`) and __exit__ (remove them)",
        )
    if "layer_types" in text and "argument" in text:
        return (
            "the constructor's second parameter must be called layer_types",
            "def __init__(self, model, layer_types=(nn.Linear,)):",
        )
    if "activations" in text and "attribute" in text:
        return ("the recorder has no activations dict", "create it in __init__: self.activations = {}")
    if "unhashable" in text:
        return (
            "keyed by something unhashable instead of by qualified name",
            "use the `name` from model.named_modules() as the key",
        )
    return None


class _Capture:
    """The check's own forward hooks on every submodule: each one's latest output (detached copy).
    They are also 'hooks the model had before' the recorder, which must survive it."""

    def __init__(self, model: nn.Module) -> None:
        self.outputs: dict[str, torch.Tensor] = {}
        self.inputs: dict[str, torch.Tensor] = {}
        self.handles = [
            module.register_forward_hook(self._hook(name)) for name, module in model.named_modules() if name
        ]

    def _hook(self, name: str):
        def hook(module, args, output):
            self.outputs[name] = output.detach().clone()
            if args and _type(args[0]) is torch.Tensor:
                self.inputs[name] = args[0].detach().clone()

        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _expected_keys_diagnosis(model: nn.Module, layer_types: tuple[type, ...], got: set[str]):
    expected = set(_names(model, layer_types))
    if got - {name for name, _ in model.named_modules()}:
        return (
            "state kept in class attributes: the keys come from another model, so every recorder shares one "
            "activations dict (an `activations = {}` in the class body)",
            "create it per recorder in __init__: self.activations = {}",
        )
    if "" in got:
        return (
            "root recorded: named_modules() yields the model itself first, under the name ''",
            "skip it: record only submodules (`if name and isinstance(module, self.layer_types)`)",
        )
    if set(layer_types) != {nn.Linear} and got == set(_names(model, (nn.Linear,))):
        return (
            "layer_types ignored (only nn.Linear recorded)",
            "test `isinstance(module, self.layer_types)` with the types given to the constructor",
        )
    exact = {name for name, m in model.named_modules() if name and _type(m) in layer_types}
    if got == exact and exact != expected:
        return (
            "subclasses of the layer types not matched (type(module) compared instead of isinstance)",
            "use `isinstance(module, self.layer_types)`, which accepts subclasses too",
        )
    children = {name for name, m in model.named_children() if _isinstance(m, layer_types)}
    if got == children and children != expected:
        return (
            "only direct children hooked (named_children() instead of named_modules())",
            "iterate model.named_modules(), which reaches nested modules such as 'encoder.fc1'",
        )
    return None


def _check_model_output(ex: Exercise, model: nn.Module, out, expected: torch.Tensor, label: str) -> None:
    """The model's output while recording: unchanged values, and gradients still reach every parameter."""
    ex.assert_close(out, expected, "the model's output while recording", case=label)
    replaced = (
        "your hook changed the layers' outputs: a forward hook that returns a value replaces the output "
        "(returning output.detach() cuts the graph), and detach_() detaches the real output in place"
    )
    fix = "store `output.detach()` in self.activations and return nothing from the hook"
    if not out.requires_grad:
        ex.fail(
            "the model's output no longer requires grad while recording",
            case=label,
            mistake=replaced,
            fix=fix,
        )
    named = list(model.named_parameters())
    grads = torch.autograd.grad(out.sum(), [p for _, p in named], allow_unused=True)
    cut = [name for (name, _), grad in zip(named, grads, strict=True) if grad is None]
    if cut:
        ex.fail(
            f"while recording, no gradient reaches {cut[:3]} any more",
            case=label,
            mistake=replaced,
            fix=fix,
        )
    ex.passed()


def _check_activations(
    ex: Exercise,
    recorder,
    model: nn.Module,
    layer_types: tuple[type, ...],
    latest: dict[str, torch.Tensor],
    first: dict[str, torch.Tensor],
    label: str,
    when: str,
    inputs: dict[str, torch.Tensor] | None = None,
) -> None:
    """``recorder.activations`` holds, for every matching submodule, the detached latest output
    (``inputs``: each submodule's latest input, to recognize a recorded input)."""
    value = ex.call(getattr, recorder, "activations", case=label)
    activations = _dict_view(
        ex, value, "recorder.activations", case=label, fix="create it in __init__: self.activations = {}"
    )
    expected = _names(model, layer_types)
    problem = _key_problem(activations, expected)
    if problem:
        ex.fail(
            f"recorder.activations has keys that are not names {when}",
            case=label,
            mistake=problem[0],
            fix=problem[1],
        )
    got = set(activations)
    if got != set(expected):
        if not got and when == "after the with block":
            diagnosis = (
                "recordings cleared in __exit__: the activations must stay after the with block",
                "in __exit__ remove the hooks only; leave self.activations as it is",
            )
        else:
            diagnosis = _expected_keys_diagnosis(model, layer_types, got)
        mistake, fix = diagnosis or (
            None,
            "hook every submodule that is an instance of layer_types, keyed by its qualified name",
        )
        ex.fail(
            f"recorder.activations has keys {sorted(got)} {when}, expected {sorted(expected)}",
            case=label,
            mistake=mistake,
            fix=fix,
        )
    for name in expected:
        record = ex.expect_tensor(activations[name], f"activations[{name!r}]", case=label)
        if record.requires_grad or record.grad_fn is not None:
            ex.fail(
                f"activations[{name!r}] is still attached to the autograd graph (requires_grad=True)",
                case=label,
                mistake="output not detached: each recorded tensor keeps the forward pass's whole graph "
                "alive, so memory grows with every batch",
                fix="store `output.detach()`",
            )

        def diagnose(actual, name=name):
            if ex.is_close(actual, first[name]):
                return (
                    "first call's output kept instead of the latest",
                    "overwrite the entry on every call: `self.activations[name] = output.detach()`",
                )
            if inputs is not None and name in inputs and ex.is_close(actual, inputs[name]):
                return (
                    "the layer's input recorded instead of its output (a forward-pre hook, or args[0])",
                    "use register_forward_hook and store its third argument: `output.detach()`",
                )
            return None

        ex.assert_close(record, latest[name], f"activations[{name!r}] {when}", case=label, diagnose=diagnose)


def _check_recording(
    ex: Exercise,
    ActivationRecorder,
    model: nn.Module,
    layer_types: tuple[type, ...] | None,
    x1: torch.Tensor,
    x2: torch.Tensor,
    label: str,
    by_keyword: bool = False,
) -> None:
    """Record two forward passes in a with block; check the records, the hooks and the model's output."""
    types = layer_types if layer_types is not None else (nn.Linear,)
    capture = _Capture(model)  # the hooks the model "had before"
    try:
        with torch.no_grad():
            model(x1)
            first = dict(capture.outputs)
            expected_out = model(x2)
            latest, inputs = dict(capture.outputs), dict(capture.inputs)
        before = _hooks(model)
        if layer_types is None:
            recorder = ex.call(ActivationRecorder, model, case=label, hints=_recorder_hints)
        elif by_keyword:
            recorder = ex.call(
                ActivationRecorder, model, layer_types=layer_types, case=label, hints=_recorder_hints
            )
        else:
            recorder = ex.call(ActivationRecorder, model, layer_types, case=label, hints=_recorder_hints)
        _expect_no_hook_changes(
            ex,
            model,
            before,
            when="by the constructor, before the with block",
            case=label,
            mistake="hooks registered in __init__ instead of __enter__ (a recorder that is never entered "
            "would leave them forever)",
            fix="register the hooks in __enter__, remove them in __exit__",
        )
        entered = ex.call(_enter, recorder, case=label, hints=_recorder_hints)
        if entered is not recorder:
            ex.fail(
                f"`with ActivationRecorder(model) as recorder:` gave {_type(entered).__name__}, "
                "not the recorder",
                case=label,
                mistake="__enter__ does not return self",
                fix="end __enter__ with `return self`",
            )
        ex.call(model, x1, case=label)
        out = ex.call(model, x2, case=label)
        _check_model_output(ex, model, out, expected_out, label)
        _check_activations(ex, recorder, model, types, latest, first, label, "inside the with block", inputs)
        ex.call(_exit, recorder, case=label, hints=_recorder_hints)
        _expect_no_hook_changes(
            ex,
            model,
            before,
            when="after the with block",
            case=label,
            mistake="handles not removed in __exit__",
            fix=_REMOVE_FIX,
        )
        with torch.no_grad():
            model(x1)  # no hook of the recorder runs any more: the records keep the latest values
        _check_activations(ex, recorder, model, types, latest, first, label, "after the with block")
    finally:
        capture.remove()


def _check_exception(ex: Exercise, ActivationRecorder, model: nn.Module, x: torch.Tensor, label: str) -> None:
    """An exception raised in the with body comes out unchanged, and the hooks are removed anyway."""
    before = _hooks(model)
    recorder = ex.call(ActivationRecorder, model, case=label, hints=_recorder_hints)
    came_out = ex.call(_raise_inside, recorder, model, x, case=label, hints=_recorder_hints)
    if came_out is None:
        ex.fail(
            "an exception raised inside the with block was swallowed",
            case=label,
            mistake="__exit__ returns True (or another true value), which tells Python to suppress the "
            "exception",
            fix="return None (or False) from __exit__ so that errors in the with block still show",
        )
    _expect_no_hook_changes(
        ex,
        model,
        before,
        when="after the with block raised an exception",
        case=label,
        mistake="handles not removed when the with block raised (removal skipped on the error path)",
        fix="remove every handle in __exit__ whatever exc_type is (Python calls __exit__ on errors too)",
    )


def _check_two_recorders(ex: Exercise, ActivationRecorder, model: nn.Module, x1, x2, label: str) -> None:
    """A recorder of Linear layers and, nested inside it, one of ReLUs: each keeps its own records, and the
    outer one keeps recording after the inner one exits."""
    capture = _Capture(model)
    try:
        with torch.no_grad():
            model(x1)
            relu_x1 = dict(capture.outputs)
            model(x2)
            linear_x2 = dict(capture.outputs)
        before = _hooks(model)
        outer = ex.call(ActivationRecorder, model, (nn.Linear,), case=label, hints=_recorder_hints)
        inner = ex.call(ActivationRecorder, model, (nn.ReLU,), case=label, hints=_recorder_hints)

        def run() -> None:
            with outer:
                with inner:
                    model(x1)
                model(x2)

        ex.call(run, case=label, hints=_recorder_hints)
        shared = (
            "state kept in class attributes (an `activations = {}` or `handles = []` in the class body is "
            "shared by every recorder)",
            "create them per recorder in __init__: self.activations = {}; self.handles = []",
        )
        for recorder, types, values, what in (
            (outer, (nn.Linear,), linear_x2, "the outer recorder (nn.Linear) after its second forward"),
            (inner, (nn.ReLU,), relu_x1, "the inner recorder (nn.ReLU)"),
        ):
            activations = _dict_view(
                ex,
                ex.call(getattr, recorder, "activations", case=label),
                "recorder.activations",
                case=label,
                fix="create it in __init__: self.activations = {}",
            )
            expected = _names(model, types)
            if _key_problem(activations, expected) is None and set(activations) != set(expected):
                ex.fail(
                    f"with two recorders on one model, {what} has keys {sorted(activations)}, "
                    f"expected {sorted(expected)}",
                    case=label,
                    mistake=shared[0],
                    fix=shared[1],
                )
            for name in expected:
                record = ex.expect_tensor(activations.get(name), f"activations[{name!r}]", case=label)
                if not ex.is_close(record, values[name]):
                    ex.fail(
                        f"with two recorders on one model, {what} holds wrong values for {name!r}",
                        case=label,
                        mistake=shared[0] + "; or the inner recorder removed the outer one's hooks",
                        fix=shared[1],
                    )
            ex.passed()
        _expect_no_hook_changes(
            ex,
            model,
            before,
            when="after two nested recorders",
            case=label,
            mistake="handles not removed",
            fix=_REMOVE_FIX,
        )
    finally:
        capture.remove()


_RecorderCase = tuple[Callable[[], nn.Module], tuple[type, ...] | None, tuple[int, ...], torch.dtype, bool]

# (model factory, layer_types or None for the default, x shape, dtype, layer_types given by keyword)
# Core: recording Linear layers (nested ones too) and the layer types given. Edge: a model that is itself a
# Linear, a subclass of Linear, other layer types only; and (below) an error in the with block and two
# recorders on one model.
_RECORDER_CASES: dict[str, list[_RecorderCase]] = {
    CORE: [
        (lambda: _mlp([4, 6, 3]), None, (5, 4), torch.float32, False),
        (lambda: _Nested(3, 5, 2), (nn.Linear, nn.Tanh), (4, 3), torch.float32, True),
    ],
    EDGE: [
        (lambda: _LinearWithAdapter(3, 4), None, (2, 3), torch.float32, False),  # the root is a Linear
        (lambda: _mlp([4, 6, 3], last=_ScaledLinear), None, (3, 4), torch.float32, False),  # a subclass
        (lambda: _mlp([4, 6, 5, 3]), (nn.ReLU,), (3, 4), torch.float32, False),
    ],
}


def _hidden_recorder_cases(seed: int, part: str) -> list[_RecorderCase]:
    generator = torch.Generator().manual_seed(seed)

    def draw(low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (1,), generator=generator))

    width = draw(2, 6)
    if part == EDGE:
        return [
            (lambda w=width: _Nested(w, 4, 3), (nn.Module,), (3, width), torch.float64, False),  # everything
            (lambda w=width: _LinearWithAdapter(w, 3), (nn.Linear,), (2, width), torch.float64, True),
            (lambda w=width: _mlp([w, 5, 2], last=_ScaledLinear), None, (4, width), torch.float64, False),
        ]
    cases: list[_RecorderCase] = []
    for dtype in (torch.float32, torch.float64):
        sizes = [draw(1, 7) for _ in range(draw(2, 6))]
        activation = (nn.ReLU, nn.Tanh, nn.Sigmoid)[draw(0, 2)]
        cases.append((lambda s=sizes, a=activation: _mlp(s, a), None, (draw(1, 6), sizes[0]), dtype, False))
    cases.append(
        (
            lambda w=width: nn.Sequential(nn.Linear(w, 5), nn.Sequential(_mlp([5, 4, 2]), nn.Tanh())),
            (nn.Linear,),
            (2, width),
            torch.float64,
            True,
        )
    )
    return cases


def check_ActivationRecorder(
    ActivationRecorder, *, part: str = CORE, hidden: bool = False, seed: int = 0
) -> None:
    """Does ``ActivationRecorder(model, layer_types)`` record the detached latest output of every matching
    submodule under its qualified name, and remove exactly its own hooks on exit, even after an error?
    Core: Linear layers, nested ones too, and the layer types given; ``part="edge"``: a model that is
    itself a Linear, subclasses, other layer types, an exception in the with block, two recorders."""
    __tracebackhide__ = True
    cases = _hidden_recorder_cases(seed, part) if hidden else _RECORDER_CASES[part]
    with Exercise("ActivationRecorder") as ex:
        for device in ex.devices:
            for index, (factory, layer_types, x_shape, dtype, by_keyword) in enumerate(cases):
                model = _build(factory, seed * 100 + index, device, dtype)
                x1 = _randn(x_shape, seed * 100 + index, device, dtype)
                x2 = _randn(x_shape, seed * 100 + index + 50, device, dtype, scale=2.0)
                types = (
                    "default layer_types"
                    if layer_types is None
                    else f"layer_types={_type_names(layer_types)}"
                )
                label = (
                    f"{_type(model).__name__} with submodules {[n for n, _ in model.named_modules() if n]}, "
                    f"{types}, x {tuple(x_shape)}, {_dtype_name(dtype)} on {device}"
                )
                _check_recording(ex, ActivationRecorder, model, layer_types, x1, x2, label, by_keyword)
            if part == CORE:
                continue
            model = _build(lambda: _mlp([3, 4, 2]), seed + 7, device, torch.float32)
            x = _randn((2, 3), seed + 7, device, torch.float32)
            label = f"Sequential(Linear, ReLU, Linear), the with block raises an exception, on {device}"
            _check_exception(ex, ActivationRecorder, model, x, label)
            model = _build(lambda: _mlp([3, 5, 4, 2]), seed + 8, device, torch.float32)
            x1, x2 = (_randn((2, 3), seed + k, device, torch.float32) for k in (8, 9))
            label = f"two recorders (nn.Linear, then nested inside it nn.ReLU) on one model, on {device}"
            _check_two_recorders(ex, ActivationRecorder, model, x1, x2, label)


def _type_names(types: tuple[type, ...]) -> str:
    return "(" + ", ".join(f"nn.{t.__name__}" for t in types) + ("," if len(types) == 1 else "") + ")"


# =========================================================================================================
# output_grad_norms
# =========================================================================================================
_NO_GRAD_CHANGE_FIX = (
    "compute gradients with torch.autograd.grad(loss, ...), which returns them instead of adding them "
    "into .grad (or save every .grad before loss.backward() and put it back afterwards)"
)
_WARNING_FIX = (
    "differentiate with respect to a copy of x that requires grad, `x = x.detach().requires_grad_(True)` "
    "(the caller's x stays untouched), so every Linear layer has an input that requires grad"
)


def _grad_hints(x: torch.Tensor):
    def hints(exc: BaseException):
        text = str(exc)
        if "NoneType" in text:
            return (
                "grad_input used: for the first layer, whose input x does not require grad, grad_input is "
                "(None,); and grad_input is the gradient with respect to the layer's input anyway",
                "use grad_output[0], the gradient of the loss with respect to the layer's output",
            )
        if "does not require grad" in text or "does not have a grad_fn" in text:
            return (
                "gradients asked for a tensor that does not require grad"
                + (" (x does not require grad in this case)" if not x.requires_grad else ""),
                _WARNING_FIX,
            )
        if "backward through the graph a second time" in text:
            return (
                "backward run twice through the same graph",
                "run one forward and one backward pass per call",
            )
        return None

    return hints


class _Reference:
    """What output_grad_norms should return, computed with the check's own forward hooks and
    torch.autograd.grad (so nothing in the model changes), plus the norms of known mistakes."""

    def __init__(self, model: nn.Module, loss_fn, x: torch.Tensor, target: torch.Tensor) -> None:
        self.names = _names(model, (nn.Linear,))
        self.children = list(model.named_children())
        modules = dict(model.named_modules())
        inputs: dict[str, torch.Tensor] = {}
        outputs: dict[str, torch.Tensor] = {}

        def capture(name: str):
            def hook(module, args, output):
                inputs[name], outputs[name] = args[0], output

            return hook

        handles = [modules[name].register_forward_hook(capture(name)) for name in self.names]
        try:
            with torch.enable_grad():
                x_copy = x.detach().requires_grad_(True)
                loss = loss_fn(model(x_copy), target)
        finally:
            for handle in handles:
                handle.remove()
        wrt = [outputs[n] for n in self.names] + [inputs[n] for n in self.names]
        weights = [modules[n].weight for n in self.names]
        grads = torch.autograd.grad(loss, wrt + weights)
        count = len(self.names)
        output_grads, input_grads, weight_grads = grads[:count], grads[count : 2 * count], grads[2 * count :]
        self.norms = {n: float(g.double().norm()) for n, g in zip(self.names, output_grads, strict=True)}
        self.mistakes = [
            (
                {n: float(g.double().norm()) for n, g in zip(self.names, input_grads, strict=True)},
                "grad_input used: it holds the gradient with respect to the layer's input, not its output",
                "use grad_output[0], the gradient of the loss with respect to the layer's output",
            ),
            (
                {n: v * v for n, v in self.norms.items()},
                "squared norm returned",
                "return the L2 norm itself: grad_output[0].norm().item()",
            ),
            (
                {n: float(g.double().abs().sum()) for n, g in zip(self.names, output_grads, strict=True)},
                "L1 norm (sum of absolute values) returned",
                "return the L2 norm: grad_output[0].norm().item()",
            ),
            (
                {n: float(g.double().norm()) for n, g in zip(self.names, weight_grads, strict=True)},
                "the norm of the weight's gradient returned instead of the output's",
                "use grad_output[0] in a full backward hook, not module.weight.grad",
            ),
            (
                {
                    n: float(g.double().flatten(1).norm(dim=1).mean()) if g.dim() > 1 else float(g.norm())
                    for n, g in zip(self.names, output_grads, strict=True)
                },
                "per-sample norms averaged (norm(dim=1).mean()) instead of the norm of the whole gradient",
                "take the L2 norm of the whole tensor: grad_output[0].norm().item()",
            ),
        ]


def _float_close(got: float, expected: float, dtype: torch.dtype, scale: float) -> bool:
    rtol, _ = tolerances(dtype)
    return abs(got - expected) <= rtol * abs(expected) + 1e-6 * rtol * scale


def _preset_grads(
    model: nn.Module, seed: int, pattern: int
) -> list[tuple[str, nn.Parameter, torch.Tensor | None]]:
    """Give some parameters a known .grad (others None); returns (name, parameter, copy of its .grad)."""
    saved = []
    for index, (name, parameter) in enumerate(model.named_parameters()):
        if (index + pattern) % 2 == 0:
            parameter.grad = _randn(parameter.shape, seed + index, parameter.device, parameter.dtype)
            saved.append((name, parameter, parameter.grad.clone()))
        else:
            parameter.grad = None
            saved.append((name, parameter, None))
    return saved


def _check_grad_unchanged(ex: Exercise, what: str, now, saved, label: str) -> None:
    if saved is None and now is None:
        return
    if saved is None:
        ex.fail(
            f"{what}.grad was None before the call and holds a tensor afterwards",
            case=label,
            mistake=".grad changed: loss.backward() stores gradients into .grad",
            fix=_NO_GRAD_CHANGE_FIX,
        )
    if now is None:
        ex.fail(
            f"{what}.grad held a tensor before the call and is None afterwards",
            case=label,
            mistake=".grad changed: the caller's gradients were wiped (zero_grad() or .grad = None)",
            fix="leave .grad alone: " + _NO_GRAD_CHANGE_FIX,
        )
    if _type(now) is not torch.Tensor or now.shape != saved.shape or not _equal(now.detach(), saved):
        ex.fail(
            f"{what}.grad changed during the call",
            case=label,
            mistake=".grad changed: loss.backward() adds the new gradients into .grad "
            "(or zero_grad() reset it)",
            fix=_NO_GRAD_CHANGE_FIX,
        )


def _check_norms(ex: Exercise, result, reference: _Reference, x: torch.Tensor, dtype, label: str) -> None:
    norms = _dict_view(ex, result, "the result", case=label, fix="return a dict {name: norm}")
    problem = _key_problem(norms, reference.names)
    if problem:
        ex.fail("the result's keys are not the layers' names", case=label, mistake=problem[0], fix=problem[1])
    got, expected = set(norms), set(reference.names)
    if got != expected:
        mistake, fix = None, "register a full backward hook on every nn.Linear in model.named_modules()"
        missing = expected - got
        if missing == {reference.names[0]} and x.requires_grad:
            mistake = (
                "the first layer's hook never fired: its input x requires grad, and a full backward hook "
                "waits for the gradient with respect to the layer's input, which torch.autograd.grad(loss, "
                "parameters) does not compute"
            )
            fix = "differentiate with respect to the input too, e.g. a copy `x.detach().requires_grad_(True)`"
        elif missing == {reference.names[0]}:
            mistake = "grad_input used (the first layer's grad_input is (None,) when x does not require grad)"
            fix = "use grad_output[0], the gradient with respect to the layer's output"
        elif missing and got < expected:
            children = {name for name, m in reference.children if _isinstance(m, nn.Linear)}
            if got == children:
                mistake = "only direct children hooked (named_children() instead of named_modules())"
                fix = "iterate model.named_modules(), which reaches nested layers such as '2.0'"
        ex.fail(
            f"the result has keys {sorted(got)}, expected {sorted(expected)} "
            "(every nn.Linear, by qualified name)",
            case=label,
            mistake=mistake,
            fix=fix,
        )
    values = {
        name: ex.expect_float(norms[name], f"the norm for {name!r}", case=label) for name in reference.names
    }
    scale = max(reference.norms.values())
    wrong = [n for n in reference.names if not _float_close(values[n], reference.norms[n], dtype, scale)]
    if wrong:
        name = wrong[0]
        mistake = fix = None
        for candidate, candidate_mistake, candidate_fix in reference.mistakes:
            if all(_float_close(values[n], candidate[n], dtype, scale) for n in wrong):
                mistake, fix = candidate_mistake, candidate_fix
                break
        ex.fail(
            f"the norm for {name!r} is {values[name]:.6g}, expected {reference.norms[name]:.6g} "
            f"(the L2 norm of d loss / d output of that layer)",
            case=label,
            mistake=mistake,
            fix=fix,
        )
    ex.passed()


@dataclass
class _GradCase:
    """One call of output_grad_norms: a model, an input and a loss; whether x requires grad and arrives
    with a .grad of its own."""

    factory: Callable[[], nn.Module]
    x_shape: tuple[int, ...]
    classes: int | None  # cross-entropy over this many classes; None: mean squared error
    x_requires_grad: bool
    x_has_grad: bool
    dtype: torch.dtype = torch.float32

    def build(self, seed: int, device: torch.device):
        model = _build(self.factory, seed, device, self.dtype)
        x = _randn(self.x_shape, seed, device, self.dtype)
        if self.classes:
            generator = torch.Generator().manual_seed(seed)
            target = torch.randint(0, self.classes, self.x_shape[:1], generator=generator).to(device)
            loss_fn = F.cross_entropy
        else:
            with torch.no_grad():
                target = _randn(model(x).shape, seed + 1, device, self.dtype)
            loss_fn = nn.MSELoss()
        return model, x, loss_fn, target

    def describe(self, model: nn.Module, loss_fn, device: torch.device) -> str:
        loss = getattr(loss_fn, "__name__", _type(loss_fn).__name__)
        grad = ", x.grad set" if self.x_has_grad else ""
        dtype = _dtype_name(self.dtype)
        return (
            f"{_type(model).__name__} with Linear layers {_names(model, (nn.Linear,))}, x {self.x_shape} "
            f"(requires_grad={self.x_requires_grad}{grad}), loss {loss}, {dtype} on {device}"
        )


def _nested_sequential() -> nn.Module:
    """A Linear inside a nested Sequential: names '0', '2.0' and '2.2'."""
    return nn.Sequential(
        nn.Linear(3, 5), nn.Tanh(), nn.Sequential(nn.Linear(5, 5), nn.Sigmoid(), nn.Linear(5, 2))
    )


def _grad_cases(hidden: bool, seed: int, part: str) -> list[_GradCase]:
    """Core: x is data (does not require grad), flat and nested models, MSE and cross-entropy. Edge: x
    requires grad (with and without a .grad of its own), a deep sigmoid net (tiny gradients), float64."""
    if not hidden:
        if part == CORE:
            return [
                _GradCase(lambda: _mlp([4, 8, 3]), (6, 4), None, x_requires_grad=False, x_has_grad=False),
                _GradCase(_nested_sequential, (4, 3), 2, x_requires_grad=False, x_has_grad=False),
            ]
        return [
            _GradCase(lambda: _mlp([4, 8, 6, 3], nn.Tanh), (6, 4), 3, x_requires_grad=True, x_has_grad=False),
            _GradCase(_nested_sequential, (4, 3), None, x_requires_grad=True, x_has_grad=True),
            # 13 sigmoid layers: the first layers' gradients are tiny, and compared relatively
            _GradCase(lambda: _mlp([6] * 13 + [1], nn.Sigmoid), (8, 6), None, False, False, torch.float64),
        ]
    generator = torch.Generator().manual_seed(seed)

    def draw(low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (1,), generator=generator))

    cases = []
    for dtype in (torch.float32, torch.float64):
        sizes = [draw(1, 9) for _ in range(draw(2, 7))]
        activation = (nn.ReLU, nn.Tanh, nn.Sigmoid)[draw(0, 2)]
        classes = sizes[-1] if draw(0, 1) and sizes[-1] > 1 else None
        x_shape = (draw(1, 8), sizes[0])
        requires_grad = part == EDGE
        cases.append(
            _GradCase(
                lambda s=sizes, a=activation: _mlp(s, a),
                x_shape,
                classes,
                requires_grad,
                requires_grad and bool(draw(0, 1)),
                dtype,
            )
        )
    width = draw(2, 6)
    if part == CORE:
        return cases + [
            _GradCase(lambda w=width: _Nested(w, 5, 3), (5, width), 3, False, False, torch.float64),
        ]
    return cases + [
        _GradCase(
            lambda w=width: nn.Sequential(
                nn.Linear(w, 4), nn.ReLU(), nn.Sequential(_mlp([4, 6, 2], nn.Tanh))
            ),
            (3, width),
            None,
            True,
            True,
            torch.float64,
        ),
        _GradCase(lambda: _mlp([5] * 12 + [2], nn.Sigmoid), (draw(2, 9), 5), 2, False, False),
    ]


class _LossError(Exception):
    """Raised by the check's loss function, to see that output_grad_norms removes its hooks anyway."""


def _failing_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    raise _LossError("raised by the check's loss_fn")


def _check_hooks_removed_on_error(ex: Exercise, output_grad_norms, seed: int, device) -> None:
    """When loss_fn raises, the exception comes out of output_grad_norms and its hooks are gone."""
    model = _build(lambda: _mlp([3, 5, 2]), seed, device, torch.float32)
    x, target = _randn((4, 3), seed, device, torch.float32), _randn((4, 2), seed + 1, device, torch.float32)
    label = f"Sequential(Linear, ReLU, Linear) with a loss_fn that raises an exception, on {device}"
    hooks = _hooks(model)

    def call() -> BaseException | None:
        try:
            output_grad_norms(model, _failing_loss, x, target)
        except _LossError as exc:
            return exc
        return None

    came_out = ex.call(call, case=label, hints=_grad_hints(x))
    if came_out is None:
        ex.fail(
            "the exception raised by loss_fn did not come out of output_grad_norms",
            case=label,
            mistake="an exception swallowed (an `except` that returns instead of raising)",
            fix="let errors propagate: use try / finally to remove the hooks, without except",
        )
    _expect_no_hook_changes(
        ex,
        model,
        hooks,
        when="after loss_fn raised inside output_grad_norms",
        case=label,
        mistake="hooks left behind when something failed: they were not removed in a finally: block",
        fix="register the hooks, then `try:` forward, loss and gradients `finally:` remove every handle",
    )


def _check_grad_case(ex: Exercise, output_grad_norms, case: _GradCase, seed: int, device) -> None:
    model, x, loss_fn, target = case.build(seed, device)
    label = case.describe(model, loss_fn, device)
    reference = _Reference(model, loss_fn, x, target)
    saved = _preset_grads(model, seed, seed)
    if case.x_requires_grad:
        x.requires_grad_(True)
        if case.x_has_grad:
            x.grad = _randn(case.x_shape, seed + 2, device, case.dtype)
    x_value, x_requires_grad = x.detach().clone(), x.requires_grad
    x_grad = None if x.grad is None else x.grad.clone()
    values = {name: p.detach().clone() for name, p in model.named_parameters()}
    hooks = _hooks(model)
    warned = len(ex.warnings)

    result = ex.call(output_grad_norms, model, loss_fn, x, target, case=label, hints=_grad_hints(x))

    _check_norms(ex, result, reference, x, case.dtype, label)
    _expect_no_hook_changes(
        ex,
        model,
        hooks,
        when="after output_grad_norms returned",
        case=label,
        mistake="hooks left behind: the backward hooks were never removed",
        fix="keep the handles that register_full_backward_hook returns and call handle.remove() on each "
        "(in a finally: block)",
    )
    for name, parameter, grad in saved:
        _check_grad_unchanged(ex, f"parameter {name!r}", parameter.grad, grad, label)
    if x.requires_grad != x_requires_grad:
        ex.fail(
            f"x.requires_grad changed from {x_requires_grad} to {x.requires_grad}",
            case=label,
            mistake="x.requires_grad_() called on the caller's tensor",
            fix="make a copy that requires grad: `x = x.detach().requires_grad_(True)`",
        )
    _check_grad_unchanged(ex, "x", x.grad, x_grad, label)
    changed = [n for n, p in model.named_parameters() if not _equal(p.detach(), values[n])]
    if changed or not _equal(x.detach(), x_value):
        ex.fail(
            f"output_grad_norms changed {f'the parameters {changed[:3]}' if changed else 'x'}",
            case=label,
            fix="only measure: no optimizer step, no in-place change",
        )
    ex.passed()
    if len(ex.warnings) > warned:
        about_hook = "Full backward hook is firing" in ex.warnings[warned]
        ex.fail(
            "your code printed a warning (a test cell that warns scores 0 when graded)",
            case=label,
            mistake="the full backward hook warned because no input of the first Linear requires grad"
            if about_hook
            else None,
            fix=_WARNING_FIX if about_hook else "find what warns and avoid it",
        )


def check_output_grad_norms(
    output_grad_norms, *, part: str = CORE, hidden: bool = False, seed: int = 0
) -> None:
    """Does ``output_grad_norms(model, loss_fn, x, target)`` return the L2 norm of d loss / d output of every
    ``nn.Linear`` as Python floats, leaving no hook behind, every ``.grad`` (parameters and x) as it was,
    and printing no warning, whether or not x requires grad? Core: x is data (no grad), flat and nested
    models; ``part="edge"``: x requires grad (and has a .grad), a deep sigmoid net, float64, and a
    loss_fn that raises (the hooks must go all the same)."""
    __tracebackhide__ = True
    cases = _grad_cases(hidden, seed, part)
    with Exercise("output_grad_norms") as ex:
        for device in ex.devices:
            for index, case in enumerate(cases):
                _check_grad_case(ex, output_grad_norms, case, seed * 100 + index, device)
            if part == EDGE:
                _check_hooks_removed_on_error(ex, output_grad_norms, seed + 5, device)


# =========================================================================================================
# clamp_output
# =========================================================================================================
def _clamp_diagnosis(ex: Exercise, original: torch.Tensor, clamped_input: torch.Tensor, low, high):
    """``diagnose`` for a wrong clamped output: simulate each known mistake and compare."""
    swapped = ("min_value and max_value swapped", "output.clamp(min_value, max_value): the lower bound first")
    both_sides = "clamp on both sides: output.clamp(min_value, max_value)"
    candidates = [
        (
            "the hook does not return the clamped output (a forward hook changes the output only through its "
            "return value)",
            original,
            "`return output.clamp(min_value, max_value)` from the hook",
        ),
        (
            "clamping the input (a forward-pre hook) instead of the output",
            clamped_input,
            "use register_forward_hook, whose hook receives the output: `return output.clamp(...)`",
        ),
        ("max_value ignored", original.clamp(min=low), both_sides),
        ("min_value ignored", original.clamp(max=high), both_sides),
        (swapped[0], torch.full_like(original, low), swapped[1]),
        (swapped[0], torch.full_like(original, high), swapped[1]),
    ]

    def diagnose(actual: torch.Tensor):
        return ex.first_match(actual, candidates)

    return diagnose


def _clamp_hints(exc: BaseException):
    text = str(exc)
    if "in-place" in text or "inplace" in text:
        return (
            "in-place clamp_ on the output: here the output is a view of the input, so clamp_ changes the "
            "caller's tensor (and autograd refuses it for a leaf that requires grad)",
            "return a new tensor: `return output.clamp(min_value, max_value)`",
        )
    if "positional argument" in text:
        return ("the hook has the wrong signature", "a forward hook is called as hook(module, args, output)")
    return None


def _check_clamp_case(
    ex: Exercise, clamp_output, module: nn.Module, x: torch.Tensor, low, high, seed: int, label: str
) -> None:
    """Clamp one module: parameters untouched, a RemovableHandle, clamped values with torch.clamp's
    gradients, the input left alone, and after handle.remove() the module as it was."""
    # What the module computes before any hook: values, the mistakes' values, and torch.clamp's gradients.
    with torch.no_grad():
        original = module(x)
        clamped_input = module(x.clamp(low, high))
    weights = _randn(original.shape, seed, original.device, original.dtype)
    x_grad = x.detach().clone().requires_grad_(True)
    named = list(module.named_parameters())
    inputs = [x_grad] + [p for _, p in named]
    expected_grads = torch.autograd.grad((torch.clamp(module(x_grad), low, high) * weights).sum(), inputs)
    unclamped_grads = torch.autograd.grad((module(x_grad) * weights).sum(), inputs)
    values = {name: p.detach().clone() for name, p in named}
    hooks = _hooks(module)

    handle = ex.call(clamp_output, module, low, high, case=label, hints=_clamp_hints)

    changed = [n for n, p in named if not _equal(p.detach(), values[n])]
    if changed:
        ex.fail(
            f"clamp_output changed the module's parameters {changed}",
            case=label,
            mistake="modifying the module's weights instead of its output",
            fix="leave the parameters alone; register a forward hook that returns "
            "output.clamp(min_value, max_value)",
        )
    if not _isinstance(handle, RemovableHandle):
        ex.fail(
            f"clamp_output should return a torch.utils.hooks.RemovableHandle, got {_type(handle).__name__}",
            case=label,
            mistake="handle not returned",
            fix="`return module.register_forward_hook(hook)`: the caller needs the handle to remove the hook",
        )
    x_before = x.detach().clone()
    out = ex.call(module, x, case=label, hints=_clamp_hints)
    if not _equal(x.detach(), x_before):
        ex.fail(
            "calling the module changed its input x",
            case=label,
            mistake="in-place clamp_ on the output: the module returns a view of its input, so clamp_ "
            "changed the caller's tensor too",
            fix="return a new tensor: `return output.clamp(min_value, max_value)`",
        )
    ex.assert_close(
        out,
        original.clamp(low, high),
        "the module's output with the hook",
        case=label,
        diagnose=_clamp_diagnosis(ex, original, clamped_input, low, high),
    )
    out = ex.expect_tensor(ex.call(module, x_grad, case=label, hints=_clamp_hints), "the output", case=label)
    if not out.requires_grad:
        ex.fail(
            "the clamped output does not require grad: gradients cannot flow through it",
            case=label,
            mistake="the clamp was computed on a detached tensor (.detach(), .data or under torch.no_grad())",
            fix="clamp the output itself: `return output.clamp(min_value, max_value)`",
        )
    grads = torch.autograd.grad((out * weights).sum(), inputs, allow_unused=True)
    names = ["x"] + [n for n, _ in named]
    for name, grad, expected, unclamped in zip(names, grads, expected_grads, unclamped_grads, strict=True):
        if grad is None:
            ex.fail(
                f"no gradient reaches {name} through the clamped output",
                case=label,
                mistake="the clamp was computed on a detached tensor (.detach() or .data)",
                fix="clamp the output itself: `return output.clamp(min_value, max_value)`",
            )

        def outside_autograd(actual, unclamped=unclamped):
            if ex.is_close(actual, unclamped):
                return (
                    "the clamp was done outside autograd (on output.data, or under torch.no_grad()): the "
                    "gradient passes as if nothing were clamped",
                    "return `output.clamp(min_value, max_value)`, computed with autograd recording",
                )
            return None

        ex.assert_close(
            grad,
            expected,
            f"the gradient with respect to {name} (torch.clamp's: passed where not clamped, 0 elsewhere)",
            case=label,
            diagnose=outside_autograd,
        )
    ex.call(handle.remove, case=label)
    _expect_no_hook_changes(
        ex,
        module,
        hooks,
        when="after handle.remove()",
        case=label,
        mistake="not removable: more than one hook registered, and the handle removes only one",
        fix="register one forward hook and return its handle",
    )

    def still_clamped(actual):
        return (
            "not removable: the clamp does not live in the hook the handle removes (e.g. a replaced "
            "forward method)",
            "register one forward hook and return its handle; do not change module.forward",
        )

    after = ex.call(module, x, case=label)
    ex.assert_close(
        after, original, "the module's output after handle.remove()", case=label, diagnose=still_clamped
    )


def _check_two_clamps(
    ex: Exercise, clamp_output, device: torch.device, dtype: torch.dtype, seed: int
) -> None:
    """Two clamps on one module are independent: removing the first leaves the second."""
    module = _build(lambda: nn.Linear(5, 4), seed, device, dtype)
    x = _randn((6, 5), seed, device, dtype, scale=2.0)
    original = module(x).detach()
    label = (
        f"nn.Linear(5, 4) clamped to [-0.8, 0.8], then to [-0.3, 1.0], then the first removed, on {device}"
    )
    first = ex.call(clamp_output, module, -0.8, 0.8, case=label, hints=_clamp_hints)
    second = ex.call(clamp_output, module, -0.3, 1.0, case=label, hints=_clamp_hints)
    for handle in (first, second):
        ex.expect_instance(handle, RemovableHandle, "the returned value", case=label, fix="return the handle")

    def shared_bounds(actual):
        if ex.is_close(actual, original.clamp(-0.3, 1.0)):
            return (
                "bounds stored on the module or in globals: the second clamp_output overwrote the first's",
                "let each hook keep its own bounds: define the hook inside clamp_output, where it sees "
                "that call's min_value and max_value",
            )
        return None

    ex.assert_close(
        ex.call(module, x, case=label),
        original.clamp(-0.3, 0.8),
        "the output with both clamps",
        case=label,
        diagnose=shared_bounds,
    )
    ex.call(first.remove, case=label)
    ex.assert_close(
        ex.call(module, x, case=label),
        original.clamp(-0.3, 1.0),
        "the output after removing only the first clamp",
        case=label,
    )
    ex.call(second.remove, case=label)
    ex.assert_close(ex.call(module, x, case=label), original, "the output after removing both", case=label)


# (module factory, x shape, input scale, min_value, max_value, dtype)
_ClampCase = tuple[Callable[[], nn.Module], tuple[int, ...], float, float, float, torch.dtype]

# Core: a Linear layer and a custom module with parameters. Edge: a module whose output is a view of its
# input (an in-place clamp changes the caller's tensor), a Sequential, 3-D input, integer bounds, float64,
# and (below) two clamps on one module, removed one at a time.
_CLAMP_CASES: dict[str, list[_ClampCase]] = {
    CORE: [
        (lambda: nn.Linear(4, 3), (5, 4), 2.0, -0.3, 0.4, torch.float32),
        (lambda: Scale(4), (6, 4), 1.0, -0.5, 1.5, torch.float32),
    ],
    EDGE: [
        (_FirstHalf, (3, 6), 2.0, -1.0, 0.5, torch.float32),  # returns a view of its input
        (_FirstHalf, (2, 3, 5), 2.0, 0, 1, torch.float64),  # 3-D input, integer bounds
        (
            lambda: nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2)),
            (7, 3),
            3.0,
            -0.2,
            0.1,
            torch.float64,
        ),
    ],
}


def _hidden_clamp_cases(seed: int, part: str) -> list[_ClampCase]:
    generator = torch.Generator().manual_seed(seed)

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=generator))

    cases: list[_ClampCase] = []
    if part == CORE:
        for dtype in (torch.float32, torch.float64):
            n, f = (int(v) for v in torch.randint(1, 8, (2,), generator=generator))
            low = uniform(-1.0, 0.0)
            cases.append((lambda f=f: nn.Linear(f, f + 1), (n, f), 3.0, low, low + uniform(0.2, 1.5), dtype))
        f = int(torch.randint(1, 6, (1,), generator=generator))
        low = uniform(-1.0, 0.0)
        cases.append((lambda f=f: Scale(f), (4, f), 2.0, low, low + uniform(0.2, 1.5), torch.float64))
        return cases
    n, f = (int(v) for v in torch.randint(2, 8, (2,), generator=generator))
    low = uniform(-1.0, 0.0)
    cases.append((_FirstHalf, (n, 2, f), 2.0, low, low + uniform(0.2, 1.0), torch.float64))
    cases.append((lambda f=f: Scale(f), (3, f), 2.0, 0, 2, torch.float64))  # integer bounds
    cases.append(
        (
            lambda f=f: nn.Sequential(nn.Linear(f, 6), nn.Tanh(), nn.Linear(6, 2)),
            (n, f),
            3.0,
            low,
            low + uniform(0.1, 0.5),
            torch.float32,
        )
    )
    return cases


def check_clamp_output(clamp_output, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Does ``clamp_output(module, min_value, max_value)`` clamp the module's output through a forward hook
    (with torch.clamp's gradients), return its RemovableHandle, and leave the module as it was once the
    handle is removed? Core: a Linear layer and a custom module with parameters; ``part="edge"``: a module
    returning a view of its input, a Sequential, 3-D input, integer bounds, two clamps on one module."""
    __tracebackhide__ = True
    cases = _hidden_clamp_cases(seed, part) if hidden else _CLAMP_CASES[part]
    with Exercise("clamp_output") as ex:
        for device in ex.devices:
            for index, (factory, x_shape, scale, low, high, dtype) in enumerate(cases):
                case_seed = seed * 100 + index
                module = _build(factory, case_seed, device, dtype)
                x = _randn(x_shape, case_seed, device, dtype, scale=scale)
                label = (
                    f"{_describe_module(module)}, x {tuple(x_shape)}, min_value={low!r}, max_value={high!r}, "
                    f"{_dtype_name(dtype)} on {device}"
                )
                _check_clamp_case(ex, clamp_output, module, x, low, high, case_seed + 1, label)
            if part == EDGE:
                _check_two_clamps(ex, clamp_output, device, torch.float64, seed + 3)


def _describe_module(module: nn.Module) -> str:
    if _type(module) is nn.Linear:
        return f"nn.Linear({module.in_features}, {module.out_features})"
    if _type(module) is nn.Sequential:
        return "nn.Sequential(" + ", ".join(_type(m).__name__ for m in module) + ")"
    if _type(module) is _FirstHalf:
        return "a custom module returning a view of its input, x[..., :half]"
    return f"a custom module {_type(module).__name__.lstrip('_')} (x * weight + bias)"


protect_module(__name__)
