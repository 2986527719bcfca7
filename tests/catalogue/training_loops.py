"""09_training_loops: the contract's mistakes for train_one_epoch, evaluate, predict_proba, fit and
classification_metrics, and other common ones (wrong averages, missing step, tensors returned, argmax or
sigmoid instead of softmax, the best epoch by accuracy, patience not reset, clip_grad_value_, macro F1 from
macro P and R)."""

from tests.catalogue import Alternative, Mistake

NOTEBOOK = "09_training_loops"


def _edit(template: str, **replace: str) -> str:
    """``template`` with each line tagged ``# TAG`` replaced by ``replace[TAG]`` (several lines, or none
    when empty) and the tags of the other lines removed."""
    lines = []
    for line in template.splitlines():
        code, _, tag = line.partition("  # ")
        if tag in replace:
            indent = line[: len(line) - len(line.lstrip())]
            lines.extend(indent + part for part in replace[tag].split("\n") if replace[tag])
        else:
            lines.append(code)
    return "\n".join(lines) + "\n"


# A correct train_one_epoch; each mistake below replaces one marked line (or adds one).
_TRAIN = """
def train_one_epoch(model, loader, loss_fn, optimizer, device):
    model.train()  # MODE
    total, count = 0.0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)  # MOVE
        optimizer.zero_grad()  # ZERO
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()  # STEP
        total += loss.item() * len(x)  # TOTAL
        count += len(x)
    return total / count  # RETURN
"""


# A correct evaluate; each mistake below replaces one marked line.
_EVALUATE = """
import torch


def evaluate(model, loader, loss_fn, device):
    was_training = model.training  # REMEMBER
    model.eval()  # MODE
    total, correct, count = 0.0, 0, 0
    with torch.no_grad():  # NOGRAD
        for x, y in loader:
            x, y = x.to(device), y.to(device)  # MOVE
            logits = model(x)
            total += loss_fn(logits, y).item() * len(y)  # TOTAL
            correct += (logits.argmax(dim=1) == y).sum().item()
            count += len(y)
    model.train(was_training)  # RESTORE
    return {"loss": total / count, "accuracy": correct / count}  # RETURN
"""


# A correct classification_metrics from per-class counts; each mistake below replaces marked lines.
_METRICS = """
import torch


def classification_metrics(logits, targets, num_classes):
    preds = logits.argmax(dim=1)  # PREDS
    tp = torch.stack([((preds == c) & (targets == c)).sum() for c in range(num_classes)]).double()
    predicted = torch.stack([(preds == c).sum() for c in range(num_classes)]).double()
    actual = torch.stack([(targets == c).sum() for c in range(num_classes)]).double()
    precision = tp / predicted.clamp(min=1)  # PRECISION
    recall = tp / actual.clamp(min=1)  # RECALL
    f1 = 2 * tp / (predicted + actual).clamp(min=1)  # F1

    def average(values):
        return values.mean().item()  # AVERAGE

    return {
        "accuracy": (preds == targets).double().mean().item(),
        "precision": average(precision),
        "recall": average(recall),
        "f1": average(f1),
    }
"""


# A correct predict_proba; each mistake below replaces marked lines.
_PROBA = """
import torch


def predict_proba(model, x):
    modes = [module.training for module in model.modules()]  # REMEMBER
    model.eval()  # MODE
    device = next(model.parameters()).device
    with torch.no_grad():  # NOGRAD
        logits = model(x.to(device))  # FORWARD
        probabilities = logits.softmax(dim=1)  # SOFTMAX
    for module, training in zip(model.modules(), modes):  # RESTORE
        module.train(training)  # EACH
    return probabilities
"""


