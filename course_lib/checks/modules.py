"""Checks for notebook 02_modules: ``MLP``, ``MySequential``, ``ParallelConcat``, ``FixedHiddenMLP`` and
``SequenceClassifier``.

Each check builds the student's module (with seeded initialization, so the notebook's random numbers are
left alone), inspects what it registered through ``nn.Module``'s own methods (parameters, buffers,
state_dict, ``.to``), and compares its output with what PyTorch computes from the student's own tensors
(``F.linear``, ``nn.Sequential``, ``torch.cat``, ``nn.LSTM``) on every available device. Every check has
two parts, the core behaviour (``part="core"``, the default) and the edge cases (``part="edge"``: other
shapes, ranks and dtypes, ``.to``, loading a state_dict); ``hidden=True`` adds random sizes, float64 and
other edge cases (used by the hidden tests at grading time).
"""

from __future__ import annotations

import itertools
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.checks._core import Exercise, dtype_on, seeded
from course_lib.checks._integrity import ORIGINALS, protect_module
from course_lib.protocol import CORE, EDGE

__all__ = [
    "check_MLP",
    "check_MySequential",
    "check_ParallelConcat",
    "check_FixedHiddenMLP",
    "check_SequenceClassifier",
]

_type = ORIGINALS["type"]
_isinstance = ORIGINALS["isinstance"]

# Attribute names every nn.Module has (its registries); anything else in vars(module) is the student's.
_MODULE_INTERNALS = frozenset(vars(nn.Module()))

_REGISTER_FIX = "use nn.ModuleList or self.add_module(str(i), m)"

