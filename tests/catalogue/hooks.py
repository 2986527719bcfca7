"""08_hooks: the contract's mistakes for ActivationRecorder, output_grad_norms and clamp_output, the
leaks the checks look for (hooks left behind, graphs kept alive, .grad changed), and other common ones."""

from tests.catalogue import Alternative, Mistake

NOTEBOOK = "08_hooks"

# A correct recorder with one line marked REPLACE-ME: each mistake below swaps that line or a method.
_RECORDER = """
from torch import nn


class ActivationRecorder:
    def __init__(self, model, layer_types=(nn.Linear,)):
        self.model = model
        self.layer_types = layer_types
        self.activations = {}
        self.handles = []

    def _hook(self, name):
        def hook(module, args, output):
            self.activations[name] = output.detach()

        return hook

    def __enter__(self):
        for name, module in self.model.named_modules():
            if module is not self.model and isinstance(module, self.layer_types):
                self.handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, exc_type, exc, traceback):
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
"""


def _recorder(old: str, new: str) -> str:
    assert old in _RECORDER, old
    return _RECORDER.replace(old, new)


_GRAD_NORMS = """
import torch
from torch import nn


def output_grad_norms(model, loss_fn, x, target):
    norms = {}

    def make_hook(name):
        def hook(module, grad_input, grad_output):
            norms[name] = grad_output[0].norm().item()

        return hook

    handles = [
        module.register_full_backward_hook(make_hook(name))
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
    ]
    try:
        x = x.detach().requires_grad_(True)
        loss = loss_fn(model(x), target)
        torch.autograd.grad(loss, x)
    finally:
        for handle in handles:
            handle.remove()
    return norms
"""


def _grad_norms(old: str, new: str) -> str:
    assert old in _GRAD_NORMS, old
    return _GRAD_NORMS.replace(old, new)


