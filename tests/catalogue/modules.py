"""02_modules: the contract's mistakes for MLP, MySequential, ParallelConcat, FixedHiddenMLP and
SequenceClassifier."""

from tests.catalogue import Alternative, Mistake

NOTEBOOK = "02_modules"

_MYSEQ_METHODS = """
    def __len__(self):
        return len(self._modules)

    def __getitem__(self, idx):
        return list(self._modules.values())[idx]
"""

MISTAKES = [
    # MLP
    Mistake(
        "MLP",
        "ReLU missing",
        """
from torch import nn


class MLP(nn.Module):
    def __init__(self, in_features, hidden_features, out_features):
        super().__init__()
        self.hidden = nn.Linear(in_features, hidden_features)
        self.out = nn.Linear(hidden_features, out_features)

    def forward(self, x):
        return self.out(self.hidden(x))
""",
        "ReLU missing",
    ),
    Mistake(
        "MLP",
        "out registered before hidden",
        """
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    def __init__(self, in_features, hidden_features, out_features):
        super().__init__()
        self.out = nn.Linear(hidden_features, out_features)
        self.hidden = nn.Linear(in_features, hidden_features)

    def forward(self, x):
        return self.out(F.relu(self.hidden(x)))
""",
        "wrong order of layers",
    ),
    Mistake(
        "MLP",
        "layers applied in the wrong order",
        """
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    def __init__(self, in_features, hidden_features, out_features):
        super().__init__()
        self.hidden = nn.Linear(in_features, hidden_features)
        self.out = nn.Linear(hidden_features, out_features)

    def forward(self, x):
        return self.hidden(F.relu(self.out(x)))
""",
        "layers applied in the wrong order",
    ),
    Mistake(
        "MLP",
        "ReLU after the output layer",
        """
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    def __init__(self, in_features, hidden_features, out_features):
        super().__init__()
        self.hidden = nn.Linear(in_features, hidden_features)
        self.out = nn.Linear(hidden_features, out_features)

    def forward(self, x):
        return F.relu(self.out(self.hidden(x)))
""",
        "ReLU applied after the output layer",
    ),
    Mistake(
        "MLP",
        "other submodule names",
        """
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    def __init__(self, in_features, hidden_features, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.fc2 = nn.Linear(hidden_features, out_features)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))
""",
        "not named `hidden` and `out`",
    ),
    Mistake(
        "MLP",
        "layers wrapped in an nn.Sequential",
        """
from torch import nn


class MLP(nn.Module):
    def __init__(self, in_features, hidden_features, out_features):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden_features), nn.ReLU(), nn.Linear(hidden_features, out_features)
        )

    def forward(self, x):
        return self.net(x)
""",
        "nested inside another module",
    ),
    Mistake(
        "MLP",
        "super().__init__() forgotten",
        """
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    def __init__(self, in_features, hidden_features, out_features):
        self.hidden = nn.Linear(in_features, hidden_features)
        self.out = nn.Linear(hidden_features, out_features)

    def forward(self, x):
        return self.out(F.relu(self.hidden(x)))
""",
        "super().__init__() not called",
    ),
    Mistake(
        "MLP",
        "forward misspelled",
        """
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    def __init__(self, in_features, hidden_features, out_features):
        super().__init__()
        self.hidden = nn.Linear(in_features, hidden_features)
        self.out = nn.Linear(hidden_features, out_features)

    def foward(self, x):
        return self.out(F.relu(self.hidden(x)))
""",
        "forward missing or misspelled",
    ),
    Mistake(
        "MLP",
        "sigmoid instead of ReLU",
        """
import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self, in_features, hidden_features, out_features):
        super().__init__()
        self.hidden = nn.Linear(in_features, hidden_features)
        self.out = nn.Linear(hidden_features, out_features)

    def forward(self, x):
        return self.out(torch.sigmoid(self.hidden(x)))
""",
        "activation is not ReLU",
    ),
    Mistake(
        "MLP",
        "in and out features swapped",
        """
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    def __init__(self, in_features, hidden_features, out_features):
        super().__init__()
        self.hidden = nn.Linear(hidden_features, in_features)
        self.out = nn.Linear(out_features, hidden_features)

    def forward(self, x):
        return self.out(F.relu(self.hidden(x)))
""",
        "in/out features swapped",
    ),
    Mistake(
        "MLP",
        "forward under no_grad",
        """
import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    def __init__(self, in_features, hidden_features, out_features):
        super().__init__()
        self.hidden = nn.Linear(in_features, hidden_features)
        self.out = nn.Linear(hidden_features, out_features)

    def forward(self, x):
        with torch.no_grad():
            return self.out(F.relu(self.hidden(x)))
""",
        "torch.no_grad()",
    ),
    Mistake(
        "MLP",
        "the output squeezed",
        """
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    def __init__(self, in_features, hidden_features, out_features):
        super().__init__()
        self.hidden = nn.Linear(in_features, hidden_features)
        self.out = nn.Linear(hidden_features, out_features)

    def forward(self, x):
        return self.out(F.relu(self.hidden(x))).squeeze()
""",
        "the output squeezed or reshaped",
    ),
    # MySequential
    Mistake(
        "MySequential",
        "modules kept in a plain Python list",
        """
from torch import nn


class MySequential(nn.Module):
    def __init__(self, *modules):
        super().__init__()
        self.layers = list(modules)

    def forward(self, x):
        for module in self.layers:
            x = module(x)
        return x

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, idx):
        return self.layers[idx]
""",
        "plain Python list",
    ),
    Mistake(
        "MySequential",
        "modules kept in a plain tuple attribute",
        """
from torch import nn


class MySequential(nn.Module):
    def __init__(self, *modules):
        super().__init__()
        self.modules = modules

    def forward(self, x):
        for module in self.modules:
            x = module(x)
        return x

    def __len__(self):
        return len(self.modules)

    def __getitem__(self, idx):
        return self.modules[idx]
""",
        "plain Python tuple",
    ),
    Mistake(
        "MySequential",
        "wrong order",
        """
from torch import nn


class MySequential(nn.Module):
    def __init__(self, *modules):
        super().__init__()
        for i, module in enumerate(modules):
            self.add_module(str(i), module)

    def forward(self, x):
        for module in reversed(list(self._modules.values())):
            x = module(x)
        return x
"""
        + _MYSEQ_METHODS,
        "wrong order",
    ),
    Mistake(
        "MySequential",
        "different state_dict keys (nn.ModuleList attribute)",
        """
from torch import nn


class MySequential(nn.Module):
    def __init__(self, *modules):
        super().__init__()
        self.layers = nn.ModuleList(modules)

    def forward(self, x):
        for module in self.layers:
            x = module(x)
        return x

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, idx):
        return self.layers[idx]
""",
        "state_dict keys differ from nn.Sequential's",
    ),
    Mistake(
        "MySequential",
        "different state_dict keys (other names)",
        """
from torch import nn


class MySequential(nn.Module):
    def __init__(self, *modules):
        super().__init__()
        for i, module in enumerate(modules):
            self.add_module(f"layer{i}", module)

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x
"""
        + _MYSEQ_METHODS,
        "state_dict keys differ from nn.Sequential's",
    ),
    Mistake(
        "MySequential",
        "subclasses nn.Sequential",
        """
from torch import nn


class MySequential(nn.Sequential):
    pass
""",
        "subclasses nn.Sequential",
    ),
    Mistake(
        "MySequential",
        "negative indices not handled",
        """
from torch import nn


class MySequential(nn.Module):
    def __init__(self, *modules):
        super().__init__()
        for i, module in enumerate(modules):
            self.add_module(str(i), module)

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x

    def __len__(self):
        return len(self._modules)

    def __getitem__(self, idx):
        return self._modules[str(idx)]
""",
        "negative indices not handled",
    ),
    Mistake(
        "MySequential",
        "each module applied to the input",
        """
from torch import nn


class MySequential(nn.Module):
    def __init__(self, *modules):
        super().__init__()
        for i, module in enumerate(modules):
            self.add_module(str(i), module)

    def forward(self, x):
        for module in self._modules.values():
            y = module(x)
        return y
"""
        + _MYSEQ_METHODS,
        "previous module's output",
    ),
    Mistake(
        "MySequential",
        "__len__ missing",
        """
from torch import nn


class MySequential(nn.Module):
    def __init__(self, *modules):
        super().__init__()
        for i, module in enumerate(modules):
            self.add_module(str(i), module)

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x

    def __getitem__(self, idx):
        return list(self._modules.values())[idx]
""",
        "__len__ not defined",
    ),
    # ParallelConcat
    Mistake(
        "ParallelConcat",
        "branches kept in a plain Python list",
        """
import torch
from torch import nn


class ParallelConcat(nn.Module):
    def __init__(self, *branches):
        super().__init__()
        self.branches = list(branches)

    def forward(self, x):
        return torch.cat([branch(x) for branch in self.branches], dim=-1)
""",
        "plain Python list",
    ),
    Mistake(
        "ParallelConcat",
        "concatenation on dim 0",
        """
import torch
from torch import nn


class ParallelConcat(nn.Module):
    def __init__(self, *branches):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x):
        return torch.cat([branch(x) for branch in self.branches])
""",
        "concatenation on dim 0",
    ),
    Mistake(
        "ParallelConcat",
        "concatenation on dim 1 (only right for 2-D input)",
        """
import torch
from torch import nn


class ParallelConcat(nn.Module):
    def __init__(self, *branches):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x):
        return torch.cat([branch(x) for branch in self.branches], dim=1)
""",
        "concatenation on dim 1 instead of the last dimension",
    ),
    Mistake(
        "ParallelConcat",
        "torch.stack instead of torch.cat",
        """
import torch
from torch import nn


class ParallelConcat(nn.Module):
    def __init__(self, *branches):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x):
        return torch.stack([branch(x) for branch in self.branches], dim=-1)
""",
        "torch.stack",
    ),
    Mistake(
        "ParallelConcat",
        "branches chained instead of run in parallel",
        """
import torch
from torch import nn


class ParallelConcat(nn.Module):
    def __init__(self, *branches):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x):
        outputs = []
        for branch in self.branches:
            x = branch(x)
            outputs.append(x)
        return torch.cat(outputs, dim=-1)
""",
        "each to the previous branch's output",
    ),
    # FixedHiddenMLP
    Mistake(
        "FixedHiddenMLP",
        "rand_weight as nn.Parameter",
        """
import torch
import torch.nn.functional as F
from torch import nn


class FixedHiddenMLP(nn.Module):
    def __init__(self, features=20):
        super().__init__()
        self.rand_weight = nn.Parameter(torch.rand(features, features), requires_grad=False)
        self.linear = nn.Linear(features, features)

    def forward(self, X):
        X = self.linear(X)
        X = F.relu(X @ self.rand_weight + 1)
        X = self.linear(X)
        while X.abs().sum() > 1:
            X /= 2
        return X.sum()
""",
        "rand_weight as nn.Parameter",
    ),
    Mistake(
        "FixedHiddenMLP",
        "rand_weight as a plain tensor attribute",
        """
import torch
import torch.nn.functional as F
from torch import nn


class FixedHiddenMLP(nn.Module):
    def __init__(self, features=20):
        super().__init__()
        self.rand_weight = torch.rand(features, features)
        self.linear = nn.Linear(features, features)

    def forward(self, X):
        X = self.linear(X)
        X = F.relu(X @ self.rand_weight + 1)
        X = self.linear(X)
        while X.abs().sum() > 1:
            X /= 2
        return X.sum()
""",
        "plain tensor attribute",
    ),
    Mistake(
        "FixedHiddenMLP",
        "two separate Linear layers",
        """
import torch
import torch.nn.functional as F
from torch import nn


class FixedHiddenMLP(nn.Module):
    def __init__(self, features=20):
        super().__init__()
        self.register_buffer("rand_weight", torch.rand(features, features))
        self.linear = nn.Linear(features, features)
        self.linear2 = nn.Linear(features, features)

    def forward(self, X):
        X = self.linear(X)
        X = F.relu(X @ self.rand_weight + 1)
        X = self.linear2(X)
        while X.abs().sum() > 1:
            X /= 2
        return X.sum()
""",
        "two separate Linear layers instead of one reused",
    ),
    Mistake(
        "FixedHiddenMLP",
        "non-persistent buffer",
        """
import torch
import torch.nn.functional as F
from torch import nn


class FixedHiddenMLP(nn.Module):
    def __init__(self, features=20):
        super().__init__()
        self.register_buffer("rand_weight", torch.rand(features, features), persistent=False)
        self.linear = nn.Linear(features, features)

    def forward(self, X):
        X = self.linear(X)
        X = F.relu(X @ self.rand_weight + 1)
        X = self.linear(X)
        while X.abs().sum() > 1:
            X /= 2
        return X.sum()
""",
        "persistent=False",
    ),
    Mistake(
        "FixedHiddenMLP",
        "linear used once",
        """
import torch
import torch.nn.functional as F
from torch import nn


class FixedHiddenMLP(nn.Module):
    def __init__(self, features=20):
        super().__init__()
        self.register_buffer("rand_weight", torch.rand(features, features))
        self.linear = nn.Linear(features, features)

    def forward(self, X):
        X = self.linear(X)
        X = F.relu(X @ self.rand_weight + 1)
        while X.abs().sum() > 1:
            X /= 2
        return X.sum()
""",
        "linear used once",
    ),
    Mistake(
        "FixedHiddenMLP",
        "if instead of while",
        """
import torch
import torch.nn.functional as F
from torch import nn


class FixedHiddenMLP(nn.Module):
    def __init__(self, features=20):
        super().__init__()
        self.register_buffer("rand_weight", torch.rand(features, features))
        self.linear = nn.Linear(features, features)

    def forward(self, X):
        X = self.linear(X)
        X = F.relu(X @ self.rand_weight + 1)
        X = self.linear(X)
        if X.abs().sum() > 1:
            X /= 2
        return X.sum()
""",
        "an `if` instead of a `while`",
    ),
    Mistake(
        "FixedHiddenMLP",
        "loop tests the signed sum",
        """
import torch
import torch.nn.functional as F
from torch import nn


class FixedHiddenMLP(nn.Module):
    def __init__(self, features=20):
        super().__init__()
        self.register_buffer("rand_weight", torch.rand(features, features))
        self.linear = nn.Linear(features, features)

    def forward(self, X):
        X = self.linear(X)
        X = F.relu(X @ self.rand_weight + 1)
        X = self.linear(X)
        while X.sum() > 1:
            X /= 2
        return X.sum()
""",
        "instead of the L1 norm",
    ),
    Mistake(
        "FixedHiddenMLP",
        "rand_weight drawn with torch.randn",
        """
import torch
import torch.nn.functional as F
from torch import nn


class FixedHiddenMLP(nn.Module):
    def __init__(self, features=20):
        super().__init__()
        self.register_buffer("rand_weight", torch.randn(features, features))
        self.linear = nn.Linear(features, features)

    def forward(self, X):
        X = self.linear(X)
        X = F.relu(X @ self.rand_weight + 1)
        X = self.linear(X)
        while X.abs().sum() > 1:
            X /= 2
        return X.sum()
""",
        "not drawn with torch.rand",
    ),
    Mistake(
        "FixedHiddenMLP",
        "returns X instead of X.sum()",
        """
import torch
import torch.nn.functional as F
from torch import nn


class FixedHiddenMLP(nn.Module):
    def __init__(self, features=20):
        super().__init__()
        self.register_buffer("rand_weight", torch.rand(features, features))
        self.linear = nn.Linear(features, features)

    def forward(self, X):
        X = self.linear(X)
        X = F.relu(X @ self.rand_weight + 1)
        X = self.linear(X)
        while X.abs().sum() > 1:
            X /= 2
        return X
""",
        "X returned instead of X.sum()",
    ),
    # SequenceClassifier
    Mistake(
        "SequenceClassifier",
        "the LSTM's tuple passed on",
        """
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        return self.fc(self.lstm(self.embedding(x)))
""",
        "tuple passed on",
    ),
    Mistake(
        "SequenceClassifier",
        "batch_first missing",
        """
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        output, (h_n, c_n) = self.lstm(self.embedding(x))
        return self.fc(h_n[-1])
""",
        "batch_first missing",
    ),
    Mistake(
        "SequenceClassifier",
        "the first time step output[:, 0]",
        """
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        output, _ = self.lstm(self.embedding(x))
        return self.fc(output[:, 0])
""",
        "the first time step output[:, 0] used",
    ),
    Mistake(
        "SequenceClassifier",
        "softmax applied to the logits",
        """
import torch
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        output, (h_n, c_n) = self.lstm(self.embedding(x))
        return torch.softmax(self.fc(h_n[-1]), dim=-1)
""",
        "softmax applied to the logits",
    ),
    Mistake(
        "SequenceClassifier",
        "fc applied to every time step (N, L, C)",
        """
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        output, _ = self.lstm(self.embedding(x))
        return self.fc(output)
""",
        "logits for every time step",
    ),
    Mistake(
        "SequenceClassifier",
        "unpacked as h_n, c_n = self.lstm(x)",
        """
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        h_n, c_n = self.lstm(self.embedding(x))
        return self.fc(h_n)
""",
        "logits for every time step",
    ),
    Mistake(
        "SequenceClassifier",
        "fc applied to h_n with its layer dimension",
        """
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        _, (h_n, _) = self.lstm(self.embedding(x))
        return self.fc(h_n)
""",
        "take its last layer h_n[-1]",
    ),
    Mistake(
        "SequenceClassifier",
        "the tuple (h_n, c_n) passed to fc",
        """
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        _, state = self.lstm(self.embedding(x))
        return self.fc(state)
""",
        "tuple passed on",
    ),
    Mistake(
        "SequenceClassifier",
        "h_n.squeeze() drops the batch when N == 1",
        """
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        _, (h_n, _) = self.lstm(self.embedding(x))
        return self.fc(h_n.squeeze())
""",
        "dropped the batch dimension",
    ),
    Mistake(
        "SequenceClassifier",
        "the cell state c_n",
        """
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        _, (h_n, c_n) = self.lstm(self.embedding(x))
        return self.fc(c_n[-1])
""",
        "the cell state c_n used",
    ),
    Mistake(
        "SequenceClassifier",
        "the mean over time steps",
        """
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        output, _ = self.lstm(self.embedding(x))
        return self.fc(output.mean(dim=1))
""",
        "mean of output over the time steps",
    ),
    Mistake(
        "SequenceClassifier",
        "other submodule names",
        """
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.rnn = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        _, (h_n, _) = self.rnn(self.embed(x))
        return self.head(h_n[-1])
""",
        "submodules not named `embedding`, `lstm` and `fc`",
    ),
    Mistake(
        "SequenceClassifier",
        "a bidirectional LSTM",
        """
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden_size, num_classes)

    def forward(self, x):
        output, _ = self.lstm(self.embedding(x))
        return self.fc(output[:, -1])
""",
        "bidirectional LSTM",
    ),
    Mistake(
        "SequenceClassifier",
        "a 2-layer LSTM",
        """
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, num_layers=2, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        _, (h_n, _) = self.lstm(self.embedding(x))
        return self.fc(h_n[-1])
""",
        "2-layer LSTM",
    ),
    Mistake(
        "SequenceClassifier",
        "token ids converted to float",
        """
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        _, (h_n, _) = self.lstm(self.embedding(x.float()))
        return self.fc(h_n[-1])
""",
        "token ids converted to float",
    ),
    Mistake(
        "SequenceClassifier",
        "fc missing",
        """
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, num_classes, batch_first=True)

    def forward(self, x):
        _, (h_n, _) = self.lstm(self.embedding(x))
        return h_n[-1]
""",
        "fc missing",
    ),
    Mistake(
        "SequenceClassifier",
        "nn.GRU instead of nn.LSTM",
        """
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.GRU(embed_dim, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        _, h_n = self.lstm(self.embedding(x))
        return self.fc(h_n[-1])
""",
        "nn.GRU instead of nn.LSTM",
    ),
    Mistake(
        "SequenceClassifier",
        "nn.Embedding's arguments swapped",
        """
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(embed_dim, vocab_size)
        self.lstm = nn.LSTM(vocab_size, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        _, (h_n, _) = self.lstm(self.embedding(x))
        return self.fc(h_n[-1])
""",
        "nn.Embedding's arguments swapped",
    ),
    Mistake(
        "SequenceClassifier",
        "an initial state made with torch.zeros",
        """
import torch
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)
        self.hidden_size = hidden_size

    def forward(self, x):
        h0 = torch.zeros(1, x.shape[0], self.hidden_size)
        c0 = torch.zeros(1, x.shape[0], self.hidden_size)
        _, (h_n, _) = self.lstm(self.embedding(x), (h0, c0))
        return self.fc(h_n[-1])
""",
        "initial state (h0, c0) created without the input's dtype or device",
    ),
    Mistake(
        "SequenceClassifier",
        "an initial state on the right device, in float32",
        """
import torch
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)
        self.hidden_size = hidden_size

    def forward(self, x):
        h0 = torch.zeros(1, x.shape[0], self.hidden_size, device=x.device)
        _, (h_n, _) = self.lstm(self.embedding(x), (h0, h0))
        return self.fc(h_n[-1])
""",
        "initial state (h0, c0) created without the input's dtype or device",
    ),
    Mistake(
        "SequenceClassifier",
        "an initial state in the right dtype, on the default device",
        """
import torch
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        embedded = self.embedding(x)
        h0 = torch.zeros(1, x.shape[0], self.lstm.hidden_size, dtype=embedded.dtype)
        _, (h_n, _) = self.lstm(embedded, (h0, torch.zeros_like(h0)))
        return self.fc(h_n[-1])
""",
        "not at the same device",
    ),
    Mistake(
        "SequenceClassifier",
        "predicted classes returned",
        """
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        _, (h_n, _) = self.lstm(self.embedding(x))
        return self.fc(h_n[-1]).argmax(dim=-1)
""",
        "predicted classes returned (argmax)",
    ),
    Mistake(
        "SequenceClassifier",
        "forward under no_grad",
        """
import torch
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        with torch.no_grad():
            _, (h_n, _) = self.lstm(self.embedding(x))
            return self.fc(h_n[-1])
""",
        "torch.no_grad()",
    ),
]

