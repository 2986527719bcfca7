"""Can a cheating submission earn points it should not, stop the batch, or go unnoticed? Each cheat below is
a real notebook graded through the real pipeline (`python -m autograder grade`, sandboxed, in parallel)
next to an honest one. The sandbox's own attacks (reading solutions/, writing the gradebook, processes left
behind, the network) are in tests/test_sandbox.py, runaway loops and memory in tests/test_grading_command.py,
broken notebooks in tests/test_bad_input.py.
"""

from __future__ import annotations

import json
import subprocess

import nbformat
import pytest

from benchmarks.simulate import student_notebook, submit
from tests.helpers import grade_cli, make_course, nbgrader

pytestmark = pytest.mark.slow

NAME = "01_linear"
WRONG = "def linear_forward(x, weight, bias=None):\n    return x @ weight\n"
RIGHT = (
    "def linear_forward(x, weight, bias=None):\n"
    "    y = x @ weight.T\n"
    "    return y if bias is None else y + bias\n"
)

# student: (source of the linear_forward solution cell, the flag its record must carry)
CHEATS = {
    "always-true": (
        "class Always:\n"
        "    def __eq__(self, other):\n        return True\n"
        "    def __bool__(self):\n        return True\n"
        "def linear_forward(x, weight, bias=None):\n    return Always()\n",
        "always-true comparison",
    ),
    "patched-torch": (
        "import torch\n"
        "torch.testing.assert_close = lambda *args, **kwargs: None\n"
        "torch.allclose = lambda *args, **kwargs: True\n"
        "torch.equal = lambda *args, **kwargs: True\n" + WRONG,
        "replaces a library or check function",
    ),
    "patched-checks": (
        "from course_lib.checks import linear as checks\n"
        "try:\n"
        "    checks.check_linear_forward = lambda *a, **k: print('✓ linear_forward: 19 checks passed')\n"
        "except Exception as error:\n"
        "    print('refused:', error)\n" + WRONG,
        "replaces a library or check function",
    ),
    "hard-coded": (
        # Right on the visible shapes only (where a student pasted the expected outputs), zeros elsewhere.
        "import torch\n"
        "VISIBLE = {(2, 3), (4, 4), (3, 2), (3,), (2, 5, 3)}\n"
        "def linear_forward(x, weight, bias=None):\n"
        "    if tuple(x.shape) in VISIBLE and x.dtype == torch.float32:\n"
        "        y = x @ weight.T\n"
        "        return y if bias is None else y + bias\n"
        "    return torch.zeros(*x.shape[:-1], weight.shape[0], dtype=x.dtype, device=x.device)\n",
        "passes the visible tests but fails the hidden ones",
    ),
    "input-transformer": (
        "def _skip_tests(lines):\n"
        "    return ['pass\\n'] if any('checks.check_' in line for line in lines) else lines\n"
        "get_ipython().input_transformers_post.append(_skip_tests)\n" + WRONG,
        "changes how later cells run",
    ),
    "ast-transformer": (
        "import ast\n"
        "class _DropTests(ast.NodeTransformer):\n"
        "    def visit_Module(self, node):\n"
        "        if 'check_' in ast.dump(node):\n"
        "            node.body = []\n"
        "        return node\n"
        "get_ipython().ast_transformers.append(_DropTests())\n" + WRONG,
        "changes how later cells run",
    ),
    "custom-exception": (
        "get_ipython().set_custom_exc((Exception,), lambda shell, etype, value, tb, tb_offset=None: None)\n"
        + WRONG,
        "changes how later cells run",
    ),
    "fake-success": (
        # Replaces every test cell with the success line and an evidence line it made up.
        "def _fake(lines):\n"
        "    if any('checks.check_' in line for line in lines):\n"
        "        ok = 'print(\"✓ linear_forward: 19 checks passed (devices: cpu)\")\\n'\n"
        "        proof = '[grading evidence linear_forward part=core hidden=0 seed=0 checks=19 n=1 '\n"
        "        proof += '0123456789abcdef]'\n"
        "        return [ok, f'print(\"{proof}\")\\n']\n"
        "    return lines\n"
        "get_ipython().input_transformers_post.append(_fake)\n" + WRONG,
        "changes how later cells run",
    ),
    "display-hook": (
        "import sys\nsys.displayhook = lambda value: None\n"
        "get_ipython().display_formatter.formatters['text/plain'].enabled = False\n" + WRONG,
        "changes how later cells run",
    ),
    "sys-exit": (RIGHT + "import sys\nsys.exit(0)\n", "exits the kernel"),
    "flood": (RIGHT + "print('x' * 20_000_000)\n", "bytes of output dropped"),
}


