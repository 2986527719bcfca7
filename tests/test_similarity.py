"""Does the similarity pass rank copied submissions first, renamed variables included, and keep
independent solutions of the same exercises below its default threshold?"""

from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest

from autograder.authoring import notebooks as nbtools
from autograder.engine.record import Record
from autograder.reporting import similarity
from tests.helpers import ROOT, make_course, student_notebook, tool_env

# A class of four students who solved 01_linear independently, each in their own style, and two who copied:
# one renamed every variable and added comments, the other handed in Ben's cells as they were.
ANA = {
    "linear_forward": '''
def linear_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    y = x @ weight.T
    if bias is not None:
        y = y + bias
    return y
''',
    "make_linear": '''
def make_linear(weight: torch.Tensor, bias: torch.Tensor | None = None) -> nn.Linear:
    out_features, in_features = weight.shape
    layer = nn.Linear(
        in_features, out_features, bias=bias is not None, device=weight.device, dtype=weight.dtype
    )
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer
''',
    "linear_param_count": '''
def linear_param_count(in_features: int, out_features: int, bias: bool = True) -> int:
    return out_features * in_features + (out_features if bias else 0)
''',
}
# Ana's notebook with every name changed and comments added: a copy.
ANA_RENAMED = {
    "linear_forward": '''
def linear_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    # multiply by the transposed weight
    result = x @ weight.T
    if bias is not None:
        result = result + bias  # add the bias
    return result
''',
    "make_linear": '''
def make_linear(weight: torch.Tensor, bias: torch.Tensor | None = None) -> nn.Linear:
    n_out, n_in = weight.shape
    lin = nn.Linear(
        n_in, n_out, bias=bias is not None, device=weight.device, dtype=weight.dtype
    )
    # copy the values in
    with torch.no_grad():
        lin.weight.copy_(weight)
        if bias is not None:
            lin.bias.copy_(bias)
    return lin
''',
    "linear_param_count": '''
def linear_param_count(in_features: int, out_features: int, bias: bool = True) -> int:
    return out_features * in_features + (out_features if bias else 0)
''',
}
BEN = {
    "linear_forward": '''
def linear_forward(x, weight, bias=None):
    out = torch.matmul(x, torch.transpose(weight, 0, 1))
    return out if bias is None else torch.add(out, bias)
''',
    "make_linear": '''
def make_linear(weight, bias=None):
    layer = nn.Linear(weight.size(1), weight.size(0), bias=False)
    layer.weight = nn.Parameter(weight.detach().clone())
    if bias is not None:
        layer.bias = nn.Parameter(bias.detach().clone())
    return layer
''',
    "linear_param_count": '''
def linear_param_count(in_features, out_features, bias=True):
    count = in_features * out_features
    if bias:
        count += out_features
    return count
''',
}
CLEO = {
    "linear_forward": '''
def linear_forward(x, weight, bias=None):
    result = torch.einsum("...i,oi->...o", x, weight)
    if bias is None:
        return result
    return result + bias.expand_as(result)
''',
    "make_linear": '''
def make_linear(weight, bias=None):
    n_out, n_in = weight.shape
    state = {"weight": weight.detach().clone()}
    if bias is not None:
        state["bias"] = bias.detach().clone()
    net = nn.Linear(n_in, n_out, bias=bias is not None).to(device=weight.device, dtype=weight.dtype)
    net.load_state_dict(state)
    return net
''',
    "linear_param_count": '''
def linear_param_count(in_features, out_features, bias=True):
    shapes = [(out_features, in_features)] + ([(out_features,)] if bias else [])
    return sum(math.prod(shape) for shape in shapes)
''',
}
DEV = {
    "linear_forward": '''
def linear_forward(x, weight, bias=None):
    b = torch.zeros(weight.shape[0], dtype=x.dtype, device=x.device) if bias is None else bias
    flat = x.reshape(-1, x.shape[-1])
    y = (flat.unsqueeze(1) * weight.unsqueeze(0)).sum(-1) + b
    return y.reshape(*x.shape[:-1], weight.shape[0])
''',
    "make_linear": '''
def make_linear(weight, bias=None):
    fc = nn.Linear(*reversed(weight.shape), bias=bias is not None, device=weight.device, dtype=weight.dtype)
    fc.weight.data.copy_(weight)
    if fc.bias is not None:
        fc.bias.data.copy_(bias)
    return fc
''',
    "linear_param_count": '''
def linear_param_count(in_features, out_features, bias=True):
    return out_features * (in_features + int(bias))
''',
}


CLASS = {"ana": ANA, "ana-copy": ANA_RENAMED, "ben": BEN, "ben-copy": dict(BEN), "cleo": CLEO, "dev": DEV}
COPIED = {("ana", "ana-copy"), ("ben", "ben-copy")}


@pytest.fixture(scope="module")
def pairs() -> list[similarity.Pair]:
    release = nbtools.read(nbtools.notebook_path("01_linear", nbtools.RELEASE))
    return similarity.compare(CLASS, similarity.boilerplate_of(release))


