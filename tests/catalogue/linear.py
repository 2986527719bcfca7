"""01_linear: the contract's mistakes for linear_forward, make_linear and linear_param_count."""

from tests.catalogue import Alternative, Mistake

NOTEBOOK = "01_linear"

MISTAKES = [
    # linear_forward
    Mistake(
        "linear_forward",
        "weight not transposed",
        """
def linear_forward(x, weight, bias=None):
    y = x @ weight
    return y if bias is None else y + bias
""",
        "weight not transposed",
    ),
    Mistake(
        "linear_forward",
        "bias ignored",
        """
def linear_forward(x, weight, bias=None):
    return x @ weight.T
""",
        "bias ignored",
    ),
    Mistake(
        "linear_forward",
        "bias added on the wrong axis",
        """
def linear_forward(x, weight, bias=None):
    y = x @ weight.T
    if bias is not None:
        y = y + bias.unsqueeze(-1)
    return y
""",
        "bias added on the wrong axis",
    ),
    Mistake(
        "linear_forward",
        "only 2-D input works",
        """
import torch


def linear_forward(x, weight, bias=None):
    y = torch.mm(x, weight.t())
    return y if bias is None else y + bias
""",
        "only 2-D input works",
    ),
    Mistake(
        "linear_forward",
        "input modified in place",
        """
def linear_forward(x, weight, bias=None):
    if x.dim() == 1:
        x.unsqueeze_(0)
        y = (x @ weight.T).squeeze(0)
    else:
        y = x @ weight.T
    return y if bias is None else y + bias
""",
        "input modified in place",
    ),
    Mistake(
        "linear_forward",
        "calls F.linear",
        """
import torch.nn.functional as F


def linear_forward(x, weight, bias=None):
    return F.linear(x, weight, bias)
""",
        "calls torch.nn.functional.linear",
    ),
    Mistake(
        "linear_forward",
        "gradient cut with .data",
        """
def linear_forward(x, weight, bias=None):
    y = x.data @ weight.data.T
    return y if bias is None else y + bias.data
""",
        "left autograd",
    ),
    Mistake(
        "linear_forward",
        "no return",
        """
def linear_forward(x, weight, bias=None):
    y = x @ weight.T
    if bias is not None:
        y = y + bias
""",
        "did you forget `return`",
    ),
    # make_linear
    Mistake(
        "make_linear",
        "in/out swapped",
        """
import torch
from torch import nn


def make_linear(weight, bias=None):
    layer = nn.Linear(weight.shape[0], weight.shape[1], bias=bias is not None,
                      dtype=weight.dtype, device=weight.device)
    with torch.no_grad():
        layer.weight.copy_(weight.T)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer
""",
        "in/out swapped",
    ),
    Mistake(
        "make_linear",
        "plain tensors assigned",
        """
from torch import nn


def make_linear(weight, bias=None):
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    layer.weight = weight.detach().clone()
    if bias is not None:
        layer.bias = bias.detach().clone()
    return layer
""",
        "plain tensor assigned instead of nn.Parameter",
    ),
    Mistake(
        "make_linear",
        "aliases the caller's tensors",
        """
from torch import nn


def make_linear(weight, bias=None):
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None,
                      dtype=weight.dtype, device=weight.device)
    layer.weight = nn.Parameter(weight.detach())
    if bias is not None:
        layer.bias = nn.Parameter(bias.detach())
    return layer
""",
        "aliases the caller's tensors",
    ),
    Mistake(
        "make_linear",
        "bias=None ignored",
        """
import torch
from torch import nn


def make_linear(weight, bias=None):
    layer = nn.Linear(weight.shape[1], weight.shape[0], dtype=weight.dtype, device=weight.device)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer
""",
        "bias=None ignored",
    ),
    Mistake(
        "make_linear",
        "dtype and device not kept",
        """
import torch
from torch import nn


def make_linear(weight, bias=None):
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer
""",
        "like the tensor given",
    ),
    Mistake(
        "make_linear",
        "in/out swapped in the layer's size",
        """
from torch import nn


def make_linear(weight, bias=None):
    layer = nn.Linear(weight.shape[0], weight.shape[1], bias=bias is not None,
                      dtype=weight.dtype, device=weight.device)
    layer.weight = nn.Parameter(weight.detach().clone())
    if bias is not None:
        layer.bias = nn.Parameter(bias.detach().clone())
    return layer
""",
        "in/out swapped",
    ),
    # linear_param_count
    Mistake(
        "linear_param_count",
        "bias forgotten",
        """
def linear_param_count(in_features, out_features, bias=True):
    return in_features * out_features
""",
        "bias forgotten",
    ),
    Mistake(
        "linear_param_count",
        "bias miscounted",
        """
def linear_param_count(in_features, out_features, bias=True):
    return in_features * out_features + (in_features if bias else 0)
""",
        "bias miscounted",
    ),
    Mistake(
        "linear_param_count",
        "bias=False ignored",
        """
def linear_param_count(in_features, out_features, bias=True):
    return (in_features + 1) * out_features
""",
        "bias counted although bias=False",
    ),
    Mistake(
        "linear_param_count",
        "returns a tensor",
        """
import torch


def linear_param_count(in_features, out_features, bias=True):
    return torch.tensor(in_features * out_features + (out_features if bias else 0))
""",
        "should be a Python int",
    ),
]

ALTERNATIVES = [
    Alternative(
        "linear_forward",
        "torch.matmul with an explicit transpose and torch.add",
        """
import torch


def linear_forward(x, weight, bias=None):
    y = torch.matmul(x, weight.transpose(0, 1))
    if bias is not None:
        y = torch.add(y, bias)
    return y
""",
    ),
    Alternative(
        "linear_forward",
        "einsum",
        """
import torch


def linear_forward(x, weight, bias=None):
    y = torch.einsum("...i,oi->...o", x, weight)
    return y if bias is None else y + bias
""",
    ),
    Alternative(
        "make_linear",
        "new Parameters from clones",
        """
from torch import nn


def make_linear(weight, bias=None):
    out_features, in_features = weight.shape
    layer = nn.Linear(in_features, out_features, bias=bias is not None, device=weight.device,
                      dtype=weight.dtype)
    layer.weight = nn.Parameter(weight.detach().clone())
    if bias is not None:
        layer.bias = nn.Parameter(bias.detach().clone())
    return layer
""",
    ),
    Alternative(
        "linear_param_count",
        "counting a real layer on the meta device",
        """
from torch import nn


def linear_param_count(in_features, out_features, bias=True):
    layer = nn.Linear(in_features, out_features, bias=bias, device="meta")
    return sum(p.numel() for p in layer.parameters())
""",
    ),
]
