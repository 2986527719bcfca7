"""07_custom_layers: the contract's mistakes for CenteredLayer, MyLinear, ScalingLayer, LearnableLeakyReLU,
Residual and ResidualConvBlock, plus other common ones, and correct solutions written in other styles."""

from tests.catalogue import Alternative, Mistake

NOTEBOOK = "07_custom_layers"

_LINEAR_HEAD = """
import math

import torch
import torch.nn.functional as F
from torch import nn
"""

# A (C,) weight shaped to broadcast along dim 1 (channels), as the mistakes below other than the one they
# are about do it.
_LEAKY_HEAD = """
import torch
from torch import nn


def _slopes(weight, x):
    return weight.reshape((1, -1) + (1,) * (x.dim() - 2)) if x.dim() >= 2 and weight.dim() == 1 else weight
"""

_BLOCK_HEAD = """
import torch.nn.functional as F
from torch import nn
"""

# The layers as the exercise asks (for mistakes in forward only).
_BLOCK_INIT = """

class ResidualConvBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

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
    # LearnableLeakyReLU
    Mistake(
        "LearnableLeakyReLU",
        "slope a plain float",
        """
import torch
from torch import nn


class LearnableLeakyReLU(nn.Module):
    def __init__(self, num_parameters=1, init=0.25):
        super().__init__()
        self.negative_slope = float(init)

    def forward(self, x):
        return torch.where(x >= 0, x, self.negative_slope * x)
""",
        "slope a plain float or tensor (not learnable)",
    ),
    Mistake(
        "LearnableLeakyReLU",
        "slope a plain tensor",
        _LEAKY_HEAD
        + """

class LearnableLeakyReLU(nn.Module):
    def __init__(self, num_parameters=1, init=0.25):
        super().__init__()
        self.weight = torch.full((num_parameters,), float(init), requires_grad=True)

    def forward(self, x):
        return torch.where(x >= 0, x, _slopes(self.weight, x) * x)
""",
        "slope a plain float or tensor (not learnable)",
    ),
    Mistake(
        "LearnableLeakyReLU",
        "slope applied to the positive part",
        _LEAKY_HEAD
        + """

class LearnableLeakyReLU(nn.Module):
    def __init__(self, num_parameters=1, init=0.25):
        super().__init__()
        self.weight = nn.Parameter(torch.full((num_parameters,), float(init)))

    def forward(self, x):
        return torch.where(x >= 0, _slopes(self.weight, x) * x, x)
""",
        "slope applied to the positive part",
    ),
    Mistake(
        "LearnableLeakyReLU",
        "channels taken from the last dim",
        """
import torch
from torch import nn


class LearnableLeakyReLU(nn.Module):
    def __init__(self, num_parameters=1, init=0.25):
        super().__init__()
        self.weight = nn.Parameter(torch.full((num_parameters,), float(init)))

    def forward(self, x):
        return torch.where(x >= 0, x, self.weight * x)
""",
        "channels taken from the last dim",
    ),
    Mistake(
        "LearnableLeakyReLU",
        "weight of shape ()",
        _LEAKY_HEAD
        + """

class LearnableLeakyReLU(nn.Module):
    def __init__(self, num_parameters=1, init=0.25):
        super().__init__()
        shape = () if num_parameters == 1 else (num_parameters,)
        self.weight = nn.Parameter(torch.full(shape, float(init)))

    def forward(self, x):
        return torch.where(x >= 0, x, _slopes(self.weight, x) * x)
""",
        "weight of shape ()",
    ),
    Mistake(
        "LearnableLeakyReLU",
        "init ignored",
        _LEAKY_HEAD
        + """

class LearnableLeakyReLU(nn.Module):
    def __init__(self, num_parameters=1, init=0.25):
        super().__init__()
        self.weight = nn.Parameter(torch.full((num_parameters,), 0.25))

    def forward(self, x):
        return torch.where(x >= 0, x, _slopes(self.weight, x) * x)
""",
        "init argument ignored",
    ),
    Mistake(
        "LearnableLeakyReLU",
        "F.leaky_relu with a float slope",
        """
import torch
import torch.nn.functional as F
from torch import nn


class LearnableLeakyReLU(nn.Module):
    def __init__(self, num_parameters=1, init=0.25):
        super().__init__()
        self.weight = nn.Parameter(torch.full((num_parameters,), float(init)))

    def forward(self, x):
        return F.leaky_relu(x, self.weight.detach().item())
""",
        "the slope used as a Python number",
    ),
    Mistake(
        "LearnableLeakyReLU",
        "calls F.prelu",
        """
import torch
import torch.nn.functional as F
from torch import nn


class LearnableLeakyReLU(nn.Module):
    def __init__(self, num_parameters=1, init=0.25):
        super().__init__()
        self.weight = nn.Parameter(torch.full((num_parameters,), float(init)))

    def forward(self, x):
        return F.prelu(x, self.weight)