# A correct fit with the epoch's loops written inline; each mistake below replaces marked lines.
_FIT = """
import copy

import torch


def fit(model, train_loader, val_loader, loss_fn, optimizer, device, epochs,
        scheduler=None, patience=None, max_grad_norm=None):
    history = {"train_loss": [], "val_loss": [], "val_accuracy": []}
    best_loss, best_epoch, best_state, waited = float("inf"), 0, None, 0  # INIT
    for epoch in range(epochs):
        model.train()  # TRAIN
        total, count = 0.0, 0
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()  # ZERO
            loss = loss_fn(model(x), y)  # LOSS
            loss.backward()
            if max_grad_norm is not None:  # CLIP
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)  # CLIP_CALL
            optimizer.step()  # STEP
            total += loss.item() * len(x)  # TOTAL
            count += len(x)
        history["train_loss"].append(total / count)  # TRAIN_LOSS
        model.eval()  # EVAL
        total, correct, count = 0.0, 0, 0
        with torch.no_grad():  # NOGRAD
            for x, y in val_loader:
                x, y = x.to(device), y.to(device)
                logits = model(x)
                total += loss_fn(logits, y).item() * len(y)
                correct += (logits.argmax(dim=1) == y).sum().item()
                count += len(y)
        history["val_loss"].append(total / count)
        history["val_accuracy"].append(correct / count)
        if scheduler is not None:  # SCHEDULER
            scheduler.step()  # SCHEDULER_STEP
        if history["val_loss"][-1] < best_loss:  # IMPROVED
            best_loss, best_epoch, waited = history["val_loss"][-1], epoch, 0  # NEW_BEST
            best_state = copy.deepcopy(model.state_dict())  # SAVE
        else:
            waited += 1
            if patience is not None and waited >= patience:  # STOP
                break
    model.load_state_dict(best_state)  # RESTORE
    history["best_epoch"] = best_epoch  # BEST_EPOCH
    return history
"""

_CLIP = "if max_grad_norm is not None:\n    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)"

# Epoch functions like the notebook's, for the fits below that call them (a catalogue entry is a whole
# solution cell: it defines what it uses); tests/test_data_training.py gives them to course_lib's fit too.
HELPERS = """
import torch


def train_one_epoch(model, loader, loss_fn, optimizer, device):
    model.train()
    total, count = 0.0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(x)
        count += len(x)
    return total / count


def evaluate(model, loader, loss_fn, device):
    was_training = model.training
    model.eval()
    total, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            logits = model(x)
            total += loss_fn(logits, y).item() * len(y)
            correct += (logits.argmax(dim=1) == y).sum().item()
            count += len(y)
    model.train(was_training)
    return {"loss": total / count, "accuracy": correct / count}
"""

