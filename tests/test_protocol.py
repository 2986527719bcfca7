"""Does the one protocol between the checks and the grader hold together: evidence lines, check calls,
failure messages? (Fast: standard library only, no kernel.)"""

from __future__ import annotations

import subprocess
import sys

import pytest

from course_lib import protocol
from course_lib.protocol import CheckCall, Evidence

KEY = b"k" * 32
CELL = (
    "from course_lib.checks import linear as checks\n"
    "checks.check_linear_forward(linear_forward)\n"
    "checks.check_linear_forward(linear_forward, part='edge')\n"
    "checks.check_linear_forward(linear_forward, part='edge', hidden=True, seed=7)\n"
)


def _line(name="linear_forward", part="core", hidden=0, seed=0, checks=3, number=1, key=KEY) -> str:
    return Evidence(name, part, hidden, seed, checks, number).line(protocol.signer(key))


def test_expected_checks_reads_part_hidden_and_seed():
    """Does a test cell's source give its check calls, with part, hidden and seed (defaults: core, 0, 0)?"""
    assert protocol.expected_checks(CELL) == [
        CheckCall("linear_forward"),
        CheckCall("linear_forward", "edge"),
        CheckCall("linear_forward", "edge", 1, 7),
    ]
    assert protocol.expected_checks("def broken(:") == []
    assert str(CheckCall("x", "edge", 1, 7)) == "check_x(part='edge', hidden=True, seed=7)"


def test_evidence_line_round_trip():
    """Is a printed evidence line parsed back into the same evidence, and verified by its key only?"""
    line = _line(part="edge", hidden=1, seed=-5, checks=12, number=9)
    [(evidence, tag)] = protocol.evidence_lines(f"✓ passed\n{line}\n")
    assert evidence == Evidence("linear_forward", "edge", 1, -5, 12, 9)
    assert tag == protocol.sign(KEY, evidence.message())
    assert tag != protocol.sign(b"other", evidence.message())
    assert protocol.strip_evidence(f"✓ passed\n{line}\nafter\n") == "✓ passed\nafter\n"


def test_every_call_needs_its_own_valid_line():
    """Does a cell score only with one distinct, validly signed line per check call, of the right part?"""
    core, edge = _line(number=1), _line(part="edge", number=2)
    hidden = _line("linear_forward", "edge", 1, 7, 4, 3)
    assert protocol.missing_evidence(CELL, "\n".join([core, edge, hidden]), KEY) == []
    # A line signed with another key, of the other part, or used twice: each leaves a call unproven.
    forged = _line(part="edge", number=2, key=b"guess")
    assert protocol.missing_evidence(CELL, "\n".join([core, forged, hidden]), KEY) == [
        CheckCall("linear_forward", "edge")
    ]
    assert protocol.missing_evidence(CELL, "\n".join([core, core, hidden]), KEY) == [
        CheckCall("linear_forward", "edge")
    ]
    replayed = _line(number=1)  # the core cell's line, replayed in the edge cell
    edge_cell = "checks.check_linear_forward(linear_forward, part='edge')\n"
    assert protocol.missing_evidence(edge_cell, replayed, KEY) == [CheckCall("linear_forward", "edge")]


def test_failure_text_and_its_likely_mistake():
    """Does the report read back the likely mistake that a failure message names, and a refusal's list?"""
    text = protocol.failure_text(
        "linear_forward", "wrong values", case="x (2, 3)", mistake="bias  ignored", fix="add it", warned="W"
    )
    assert text.splitlines() == [
        "linear_forward: wrong values",
        "  case: x (2, 3)",
        "  likely mistake: bias  ignored",
        "  fix: add it",
        "  (your code also warned: W)",
    ]
    assert protocol.likely_mistake(text) == "bias ignored"
    assert protocol.likely_mistake("linear_forward: not implemented yet") is None
    refusal = f"x: {protocol.REFUSAL} torch.allclose, builtins.len. The tests compare"
    assert protocol.refused_names(refusal) == "torch.allclose, builtins.len"
    assert protocol.refused_names("x: wrong") is None


@pytest.mark.parametrize("part", ["core", "edge"])
def test_checks_print_what_the_grader_reads(part):
    """Does a passing check in a kernel with a signing key print a line that the grader verifies?"""
    script = (
        "import sys, types\n"
        "from course_lib import protocol\n"
        "module = types.ModuleType(protocol.EVIDENCE_MODULE)\n"
        f"module.sign = protocol.signer({KEY!r})\n"
        "sys.modules[protocol.EVIDENCE_MODULE] = module\n"
        "from course_lib.checks import linear as checks\n"
        "def linear_forward(x, weight, bias=None):\n"
        "    y = x @ weight.T\n"
        "    return y if bias is None else y + bias\n"
        f"checks.check_linear_forward(linear_forward, part={part!r})\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    cell = f"checks.check_linear_forward(linear_forward, part={part!r})"
    assert protocol.missing_evidence(cell, out.stdout, KEY) == []
    assert protocol.missing_evidence(cell, out.stdout, b"wrong key") != []


def test_protocol_needs_no_torch():
    """Can the grader import the protocol without loading PyTorch?"""
    script = "import sys, course_lib.protocol; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
