"""05_initialization: the contract's mistakes for init_normal, xavier_uniform, my_init and init_lstm, then
more that students make, and alternative correct solutions."""

from tests.catalogue import Alternative, Mistake

NOTEBOOK = "05_initialization"

MISTAKES = [
    # init_normal
    Mistake(
        "init_normal",
        "std 0.1",
        """
from torch import nn


def init_normal(module):
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.1)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
""",
        "std 0.1 instead of 0.01",
    ),
    Mistake(
        "init_normal",
        "variance 0.01 taken as std",
        """
import math

from torch import nn


def init_normal(module):
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=math.sqrt(0.01))
        if module.bias is not None:
            nn.init.zeros_(module.bias)
""",
        "the variance 0.01 taken as the std",
    ),
    Mistake(
        "init_normal",
        "std squared",
        """
from torch import nn


def init_normal(module):
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.01**2)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
""",
        "0.01^2 = 0.0001 is the variance",
    ),
    Mistake(
        "init_normal",
        "0.01 passed as the mean",
        """
from torch import nn


def init_normal(module):
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0.01)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
""",
        "the second argument is the mean",
    ),
    Mistake(
        "init_normal",
        "bias left alone",
        """
from torch import nn


def init_normal(module):
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.01)
""",
        "bias left alone",
    ),
    Mistake(
        "init_normal",
        "non-Linear modules touched",
        """
from torch import nn


def init_normal(module):
    if getattr(module, "weight", None) is not None:
        nn.init.normal_(module.weight, mean=0.0, std=0.01)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
""",
        "non-Linear modules touched",
    ),
    Mistake(
        "init_normal",
        "subclasses skipped",
        """
from torch import nn


def init_normal(module):
    if type(module) == nn.Linear:
        nn.init.normal_(module.weight, mean=0.0, std=0.01)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
""",
        "subclasses of nn.Linear skipped",
    ),
    Mistake(
        "init_normal",
        "new Parameters assigned",
        """
import torch
from torch import nn


def init_normal(module):
    if isinstance(module, nn.Linear):
        module.weight = nn.Parameter(torch.randn_like(module.weight) * 0.01)
        if module.bias is not None:
            module.bias = nn.Parameter(torch.zeros_like(module.bias))
""",
        "not in place: a new nn.Parameter was assigned",
    ),
    Mistake(
        "init_normal",
        ".data replaced",
        """
import torch
from torch import nn


def init_normal(module):
    if isinstance(module, nn.Linear):
        module.weight.data = torch.randn_like(module.weight) * 0.01
        if module.bias is not None:
            module.bias.data = torch.zeros_like(module.bias)
""",
        "gave the parameter new memory",
    ),
    Mistake(
        "init_normal",
        "no torch.no_grad()",
        """
from torch import nn


def init_normal(module):
    if isinstance(module, nn.Linear):
        module.weight.normal_(0.0, 0.01)
        if module.bias is not None:
            module.bias.zero_()
""",
        "outside torch.no_grad()",
    ),
    Mistake(
        "init_normal",
        "bias=False layers crash",
        """
from torch import nn


def init_normal(module):
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.01)
        nn.init.zeros_(module.bias)
""",
        "a layer built with bias=False",
    ),
    Mistake(
        "init_normal",
        "uniform instead of normal",
        """
from torch import nn


def init_normal(module):
    if isinstance(module, nn.Linear):
        bound = 0.01 * 3**0.5
        nn.init.uniform_(module.weight, -bound, bound)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
""",
        "uniform distribution instead of normal",
    ),
    # xavier_uniform
    Mistake(
        "xavier_uniform",
        "Kaiming's bound gain * sqrt(3 / fan_in)",
        """
import torch


def xavier_uniform(tensor, gain=1.0):
    receptive_field = tensor[0][0].numel()
    fan_in = tensor.size(1) * receptive_field
    bound = gain * (3 / fan_in) ** 0.5
    with torch.no_grad():
        tensor.uniform_(-bound, bound)
    return tensor
""",
        "Kaiming's bound",
    ),
    Mistake(
        "xavier_uniform",
        "Kaiming's bound sqrt(6 / fan_in)",
        """
import math

import torch


def xavier_uniform(tensor, gain=1.0):
    fan_in = tensor.size(1) * tensor[0][0].numel()
    bound = math.sqrt(6 / fan_in)
    with torch.no_grad():
        tensor.uniform_(-bound, bound)
    return tensor
""",
        "Kaiming's bound",
    ),
    Mistake(
        "xavier_uniform",
        "gain ignored",
        """
import math

import torch


def xavier_uniform(tensor, gain=1.0):
    receptive_field = tensor[0][0].numel()
    fan_in, fan_out = tensor.size(1) * receptive_field, tensor.size(0) * receptive_field
    bound = math.sqrt(6 / (fan_in + fan_out))
    with torch.no_grad():
        tensor.uniform_(-bound, bound)
    return tensor
""",
        "gain ignored",
    ),
    Mistake(
        "xavier_uniform",
        "not in place",
        """
import math

import torch


def xavier_uniform(tensor, gain=1.0):
    receptive_field = tensor[0][0].numel()
    fan_in, fan_out = tensor.size(1) * receptive_field, tensor.size(0) * receptive_field
    bound = gain * math.sqrt(6 / (fan_in + fan_out))
    return torch.empty_like(tensor).uniform_(-bound, bound)
""",
        "not in place",
    ),
    Mistake(
        "xavier_uniform",
        "fans from the wrong dimensions for conv weights",
        """
import math

import torch


def xavier_uniform(tensor, gain=1.0):
    fan_out, fan_in = tensor.shape[0], tensor.shape[1]
    bound = gain * math.sqrt(6 / (fan_in + fan_out))
    with torch.no_grad():
        tensor.uniform_(-bound, bound)
    return tensor
""",
        "fans from the wrong dimensions for conv weights",
    ),
    Mistake(
        "xavier_uniform",
        "only 2-D tensors handled",
        """
import math

import torch


def xavier_uniform(tensor, gain=1.0):
    fan_out, fan_in = tensor.shape
    bound = gain * math.sqrt(6 / (fan_in + fan_out))
    with torch.no_grad():
        tensor.uniform_(-bound, bound)
    return tensor
""",
        "only 2-D tensors handled",
    ),
    Mistake(
        "xavier_uniform",
        "calls nn.init.xavier_uniform_",
        """
from torch.nn.init import xavier_uniform_ as fill


def xavier_uniform(tensor, gain=1.0):
    return fill(tensor, gain=gain)
""",
        "calls torch.nn.init.xavier_uniform_",
    ),
    Mistake(
        "xavier_uniform",
        "tensor not returned",
        """
import math

import torch


def xavier_uniform(tensor, gain=1.0):
    receptive_field = tensor[0][0].numel()
    fan_in, fan_out = tensor.size(1) * receptive_field, tensor.size(0) * receptive_field
    bound = gain * math.sqrt(6 / (fan_in + fan_out))
    with torch.no_grad():
        tensor.uniform_(-bound, bound)
""",
        "filled but not returned",
    ),
    Mistake(
        "xavier_uniform",
        "no torch.no_grad() for a parameter",
        """
import math


def xavier_uniform(tensor, gain=1.0):
    receptive_field = tensor[0][0].numel()
    fan_in, fan_out = tensor.size(1) * receptive_field, tensor.size(0) * receptive_field
    bound = gain * math.sqrt(6 / (fan_in + fan_out))
    return tensor.uniform_(-bound, bound)
""",
        "outside torch.no_grad()",
    ),
    Mistake(
        "xavier_uniform",
        "the std used as the bound",
        """
import math

import torch


def xavier_uniform(tensor, gain=1.0):
    receptive_field = tensor[0][0].numel()
    fan_in, fan_out = tensor.size(1) * receptive_field, tensor.size(0) * receptive_field
    bound = gain * math.sqrt(2 / (fan_in + fan_out))
    with torch.no_grad():
        tensor.uniform_(-bound, bound)
    return tensor
""",
        "the Xavier std used as the bound",
    ),
    Mistake(
        "xavier_uniform",
        "normal instead of uniform",
        """
import math

import torch


def xavier_uniform(tensor, gain=1.0):
    receptive_field = tensor[0][0].numel()
    fan_in, fan_out = tensor.size(1) * receptive_field, tensor.size(0) * receptive_field
    with torch.no_grad():
        tensor.normal_(0.0, gain * math.sqrt(2 / (fan_in + fan_out)))
    return tensor
""",
        "normal distribution instead of uniform",
    ),
    Mistake(
        "xavier_uniform",
        "U(0, a) from torch.rand",
        """
import math

import torch


def xavier_uniform(tensor, gain=1.0):
    receptive_field = tensor[0][0].numel()
    fan_in, fan_out = tensor.size(1) * receptive_field, tensor.size(0) * receptive_field
    bound = gain * math.sqrt(6 / (fan_in + fan_out))
    with torch.no_grad():
        tensor.copy_(torch.rand(tensor.shape) * bound)
    return tensor
""",
        "U(0, a) instead of U(-a, a)",
    ),
    # my_init
    Mistake(
        "my_init",
        "zeroing the wrong set",
        """
import torch
from torch import nn


def my_init(module):
    if isinstance(module, nn.Linear):
        with torch.no_grad():
            module.weight.uniform_(-10, 10)
            module.weight[module.weight.abs() >= 5] = 0
""",
        "zeroed the wrong entries",
    ),
    Mistake(
        "my_init",
        "bias changed",
        """
import torch
from torch import nn


def my_init(module):
    if isinstance(module, nn.Linear):
        with torch.no_grad():
            for parameter in module.parameters():
                parameter.uniform_(-10, 10)
                parameter[parameter.abs() < 5] = 0
""",
        "bias changed",
    ),
    Mistake(
        "my_init",
        "U(0, 10)",
        """
import torch
from torch import nn


def my_init(module):
    if isinstance(module, nn.Linear):
        with torch.no_grad():
            module.weight.uniform_(0, 10)
            module.weight[module.weight.abs() < 5] = 0
""",
        "U(0, 10) instead of U(-10, 10)",
    ),
    Mistake(
        "my_init",
        "U(-5, 5)",
        """
import torch
from torch import nn


def my_init(module):
    if isinstance(module, nn.Linear):
        with torch.no_grad():
            module.weight.uniform_(-5, 5)
            module.weight[module.weight.abs() < 5] = 0
""",
        "U(-5, 5)",
    ),
    Mistake(
        "my_init",
        "not in place",
        """
import torch
from torch import nn


def my_init(module):
    if isinstance(module, nn.Linear):
        weight = torch.empty_like(module.weight).uniform_(-10, 10)
        module.weight = nn.Parameter(torch.where(weight.abs() < 5, 0.0, weight))
""",
        "not in place",
    ),
    Mistake(
        "my_init",
        "small entries not zeroed",
        """
from torch import nn


def my_init(module):
    if isinstance(module, nn.Linear):
        nn.init.uniform_(module.weight, -10, 10)
""",
        "entries with |w| < 5 not set to zero",
    ),
    Mistake(
        "my_init",
        "type(m) == nn.Linear",
        """
from torch import nn


def my_init(module):
    if type(module) == nn.Linear:
        nn.init.uniform_(module.weight, -10, 10)
        module.weight.data *= module.weight.data.abs() >= 5
""",
        "subclasses of nn.Linear skipped",
    ),
    Mistake(
        "my_init",
        "non-Linear modules touched (my_init)",
        """
import torch


def my_init(module):
    weight = getattr(module, "weight", None)
    if weight is not None:
        with torch.no_grad():
            weight.uniform_(-10, 10)
            weight[weight.abs() < 5] = 0
""",
        "non-Linear modules touched",
    ),
    Mistake(
        "my_init",
        "no torch.no_grad() (my_init)",
        """
from torch import nn


def my_init(module):
    if isinstance(module, nn.Linear):
        module.weight.uniform_(-10, 10)
        module.weight.mul_(module.weight.abs() >= 5)
""",
        "outside torch.no_grad()",
    ),
    # init_lstm
    Mistake(
        "init_lstm",
        "input-gate slice [0:H] set",
        """
import torch
from torch import nn


def init_lstm(lstm):
    H = lstm.hidden_size
    with torch.no_grad():
        for name, param in lstm.named_parameters():
            if "weight_ih" in name:
                nn.init.xavier_uniform_(param)
            elif "weight_hh" in name:
                nn.init.orthogonal_(param)
            else:
                param.zero_()
                if "bias_ih" in name:
                    param[0:H] = 1.0
""",
        "the input-gate slice [0:H] set",
    ),
    Mistake(
        "init_lstm",
        "both bias_ih and bias_hh set to 1",
        """
import torch
from torch import nn


def init_lstm(lstm):
    H = lstm.hidden_size
    with torch.no_grad():
        for name, param in lstm.named_parameters():
            if "weight_ih" in name:
                nn.init.xavier_uniform_(param)
            elif "weight_hh" in name:
                nn.init.orthogonal_(param)
            else:
                param.zero_()
                param[H:2 * H] = 1.0
""",
        "both bias_ih and bias_hh set to 1",
    ),
    Mistake(
        "init_lstm",
        "only layer 0 initialized",
        """
import torch
from torch import nn


def init_lstm(lstm):
    H = lstm.hidden_size
    with torch.no_grad():
        nn.init.xavier_uniform_(lstm.weight_ih_l0)
        nn.init.orthogonal_(lstm.weight_hh_l0)
        if lstm.bias:
            lstm.bias_ih_l0.zero_()
            lstm.bias_ih_l0[H:2 * H] = 1.0
            lstm.bias_hh_l0.zero_()
        if lstm.bidirectional:
            nn.init.xavier_uniform_(lstm.weight_ih_l0_reverse)
            nn.init.orthogonal_(lstm.weight_hh_l0_reverse)
            if lstm.bias:
                lstm.bias_ih_l0_reverse.zero_()
                lstm.bias_ih_l0_reverse[H:2 * H] = 1.0
                lstm.bias_hh_l0_reverse.zero_()
""",
        "only layer 0 initialized",
    ),
    Mistake(
        "init_lstm",
        "only the forward direction initialized",
        """
import torch
from torch import nn


def init_lstm(lstm):
    H = lstm.hidden_size
    with torch.no_grad():
        for layer in range(lstm.num_layers):
            nn.init.xavier_uniform_(getattr(lstm, f"weight_ih_l{layer}"))
            nn.init.orthogonal_(getattr(lstm, f"weight_hh_l{layer}"))
            if lstm.bias:
                getattr(lstm, f"bias_ih_l{layer}").zero_()
                getattr(lstm, f"bias_ih_l{layer}")[H:2 * H] = 1.0
                getattr(lstm, f"bias_hh_l{layer}").zero_()
""",
        "only the forward direction initialized",
    ),
    Mistake(
        "init_lstm",
        "weight_hh Xavier instead of orthogonal",
        """
import torch
from torch import nn


def init_lstm(lstm):
    H = lstm.hidden_size
    with torch.no_grad():
        for name, param in lstm.named_parameters():
            if "weight" in name:
                nn.init.xavier_uniform_(param)
            else:
                param.zero_()
                if "bias_ih" in name:
                    param[H:2 * H] = 1.0
""",
        "weight_hh Xavier-uniform instead of orthogonal",
    ),
    Mistake(
        "init_lstm",
        "orthogonal per gate block",
        """
import torch
from torch import nn


def init_lstm(lstm):
    H = lstm.hidden_size
    with torch.no_grad():
        for name, param in lstm.named_parameters():
            if "weight_ih" in name:
                nn.init.xavier_uniform_(param)
            elif "weight_hh" in name:
                for block in param.chunk(4, dim=0):
                    nn.init.orthogonal_(block)
            else:
                param.zero_()
                if "bias_ih" in name:
                    param[H:2 * H] = 1.0
""",
        "orthogonal per gate block",
    ),
    Mistake(
        "init_lstm",
        "g-gate slice [2H:3H] set",
        """
import torch
from torch import nn


def init_lstm(lstm):
    H = lstm.hidden_size
    with torch.no_grad():
        for name, param in lstm.named_parameters():
            if "weight_ih" in name:
                nn.init.xavier_uniform_(param)
            elif "weight_hh" in name:
                nn.init.orthogonal_(param)
            else:
                param.zero_()
                if "bias_ih" in name:
                    param[2 * H:3 * H] = 1.0
""",
        "the cell-candidate (g gate) slice [2H:3H] set",
    ),
    Mistake(
        "init_lstm",
        "output-gate slice [3H:4H] set",
        """
import torch
from torch import nn


def init_lstm(lstm):
    with torch.no_grad():
        for name, param in lstm.named_parameters():
            if "weight_ih" in name:
                nn.init.xavier_uniform_(param)
            elif "weight_hh" in name:
                nn.init.orthogonal_(param)
            else:
                param.zero_()
                if "bias_ih" in name:
                    param[-lstm.hidden_size:] = 1.0  # the forget gate taken as the last block
""",
        "the output-gate slice [3H:4H] set",
    ),
    Mistake(
        "init_lstm",
        "new Parameters assigned",
        """
import torch
from torch import nn


def init_lstm(lstm):
    H = lstm.hidden_size
    for name, param in list(lstm.named_parameters()):
        if "weight_ih" in name:
            value = nn.init.xavier_uniform_(torch.empty_like(param))
        elif "weight_hh" in name:
            value = nn.init.orthogonal_(torch.empty_like(param))
        else:
            value = torch.zeros_like(param)
            if "bias_ih" in name:
                value[H:2 * H] = 1.0
        setattr(lstm, name, nn.Parameter(value))
""",
        "not in place: a new nn.Parameter was assigned",
    ),
    Mistake(
        "init_lstm",
        "biases left at default",
        """
from torch import nn


def init_lstm(lstm):
    for name, param in lstm.named_parameters():
        if "weight_ih" in name:
            nn.init.xavier_uniform_(param)
        elif "weight_hh" in name:
            nn.init.orthogonal_(param)
""",
        "biases left at default",
    ),
    Mistake(
        "init_lstm",
        "no torch.no_grad()",
        """
from torch import nn


def init_lstm(lstm):
    H = lstm.hidden_size
    for name, param in lstm.named_parameters():
        if "weight_ih" in name:
            nn.init.xavier_uniform_(param)
        elif "weight_hh" in name:
            nn.init.orthogonal_(param)
        else:
            param.zero_()
            if "bias_ih" in name:
                param[H:2 * H] = 1.0
""",
        "outside torch.no_grad()",
    ),
    Mistake(
        "init_lstm",
        ".data replaced",
        """
import torch
from torch import nn


def init_lstm(lstm):
    H = lstm.hidden_size
    for name, param in lstm.named_parameters():
        if "weight_ih" in name:
            param.data = nn.init.xavier_uniform_(torch.empty(param.shape))
        elif "weight_hh" in name:
            param.data = nn.init.orthogonal_(torch.empty(param.shape))
        else:
            value = torch.zeros(param.shape)
            if "bias_ih" in name:
                value[H:2 * H] = 1.0
            param.data = value
""",
        "gave the parameter new memory",
    ),
    Mistake(
        "init_lstm",
        "forget bias in bias_hh instead of bias_ih",
        """
import torch
from torch import nn


def init_lstm(lstm):
    H = lstm.hidden_size
    with torch.no_grad():
        for name, param in lstm.named_parameters():
            if "weight_ih" in name:
                nn.init.xavier_uniform_(param)
            elif "weight_hh" in name:
                nn.init.orthogonal_(param)
            else:
                param.zero_()
                if "bias_hh" in name:
                    param[H:2 * H] = 1.0
""",
        "put in bias_hh instead of bias_ih",
    ),
    Mistake(
        "init_lstm",
        "the whole bias_ih set to 1",
        """
from torch import nn


def init_lstm(lstm):
    for name, param in lstm.named_parameters():
        if "weight_ih" in name:
            nn.init.xavier_uniform_(param)
        elif "weight_hh" in name:
            nn.init.orthogonal_(param)
        elif "bias_ih" in name:
            nn.init.ones_(param)
        else:
            nn.init.zeros_(param)
""",
        "the whole bias_ih set to 1",
    ),
    Mistake(
        "init_lstm",
        "forget slice set, the rest of the biases left at default",
        """
import torch
from torch import nn


def init_lstm(lstm):
    H = lstm.hidden_size
    with torch.no_grad():
        for name, param in lstm.named_parameters():
            if "weight_ih" in name:
                nn.init.xavier_uniform_(param)
            elif "weight_hh" in name:
                nn.init.orthogonal_(param)
            elif "bias_ih" in name:
                param[H:2 * H] = 1.0
""",
        "the rest of bias_ih not zeroed",
    ),
    Mistake(
        "init_lstm",
        "bias_hh left at default",
        """
import torch
from torch import nn


def init_lstm(lstm):
    H = lstm.hidden_size
    with torch.no_grad():
        for name, param in lstm.named_parameters():
            if "weight_ih" in name:
                nn.init.xavier_uniform_(param)
            elif "weight_hh" in name:
                nn.init.orthogonal_(param)
            elif "bias_ih" in name:
                param.zero_()
                param[H:2 * H] = 1.0
""",
        "bias_hh left at its default values",
    ),
    Mistake(
        "init_lstm",
        "weight_ih and weight_hh swapped",
        """
import torch
from torch import nn


def init_lstm(lstm):
    H = lstm.hidden_size
    with torch.no_grad():
        for name, param in lstm.named_parameters():
            if "weight_ih" in name:
                nn.init.orthogonal_(param)
            elif "weight_hh" in name:
                nn.init.xavier_uniform_(param)
            else:
                param.zero_()
                if "bias_ih" in name:
                    param[H:2 * H] = 1.0
""",
        "weight_ih orthogonal instead of Xavier-uniform",
    ),
    Mistake(
        "init_lstm",
        "Xavier per gate block",
        """
import torch
from torch import nn


def init_lstm(lstm):
    H = lstm.hidden_size
    with torch.no_grad():
        for name, param in lstm.named_parameters():
            if "weight_ih" in name:
                for block in param.chunk(4):
                    nn.init.xavier_uniform_(block)
            elif "weight_hh" in name:
                nn.init.orthogonal_(param)
            else:
                param.zero_()
                if "bias_ih" in name:
                    param[H:2 * H] = 1.0
""",
        "Xavier per gate block",
    ),
    Mistake(
        "init_lstm",
        "orthogonal with tanh's gain",
        """
import torch
from torch import nn


def init_lstm(lstm):
    H = lstm.hidden_size
    gain = nn.init.calculate_gain("tanh")
    with torch.no_grad():
        for name, param in lstm.named_parameters():
            if "weight_ih" in name:
                nn.init.xavier_uniform_(param)
            elif "weight_hh" in name:
                nn.init.orthogonal_(param, gain=gain)
            else:
                param.zero_()
                if "bias_ih" in name:
                    param[H:2 * H] = 1.0
""",
        "orthogonal with a gain",
    ),
    Mistake(
        "init_lstm",
        "nn.init.eye_ for weight_hh",
        """
import torch
from torch import nn


def init_lstm(lstm):
    H = lstm.hidden_size
    with torch.no_grad():
        for name, param in lstm.named_parameters():
            if "weight_ih" in name:
                nn.init.xavier_uniform_(param)
            elif "weight_hh" in name:
                nn.init.eye_(param)
            else:
                param.zero_()
                if "bias_ih" in name:
                    param[H:2 * H] = 1.0
""",
        "not a random orthogonal matrix",
    ),
    Mistake(
        "init_lstm",
        "xavier_normal_ for weight_ih",
        """
import torch
from torch import nn


def init_lstm(lstm):
    H = lstm.hidden_size
    with torch.no_grad():
        for name, param in lstm.named_parameters():
            if "weight_ih" in name:
                nn.init.xavier_normal_(param)
            elif "weight_hh" in name:
                nn.init.orthogonal_(param)
            else:
                param.zero_()
                if "bias_ih" in name:
                    param[H:2 * H] = 1.0
""",
        "normal instead of uniform",
    ),
    Mistake(
        "init_lstm",
        "H from weight_hh.shape[1] (proj_size)",
        """
import torch
from torch import nn


def init_lstm(lstm):
    with torch.no_grad():
        for name, param in lstm.named_parameters():
            if "weight_ih" in name:
                nn.init.xavier_uniform_(param)
            elif "weight_hh" in name:
                nn.init.orthogonal_(param)
                H = param.shape[1]
            elif "bias" in name:
                param.zero_()
                if "bias_ih" in name:
                    param[H:2 * H] = 1.0
""",
        "H taken from weight_hh.shape[1], which is proj_size",
    ),
    Mistake(
        "init_lstm",
        "bias=False LSTMs crash",
        """
import torch
from torch import nn


def init_lstm(lstm):
    H = lstm.hidden_size
    suffixes = ["", "_reverse"] if lstm.bidirectional else [""]
    with torch.no_grad():
        for layer in range(lstm.num_layers):
            for suffix in suffixes:
                nn.init.xavier_uniform_(getattr(lstm, f"weight_ih_l{layer}{suffix}"))
                nn.init.orthogonal_(getattr(lstm, f"weight_hh_l{layer}{suffix}"))
                getattr(lstm, f"bias_ih_l{layer}{suffix}").zero_()
                getattr(lstm, f"bias_ih_l{layer}{suffix}")[H:2 * H] = 1.0
                getattr(lstm, f"bias_hh_l{layer}{suffix}").zero_()
""",
        "an LSTM built with bias=False has no bias_ih_l*",
    ),
    Mistake(
        "init_lstm",
        "grad mode left off (torch.set_grad_enabled(False))",
        """
import torch
from torch import nn


def init_lstm(lstm):
    H = lstm.hidden_size
    torch.set_grad_enabled(False)
    for name, param in lstm.named_parameters():
        if "weight_ih" in name:
            nn.init.xavier_uniform_(param)
        elif "weight_hh" in name:
            nn.init.orthogonal_(param)
        else:
            param.zero_()
            if "bias_ih" in name:
                param[H:2 * H] = 1.0
""",
        "grad mode left off",
    ),
    Mistake(
        "init_lstm",
        "forget bias 2 in bias_ih",
        """
import torch
from torch import nn


def init_lstm(lstm):
    H = lstm.hidden_size
    with torch.no_grad():
        for name, param in lstm.named_parameters():
            if "weight_ih" in name:
                nn.init.xavier_uniform_(param)
            elif "weight_hh" in name:
                nn.init.orthogonal_(param)
            else:
                param.zero_()
                if "bias_ih" in name:
                    param[H:2 * H] = 2.0
""",
        "the forget-gate slice holds 2, expected 1",
    ),
]

