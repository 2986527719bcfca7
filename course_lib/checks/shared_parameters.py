"""Checks for notebook 04_shared_parameters: ``make_shared_net``, ``TiedAutoencoder`` and ``shared_groups``.

Sharing is a matter of identity: the checks ask whether two places hold the *same* module or Parameter
object (``is``), never only whether their values are equal, and they show the difference the way training
would, with an optimizer step or a gradient. Each check has a core part (the main behaviour, float32) and
an edge part (``part="edge"``: repeated calls, sizes of one, float64, the state_dict, models without
sharing, the meta device); ``hidden=True`` adds random sizes and models to either (used by the hidden tests
at grading time).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.checks._core import Exercise, describe, seeded
from course_lib.checks._integrity import ORIGINALS, protect_module
from course_lib.protocol import CORE, EDGE

__all__ = ["check_make_shared_net", "check_TiedAutoencoder", "check_shared_groups"]

_equal = ORIGINALS["equal"]
_type = ORIGINALS["type"]
_META = torch.device("meta")


def _draw(generator: torch.Generator, low: int, high: int) -> int:
    """A random int in [low, high] from ``generator``."""
    return int(torch.randint(low, high + 1, (1,), generator=generator))


def _randn(shape: tuple[int, ...], seed: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype).to(device)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# -- make_shared_net ---------------------------------------------------------------------------------

_KINDS = ["Linear", "ReLU", "Linear", "ReLU", "Linear", "ReLU", "Linear"]
_LAYOUT = (
    "Linear(in_features, hidden), ReLU, shared Linear(hidden, hidden), ReLU, the same shared layer, ReLU, "
    "Linear(hidden, out_features)"
)
_SAME_OBJECT_FIX = (
    "net[2] and net[4] must be the same object (`net[2] is net[4]`): create the shared layer once, "
    "`shared = nn.Linear(hidden, hidden)`, and put that one object in the Sequential twice: "
    "`nn.Sequential(first, nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(), last)`"
)


def _kind(module: object) -> str:
    """'Linear' or 'ReLU' for those layers (subclasses included), else the class name."""
    kind = _type(module)
    if issubclass(kind, nn.Linear):
        return "Linear"
    if issubclass(kind, nn.ReLU):
        return "ReLU"
    return kind.__name__


def _structure_mistake(kinds: list[str]) -> tuple[str | None, str]:
    """(likely mistake, fix) for a Sequential whose layer types differ from the contract's."""
    linears, relus = kinds.count("Linear"), kinds.count("ReLU")
    fix = f"build exactly: {_LAYOUT}"
    if linears == 3:
        return (
            "the shared layer is used only once: it must appear twice, as net[2] and net[4]",
            _SAME_OBJECT_FIX,
        )
    if kinds and kinds[-1] == "ReLU":
        return "a ReLU after the last layer (the net ends with Linear(hidden, out_features))", fix
    if linears == 4 and relus < 3 and len(kinds) < 7:
        return "a ReLU missing between the layers (one nn.ReLU() after each Linear but the last)", fix
    if "Sequential" in kinds:
        return (
            "a nested nn.Sequential (a block reused as a whole): the contract's seven modules sit directly "
            "in one Sequential, so that net[2] and net[4] are the shared Linear itself",
            fix,
        )
    others = [k for k in kinds if k not in ("Linear", "ReLU")]
    if others:
        return f"{others[0]} used where the contract has nn.ReLU or nn.Linear", fix
    return None, fix


def _linear_parameters(ex: Exercise, layer: nn.Module, index: int, fan_in: int, fan_out: int, label: str):
    """The (weight, bias) Parameters of net[index], which must be a Linear(fan_in, fan_out) with a bias."""
    parameters = layer._parameters
    weight = parameters.get("weight") if _type(parameters) is dict else None
    bias = parameters.get("bias") if _type(parameters) is dict else None
    if _type(weight) is not nn.Parameter:
        ex.fail(
            f"net[{index}].weight is not a registered nn.Parameter (got {describe(weight)})",
            case=label,
            fix="use nn.Linear layers as they are",
        )
    if tuple(weight.shape) != (fan_out, fan_in):
        got = tuple(weight.shape)
        swapped = len(got) == 2 and got == (fan_in, fan_out)
        ex.fail(
            f"net[{index}] has a weight of shape {got}, expected ({fan_out}, {fan_in}) for "
            f"Linear({fan_in}, {fan_out})",
            case=label,
            mistake="in/out swapped: nn.Linear(in_features, out_features)" if swapped else None,
            fix=f"the layers are {_LAYOUT}",
        )
    if _type(bias) is not nn.Parameter or tuple(bias.shape) != (fan_out,):
        ex.fail(
            f"net[{index}] has no bias of shape ({fan_out},) (got {describe(bias)})",
            case=label,
            fix="keep nn.Linear's default bias=True",
        )
    return weight, bias


def _drift_after_one_step(
    ex: Exercise, net: nn.Module, in_features: int, first: torch.Tensor, second: torch.Tensor, label: str
) -> float:
    """Largest |second - first| after one SGD step on a random regression loss (0.0 if no step could be
    taken): how far two copied weights have drifted apart."""
    generator = torch.Generator().manual_seed(404)
    x = torch.randn(16, in_features, generator=generator, dtype=first.dtype).to(first.device)
    output = ex.expect_tensor(ex.call(net, x, case=label), "net(x)", case=label)
    if not output.requires_grad:
        return 0.0
    target = torch.randn(output.shape, generator=generator, dtype=output.dtype).to(output.device)
    loss = F.mse_loss(output, target)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        return float((second - first).abs().max())