# -- shared helpers ----------------------------------------------------------------------------------


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _input(shape: Sequence[int], seed: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=_generator(seed), dtype=dtype).to(device)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _short(names: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return f"[{shown}{', ...' if len(names) > limit else ''}]"


def _init_hints(exc: BaseException) -> tuple[str, str] | None:
    text = str(exc)
    if "before Module.__init__() call" in text or "has no attribute '_modules'" in text:
        return (
            "super().__init__() not called before assigning layers",
            "make `super().__init__()` the first line of __init__",
        )
    return None


def _build(
    ex: Exercise,
    cls: object,
    *args: object,
    seed: int,
    case: str,
    hints: Callable[[BaseException], tuple[str, str] | None] | None = _init_hints,
) -> nn.Module:
    """Construct the student's module (its initialization seeded) and make sure it is a usable nn.Module."""
    with seeded(seed):
        module = ex.call(cls, *args, case=case, hints=hints)
    ex.expect_instance(
        module,
        nn.Module,
        f"{ex.name}(...)",
        case=case,
        fix=f"define `class {ex.name}(nn.Module):` and call `super().__init__()` first in __init__",
    )
    if getattr(_type(module), "forward", None) is nn.Module.forward:
        ex.fail(
            f"{ex.name} has no forward method",
            case=case,
            mistake="forward missing or misspelled (for example `foward`), or not indented inside the class",
            fix="define `def forward(self, x):` inside the class, at the same indentation as __init__",
        )
    return module


def _named(ex: Exercise, what: Callable, module: nn.Module, case: str) -> list[tuple[str, object]]:
    """``list(what(module))`` for nn.Module's own iterators (named_parameters, named_buffers, ...)."""
    return ex.call(lambda: list(what(module)), case=case)


def _move(ex: Exercise, module: nn.Module, *args: object, case: str) -> None:
    ex.call(nn.Module.to, module, *args, case=case)


def _plain_container(module: nn.Module) -> tuple[str, str] | None:
    """``(attribute, kind)`` of a plain list, tuple or dict attribute that holds modules, if any."""
    for name, value in vars(module).items():
        if name in _MODULE_INTERNALS:
            continue
        kind = _type(value)
        items = value.values() if kind is dict else value if kind in (list, tuple) else ()
        if any(_isinstance(item, nn.Module) for item in items):
            return name, kind.__name__
    return None


def _check_registered(
    ex: Exercise, module: nn.Module, given: Sequence[nn.Module], case: str, fix: str
) -> None:
    """The module's parameters() must find the parameters of every module it was given."""
    expected = {id(p): p for m in given for p in m.parameters()}
    found = _named(ex, nn.Module.named_parameters, module, case)
    if len(found) == len(expected) and sum(p.numel() for _, p in found) == sum(
        p.numel() for p in expected.values()
    ):
        ex.passed()
        return
    container = _plain_container(module)
    mistake = None
    if container is not None:
        name, kind = container
        mistake = (
            f"modules kept in a plain Python {kind} (self.{name}): nn.Module does not look inside plain "
            "containers, so parameters(), state_dict(), .to() and optimizers never see those modules"
        )
    ex.fail(
        f"parameters() finds {len(found)} parameter tensors, expected {len(expected)} "
        "(all the parameters of the modules it was given)",
        case=case,
        mistake=mistake,
        fix=fix,
    )


def _floating_tensors(modules: Sequence[nn.Module]) -> list[torch.Tensor]:
    tensors = [t for m in modules for t in itertools.chain(m.parameters(), m.buffers())]
    return [t for t in tensors if t.is_floating_point()]


def _check_follows_to(ex: Exercise, module: nn.Module, given: Sequence[nn.Module], case: str) -> None:
    """After module.to(float64) and module.to("meta"), every tensor of the given modules must follow."""
    for target in (torch.float64, torch.device("meta")):
        _move(ex, module, target, case=case)
        stragglers = [
            t
            for t in _floating_tensors(given)
            if (t.dtype != torch.float64 if target is torch.float64 else t.device.type != "meta")
        ]
        if stragglers:
            container = _plain_container(module)
            ex.fail(
                f"after .to({target!r}) {len(stragglers)} tensors of the modules given were left behind",
                case=case,
                mistake=None if container is None else f"modules kept in a plain Python {container[1]}",
                fix=_REGISTER_FIX,
            )
        ex.passed()


def _grad_problem(ex: Exercise, y: torch.Tensor, params: dict[str, torch.Tensor], case: str) -> None:
    """Gradients of y.sum() must reach every named parameter."""
    if not y.requires_grad:
        ex.fail(
            "the output does not require grad, so nothing could be trained",
            case=case,
            mistake="forward computed under torch.no_grad(), or with .detach() / .data / numpy",
            fix="compute the output with the module's layers and torch operations only",
        )
    grads = torch.autograd.grad(y.sum(), list(params.values()), allow_unused=True)
    for name, grad in zip(params, grads, strict=True):
        if grad is None:
            ex.fail(
                f"no gradient reaches {name}",
                case=case,
                fix=f"use the layer that owns {name} in forward (not a detached copy)",
            )
    ex.passed()


# -- MLP ---------------------------------------------------------------------------------------------

_MLP_NAMES = ["hidden.weight", "hidden.bias", "out.weight", "out.bias"]
_MLP_FORWARD_FIX = "return self.out(F.relu(self.hidden(x))): hidden first, then ReLU, then out"


def _mlp_names_problem(names: list[str]) -> tuple[str | None, str]:
    if not names:
        return (
            "the layers are not attributes of the module (local variables in __init__, or kept in a "
            "plain Python list)",
            "assign them to self: self.hidden = nn.Linear(...); self.out = nn.Linear(...)",
        )
    if sorted(names) == sorted(_MLP_NAMES):
        return (
            "wrong order of layers: out was assigned before hidden in __init__, and parameters are "
            "registered in the order the submodules are assigned",
            "assign self.hidden first, then self.out",
        )
    if any(name.count(".") > 1 for name in names):
        return (
            "the layers are nested inside another module (for example self.net = nn.Sequential(...)), "
            "which adds its name to every parameter",
            "assign the two layers directly: self.hidden = nn.Linear(...), self.out = nn.Linear(...)",
        )
    if set(names) < set(_MLP_NAMES):
        return ("a layer created without bias (bias=False)", "keep nn.Linear's default bias=True")
    return (
        "submodules not named `hidden` and `out`",
        "name them exactly: self.hidden = nn.Linear(in_features, hidden_features), "
        "self.out = nn.Linear(hidden_features, out_features)",
    )


def _mlp_forward_hints(exc: BaseException) -> tuple[str, str] | None:
    text = str(exc)
    if "cannot be multiplied" in text or "size mismatch" in text:
        return ("layers applied in the wrong order", _MLP_FORWARD_FIX)
    return None


def _mlp_diagnosis(ex: Exercise, x: torch.Tensor, p: dict[str, torch.Tensor]):
    def diagnose(actual: torch.Tensor) -> tuple[str, str] | None:
        hw, hb, ow, ob = (p[name] for name in _MLP_NAMES)
        with torch.no_grad():
            hidden = F.linear(x, hw, hb)
            candidates = [
                (
                    "ReLU missing between hidden and out (the output is a linear function of x)",
                    lambda: F.linear(hidden, ow, ob),
                ),
                (
                    "ReLU applied after the output layer instead of between the layers",
                    lambda: F.relu(F.linear(hidden, ow, ob)),
                ),
                ("ReLU applied after the output layer too", lambda: F.relu(F.linear(F.relu(hidden), ow, ob))),
                (
                    "ReLU applied to the input instead of the hidden features",
                    lambda: F.linear(F.linear(F.relu(x), hw, hb), ow, ob),
                ),
                ("activation is not ReLU (sigmoid)", lambda: F.linear(torch.sigmoid(hidden), ow, ob)),
                ("activation is not ReLU (tanh)", lambda: F.linear(torch.tanh(hidden), ow, ob)),
                (
                    "layers applied in the wrong order (out before hidden)",
                    lambda: F.linear(F.relu(F.linear(x, ow, ob)), hw, hb),
                ),
            ]
            for mistake, wrong in candidates:
                try:
                    value = wrong()
                except RuntimeError:  # shapes do not allow this mistake
                    continue
                if ex.is_close(actual, value):
                    return mistake, _MLP_FORWARD_FIX
            expected = F.linear(F.relu(hidden), ow, ob)
        if actual.shape != expected.shape and actual.numel() == expected.numel():
            return (
                "the output squeezed or reshaped (a dimension of size 1 dropped): the output of an MLP "
                "is (N, out_features) for every N and out_features, 1 included",
                "return self.out(F.relu(self.hidden(x))) without .squeeze() or .view()",
            )
        return None

    return diagnose


def _mlp_cases(part: str, hidden: bool, seed: int) -> list[tuple[int, int, int, int, torch.dtype]]:
    """(in_features, hidden_features, out_features, batch, dtype) for one part of check_MLP."""
    if part == CORE:
        # square layers in the second case: layers applied in the wrong order still run
        cases = [(4, 8, 2, 3, torch.float32), (5, 5, 5, 2, torch.float32), (3, 6, 4, 5, torch.float32)]
    else:
        # one sample and one output, single features, float64, an empty batch
        cases = [
            (3, 16, 1, 1, torch.float32),
            (1, 1, 1, 2, torch.float32),
            (2, 3, 4, 5, torch.float64),
            (4, 3, 2, 0, torch.float32),
        ]
    if hidden:
        generator = _generator(seed)
        for dtype in (torch.float32, torch.float64, torch.float64):
            sizes = [int(v) for v in torch.randint(1, 13, (4,), generator=generator)]
            if part == EDGE:
                sizes[int(torch.randint(0, 3, (1,), generator=generator))] = 1
                sizes[3] = int(torch.randint(0, 2, (1,), generator=generator))  # batch 0 or 1
            cases.append((*sizes, dtype))
    return cases


def check_MLP(MLP, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Does ``MLP(in_features, hidden_features, out_features)`` register exactly ``hidden`` and ``out``
    (both nn.Linear, in that order) and compute ``out(relu(hidden(x)))``, with gradients to all four
    parameters? Core: float32 batches; ``part="edge"``: a single sample, single features, float64 and an
    empty batch."""
    __tracebackhide__ = True
    cases = _mlp_cases(part, hidden, seed)
    with Exercise("MLP") as ex:
        for device in ex.devices:
            for index, (in_f, hid_f, out_f, batch, dtype) in enumerate(cases):
                dtype = dtype_on(device, dtype)
                label = (
                    f"MLP({in_f}, {hid_f}, {out_f}), x of shape ({batch}, {in_f}), "
                    f"{_dtype_name(dtype)} on {device}"
                )
                model = _build(ex, MLP, in_f, hid_f, out_f, seed=seed + index, case=label)
                names = [name for name, _ in _named(ex, nn.Module.named_parameters, model, label)]
                if names != _MLP_NAMES:
                    mistake, fix = _mlp_names_problem(names)
                    ex.fail(
                        f"its parameters are {_short(names)}, expected {_MLP_NAMES} in this order",
                        case=label,
                        mistake=mistake,
                        fix=fix,
                    )
                for name, shape in (("hidden", (hid_f, in_f)), ("out", (out_f, hid_f))):
                    layer = model._modules.get(name)
                    if not _isinstance(layer, nn.Linear):
                        ex.fail(
                            f"model.{name} is {_type(layer).__name__}, expected an nn.Linear",
                            case=label,
                            fix=f"self.{name} = nn.Linear(...)",
                        )
                    if tuple(layer.weight.shape) != shape:
                        ex.fail(
                            f"model.{name}.weight has shape {tuple(layer.weight.shape)}, expected {shape}",
                            case=label,
                            mistake="in/out features swapped or taken from the wrong argument",
                            fix="self.hidden = nn.Linear(in_features, hidden_features), "
                            "self.out = nn.Linear(hidden_features, out_features)",
                        )
                ex.passed()
                _move(ex, model, device, dtype, case=label)
                params = dict(_named(ex, nn.Module.named_parameters, model, label))
                x = _input((batch, in_f), seed * 100 + index, dtype, device)
                y = ex.call(model, x, case=label, hints=_mlp_forward_hints)
                hw, hb, ow, ob = (params[name] for name in _MLP_NAMES)
                expected = F.linear(F.relu(F.linear(x, hw, hb)), ow, ob)
                ex.assert_close(y, expected, "model(x)", case=label, diagnose=_mlp_diagnosis(ex, x, params))
                _grad_problem(ex, y, params, label)


# -- MySequential ------------------------------------------------------------------------------------


@dataclass
class _Chain:
    """A chain of modules for MySequential, described by a recipe so it can be built again with other
    values: ("linear", in, out), ("relu",), ("tanh",), ("block", in, out) (a nested nn.Sequential) or
    ("norm", features) (an nn.BatchNorm1d in eval mode: buffers in the state_dict)."""

    recipe: list[tuple]
    x_shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32

    def build(self, seed: int) -> list[nn.Module]:
        generator = _generator(seed)
        modules: list[nn.Module] = []
        for kind, *sizes in self.recipe:
            if kind == "linear":
                module = nn.Linear(*sizes)
            elif kind == "block":
                module = nn.Sequential(nn.Linear(*sizes), nn.ReLU())
            elif kind == "norm":
                module = nn.BatchNorm1d(*sizes).eval()
                module.running_mean.copy_(torch.randn(sizes[0], generator=generator))
                module.running_var.copy_(torch.rand(sizes[0], generator=generator) + 0.5)
            else:
                module = {"relu": nn.ReLU, "tanh": nn.Tanh}[kind]()
            with torch.no_grad():
                for p in module.parameters():
                    p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
            modules.append(module)
        return modules

    def describe(self, device: torch.device) -> str:
        parts = []
        for kind, *sizes in self.recipe:
            name = {"linear": "Linear", "block": "Sequential(Linear, ReLU)", "norm": "BatchNorm1d"}.get(
                kind, {"relu": "ReLU", "tanh": "Tanh"}.get(kind, kind)
            )
            parts.append(f"{name}{tuple(sizes) if sizes and kind != 'block' else ''}")
        return (
            f"modules [{', '.join(parts)}], x of shape {self.x_shape}, {_dtype_name(self.dtype)} on {device}"
        )


# The core chains: Linear, ReLU and Tanh. The edge chains: one module, nested modules and buffers.
_MYSEQ_VISIBLE = {
    CORE: [
        _Chain([("linear", 3, 5), ("relu",), ("linear", 5, 2)], (4, 3)),
        # square layers: a wrong order still runs, and gives other values
        _Chain([("linear", 4, 4), ("tanh",), ("linear", 4, 4), ("relu",), ("linear", 4, 4)], (3, 4)),
    ],
    EDGE: [
        _Chain([("linear", 2, 3)], (5, 2)),
        # nested modules and buffers: state_dict keys such as 0.0.weight and 1.running_mean
        _Chain([("block", 3, 4), ("norm", 4), ("linear", 4, 2)], (6, 3)),
        _Chain([("linear", 3, 5), ("relu",), ("linear", 5, 2)], (4, 3), torch.float64),
    ],
}


def _myseq_hidden(seed: int, part: str = CORE) -> list[_Chain]:
    generator = _generator(seed)

    def draw(low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (1,), generator=generator))

    kinds = ("linear", "linear", "relu", "tanh") + (("block", "norm") if part == EDGE else ())
    chains = []
    for dtype in (torch.float32, torch.float64, torch.float64):
        width = draw(1, 8)
        first = width
        recipe: list[tuple] = []
        for _ in range(draw(1, 6)):
            kind = kinds[draw(0, len(kinds) - 1)]
            if kind in ("linear", "block"):
                new = draw(1, 8)
                recipe.append((kind, width, new))
                width = new
            elif kind == "norm":
                recipe.append((kind, width))
            else:
                recipe.append((kind,))
        chains.append(_Chain(recipe, (draw(2, 6), first), dtype))
    size = draw(2, 6)
    if part == CORE:
        chains.append(
            _Chain([("linear", size, size), ("tanh",), ("linear", size, size)], (3, size), torch.float64)
        )
    else:
        chains.append(_Chain([("block", size, size)], (draw(2, 6), size), torch.float64))
    return chains


def _index_hints(index: int):
    def hints(exc: BaseException) -> tuple[str, str] | None:
        text = str(exc)
        if "not subscriptable" in text or "does not support indexing" in text:
            return (
                "__getitem__ not defined",
                "def __getitem__(self, idx): return list(self._modules.values())[idx]",
            )
        if index < 0:
            return (
                "negative indices not handled: seq[-1] must be the last module, as for a list",
                "index a list of the modules: list(self._modules.values())[idx] handles idx < 0",
            )
        return None

    return hints


def _len_hints(exc: BaseException) -> tuple[str, str] | None:
    if "has no len()" in str(exc):
        return ("__len__ not defined", "def __len__(self): return len(self._modules)")
    return None


def _chain_hints(exc: BaseException) -> tuple[str, str] | None:
    text = str(exc)
    if "cannot be multiplied" in text or "size mismatch" in text or "running_mean should contain" in text:
        return (
            "modules applied in the wrong order, or each to the original input instead of to the "
            "previous module's output",
            "for module in self._modules.values(): x = module(x); then return x",
        )
    return None


def _chain_diagnosis(ex: Exercise, modules: list[nn.Module], x: torch.Tensor):
    def run(order: Sequence[nn.Module]) -> torch.Tensor:
        y = x
        for module in order:
            y = module(y)
        return y

    def diagnose(actual: torch.Tensor) -> tuple[str, str] | None:
        fix = "apply the modules in the order given, each to the previous one's output"
        with torch.no_grad():
            candidates = [("modules applied in the wrong order (reversed)", list(reversed(modules)))]
            if len(modules) <= 4:
                candidates += [
                    ("modules applied in the wrong order", list(p)) for p in itertools.permutations(modules)
                ]
            for mistake, order in candidates:
                try:
                    if ex.is_close(actual, run(order)):
                        return mistake, fix
                except RuntimeError:
                    continue
            for module in modules:
                try:
                    if ex.is_close(actual, module(x)):
                        return (
                            "each module applied to the original input, not to the previous module's output",
                            fix,
                        )
                except RuntimeError:
                    continue
        return None

    return diagnose


def _keys_problem(keys: list[str], expected: list[str]) -> tuple[str, str]:
    prefixes = {k.split(".", 1)[0] for k in keys}
    if len(prefixes) == 1 and [k.split(".", 1)[-1] for k in keys] == expected:
        (prefix,) = prefixes
        return (
            f"the modules are registered inside self.{prefix} (an nn.ModuleList or another container), "
            f"so every key starts with `{prefix}.`",
            "register each module on the MySequential itself under its position: "
            "self.add_module(str(i), module)",
        )
    return (
        "modules registered under other names than their positions '0', '1', ...",
        "self.add_module(str(i), module) for i, module in enumerate(modules)",
    )


def _check_load_both_ways(
    ex: Exercise, MySequential, chain: _Chain, seq: nn.Module, x, y, seed: int, device, dtype, label: str
) -> None:
    """MySequential's state_dict loads into an nn.Sequential and the other way round, strict=True."""

    def load_hints(exc: BaseException) -> tuple[str, str] | None:
        if "Missing key" in str(exc) or "Unexpected key" in str(exc):
            return ("different state_dict keys from nn.Sequential's", "self.add_module(str(i), module)")
        return None

    other = nn.Sequential(*chain.build(seed + 1)).to(device, dtype)
    ex.call(other.load_state_dict, nn.Module.state_dict(seq), strict=True, case=label, hints=load_hints)
    with torch.no_grad():
        ex.assert_close(
            other(x), y.detach(), "an nn.Sequential loaded from your state_dict, applied to x", case=label
        )

    student = _build(ex, MySequential, *chain.build(seed + 2), seed=seed + 2, case=label)
    _move(ex, student, device, dtype, case=label)
    reference = nn.Sequential(*chain.build(seed + 3)).to(device, dtype)
    ex.call(
        nn.Module.load_state_dict, student, reference.state_dict(), strict=True, case=label, hints=load_hints
    )
    with torch.no_grad():
        ex.assert_close(
            ex.call(student, x, case=label),
            reference(x),
            "your module loaded from an nn.Sequential's state_dict, applied to x",
            case=label,
        )


def check_MySequential(MySequential, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Does ``MySequential(*modules)``, a direct nn.Module, register its modules like nn.Sequential
    (same parameters and state_dict keys) and apply them in order? Core: chains of Linear, ReLU and
    Tanh; ``part="edge"``: one module, nested modules and buffers, float64, and also ``len()``, integer
    indexing (negative indices included), state_dicts loaded both ways and ``.to``."""
    __tracebackhide__ = True
    chains = _MYSEQ_VISIBLE[part] + (_myseq_hidden(seed, part) if hidden else [])
    with Exercise("MySequential") as ex:
        if _isinstance(MySequential, type) and issubclass(MySequential, nn.Sequential):
            ex.fail(
                "MySequential subclasses nn.Sequential",
                mistake="it inherits everything it should do from nn.Sequential, so none of it is yours",
                fix="write `class MySequential(nn.Module):` and register, apply, count and index the "
                "modules yourself",
            )
        for device in ex.devices:
            for index, chain in enumerate(chains):
                dtype = dtype_on(device, chain.dtype)
                chain = _Chain(chain.recipe, chain.x_shape, dtype)
                label = chain.describe(device)
                modules = chain.build(seed * 100 + index)
                seq = _build(ex, MySequential, *modules, seed=seed + index, case=label)
                if _isinstance(seq, nn.Sequential):
                    ex.fail(
                        "MySequential(...) returned an nn.Sequential",
                        case=label,
                        fix="return nothing from __init__; subclass nn.Module and store the modules yourself",
                    )
                _check_registered(ex, seq, modules, label, _REGISTER_FIX)
                reference = nn.Sequential(*modules)
                keys = [
                    k for k, _ in ex.call(lambda s=seq: list(nn.Module.state_dict(s).items()), case=label)
                ]
                expected_keys = list(reference.state_dict())
                if keys != expected_keys:
                    mistake, fix = _keys_problem(keys, expected_keys)
                    ex.fail(
                        f"state_dict keys differ from nn.Sequential's: got {_short(keys)}, "
                        f"expected {_short(expected_keys)}",
                        case=label,
                        mistake=mistake,
                        fix=fix,
                    )
                ex.passed()

                _move(ex, seq, device, dtype, case=label)
                x = _input(chain.x_shape, seed * 100 + index, dtype, device)
                y = ex.call(seq, x, case=label, hints=_chain_hints)
                with torch.no_grad():
                    expected = reference(x)
                ex.assert_close(y, expected, "seq(x)", case=label, diagnose=_chain_diagnosis(ex, modules, x))
                if part == CORE:
                    continue
                length = ex.expect_int(
                    ex.call(len, seq, case=label, hints=_len_hints), "len(seq)", case=label
                )
                if length != len(modules):
                    ex.fail(
                        f"len(seq) is {length}, expected {len(modules)} (the number of modules given)",
                        case=label,
                        fix="def __len__(self): return len(self._modules)",
                    )
                for position in [*range(len(modules)), *range(-len(modules), 0)]:
                    got = ex.call(
                        operator.getitem,
                        seq,
                        position,
                        case=f"seq[{position}], {label}",
                        hints=_index_hints(position),
                    )
                    if got is not modules[position]:
                        ex.fail(
                            f"seq[{position}] is {_type(got).__name__}, expected the module given at "
                            f"position {position} ({_type(modules[position]).__name__}), the same object",
                            case=label,
                            mistake="negative indices not handled" if position < 0 else None,
                            fix="def __getitem__(self, idx): return list(self._modules.values())[idx]",
                        )
                ex.passed()
                _check_load_both_ways(
                    ex, MySequential, chain, seq, x, y, seed * 100 + index, device, dtype, label
                )
                _check_follows_to(ex, seq, modules, label)


# -- ParallelConcat ----------------------------------------------------------------------------------


def _branches(outs: Sequence[int | None], in_features: int, seed: int) -> list[nn.Module]:
    """One branch per entry: nn.Linear(in_features, out), Linear + ReLU for a negative out (-out
    features), nn.Identity for None; values drawn from a generator seeded with ``seed``."""
    generator = _generator(seed)
    branches: list[nn.Module] = []
    for out in outs:
        if out is None:
            branches.append(nn.Identity())
        elif out < 0:
            branches.append(nn.Sequential(nn.Linear(in_features, -out, device="meta"), nn.ReLU()))
        else:
            branches.append(nn.Linear(in_features, out, device="meta"))
    for branch in branches:
        branch.to_empty(device="cpu")
        with torch.no_grad():
            for p in branch.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
    return branches


def _describe_branches(branches: Sequence[nn.Module]) -> str:
    parts = []
    for b in branches:
        if _type(b) is nn.Linear:
            parts.append(f"Linear({b.in_features}, {b.out_features})")
        elif _type(b) is nn.Sequential:
            parts.append(f"Sequential(Linear({b[0].in_features}, {b[0].out_features}), ReLU)")
        else:
            parts.append(_type(b).__name__)
    return ", ".join(parts)


def _concat_hints(exc: BaseException) -> tuple[str, str] | None:
    text = str(exc)
    if "cannot be multiplied" in text or "size mismatch" in text:
        return (
            "branches applied one after another, each to the previous branch's output, instead of each "
            "to the same input x",
            "outputs = [branch(x) for branch in self.branches], then torch.cat(outputs, dim=-1)",
        )
    if "stack expects each tensor" in text:
        return (
            "torch.stack used: it adds a new dimension instead of joining the last one",
            "torch.cat(outputs, dim=-1)",
        )
    found = re.search(r"except in dimension (\d+)", text)
    if found:
        return (
            f"concatenation on dim {found.group(1)} instead of the last dimension",
            "torch.cat([branch(x) for branch in self.branches], dim=-1)",
        )
    found = re.search(r"Dimension out of range .*but got (-?\d+)\)", text)
    if found:
        return (
            f"concatenation on dim {found.group(1)} instead of the last dimension (x may have any number "
            "of dimensions; a 1-D x of shape (in,) has no dim 1)",
            "torch.cat([branch(x) for branch in self.branches], dim=-1)",
        )
    return None


def _concat_diagnosis(ex: Exercise, outputs: list[torch.Tensor]):
    fix = (
        "torch.cat([branch(x) for branch in ...], dim=-1): same input to every branch, joined on the last dim"
    )

    def diagnose(actual: torch.Tensor) -> tuple[str, str] | None:
        candidates = [("concatenation on dim 0 (stacks the batches) instead of the last dimension", 0)]
        candidates += [
            (f"concatenation on dim {d} instead of the last dimension", d)
            for d in range(1, outputs[0].dim() - 1)
        ]
        for mistake, dim in candidates:
            try:
                if ex.is_close(actual, torch.cat(outputs, dim=dim)):
                    return mistake, fix
            except RuntimeError:
                continue
        if len(outputs) > 1 and ex.is_close(actual, torch.cat(outputs[::-1], dim=-1)):
            return "branches concatenated in reverse order", "keep the order the branches were given"
        same = all(o.shape == outputs[0].shape for o in outputs)
        if same and actual.dim() == outputs[0].dim() + 1:
            return "torch.stack used: it adds a new dimension instead of joining the last one", fix
        if same and ex.is_close(actual, sum(outputs)):
            return "outputs added instead of concatenated", fix
        return None

    return diagnose


# (out sizes of the branches, x shape, dtype); -k is a Linear + ReLU block with k outputs, None Identity.
# The core cases: 2-D input. The edge cases: 3-D and 1-D input, one branch, an Identity branch, float64.
_CONCAT_VISIBLE: dict[str, list[tuple[list, tuple[int, ...], torch.dtype]]] = {
    CORE: [
        ([3, 5, -2], (6, 4), torch.float32),
        ([2, 2], (2, 3), torch.float32),  # equal widths: dim 0 runs, with another shape
        ([4, -1], (3, 5), torch.float32),
    ],
    EDGE: [
        ([4, 4], (2, 3, 5), torch.float32),  # 3-D, equal widths: dim 1 runs, with another shape
        ([3, None, -2], (2, 4, 3), torch.float32),  # 3-D, other widths: dim 1 raises
        ([2, 3], (4,), torch.float32),  # 1-D input: no dim 1 at all
        ([3], (5, 2), torch.float64),  # one branch
    ],
}


def _concat_cases(part: str, hidden: bool, seed: int) -> list[tuple[list, tuple[int, ...], torch.dtype]]:
    cases = list(_CONCAT_VISIBLE[part])
    if not hidden:
        return cases
    generator = _generator(seed)

    def draw(low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (1,), generator=generator))

    for dtype in (torch.float32, torch.float64, torch.float64):
        outs: list = [draw(1, 7) * (1 if draw(0, 3) else -1) for _ in range(draw(2, 4))]
        if part == CORE:
            shape: tuple[int, ...] = (draw(1, 6), draw(1, 6))
        else:
            if draw(0, 1):
                outs.insert(draw(0, len(outs)), None)
            shape = tuple(draw(1, 4) for _ in range((0, 2, 3)[draw(0, 2)])) + (draw(1, 6),)  # 1-D to 4-D
        cases.append((outs, shape, dtype))
    if part == CORE:
        cases.append(([draw(1, 5)] * 2, (draw(2, 5), draw(1, 5)), torch.float64))  # equal widths
    else:
        cases.append(([4, 4, 4], (2, 3, 5), torch.float64))  # 3-D, equal widths: dim 1 runs
        cases.append(([2, -3], (0, draw(1, 4)), torch.float32))  # an empty batch
    return cases


def check_ParallelConcat(ParallelConcat, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Does ``ParallelConcat(*branches)`` register its branches, feed the same input to each and
    concatenate their outputs along the last dimension, like ``torch.cat([b(x) for b in branches], -1)``?
    Core: 2-D input; ``part="edge"``: 3-D and 1-D input (so a fixed ``dim=1`` fails), one branch, an
    Identity branch, float64, and ``.to``."""
    __tracebackhide__ = True
    cases = _concat_cases(part, hidden, seed)
    with Exercise("ParallelConcat") as ex:
        for device in ex.devices:
            for index, (outs, shape, dtype) in enumerate(cases):
                dtype = dtype_on(device, dtype)
                branches = _branches(outs, shape[-1], seed * 100 + index)
                label = (
                    f"branches [{_describe_branches(branches)}], x of shape {shape}, "
                    f"{_dtype_name(dtype)} on {device}"
                )
                model = _build(ex, ParallelConcat, *branches, seed=seed + index, case=label)
                _check_registered(
                    ex,
                    model,
                    branches,
                    label,
                    "use nn.ModuleList(branches) or self.add_module(str(i), branch)",
                )
                _move(ex, model, device, dtype, case=label)
                x = _input(shape, seed * 100 + index, dtype, device)
                y = ex.call(model, x, case=label, hints=_concat_hints)
                with torch.no_grad():
                    outputs = [branch(x) for branch in branches]
                ex.assert_close(
                    y,
                    torch.cat(outputs, dim=-1),
                    "model(x)",
                    case=label,
                    diagnose=_concat_diagnosis(ex, outputs),
                )
                if part == EDGE:
                    _check_follows_to(ex, model, branches, label)


# -- FixedHiddenMLP ----------------------------------------------------------------------------------

_BUFFER_FIX = "self.register_buffer('rand_weight', torch.rand(features, features))"


def _fixed_hidden(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    rand_weight: torch.Tensor,
    *,
    relu: bool = True,
    plus: float = 1.0,
    loop: str = "while",
    reduce: str = "sum",
) -> torch.Tensor:
    """The contract's forward: linear, relu(X @ rand_weight + 1), linear, halve while |X|_1 > 1, sum;
    the keyword arguments switch to known mistakes."""
    X = F.linear(x, weight, bias)
    X = X @ rand_weight + plus
    X = F.relu(X) if relu else X
    X = F.linear(X, weight, bias)
    if loop == "while":
        while X.abs().sum() > 1:
            X = X / 2
    elif loop == "if":
        if X.abs().sum() > 1:
            X = X / 2
    elif loop == "signed":
        while X.sum() > 1:
            X = X / 2
    return X.sum() if reduce == "sum" else X.mean()


def _fixed_diagnosis(ex: Exercise, x, weight, bias, rand_weight):
    def diagnose(actual: torch.Tensor) -> tuple[str, str] | None:
        fix = (
            "X = self.linear(X); X = F.relu(X @ self.rand_weight + 1); X = self.linear(X); "
            "while X.abs().sum() > 1: X /= 2; return X.sum()"
        )
        with torch.no_grad():
            candidates = [
                ("the halving loop is missing", dict(loop="none")),
                ("X halved once (an `if` instead of a `while`)", dict(loop="if")),
                ("the loop tests X.sum() instead of the L1 norm X.abs().sum()", dict(loop="signed")),
                ("ReLU missing in relu(X @ rand_weight + 1)", dict(relu=False)),
                ("the `+ 1` is missing in relu(X @ rand_weight + 1)", dict(plus=0.0)),
                ("returned X.mean() instead of X.sum()", dict(reduce="mean")),
            ]
            matches = [
                mistake
                for mistake, options in candidates
                if ex.is_close(actual, _fixed_hidden(x, weight, bias, rand_weight, **options))
            ]
            if matches:  # several can agree on one input (a negative sum never enters the loop)
                return ", or ".join(matches), fix
            if ex.is_close(actual, _fixed_hidden(x, weight, bias, rand_weight.T)):
                return "rand_weight transposed: compute X @ self.rand_weight", fix
        if actual.dim() > 0:
            return "X returned instead of X.sum() (a scalar)", fix
        return None

    return diagnose


def _near_halving_boundary(x, weight, bias, rand_weight) -> bool:
    """True when |X|_1 before the loop is within 1e-5 (relative) of a power of two, where another correct
    formula may halve once more or once less through rounding."""
    with torch.no_grad():
        X = F.linear(F.relu(F.linear(x, weight, bias) @ rand_weight + 1), weight, bias)
        total = float(X.abs().sum())
    while total > 2:
        total /= 2
    return abs(total - 1) < 1e-5 or abs(total - 2) < 2e-5


def _check_fixed_structure(ex: Exercise, model: nn.Module, features: int, label: str) -> torch.Tensor:
    """One nn.Linear named `linear`; rand_weight a persistent buffer drawn with torch.rand. Returns it."""
    linears = [
        (name, m)
        for name, m in _named(ex, nn.Module.named_modules, model, label)
        if _isinstance(m, nn.Linear)
    ]
    if not linears:
        ex.fail("the model holds no nn.Linear", case=label, fix="self.linear = nn.Linear(features, features)")
    if len(linears) > 1:
        ex.fail(
            f"the model holds {len(linears)} nn.Linear layers "
            f"({', '.join(name for name, _ in linears)}), expected one",
            case=label,
            mistake="two separate Linear layers instead of one reused: FixedHiddenMLP applies the same "
            "layer, with the same weights, twice",
            fix="create one self.linear = nn.Linear(features, features) and call self.linear(X) twice",
        )
    linear = model._modules.get("linear")
    if linear is not linears[0][1]:
        ex.fail(
            f"the nn.Linear is named {linears[0][0]!r}, expected 'linear'",
            case=label,
            fix="self.linear = nn.Linear(features, features)",
        )
    if tuple(linear.weight.shape) != (features, features) or linear.bias is None:
        ex.fail(
            f"self.linear is {linear}, expected Linear(in_features={features}, out_features={features}, "
            "bias=True)",
            case=label,
            fix="self.linear = nn.Linear(features, features)",
        )

    parameters = dict(_named(ex, nn.Module.named_parameters, model, label))
    if "rand_weight" in parameters:
        ex.fail(
            "rand_weight is in parameters()",
            case=label,
            mistake="rand_weight as nn.Parameter: an optimizer given model.parameters() would train it, "
            "but it must stay constant",
            fix=_BUFFER_FIX,
        )
    buffers = dict(_named(ex, nn.Module.named_buffers, model, label))
    if "rand_weight" not in buffers:
        attribute = vars(model).get("rand_weight")
        if _isinstance(attribute, torch.Tensor):
            ex.fail(
                "rand_weight is not a registered buffer",
                case=label,
                mistake="rand_weight kept as a plain tensor attribute: .to(device/dtype) does not move it "
                "and state_dict() does not save it",
                fix=_BUFFER_FIX,
            )
        ex.fail("the model has no buffer named rand_weight", case=label, fix=_BUFFER_FIX)
    state_keys = [k for k, _ in ex.call(lambda: list(nn.Module.state_dict(model).items()), case=label)]
    if "rand_weight" not in state_keys:
        ex.fail(
            "rand_weight is not in the state_dict",
            case=label,
            mistake="buffer registered with persistent=False: a saved model would lose it",
            fix="register_buffer('rand_weight', tensor) (persistent=True is the default)",
        )
    rand_weight = buffers["rand_weight"]
    if _type(rand_weight) is not torch.Tensor:
        ex.fail(
            f"rand_weight is a {_type(rand_weight).__name__}, expected a plain tensor",
            case=label,
            fix=_BUFFER_FIX,
        )
    if rand_weight.requires_grad:
        ex.fail(
            "rand_weight requires grad, but it is never trained",
            case=label,
            fix="torch.rand(features, features) without requires_grad=True",
        )
    if tuple(rand_weight.shape) != (features, features):
        ex.fail(
            f"rand_weight has shape {tuple(rand_weight.shape)}, expected {(features, features)}",
            case=label,
            fix=_BUFFER_FIX,
        )
    values = rand_weight.detach().double()
    if (
        bool((values < 0).any())
        or bool((values >= 1).any())
        or (values.numel() > 1 and bool(values.std() == 0))
    ):
        ex.fail(
            "rand_weight does not look drawn from [0, 1): "
            f"min {float(values.min()):.3g}, max {float(values.max()):.3g}",
            case=label,
            mistake="not drawn with torch.rand (uniform on [0, 1)); torch.randn, zeros or ones differ",
            fix="torch.rand(features, features)",
        )
    ex.passed()
    return rand_weight


def _check_fixed_follows_to(ex: Exercise, model: nn.Module, label: str) -> None:
    for target in (torch.float64, torch.device("meta")):
        _move(ex, model, target, case=label)
        rand_weight = dict(_named(ex, nn.Module.named_buffers, model, label)).get("rand_weight")
        weight = model._modules["linear"].weight
        for name, tensor in (("rand_weight", rand_weight), ("linear.weight", weight)):
            wrong = tensor.dtype != torch.float64 if target is torch.float64 else tensor.device.type != "meta"
            if wrong:
                ex.fail(
                    f"after model.to({target!r}), {name} is {tensor.dtype} on {tensor.device}",
                    case=label,
                    mistake="rand_weight kept as a plain tensor attribute",
                    fix=_BUFFER_FIX,
                )
        ex.passed()


def _fixed_cases(part: str, hidden: bool, seed: int) -> list[tuple[int | None, int, torch.dtype]]:
    """(features or None for the default 20, batch, dtype) for one part of check_FixedHiddenMLP."""
    if part == CORE:
        cases: list[tuple[int | None, int, torch.dtype]] = [
            (None, 2, torch.float32),
            (5, 3, torch.float32),
            (12, 4, torch.float32),
        ]
    else:  # one feature, one sample, float64
        cases = [(1, 4, torch.float32), (3, 1, torch.float64), (None, 1, torch.float64)]
    if hidden:
        generator = _generator(seed)
        for dtype in (torch.float32, torch.float64, torch.float64):
            features, batch = (int(v) for v in torch.randint(1, 33, (2,), generator=generator))
            if part == EDGE:
                features, batch = features % 3 + 1, 1 + batch % 2
            cases.append((features, batch % 6 + 1, dtype))
    return cases


def _check_fixed_reloads(
    ex: Exercise,
    FixedHiddenMLP,
    model: nn.Module,
    args: tuple,
    x: torch.Tensor,
    y: torch.Tensor,
    seed: int,
    label: str,
) -> None:
    """A fresh FixedHiddenMLP loaded from the model's state_dict (strict) computes the same output."""
    other = _build(ex, FixedHiddenMLP, *args, seed=seed, case=label)
    _move(ex, other, x.device, x.dtype, case=label)
    ex.call(nn.Module.load_state_dict, other, nn.Module.state_dict(model), strict=True, case=label)
    with torch.no_grad():
        again = ex.call(other, x, case=label)
    ex.assert_close(
        again,
        y.detach(),
        "a fresh FixedHiddenMLP loaded from your model's state_dict, applied to x",
        case=label,
    )


def check_FixedHiddenMLP(FixedHiddenMLP, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Does ``FixedHiddenMLP(features=20)`` hold one nn.Linear named ``linear``, used twice per forward,
    and a constant ``rand_weight`` buffer that is saved in the state_dict, and compute linear,
    ``relu(X @ rand_weight + 1)``, linear, halve while ``|X|_1 > 1``, ``X.sum()``? Core: float32 batches;
    ``part="edge"``: one feature, one sample, float64, ``.to`` and a fresh model loaded from the
    state_dict."""
    __tracebackhide__ = True
    cases = _fixed_cases(part, hidden, seed)
    with Exercise("FixedHiddenMLP") as ex:
        for device in ex.devices:
            for index, (features, batch, dtype) in enumerate(cases):
                dtype = dtype_on(device, dtype)
                args = () if features is None else (features,)
                features = 20 if features is None else features
                call = "FixedHiddenMLP()" if not args else f"FixedHiddenMLP({features})"
                label = f"{call}, x of shape ({batch}, {features}), {_dtype_name(dtype)} on {device}"
                model = _build(ex, FixedHiddenMLP, *args, seed=seed + index, case=label)
                _check_fixed_structure(ex, model, features, label)
                _move(ex, model, device, dtype, case=label)
                linear = model._modules["linear"]
                rand_weight = dict(_named(ex, nn.Module.named_buffers, model, label))["rand_weight"]
                x = torch.rand((batch, features), generator=_generator(seed * 100 + index), dtype=dtype).to(
                    device
                )
                calls: list[int] = []
                handle = linear.register_forward_hook(lambda *_, calls=calls: calls.append(1))
                try:
                    y = ex.call(model, x, case=label)
                finally:
                    handle.remove()
                y = ex.expect_tensor(y, "model(x)", case=label)
                if len(calls) != 2:
                    mistake = {
                        0: "self.linear never called as a module (F.linear on its weight bypasses it)",
                        1: "linear used once instead of twice",
                    }.get(len(calls), "linear called more than twice")
                    ran = "once" if len(calls) == 1 else f"{len(calls)} times"
                    ex.fail(
                        f"self.linear ran {ran} in one forward pass, expected twice",
                        case=label,
                        mistake=mistake,
                        fix="X = self.linear(X) before relu(X @ self.rand_weight + 1), and again after it",
                    )
                expected = _fixed_hidden(x, linear.weight, linear.bias, rand_weight)
                boundary = _near_halving_boundary(x, linear.weight, linear.bias, rand_weight)
                if boundary and (ex.is_close(y, expected * 2) or ex.is_close(y, expected / 2)):
                    ex.passed()  # one halving more or less through rounding: also correct
                else:
                    ex.assert_close(
                        y,
                        expected,
                        "model(x)",
                        case=label,
                        diagnose=_fixed_diagnosis(ex, x, linear.weight, linear.bias, rand_weight),
                    )
                _grad_problem(ex, y, {"linear.weight": linear.weight, "linear.bias": linear.bias}, label)
                if part == EDGE:
                    _check_fixed_reloads(ex, FixedHiddenMLP, model, args, x, y, seed + 50 + index, label)
                    _check_fixed_follows_to(ex, model, label)


# -- SequenceClassifier ------------------------------------------------------------------------------


@dataclass
class _SeqCase:
    """One SequenceClassifier case: the four constructor arguments, ids of shape (batch, length)."""

    vocab_size: int
    embed_dim: int
    hidden_size: int
    num_classes: int
    batch: int
    length: int
    dtype: torch.dtype = torch.float32

    def describe(self, device: torch.device) -> str:
        return (
            f"SequenceClassifier({self.vocab_size}, {self.embed_dim}, {self.hidden_size}, "
            f"{self.num_classes}), ids of shape ({self.batch}, {self.length}) (N={self.batch}, "
            f"L={self.length}), {_dtype_name(self.dtype)} on {device}"
        )

    def ids(self, seed: int, device: torch.device) -> torch.Tensor:
        ids = torch.randint(0, self.vocab_size, (self.batch, self.length), generator=_generator(seed))
        if ids.numel():
            ids[0, -1] = self.vocab_size - 1  # the largest id occurs
        return ids.to(device)


# The core cases: several sequences of several tokens, N != L so that swapped batch and time show in the
# shape, and N == L where only the values show it. The edge cases: one sequence, one token, one class,
# float64 (and, in the check, tensors that forward creates on the default device).
_SEQ_VISIBLE = {
    CORE: [
        _SeqCase(12, 4, 6, 3, 3, 5),
        _SeqCase(9, 3, 4, 4, 4, 4),
        _SeqCase(20, 5, 3, 2, 2, 7),
    ],
    EDGE: [
        _SeqCase(6, 2, 3, 3, 1, 4),  # one sequence: .squeeze() would drop the batch dimension
        _SeqCase(5, 3, 2, 1, 3, 1),  # one token per sequence, one class
        _SeqCase(10, 4, 5, 3, 2, 6, torch.float64),  # an initial state made in float32 fails
    ],
}


def _seq_cases(part: str, hidden: bool, seed: int) -> list[_SeqCase]:
    cases = list(_SEQ_VISIBLE[part])
    if not hidden:
        return cases
    generator = _generator(seed)

    def draw(low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (1,), generator=generator))

    # float64 only among the edge cases, where an initial state made in float32 belongs
    for dtype in (torch.float32,) * 3 if part == CORE else (torch.float32, torch.float64, torch.float64):
        if part == CORE:
            batch, length = draw(2, 6), draw(2, 8)
        else:
            batch, length = ((1, draw(1, 6)), (draw(1, 5), 1), (draw(1, 3), draw(1, 3)))[draw(0, 2)]
        cases.append(_SeqCase(draw(2, 30), draw(1, 8), draw(1, 8), draw(1, 6), batch, length, dtype))
    if part == EDGE:
        cases.append(_SeqCase(draw(2, 9), draw(1, 4), draw(1, 4), draw(1, 4), 0, draw(1, 4)))  # no sequence
    return cases


_SEQ_INIT_FIX = (
    "self.embedding = nn.Embedding(vocab_size, embed_dim); "
    "self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True); "
    "self.fc = nn.Linear(hidden_size, num_classes)"
)
_BATCH_FIRST_FIX = (
    "self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True): the ids and embeddings are (N, L, ...)"
)
_SEQ_FORWARD_FIX = "output, (h_n, c_n) = self.lstm(self.embedding(x)); return self.fc(h_n[-1])"
_TUPLE_MISTAKE = "the LSTM's (output, (h_n, c_n)) tuple passed on: nn.LSTM returns a tuple, not a tensor"
_ALL_STEPS = (
    "fc applied to the whole output: logits for every time step, (N, L, num_classes) (nn.LSTM returns "
    "(output, (h_n, c_n)), so `h_n, c_n = self.lstm(x)` puts output in h_n)"
)
_WHOLE_H_N = "fc applied to h_n itself, of shape (num_layers, N, hidden_size): take its last layer h_n[-1]"
_SQUEEZED = "h_n.squeeze() dropped the batch dimension too (N == 1): take h_n[-1] or h_n.squeeze(0)"
_STATE_MISTAKE = (
    "an initial state (h0, c0) created without the input's dtype or device (torch.zeros(...) makes float32 "
    "on the CPU): it fails for float64 and on a GPU"
)
_STATE_FIX = (
    "leave the initial state out (nn.LSTM starts from zeros), or create it like the input: "
    "embedded.new_zeros(1, x.shape[0], hidden_size)"
)


def _seq_structure(ex: Exercise, model: nn.Module, case: _SeqCase, label: str) -> None:
    """Submodules embedding (nn.Embedding), lstm (nn.LSTM, one layer, one direction) and fc (nn.Linear)
    of the contract's sizes."""
    children = dict(_named(ex, nn.Module.named_children, model, label))
    wanted = (("embedding", nn.Embedding), ("lstm", nn.LSTM), ("fc", nn.Linear))
    for name, cls in wanted:
        if name in children:
            continue
        others = [n for n, m in children.items() if _isinstance(m, cls) and n not in dict(wanted)]
        if others:
            ex.fail(
                f"the nn.{cls.__name__} is named {others[0]!r}, expected {name!r}",
                case=label,
                mistake="submodules not named `embedding`, `lstm` and `fc`",
                fix=_SEQ_INIT_FIX,
            )
        if name == "fc":
            ex.fail(
                "the model has no submodule named 'fc'",
                case=label,
                mistake="fc missing: the final hidden state must go through an nn.Linear(hidden_size, "
                "num_classes) to give one logit per class",
                fix=_SEQ_INIT_FIX,
            )
        recurrent = [n for n, m in children.items() if _isinstance(m, nn.RNNBase)]
        ex.fail(
            f"the model has no submodule named {name!r} (its submodules: {_short(list(children))})",
            case=label,
            mistake="submodules not named `embedding`, `lstm` and `fc`"
            if children and (name != "lstm" or recurrent)
            else "the layers are not attributes of the module (created in forward, or local variables)",
            fix=_SEQ_INIT_FIX,
        )
    embedding, lstm, fc = (children[name] for name, _ in wanted)
    for name, cls in wanted:
        module = children[name]
        if not _isinstance(module, cls):
            kind = _type(module).__name__
            ex.fail(
                f"model.{name} is {kind}, expected an nn.{cls.__name__}",
                case=label,
                mistake=f"nn.{kind} instead of nn.LSTM"
                if name == "lstm" and _isinstance(module, nn.RNNBase)
                else None,
                fix=_SEQ_INIT_FIX,
            )
    weight = embedding.weight
    if tuple(weight.shape) != (case.vocab_size, case.embed_dim):
        swapped = tuple(weight.shape) == (case.embed_dim, case.vocab_size)
        ex.fail(
            f"model.embedding.weight has shape {tuple(weight.shape)}, expected "
            f"(vocab_size, embed_dim) = {(case.vocab_size, case.embed_dim)}",
            case=label,
            mistake="nn.Embedding's arguments swapped" if swapped else None,
            fix="nn.Embedding(vocab_size, embed_dim): one row of embed_dim numbers per token id",
        )
    if lstm.num_layers != 1:
        ex.fail(
            f"model.lstm has num_layers={lstm.num_layers}, expected one layer",
            case=label,
            mistake=f"a {lstm.num_layers}-layer LSTM (num_layers={lstm.num_layers}): the classifier asks "
            "for one layer",
            fix="nn.LSTM(embed_dim, hidden_size, batch_first=True) (num_layers=1 is the default)",
        )
    if lstm.bidirectional:
        ex.fail(
            "model.lstm is bidirectional, expected one direction",
            case=label,
            mistake="a bidirectional LSTM (bidirectional=True): h_n then holds both directions and "
            "h_n[-1] is the backward direction's, which read the sequence right to left",
            fix="nn.LSTM(embed_dim, hidden_size, batch_first=True) (bidirectional=False is the default)",
        )
    if (lstm.input_size, lstm.hidden_size, lstm.proj_size) != (case.embed_dim, case.hidden_size, 0):
        ex.fail(
            f"model.lstm is {lstm}, expected LSTM({case.embed_dim}, {case.hidden_size}, batch_first=True)",
            case=label,
            mistake="the LSTM's input_size is not embed_dim (it reads the embedding vectors)"
            if lstm.input_size != case.embed_dim
            else None,
            fix="nn.LSTM(embed_dim, hidden_size, batch_first=True)",
        )
    if (fc.in_features, fc.out_features) != (case.hidden_size, case.num_classes):
        ex.fail(
            f"model.fc is {fc}, expected Linear(in_features={case.hidden_size}, "
            f"out_features={case.num_classes}) (hidden_size -> num_classes)",
            case=label,
            mistake="fc sized for a bidirectional LSTM (2 * hidden_size)"
            if fc.in_features == 2 * case.hidden_size
            else None,
            fix="nn.Linear(hidden_size, num_classes)",
        )
    ex.passed()


def _seq_hints(exc: BaseException) -> tuple[str, str] | None:
    text = str(exc)
    if "not tuple" in text or "'tuple' object" in text or "tuple indices" in text:
        return (_TUPLE_MISTAKE, _SEQ_FORWARD_FIX)
    if "'indices'" in text and "scalar types" in text:
        return (
            "token ids converted to float: nn.Embedding looks rows up by integer index",
            "pass the int64 ids to self.embedding as they are (no .float())",
        )
    if "same dtype" in text or "same device" in text or "not at the same device" in text:
        return (_STATE_MISTAKE, _STATE_FIX)
    if "hx and cx" in text or "Expected hidden" in text:
        return (
            "an initial state (h0, c0) of the wrong shape: nn.LSTM wants (num_layers, N, hidden_size)",
            _STATE_FIX,
        )
    return None


class _SeqReference:
    """The contract's forward computed by PyTorch from the student's own embedding, lstm and fc weights:
    ``F.embedding``, an ``nn.LSTM(batch_first=True)`` holding copies of the student's LSTM weights, and
    ``F.linear``."""

    def __init__(self, model: nn.Module, ex: Exercise, label: str) -> None:
        children = model._modules
        self.embedding_weight = children["embedding"].weight
        lstm, fc = children["lstm"], children["fc"]
        self.fc_weight, self.fc_bias = fc.weight, fc.bias
        weight = lstm.weight_ih_l0
        self.lstm = nn.LSTM(
            lstm.input_size,
            lstm.hidden_size,
            bias=lstm.bias,
            batch_first=True,
            device=weight.device,
            dtype=weight.dtype,
        )
        own = lstm._parameters
        with torch.no_grad():
            for name, parameter in self.lstm.named_parameters():
                given = own.get(name)
                if given is None or given.shape != parameter.shape:
                    ex.fail(
                        f"model.lstm has no parameter {name} of shape {tuple(parameter.shape)}", case=label
                    )
                parameter.copy_(given)

    def fc(self, h: torch.Tensor) -> torch.Tensor:
        return F.linear(h, self.fc_weight, self.fc_bias)

    def run(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(embedded, output, h_n, c_n)`` for ids (N, L)."""
        embedded = F.embedding(ids, self.embedding_weight)
        output, (h_n, c_n) = self.lstm(embedded)
        return embedded, output, h_n, c_n

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        _, _, h_n, _ = self.run(ids)
        return self.fc(h_n[-1])


def _seq_diagnosis(ex: Exercise, reference: _SeqReference, ids: torch.Tensor, batch_first: bool):
    def diagnose(actual: torch.Tensor) -> tuple[str, str] | None:
        n, length = ids.shape
        if not actual.is_floating_point():
            return (
                "predicted classes returned (argmax) instead of the logits",
                "return self.fc(h_n[-1]), the raw scores; take argmax outside the model",
            )
        with torch.no_grad():
            embedded, output, h_n, c_n = reference.run(ids)
            logits = reference.fc(h_n[-1])
            _, (h_time, _) = reference.lstm(embedded.transpose(0, 1))  # dim 0 read as time
            swapped = (
                "batch_first missing (batch and time swapped): without batch_first=True nn.LSTM reads "
                "(N, L, embed_dim) as L sequences of N steps"
                if not batch_first
                else "batch and time swapped: the LSTM read (N, L, embed_dim) as L sequences of N steps"
            )
            raw = "return self.fc(h_n[-1]) as it is; apply softmax outside the model to read probabilities"
            candidates = [
                (swapped, lambda: reference.fc(h_time[-1]), _BATCH_FIRST_FIX),
                (
                    "the first time step output[:, 0] used: it has seen the first token only",
                    lambda: reference.fc(output[:, 0]),
                    _SEQ_FORWARD_FIX,
                ),
                (
                    "softmax applied to the logits (nn.CrossEntropyLoss applies log_softmax itself)",
                    lambda: logits.softmax(dim=-1),
                    raw,
                ),
                (
                    "log_softmax applied to the logits (nn.CrossEntropyLoss applies log_softmax itself)",
                    lambda: logits.log_softmax(dim=-1),
                    raw,
                ),
                ("sigmoid applied to the logits", lambda: torch.sigmoid(logits), raw),
                (
                    "the cell state c_n used instead of the hidden state h_n",
                    lambda: reference.fc(c_n[-1]),
                    _SEQ_FORWARD_FIX,
                ),
                (
                    "the mean of output over the time steps used instead of the final hidden state",
                    lambda: reference.fc(output.mean(dim=1)),
                    _SEQ_FORWARD_FIX,
                ),
                (_ALL_STEPS, lambda: reference.fc(output), _SEQ_FORWARD_FIX),
                (_WHOLE_H_N, lambda: reference.fc(h_n), _SEQ_FORWARD_FIX),
                (_SQUEEZED, lambda: reference.fc(h_n.squeeze()), _SEQ_FORWARD_FIX),
            ]
            for mistake, wrong, fix in candidates:
                value = wrong()
                # a mistake that gives the right logits in this case (one token, one sequence) is not it
                if ex.is_close(actual, value) and not ex.is_close(value, logits):
                    return mistake, fix
        if tuple(actual.shape) == (n, length, logits.shape[-1]):
            return _ALL_STEPS, _SEQ_FORWARD_FIX
        if tuple(actual.shape) == (length, logits.shape[-1]) and n != length:
            return swapped, _BATCH_FIRST_FIX
        if actual.dim() == 3 and tuple(actual.shape[1:]) == tuple(logits.shape):
            return _WHOLE_H_N, _SEQ_FORWARD_FIX
        return None

    return diagnose


def _seq_forward(ex: Exercise, model: nn.Module, ids: torch.Tensor, label: str) -> torch.Tensor:
    y = ex.call(model, ids, case=label, hints=_seq_hints)
    if _type(y) is tuple:
        ex.fail(
            f"model(ids) returned a tuple of {len(y)}, expected the logits, a tensor (N, num_classes)",
            case=label,
            mistake=_TUPLE_MISTAKE,
            fix=_SEQ_FORWARD_FIX,
        )
    return ex.expect_tensor(y, "model(ids)", case=label)


def _check_seq_default_device(ex: Exercise, model: nn.Module, ids: torch.Tensor, label: str) -> None:
    """With PyTorch's default device set to meta, a tensor that forward creates without ``device=`` lands
    on meta, away from the model and the ids: a device mistake shows on a CPU-only machine too, the way it
    would on a GPU. (Cheaper than running the LSTM on meta, which loads PyTorch's compiler.)"""
    meta_label = label + ", run inside `with torch.device('meta'):` (tensors made without device= go there)"
    with torch.no_grad(), torch.device("meta"):
        y = _seq_forward(ex, model, ids, meta_label)
    expected = (ids.shape[0], model._modules["fc"].out_features)
    if y.device != ids.device or tuple(y.shape) != expected:
        ex.fail(
            f"model(ids) is of shape {tuple(y.shape)} on {y.device}, expected {expected} on {ids.device}",
            case=meta_label,
            mistake="a tensor created inside forward without device=, on the default device instead of "
            "beside the input"
            if y.device != ids.device
            else None,
            fix="create tensors in forward with device=x.device (or leave the initial state out)",
        )
    ex.passed()


def check_SequenceClassifier(
    SequenceClassifier, *, part: str = CORE, hidden: bool = False, seed: int = 0
) -> None:
    """Does ``SequenceClassifier(vocab_size, embed_dim, hidden_size, num_classes)`` hold ``embedding``
    (nn.Embedding), ``lstm`` (nn.LSTM, one layer, one direction) and ``fc`` (nn.Linear), and map int64 ids
    (N, L) to logits ``fc(h_n[-1])`` (N, num_classes), with gradients to every parameter? The expected
    logits are computed by PyTorch from the student's own weights, the sequences read batch first. Core:
    several sequences of several tokens; ``part="edge"``: one sequence, one token, one class, float64, an
    empty batch (hidden) and tensors created in forward on the default device."""
    __tracebackhide__ = True
    cases = _seq_cases(part, hidden, seed)
    with Exercise("SequenceClassifier") as ex:
        for device in ex.devices:
            for index, case in enumerate(cases):
                dtype = dtype_on(device, case.dtype)
                label = _SeqCase(**{**vars(case), "dtype": dtype}).describe(device)
                args = (case.vocab_size, case.embed_dim, case.hidden_size, case.num_classes)
                model = _build(ex, SequenceClassifier, *args, seed=seed + index, case=label)
                _seq_structure(ex, model, case, label)
                _move(ex, model, device, dtype, case=label)
                ids = case.ids(seed * 100 + index, device)
                before = ids.clone()
                y = _seq_forward(ex, model, ids, label)
                if not torch.equal(ids, before):
                    ex.fail("model(ids) changed the ids it was given", case=label, fix="leave x as it is")
                reference = _SeqReference(model, ex, label)
                with torch.no_grad():
                    expected = reference.logits(ids)
                batch_first = bool(model._modules["lstm"].batch_first)
                ex.assert_close(
                    y,
                    expected,
                    "model(ids)",
                    case=label,
                    diagnose=_seq_diagnosis(ex, reference, ids, batch_first),
                )
                params = dict(_named(ex, nn.Module.named_parameters, model, label))
                _grad_problem(ex, y, params, label)
                if part == EDGE and index == 0:
                    _check_seq_default_device(ex, model, ids, label)


protect_module(__name__)
