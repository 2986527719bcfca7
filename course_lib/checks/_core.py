"""The check framework that test cells call.

A check runs the student's code on every available device, compares the result with what PyTorch itself
computes, and turns the first failure into a message that names the likely mistake. Each exercise's
checks live in a module named after its notebook (``course_lib.checks.linear`` for 01_linear) and use
:class:`Exercise` like this::

    with Exercise("linear_forward") as ex:
        for device in ex.devices:
            y = ex.call(linear_forward, x, weight, bias, case="x (2, 3), weight (4, 3)")
            ex.assert_close(y, expected, "the output", case=..., diagnose=...)

Student code is only ever called through :meth:`Exercise.call`; its results are type-checked exactly
(no ``isinstance`` on objects the student made, no ``==`` on them) before they are compared.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NoReturn

import numpy as np
import torch

from course_lib import protocol
from course_lib.checks._integrity import ORIGINALS, protect_module, tampered
from course_lib.devices import available_devices

__all__ = ["CheckFailure", "Exercise", "Scale", "describe", "dtype_on", "seeded", "tolerances"]

_assert_close = ORIGINALS["assert_close"]
_type = ORIGINALS["type"]

# (rtol, atol) per dtype: loose enough for another correct formula on any device, tight enough that
# every listed mistake is far outside.
_TOLERANCES = {
    torch.float64: (1e-7, 1e-9),
    torch.float32: (1e-4, 1e-5),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (3e-2, 3e-2),
}


def dtype_on(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    """``dtype``, or float32 in place of float64 on a device without float64 (Apple's MPS)."""
    return torch.float32 if device.type == "mps" and dtype == torch.float64 else dtype


def tolerances(dtype: torch.dtype) -> tuple[float, float]:
    """``(rtol, atol)`` the checks use for results of ``dtype``."""
    return _TOLERANCES.get(dtype, (0.0, 0.0))


class CheckFailure(AssertionError):
    """A check found a mistake. The message says what was expected, what was seen and what to fix."""


def describe(value: Any) -> str:
    """Short description of a value for failure messages: shape, dtype and device for tensors."""
    if _type(value) is torch.Tensor or _type(value) is torch.nn.Parameter:
        kind = "Parameter" if _type(value) is torch.nn.Parameter else "tensor"
        dtype = str(value.dtype).removeprefix("torch.")
        return f"{kind} of shape {tuple(value.shape)}, {dtype}, on {value.device}"
    if value is None:
        return "None"
    return f"{_type(value).__name__}"


_SEQUENCE = itertools.count(1)  # numbers the evidence lines of one kernel (a counter, never rebound)


class Exercise:
    """Context manager around one exercise's checks: tamper check, warnings kept off stderr, a short
    success line, and helpers that call student code and compare its results."""

    def __init__(self, name: str, devices: Iterable[torch.device] | None = None) -> None:
        self.name = name
        self.devices = list(devices) if devices is not None else available_devices()
        self.checks_passed = 0
        self.warnings: list[str] = []
        self._catcher: warnings.catch_warnings | None = None
        # The check function creating this (every check_x has keyword arguments hidden and seed, and those
        # of exercises with two test cells also part).
        caller = sys._getframe(1).f_locals
        self.part = caller.get("part", protocol.CORE)
        if self.part not in protocol.PARTS:
            raise ValueError(f"part must be one of {protocol.PARTS}, got {self.part!r}")
        self._call = (int(bool(caller.get("hidden", False))), int(caller.get("seed", 0) or 0))

    # -- context -------------------------------------------------------------------------------
    def __enter__(self) -> Exercise:
        self._refuse_if_tampered()
        self._catcher = warnings.catch_warnings(record=True)
        self._recorded = self._catcher.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        assert self._catcher is not None
        self._catcher.__exit__(None, None, None)
        if exc_type is None:
            self._refuse_if_tampered()
            devices = ", ".join(str(device) for device in self.devices)
            label = protocol.PART_LABELS[self.part]
            print(f"✓ {self.name}{label}: {self.checks_passed} checks passed (devices: {devices})")
            self._evidence()
        return False

    def _evidence(self) -> None:
        """When a grader started this kernel, print a line signed with its key, which only a check that
        really ran and passed prints: the grader gives a test cell its points only with it."""
        evidence = sys.modules.get(protocol.EVIDENCE_MODULE)
        if evidence is None:
            return
        hidden, seed = self._call
        line = protocol.Evidence(self.name, self.part, hidden, seed, self.checks_passed, next(_SEQUENCE))
        print(line.line(evidence.sign))

    def _refuse_if_tampered(self) -> None:
        problems = tampered()
        if problems:
            listed = ", ".join(problems[:8]) + (" ..." if len(problems) > 8 else "")
            raise CheckFailure(
                f"{self.name}: {protocol.REFUSAL} {listed}. "
                "The tests compare your results with PyTorch's; replacing its functions cannot pass them. "
                "Remove that code and restart the kernel (Kernel > Restart Kernel and Run All Cells)."
            )

    # -- failing -------------------------------------------------------------------------------
    def fail(
        self, problem: str, *, case: str | None = None, mistake: str | None = None, fix: str | None = None
    ) -> NoReturn:
        """Raise a :class:`CheckFailure` naming the problem, the case it showed in, and the likely mistake."""
        warned = self.warnings[0] if self.warnings else None
        raise CheckFailure(
            protocol.failure_text(self.name, problem, case=case, mistake=mistake, fix=fix, warned=warned)
        )

    def passed(self, count: int = 1) -> None:
        """Count checks that passed (reported in the success line)."""
        self.checks_passed += count

    # -- calling student code ------------------------------------------------------------------
    def call(
        self,
        func: Any,
        *args: Any,
        case: str = "",
        hints: Callable[[BaseException], tuple[str, str] | None] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call student code; turn ``NotImplementedError`` and any other exception into a clear failure.

        ``hints(exc)`` may return ``(mistake, fix)`` for exceptions that point at a known mistake.
        """
        if not callable(func):
            self.fail(
                f"expected a function or class, got {describe(func)}",
                fix=f"define {self.name} in its solution cell and run that cell",
            )
        seen = len(self._recorded)
        try:
            return func(*args, **kwargs)
        except NotImplementedError as exc:
            if str(exc).strip():  # PyTorch's own (an operator a device lacks), not the solution cell's stub
                self._fail_raised(exc, case, hints)
            self.fail(
                protocol.NOT_IMPLEMENTED,
                fix="replace `raise NotImplementedError()` in the solution cell with your code, "
                "then run the solution cell and this test cell again",
            )
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - any error in student code is reported
            self._fail_raised(exc, case, hints)
        finally:
            for record in self._recorded[seen:]:
                self.warnings.append(f"{record.category.__name__}: {record.message}")

    def _fail_raised(self, exc: BaseException, case: str, hints) -> NoReturn:
        hint = hints(exc) if hints is not None else None
        mistake, fix = hint if hint else (None, None)
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        self.fail(f"your code raised {_type(exc).__name__}: {message}", case=case, mistake=mistake, fix=fix)

    # -- comparing ------------------------------------------------------------------------------
    def expect_tensor(self, value: Any, what: str, *, case: str = "") -> torch.Tensor:
        """``value`` must be a plain ``torch.Tensor`` (subclasses could redefine comparisons)."""
        if _type(value) is not torch.Tensor:
            if isinstance(value, torch.Tensor):
                self.fail(
                    f"{what} is a {_type(value).__name__}, a subclass of torch.Tensor",
                    case=case,
                    fix="return a plain tensor (for a Parameter: the result of an operation on it)",
                )
            self.fail(
                f"{what} should be a torch.Tensor, got {describe(value)}",
                case=case,
                fix="return the tensor you computed (did you forget `return`?)",
            )
        return value

    def expect_int(self, value: Any, what: str, *, case: str = "") -> int:
        """``value`` must be a Python int (NumPy integers are accepted and converted)."""
        return self._expect_number(value, int, np.integer, what, case)

    def expect_float(self, value: Any, what: str, *, case: str = "") -> float:
        """``value`` must be a Python float (NumPy floats are accepted and converted)."""
        return self._expect_number(value, float, np.floating, what, case)

    def _expect_number(self, value: Any, kind: type, numpy_kind: type, what: str, case: str) -> Any:
        if _type(value) is kind:
            return value
        if isinstance(value, numpy_kind):
            return kind(value)
        name = kind.__name__
        hint = "call .item() on the tensor" if _type(value) is torch.Tensor else f"return a Python {name}"
        self.fail(f"{what} should be a Python {name}, got {describe(value)}", case=case, fix=hint)

    def expect_instance(
        self, value: Any, cls: type | tuple[type, ...], what: str, *, case: str = "", fix: str | None = None
    ) -> Any:
        """``value`` must be an instance of ``cls`` (for modules and other objects the student builds)."""
        if not isinstance(value, cls):
            names = " or ".join(c.__name__ for c in (cls if isinstance(cls, tuple) else (cls,)))
            self.fail(f"{what} should be a {names}, got {describe(value)}", case=case, fix=fix)
        return value

    def assert_close(
        self,
        actual: torch.Tensor,
        expected: torch.Tensor,
        what: str,
        *,
        case: str = "",
        diagnose: Callable[[torch.Tensor], tuple[str, str] | None] | None = None,
        check_dtype: bool = True,
    ) -> None:
        """Compare shape, dtype, device and values of ``actual`` with ``expected``; on a mismatch, ask
        ``diagnose(actual)`` for ``(mistake, fix)`` and fail with it."""
        actual = self.expect_tensor(actual, what, case=case)
        problem = None
        if actual.shape != expected.shape:
            problem = f"{what} has shape {tuple(actual.shape)}, expected {tuple(expected.shape)}"
        elif check_dtype and actual.dtype != expected.dtype:
            problem = f"{what} has dtype {actual.dtype}, expected {expected.dtype} (the inputs' dtype)"
        elif actual.device != expected.device:
            problem = f"{what} is on {actual.device}, expected {expected.device} (where the inputs are)"
        else:
            rtol, atol = tolerances(expected.dtype)
            try:
                _assert_close(
                    actual.detach(),
                    expected.detach(),
                    rtol=rtol,
                    atol=atol,
                    check_dtype=False,
                    equal_nan=False,
                )
            except AssertionError as exc:
                detail = [line.strip() for line in str(exc).splitlines() if line.strip()][1:3]
                problem = f"{what} has wrong values ({'; '.join(detail)})"
        if problem is None:
            self.passed()
            return
        hint = diagnose(actual) if diagnose is not None else None
        mistake, fix = hint if hint else (None, None)
        self.fail(problem, case=case, mistake=mistake, fix=fix)

    def is_close(self, actual: torch.Tensor, expected: torch.Tensor) -> bool:
        """True when two tensors agree in shape and values (for diagnosing which mistake was made)."""
        if actual.shape != expected.shape:
            return False
        rtol, atol = tolerances(expected.dtype)
        try:
            _assert_close(
                actual.detach().to(expected.device),
                expected.detach(),
                rtol=rtol,
                atol=atol,
                check_dtype=False,
            )
        except AssertionError:
            return False
        return True

    def first_match(
        self, actual: torch.Tensor, candidates: Iterable[tuple[str, torch.Tensor, str]]
    ) -> tuple[str, str] | None:
        """``(mistake, fix)`` of the first ``(mistake, what it computes, fix)`` whose value ``actual``
        matches, or None: the usual body of a check's ``diagnose``."""
        for mistake, wrong, fix in candidates:
            if self.is_close(actual, wrong):
                return mistake, fix
        return None


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's generators (CPU and every GPU) seeded, then restore the notebook's own
    generator state, so a check that draws random numbers leaves the student's RNG where it was."""
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
        torch.manual_seed(seed)
        yield


class Scale(torch.nn.Module):
    """A test module that several checks use: a custom module (not a Linear) with parameters named like a
    Linear's, ``weight`` and ``bias``, one per feature: ``x * weight + bias``."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(features))
        self.bias = torch.nn.Parameter(torch.randn(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight + self.bias


protect_module(protocol.__name__)
protect_module(__name__)
