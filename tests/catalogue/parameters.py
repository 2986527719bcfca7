"""03_parameters: the contract's mistakes for count_parameters, parameter_shapes, freeze and RunningMean,
and more that students make, with correct solutions in other styles."""

from tests.catalogue import Alternative, Mistake

NOTEBOOK = "03_parameters"

MISTAKES = [
    # count_parameters
    Mistake(
        "count_parameters",
        "counting the state_dict",
        """
def count_parameters(model, trainable_only=False):
    return sum(value.numel() for value in model.state_dict().values())
""",
        "counting the state_dict",
    ),
    Mistake(
        "count_parameters",
        "trainable_only ignored",
        """
def count_parameters(model, trainable_only=False):
    return sum(p.numel() for p in model.parameters())
""",
        "trainable_only ignored",
    ),
    Mistake(
        "count_parameters",
        "shared tensors counted once per name",
        """
def count_parameters(model, trainable_only=False):
    named = model.named_parameters(remove_duplicate=False)
    return sum(p.numel() for _, p in named if p.requires_grad or not trainable_only)
""",
        "shared tensors counted twice",
    ),
    Mistake(
        "count_parameters",
        "tied parameter counted once per module",
        """
def count_parameters(model, trainable_only=False):
    total = 0
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if p.requires_grad or not trainable_only:
                total += p.numel()
    return total
""",
        "shared tensors counted twice",
    ),
    Mistake(
        "count_parameters",
        "buffers counted",
        """
def count_parameters(model, trainable_only=False):
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() for t in tensors if t.requires_grad or not trainable_only)
""",
        "buffers counted",
    ),
    Mistake(
        "count_parameters",
        "tensors counted instead of scalars",
        """
def count_parameters(model, trainable_only=False):
    return len([p for p in model.parameters() if p.requires_grad or not trainable_only])
""",
        "instead of scalar entries",
    ),
    Mistake(
        "count_parameters",
        "trainable_only inverted",
        """
def count_parameters(model, trainable_only=False):
    if trainable_only:
        return sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return sum(p.numel() for p in model.parameters())
""",
        "trainable_only inverted",
    ),
    Mistake(
        "count_parameters",
        "always only trainable",
        """
def count_parameters(model, trainable_only=False):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
""",
        "frozen parameters left out although trainable_only=False",
    ),
    Mistake(
        "count_parameters",
        "returns a tensor",
        """
import torch


def count_parameters(model, trainable_only=False):
    total = torch.tensor(0)
    for p in model.parameters():
        if p.requires_grad or not trainable_only:
            total += p.numel()
    return total
""",
        "should be a Python int",
    ),
    Mistake(
        "count_parameters",
        "trainable read from p.grad",
        """
def count_parameters(model, trainable_only=False):
    return sum(p.numel() for p in model.parameters() if p.grad is not None or not trainable_only)
""",
        "trainable read from p.grad",
    ),
    Mistake(
        "count_parameters",
        "only nn.Linear layers counted",
        """
from torch import nn


def count_parameters(model, trainable_only=False):
    total = 0
    for module in model.modules():
        if isinstance(module, nn.Linear):
            for p in module.parameters(recurse=False):
                if p.requires_grad or not trainable_only:
                    total += p.numel()
    return total
""",
        "only the nn.Linear layers counted",
    ),
    Mistake(
        "count_parameters",
        "unique tensors by data_ptr",
        """
def count_parameters(model, trainable_only=False):
    unique = {p.data_ptr(): p for p in model.parameters() if p.requires_grad or not trainable_only}
    return sum(p.numel() for p in unique.values())
""",
        "told apart by memory address",
    ),
    # parameter_shapes
    Mistake(
        "parameter_shapes",
        "names sorted",
        """
def parameter_shapes(model):
    return {name: tuple(p.shape) for name, p in sorted(model.named_parameters())}
""",
        "in another order",
    ),
    Mistake(
        "parameter_shapes",
        "state_dict keys",
        """
def parameter_shapes(model):
    return {name: tuple(value.shape) for name, value in model.state_dict().items()}
""",
        "buffers included",
    ),
    Mistake(
        "parameter_shapes",
        "shapes as lists",
        """
def parameter_shapes(model):
    return {name: list(p.shape) for name, p in model.named_parameters()}
""",
        "should be a tuple of ints",
    ),
    Mistake(
        "parameter_shapes",
        "the parameters themselves",
        """
def parameter_shapes(model):
    return dict(model.named_parameters())
""",
        "is the parameter itself",
    ),
    Mistake(
        "parameter_shapes",
        "frozen parameters skipped",
        """
def parameter_shapes(model):
    return {name: tuple(p.shape) for name, p in model.named_parameters() if p.requires_grad}
""",
        "frozen parameters left out",
    ),
    Mistake(
        "parameter_shapes",
        "shared parameter under every name",
        """
def parameter_shapes(model):
    return {name: tuple(p.shape) for name, p in model.named_parameters(remove_duplicate=False)}
""",
        "listed under each of its names",
    ),
    Mistake(
        "parameter_shapes",
        "names without the module path",
        """
def parameter_shapes(model):
    shapes = {}
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            shapes[name] = tuple(p.shape)
    return shapes
""",
        "names without the module path",
    ),
    # freeze
    Mistake(
        "freeze",
        "model.eval() taken for freezing",
        """
def freeze(model, keep_trainable=()):
    if isinstance(keep_trainable, str):
        keep_trainable = (keep_trainable,)
    model.eval()
    return [name for name, _ in model.named_parameters()
            if any(name == k or name.startswith(k + ".") for k in keep_trainable)]
""",
        "model.eval() taken for freezing",
    ),
    Mistake(
        "freeze",
        "plain startswith match",
        """
def freeze(model, keep_trainable=()):
    if isinstance(keep_trainable, str):
        keep_trainable = (keep_trainable,)
    kept = []
    for name, p in model.named_parameters():
        keep = any(name.startswith(k) for k in keep_trainable)
        p.requires_grad_(keep)
        if keep:
            kept.append(name)
    return kept
""",
        "plain `startswith` match",
    ),
    Mistake(
        "freeze",
        "substring match",
        """
def freeze(model, keep_trainable=()):
    if isinstance(keep_trainable, str):
        keep_trainable = [keep_trainable]
    kept = []
    for name, p in model.named_parameters():
        p.requires_grad = any(k in name for k in keep_trainable)
        if p.requires_grad:
            kept.append(name)
    return kept
""",
        "substring match",
    ),
    Mistake(
        "freeze",
        "returning frozen names",
        """
def freeze(model, keep_trainable=()):
    if isinstance(keep_trainable, str):
        keep_trainable = (keep_trainable,)
    frozen = []
    for name, p in model.named_parameters():
        keep = any(name == k or name.startswith(k + ".") for k in keep_trainable)
        p.requires_grad_(keep)
        if not keep:
            frozen.append(name)
    return frozen
""",
        "returned the frozen names",
    ),
    Mistake(
        "freeze",
        "bare string iterated",
        """
def freeze(model, keep_trainable=()):
    kept = []
    for name, p in model.named_parameters():
        keep = any(name == k or name.startswith(k + ".") for k in keep_trainable)
        p.requires_grad_(keep)
        if keep:
            kept.append(name)
    return kept
""",
        "bare string was iterated",
    ),
    Mistake(
        "freeze",
        "kept parameters not unfrozen",
        """
def freeze(model, keep_trainable=()):
    if isinstance(keep_trainable, str):
        keep_trainable = (keep_trainable,)
    kept = []
    for name, p in model.named_parameters():
        if any(name == k or name.startswith(k + ".") for k in keep_trainable):
            kept.append(name)
        else:
            p.requires_grad = False
    return kept
""",
        "kept parameters not set to requires_grad=True",
    ),
    Mistake(
        "freeze",
        "requires_grad set on .data",
        """
def freeze(model, keep_trainable=()):
    if isinstance(keep_trainable, str):
        keep_trainable = (keep_trainable,)
    kept = []
    for name, p in model.named_parameters():
        keep = any(name == k or name.startswith(k + ".") for k in keep_trainable)
        p.data.requires_grad = keep
        if keep:
            kept.append(name)
    return kept
""",
        "requires_grad set on a copy",
    ),
    Mistake(
        "freeze",
        "names in keep_trainable order",
        """
def freeze(model, keep_trainable=()):
    if isinstance(keep_trainable, str):
        keep_trainable = (keep_trainable,)
    model.requires_grad_(False)
    kept = []
    for k in keep_trainable:
        for name, p in model.named_parameters():
            if name == k or name.startswith(k + "."):
                p.requires_grad_(True)
                kept.append(name)
    return kept
""",
        "in another order",
    ),
    Mistake(
        "freeze",
        "eval() as well as freezing",
        """
def freeze(model, keep_trainable=()):
    if isinstance(keep_trainable, str):
        keep_trainable = (keep_trainable,)
    kept = []
    for name, p in model.named_parameters():
        keep = any(name == k or name.startswith(k + ".") for k in keep_trainable)
        p.requires_grad_(keep)
        if keep:
            kept.append(name)
    model.eval()
    return kept
""",
        "model.eval() is not part of freezing",
    ),
    Mistake(
        "freeze",
        "name == prefix forgotten",
        """
def freeze(model, keep_trainable=()):
    if isinstance(keep_trainable, str):
        keep_trainable = (keep_trainable,)
    kept = []
    for name, p in model.named_parameters():
        keep = any(name.startswith(k + ".") for k in keep_trainable)
        p.requires_grad_(keep)
        if keep:
            kept.append(name)
    return kept
""",
        "a prefix that is a whole parameter name not matched",
    ),
    Mistake(
        "freeze",
        "first part of the name only",
        """
def freeze(model, keep_trainable=()):
    if isinstance(keep_trainable, str):
        keep_trainable = (keep_trainable,)
    kept = []
    for name, p in model.named_parameters():
        keep = name.split(".")[0] in keep_trainable
        p.requires_grad_(keep)
        if keep:
            kept.append(name)
    return kept
""",
        "only the first part of each name compared",
    ),
    Mistake(
        "freeze",
        "prefixes looked up with get_submodule",
        """
def freeze(model, keep_trainable=()):
    if isinstance(keep_trainable, str):
        keep_trainable = (keep_trainable,)
    model.requires_grad_(False)
    for prefix in keep_trainable:
        model.get_submodule(prefix).requires_grad_(True)
    return [name for name, p in model.named_parameters() if p.requires_grad]
""",
        "looked up with get_submodule, which finds modules only",
    ),
    Mistake(
        "freeze",
        "the others never frozen",
        """
def freeze(model, keep_trainable=()):
    if isinstance(keep_trainable, str):
        keep_trainable = (keep_trainable,)
    kept = []
    for name, p in model.named_parameters():
        if any(name == k or name.startswith(k + ".") for k in keep_trainable):
            p.requires_grad_(True)
            kept.append(name)
    return kept
""",
        "never set to False on the parameters to freeze",
    ),
    # RunningMean
    Mistake(
        "RunningMean",
        "Parameter instead of buffer",
        """
import torch
from torch import nn


class RunningMean(nn.Module):
    def __init__(self, num_features, momentum=0.1):
        super().__init__()
        self.momentum = momentum
        self.running_mean = nn.Parameter(torch.zeros(num_features), requires_grad=False)

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * x.mean(0))
        return x - self.running_mean
""",
        "Parameter instead of buffer",
    ),
    Mistake(
        "RunningMean",
        "plain tensor attribute",
        """
import torch
from torch import nn


class RunningMean(nn.Module):
    def __init__(self, num_features, momentum=0.1):
        super().__init__()
        self.momentum = momentum
        self.running_mean = torch.zeros(num_features)

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * x.mean(0)
        return x - self.running_mean
""",
        "plain tensor attribute",
    ),
    Mistake(
        "RunningMean",
        "updates in eval mode",
        """
import torch
from torch import nn


class RunningMean(nn.Module):
    def __init__(self, num_features, momentum=0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features))

    def forward(self, x):
        with torch.no_grad():
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * x.mean(0))
        return x - self.running_mean
""",
        "updates in eval mode",
    ),
    Mistake(
        "RunningMean",
        "graph kept through the buffer",
        """
import torch
from torch import nn


class RunningMean(nn.Module):
    def __init__(self, num_features, momentum=0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features))

    def forward(self, x):
        if self.training:
            self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * x.mean(0)
        return x - self.running_mean
""",
        "graph kept through the buffer",
    ),
    Mistake(
        "RunningMean",
        "buffer not persistent",
        """
import torch
from torch import nn


class RunningMean(nn.Module):
    def __init__(self, num_features, momentum=0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features), persistent=False)

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * x.mean(0))
        return x - self.running_mean
""",
        "persistent=False",
    ),
    Mistake(
        "RunningMean",
        "momentum the other way round",
        """
import torch
from torch import nn


class RunningMean(nn.Module):
    def __init__(self, num_features, momentum=0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features))

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.running_mean.mul_(self.momentum).add_((1 - self.momentum) * x.mean(0))
        return x - self.running_mean
""",
        "momentum applied the other way round",
    ),
    Mistake(
        "RunningMean",
        "momentum argument ignored",
        """
import torch
from torch import nn


class RunningMean(nn.Module):
    def __init__(self, num_features, momentum=0.1):
        super().__init__()
        self.register_buffer("running_mean", torch.zeros(num_features))

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.running_mean.mul_(0.9).add_(0.1 * x.mean(0))
        return x - self.running_mean
""",
        "momentum argument ignored",
    ),
    Mistake(
        "RunningMean",
        "output uses the mean before the update",
        """
import torch
from torch import nn


class RunningMean(nn.Module):
    def __init__(self, num_features, momentum=0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features))

    def forward(self, x):
        out = x - self.running_mean
        if self.training:
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * x.mean(0))
        return out
""",
        "from before this batch's update",
    ),
    Mistake(
        "RunningMean",
        "batch mean subtracted",
        """
import torch
from torch import nn


class RunningMean(nn.Module):
    def __init__(self, num_features, momentum=0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features))

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * x.mean(0))
        return x - x.mean(0)
""",
        "x minus the batch mean",
    ),
    Mistake(
        "RunningMean",
        "input modified in place",
        """
import torch
from torch import nn


class RunningMean(nn.Module):
    def __init__(self, num_features, momentum=0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features))

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * x.mean(0))
        with torch.no_grad():
            x -= self.running_mean
        return x
""",
        "input modified in place",
    ),
    Mistake(
        "RunningMean",
        "self.train read instead of self.training",
        """
import torch
from torch import nn


class RunningMean(nn.Module):
    def __init__(self, num_features, momentum=0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features))

    def forward(self, x):
        if self.train:
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * x.mean(0))
        return x - self.running_mean
""",
        "updates in eval mode",
    ),
    Mistake(
        "RunningMean",
        "the whole forward under torch.no_grad()",
        """
import torch
from torch import nn


class RunningMean(nn.Module):
    def __init__(self, num_features, momentum=0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features))

    @torch.no_grad()
    def forward(self, x):
        if self.training:
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * x.mean(0))
        return x - self.running_mean
""",
        "output detached from x",
    ),
    Mistake(
        "RunningMean",
        "mean over all entries",
        """
import torch
from torch import nn


class RunningMean(nn.Module):
    def __init__(self, num_features, momentum=0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features))

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * x.mean())
        return x - self.running_mean
""",
        "mean over all entries",
    ),
    Mistake(
        "RunningMean",
        "mean over the features (dim 1)",
        """
import torch
from torch import nn


class RunningMean(nn.Module):
    def __init__(self, num_features, momentum=0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features))

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * x.mean(1))
        return x - self.running_mean
""",
        "mean over the wrong dimension",
    ),
    Mistake(
        "RunningMean",
        "eval mode returns x unchanged",
        """
import torch
from torch import nn


class RunningMean(nn.Module):
    def __init__(self, num_features, momentum=0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features))

    def forward(self, x):
        if not self.training:
            return x
        with torch.no_grad():
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * x.mean(0))
        return x - self.running_mean
""",
        "returned x unchanged",
    ),
]