ALTERNATIVES = [
    Alternative(
        "MLP",
        "an nn.ReLU submodule between the layers",
        """
from torch import nn


class MLP(nn.Module):
    def __init__(self, in_features, hidden_features, out_features):
        super().__init__()
        self.hidden = nn.Linear(in_features, hidden_features)
        self.act = nn.ReLU()
        self.out = nn.Linear(hidden_features, out_features)

    def forward(self, x):
        return self.out(self.act(self.hidden(x)))
""",
    ),
    Alternative(
        "MLP",
        "an nn.Sequential subclass built from an OrderedDict",
        """
from collections import OrderedDict

from torch import nn


class MLP(nn.Sequential):
    def __init__(self, in_features, hidden_features, out_features):
        super().__init__(
            OrderedDict(
                hidden=nn.Linear(in_features, hidden_features),
                relu=nn.ReLU(),
                out=nn.Linear(hidden_features, out_features),
            )
        )
""",
    ),
    Alternative(
        "MySequential",
        "self._modules[str(i)] and a loop with an index",
        """
from torch import nn


class MySequential(nn.Module):
    def __init__(self, *modules):
        super().__init__()
        for idx, module in enumerate(modules):
            self._modules[str(idx)] = module

    def forward(self, x):
        for idx in range(len(self)):
            x = self[idx](x)
        return x

    def __len__(self):
        return len(self._modules)

    def __getitem__(self, idx):
        if idx < 0:
            idx += len(self)
        return self._modules[str(idx)]
""",
    ),
    Alternative(
        "MySequential",
        "setattr and children()",
        """
from torch import nn


class MySequential(nn.Module):
    def __init__(self, *modules):
        super().__init__()
        for i, module in enumerate(modules):
            setattr(self, str(i), module)

    def forward(self, x):
        for module in self.children():
            x = module(x)
        return x

    def __len__(self):
        return sum(1 for _ in self.children())

    def __getitem__(self, idx):
        return getattr(self, str(range(len(self))[idx]))
""",
    ),
    Alternative(
        "ParallelConcat",
        "add_module and children()",
        """
import torch
from torch import nn


class ParallelConcat(nn.Module):
    def __init__(self, *branches):
        super().__init__()
        for i, branch in enumerate(branches):
            self.add_module(f"branch{i}", branch)

    def forward(self, x):
        return torch.cat(tuple(branch(x) for branch in self.children()), dim=x.dim() - 1)
""",
    ),
    Alternative(
        "ParallelConcat",
        "nn.ModuleDict and torch.concat",
        """
import torch
from torch import nn


class ParallelConcat(nn.Module):
    def __init__(self, *branches):
        super().__init__()
        self.branches = nn.ModuleDict({f"b{i}": b for i, b in enumerate(branches)})

    def forward(self, x):
        outputs = [self.branches[f"b{i}"](x) for i in range(len(self.branches))]
        return torch.concat(outputs, dim=-1)
""",
    ),
    Alternative(
        "FixedHiddenMLP",
        "torch.matmul, clamp and a norm in the loop",
        """
import torch
from torch import nn


class FixedHiddenMLP(nn.Module):
    def __init__(self, features=20):
        super().__init__()
        self.linear = nn.Linear(features, features)
        self.register_buffer("rand_weight", torch.rand((features, features)))

    def forward(self, X):
        X = self.linear(X)
        X = torch.clamp(torch.matmul(X, self.rand_weight) + 1, min=0)
        X = self.linear(X)
        while torch.linalg.vector_norm(X, ord=1) > 1:
            X = X * 0.5
        return torch.sum(X)
""",
    ),
    Alternative(
        "FixedHiddenMLP",
        "a buffer assigned after registering None, and a for loop over the two uses",
        """
import torch
from torch import nn


class FixedHiddenMLP(nn.Module):
    def __init__(self, features=20):
        super().__init__()
        self.register_buffer("rand_weight", None)
        self.rand_weight = torch.rand(features, features)
        self.linear = nn.Linear(features, features)

    def forward(self, X):
        for step in range(2):
            X = self.linear(X)
            if step == 0:
                X = (X @ self.rand_weight + 1).relu()
        while X.abs().sum().item() > 1:
            X /= 2
        return X.sum()
""",
    ),
    Alternative(
        "SequenceClassifier",
        "output[:, -1] (the same numbers as h_n[-1] for one layer, one direction)",
        """
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        output, _ = self.lstm(self.embedding(x))
        return self.fc(output[:, -1])
""",
    ),
    Alternative(
        "SequenceClassifier",
        "_, (h, _) = ... and h.squeeze(0)",
        """
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        _, (h, _) = self.lstm(self.embedding(x))
        return self.fc(h.squeeze(0))
""",
    ),
    Alternative(
        "SequenceClassifier",
        "indexing the tuple: self.lstm(...)[1][0][-1]",
        """
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        return self.fc(self.lstm(self.embedding(x))[1][0][-1])
""",
    ),
    Alternative(
        "SequenceClassifier",
        "a time-first LSTM fed the transposed embeddings",
        """
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        embedded = self.embedding(x).transpose(0, 1)  # (L, N, embed_dim): time first
        _, (h_n, _) = self.lstm(embedded)
        return self.fc(h_n[0])
""",
    ),
    Alternative(
        "SequenceClassifier",
        "an explicit zero initial state made like the input, padding_idx and F.linear",
        """
import torch.nn.functional as F
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.lstm = nn.LSTM(input_size=embed_dim, hidden_size=hidden_size, num_layers=1, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        embedded = self.embedding(x)
        state = embedded.new_zeros(1, x.shape[0], self.lstm.hidden_size)
        output, (h_n, c_n) = self.lstm(embedded, (state, state.clone()))
        return F.linear(h_n[-1], self.fc.weight, self.fc.bias)
""",
    ),
    Alternative(
        "SequenceClassifier",
        "keyword arguments and h_n.reshape(N, hidden_size)",
        """
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, vocab_size, embed_dim, hidden_size, num_classes):
        super().__init__()
        self.embedding = nn.Embedding(num_embeddings=vocab_size, embedding_dim=embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True, bias=True)
        self.fc = nn.Linear(in_features=hidden_size, out_features=num_classes)

    def forward(self, x):
        output, (h_n, _) = self.lstm(self.embedding(x))
        return self.fc(h_n.reshape(x.shape[0], h_n.shape[-1]))
""",
    ),
]