def _grade(course, *args: str) -> subprocess.CompletedProcess:
    return grade_cli(course, NAME, *args)


def test_cheats_earn_nothing_and_are_flagged(tmp_path):
    """Does every cheat lose the points it was after, leave the batch running, and get flagged in the report,
    while an honest submission in the same batch gets full marks?"""
    course = make_course(tmp_path, [NAME])
    nbgrader(course, "generate_assignment", NAME, "--force")
    submit(course, "honest", NAME, student_notebook(NAME, {}))
    for student, (source, _) in CHEATS.items():
        submit(course, student, NAME, student_notebook(NAME, {"linear_forward": source}))
    # Locked test cells edited or deleted, with a wrong answer.
    edited = student_notebook(NAME, {"linear_forward": WRONG})
    for cell in edited.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "test_linear_forward":
            cell.source = "print('✓ linear_forward: 19 checks passed (devices: cpu)')"
    submit(course, "edited-test", NAME, edited)
    deleted = student_notebook(NAME, {"linear_forward": WRONG})
    deleted.cells = [
        c for c in deleted.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_linear_forward"
    ]
    submit(course, "deleted-test", NAME, deleted)
    # The kernel ends itself in the middle: the cells before keep their points.
    submit(course, "os-exit", NAME, student_notebook(NAME, {"make_linear": "import os\nos._exit(0)"}))

    _grade(course, "--jobs", "2")
    records = {
        path.stem: json.loads(path.read_text())
        for path in (course / "autograder" / "grading" / NAME).glob("*.json")
    }
    honest = records["honest"]
    assert honest["score"] == honest["max_score"] > 0 and not honest["flags"], honest["flags"]

    expected_flags = {student: flag for student, (_, flag) in CHEATS.items()}
    expected_flags |= {"edited-test": "edited locked cells", "deleted-test": "restored deleted"}
    problems = []
    for student, flag in expected_flags.items():
        record = records[student]
        forward = record["exercises"]["linear_forward"]
        honest_forward = student in ("sys-exit", "flood")  # right answers, odd behaviour: keep their points
        if honest_forward != (forward["score"] == forward["max_score"]):
            problems.append(f"{student}: linear_forward scored {forward['score']}/{forward['max_score']}")
        if not any(flag in f for f in record["flags"]):
            problems.append(f"{student}: no flag {flag!r} in {record['flags']}")
    assert not problems, "\n".join(problems)

    # Output floods are cut, not stored.
    flooded = course / "autograder" / "autograded" / "flood" / NAME / f"{NAME}.ipynb"
    assert flooded.stat().st_size < 8_000_000
    # sys.exit does not stop the notebook: later exercises are graded.
    later = records["sys-exit"]["exercises"]["make_linear"]
    assert later["score"] == later["max_score"]
    # os._exit kills the kernel: graded on what ran, reported.
    ended = records["os-exit"]
    assert ended["capped"] == "kernel died" and ended["exercises"]["linear_forward"]["score"] > 0
    assert ended["exercises"]["make_linear"]["score"] == 0
    page = (course / "autograder" / "reports" / NAME / "index.html").read_text()
    for student in [*expected_flags, "os-exit"]:
        assert student in page, f"{student} missing from the class report"
    nb = nbformat.read(flooded, as_version=4)
    assert any(
        "output from this cell dropped" in str(o.get("text", ""))
        for c in nb.cells
        for o in c.get("outputs", [])
    )
