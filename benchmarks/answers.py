"""The simulated class's wrong answers: a fixed set of the curriculum's common mistakes per exercise, so that
the benchmark grades the same class whatever the test catalogue adds. An exercise without one here gets
``FALLBACK``, an answer that raises when the checks call it."""

from __future__ import annotations

FALLBACK = "raise ValueError('a wrong answer')"

WRONG: dict[str, dict[str, list[str]]] = {
    "01_linear": {
        "linear_forward": [
            "def linear_forward(x, weight, bias=None):\n    y = x @ weight\n"
            "    return y if bias is None else y + bias\n",
            "def linear_forward(x, weight, bias=None):\n    return x @ weight.T\n",
            "def linear_forward(x, weight, bias=None):\n    y = x @ weight.T\n    if bias is not None:\n"
            "        y = y + bias.unsqueeze(-1)\n    return y\n",
        ],
        "make_linear": [
            "from torch import nn\n\n\ndef make_linear(weight, bias=None):\n"
            "    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)\n"
            "    layer.weight = weight.detach().clone()\n    if bias is not None:\n"
            "        layer.bias = bias.detach().clone()\n    return layer\n",
            "from torch import nn\n\n\ndef make_linear(weight, bias=None):\n"
            "    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None,\n"
            "                      dtype=weight.dtype, device=weight.device)\n"
            "    layer.weight = nn.Parameter(weight.detach())\n    if bias is not None:\n"
            "        layer.bias = nn.Parameter(bias.detach())\n    return layer\n",
        ],
        "linear_param_count": [
            "def linear_param_count(in_features, out_features, bias=True):\n"
            "    return in_features * out_features\n",
            "def linear_param_count(in_features, out_features, bias=True):\n"
            "    return (in_features + 1) * out_features\n",
        ],
    },
    "02_modules": {
        "MLP": [
            "from torch import nn\n\n\nclass MLP(nn.Module):\n"
            "    def __init__(self, in_features, hidden_features, out_features):\n"
            "        super().__init__()\n"
            "        self.hidden = nn.Linear(in_features, hidden_features)\n"
            "        self.out = nn.Linear(hidden_features, out_features)\n\n"
            "    def forward(self, x):\n        return self.out(self.hidden(x))\n",
        ],
        "MySequential": [
            "from torch import nn\n\n\nclass MySequential(nn.Module):\n    def __init__(self, *modules):\n"
            "        super().__init__()\n        self.layers = list(modules)\n\n    def forward(self, x):\n"
            "        for module in self.layers:\n            x = module(x)\n        return x\n",
        ],
        "ParallelConcat": [
            "import torch\nfrom torch import nn\n\n\nclass ParallelConcat(nn.Module):\n"
            "    def __init__(self, *branches):\n        super().__init__()\n"
            "        self.branches = nn.ModuleList(branches)\n\n    def forward(self, x):\n"
            "        return torch.cat([branch(x) for branch in self.branches])\n",
        ],
    },
}


def wrong_answers(notebook: str, exercises: list[str]) -> list[dict[str, str]]:
    """One ``{exercise: wrong solution cell}`` per known mistake of the notebook's exercises (each exercise
    has at least one)."""
    known = WRONG.get(notebook, {})
    return [{exercise: source} for exercise in exercises for source in known.get(exercise, [FALLBACK])]