MISTAKES = [
    # train_one_epoch: the contract's five
    Mistake("train_one_epoch", "no zero_grad", _edit(_TRAIN, ZERO=""), "no zero_grad"),
    Mistake("train_one_epoch", "model left in eval mode", _edit(_TRAIN, MODE=""), "model left in eval mode"),
    Mistake(
        "train_one_epoch",
        "mean of batch means",
        _edit(_TRAIN, TOTAL="total += loss.item()", RETURN="return total / len(loader)"),
        "mean of batch means",
    ),
    Mistake(
        "train_one_epoch",
        "loss tensors accumulated, tensor returned",
        _edit(_TRAIN, TOTAL="total += loss * len(x)"),
        "loss tensors accumulated (graph kept) instead of .item()",
    ),
    Mistake(
        "train_one_epoch",
        "loss tensors kept in a list, float returned",
        _edit(
            _TRAIN,
            MODE="model.train()\nlosses = []",
            TOTAL="losses.append(loss * len(x))",
            RETURN="return sum(losses).item() / count",
        ),
        "loss tensors accumulated (graph kept) instead of .item()",
    ),
    Mistake(
        "train_one_epoch",
        "data not moved to the device",
        _edit(_TRAIN, MOVE=""),
        "data not moved to the device",
    ),
    Mistake(
        "train_one_epoch",
        "only the inputs moved to the device",
        _edit(_TRAIN, MOVE="x = x.to(device)"),
        "data not moved to the device",
    ),
    # train_one_epoch: more
    Mistake(
        "train_one_epoch",
        "zero_grad once before the loop",
        _edit(_TRAIN, MODE="model.train()\noptimizer.zero_grad()", ZERO=""),
        "no zero_grad",
    ),
    Mistake("train_one_epoch", "no optimizer.step()", _edit(_TRAIN, STEP=""), "optimizer.step() not called"),
    Mistake(
        "train_one_epoch",
        "gradients zeroed between backward and step",
        _edit(_TRAIN, STEP="optimizer.zero_grad()\noptimizer.step()"),
        "gradients zeroed between backward() and step()",
    ),
    Mistake(
        "train_one_epoch",
        "last batch's loss returned",
        _edit(_TRAIN, RETURN="return loss.item()"),
        "only the last batch's loss returned",
    ),
    Mistake(
        "train_one_epoch",
        "detached loss tensors summed, tensor returned",
        _edit(_TRAIN, TOTAL="total += loss.detach() * len(x)"),
        "a tensor returned instead of a Python float",
    ),
    Mistake(
        "train_one_epoch",
        "divided by len(loader) * batch_size",
        _edit(_TRAIN, RETURN="return total / (len(loader) * loader.batch_size)"),
        "overcounts a smaller last batch",
    ),
    Mistake("train_one_epoch", "no return", _edit(_TRAIN, RETURN=""), "did you forget `return`"),
    # evaluate: the contract's three
    Mistake("evaluate", "dropout left active", _edit(_EVALUATE, MODE=""), "dropout left active"),
    Mistake("evaluate", "gradients tracked", _edit(_EVALUATE, NOGRAD="if True:"), "gradients tracked"),
    Mistake("evaluate", "mode not restored", _edit(_EVALUATE, RESTORE=""), "mode not restored"),
    Mistake(
        "evaluate",
        "always back to train mode",
        _edit(_EVALUATE, RESTORE="model.train()"),
        "mode not restored",
    ),
    # evaluate: more
    Mistake(
        "evaluate",
        "mean of batch means",
        _edit(
            _EVALUATE,
            TOTAL="total += loss_fn(logits, y).item()",
            RETURN='return {"loss": total / len(loader), "accuracy": correct / count}',
        ),
        "mean of batch means",
    ),
    Mistake(
        "evaluate",
        "accuracy as a percentage",
        _edit(_EVALUATE, RETURN='return {"loss": total / count, "accuracy": 100 * correct / count}'),
        "accuracy given as a percentage",
    ),
    Mistake(
        "evaluate",
        "tensors returned",
        _edit(
            _EVALUATE,
            TOTAL="total += loss_fn(logits, y) * len(y)",
            RETURN='return {"loss": total / count, "accuracy": torch.tensor(correct / count)}',
        ),
        "a tensor returned instead of a Python float",
    ),
    Mistake(
        "evaluate", "data not moved to the device", _edit(_EVALUATE, MOVE=""), "data not moved to the device"
    ),
    # predict_proba: the contract's four
    Mistake(
        "predict_proba",
        "softmax over dim 0",
        _edit(_PROBA, SOFTMAX="probabilities = logits.softmax(dim=0)"),
        "softmax over dim 0",
    ),
    Mistake(
        "predict_proba",
        "log-probabilities returned",
        _edit(_PROBA, SOFTMAX="probabilities = logits.log_softmax(dim=1)"),
        "log-probabilities returned",
    ),
    Mistake("predict_proba", "gradients tracked", _edit(_PROBA, NOGRAD="if True:"), "gradients tracked"),
    Mistake("predict_proba", "mode not restored", _edit(_PROBA, RESTORE="", EACH=""), "mode not restored"),
    # predict_proba: more
    Mistake("predict_proba", "dropout left active", _edit(_PROBA, MODE=""), "dropout left active"),
    Mistake(
        "predict_proba",
        "sigmoid instead of softmax",
        _edit(_PROBA, SOFTMAX="probabilities = torch.sigmoid(logits)"),
        "sigmoid instead of softmax",
    ),
    Mistake(
        "predict_proba",
        "argmax returned",
        _edit(_PROBA, SOFTMAX="probabilities = logits.argmax(dim=1)"),
        "argmax returned",
    ),
    Mistake(
        "predict_proba",
        "x not moved to the model's device",
        _edit(_PROBA, FORWARD="logits = model(x)"),
        "x not moved to the model's device",
    ),
    Mistake(
        "predict_proba",
        "mode restored only at the top level",
        _edit(
            _PROBA,
            REMEMBER="was_training = model.training",
            RESTORE="model.train(was_training)",
            EACH="",
        ),
        "mode restored only at the top level",
    ),
    Mistake(
        "predict_proba",
        "always back to train mode",
        _edit(_PROBA, REMEMBER="", RESTORE="model.train()", EACH=""),
        "mode not restored",
    ),
    Mistake(
        "predict_proba",
        "detach instead of no_grad",
        _edit(_PROBA, NOGRAD="if True:", SOFTMAX="probabilities = logits.softmax(dim=1).detach()"),
        "gradients tracked",
    ),
    Mistake(
        "predict_proba",
        "logits returned",
        _edit(_PROBA, SOFTMAX="probabilities = logits"),
        "without softmax",
    ),
    # fit: the contract's mistakes
    Mistake(
        "fit",
        "scheduler stepped per batch",
        _edit(
            _FIT,
            STEP="optimizer.step()\nif scheduler is not None:\n    scheduler.step()",
            SCHEDULER="",
            SCHEDULER_STEP="",
        ),
        "scheduler stepped per batch",
    ),
    Mistake(
        "fit",
        "best weights kept by reference",
        _edit(_FIT, SAVE="best_state = model.state_dict()"),
        "best weights kept by reference",
    ),
    Mistake(
        "fit",
        "early stopping one epoch late",
        _edit(_FIT, STOP="if patience is not None and waited > patience:"),
        "early stopping one epoch late",
    ),
    Mistake(
        "fit",
        "early stopping one epoch early",
        _edit(_FIT, STOP="if patience is not None and waited >= patience - 1:"),
        "early stopping one epoch early",
    ),
    Mistake(
        "fit",
        "clipping before backward",
        _edit(_FIT, LOSS="loss = loss_fn(model(x), y)\n" + _CLIP, CLIP="", CLIP_CALL=""),
        "clipping before backward",
    ),
    Mistake(
        "fit",
        "clipping after step",
        _edit(_FIT, STEP="optimizer.step()\n" + _CLIP, CLIP="", CLIP_CALL=""),
        "clipping after step",
    ),
    Mistake(
        "fit",
        "validation run in training mode",
        _edit(_FIT, EVAL=""),
        "validation run in training mode",
    ),
    # fit: more
    Mistake(
        "fit",
        "best epoch by the highest accuracy",
        _edit(
            _FIT,
            INIT="best_accuracy, best_epoch, best_state, waited = -1.0, 0, None, 0",
            IMPROVED='if history["val_accuracy"][-1] > best_accuracy:',
            NEW_BEST='best_accuracy, best_epoch, waited = history["val_accuracy"][-1], epoch, 0',
        ),
        "chosen by the highest validation accuracy",
    ),
    Mistake(
        "fit",
        "last epoch kept",
        _edit(_FIT, RESTORE="", BEST_EPOCH='history["best_epoch"] = epoch'),
        "the last epoch reported as the best",
    ),
    Mistake("fit", "no zero_grad", _edit(_FIT, ZERO=""), "no zero_grad"),
    Mistake(
        "fit",
        "history of batch losses",
        _edit(
            _FIT,
            TOTAL='total += loss.item() * len(x)\nhistory["train_loss"].append(loss.item())',
            TRAIN_LOSS="",
        ),
        "history of batch losses",
    ),
    Mistake(
        "fit",
        "model not put back in train mode each epoch",
        _edit(
            _FIT,
            INIT='model.train()\nbest_loss, best_epoch, best_state, waited = float("inf"), 0, None, 0',
            TRAIN="",
        ),
        "model not put back in train mode at the start of each epoch",
    ),
    Mistake(
        "fit",
        "copy.deepcopy(model) rebound instead of loaded",
        _edit(_FIT, SAVE="best_model = copy.deepcopy(model)", RESTORE="model = best_model"),
        "never loaded back into the model you were given",
    ),
    Mistake(
        "fit",
        "best_epoch counted from 1",
        _edit(_FIT, BEST_EPOCH='history["best_epoch"] = best_epoch + 1'),
        "best_epoch counted from 1",
    ),
    Mistake("fit", "gradients tracked in validation", _edit(_FIT, NOGRAD="if True:"), "gradients tracked"),
    Mistake(
        "fit",
        "patience counter not reset",
        _edit(_FIT, NEW_BEST='best_loss, best_epoch = history["val_loss"][-1], epoch'),
        "not reset to 0",
    ),
    Mistake("fit", "patience ignored", _edit(_FIT, STOP="if False:"), "patience ignored"),
    Mistake(
        "fit",
        "clip_grad_value_ instead of clip_grad_norm_",
        _edit(_FIT, CLIP_CALL="torch.nn.utils.clip_grad_value_(model.parameters(), max_grad_norm)"),
        "clip_grad_value_ used",
    ),
    Mistake(
        "fit",
        "each parameter clipped on its own",
        _edit(
            _FIT,
            CLIP_CALL="for parameter in model.parameters():\n"
            "    torch.nn.utils.clip_grad_norm_(parameter, max_grad_norm)",
        ),
        "clipped on its own",
    ),
    Mistake(
        "fit",
        "scheduler never stepped",
        _edit(_FIT, SCHEDULER="", SCHEDULER_STEP=""),
        "scheduler never stepped",
    ),
    Mistake(
        "fit",
        "scheduler stepped before the epoch's training",
        _edit(
            _FIT,
            TRAIN="if scheduler is not None:\n    scheduler.step()\nmodel.train()",
            SCHEDULER="",
            SCHEDULER_STEP="",
        ),
        "scheduler stepped before the epoch's optimizer steps",
    ),
    Mistake(
        "fit",
        "scheduler stepped although None",
        _edit(_FIT, SCHEDULER="scheduler.step()", SCHEDULER_STEP=""),
        "scheduler.step() called although scheduler is None",
    ),
    Mistake(
        "fit",
        "validation before training",
        HELPERS
        + """

def fit(model, train_loader, val_loader, loss_fn, optimizer, device, epochs,
        scheduler=None, patience=None, max_grad_norm=None):
    history = {"train_loss": [], "val_loss": [], "val_accuracy": []}
    best_loss, best_epoch, best_state = float("inf"), 0, None
    for epoch in range(epochs):
        metrics = evaluate(model, val_loader, loss_fn, device)
        history["train_loss"].append(train_one_epoch(model, train_loader, loss_fn, optimizer, device))
        history["val_loss"].append(metrics["loss"])
        history["val_accuracy"].append(metrics["accuracy"])
        if metrics["loss"] < best_loss:
            best_loss, best_epoch = metrics["loss"], epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return {**history, "best_epoch": best_epoch}
""",
        "validation run before the epoch's training",
    ),
    Mistake(
        "fit",
        "built on train_one_epoch, max_grad_norm ignored",
        HELPERS
        + """

def fit(model, train_loader, val_loader, loss_fn, optimizer, device, epochs,
        scheduler=None, patience=None, max_grad_norm=None):
    history = {"train_loss": [], "val_loss": [], "val_accuracy": []}
    best_loss, best_epoch, best_state, waited = float("inf"), 0, None, 0
    for epoch in range(epochs):
        history["train_loss"].append(train_one_epoch(model, train_loader, loss_fn, optimizer, device))
        metrics = evaluate(model, val_loader, loss_fn, device)
        history["val_loss"].append(metrics["loss"])
        history["val_accuracy"].append(metrics["accuracy"])
        if scheduler is not None:
            scheduler.step()
        if metrics["loss"] < best_loss:
            best_loss, best_epoch, waited = metrics["loss"], epoch, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
            if patience is not None and waited >= patience:
                break
    model.load_state_dict(best_state)
    return {**history, "best_epoch": best_epoch}
""",
        "train_one_epoch cannot clip",
    ),
    Mistake(
        "fit",
        "mean of batch means",
        _edit(
            _FIT,
            TOTAL="total += loss.item()",
            TRAIN_LOSS='history["train_loss"].append(total / len(train_loader))',
        ),
        "mean of batch means",
    ),
    # classification_metrics: the contract's three
    Mistake(
        "classification_metrics",
        "micro averaging",
        _edit(
            _METRICS,
            PRECISION="precision = tp.sum() / predicted.sum()",
            RECALL="recall = tp.sum() / actual.sum()",
            F1="f1 = 2 * tp.sum() / (predicted + actual).sum()",
        ),
        "micro averaging",
    ),
    Mistake(
        "classification_metrics",
        "NaN for a class never predicted",
        _edit(
            _METRICS,
            PRECISION="precision = tp / predicted",
            F1="f1 = 2 * precision * recall / (precision + recall)",
        ),
        "NaN",
    ),
    Mistake(
        "classification_metrics",
        "argmax over the wrong dimension",
        _edit(_METRICS, PREDS="preds = logits.argmax(dim=0)"),
        "argmax over the wrong dimension",
    ),
    # classification_metrics: more
    Mistake(
        "classification_metrics",
        "f1 from macro precision and recall",
        _edit(_METRICS, F1="f1 = 2 * precision.mean() * recall.mean() / (precision.mean() + recall.mean())"),
        "f1 computed from the macro precision and recall",
    ),
    Mistake(
        "classification_metrics",
        "classes never predicted left out (nanmean)",
        _edit(
            _METRICS,
            PRECISION="precision = tp / predicted\n"
            "precision = precision.nan_to_num(nan=precision.nanmean().item())",
        ),
        "left out of the mean instead of counted as 0",
    ),
    Mistake(
        "classification_metrics",
        "weighted averaging",
        _edit(_METRICS, AVERAGE="return (values * actual / actual.sum()).sum().item()"),
        "weighted averaging",
    ),
    Mistake(
        "classification_metrics",
        "only the classes present in targets",
        _edit(_METRICS, AVERAGE="return values[actual > 0].mean().item()"),
        "only the classes present in targets averaged",
    ),
    Mistake(
        "classification_metrics",
        "tensors returned",
        """
def classification_metrics(logits, targets, num_classes):
    preds = logits.argmax(dim=1)
    return {"accuracy": (preds == targets).float().mean(), "precision": 0.0, "recall": 0.0, "f1": 0.0}
""",
        "a tensor returned instead of a Python float",
    ),
]

