"""06_lazy_layers: the contract's mistakes for lazy_mlp, materialize, init_lazy and LazyScale, and more."""

from tests.catalogue import Alternative, Mistake

NOTEBOOK = "06_lazy_layers"

MISTAKES = [
    # lazy_mlp
    Mistake(
        "lazy_mlp",
        "plain nn.Linear with a guessed in_features",
        """
from torch import nn


def lazy_mlp(hidden_sizes, out_features):
    layers, in_features = [], 10  # a guess
    for size in hidden_sizes:
        layers += [nn.Linear(in_features, size), nn.ReLU()]
        in_features = size
    layers.append(nn.Linear(in_features, out_features))
    return nn.Sequential(*layers)
""",
        "plain nn.Linear with a guessed in_features",
    ),
    Mistake(
        "lazy_mlp",
        "already materialized",
        """
import torch
from torch import nn


def lazy_mlp(hidden_sizes, out_features):
    layers = []
    for size in hidden_sizes:
        layers += [nn.LazyLinear(size), nn.ReLU()]
    layers.append(nn.LazyLinear(out_features))
    model = nn.Sequential(*layers)
    model(torch.zeros(1, 8))  # "to check that it works"
    return model
""",
        "already materialized",
    ),
    Mistake(
        "lazy_mlp",
        "missing ReLU",
        """
from torch import nn


def lazy_mlp(hidden_sizes, out_features):
    layers = [nn.LazyLinear(size) for size in hidden_sizes]
    return nn.Sequential(*layers, nn.LazyLinear(out_features))
""",
        "missing ReLU",
    ),
    Mistake(
        "lazy_mlp",
        "wrong final size",
        """
from torch import nn


def lazy_mlp(hidden_sizes, out_features):
    layers = []
    for size in hidden_sizes:
        layers += [nn.LazyLinear(size), nn.ReLU()]
    layers.append(nn.LazyLinear(1))
    return nn.Sequential(*layers)
""",
        "wrong final size",
    ),
    Mistake(
        "lazy_mlp",
        "ReLU after the final layer",
        """
from torch import nn


def lazy_mlp(hidden_sizes, out_features):
    layers = []
    for size in [*hidden_sizes, out_features]:
        layers += [nn.LazyLinear(size), nn.ReLU()]
    return nn.Sequential(*layers)
""",
        "ReLU after the final layer",
    ),
    Mistake(
        "lazy_mlp",
        "final layer forgotten",
        """
from torch import nn


def lazy_mlp(hidden_sizes, out_features):
    layers = []
    for size in hidden_sizes:
        layers += [nn.LazyLinear(size), nn.ReLU()]
    return nn.Sequential(*layers[:-1])
""",
        "LazyLinear layers, expected",
    ),
    Mistake(
        "lazy_mlp",
        "returns a list",
        """
from torch import nn


def lazy_mlp(hidden_sizes, out_features):
    layers = []
    for size in hidden_sizes:
        layers += [nn.LazyLinear(size), nn.ReLU()]
    return layers + [nn.LazyLinear(out_features)]
""",
        "should be a Sequential",
    ),
    Mistake(
        "lazy_mlp",
        "layers without bias",
        """
from torch import nn


def lazy_mlp(hidden_sizes, out_features):
    layers = []
    for size in hidden_sizes:
        layers += [nn.LazyLinear(size, bias=False), nn.ReLU()]
    layers.append(nn.LazyLinear(out_features, bias=False))
    return nn.Sequential(*layers)
""",
        "has no bias",
    ),
    Mistake(
        "lazy_mlp",
        "hidden sizes in reverse order",
        """
from torch import nn


def lazy_mlp(hidden_sizes, out_features):
    layers = []
    for size in reversed(hidden_sizes):
        layers += [nn.LazyLinear(size), nn.ReLU()]
    layers.append(nn.LazyLinear(out_features))
    return nn.Sequential(*layers)
""",
        "hidden sizes in the wrong order",
    ),
    Mistake(
        "lazy_mlp",
        "Tanh instead of ReLU",
        """
from torch import nn


def lazy_mlp(hidden_sizes, out_features):
    layers = []
    for size in hidden_sizes:
        layers += [nn.LazyLinear(size), nn.Tanh()]
    layers.append(nn.LazyLinear(out_features))
    return nn.Sequential(*layers)
""",
        "another activation instead of ReLU",
    ),
    Mistake(
        "lazy_mlp",
        "hidden_sizes=[] not handled",
        """
from torch import nn


def lazy_mlp(hidden_sizes, out_features):
    layers = [nn.LazyLinear(hidden_sizes[0])]
    for size in hidden_sizes[1:]:
        layers += [nn.ReLU(), nn.LazyLinear(size)]
    layers += [nn.ReLU(), nn.LazyLinear(out_features)]
    return nn.Sequential(*layers)
""",
        "hidden_sizes=[] not handled",
    ),
    Mistake(
        "lazy_mlp",
        "the caller's hidden_sizes list changed",
        """
from torch import nn


def lazy_mlp(hidden_sizes, out_features):
    hidden_sizes.append(out_features)
    layers = []
    for size in hidden_sizes:
        layers += [nn.LazyLinear(size), nn.ReLU()]
    return nn.Sequential(*layers[:-1])
""",
        "hidden_sizes modified",
    ),
    # materialize
    Mistake(
        "materialize",
        "graph built",
        """
def materialize(model, example_input):
    model(example_input)
    return model
""",
        "graph built",
    ),
    Mistake(
        "materialize",
        "model.eval() left on",
        """
import torch


def materialize(model, example_input):
    model.eval()
    with torch.no_grad():
        model(example_input)
    return model
""",
        "model.eval() left on",
    ),
    Mistake(
        "materialize",
        "train() forced",
        """
import torch


def materialize(model, example_input):
    model.eval()
    with torch.no_grad():
        model(example_input)
    model.train()
    return model
""",
        "train() forced",
    ),
    Mistake(
        "materialize",
        "only the model's own flag restored",
        """
import torch


def materialize(model, example_input):
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(example_input)
    model.train(was_training)
    return model
""",
        "mode changed",
    ),
    Mistake(
        "materialize",
        "two forward calls",
        """
import torch


def materialize(model, example_input):
    with torch.no_grad():
        model(example_input)
        model(example_input)  # "to be sure"
    return model
""",
        "two forward calls",
    ),
    Mistake(
        "materialize",
        "returns the output",
        """
import torch


def materialize(model, example_input):
    with torch.no_grad():
        return model(example_input)
""",
        "returning something else",
    ),
    Mistake(
        "materialize",
        "grad mode left off",
        """
import torch


def materialize(model, example_input):
    torch.set_grad_enabled(False)
    model(example_input)
    return model
""",
        "grad mode left off",
    ),
    Mistake(
        "materialize",
        "dry run under inference_mode",
        """
import torch


def materialize(model, example_input):
    with torch.inference_mode():
        model(example_input)
    return model
""",
        "torch.inference_mode",
    ),
    Mistake(
        "materialize",
        "model.forward called directly",
        """
import torch


def materialize(model, example_input):
    with torch.no_grad():
        model.forward(example_input)
    return model
""",
        "model.forward",
    ),
    Mistake(
        "materialize",
        "eval mode taken for no_grad",
        """
def materialize(model, example_input):
    modes = [(module, module.training) for module in model.modules()]
    model.eval()  # "eval mode turns gradients off"
    model(example_input)
    for module, training in modes:
        module.training = training
    return model
""",
        "graph built",
    ),
    Mistake(
        "materialize",
        "flags put back children first with module.train(flag)",
        """
import torch


def materialize(model, example_input):
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    with torch.no_grad():
        model(example_input)
    for module, training in reversed(modes):
        module.train(training)  # also sets every child: the parents, last, overwrite the children
    return model
""",
        "m.train(flag) on a parent put back after its children",
    ),
    Mistake(
        "materialize",
        "a deep copy materialized and returned",
        """
import copy

import torch


def materialize(model, example_input):
    model = copy.deepcopy(model)  # "so that the caller's model stays as it was"
    with torch.no_grad():
        model(example_input)
    return model
""",
        "returning something else",
    ),
    # init_lazy
    Mistake(
        "init_lazy",
        "init applied before the dry run",
        """
import torch


def init_lazy(model, example_input, init_fn):
    model.apply(init_fn)
    with torch.no_grad():
        model(example_input)
    return model
""",
        "init applied before the dry run: lazy parameters do not exist yet",
    ),
    Mistake(
        "init_lazy",
        "init_fn never applied",
        """
import torch


def init_lazy(model, example_input, init_fn):
    with torch.no_grad():
        model(example_input)
    return model
""",
        "init_fn was never called",
    ),
    Mistake(
        "init_lazy",
        "init_fn applied before and after the dry run",
        """
import torch


def init_lazy(model, example_input, init_fn):
    model.apply(init_fn)  # "just in case"
    with torch.no_grad():
        model(example_input)
    model.apply(init_fn)
    return model
""",
        "init_fn applied twice",
    ),
    Mistake(
        "init_lazy",
        "init_fn applied to the top-level children only",
        """
import torch


def init_lazy(model, example_input, init_fn):
    with torch.no_grad():
        model(example_input)
    for child in model.children():
        init_fn(child)
    return model
""",
        "init_fn not applied to every submodule",
    ),
    Mistake(
        "init_lazy",
        "graph built by the dry run in init_lazy",
        """
def init_lazy(model, example_input, init_fn):
    model(example_input)
    model.apply(init_fn)
    return model
""",
        "graph built",
    ),
    Mistake(
        "init_lazy",
        "returns None",
        """
import torch


def init_lazy(model, example_input, init_fn):
    with torch.no_grad():
        model(example_input)
    model.apply(init_fn)
""",
        "returning something else",
    ),
    Mistake(
        "init_lazy",
        "init_fn called on the model only",
        """
import torch


def init_lazy(model, example_input, init_fn):
    with torch.no_grad():
        model(example_input)
    init_fn(model)
    return model
""",
        "init_fn not applied to this layer",
    ),
    Mistake(
        "init_lazy",
        "eval mode left on by init_lazy",
        """
import torch


def init_lazy(model, example_input, init_fn):
    model.eval()
    with torch.no_grad():
        model(example_input)
    model.apply(init_fn)
    return model
""",
        "mode changed",
    ),
    # LazyScale
    Mistake(
        "LazyScale",
        "placeholder created in forward",
        """
import torch
from torch import nn


class LazyScale(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = None

    def forward(self, x):
        if self.weight is None:
            self.weight = nn.Parameter(torch.ones(x.shape[-1], dtype=x.dtype, device=x.device))
        return x * self.weight
""",
        "placeholder created in forward: invisible to an optimizer built before the first call",
    ),
    Mistake(
        "LazyScale",
        "weight replaced by a new Parameter in initialize_parameters",
        """
import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin


class LazyScale(LazyModuleMixin, nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.UninitializedParameter()

    def initialize_parameters(self, x):
        if self.has_uninitialized_params():
            self.weight = nn.Parameter(torch.ones(x.shape[-1], dtype=x.dtype, device=x.device))

    def forward(self, x):
        return x * self.weight
""",
        "weight was replaced by a new Parameter",
    ),
    Mistake(
        "LazyScale",
        "weight of shape (N, F)",
        """
import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin


class LazyScale(LazyModuleMixin, nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.UninitializedParameter()

    def initialize_parameters(self, x):
        if self.has_uninitialized_params():
            with torch.no_grad():
                self.weight.materialize(x.shape, dtype=x.dtype, device=x.device)
                self.weight.fill_(1.0)

    def forward(self, x):
        return x * self.weight
""",
        "weight of shape (N, F)",
    ),
    Mistake(
        "LazyScale",
        "scalar weight",
        """
import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin


class LazyScale(LazyModuleMixin, nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.UninitializedParameter()

    def initialize_parameters(self, x):
        if self.has_uninitialized_params():
            with torch.no_grad():
                self.weight.materialize((), dtype=x.dtype, device=x.device)
                self.weight.fill_(1.0)

    def forward(self, x):
        return x * self.weight
""",
        "scalar weight",
    ),
    Mistake(
        "LazyScale",
        "not ones",
        """
import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin


class LazyScale(LazyModuleMixin, nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.UninitializedParameter()

    def initialize_parameters(self, x):
        if self.has_uninitialized_params():
            with torch.no_grad():
                self.weight.materialize((x.shape[-1],), dtype=x.dtype, device=x.device)
                nn.init.normal_(self.weight)

    def forward(self, x):
        return x * self.weight
""",
        "weight not set to ones",
    ),
    Mistake(
        "LazyScale",
        "plain tensor instead of Parameter",
        """
import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin


class LazyScale(LazyModuleMixin, nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.UninitializedParameter()

    def initialize_parameters(self, x):
        if self.has_uninitialized_params():
            self.weight = torch.ones(x.shape[-1], dtype=x.dtype, device=x.device)

    def forward(self, x):
        return x * self.weight
""",
        "plain tensor assigned instead of a Parameter",
    ),
    Mistake(
        "LazyScale",
        "weight registered as a buffer",
        """
import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedBuffer


class LazyScale(LazyModuleMixin, nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("weight", UninitializedBuffer())

    def initialize_parameters(self, x):
        if self.has_uninitialized_params():
            self.weight.materialize((x.shape[-1],), dtype=x.dtype, device=x.device)
            self.weight.fill_(1.0)

    def forward(self, x):
        return x * self.weight
""",
        "registered as a buffer",
    ),
    Mistake(
        "LazyScale",
        "input's dtype ignored",
        """
import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin


class LazyScale(LazyModuleMixin, nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.UninitializedParameter()

    def initialize_parameters(self, x):
        if self.has_uninitialized_params():
            with torch.no_grad():
                self.weight.materialize((x.shape[-1],))
                self.weight.fill_(1.0)

    def forward(self, x):
        return x * self.weight
""",
        "the input's dtype and device ignored",
    ),
    Mistake(
        "LazyScale",
        "LazyModuleMixin not the first base class",
        """
import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin


class LazyScale(nn.Module, LazyModuleMixin):
    def __init__(self):
        super().__init__()
        self.weight = nn.UninitializedParameter()

    def initialize_parameters(self, x):
        if self.has_uninitialized_params():
            with torch.no_grad():
                self.weight.materialize((x.shape[-1],), dtype=x.dtype, device=x.device)
                self.weight.fill_(1.0)

    def forward(self, x):
        return x * self.weight
""",
        "not the first base class",
    ),
    Mistake(
        "LazyScale",
        "initialize_parameters not guarded",
        """
import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin


class LazyScale(LazyModuleMixin, nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.UninitializedParameter()

    def initialize_parameters(self, x):
        with torch.no_grad():
            self.weight.materialize((x.shape[-1],), dtype=x.dtype, device=x.device)
            self.weight.fill_(1.0)

    def forward(self, x):
        return x * self.weight
""",
        "initialize_parameters not guarded",
    ),
    Mistake(
        "LazyScale",
        "filled in place while autograd records",
        """
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin


class LazyScale(LazyModuleMixin, nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.UninitializedParameter()

    def initialize_parameters(self, x):
        if self.has_uninitialized_params():
            self.weight.materialize((x.shape[-1],), dtype=x.dtype, device=x.device)
            self.weight.fill_(1.0)

    def forward(self, x):
        return x * self.weight
""",
        "filled in place while autograd was recording",
    ),
    Mistake(
        "LazyScale",
        "forward ignores weight",
        """
import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin


class LazyScale(LazyModuleMixin, nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.UninitializedParameter()

    def initialize_parameters(self, x):
        if self.has_uninitialized_params():
            with torch.no_grad():
                self.weight.materialize((x.shape[-1],), dtype=x.dtype, device=x.device)
                self.weight.fill_(1.0)

    def forward(self, x):
        return x.clone()  # "the weight is all ones anyway"
""",
        "forward ignores weight",
    ),
    Mistake(
        "LazyScale",
        "weight sized by the batch",
        """
import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin


class LazyScale(LazyModuleMixin, nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.UninitializedParameter()

    def initialize_parameters(self, x):
        if self.has_uninitialized_params():
            with torch.no_grad():
                self.weight.materialize((x.shape[0],), dtype=x.dtype, device=x.device)
                self.weight.fill_(1.0)

    def forward(self, x):
        return x * self.weight
""",
        "not x.shape[0], the batch size",
    ),
    Mistake(
        "LazyScale",
        "LazyModuleMixin missing, the placeholder materialized in forward",
        """
import torch
from torch import nn


class LazyScale(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.UninitializedParameter()

    def forward(self, x):
        if isinstance(self.weight, nn.UninitializedParameter):
            with torch.no_grad():
                self.weight.materialize((x.shape[-1],), dtype=x.dtype, device=x.device)
                self.weight.fill_(1.0)
        return x * self.weight
""",
        "LazyModuleMixin missing",
    ),
]