def _reference_forward(weights: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
    """What the contract's net computes with the given (weight, bias) of net[0], net[2] (twice), net[6]."""
    (w0, b0), (w2, b2), (w6, b6) = weights
    h = F.relu(F.linear(x, w0, b0))
    h = F.relu(F.linear(h, w2, b2))
    h = F.relu(F.linear(h, w2, b2))
    return F.linear(h, w6, b6)


# The core cases: the layout, the sizes, one shared layer object and the forward, in float32. The edge
# cases: a new net on every call, sizes of one and equal sizes, float64 and the devices after .to().
def _shared_net_cases(part: str, hidden: bool, seed: int) -> list[tuple[int, int, int, torch.dtype]]:
    if part == CORE:
        cases = [(4, 8, 1, torch.float32), (3, 5, 2, torch.float32)]
    else:
        cases = [(6, 6, 6, torch.float64), (1, 1, 1, torch.float32), (2, 3, 4, torch.float64)]
    if hidden:
        generator = torch.Generator().manual_seed(seed)
        dtypes = (torch.float32,) * 4 if part == CORE else (torch.float32, torch.float64, torch.float64)
        for dtype in dtypes:
            cases.append((_draw(generator, 1, 9), _draw(generator, 1, 9), _draw(generator, 1, 9), dtype))
        if part == EDGE:
            cases.append((1, _draw(generator, 1, 4), 1, torch.float64))
    return cases


def check_make_shared_net(make_shared_net, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Does ``make_shared_net(in_features, hidden, out_features)`` return the contract's nn.Sequential
    with one Linear(hidden, hidden) object in both net[2] and net[4], computing what those layers compute?
    Core: the layout, the sizes, the shared layer and the forward in float32; ``part="edge"``: a new net
    on every call, sizes of one, float64 and every device after ``.to()``."""
    __tracebackhide__ = True
    with Exercise("make_shared_net") as ex:
        for index, (in_features, hidden_features, out_features, dtype) in enumerate(
            _shared_net_cases(part, hidden, seed)
        ):
            label = f"make_shared_net({in_features}, {hidden_features}, {out_features})"
            with seeded(seed * 100 + index):
                net = ex.call(make_shared_net, in_features, hidden_features, out_features, case=label)
            ex.expect_instance(
                net,
                nn.Sequential,
                "the result",
                case=label,
                fix=f"return nn.Sequential({_LAYOUT}) (did you forget `return`?)",
            )
            if _type(net._modules) is not dict:
                ex.fail("the Sequential's modules are not registered", case=label, fix=f"build {_LAYOUT}")
            layers = list(net._modules.values())  # in order, a module used twice listed twice
            kinds = [_kind(module) for module in layers]
            if kinds != _KINDS:
                mistake, fix = _structure_mistake(kinds)
                ex.fail(
                    f"the Sequential holds [{', '.join(kinds)}], expected [{', '.join(_KINDS)}]",
                    case=label,
                    mistake=mistake,
                    fix=fix,
                )
            sizes = {
                0: (in_features, hidden_features),
                2: (hidden_features, hidden_features),
                4: (hidden_features, hidden_features),
                6: (hidden_features, out_features),
            }
            params = {i: _linear_parameters(ex, layers[i], i, *sizes[i], label) for i in sizes}
            ex.passed()

            if layers[2] is not layers[4]:
                (w2, b2), (w4, b4) = params[2], params[4]
                if w2 is w4 and b2 is b4:
                    ex.fail(
                        "net[2] and net[4] are two Linear objects that share their Parameters; the contract "
                        "asks for one layer object in both places",
                        case=label,
                        fix=_SAME_OBJECT_FIX,
                    )
                with torch.no_grad():
                    equal = _equal(w2, w4) and _equal(b2, b4)
                if equal:
                    drift = _drift_after_one_step(ex, net, in_features, w2, w4, label)
                    after = (
                        f"after one SGD step they already differ by up to {drift:.2g}"
                        if drift > 0
                        else "an optimizer updates them separately, so they drift apart"
                    )
                    ex.fail(
                        f"net[2] and net[4] are two different layers holding equal weights: {after}",
                        case=label,
                        mistake="copied weights (copy.deepcopy, load_state_dict or copy_ into a second "
                        "layer): equal now, different after the first optimizer step",
                        fix=_SAME_OBJECT_FIX,
                    )
                ex.fail(
                    "net[2] and net[4] are two different layers with different weights",
                    case=label,
                    mistake="two separate Linear(hidden, hidden) layers instead of one shared layer",
                    fix=_SAME_OBJECT_FIX,
                )
            if layers[0] is layers[2] or layers[6] is layers[2] or layers[0] is layers[6]:
                ex.fail(
                    "net[0], net[2] and net[6] should be three different layers (only net[2] and net[4] "
                    "are the same one)",
                    case=label,
                    fix=f"build {_LAYOUT}",
                )
            ex.passed()

            if part == EDGE:
                _check_new_net_per_call(
                    ex, make_shared_net, net, (in_features, hidden_features, out_features)
                )
            for device in ex.devices:
                ex.call(net.to, device=device, dtype=dtype, case=label)
                x = _randn((5, in_features), seed + index, dtype, device)
                case = f"{label}, x of shape (5, {in_features}), {_dtype_name(dtype)} on {device}"
                y = ex.call(net, x, case=case)
                weights = [
                    (layers[i]._parameters["weight"], layers[i]._parameters["bias"]) for i in (0, 2, 6)
                ]
                ex.assert_close(y, _reference_forward(weights, x), "net(x)", case=case)


def _check_new_net_per_call(
    ex: Exercise, make_shared_net, net: nn.Module, sizes: tuple[int, int, int]
) -> None:
    """Two calls must build two nets that share no parameter."""
    label = f"make_shared_net{sizes}, called twice"
    with seeded(sum(sizes) + 50):
        other = ex.call(make_shared_net, *sizes, case=label)
    ex.expect_instance(other, nn.Sequential, "the result of a second call", case=label)
    mine = {id(p) for p in net.parameters()}
    if any(id(p) in mine for p in other.parameters()):
        ex.fail(
            "two calls of make_shared_net returned nets that share layers",
            case=label,
            mistake="layers created outside the function (once), so every net it returns shares them",
            fix="create every layer inside make_shared_net, so that each call builds a new net",
        )
    ex.passed()


# -- TiedAutoencoder ---------------------------------------------------------------------------------

_TIE_FIX = (
    "use encoder.weight itself in forward, every call: "
    "`F.linear(code, self.encoder.weight.T, self.decoder_bias)` or `code @ self.encoder.weight + "
    "self.decoder_bias`"
)
_BIAS_FIX = "self.decoder_bias = nn.Parameter(torch.zeros(in_features))"
_STALE = (
    "a tensor taken from encoder.weight in __init__ (a transpose, clone or .data) is not a registered "
    "Parameter, so model.to() does not convert it and training does not reach it"
)


def _tied_hints(exc: BaseException) -> tuple[str, str] | None:
    text = str(exc)
    if "must match the size" in text:
        return (
            "a bias of the wrong size added: the decoder adds decoder_bias, of shape (in_features,), not "
            "the encoder's bias, of shape (code_features,)",
            "add self.decoder_bias in the decoder: `code @ self.encoder.weight + self.decoder_bias`",
        )
    if "cannot be multiplied" in text or "size mismatch" in text:
        return (
            "the decoder's weight not transposed the right way: encoder.weight is (code_features, "
            "in_features), so the decoder computes `code @ encoder.weight`, which is "
            "F.linear(code, encoder.weight.T)",
            _TIE_FIX,
        )
    if "same dtype" in text or "dtype" in text or "same device" in text or "device" in text:
        return _STALE, _TIE_FIX
    return None


def _tied_structure(ex: Exercise, model: nn.Module, in_features: int, code_features: int, label: str):
    """(encoder.weight, encoder.bias, decoder_bias) after checking the contract's three parameters."""
    modules = model._modules if _type(model._modules) is dict else {}
    encoder = modules.get("encoder")
    if encoder is None or not issubclass(_type(encoder), nn.Linear):
        ex.fail(
            f"model.encoder should be an nn.Linear registered as a submodule, got {describe(encoder)}",
            case=label,
            fix="self.encoder = nn.Linear(in_features, code_features) (after super().__init__())",
        )
    weight = encoder._parameters.get("weight")
    encoder_bias = encoder._parameters.get("bias")
    if _type(weight) is not nn.Parameter or tuple(weight.shape) != (code_features, in_features):
        got = tuple(weight.shape) if _type(weight) is nn.Parameter else describe(weight)
        ex.fail(
            f"encoder.weight is {got}, expected shape ({code_features}, {in_features}) for "
            f"nn.Linear({in_features}, {code_features})",
            case=label,
            mistake="in/out swapped" if got == (in_features, code_features) else None,
            fix="self.encoder = nn.Linear(in_features, code_features)",
        )
    if _type(encoder_bias) is not nn.Parameter:
        ex.fail("the encoder has no bias", case=label, fix="keep nn.Linear's default bias=True")

    parameters = model._parameters if _type(model._parameters) is dict else {}
    decoder_bias = parameters.get("decoder_bias")
    # Exactly three parameter tensors: encoder.weight, encoder.bias, decoder_bias (by identity).
    expected = (weight, encoder_bias, decoder_bias)
    extra = [name for name, p in model.named_parameters() if not any(p is mine for mine in expected)]
    decoders = [
        name for name, module in model.named_modules() if module is not encoder and _kind(module) == "Linear"
    ]
    if decoders:
        ex.fail(
            f"the model has a Linear layer besides the encoder: {decoders[0]}",
            case=label,
            mistake=f"a separate decoder Linear ({decoders[0]}): its weight is a second tensor, trained on "
            "its own, not tied to encoder.weight",
            fix=f"no decoder layer: {_TIE_FIX}",
        )

    if _type(decoder_bias) is not nn.Parameter:
        buffers = model._buffers if _type(model._buffers) is dict else {}
        found = buffers.get("decoder_bias", vars(model).get("decoder_bias"))
        if buffers.get("decoder_bias") is not None:
            mistake = "decoder_bias registered as a buffer: it gets no gradient and is never trained"
        elif isinstance(found, torch.Tensor):
            mistake = (
                "decoder_bias is not an nn.Parameter but a plain tensor attribute: the optimizer never sees "
                "it and model.to() does not move it"
            )
        else:
            mistake = None
        ex.fail(
            f"model.decoder_bias should be a registered nn.Parameter, got {describe(found)}",
            case=label,
            mistake=mistake,
            fix=_BIAS_FIX,
        )
    if tuple(decoder_bias.shape) != (in_features,):
        ex.fail(
            f"decoder_bias has shape {tuple(decoder_bias.shape)}, expected ({in_features},): one entry per "
            "reconstructed input feature",
            case=label,
            fix=_BIAS_FIX,
        )
    if extra:
        sizes = {p.numel() for name, p in model.named_parameters() if name in extra}
        ex.fail(
            "the model has parameters beyond encoder.weight, encoder.bias and decoder_bias: "
            + ", ".join(extra),
            case=label,
            mistake="a cloned copy of encoder.weight stored as a Parameter of its own: it starts equal but "
            "trains separately, so the weights are not tied"
            if weight.numel() in sizes
            else None,
            fix=f"exactly three parameter tensors; no decoder weight: {_TIE_FIX}",
        )
    for tensor, name in zip(expected, ("encoder.weight", "encoder.bias", "decoder_bias"), strict=True):
        if not tensor.requires_grad:
            ex.fail(f"{name} does not require grad", case=label, fix="parameters train: requires_grad=True")
    with torch.no_grad():
        zero = _equal(decoder_bias, torch.zeros_like(decoder_bias))
    if not zero:
        ex.fail(
            "decoder_bias does not start at zeros",
            case=label,
            mistake="decoder_bias not initialized to zeros",
            fix=_BIAS_FIX,
        )
    ex.passed()
    return weight, encoder_bias, decoder_bias


def _tied_reference(x, weight, encoder_bias, decoder_bias, *, detach_decoder_weight=False, relu=True):
    code = F.linear(x, weight, encoder_bias)
    if relu:
        code = F.relu(code)
    decoder_weight = weight.detach() if detach_decoder_weight else weight
    return F.linear(code, decoder_weight.T, decoder_bias)


def _tied_diagnosis(ex: Exercise, x, weight, encoder_bias, decoder_bias, initial=None) -> Callable:
    """``initial``: encoder.weight before the last optimizer step (to recognise a copy taken earlier)."""

    def diagnose(actual: torch.Tensor):
        with torch.no_grad():
            code = F.relu(F.linear(x, weight, encoder_bias))
            candidates = [
                (
                    "the decoder uses a copy of encoder.weight taken in __init__ (a transposed copy, clone "
                    "or .contiguous()): the optimizer updates encoder.weight, the copy stays as it was",
                    code @ initial + decoder_bias if initial is not None else None,
                    _TIE_FIX,
                ),
                ("decoder_bias not added to the reconstruction", code @ weight, "add self.decoder_bias"),
                (
                    "ReLU missing on the code",
                    _tied_reference(x, weight, encoder_bias, decoder_bias, relu=False),
                    "code = torch.relu(self.encoder(x))",
                ),
                (
                    "a ReLU (or another activation) applied to the reconstruction too",
                    F.relu(code @ weight + decoder_bias),
                    "return the decoder's affine output as it is",
                ),
                (
                    "the encoder's bias added in the decoder instead of decoder_bias",
                    code @ weight + encoder_bias if weight.shape[0] == weight.shape[1] else None,
                    "the decoder adds its own decoder_bias: `code @ self.encoder.weight + self.decoder_bias`",
                ),
                (
                    "the encoder's bias used in the decoder as well",
                    code @ weight + decoder_bias + encoder_bias
                    if weight.shape[0] == weight.shape[1]
                    else None,
                    "the decoder adds decoder_bias only",
                ),
            ]
            if weight.shape[0] == weight.shape[1]:
                candidates.append(
                    (
                        "the decoder's weight not transposed the right way: F.linear(code, encoder.weight) "
                        "multiplies by encoder.weight.T, the encoder's orientation",
                        code @ weight.T + decoder_bias,
                        _TIE_FIX,
                    )
                )
        for mistake, wrong, fix in candidates:
            if wrong is not None and ex.is_close(actual, wrong):
                return mistake, fix
        return None

    return diagnose


# The core cases: the three parameters, the reconstruction and the gradients of both uses, before and
# after a training step, in float32 with code_features < in_features. The edge cases: a square code, a
# code of one feature, one sample, float64 after .to(), and the state_dict loaded into a new model.
def _tied_cases(part: str, hidden: bool, seed: int) -> list[tuple[int, int, int, torch.dtype]]:
    """(in_features, code_features, batch, dtype)."""
    if part == CORE:
        cases = [(6, 3, 4, torch.float32), (5, 2, 3, torch.float32)]
    else:
        cases = [(4, 4, 5, torch.float32), (5, 2, 3, torch.float64), (3, 1, 1, torch.float64)]
    if hidden:
        generator = torch.Generator().manual_seed(seed)
        if part == CORE:
            for _ in range(4):
                code = _draw(generator, 1, 6)
                cases.append((code + _draw(generator, 1, 6), code, _draw(generator, 2, 9), torch.float32))
        else:
            for dtype in (torch.float32, torch.float64, torch.float64):
                cases.append((_draw(generator, 1, 12), _draw(generator, 1, 8), _draw(generator, 1, 9), dtype))
            size = _draw(generator, 2, 7)
            cases.append((size, size, 1, torch.float64))
    return cases


def check_TiedAutoencoder(  # noqa: N802
    TiedAutoencoder, *, part: str = CORE, hidden: bool = False, seed: int = 0
) -> None:
    """Does ``TiedAutoencoder(in_features, code_features)`` hold exactly encoder.weight, encoder.bias and a
    zero decoder_bias, reconstruct ``relu(encoder(x)) @ encoder.weight + decoder_bias``, and send the
    decoder's gradient to encoder.weight, before and after a training step? Core: float32, a code smaller
    than the input; ``part="edge"``: a square code, one code feature, one sample, float64 and every
    device after ``.to()``, and the state_dict loaded into a new model."""
    __tracebackhide__ = True
    with Exercise("TiedAutoencoder") as ex:
        cases = _tied_cases(part, hidden, seed)
        for index, (in_features, code_features, batch, dtype) in enumerate(cases):
            label = f"TiedAutoencoder({in_features}, {code_features})"
            with seeded(seed * 100 + index):
                model = ex.call(TiedAutoencoder, in_features, code_features, case=label)
            ex.expect_instance(
                model, nn.Module, label, case=label, fix="subclass nn.Module and call super().__init__()"
            )
            weight, encoder_bias, decoder_bias = _tied_structure(ex, model, in_features, code_features, label)

            for device in ex.devices:
                ex.call(model.to, device=device, dtype=dtype, case=label)
                case = f"{label}, x of shape ({batch}, {in_features}), {_dtype_name(dtype)} on {device}"
                # A non-zero decoder_bias, so that a decoder that ignores it shows.
                with torch.no_grad():
                    decoder_bias.copy_(_randn((in_features,), seed + 7 * index, dtype, device))
                initial = weight.detach().clone()
                for step in range(2):  # before and after one optimizer step
                    step_case = case if step == 0 else f"{case}, after one SGD step"
                    x = _randn((batch, in_features), seed + 31 * index + step, dtype, device)
                    y = ex.call(model, x, case=step_case, hints=_tied_hints)
                    ex.assert_close(
                        y,
                        _tied_reference(x, weight, encoder_bias, decoder_bias),
                        "the reconstruction",
                        case=step_case,
                        diagnose=_tied_diagnosis(
                            ex, x, weight, encoder_bias, decoder_bias, initial if step else None
                        ),
                    )
                    _check_tied_gradients(ex, y, x, (weight, encoder_bias, decoder_bias), step_case, seed)
                    optimizer = torch.optim.SGD([weight, encoder_bias, decoder_bias], lr=0.1)
                    optimizer.zero_grad()
                    F.mse_loss(ex.call(model, x, case=step_case, hints=_tied_hints), x).backward()
                    optimizer.step()
        if part == EDGE:
            for index, (in_features, code_features, batch, _) in enumerate(cases[:2]):
                _check_tied_state_dict(ex, TiedAutoencoder, in_features, code_features, batch, seed + index)


def _check_tied_state_dict(
    ex: Exercise, TiedAutoencoder, in_features: int, code_features: int, batch: int, seed: int
) -> None:
    """After a training step, the state_dict holds the three tensors and loads into a new model, which
    then reconstructs the same and is still tied."""
    label = (
        f"TiedAutoencoder({in_features}, {code_features}) after one SGD step, its state_dict() loaded into a "
        "new TiedAutoencoder"
    )
    with seeded(seed):
        model = ex.call(TiedAutoencoder, in_features, code_features, case=label)
        fresh = ex.call(TiedAutoencoder, in_features, code_features, case=label)
    parameters = _tied_structure(ex, model, in_features, code_features, label)
    fresh_parameters = _tied_structure(ex, fresh, in_features, code_features, label)
    x = _randn((batch, in_features), seed + 3, torch.float32, torch.device("cpu"))
    optimizer = torch.optim.SGD(parameters, lr=0.1)
    F.mse_loss(ex.call(model, x, case=label, hints=_tied_hints), x).backward()
    optimizer.step()
    state = ex.call(model.state_dict, case=label)
    missing = [key for key in ("encoder.weight", "encoder.bias", "decoder_bias") if key not in state]
    if missing:
        ex.fail(
            f"the state_dict has no {', '.join(missing)} (its keys: {list(state)})",
            case=label,
            fix="register decoder_bias as an nn.Parameter and the encoder as a submodule",
        )
    ex.call(fresh.load_state_dict, state, case=label)
    x = _randn((batch, in_features), seed + 4, torch.float32, torch.device("cpu"))
    y = ex.call(fresh, x, case=label, hints=_tied_hints)
    ex.assert_close(
        y,
        _tied_reference(x, *parameters),
        "the new model's reconstruction",
        case=label,
        diagnose=lambda _: (
            "a tensor derived from encoder.weight in __init__ (a transposed copy or clone): "
            "load_state_dict changes encoder.weight but not that copy",
            _TIE_FIX,
        ),
    )
    _check_tied_gradients(ex, y, x, fresh_parameters, label, seed)


def _check_tied_gradients(ex: Exercise, y, x, parameters, case: str, seed: int) -> None:
    """The gradient of a random projection of the output with respect to each parameter, against autograd
    on clones; a gradient for encoder.weight that misses the decoder's use names the broken tie."""
    weight, encoder_bias, decoder_bias = parameters
    y = ex.expect_tensor(y, "the reconstruction", case=case)
    if not y.requires_grad:
        ex.fail(
            "the reconstruction does not require grad",
            case=case,
            mistake="the computation left autograd (torch.no_grad(), .detach(), .data or numpy)",
            fix=_TIE_FIX,
        )
    grad_output = _randn(tuple(y.shape), seed + 1, y.dtype, y.device)
    grads = torch.autograd.grad(y, [weight, encoder_bias, decoder_bias], grad_output, allow_unused=True)
    clones = [p.detach().clone().requires_grad_(True) for p in parameters]
    expected = torch.autograd.grad(_tied_reference(x, *clones), clones, grad_output)
    encoder_only = torch.autograd.grad(
        _tied_reference(x, *clones, detach_decoder_weight=True), clones[0], grad_output
    )[0]
    decoder_only = expected[0] - encoder_only

    def diagnose(actual: torch.Tensor):
        if ex.is_close(actual, encoder_only):
            return (
                "a cloned, detached or .data copy of encoder.weight in the decoder: its use there sends no "
                "gradient to encoder.weight, so the two halves are not tied",
                _TIE_FIX,
            )
        if ex.is_close(actual, decoder_only):
            return "the encoder does not use encoder.weight itself (only the decoder does)", _TIE_FIX
        return None

    names = ("encoder.weight", "encoder.bias", "decoder_bias")
    for name, grad, expected_grad in zip(names, grads, expected, strict=True):
        if grad is None:
            mistake = None
            if name == "encoder.weight":
                mistake = "encoder.weight never used as itself (a cloned, detached or .data copy everywhere)"
            ex.fail(f"no gradient reaches {name}", case=case, mistake=mistake, fix=_TIE_FIX)
        ex.assert_close(
            grad,
            expected_grad,
            f"the gradient with respect to {name}",
            case=case,
            diagnose=diagnose if name == "encoder.weight" else None,
        )


# -- shared_groups -----------------------------------------------------------------------------------


def _all_groups(model: nn.Module) -> list[list[str]]:
    """Every tensor's names, grouped by identity, in named_parameters(remove_duplicate=False) order."""
    groups: dict[int, list[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(parameter), []).append(name)
    return list(groups.values())


def _reference_groups(model: nn.Module) -> list[list[str]]:
    """The contract's answer, from PyTorch's own listing: the groups of two or more names."""
    return [names for names in _all_groups(model) if len(names) > 1]


def _groups_by_value(model: nn.Module) -> list[list[str]] | None:
    """What grouping by equal values (torch.equal) instead of identity gives (None on meta, no values)."""
    if any(p.device.type == "meta" for p in model.parameters()):
        return None
    groups: list[tuple[torch.Tensor, list[str]]] = []
    with torch.no_grad():
        for name, parameter in model.named_parameters(remove_duplicate=False):
            for representative, names in groups:
                if representative.shape == parameter.shape and _equal(representative, parameter):
                    names.append(name)
                    break
            else:
                groups.append((parameter, [name]))
    return [names for _, names in groups if len(names) > 1]


def _groups_by_address(model: nn.Module, state_dict: bool) -> list[list[str]]:
    """What grouping by memory address (data_ptr) gives, over the state_dict (buffers included) or over
    named_parameters(remove_duplicate=False)."""
    items = model.state_dict().items() if state_dict else model.named_parameters(remove_duplicate=False)
    groups: dict[int, list[str]] = {}
    for name, tensor in items:
        groups.setdefault(tensor.data_ptr(), []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def _groups_by_module(model: nn.Module) -> list[list[str]]:
    """What looking for shared modules only gives: each module reached under two or more names, with its
    own parameters' names (a Parameter assigned to two different modules is missed)."""
    found: dict[int, tuple[nn.Module, list[str]]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        found.setdefault(id(module), (module, []))[1].append(name)
    groups = []
    for module, names in found.values():
        if len(names) > 1:
            for parameter_name, _ in module.named_parameters(recurse=False):
                groups.append(
                    [f"{prefix}.{parameter_name}" if prefix else parameter_name for prefix in names]
                )
    return groups


def _container(**children: nn.Module | nn.Parameter) -> nn.Module:
    """A plain nn.Module holding the given submodules and parameters under the given names, in order."""
    module = nn.Module()
    for name, child in children.items():
        if isinstance(child, nn.Parameter):
            module.register_parameter(name, child)
        else:
            module.add_module(name, child)
    return module


def _model_shared_net() -> nn.Module:
    shared = nn.Linear(8, 8)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(), nn.Linear(8, 1))


def _model_equal_values() -> nn.Module:
    """Distinct parameters with equal values (zeros, a deep copy) and one truly shared layer."""
    layer = nn.Linear(3, 3)
    tied = nn.Linear(3, 3)
    return _container(
        zeros_a=nn.Parameter(torch.zeros(3)),
        zeros_b=nn.Parameter(torch.zeros(3)),
        layer=layer,
        layer_copy=copy.deepcopy(layer),
        tied=tied,
        alias=tied,
    )


def _model_language() -> nn.Module:
    """A small language model: embedding tied to the output layer, LayerNorms with equal values, and one
    projection shared across two blocks (as in ALBERT)."""
    embedding = nn.Embedding(11, 4)
    shared_proj = nn.Linear(4, 4)
    blocks = nn.ModuleList(
        _container(norm=nn.LayerNorm(4), proj=shared_proj, ff=nn.Linear(4, 4)) for _ in range(2)
    )
    lm_head = nn.Linear(4, 11, bias=False)
    lm_head.weight = embedding.weight
    return _container(embedding=embedding, blocks=blocks, final_norm=nn.LayerNorm(4), lm_head=lm_head)


def _model_three_uses() -> nn.Module:
    shared = nn.Linear(5, 5, bias=False)
    return nn.Sequential(shared, nn.Tanh(), shared, nn.Tanh(), shared)


def _model_no_sharing() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def _model_tied_autoencoder() -> nn.Module:
    """Weight used twice in forward but registered once: nothing is listed under two names."""
    return _container(encoder=nn.Linear(6, 3), decoder_bias=nn.Parameter(torch.zeros(6)))


def _model_order() -> nn.Module:
    """Names whose alphabetical order differs from named_parameters' order, a parameter registered under two
    names in one module, and root parameters (listed before the submodules' whatever their registration)."""
    scale = nn.Parameter(torch.ones(2))
    inner = nn.Linear(2, 2)
    return _container(
        zeta=_container(inner=inner),
        alpha=nn.Sequential(nn.Linear(2, 2), inner),
        gain=scale,
        also_gain=scale,
    )


def _model_shared_norm() -> nn.Module:
    """A BatchNorm used twice: its weight and bias are shared parameters, its buffers are not parameters."""
    norm = nn.BatchNorm1d(4)
    return nn.Sequential(nn.Linear(3, 4), norm, nn.ReLU(), nn.Linear(4, 4), norm)


def _model_without_parameters() -> nn.Module:
    return nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Tanh())


# The core models: shared layers, a tied Parameter between two modules, equal values that are not shared.
# The edge models: nothing shared, no parameters at all, shared buffers, names in registration order, and
# models built on the meta device (no memory, so no data_ptr to tell tensors apart).
_VISIBLE_MODELS: dict[str, list[tuple[str, Callable[[], nn.Module]]]] = {
    CORE: [
        ("make_shared_net(4, 8, 1)'s net", _model_shared_net),
        (
            "distinct parameters with equal values (zeros, a deep copy) and one shared layer",
            _model_equal_values,
        ),
        ("a language model with tied embedding and output weights, nested blocks", _model_language),
        ("one layer used three times", _model_three_uses),
    ],
    EDGE: [
        ("a model without sharing", _model_no_sharing),
        ("a tied autoencoder (weight reused in forward, registered once)", _model_tied_autoencoder),
        ("a model without parameters", _model_without_parameters),
        ("a BatchNorm1d used twice (shared parameters and buffers)", _model_shared_norm),
        ("names registered in non-alphabetical order, a Parameter under two names", _model_order),
    ],
}
# Edge models also built on the meta device.
_META_MODELS = [
    ("a language model with tied embedding and output weights, nested blocks", _model_language),
    ("a BatchNorm1d used twice (shared parameters and buffers)", _model_shared_norm),
    ("make_shared_net(4, 8, 1)'s net", _model_shared_net),
]


def _random_model(generator: torch.Generator, dtype: torch.dtype) -> nn.Module:
    """Nested containers whose slots hold new layers, reuses of earlier ones (shared), deep copies of
    earlier ones (equal values, not shared) and zero parameters, chosen at random."""
    pool: list[nn.Module] = []
    parameters: list[nn.Parameter] = []

    def build(depth: int) -> nn.Module:
        children: dict[str, nn.Module | nn.Parameter] = {}
        for slot in range(_draw(generator, 2, 5)):
            choice = _draw(generator, 0, 9)
            name = f"{'abcdefgh'[_draw(generator, 0, 7)]}{slot}"
            if choice <= 2 or not pool:
                layer = nn.Linear(_draw(generator, 1, 4), _draw(generator, 1, 4), bias=bool(choice % 2))
                with torch.no_grad():
                    for p in layer.parameters():
                        p.copy_(torch.randn(p.shape, generator=generator))
                pool.append(layer)
                children[name] = layer
            elif choice <= 4:
                children[name] = pool[_draw(generator, 0, len(pool) - 1)]  # shared
            elif choice == 5:
                children[name] = copy.deepcopy(pool[_draw(generator, 0, len(pool) - 1)])  # equal, not shared
            elif choice == 6:
                if parameters and _draw(generator, 0, 1):
                    children[name] = parameters[_draw(generator, 0, len(parameters) - 1)]  # shared
                else:
                    parameters.append(nn.Parameter(torch.zeros(3)))  # equal values across draws
                    children[name] = parameters[-1]
            elif depth < 2:
                children[name] = build(depth + 1)
            else:
                children[name] = nn.ReLU()
        return _container(**children)

    return build(0).to(dtype)


def _as_groups(ex: Exercise, result: object, case: str) -> list[list[str]]:
    """The student's result as a list of lists of plain str, after checking its types."""
    if _type(result) is not list:
        ex.fail(
            f"shared_groups should return a list of name lists, got {describe(result)}",
            case=case,
            fix="return a list with one list of names per shared tensor ([] when nothing is shared)",
        )
    groups = []
    for group in result:
        if _type(group) not in (list, tuple):
            ex.fail(
                f"each group should be a list of names, got {describe(group)}",
                case=case,
                fix="return a list of lists of names, e.g. [['2.weight', '4.weight'], ['2.bias', '4.bias']]",
            )
        for name in group:
            if _type(name) is not str:
                ex.fail(
                    f"each group should hold parameter names (str), got {describe(name)}",
                    case=case,
                    mistake="parameters returned instead of their names"
                    if isinstance(name, torch.Tensor)
                    else None,
                    fix="collect the names from model.named_parameters(remove_duplicate=False)",
                )
        groups.append(list(group))
    return groups


def _short(groups: list[list[str]]) -> str:
    text = repr(groups)
    return text if len(text) <= 240 else text[:237] + "..."


def _meta_errors_as_runtime(shared_groups):
    """``shared_groups`` with PyTorch's NotImplementedError for an operator the meta device lacks (values
    compared on tensors that have none) turned into a RuntimeError, so that it is reported as what it is and
    not as an exercise left unsolved."""

    def call(model):
        try:
            return shared_groups(model)
        except NotImplementedError as exc:
            if "Meta" not in str(exc):
                raise
            raise RuntimeError(f"NotImplementedError: {str(exc).splitlines()[0]}") from None

    return call


def _groups_hints(exc: BaseException) -> tuple[str, str] | None:
    text = str(exc)
    if "Meta tensors" in text:
        return (
            "grouping by equal values instead of identity: on the meta device tensors have no values to "
            "compare (and elsewhere separate parameters can hold equal values without being shared)",
            "group by the tensor object itself: `p is q`, or key a dict by id(p)",
        )
    if "ambiguous" in text or "must match the size" in text:
        return (
            "tensors compared with == (or with `in` on a list of tensors), which compares values element by "
            "element",
            "compare identity: `p is q`, or key a dict by id(p)",
        )
    return None


def _groups_diagnosis(model: nn.Module, got: list[list[str]], expected: list[list[str]]) -> tuple[str, str]:
    if got == _groups_by_value(model):
        return (
            "grouping by equal values instead of identity: separate parameters can hold equal values "
            "(zeros, copies) without being shared",
            "group by the tensor object itself: `p is q`, or key a dict by id(p)",
        )
    if got == [] and expected:
        return (
            "named_parameters() without remove_duplicate=False lists each shared tensor once, under one name "
            "(and the state_dict's values are new detached tensors, so comparing them finds nothing shared)",
            "iterate over model.named_parameters(remove_duplicate=False)",
        )
    for state_dict in (False, True):
        if got == _groups_by_address(model, state_dict):
            buffers = " and the state_dict holds buffers, which are not parameters" if state_dict else ""
            return (
                "grouped by memory address (data_ptr()): tensors without memory of their own (on the meta "
                f"device, or empty ones) all have data_ptr() 0{buffers}",
                "group by the Parameter object itself: key a dict by id(p) over "
                "model.named_parameters(remove_duplicate=False)",
            )
    if got == _groups_by_module(model) and got != expected:
        return (
            "only shared modules found: a Parameter assigned to two different modules (weight tying, "
            "lm_head.weight = embedding.weight) is shared too",
            "group the parameters themselves: key a dict by id(p) over "
            "model.named_parameters(remove_duplicate=False)",
        )
    if got == _all_groups(model):
        return (
            "every tensor listed, not only shared ones",
            "keep only the tensors that appear under two or more names",
        )
    if sorted(sorted(group) for group in got) == sorted(sorted(group) for group in expected):
        return (
            "the right groups in the wrong order",
            "keep named_parameters(remove_duplicate=False) order: names within a group as they are listed, "
            "groups by their first name's position (do not sort)",
        )
    return (
        None,
        "one group per tensor listed under two or more names by "
        "model.named_parameters(remove_duplicate=False), grouped by identity",
    )


def check_shared_groups(shared_groups, *, part: str = CORE, hidden: bool = False, seed: int = 0) -> None:
    """Does ``shared_groups(model)`` list, for each tensor reachable under two or more names, those names in
    named_parameters(remove_duplicate=False) order, grouping by identity (not by equal values), groups in
    order of first appearance, and ``[]`` when nothing is shared? Core: shared layers, a tied Parameter,
    equal values that are not shared; ``part="edge"``: no sharing, no parameters, shared buffers,
    registration order, float64 and models on the meta device."""
    __tracebackhide__ = True
    models = [(description, make, None) for description, make in _VISIBLE_MODELS[part]]
    if part == EDGE:
        models += [
            (f"{description}, built on the meta device", make, _META) for description, make in _META_MODELS
        ]
    if hidden:
        generator = torch.Generator().manual_seed(seed)
        for index in range(6):
            dtype = torch.float32 if part == CORE else torch.float64
            models.append(
                (f"random nested model #{index}", lambda g=generator, d=dtype: _random_model(g, d), None)
            )
    with Exercise("shared_groups") as ex:
        for index, (description, make, build_on) in enumerate(models):
            with seeded(seed * 100 + index):
                if build_on is None:
                    model = make()
                else:
                    with torch.device(build_on):
                        model = make()
            for device in ex.devices if build_on is None else [build_on]:
                if build_on is None:
                    model.to(device)
                case = f"{description} on {device}" if build_on is None else description
                before = [(name, id(p)) for name, p in model.named_parameters(remove_duplicate=False)]
                student = shared_groups if build_on is None else _meta_errors_as_runtime(shared_groups)
                got = _as_groups(ex, ex.call(student, model, case=case, hints=_groups_hints), case)
                after = [(name, id(p)) for name, p in model.named_parameters(remove_duplicate=False)]
                if after != before:
                    ex.fail(
                        "shared_groups changed the model's parameters", case=case, fix="only read the model"
                    )
                expected = _reference_groups(model)
                if got != expected:
                    mistake, fix = _groups_diagnosis(model, got, expected)
                    ex.fail(
                        f"returned {_short(got)}, expected {_short(expected)}",
                        case=case,
                        mistake=mistake,
                        fix=fix,
                    )
                ex.passed()


protect_module(__name__)