""",
        "calls nn.PReLU / F.prelu",
    ),
    Mistake(
        "LearnableLeakyReLU",
        "subclasses nn.PReLU",
        """
from torch import nn


class LearnableLeakyReLU(nn.PReLU):
    pass
""",
        "calls nn.PReLU / F.prelu",
    ),
    Mistake(
        "LearnableLeakyReLU",
        "torch.maximum(x, weight * x)",
        _LEAKY_HEAD
        + """

class LearnableLeakyReLU(nn.Module):
    def __init__(self, num_parameters=1, init=0.25):
        super().__init__()
        self.weight = nn.Parameter(torch.full((num_parameters,), float(init)))

    def forward(self, x):
        return torch.maximum(x, _slopes(self.weight, x) * x)
""",
        "equals PReLU only for slopes between 0 and 1",
    ),
    Mistake(
        "LearnableLeakyReLU",
        "slope registered as a buffer",
        _LEAKY_HEAD
        + """

class LearnableLeakyReLU(nn.Module):
    def __init__(self, num_parameters=1, init=0.25):
        super().__init__()
        self.register_buffer("weight", torch.full((num_parameters,), float(init)))

    def forward(self, x):
        return torch.where(x >= 0, x, _slopes(self.weight, x) * x)
""",
        "slope registered as a buffer",
    ),
    Mistake(
        "LearnableLeakyReLU",
        "negative entries scaled in place",
        _LEAKY_HEAD
        + """

class LearnableLeakyReLU(nn.Module):
    def __init__(self, num_parameters=1, init=0.25):
        super().__init__()
        self.weight = nn.Parameter(torch.full((num_parameters,), float(init)))

    def forward(self, x):
        negative = x < 0
        x[negative] = (_slopes(self.weight, x) * x)[negative]
        return x
""",
        "input modified in place",
    ),
    Mistake(
        "LearnableLeakyReLU",
        "weight always reshaped to (1, C, 1, 1)",
        """
import torch
from torch import nn


class LearnableLeakyReLU(nn.Module):
    def __init__(self, num_parameters=1, init=0.25):
        super().__init__()
        self.weight = nn.Parameter(torch.full((num_parameters,), float(init)))

    def forward(self, x):
        return torch.where(x >= 0, x, self.weight.view(1, -1, 1, 1) * x)
""",
        "the weight reshaped for one input rank only",
    ),
    Mistake(
        "LearnableLeakyReLU",
        "torch.full with an int init",
        _LEAKY_HEAD
        + """

class LearnableLeakyReLU(nn.Module):
    def __init__(self, num_parameters=1, init=0.25):
        super().__init__()
        self.weight = nn.Parameter(torch.full((num_parameters,), init))

    def forward(self, x):
        return torch.where(x >= 0, x, _slopes(self.weight, x) * x)
""",
        "init given as an int",
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
    # ResidualConvBlock
    Mistake(
        "ResidualConvBlock",
        "padding missing",
        _BLOCK_HEAD
        + """

class ResidualConvBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + x)
""",
        "padding missing",
    ),
    Mistake(
        "ResidualConvBlock",
        "conv bias left on",
        _BLOCK_HEAD
        + """

class ResidualConvBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + x)
""",
        "conv bias left on",
    ),
    Mistake(
        "ResidualConvBlock",
        "skip added after the last ReLU",
        _BLOCK_HEAD
        + _BLOCK_INIT
        + """
    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out))) + x
""",
        "the skip added after the last ReLU",
    ),
    Mistake(
        "ResidualConvBlock",
        "one BatchNorm used after both convs",
        _BLOCK_HEAD
        + _BLOCK_INIT
        + """
    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn1(self.conv2(out)) + x)
""",
        "one BatchNorm reused for both convs",
    ),
    Mistake(
        "ResidualConvBlock",
        "ReLU missing between",
        _BLOCK_HEAD
        + _BLOCK_INIT
        + """
    def forward(self, x):
        out = self.bn1(self.conv1(x))
        return F.relu(self.bn2(self.conv2(out)) + x)
""",
        "ReLU missing between bn1 and conv2",
    ),
    Mistake(
        "ResidualConvBlock",
        "skip added before bn2",
        _BLOCK_HEAD
        + _BLOCK_INIT
        + """
    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out) + x))
""",
        "the skip added before bn2",
    ),
    Mistake(
        "ResidualConvBlock",
        "identity = x, then identity += out",
        _BLOCK_HEAD
        + _BLOCK_INIT
        + """
    def forward(self, x):
        identity = x
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity += out
        return F.relu(identity)
""",
        "input modified in place",
    ),
    Mistake(
        "ResidualConvBlock",
        "main path in an nn.Sequential",
        _BLOCK_HEAD
        + """

class ResidualConvBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x):
        return F.relu(self.body(x) + x)
""",
        "the exercise requires the names conv1, bn1, conv2 and bn2",
    ),
    Mistake(
        "ResidualConvBlock",
        "one BatchNorm module under both names",
        _BLOCK_HEAD
        + """

class ResidualConvBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = self.bn1

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + x)
""",
        "one BatchNorm reused for both convs",
    ),
    Mistake(
        "ResidualConvBlock",
        "the final ReLU missing",
        _BLOCK_HEAD
        + _BLOCK_INIT
        + """
    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out)) + x
""",
        "the final ReLU missing",
    ),
    Mistake(
        "ResidualConvBlock",
        "skip connection missing",
        _BLOCK_HEAD
        + _BLOCK_INIT
        + """
    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)))
""",
        "skip connection missing",
    ),
    Mistake(
        "ResidualConvBlock",
        "nn.BatchNorm1d",
        _BLOCK_HEAD
        + """

class ResidualConvBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(channels)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + x)
""",
        "nn.BatchNorm1d used on 4-D input",
    ),
    Mistake(
        "ResidualConvBlock",
        "batch statistics in eval mode",
        _BLOCK_HEAD
        + _BLOCK_INIT
        + """
    def forward(self, x):
        def norm(bn, h):
            return F.batch_norm(h, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=True)

        out = F.relu(norm(self.bn1, self.conv1(x)))
        return F.relu(norm(self.bn2, self.conv2(out)) + x)
""",
        "uses the batch's statistics in eval mode",
    ),
    Mistake(
        "ResidualConvBlock",
        "track_running_stats=False",
        _BLOCK_HEAD
        + """

class ResidualConvBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels, track_running_stats=False)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels, track_running_stats=False)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + x)
""",
        "BatchNorm without running statistics",
    ),
    Mistake(
        "ResidualConvBlock",
        "1x1 convolutions",
        _BLOCK_HEAD
        + """

class ResidualConvBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + x)
""",
        "kernel size other than 3x3",
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
        "LearnableLeakyReLU",
        "x > 0, unsqueeze in a loop, torch.ones * init",
        """
import torch
from torch import nn


class LearnableLeakyReLU(nn.Module):
    def __init__(self, num_parameters=1, init=0.25):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_parameters) * init)

    def forward(self, x):
        slopes = self.weight
        if x.dim() >= 2 and slopes.numel() > 1:
            slopes = slopes.unsqueeze(0)
            while slopes.dim() < x.dim():
                slopes = slopes.unsqueeze(-1)
        return torch.where(x > 0, x, slopes * x)
""",
    ),
    Alternative(
        "LearnableLeakyReLU",
        "clamp formulation, register_parameter, empty + fill_",
        """
import torch
from torch import nn


class LearnableLeakyReLU(nn.Module):
    def __init__(self, num_parameters=1, init=0.25):
        super().__init__()
        self.register_parameter("weight", nn.Parameter(torch.empty(num_parameters).fill_(init)))

    def forward(self, x):
        shape = [1] * x.dim()
        if x.dim() >= 2:
            shape[1] = -1
        slopes = self.weight.reshape(shape) if x.dim() >= 2 else self.weight
        return x.clamp(min=0) + slopes * x.clamp(max=0)
""",
    ),
    Alternative(
        "LearnableLeakyReLU",
        "relu(x) - w relu(-x), channels moved last with movedim",
        """
import torch
import torch.nn.functional as F
from torch import nn


class LearnableLeakyReLU(nn.Module):
    def __init__(self, num_parameters=1, init=0.25):
        super().__init__()
        self.weight = nn.Parameter(torch.full((num_parameters,), init, dtype=torch.float32))

    def forward(self, x):
        if x.dim() < 2:
            return F.relu(x) - self.weight * F.relu(-x)
        last = x.movedim(1, -1)
        return (F.relu(last) - self.weight * F.relu(-last)).movedim(-1, 1)
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
    Alternative(
        "ResidualConvBlock",
        "padding='same', nn.ReLU(inplace=True), out += identity",
        """
from torch import nn


class ResidualConvBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding="same", bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding="same", bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)
""",
    ),
    Alternative(
        "ResidualConvBlock",
        "F.pad before unpadded convs, add_module in a loop, torch.add",
        """
import torch
import torch.nn.functional as F
from torch import nn


class ResidualConvBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        for index in (1, 2):
            self.add_module(f"conv{index}", nn.Conv2d(channels, channels, kernel_size=3, bias=False))
            self.add_module(f"bn{index}", nn.BatchNorm2d(channels))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(F.pad(x, (1, 1, 1, 1)))))
        out = self.bn2(self.conv2(F.pad(out, (1, 1, 1, 1))))
        return torch.relu(torch.add(x, out))
""",
    ),
]