ALTERNATIVES = [
    Alternative(
        "count_parameters",
        "loop over unique tensors by id",
        """
def count_parameters(model, trainable_only=False):
    seen = set()
    total = 0
    for _, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.nelement()
    return total
""",
    ),
    Alternative(
        "count_parameters",
        "filter then math.prod of the shape",
        """
import math


def count_parameters(model, trainable_only=False):
    params = model.parameters()
    if trainable_only:
        params = filter(lambda p: p.requires_grad, params)
    return sum(math.prod(p.shape) for p in params)
""",
    ),
    Alternative(
        "count_parameters",
        "walk modules() with a set of ids",
        """
def count_parameters(model, trainable_only=False):
    seen, total = set(), 0
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            if p.requires_grad or not trainable_only:
                total += p.numel()
    return total
""",
    ),
    Alternative(
        "parameter_shapes",
        "a loop with p.size()",
        """
def parameter_shapes(model):
    shapes = {}
    for name, parameter in model.named_parameters():
        shapes[name] = parameter.size()
    return shapes
""",
    ),
    Alternative(
        "parameter_shapes",
        "OrderedDict",
        """
from collections import OrderedDict


def parameter_shapes(model):
    return OrderedDict((name, tuple(p.shape)) for name, p in model.named_parameters())
""",
    ),
    Alternative(
        "freeze",
        "freeze everything, then compare name parts",
        """
def freeze(model, keep_trainable=()):
    prefixes = [keep_trainable] if isinstance(keep_trainable, str) else list(keep_trainable)
    model.requires_grad_(False)
    kept = []
    for name, p in model.named_parameters():
        parts = name.split(".")
        if any(parts[: len(k.split("."))] == k.split(".") for k in prefixes):
            p.requires_grad_(True)
            kept.append(name)
    return kept
""",
    ),
    Alternative(
        "freeze",
        "(name + '.').startswith(prefix + '.')",
        """
def freeze(model, keep_trainable=()):
    if type(keep_trainable) is str:
        keep_trainable = [keep_trainable]
    kept = []
    for name, p in model.named_parameters():
        p.requires_grad = any((name + ".").startswith(k + ".") for k in keep_trainable)
        if p.requires_grad:
            kept.append(name)
    return kept
""",
    ),
    Alternative(
        "freeze",
        "get_submodule, else get_parameter",
        """
def freeze(model, keep_trainable=()):
    prefixes = [keep_trainable] if isinstance(keep_trainable, str) else keep_trainable
    model.requires_grad_(False)
    for prefix in prefixes:
        try:
            model.get_submodule(prefix).requires_grad_(True)
        except AttributeError:
            model.get_parameter(prefix).requires_grad_(True)
    return [name for name, p in model.named_parameters() if p.requires_grad]
""",
    ),
    Alternative(
        "RunningMean",
        "reassigning the buffer from a detached mean",
        """
import torch
from torch import nn


class RunningMean(nn.Module):
    def __init__(self, num_features, momentum=0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features), persistent=True)

    def forward(self, x):
        if self.training:
            batch_mean = x.detach().mean(dim=0)
            self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * batch_mean
        return x - self.running_mean
""",
    ),
    Alternative(
        "RunningMean",
        "lerp_ under torch.no_grad()",
        """
import torch
from torch import nn


class RunningMean(nn.Module):
    def __init__(self, num_features: int, momentum: float = 0.1) -> None:
        super().__init__()
        self.num_features = num_features
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features))

    @torch.no_grad()
    def _update(self, x):
        self.running_mean.lerp_(x.mean(0), self.momentum)

    def forward(self, x):
        if self.training:
            self._update(x)
        return x - self.running_mean

    def extra_repr(self):
        return f"{self.num_features}, momentum={self.momentum}"
""",
    ),
    Alternative(
        "RunningMean",
        "copy_ from an out-of-place update, eval branch first",
        """
import torch
from torch import nn


class RunningMean(nn.Module):
    def __init__(self, num_features, momentum=0.1):
        super().__init__()
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.momentum = float(momentum)

    def forward(self, x):
        if not self.training:
            return x - self.running_mean
        mean = x.detach().mean(dim=0)
        with torch.no_grad():
            self.running_mean.copy_(self.running_mean + self.momentum * (mean - self.running_mean))
        return x - self.running_mean
""",
    ),
]