ALTERNATIVES = [
    Alternative(
        "lazy_mlp",
        "named layers added with add_module",
        """
from torch import nn


def lazy_mlp(hidden_sizes, out_features):
    model = nn.Sequential()
    for index, size in enumerate(hidden_sizes):
        model.add_module(f"fc{index}", nn.LazyLinear(size))
        model.add_module(f"act{index}", nn.ReLU())
    model.add_module("out", nn.LazyLinear(out_features))
    return model
""",
    ),
    Alternative(
        "lazy_mlp",
        "a comprehension over the sizes",
        """
from torch import nn


def lazy_mlp(hidden_sizes, out_features):
    pairs = [layer for size in hidden_sizes for layer in (nn.LazyLinear(size), nn.ReLU(inplace=True))]
    return nn.Sequential(*pairs, nn.LazyLinear(out_features))
""",
    ),
    Alternative(
        "lazy_mlp",
        "one ReLU module shared by every hidden layer",
        """
from torch import nn


def lazy_mlp(hidden_sizes, out_features):
    relu = nn.ReLU()  # stateless: one instance can follow every hidden layer
    layers = []
    for size in hidden_sizes:
        layers += [nn.LazyLinear(size), relu]
    return nn.Sequential(*layers, nn.LazyLinear(out_features))
""",
    ),
    Alternative(
        "materialize",
        "dry run in training mode, the modes left alone (BatchNorm statistics updated)",
        """
import torch


def materialize(model, example_input):
    with torch.no_grad():
        model(example_input)
    return model
""",
    ),
    Alternative(
        "materialize",
        "eval mode, flags saved by name and put back through get_submodule",
        """
import torch


def materialize(model, example_input):
    modes = {name: module.training for name, module in model.named_modules()}
    model.eval()
    with torch.no_grad():
        model(example_input)
    for name, training in modes.items():
        model.get_submodule(name).training = training
    return model
""",
    ),
    Alternative(
        "materialize",
        "eval mode, flags put back with module.train(flag) parents first (modules() order)",
        """
import torch


def materialize(model, example_input):
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    with torch.no_grad():
        model(example_input)
    for module, training in modes:  # a parent before its children: each child ends with its own flag
        module.train(training)
    return model
""",
    ),
    Alternative(
        "materialize",
        "torch.set_grad_enabled(False) as a context manager",
        """
import torch


def materialize(model, example_input):
    with torch.set_grad_enabled(False):
        _ = model(example_input)
    return model
""",
    ),
    Alternative(
        "init_lazy",
        "calls a materialize helper, then loops over modules()",
        """
import torch


@torch.no_grad()
def _dry_run(model, example_input):
    model(example_input)
    return model


def init_lazy(model, example_input, init_fn):
    _dry_run(model, example_input)
    for module in model.modules():
        init_fn(module)
    return model
""",
    ),
    Alternative(
        "init_lazy",
        "returns what apply returns",
        """
import torch


def init_lazy(model, example_input, init_fn):
    with torch.no_grad():
        model(example_input)
    return model.apply(init_fn)
""",
    ),
    Alternative(
        "LazyScale",
        "nn.init.ones_ and cls_to_become",
        """
import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedParameter


class Scale(nn.Module):
    def forward(self, x):
        return x * self.weight


class LazyScale(LazyModuleMixin, Scale):
    cls_to_become = Scale

    def __init__(self):
        super().__init__()
        self.weight = UninitializedParameter()

    def initialize_parameters(self, x):
        if self.has_uninitialized_params():
            self.weight.materialize(x.shape[-1:], dtype=x.dtype, device=x.device)
            nn.init.ones_(self.weight)
""",
    ),
    Alternative(
        "LazyScale",
        "factory kwargs and torch.nn.parameter.is_lazy",
        """
import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedParameter, is_lazy


class LazyScale(LazyModuleMixin, nn.Module):
    def __init__(self, device=None, dtype=None):
        super().__init__()
        self.weight = UninitializedParameter(device=device, dtype=dtype)

    def initialize_parameters(self, x):
        if is_lazy(self.weight):
            with torch.no_grad():
                self.weight.materialize(x.shape[-1], dtype=x.dtype, device=x.device)
                self.weight.copy_(torch.ones_like(x[0]))

    def forward(self, x):
        return torch.mul(x, self.weight)
""",
    ),
]