ALTERNATIVES = [
    Alternative(
        "train_one_epoch",
        "batch as a list, zero_grad after step as in PyTorch's tutorial, len(loader.dataset)",
        """
def train_one_epoch(model, loader, loss_fn, optimizer, device):
    model.train()
    running = 0.0
    for batch in loader:
        batch = [t.to(device) for t in batch]
        inputs, targets = batch
        outputs = model(inputs)
        loss = loss_fn(outputs, targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        running += loss.item() * inputs.size(0)
    return running / len(loader.dataset)
""",
    ),
    Alternative(
        "train_one_epoch",
        "flatten before moving, to(device=..., non_blocking=True), model.zero_grad, losses in a list",
        """
import math


def train_one_epoch(model, loader, loss_fn, optimizer, device):
    model.train(True)
    weighted, sizes = [], []
    for step, (x, y) in enumerate(loader):
        x = x.view(x.shape[0], -1).to(device=device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        model.zero_grad(set_to_none=True)
        prediction = model(x)
        loss = loss_fn(prediction, y)
        loss.backward()
        optimizer.step()
        weighted.append(loss.detach().item() * y.shape[0])
        sizes.append(y.shape[0])
    return math.fsum(weighted) / sum(sizes)
""",
    ),
    Alternative(
        "evaluate",
        "inference_mode, try/finally, batch list",
        """
import torch


def evaluate(model, loader, loss_fn, device):
    was_training = model.training
    model.eval()
    try:
        loss_sum, hits, seen = 0.0, 0, 0
        with torch.inference_mode():
            for batch in loader:
                x, y = (t.to(device) for t in batch)
                out = model(x)
                loss_sum += loss_fn(out, y).item() * y.numel()
                hits += int((out.argmax(-1) == y).sum())
                seen += y.numel()
        return {"loss": loss_sum / seen, "accuracy": hits / seen}
    finally:
        model.train(was_training)
""",
    ),
    Alternative(
        "evaluate",
        "concatenate all logits, one loss call",
        """
import torch


def evaluate(model, loader, loss_fn, device):
    mode = model.training
    model.eval()
    all_logits, all_targets = [], []
    with torch.no_grad():
        for x, y in loader:
            all_logits.append(model(x.to(device)))
            all_targets.append(y.to(device))
    model.train(mode)
    logits, targets = torch.cat(all_logits), torch.cat(all_targets)
    loss = loss_fn(logits, targets).item()
    accuracy = (logits.argmax(dim=1) == targets).float().mean().item()
    return {"loss": loss, "accuracy": accuracy}
""",
    ),
    Alternative(
        "predict_proba",
        "inference_mode, F.softmax over the last dim, modes in a dict, try/finally",
        """
import torch
import torch.nn.functional as F


def predict_proba(model, x):
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with torch.inference_mode():
            return F.softmax(model(x.to(next(model.parameters()))), dim=-1)
    finally:
        for module, training in modes.items():
            module.training = training
""",
    ),
    Alternative(
        "predict_proba",
        "exp of log_softmax, device as a keyword",
        """
import torch


def predict_proba(model, x):
    saved = [m.training for m in model.modules()]
    model.train(False)
    with torch.no_grad():
        parameter = next(iter(model.parameters()))
        probabilities = torch.exp(torch.log_softmax(model(x.to(device=parameter.device)), dim=1))
    for module, mode in zip(model.modules(), saved):
        module.training = mode
    return probabilities
""",
    ),
    Alternative(
        "fit",
        "built on train_one_epoch and evaluate, an inline loop when clipping, a deep-copied model",
        HELPERS
        + """
import copy


def fit(model, train_loader, val_loader, loss_fn, optimizer, device, epochs,
        scheduler=None, patience=None, max_grad_norm=None):
    history = {"train_loss": [], "val_loss": [], "val_accuracy": []}
    best_epoch, best_model = None, None
    for epoch in range(epochs):
        if max_grad_norm is None:
            train_loss = train_one_epoch(model, train_loader, loss_fn, optimizer, device)
        else:
            model.train()
            total, count = 0.0, 0
            for x, y in train_loader:
                x, y = x.to(device), y.to(device)
                optimizer.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=max_grad_norm)
                optimizer.step()
                total += loss.item() * len(y)
                count += len(y)
            train_loss = total / count
        metrics = evaluate(model, val_loader, loss_fn, device)
        if scheduler is not None:
            scheduler.step()
        history["train_loss"].append(train_loss)
        history["val_loss"].append(metrics["loss"])
        history["val_accuracy"].append(metrics["accuracy"])
        if best_epoch is None or metrics["loss"] < history["val_loss"][best_epoch]:
            best_epoch, best_model = epoch, copy.deepcopy(model)
        elif patience is not None and epoch - best_epoch >= patience:
            break
    model.load_state_dict(best_model.state_dict())
    history["best_epoch"] = best_epoch
    return history
""",
    ),
    Alternative(
        "fit",
        "every epoch's weights kept, argmin at the end, zero_grad(set_to_none=False), one loss per epoch",
        """
import numpy as np
import torch


def fit(model, train_loader, val_loader, loss_fn, optimizer, device, epochs,
        scheduler=None, patience=None, max_grad_norm=None):
    train_losses, val_losses, accuracies, states = [], [], [], []
    for epoch in range(epochs):
        model.train()
        weighted = []
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad(set_to_none=False)
            loss = loss_fn(model(x), y)
            loss.backward()
            if max_grad_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm, norm_type=2.0)
            optimizer.step()
            weighted.append((loss.item() * len(x), len(x)))
        train_losses.append(sum(w for w, _ in weighted) / sum(n for _, n in weighted))
        if scheduler:
            scheduler.step()
        model.eval()
        with torch.inference_mode():
            pairs = [(model(x.to(device)), y.to(device)) for x, y in val_loader]
            logits = torch.cat([p for p, _ in pairs])
            targets = torch.cat([t for _, t in pairs])
            val_losses.append(loss_fn(logits, targets).item())
            accuracies.append((logits.argmax(1) == targets).float().mean().item())
        states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        best = int(np.argmin(val_losses))
        if patience is not None and len(val_losses) - 1 - best >= patience:
            break
    best = int(np.argmin(val_losses))
    model.load_state_dict(states[best])
    history = {"train_loss": train_losses, "val_loss": val_losses, "val_accuracy": accuracies}
    return {**history, "best_epoch": best}
""",
    ),
    Alternative(
        "classification_metrics",
        "confusion matrix with bincount",
        """
import torch


def classification_metrics(logits, targets, num_classes):
    preds = logits.argmax(dim=1)
    confusion = torch.bincount(targets * num_classes + preds, minlength=num_classes**2)
    confusion = confusion.reshape(num_classes, num_classes).double()
    tp = confusion.diagonal()
    predicted, actual = confusion.sum(dim=0), confusion.sum(dim=1)
    precision = torch.where(predicted > 0, tp / predicted, torch.zeros_like(tp))
    recall = torch.where(actual > 0, tp / actual, torch.zeros_like(tp))
    both = precision + recall
    f1 = torch.where(both > 0, 2 * precision * recall / both, torch.zeros_like(tp))
    return {
        "accuracy": (tp.sum() / confusion.sum()).item(),
        "precision": precision.mean().item(),
        "recall": recall.mean().item(),
        "f1": f1.mean().item(),
    }
""",
    ),
    Alternative(
        "classification_metrics",
        "plain Python loop over classes",
        """
def classification_metrics(logits, targets, num_classes):
    preds = logits.argmax(1).tolist()
    truth = targets.tolist()
    precisions, recalls, f1s = [], [], []
    for c in range(num_classes):
        tp = sum(p == c and t == c for p, t in zip(preds, truth))
        fp = sum(p == c and t != c for p, t in zip(preds, truth))
        fn = sum(p != c and t == c for p, t in zip(preds, truth))
        precisions.append(tp / (tp + fp) if tp + fp else 0.0)
        recalls.append(tp / (tp + fn) if tp + fn else 0.0)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    accuracy = sum(p == t for p, t in zip(preds, truth)) / len(truth)
    return {
        "accuracy": accuracy,
        "precision": sum(precisions) / num_classes,
        "recall": sum(recalls) / num_classes,
        "f1": sum(f1s) / num_classes,
    }
""",
    ),
]
