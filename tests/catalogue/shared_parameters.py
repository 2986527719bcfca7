"""04_shared_parameters: the contract's mistakes for make_shared_net, TiedAutoencoder and shared_groups,
and more that students make, with correct solutions in other styles."""

from tests.catalogue import Alternative, Mistake

NOTEBOOK = "04_shared_parameters"

MISTAKES = [
    # make_shared_net
    Mistake(
        "make_shared_net",
        "copied weights with deepcopy",
        """
import copy

from torch import nn


def make_shared_net(in_features, hidden, out_features):
    shared = nn.Linear(hidden, hidden)
    return nn.Sequential(
        nn.Linear(in_features, hidden), nn.ReLU(),
        shared, nn.ReLU(),
        copy.deepcopy(shared), nn.ReLU(),
        nn.Linear(hidden, out_features),
    )
""",
        "copied weights",
    ),
    Mistake(
        "make_shared_net",
        "copied weights with load_state_dict",
        """
from torch import nn


def make_shared_net(in_features, hidden, out_features):
    first_use = nn.Linear(hidden, hidden)
    second_use = nn.Linear(hidden, hidden)
    second_use.load_state_dict(first_use.state_dict())
    return nn.Sequential(
        nn.Linear(in_features, hidden), nn.ReLU(),
        first_use, nn.ReLU(),
        second_use, nn.ReLU(),
        nn.Linear(hidden, out_features),
    )
""",
        "must be the same object",
    ),
    Mistake(
        "make_shared_net",
        "two separate layers",
        """
from torch import nn


def make_shared_net(in_features, hidden, out_features):
    return nn.Sequential(
        nn.Linear(in_features, hidden), nn.ReLU(),
        nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, out_features),
    )
""",
        "two separate Linear(hidden, hidden) layers instead of one shared layer",
    ),
    Mistake(
        "make_shared_net",
        "shared layer used once",
        """
from torch import nn


def make_shared_net(in_features, hidden, out_features):
    shared = nn.Linear(hidden, hidden)
    return nn.Sequential(
        nn.Linear(in_features, hidden), nn.ReLU(), shared, nn.ReLU(), nn.Linear(hidden, out_features)
    )
""",
        "the shared layer is used only once",
    ),
    Mistake(
        "make_shared_net",
        "ReLU missing between the shared uses",
        """
from torch import nn


def make_shared_net(in_features, hidden, out_features):
    shared = nn.Linear(hidden, hidden)
    return nn.Sequential(
        nn.Linear(in_features, hidden), nn.ReLU(), shared, shared, nn.ReLU(), nn.Linear(hidden, out_features)
    )
""",
        "a ReLU missing between the layers",
    ),
    Mistake(
        "make_shared_net",
        "ReLU after the last layer",
        """
from torch import nn


def make_shared_net(in_features, hidden, out_features):
    shared = nn.Linear(hidden, hidden)
    return nn.Sequential(
        nn.Linear(in_features, hidden), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(),
        nn.Linear(hidden, out_features), nn.ReLU(),
    )
""",
        "a ReLU after the last layer",
    ),
    Mistake(
        "make_shared_net",
        "layers created outside the function",
        """
from torch import nn

_layers = {}


def make_shared_net(in_features, hidden, out_features):
    key = (in_features, hidden, out_features)
    if key not in _layers:
        _layers[key] = (
            nn.Linear(in_features, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, out_features)
        )
    first, shared, last = _layers[key]
    return nn.Sequential(first, nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(), last)
""",
        "layers created outside the function",
    ),
    Mistake(
        "make_shared_net",
        "in and out swapped in the first layer",
        """
from torch import nn


def make_shared_net(in_features, hidden, out_features):
    shared = nn.Linear(hidden, hidden)
    return nn.Sequential(
        nn.Linear(hidden, in_features), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(),
        nn.Linear(hidden, out_features),
    )
""",
        "in/out swapped",
    ),
    Mistake(
        "make_shared_net",
        "two layers sharing only their Parameters",
        """
from torch import nn


def make_shared_net(in_features, hidden, out_features):
    first_use, second_use = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
    second_use.weight, second_use.bias = first_use.weight, first_use.bias
    return nn.Sequential(
        nn.Linear(in_features, hidden), nn.ReLU(), first_use, nn.ReLU(), second_use, nn.ReLU(),
        nn.Linear(hidden, out_features),
    )
""",
        "one layer object in both places",
    ),
    Mistake(
        "make_shared_net",
        "no return",
        """
from torch import nn


def make_shared_net(in_features, hidden, out_features):
    shared = nn.Linear(hidden, hidden)
    net = nn.Sequential(
        nn.Linear(in_features, hidden), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(),
        nn.Linear(hidden, out_features),
    )
""",
        "did you forget `return`",
    ),
    Mistake(
        "make_shared_net",
        "nn.ModuleList instead of nn.Sequential",
        """
from torch import nn


def make_shared_net(in_features, hidden, out_features):
    shared = nn.Linear(hidden, hidden)
    return nn.ModuleList([
        nn.Linear(in_features, hidden), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(),
        nn.Linear(hidden, out_features),
    ])
""",
        "should be a Sequential",
    ),
    Mistake(
        "make_shared_net",
        "a Linear + ReLU block reused",
        """
from torch import nn


def make_shared_net(in_features, hidden, out_features):
    block = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU())
    return nn.Sequential(
        nn.Linear(in_features, hidden), nn.ReLU(), block, block, nn.Linear(hidden, out_features)
    )
""",
        "a nested nn.Sequential",
    ),
    # TiedAutoencoder
    Mistake(
        "TiedAutoencoder",
        "separate decoder Linear",
        """
import torch
from torch import nn


class TiedAutoencoder(nn.Module):
    def __init__(self, in_features, code_features):
        super().__init__()
        self.encoder = nn.Linear(in_features, code_features)
        self.decoder = nn.Linear(code_features, in_features)

    def forward(self, x):
        return self.decoder(torch.relu(self.encoder(x)))
""",
        "a separate decoder Linear",
    ),
    Mistake(
        "TiedAutoencoder",
        "cloned weight as a Parameter",
        """
import torch
from torch import nn


class TiedAutoencoder(nn.Module):
    def __init__(self, in_features, code_features):
        super().__init__()
        self.encoder = nn.Linear(in_features, code_features)
        self.decoder_weight = nn.Parameter(self.encoder.weight.detach().clone().T)
        self.decoder_bias = nn.Parameter(torch.zeros(in_features))

    def forward(self, x):
        return torch.relu(self.encoder(x)) @ self.decoder_weight.T + self.decoder_bias
""",
        "a cloned copy of encoder.weight",
    ),
    Mistake(
        "TiedAutoencoder",
        ".data weight in the decoder",
        """
import torch
import torch.nn.functional as F
from torch import nn


class TiedAutoencoder(nn.Module):
    def __init__(self, in_features, code_features):
        super().__init__()
        self.encoder = nn.Linear(in_features, code_features)
        self.decoder_bias = nn.Parameter(torch.zeros(in_features))

    def forward(self, x):
        code = F.relu(self.encoder(x))
        return F.linear(code, self.encoder.weight.data.T, self.decoder_bias)
""",
        "sends no gradient to encoder.weight",
    ),
    Mistake(
        "TiedAutoencoder",
        "cloned weight kept as a plain tensor",
        """
import torch
from torch import nn


class TiedAutoencoder(nn.Module):
    def __init__(self, in_features, code_features):
        super().__init__()
        self.encoder = nn.Linear(in_features, code_features)
        self.decoder_weight = self.encoder.weight.detach().clone()
        self.decoder_bias = nn.Parameter(torch.zeros(in_features))

    def forward(self, x):
        return torch.relu(self.encoder(x)) @ self.decoder_weight + self.decoder_bias
""",
        "a cloned, detached or .data copy of encoder.weight",
    ),
    Mistake(
        "TiedAutoencoder",
        "transposed view taken in __init__",
        """
import torch
from torch import nn


class TiedAutoencoder(nn.Module):
    def __init__(self, in_features, code_features):
        super().__init__()
        self.encoder = nn.Linear(in_features, code_features)
        self.decoder_weight = self.encoder.weight.T
        self.decoder_bias = nn.Parameter(torch.zeros(in_features))

    def forward(self, x):
        return torch.relu(self.encoder(x)) @ self.decoder_weight.T + self.decoder_bias
""",
        "model.to() does not convert it",
    ),
    Mistake(
        "TiedAutoencoder",
        "decoder_bias not zero",
        """
import torch
from torch import nn


class TiedAutoencoder(nn.Module):
    def __init__(self, in_features, code_features):
        super().__init__()
        self.encoder = nn.Linear(in_features, code_features)
        self.decoder_bias = nn.Parameter(torch.randn(in_features))

    def forward(self, x):
        return torch.relu(self.encoder(x)) @ self.encoder.weight + self.decoder_bias
""",
        "decoder_bias not initialized to zeros",
    ),
    Mistake(
        "TiedAutoencoder",
        "decoder_bias a plain tensor",
        """
import torch
from torch import nn


class TiedAutoencoder(nn.Module):
    def __init__(self, in_features, code_features):
        super().__init__()
        self.encoder = nn.Linear(in_features, code_features)
        self.decoder_bias = torch.zeros(in_features, requires_grad=True)

    def forward(self, x):
        return torch.relu(self.encoder(x)) @ self.encoder.weight + self.decoder_bias
""",
        "decoder_bias is not an nn.Parameter",
    ),
    Mistake(
        "TiedAutoencoder",
        "decoder_bias a buffer",
        """
import torch
from torch import nn


class TiedAutoencoder(nn.Module):
    def __init__(self, in_features, code_features):
        super().__init__()
        self.encoder = nn.Linear(in_features, code_features)
        self.register_buffer("decoder_bias", torch.zeros(in_features))

    def forward(self, x):
        return torch.relu(self.encoder(x)) @ self.encoder.weight + self.decoder_bias
""",
        "decoder_bias registered as a buffer",
    ),
    Mistake(
        "TiedAutoencoder",
        "decoder weight not transposed",
        """
import torch
import torch.nn.functional as F
from torch import nn


class TiedAutoencoder(nn.Module):
    def __init__(self, in_features, code_features):
        super().__init__()
        self.encoder = nn.Linear(in_features, code_features)
        self.decoder_bias = nn.Parameter(torch.zeros(in_features))

    def forward(self, x):
        return F.linear(torch.relu(self.encoder(x)), self.encoder.weight, self.decoder_bias)
""",
        "not transposed",
    ),
    Mistake(
        "TiedAutoencoder",
        "no ReLU on the code",
        """
import torch
from torch import nn


class TiedAutoencoder(nn.Module):
    def __init__(self, in_features, code_features):
        super().__init__()
        self.encoder = nn.Linear(in_features, code_features)
        self.decoder_bias = nn.Parameter(torch.zeros(in_features))

    def forward(self, x):
        return self.encoder(x) @ self.encoder.weight + self.decoder_bias
""",
        "ReLU missing on the code",
    ),
    Mistake(
        "TiedAutoencoder",
        "decoder_bias ignored",
        """
import torch
from torch import nn


class TiedAutoencoder(nn.Module):
    def __init__(self, in_features, code_features):
        super().__init__()
        self.encoder = nn.Linear(in_features, code_features)
        self.decoder_bias = nn.Parameter(torch.zeros(in_features))

    def forward(self, x):
        return torch.relu(self.encoder(x)) @ self.encoder.weight
""",
        "decoder_bias not added",
    ),
    Mistake(
        "TiedAutoencoder",
        "transposed copy cached in __init__",
        """
import torch
from torch import nn


class TiedAutoencoder(nn.Module):
    def __init__(self, in_features, code_features):
        super().__init__()
        self.encoder = nn.Linear(in_features, code_features)
        self.decoder_weight = self.encoder.weight.t().contiguous()
        self.decoder_bias = nn.Parameter(torch.zeros(in_features))

    def forward(self, x):
        return torch.relu(self.encoder(x)) @ self.decoder_weight.T + self.decoder_bias
""",
        "a copy of encoder.weight taken in __init__",
    ),
    Mistake(
        "TiedAutoencoder",
        "the encoder's bias reused in the decoder",
        """
import torch
from torch import nn


class TiedAutoencoder(nn.Module):
    def __init__(self, in_features, code_features):
        super().__init__()
        self.encoder = nn.Linear(in_features, code_features)
        self.decoder_bias = nn.Parameter(torch.zeros(in_features))

    def forward(self, x):
        return torch.relu(self.encoder(x)) @ self.encoder.weight + self.encoder.bias
""",
        "a bias of the wrong size added",
    ),
    Mistake(
        "TiedAutoencoder",
        "decoder_bias of code_features entries",
        """
import torch
from torch import nn


class TiedAutoencoder(nn.Module):
    def __init__(self, in_features, code_features):
        super().__init__()
        self.encoder = nn.Linear(in_features, code_features)
        self.decoder_bias = nn.Parameter(torch.zeros(code_features))

    def forward(self, x):
        return torch.relu(self.encoder(x)) @ self.encoder.weight + self.decoder_bias
""",
        "one entry per reconstructed input feature",
    ),
    # shared_groups
    Mistake(
        "shared_groups",
        "grouping by equal values",
        """
import torch


def shared_groups(model):
    groups = []  # (a representative tensor, its names)
    for name, parameter in model.named_parameters(remove_duplicate=False):
        for tensor, names in groups:
            if tensor.shape == parameter.shape and torch.equal(tensor, parameter):
                names.append(name)
                break
        else:
            groups.append((parameter, [name]))
    return [names for _, names in groups if len(names) > 1]
""",
        "grouping by equal values instead of identity",
    ),
    Mistake(
        "shared_groups",
        "named_parameters() without remove_duplicate=False",
        """
def shared_groups(model):
    groups = {}
    for name, parameter in model.named_parameters():
        groups.setdefault(id(parameter), []).append(name)
    return [names for names in groups.values() if len(names) > 1]
""",
        "remove_duplicate=False",
    ),
    Mistake(
        "shared_groups",
        "unshared tensors listed too",
        """
def shared_groups(model):
    groups = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(parameter), []).append(name)
    return list(groups.values())
""",
        "every tensor listed, not only shared ones",
    ),
    Mistake(
        "shared_groups",
        "names sorted",
        """
def shared_groups(model):
    groups = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(parameter), []).append(name)
    return sorted(sorted(names) for names in groups.values() if len(names) > 1)
""",
        "the right groups in the wrong order",
    ),
    Mistake(
        "shared_groups",
        "membership test with in on a list of tensors",
        """
def shared_groups(model):
    tensors, groups = [], []
    for name, parameter in model.named_parameters(remove_duplicate=False):
        if parameter in tensors:
            groups[tensors.index(parameter)].append(name)
        else:
            tensors.append(parameter)
            groups.append([name])
    return [names for names in groups if len(names) > 1]
""",
        "compare identity",
    ),
    Mistake(
        "shared_groups",
        "parameters instead of names",
        """
def shared_groups(model):
    groups = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(parameter), []).append(parameter)
    return [tensors for tensors in groups.values() if len(tensors) > 1]
""",
        "parameters returned instead of their names",
    ),
    Mistake(
        "shared_groups",
        "the state_dict grouped by data_ptr",
        """
def shared_groups(model):
    groups = {}
    for name, tensor in model.state_dict().items():
        groups.setdefault(tensor.data_ptr(), []).append(name)
    return [names for names in groups.values() if len(names) > 1]
""",
        "grouped by memory address (data_ptr())",
    ),
    Mistake(
        "shared_groups",
        "parameters grouped by data_ptr",
        """
def shared_groups(model):
    groups = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        groups.setdefault(parameter.data_ptr(), []).append(name)
    return [names for names in groups.values() if len(names) > 1]
""",
        "on the meta device",
    ),
    Mistake(
        "shared_groups",
        "shared modules only",
        """
def shared_groups(model):
    modules = {}
    for prefix, module in model.named_modules(remove_duplicate=False):
        modules.setdefault(id(module), (module, []))[1].append(prefix)
    groups = []
    for module, prefixes in modules.values():
        if len(prefixes) > 1:
            for name, _ in module.named_parameters(recurse=False):
                groups.append([f"{prefix}.{name}" for prefix in prefixes])
    return groups
""",
        "only shared modules found",
    ),
]