MISTAKES = [
    # ActivationRecorder
    Mistake(
        "ActivationRecorder",
        "output not detached",
        _recorder("self.activations[name] = output.detach()", "self.activations[name] = output"),
        "output not detached",
    ),
    Mistake(
        "ActivationRecorder",
        "handles not removed",
        _recorder(
            """        for handle in self.handles:
            handle.remove()
        self.handles.clear()""",
            "        pass",
        ),
        "handles not removed in __exit__",
    ),
    Mistake(
        "ActivationRecorder",
        "handles not removed when the body raised",
        _recorder(
            """        for handle in self.handles:
            handle.remove()""",
            """        if exc_type is not None:
            return
        for handle in self.handles:
            handle.remove()""",
        ),
        "handles not removed when the with block raised",
    ),
    Mistake(
        "ActivationRecorder",
        "keyed by module object",
        _recorder(
            "self.handles.append(module.register_forward_hook(self._hook(name)))",
            "self.handles.append(module.register_forward_hook(self._hook(module)))",
        ),
        "keyed by module object",
    ),
    Mistake(
        "ActivationRecorder",
        "root recorded",
        _recorder("if module is not self.model and isinstance", "if isinstance"),
        "root recorded",
    ),
    Mistake(
        "ActivationRecorder",
        "layer_types ignored",
        _recorder("isinstance(module, self.layer_types)", "isinstance(module, nn.Linear)"),
        "layer_types ignored",
    ),
    Mistake(
        "ActivationRecorder",
        "first call's output kept",
        _recorder(
            "            self.activations[name] = output.detach()",
            "            self.activations.setdefault(name, output.detach())",
        ),
        "first call's output kept instead of the latest",
    ),
    Mistake(
        "ActivationRecorder",
        "__enter__ does not return self",
        _recorder(
            """        return self

    def __exit__""",
            """
    def __exit__""",
        ),
        "__enter__ does not return self",
    ),
    Mistake(
        "ActivationRecorder",
        "exception swallowed",
        _recorder("        self.handles.clear()", "        self.handles.clear()\n        return True"),
        "suppress the exception",
    ),
    Mistake(
        "ActivationRecorder",
        "hook returns the detached output",
        _recorder(
            "            self.activations[name] = output.detach()",
            "            self.activations[name] = output.detach()\n            return self.activations[name]",
        ),
        "a forward hook that returns a value replaces the output",
    ),
    Mistake(
        "ActivationRecorder",
        "subclasses not matched",
        _recorder("isinstance(module, self.layer_types)", "type(module) in self.layer_types"),
        "subclasses of the layer types not matched",
    ),
    Mistake(
        "ActivationRecorder",
        "only direct children",
        _recorder(
            "for name, module in self.model.named_modules():",
            "for name, module in self.model.named_children():",
        ),
        "only direct children hooked",
    ),
    Mistake(
        "ActivationRecorder",
        "state in class attributes",
        """
from torch import nn


class ActivationRecorder:
    activations = {}
    handles = []

    def __init__(self, model, layer_types=(nn.Linear,)):
        self.model = model
        self.layer_types = layer_types

    def __enter__(self):
        for name, module in self.model.named_modules():
            if name and isinstance(module, self.layer_types):
                self.handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def _hook(self, name):
        def hook(module, args, output):
            self.activations[name] = output.detach()

        return hook

    def __exit__(self, *exc_info):
        while self.handles:
            self.handles.pop().remove()
""",
        "state kept in class attributes",
    ),
    Mistake(
        "ActivationRecorder",
        "hooks registered in __init__",
        """
from torch import nn


class ActivationRecorder:
    def __init__(self, model, layer_types=(nn.Linear,)):
        self.activations = {}
        self.handles = [
            module.register_forward_hook(self._hook(name))
            for name, module in model.named_modules()
            if name and isinstance(module, layer_types)
        ]

    def _hook(self, name):
        def hook(module, args, output):
            self.activations[name] = output.detach()

        return hook

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        for handle in self.handles:
            handle.remove()
""",
        "hooks registered in __init__",
    ),
    Mistake(
        "ActivationRecorder",
        "every forward hook cleared",
        _recorder(
            """        for handle in self.handles:
            handle.remove()""",
            """        for module in self.model.modules():
            module._forward_hooks.clear()""",
        ),
        "hooks removed that your code did not add",
    ),
    Mistake(
        "ActivationRecorder",
        "not a context manager",
        """
from torch import nn


class ActivationRecorder:
    def __init__(self, model, layer_types=(nn.Linear,)):
        self.model, self.layer_types, self.activations = model, layer_types, {}

    def start(self):
        return self
""",
        "is not a context manager",
    ),
    Mistake(
        "ActivationRecorder",
        "the input recorded with a forward-pre hook",
        _recorder(
            """        def hook(module, args, output):
            self.activations[name] = output.detach()""",
            """        def hook(module, args):
            self.activations[name] = args[0].detach()""",
        ).replace("register_forward_hook(self._hook(name))", "register_forward_pre_hook(self._hook(name))"),
        "input recorded instead of its output",
    ),
    Mistake(
        "ActivationRecorder",
        "recordings cleared on exit",
        _recorder(
            "        self.handles.clear()", "        self.handles.clear()\n        self.activations.clear()"
        ),
        "recordings cleared in __exit__",
    ),
    Mistake(
        "ActivationRecorder",
        "only the last handle kept",
        _recorder(
            "self.handles.append(module.register_forward_hook(self._hook(name)))",
            "self.handles = [module.register_forward_hook(self._hook(name))]",
        ),
        "handles not removed",
    ),
    Mistake(
        "ActivationRecorder",
        "output detached in place with detach_()",
        _recorder("self.activations[name] = output.detach()", "self.activations[name] = output.detach_()"),
        "detach_() detaches the real output in place",
    ),
    # output_grad_norms
    Mistake(
        "output_grad_norms",
        "grad_input used",
        _grad_norms(
            "norms[name] = grad_output[0].norm().item()", "norms[name] = grad_input[0].norm().item()"
        ),
        "grad_input used",
    ),
    Mistake(
        "output_grad_norms",
        "grad_input used, None skipped",
        _grad_norms(
            "            norms[name] = grad_output[0].norm().item()",
            "            if grad_input[0] is not None:\n"
            "                norms[name] = grad_input[0].norm().item()",
        ),
        "grad_input used",
    ),
    Mistake(
        "output_grad_norms",
        "hooks left behind",
        _grad_norms(
            """        for handle in handles:
            handle.remove()""",
            "        pass",
        ),
        "hooks left behind",
    ),
    Mistake(
        "output_grad_norms",
        ".grad changed by loss.backward()",
        _grad_norms("torch.autograd.grad(loss, x)", "loss.backward()"),
        ".grad changed",
    ),
    Mistake(
        "output_grad_norms",
        "caller's gradients wiped by zero_grad",
        _grad_norms("        loss = loss_fn", "        model.zero_grad()\n        loss = loss_fn"),
        "the caller's gradients were wiped",
    ),
    Mistake(
        "output_grad_norms",
        "norms as tensors",
        _grad_norms("norms[name] = grad_output[0].norm().item()", "norms[name] = grad_output[0].norm()"),
        "should be a Python float",
    ),
    Mistake(
        "output_grad_norms",
        "keyed by module object",
        _grad_norms("norms[name] = grad_output", "norms[module] = grad_output"),
        "keyed by module object",
    ),
    Mistake(
        "output_grad_norms",
        "squared norm",
        _grad_norms("grad_output[0].norm().item()", "grad_output[0].pow(2).sum().item()"),
        "squared norm returned",
    ),
    Mistake(
        "output_grad_norms",
        "gradients only for the parameters",
        _grad_norms(
            """        x = x.detach().requires_grad_(True)
        loss = loss_fn(model(x), target)
        torch.autograd.grad(loss, x)""",
            """        loss = loss_fn(model(x), target)
        torch.autograd.grad(loss, list(model.parameters()))""",
        ),
        "the first layer's hook never fired",
    ),
    Mistake(
        "output_grad_norms",
        "warning when x does not require grad",
        """
import torch
from torch import nn


def output_grad_norms(model, loss_fn, x, target):
    norms, handles = {}, []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            hook = lambda m, gi, go, name=name: norms.__setitem__(name, go[0].norm().item())  # noqa: E731
            handles.append(module.register_full_backward_hook(hook))
    loss = loss_fn(model(x), target)
    torch.autograd.grad(loss, [x] if x.requires_grad else list(model.parameters()))
    for handle in handles:
        handle.remove()
    return norms
""",
        "no input of the first Linear requires grad",
    ),
    Mistake(
        "output_grad_norms",
        "x.requires_grad_ on the caller's x",
        _grad_norms(
            "x = x.detach().requires_grad_(True)", "x.requires_grad_(True)\n        x_grad = x.grad"
        ).replace("torch.autograd.grad(loss, x)", "torch.autograd.grad(loss, x)\n        x.grad = x_grad"),
        "x.requires_grad_() called on the caller's tensor",
    ),
    Mistake(
        "output_grad_norms",
        "only direct children",
        _grad_norms(
            "for name, module in model.named_modules()", "for name, module in model.named_children()"
        ),
        "only direct children hooked",
    ),
    Mistake(
        "output_grad_norms",
        "hooks not removed when something fails (no try/finally)",
        _grad_norms(
            """    try:
        x = x.detach().requires_grad_(True)
        loss = loss_fn(model(x), target)
        torch.autograd.grad(loss, x)
    finally:
        for handle in handles:
            handle.remove()""",
            """    x = x.detach().requires_grad_(True)
    loss = loss_fn(model(x), target)
    torch.autograd.grad(loss, x)
    for handle in handles:
        handle.remove()""",
        ),
        "not removed in a finally: block",
    ),
    Mistake(
        "output_grad_norms",
        "per-sample norms averaged",
        _grad_norms("grad_output[0].norm().item()", "grad_output[0].norm(dim=1).mean().item()"),
        "per-sample norms averaged",
    ),
    # clamp_output
    Mistake(
        "clamp_output",
        "weights clamped instead of the output",
        """
import torch


def clamp_output(module, min_value, max_value):
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.clamp_(min_value, max_value)
    return module.register_forward_hook(lambda module, args, output: None)
""",
        "modifying the module's weights instead of its output",
    ),
    Mistake(
        "clamp_output",
        "input clamped (forward-pre hook)",
        """
def clamp_output(module, min_value, max_value):
    def hook(module, args):
        return (args[0].clamp(min_value, max_value),) + args[1:]

    return module.register_forward_pre_hook(hook)
""",
        "clamping the input (a forward-pre hook) instead of the output",
    ),
    Mistake(
        "clamp_output",
        "in-place clamp_",
        """
def clamp_output(module, min_value, max_value):
    def hook(module, args, output):
        output.clamp_(min_value, max_value)

    return module.register_forward_hook(hook)
""",
        "in-place clamp_ on the output",
    ),
    Mistake(
        "clamp_output",
        "handle not returned",
        """
def clamp_output(module, min_value, max_value):
    def hook(module, args, output):
        return output.clamp(min_value, max_value)

    module.register_forward_hook(hook)
""",
        "handle not returned",
    ),
    Mistake(
        "clamp_output",
        "not removable (forward replaced)",
        """
def clamp_output(module, min_value, max_value):
    forward = module.forward
    module.forward = lambda *args: forward(*args).clamp(min_value, max_value)
    return module.register_forward_hook(lambda module, args, output: None)
""",
        "not removable",
    ),
    Mistake(
        "clamp_output",
        "not removable (hook registered twice)",
        """
def clamp_output(module, min_value, max_value):
    def hook(module, args, output):
        return output.clamp(min_value, max_value)

    module.register_forward_hook(hook)
    return module.register_forward_hook(hook)
""",
        "not removable",
    ),
    Mistake(
        "clamp_output",
        "clamped output not returned",
        """
def clamp_output(module, min_value, max_value):
    def hook(module, args, output):
        output = output.clamp(min_value, max_value)

    return module.register_forward_hook(hook)
""",
        "does not return the clamped output",
    ),
    Mistake(
        "clamp_output",
        "gradient cut by detach",
        """
def clamp_output(module, min_value, max_value):
    def hook(module, args, output):
        return output.detach().clamp(min_value, max_value)

    return module.register_forward_hook(hook)
""",
        "detached tensor",
    ),
    Mistake(
        "clamp_output",
        "max_value ignored",
        """
import torch


def clamp_output(module, min_value, max_value):
    def hook(module, args, output):
        return torch.clamp(output, min=min_value)

    return module.register_forward_hook(hook)
""",
        "max_value ignored",
    ),
    Mistake(
        "clamp_output",
        "min and max swapped",
        """
def clamp_output(module, min_value, max_value):
    return module.register_forward_hook(lambda m, args, output: output.clamp(max_value, min_value))
""",
        "swapped",
    ),
    Mistake(
        "clamp_output",
        "clamp_ on output.data",
        """
def clamp_output(module, min_value, max_value):
    def hook(module, args, output):
        output.data.clamp_(min_value, max_value)

    return module.register_forward_hook(hook)
""",
        "outside autograd",
    ),
    Mistake(
        "clamp_output",
        "bounds stored on the module",
        """
def _clamp_hook(module, args, output):
    return output.clamp(module.clamp_min, module.clamp_max)


def clamp_output(module, min_value, max_value):
    module.clamp_min, module.clamp_max = min_value, max_value
    return module.register_forward_hook(_clamp_hook)
""",
        "bounds stored on the module",
    ),
]