def test_copied_pairs_rank_first(pairs):
    """Are the two copied pairs the two most similar, covering every exercise?"""
    assert {(p.a, p.b) for p in pairs[:2]} == COPIED
    for pair in pairs[:2]:
        assert pair.share > 0.95 and pair.exercises == ["linear_forward", "linear_param_count", "make_linear"]
    assert [(p.a, p.b) for p in similarity.flagged(pairs)] == [(p.a, p.b) for p in pairs[:2]]


def test_independent_pairs_stay_below_the_default_threshold(pairs):
    """Does no pair of independent students reach the default share, though some share short idioms?"""
    independent = [p for p in pairs if (p.a, p.b) not in COPIED and p.a.split("-")[0] != p.b.split("-")[0]]
    assert independent, "independent students share a few idioms: the test should see them"
    assert all(p.share < similarity.DEFAULT_THRESHOLD for p in independent)
    assert max(p.tokens for p in independent) < min(p.tokens for p in pairs[:2]) / 2


def test_starter_code_is_never_a_match():
    """Do two untouched notebooks (only the released stubs and examples) match nothing at all?"""
    release = nbtools.read(nbtools.notebook_path("01_linear", nbtools.RELEASE))
    stubs = {c.metadata["nbgrader"]["grade_id"]: c.source for c in release.cells
             if c.metadata.get("nbgrader", {}).get("solution")}
    assert similarity.solution_cells(release) == {}  # stubs are left out
    assert similarity.compare({"a": stubs, "b": dict(stubs)}, similarity.boilerplate_of(release)) == []


def test_matching_code_is_highlighted_and_escaped(pairs):
    """Does the side-by-side view mark the matching code and escape the students' text?"""
    match = next(m for m in pairs[0].matches if m.exercise == "make_linear")
    assert "<mark>" in match.html_a and "<mark>" in match.html_b
    lone = similarity.compare(
        {"x": {"e": "def f(a):\n    return a < 1 and '<b>' or a * 2 + a * 3 + a * 4 + a * 5\n"},
         "y": {"e": "def g(b):\n    return b < 1 and '<b>' or b * 2 + b * 3 + b * 4 + b * 5\n"}},
        [],
    )
    assert lone and "&lt;b&gt;" in lone[0].matches[0].html_a and "<b>" not in lone[0].matches[0].html_a


def test_threshold_must_be_a_share(pairs):
    """Is a threshold outside (0, 1] refused with the reason?"""
    with pytest.raises(ValueError, match="between 0 and 1"):
        similarity.flagged(pairs, threshold=60)


def test_csv_lists_pairs_most_matching_first(pairs, tmp_path):
    """Does similarity.csv hold one row per pair, in rank order, with the exercises involved?"""
    path = tmp_path / "similarity.csv"
    similarity.write_csv(path, pairs, similarity.flagged(pairs))
    lines = path.read_text().splitlines()
    assert lines[0] == "student_a,student_b,matching_tokens,share,share_a,share_b,listed,exercises"
    assert len(lines) == len(pairs) + 1
    first = lines[1].split(",")
    assert (first[0], first[1]) == (pairs[0].a, pairs[0].b) and first[-1].split() == pairs[0].exercises
    assert [line.split(",")[6] for line in lines[1:]].count("yes") == 2


def test_report_command_lists_the_copied_pairs(tmp_path):
    """Through `python -m autograder report` on a graded class: does the report show the copied pairs first,
    side by side, and write similarity.csv, with the threshold taken from the command line?"""
    course = make_course(tmp_path, ["01_linear"])
    for student, answers in CLASS.items():
        Record("01_linear", student, "graded", score=9, max_score=9).write(
            course / "autograder" / "grading" / "01_linear" / f"{student}.json"
        )
        folder = course / "autograder" / "autograded" / student / "01_linear"
        folder.mkdir(parents=True)
        nbformat.write(student_notebook("01_linear", answers), folder / "01_linear.ipynb")

    def report(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "autograder", "report", "01_linear", "--course", str(course), *args]
        return subprocess.run(command, cwd=ROOT, env=tool_env(), capture_output=True, text=True, timeout=300)

    done = report()
    assert done.returncode == 0, done.stderr
    assert "similar submissions: 2 pair(s) listed" in done.stdout
    out = course / "autograder" / "reports" / "01_linear"
    page = (out / "index.html").read_text()
    start = page.index("<h2>Similar submissions</h2>")
    section = page[start : page.index("<h2>", start + 1)]
    assert "ana-copy" in section and "ben-copy" in section
    assert "cleo" not in section and "<td>dev</td>" not in section  # independent: not listed
    assert section.count('<div class="side">') == 6  # two pairs, three exercises each
    rows = (out / "similarity.csv").read_text().splitlines()[1:]
    assert {tuple(row.split(",")[:2]) for row in rows[:2]} == COPIED
    assert all(row.split(",")[6] == "no" for row in rows[2:])

    strict = report("--similarity-threshold", "1.0")
    assert strict.returncode == 0 and "similar submissions: 2 pair(s) listed" in strict.stdout
    refused = report("--similarity-threshold", "60")
    assert refused.returncode == 2 and "between 0 and 1" in refused.stderr
