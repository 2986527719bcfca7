"""07_custom_layers: the contract's mistakes for CenteredLayer, MyLinear, ScalingLayer and Residual, plus
other common ones, and correct solutions written in other styles."""

from tests.catalogue import Alternative, Mistake

NOTEBOOK = "07_custom_layers"

_LINEAR_HEAD = """
import math

import torch
import torch.nn.functional as F
from torch import nn
"""

MISTAKES = [
    # CenteredLayer
    Mistake(
        "CenteredLayer",
        "per-feature centering",
        """
from torch import nn


class CenteredLayer(nn.Module):
    def forward(self, x):
        return x - x.mean(0)
""",
        "mean over one dimension",
    ),
    Mistake(
        "CenteredLayer",
        "per-sample centering",
        """
from torch import nn


class CenteredLayer(nn.Module):
    def forward(self, x):
        return x - x.mean(-1, keepdim=True)
""",
        "mean over one dimension",
    ),
    Mistake(
        "CenteredLayer",
        "centering in place",
        """
from torch import nn


class CenteredLayer(nn.Module):
    def forward(self, x):
        x -= x.mean()
        return x
""",
        "input modified in place",
    ),
    Mistake(
        "CenteredLayer",
        "a parameter added",
        """
import torch
from torch import nn


class CenteredLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x - x.mean() + self.shift
""",
        "parameters added",
    ),
    Mistake(
        "CenteredLayer",
        "a buffer added",
        """
import torch
from torch import nn


class CenteredLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("last_mean", torch.zeros(()))

    def forward(self, x):
        self.last_mean = x.mean().detach()
        return x - x.mean()
""",
        "buffers added",
    ),
    Mistake(
        "CenteredLayer",
        "mean taken out of the graph with .item()",
        """
from torch import nn


class CenteredLayer(nn.Module):
    def forward(self, x):
        return x - x.mean().item()
""",
        "mean detached from the graph",
    ),
    Mistake(
        "CenteredLayer",
        "standardizing instead of centering",
        """
from torch import nn


class CenteredLayer(nn.Module):
    def forward(self, x):
        return (x - x.mean()) / x.std()
""",
        "also divided by the standard deviation",
    ),
    Mistake(
        "CenteredLayer",
        "sign flipped",
        """
from torch import nn


class CenteredLayer(nn.Module):
    def forward(self, x):
        return x.mean() - x
""",
        "sign flipped",
    ),
    # MyLinear
    Mistake(
        "MyLinear",
        "weight stored (in, out)",
        _LINEAR_HEAD
        + """

class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(in_features, out_features).uniform_(-bound, bound))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        y = x @ self.weight
        return y if self.bias is None else y + self.bias

    def extra_repr(self):
        has_bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={has_bias}"
""",
        "weight stored (in, out)",
    ),
    Mistake(
        "MyLinear",
        "plain tensors instead of parameters",
        _LINEAR_HEAD
        + """

class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features)
        self.weight = torch.empty(out_features, in_features).uniform_(-bound, bound).requires_grad_()
        self.bias = torch.empty(out_features).uniform_(-bound, bound).requires_grad_() if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        has_bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={has_bias}"
""",
        "plain tensors (not parameters)",
    ),
    Mistake(
        "MyLinear",
        "randn init",
        _LINEAR_HEAD
        + """

class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        if bias:
            self.bias = nn.Parameter(torch.randn(out_features))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        has_bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={has_bias}"
""",
        "torch.randn init: std 1 instead of nn.Linear's ~1/sqrt(3 in_features)",
    ),
    Mistake(
        "MyLinear",
        "bias ignored in forward",
        _LINEAR_HEAD
        + """

class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if bias:
            bound = 1 / math.sqrt(in_features)
            self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        return x @ self.weight.T

    def extra_repr(self):
        has_bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={has_bias}"
""",
        "bias ignored",
    ),
    Mistake(
        "MyLinear",
        "extra_repr missing",
        _LINEAR_HEAD
        + """

class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if bias:
            bound = 1 / math.sqrt(in_features)
            self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)
""",
        "extra_repr missing",
    ),
    Mistake(
        "MyLinear",
        "extra_repr prints the bias tensor",
        _LINEAR_HEAD
        + """

class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if bias:
            bound = 1 / math.sqrt(in_features)
            self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias}"
""",
        "bias=self.bias prints the tensor",
    ),
    Mistake(
        "MyLinear",
        "bias=False ignored",
        _LINEAR_HEAD
        + """

class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        bound = 1 / math.sqrt(in_features)
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias=True"
""",
        "bias=False ignored",
    ),
    Mistake(
        "MyLinear",
        "kaiming_uniform_ without a=sqrt(5)",
        _LINEAR_HEAD
        + """

class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight)
        if bias:
            bound = 1 / math.sqrt(in_features)
            self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        has_bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={has_bias}"
""",
        "kaiming_uniform_ without a=math.sqrt(5)",
    ),
    Mistake(
        "MyLinear",
        "bias initialized to zeros",
        _LINEAR_HEAD
        + """

class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if bias:
            self.bias = nn.Parameter(torch.zeros(out_features))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        has_bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={has_bias}"
""",
        "bias initialized to zeros",
    ),
    Mistake(
        "MyLinear",
        "wraps an nn.Linear",
        """
from torch import nn


class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)

    def forward(self, x):
        return self.linear(x)

    def extra_repr(self):
        return self.linear.extra_repr()
""",
        "wraps an nn.Linear",
    ),
    Mistake(
        "MyLinear",
        "only 2-D input works",
        _LINEAR_HEAD
        + """

class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        bound = 1 / math.sqrt(in_features)
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound)) if bias else None

    def forward(self, x):
        y = torch.mm(x, self.weight.t())
        return y if self.bias is None else y + self.bias

    def extra_repr(self):
        has_bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={has_bias}"
""",
        "only 2-D input works",
    ),
    # ScalingLayer
    Mistake(
        "ScalingLayer",
        "plain float attribute",
        """
from torch import nn


class ScalingLayer(nn.Module):
    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = float(scale)

    def forward(self, x):
        return self.scale * x
""",
        "not learnable",
    ),
    Mistake(
        "ScalingLayer",
        "int dtype",
        """
import torch
from torch import nn


class ScalingLayer(nn.Module):
    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale))

    def forward(self, x):
        return self.scale * x
""",
        "int dtype",
    ),
    Mistake(
        "ScalingLayer",
        "shape (1,) instead of 0-dim",
        """
import torch
from torch import nn


class ScalingLayer(nn.Module):
    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([float(scale)]))

    def forward(self, x):
        return self.scale * x
""",
        "shape (1,) instead of 0-dim",
    ),
    Mistake(
        "ScalingLayer",
        "tensor with requires_grad, not a Parameter",
        """
import torch
from torch import nn


class ScalingLayer(nn.Module):
    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = torch.tensor(float(scale), requires_grad=True)

    def forward(self, x):
        return self.scale * x
""",
        "not an nn.Parameter",
    ),
    Mistake(
        "ScalingLayer",
        "registered as a buffer",
        """
import torch
from torch import nn


class ScalingLayer(nn.Module):
    def __init__(self, scale=1.0):
        super().__init__()
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, x):
        return self.scale * x
""",
        "registered as a buffer",
    ),
    Mistake(
        "ScalingLayer",
        "scale argument ignored",
        """
import torch
from torch import nn


class ScalingLayer(nn.Module):
    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.scale * x
""",
        "scale argument ignored",
    ),
    Mistake(
        "ScalingLayer",
        "float64 parameter",
        """
import torch
from torch import nn


class ScalingLayer(nn.Module):
    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale, dtype=torch.float64))

    def forward(self, x):
        return self.scale * x
""",
        "expected torch.float32",
    ),
    Mistake(
        "ScalingLayer",
        "gradient cut with .item()",
        """
import torch
from torch import nn


class ScalingLayer(nn.Module):
    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(scale)))

    def forward(self, x):
        return self.scale.item() * x
""",
        "no gradient reaches scale",
    ),
    # Residual
    Mistake(
        "Residual",
        "module kept in a list",
        """
from torch import nn


class Residual(nn.Module):
    def __init__(self, module):
        super().__init__()
        self.modules_ = [module]

    def forward(self, x):
        y = self.modules_[0](x)
        if y.shape != x.shape:
            raise ValueError(f"module changed the shape from {tuple(x.shape)} to {tuple(y.shape)}")
        return x + y
""",
        "module not registered",
    ),
    Mistake(
        "Residual",
        "module hidden through __dict__",
        """
from torch import nn


class Residual(nn.Module):
    def __init__(self, module):
        super().__init__()
        self.__dict__["module"] = module

    def forward(self, x):
        y = self.module(x)
        if y.shape != x.shape:
            raise ValueError(f"module changed the shape from {tuple(x.shape)} to {tuple(y.shape)}")
        return x + y
""",
        "module not registered",
    ),
    Mistake(
        "Residual",
        "missing skip",
        """
from torch import nn


class Residual(nn.Module):
    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        y = self.module(x)
        if y.shape != x.shape:
            raise ValueError(f"module changed the shape from {tuple(x.shape)} to {tuple(y.shape)}")
        return y
""",
        "missing skip",
    ),
    Mistake(
        "Residual",
        "shape check missing",
        """
from torch import nn


class Residual(nn.Module):
    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return x + self.module(x)
""",
        "shape check missing",
    ),
    Mistake(
        "Residual",
        "shape check by number of elements",
        """
from torch import nn


class Residual(nn.Module):
    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        y = self.module(x)
        if y.numel() != x.numel():
            raise ValueError(f"module changed the shape from {tuple(x.shape)} to {tuple(y.shape)}")
        return x + y
""",
        "shape check missing",
    ),
    Mistake(
        "Residual",
        "assert instead of ValueError",
        """
from torch import nn


class Residual(nn.Module):
    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        y = self.module(x)
        assert y.shape == x.shape, f"{tuple(x.shape)} != {tuple(y.shape)}"
        return x + y
""",
        "instead of raising ValueError",
    ),
    Mistake(
        "Residual",
        "message with torch.Size",
        """
from torch import nn


class Residual(nn.Module):
    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        y = self.module(x)
        if y.shape != x.shape:
            raise ValueError(f"module changed the shape from {x.shape} to {y.shape}")
        return x + y
""",
        "message with torch.Size(...) instead of tuples",
    ),
    Mistake(
        "Residual",
        "input modified in place",
        """
from torch import nn


class Residual(nn.Module):
    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        y = self.module(x)
        if y.shape != x.shape:
            raise ValueError(f"module changed the shape from {tuple(x.shape)} to {tuple(y.shape)}")
        x += y
        return x
""",
        "input modified in place",
    ),
    Mistake(
        "Residual",
        "a copy of the module",
        """
import copy

from torch import nn


class Residual(nn.Module):
    def __init__(self, module):
        super().__init__()
        self.module = copy.deepcopy(module)

    def forward(self, x):
        y = self.module(x)
        if y.shape != x.shape:
            raise ValueError(f"module changed the shape from {tuple(x.shape)} to {tuple(y.shape)}")
        return x + y
""",
        "a copy of the module",
    ),
]