ALTERNATIVES = [
    Alternative(
        "init_normal",
        "in-place tensor methods under torch.no_grad()",
        """
import torch
from torch import nn


def init_normal(module):
    if not isinstance(module, nn.Linear):
        return
    with torch.no_grad():
        module.weight.normal_(mean=0.0, std=0.01)
        if module.bias is not None:
            module.bias.zero_()
""",
    ),
    Alternative(
        "init_normal",
        "copy_ from randn into .data",
        """
import torch
from torch import nn


def init_normal(module):
    if isinstance(module, nn.Linear):
        module.weight.data.copy_(torch.randn_like(module.weight) * 0.01)
        if module.bias is not None:
            module.bias.data.fill_(0.0)
""",
    ),
    Alternative(
        "xavier_uniform",
        "nn.init.uniform_ with PyTorch's fan helper",
        """
import math

from torch import nn


def xavier_uniform(tensor, gain=1.0):
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(tensor)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return nn.init.uniform_(tensor, -a, a)
""",
    ),
    Alternative(
        "xavier_uniform",
        "rand scaled into copy_, fans by math.prod",
        """
import math

import torch


def xavier_uniform(tensor, gain=1.0):
    receptive_field = math.prod(tensor.shape[2:])
    fan_in = tensor.shape[1] * receptive_field
    fan_out = tensor.shape[0] * receptive_field
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    a = math.sqrt(3.0) * std
    noise = torch.rand(tensor.shape, dtype=tensor.dtype, device=tensor.device)
    with torch.no_grad():
        tensor.copy_((2 * noise - 1) * a)
    return tensor
""",
    ),
    Alternative(
        "my_init",
        "d2l's multiply by the mask, with isinstance",
        """
from torch import nn


def my_init(module):
    if isinstance(module, nn.Linear):
        nn.init.uniform_(module.weight, -10, 10)
        module.weight.data *= module.weight.data.abs() >= 5
""",
    ),
    Alternative(
        "my_init",
        "torch.where copied into the weight",
        """
import torch
from torch import nn


def my_init(module):
    if isinstance(module, nn.Linear):
        with torch.no_grad():
            values = torch.empty_like(module.weight).uniform_(-10.0, 10.0)
            module.weight.copy_(torch.where(values.abs() < 5, torch.zeros_like(values), values))
""",
    ),
    Alternative(
        "init_lstm",
        "getattr over _flat_weights_names, chunk(4) and nn.init.constant_",
        """
from torch import nn


def init_lstm(lstm):
    for name in lstm._flat_weights_names:
        param = getattr(lstm, name)
        if name.startswith("weight_ih"):
            nn.init.xavier_uniform_(param)
        elif name.startswith("weight_hh"):
            nn.init.orthogonal_(param)
        elif name.startswith("bias"):
            nn.init.zeros_(param)
            if name.startswith("bias_ih"):
                nn.init.constant_(param.chunk(4)[1], 1.0)
""",
    ),
    Alternative(
        "init_lstm",
        "lstm.all_weights per layer and direction, fill_ on a slice",
        """
import torch
from torch import nn


def init_lstm(lstm):
    H = lstm.hidden_size
    with torch.no_grad():
        for weights in lstm.all_weights:  # [w_ih, w_hh, (b_ih, b_hh), (w_hr)] per layer and direction
            w_ih, w_hh = weights[0], weights[1]
            nn.init.xavier_uniform_(w_ih)
            nn.init.orthogonal_(w_hh)
            if lstm.bias:
                b_ih, b_hh = weights[2], weights[3]
                b_ih.fill_(0.0)
                b_ih[H:2 * H].fill_(1.0)
                b_hh.fill_(0.0)
""",
    ),
    Alternative(
        "init_lstm",
        "by hand: Xavier bound from the shape, QR for the orthogonal matrix, copy_ of a built bias",
        """
import math

import torch


def init_lstm(lstm):
    H = lstm.hidden_size
    with torch.no_grad():
        for name, param in lstm.named_parameters():
            if name.startswith("weight_ih"):
                fan_out, fan_in = param.shape
                a = math.sqrt(6.0 / (fan_in + fan_out))
                param.uniform_(-a, a)
            elif name.startswith("weight_hh"):
                q, r = torch.linalg.qr(torch.randn(param.shape, dtype=torch.float64))
                q = q * torch.sign(torch.diagonal(r))
                param.copy_(q)
            elif name.startswith("bias"):
                value = torch.zeros(4 * H)
                if name.startswith("bias_ih"):
                    value[H:2 * H] = 1.0
                param.copy_(value)
""",
    ),
    Alternative(
        "init_lstm",
        "nested loops over layers and directions, .data writes",
        """
from torch import nn


def init_lstm(lstm):
    H = lstm.hidden_size
    directions = ["", "_reverse"] if lstm.bidirectional else [""]
    for layer in range(lstm.num_layers):
        for suffix in directions:
            nn.init.xavier_uniform_(getattr(lstm, f"weight_ih_l{layer}{suffix}"))
            nn.init.orthogonal_(getattr(lstm, f"weight_hh_l{layer}{suffix}"))
            if lstm.bias:
                getattr(lstm, f"bias_ih_l{layer}{suffix}").data.zero_()
                getattr(lstm, f"bias_ih_l{layer}{suffix}").data[H:2 * H] = 1.0
                getattr(lstm, f"bias_hh_l{layer}{suffix}").data.zero_()
""",
    ),
]
