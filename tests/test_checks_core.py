"""Is the check framework strict, clear and hard to fool?"""

import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

import course_lib
from course_lib.checks import CheckFailure, Exercise, linear, tampered
from course_lib.checks._core import describe


class AlwaysEqual:
    """An object that claims to equal everything and to be true."""

    def __eq__(self, other):
        return True

    def __bool__(self):
        return True

    shape = torch.Size([2, 4])


class SneakyTensor(torch.Tensor):
    """A tensor subclass whose comparisons always succeed."""

    def __eq__(self, other):
        return True


def test_nothing_is_tampered_after_import():
    """In a clean process, does the tamper check find nothing?"""
    assert tampered() == []


def test_not_implemented_is_named():
    """Does an untouched exercise fail with 'not implemented yet' and what to do?"""

    def stub(*args):
        raise NotImplementedError()

    with pytest.raises(CheckFailure, match="linear_forward: not implemented yet") as info:
        linear.check_linear_forward(stub)
    assert "replace `raise NotImplementedError()`" in str(info.value)


def test_always_equal_object_is_rejected():
    """Is an object whose __eq__ always returns True refused instead of passing?"""
    with pytest.raises(CheckFailure, match="should be a torch.Tensor, got AlwaysEqual"):
        linear.check_linear_forward(lambda x, w, b=None: AlwaysEqual())
    with pytest.raises(CheckFailure, match="should be a Python int, got AlwaysEqual"):
        linear.check_linear_param_count(lambda i, o, bias=True: AlwaysEqual())


def test_tensor_subclass_is_rejected():
    """Is a torch.Tensor subclass (which could redefine comparisons) refused?"""

    def forward(x, w, b=None):
        y = x @ w.T + (0 if b is None else b)
        return y.as_subclass(SneakyTensor)

    with pytest.raises(CheckFailure, match="SneakyTensor, a subclass of torch.Tensor"):
        linear.check_linear_forward(forward)


def test_hard_coded_visible_outputs_fail_hidden_tests():
    """Does a function that replays the visible cases' outputs fail the hidden cases?"""
    import torch.nn.functional as F

    recorded = {}

    def spy(x, w, b=None):
        out = F.linear(x.detach(), w.detach(), None if b is None else b.detach())
        recorded[(tuple(x.shape), tuple(w.shape))] = out
        return out

    with pytest.raises(CheckFailure):
        linear.check_linear_forward(spy)  # calls F.linear: refused, but the cases were seen

    def replay(x, w, b=None):
        return recorded.get((tuple(x.shape), tuple(w.shape)), torch.zeros(()))

    with pytest.raises(CheckFailure):
        linear.check_linear_forward(replay, hidden=True, seed=99)


def test_student_warnings_stay_off_stderr(capfd):
    """Does a warning raised by student code stay off stderr (nbgrader scores stderr output as 0)?"""

    def noisy(i, o, bias=True):
        warnings.warn("just so you know", UserWarning, stacklevel=1)
        return i * o + (o if bias else 0)

    linear.check_linear_param_count(noisy)
    captured = capfd.readouterr()
    assert captured.err == ""
    assert "✓ linear_param_count" in captured.out


def test_failure_message_names_case_mistake_and_fix():
    """Does a failure say which case, the likely mistake and the fix?"""
    with pytest.raises(CheckFailure) as info:
        linear.check_linear_param_count(lambda i, o, bias=True: i * o)
    message = str(info.value)
    assert "case: in_features=3, out_features=4, bias=True" in message
    assert "likely mistake: bias forgotten" in message
    assert "fix:" in message


def test_success_line(capsys):
    """Does a passing check print one line with the number of checks and the devices?"""
    linear.check_linear_param_count(lambda i, o, bias=True: i * o + (o if bias else 0))
    out = capsys.readouterr().out.strip()
    assert out.startswith("✓ linear_param_count:") and "checks passed (devices: cpu" in out


def test_system_exit_in_student_code_is_a_failure():
    """Does sys.exit() inside student code fail the check instead of ending the test cell quietly?"""
    with pytest.raises(CheckFailure, match="raised SystemExit"):
        linear.check_linear_param_count(lambda i, o, bias=True: sys.exit(0))


def test_describe():
    assert describe(torch.zeros(2, 3, dtype=torch.float64)) == "tensor of shape (2, 3), float64, on cpu"
    assert describe(None) == "None"
    assert describe(3) == "int"


def test_exercise_counts_checks(capsys):
    """Does the Exercise context report the checks that passed?"""
    with Exercise("demo", devices=[torch.device("cpu")]) as ex:
        ex.assert_close(torch.ones(2), torch.ones(2), "ones")
        ex.passed(2)
    assert "✓ demo: 3 checks passed (devices: cpu)" in capsys.readouterr().out