ALTERNATIVES = [
    Alternative(
        "make_shared_net",
        "append to an empty Sequential",
        """
from torch import nn


def make_shared_net(in_features, hidden, out_features):
    shared = nn.Linear(hidden, hidden)
    net = nn.Sequential()
    net.append(nn.Linear(in_features, hidden))
    for _ in range(2):
        net.append(nn.ReLU())
        net.append(shared)
    net.append(nn.ReLU())
    net.append(nn.Linear(hidden, out_features))
    return net
""",
    ),
    Alternative(
        "make_shared_net",
        "named layers in an OrderedDict, one ReLU object reused",
        """
from collections import OrderedDict

from torch import nn


def make_shared_net(in_features, hidden, out_features):
    shared, relu = nn.Linear(hidden, hidden), nn.ReLU()
    return nn.Sequential(OrderedDict([
        ("first", nn.Linear(in_features, hidden)), ("act1", relu),
        ("shared", shared), ("act2", relu),
        ("shared_again", shared), ("act3", relu),
        ("last", nn.Linear(hidden, out_features)),
    ]))
""",
    ),
    Alternative(
        "TiedAutoencoder",
        "matmul with the untransposed weight, register_parameter",
        """
import torch
from torch import nn


class TiedAutoencoder(nn.Module):
    def __init__(self, in_features, code_features):
        super().__init__()
        self.encoder = nn.Linear(in_features, code_features)
        self.register_parameter("decoder_bias", nn.Parameter(torch.zeros(in_features)))

    def forward(self, x):
        code = torch.relu(self.encoder(x))
        return torch.matmul(code, self.encoder.weight) + self.decoder_bias
""",
    ),
    Alternative(
        "TiedAutoencoder",
        "F.linear with .t(), an nn.ReLU submodule and zeros_",
        """
import torch
import torch.nn.functional as F
from torch import nn


class TiedAutoencoder(nn.Module):
    def __init__(self, in_features, code_features):
        super().__init__()
        self.encoder = nn.Linear(in_features, code_features)
        self.activation = nn.ReLU()
        self.decoder_bias = nn.Parameter(torch.empty(in_features))
        nn.init.zeros_(self.decoder_bias)

    def forward(self, x):
        return F.linear(self.activation(self.encoder(x)), self.encoder.weight.t(), self.decoder_bias)
""",
    ),
    Alternative(
        "TiedAutoencoder",
        "encoder.weight registered a second time as decoder_weight",
        """
import torch
from torch import nn


class TiedAutoencoder(nn.Module):
    def __init__(self, in_features, code_features):
        super().__init__()
        self.encoder = nn.Linear(in_features, code_features)
        self.decoder_weight = self.encoder.weight  # the same Parameter under a second name
        self.decoder_bias = nn.Parameter(torch.zeros(in_features))

    def forward(self, x):
        return torch.relu(self.encoder(x)) @ self.decoder_weight + self.decoder_bias
""",
    ),
    Alternative(
        "TiedAutoencoder",
        "torch.addmm",
        """
import torch
from torch import nn


class TiedAutoencoder(nn.Module):
    def __init__(self, in_features, code_features):
        super().__init__()
        self.encoder = nn.Linear(in_features, code_features)
        self.decoder_bias = nn.Parameter(torch.zeros(in_features))

    def forward(self, x):
        code = self.encoder(x).clamp(min=0)
        return torch.addmm(self.decoder_bias, code, self.encoder.weight)
""",
    ),
    Alternative(
        "shared_groups",
        "quadratic loop comparing with is",
        """
def shared_groups(model):
    named = list(model.named_parameters(remove_duplicate=False))
    groups, done = [], set()
    for i, (name, parameter) in enumerate(named):
        if i in done:
            continue
        group = [name]
        for j in range(i + 1, len(named)):
            if named[j][1] is parameter:
                group.append(named[j][0])
                done.add(j)
        if len(group) > 1:
            groups.append(group)
    return groups
""",
    ),
    Alternative(
        "shared_groups",
        "dict keyed by the tensor itself (tensors hash by identity)",
        """
def shared_groups(model):
    names = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        names.setdefault(parameter, []).append(name)
    return [group for group in names.values() if len(group) > 1]
""",
    ),
    Alternative(
        "shared_groups",
        "walk named_modules, each module's own parameters",
        """
def shared_groups(model):
    by_tensor = {}
    for prefix, module in model.named_modules(remove_duplicate=False):
        for name, parameter in module.named_parameters(recurse=False, remove_duplicate=False):
            full = f"{prefix}.{name}" if prefix else name
            by_tensor.setdefault(id(parameter), []).append(full)
    return [names for names in by_tensor.values() if len(names) >= 2]
""",
    ),
]