ALTERNATIVES = [
    Alternative(
        "CenteredLayer",
        "sum divided by numel, with torch.sub",
        """
import torch
from torch import nn


class CenteredLayer(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.sub(x, x.sum() / x.numel())
""",
    ),
    Alternative(
        "CenteredLayer",
        "mean of the flattened input",
        """
from torch import nn


class CenteredLayer(nn.Module):
    def forward(self, x):
        return x - x.reshape(-1).mean()
""",
    ),
    Alternative(
        "MyLinear",
        "torch.rand scaled to the bound, @ in forward, a reset_parameters method",
        """
import math

import torch
from torch import nn


class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.in_features)
        with torch.no_grad():
            self.weight.copy_(torch.rand(self.weight.shape) * 2 * bound - bound)
            if self.bias is not None:
                self.bias.copy_(torch.rand(self.bias.shape) * 2 * bound - bound)

    def forward(self, x):
        y = x @ self.weight.T
        if self.bias is not None:
            y = y + self.bias
        return y

    def extra_repr(self):
        has_bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={has_bias}"
""",
    ),
    Alternative(
        "MyLinear",
        "register_parameter, init.uniform_ for both, einsum",
        """
import math

import torch
from torch import nn


class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.sizes = (in_features, out_features)
        bound = 1.0 / math.sqrt(in_features)
        self.register_parameter("weight", nn.Parameter(torch.empty(out_features, in_features)))
        nn.init.uniform_(self.weight, -bound, bound)
        if bias:
            self.register_parameter("bias", nn.Parameter(torch.empty(out_features)))
            nn.init.uniform_(self.bias, -bound, bound)
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        y = torch.einsum("...i,oi->...o", x, self.weight)
        return y if self.bias is None else y + self.bias

    def extra_repr(self):
        in_features, out_features = self.sizes
        template = "in_features={}, out_features={}, bias={}"
        return template.format(in_features, out_features, self.bias is not None)
""",
    ),
    Alternative(
        "ScalingLayer",
        "torch.full with a dtype, torch.mul",
        """
import torch
from torch import nn


class ScalingLayer(nn.Module):
    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.full((), scale, dtype=torch.float32))

    def forward(self, x):
        return torch.mul(x, self.scale)
""",
    ),
    Alternative(
        "ScalingLayer",
        "register_parameter with as_tensor",
        """
import torch
from torch import nn


class ScalingLayer(nn.Module):
    def __init__(self, scale=1.0):
        super().__init__()
        self.register_parameter("scale", nn.Parameter(torch.as_tensor(scale, dtype=torch.float32)))

    def forward(self, x):
        return x * self.scale
""",
    ),
    Alternative(
        "Residual",
        "add_module and a list comparison",
        """
from torch import nn


class Residual(nn.Module):
    def __init__(self, module):
        super().__init__()
        self.add_module("module", module)

    def forward(self, x):
        out = self.module(x)
        if list(out.shape) != list(x.shape):
            raise ValueError("shape changed: " + str(tuple(x.shape)) + " -> " + str(tuple(out.shape)))
        return out + x
""",
    ),
    Alternative(
        "Residual",
        "register_module, check before adding with torch.add",
        """
import torch
from torch import nn


class Residual(nn.Module):
    def __init__(self, module):
        super().__init__()
        self.register_module("module", module)

    def forward(self, x):
        y = self.module(x)
        if tuple(y.shape) == tuple(x.shape):
            return torch.add(x, y)
        raise ValueError(f"Residual needs module(x) of x's shape {tuple(x.shape)}, got {tuple(y.shape)}")
""",
    ),
]