def test_assert_close_reports_shape_dtype_and_device():
    """Does assert_close name a wrong shape, a wrong dtype and a wrong device?"""
    with pytest.raises(CheckFailure, match=r"shape \(3,\), expected \(2,\)"):
        with Exercise("demo") as ex:
            ex.assert_close(torch.ones(3), torch.ones(2), "the output")
    with pytest.raises(CheckFailure, match="dtype torch.float64, expected torch.float32"):
        with Exercise("demo") as ex:
            ex.assert_close(torch.ones(2, dtype=torch.float64), torch.ones(2), "the output")
    with pytest.raises(CheckFailure, match="wrong values"):
        with Exercise("demo") as ex:
            ex.assert_close(torch.ones(2), torch.zeros(2), "the output")


# Tampering changes the process for good, so each case runs in a fresh interpreter, like a fresh kernel.
_TAMPER_CASES = {
    "torch.testing.assert_close replaced": "torch.testing.assert_close = lambda *a, **k: None",
    "torch.allclose replaced": "torch.allclose = lambda *a, **k: True",
    "torch.equal replaced": "torch.equal = lambda *a, **k: True",
    "Tensor.__eq__ replaced": "torch.Tensor.__eq__ = lambda self, other: True",
    "assert_close code swapped": "torch.testing.assert_close.__code__ = (lambda *a, **k: None).__code__",
    "builtin isinstance replaced": "import builtins\nbuiltins.isinstance = lambda *a: True",
    "check function in __dict__": "checks.__dict__['check_linear_param_count'] = lambda f: None",
    "core helper in __dict__": (
        "import course_lib.checks._core as core\ncore.__dict__['_assert_close'] = lambda *a, **k: None"
    ),
}


@pytest.mark.parametrize("name", list(_TAMPER_CASES))
def test_tampering_is_refused(name):
    """Does a check refuse to pass after student code replaced what it relies on?"""
    script = textwrap.dedent("""
        import torch
        import course_lib
        from course_lib.checks import linear as checks, CheckFailure
        {tamper}
        from course_lib.checks import linear as checks
        try:
            checks.check_linear_param_count(lambda i, o, bias=True: i * o + (o if bias else 0))
        except CheckFailure as failure:
            print("REFUSED:", failure)
        else:
            print("PASSED")
    """).format(tamper=_TAMPER_CASES[name])
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (
        "REFUSED:" in result.stdout
        and "refuse to run because code in this notebook replaced" in result.stdout
    )


def test_check_functions_cannot_be_reassigned():
    """Is `checks.check_x = fake` refused with a message, and does the module keep its function?"""
    original = linear.check_linear_param_count
    with pytest.raises(AttributeError, match="belongs to the course's checks"):
        linear.check_linear_param_count = lambda f: None
    with pytest.raises(AttributeError, match="cannot be deleted"):
        del linear.check_make_linear
    assert linear.check_linear_param_count is original
    assert tampered() == []


def test_setup_imports_every_check_module():
    """Are all notebooks' check modules loaded (and so protected) by the setup cell's import alone?"""
    from tests import catalogue

    script = (
        "import sys, course_lib.notebook; "
        "print(sorted(m for m in sys.modules if m.startswith('course_lib.checks.')))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    for module in catalogue.NOTEBOOKS.values():
        assert f"course_lib.checks.{module}" in result.stdout, (
            f"course_lib/checks/__init__.py misses {module}"
        )
    assert course_lib.__version__


def test_expect_float_and_instance():
    """Are floats, NumPy floats and instances accepted, and anything else refused with a fix?"""
    import numpy as np
    from torch import nn

    with Exercise("demo") as ex:
        assert ex.expect_float(0.5, "x") == 0.5
        assert ex.expect_float(np.float32(0.5), "x") == 0.5
        layer = nn.Linear(2, 2)
        assert ex.expect_instance(layer, nn.Module, "the model") is layer
    with pytest.raises(CheckFailure, match=r"(?s)should be a Python float, got tensor.*\.item\(\)"):
        with Exercise("demo") as ex:
            ex.expect_float(torch.tensor(0.5), "the loss")
    with pytest.raises(CheckFailure, match="should be a Module or Sequential, got int"):
        with Exercise("demo") as ex:
            ex.expect_instance(3, (nn.Module, nn.Sequential), "the model")


def test_seeded_restores_the_notebooks_generator():
    """Does `seeded` give repeatable draws inside and leave the outside generator untouched?"""
    from course_lib.checks import seeded

    torch.manual_seed(5)
    expected_next = torch.rand(3)
    torch.manual_seed(5)
    with seeded(1):
        first = torch.rand(2)
    with seeded(1):
        assert torch.equal(torch.rand(2), first)
    assert torch.equal(torch.rand(3), expected_next)


def test_only_the_stub_counts_as_not_implemented():
    """Is the solution cell's bare `raise NotImplementedError()` "not implemented yet", while PyTorch's own
    NotImplementedError (an operator a device lacks) is reported as an error the code raised?"""

    def stub():
        raise NotImplementedError()

    def meta_equal():
        return torch.equal(torch.ones(2, device="meta"), torch.ones(2, device="meta"))

    with pytest.raises(CheckFailure, match="not implemented yet"):
        with Exercise("demo") as ex:
            ex.call(stub)
    with pytest.raises(CheckFailure, match="your code raised NotImplementedError: .+") as info:
        with Exercise("demo") as ex:
            ex.call(meta_equal)
    assert "not implemented yet" not in str(info.value)