ALTERNATIVES = [
    Alternative(
        "ActivationRecorder",
        "functools.partial hook, skips the root by its empty name, ExitStack-free removal loop",
        """
from functools import partial

from torch import nn


class ActivationRecorder:
    def __init__(self, model, layer_types=(nn.Linear,)):
        self.model = model
        self.layer_types = tuple(layer_types)
        self.activations = {}
        self._handles = []

    def _record(self, name, module, args, output):
        self.activations[name] = output.detach().clone()

    def __enter__(self):
        self._handles = [
            module.register_forward_hook(partial(self._record, name))
            for name, module in self.model.named_modules()
            if name != "" and isinstance(module, self.layer_types)
        ]
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        while self._handles:
            self._handles.pop().remove()
        return False
""",
    ),
    Alternative(
        "ActivationRecorder",
        "one global forward hook filtered by a module-to-name map",
        """
from torch import nn
from torch.nn.modules.module import register_module_forward_hook


class ActivationRecorder:
    def __init__(self, model, layer_types=(nn.Linear,)):
        self.model = model
        self.layer_types = layer_types
        self.activations = {}
        self.handle = None

    def __enter__(self):
        names = {
            id(module): name
            for name, module in self.model.named_modules()
            if name and isinstance(module, self.layer_types)
        }

        def hook(module, args, output):
            if id(module) in names:
                self.activations[names[id(module)]] = output.detach()

        self.handle = register_module_forward_hook(hook)
        return self

    def __exit__(self, *exc_info):
        if self.handle is not None:
            self.handle.remove()
            self.handle = None
""",
    ),
    Alternative(
        "output_grad_norms",
        "loss.backward() with every .grad saved and put back, the warning silenced",
        """
import warnings

from torch import nn


def output_grad_norms(model, loss_fn, x, target):
    norms = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):

            def hook(module, grad_input, grad_output, name=name):
                norms[name] = float(grad_output[0].norm())

            handles.append(module.register_full_backward_hook(hook))
    saved = [(p, None if p.grad is None else p.grad.clone()) for p in model.parameters()]
    if x.requires_grad:
        saved.append((x, None if x.grad is None else x.grad.clone()))
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            loss_fn(model(x), target).backward()
    finally:
        for handle in handles:
            handle.remove()
        for tensor, grad in saved:
            tensor.grad = grad
    return norms
""",
    ),
    Alternative(
        "output_grad_norms",
        "torch.linalg.vector_norm, gradients for the parameters and a copy of x",
        """
import torch
from torch import nn


def output_grad_norms(model, loss_fn, x, target):
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    norms = dict.fromkeys(linears)

    def hook_for(name):
        return lambda module, grad_input, grad_output: norms.__setitem__(
            name, torch.linalg.vector_norm(grad_output[0]).item()
        )

    handles = [m.register_full_backward_hook(hook_for(name)) for name, m in linears.items()]
    x_copy = x.clone().detach().requires_grad_()
    try:
        loss = loss_fn(model(x_copy), target)
        torch.autograd.grad(loss, [x_copy, *model.parameters()])
    finally:
        for handle in handles:
            handle.remove()
    return norms
""",
    ),
    Alternative(
        "output_grad_norms",
        "forward hooks keep each output, torch.autograd.grad with respect to the outputs",
        """
import torch
from torch import nn


def output_grad_norms(model, loss_fn, x, target):
    outputs = {}

    def keep(name):
        def hook(module, args, output):
            outputs[name] = output

        return hook

    handles = [
        module.register_forward_hook(keep(name))
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
    ]
    try:
        loss = loss_fn(model(x), target)
    finally:
        for handle in handles:
            handle.remove()
    names = list(outputs)
    grads = torch.autograd.grad(loss, [outputs[name] for name in names])
    return {name: grad.norm().item() for name, grad in zip(names, grads)}
""",
    ),
    Alternative(
        "clamp_output",
        "torch.clamp in a named hook",
        """
import torch


def clamp_output(module, min_value, max_value):
    def clamp_hook(module, inputs, output):
        return torch.clamp(output, min=min_value, max=max_value)

    handle = module.register_forward_hook(clamp_hook)
    return handle
""",
    ),
    Alternative(
        "clamp_output",
        "torch.minimum / torch.maximum with a partial",
        """
from functools import partial

import torch


def _clamp(min_value, max_value, module, args, output):
    low = torch.full_like(output, min_value)
    high = torch.full_like(output, max_value)
    return torch.minimum(torch.maximum(output, low), high)


def clamp_output(module, min_value, max_value):
    return module.register_forward_hook(partial(_clamp, min_value, max_value))
""",
    ),
]
