"""09_training_loops: the contract's mistakes for train_one_epoch, evaluate and classification_metrics,
and other common ones (wrong averages, missing step, tensors returned, macro F1 from macro P and R)."""

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
