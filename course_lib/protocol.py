"""What the checks (in the student's kernel) and the grader (outside it) must agree on: one definition each.

Standard library only, so that the grader, the kernel launcher and the kernel's boot code import it without
PyTorch. Used by ``course_lib.checks._core`` (which prints what is defined here) and by ``autograder``
(which reads it back): change a wording here and both sides follow.

- **Evidence.** When a check passes inside a kernel that the grader started, it prints one line signed with
  a key made fresh for each submission (HMAC-SHA256, truncated). A graded test cell scores only when every
  check call in its source left such a line (:func:`expected_checks`, :func:`missing_evidence`).
- **Failure messages.** A check failure reads ``EXERCISE: problem`` then indented ``case:``, ``likely
  mistake:`` and ``fix:`` lines; the class report groups failures by the likely mistake.
- **Test cells.** An exercise's graded test cells have grade_ids ``test_NAME`` and ``test_NAME_...``. One
  worth 3 points or more has two, its ``core`` behaviour and its ``edge`` cases (partial credit); a check
  call names its part with ``part="edge"``.
- **Environment.** The names of the variables through which the grader hands caps, the sandbox and the
  evidence key to the kernel launcher that starts each grading kernel.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "CASE",
    "CORE",
    "EDGE",
    "ENV_CPU_SECONDS",
    "ENV_EVIDENCE_FD",
    "ENV_EVIDENCE_KEY",
    "ENV_MEMORY_BYTES",
    "ENV_SANDBOX",
    "EVIDENCE_MODULE",
    "Evidence",
    "FIX",
    "MISTAKE",
    "NOT_IMPLEMENTED",
    "PARTS",
    "REFUSAL",
    "CheckCall",
    "evidence_lines",
    "exercise_of",
    "expected_checks",
    "failure_text",
    "likely_mistake",
    "missing_evidence",
    "refused_names",
    "sign",
    "signer",
    "strip_evidence",
]

# -- parts of an exercise ---------------------------------------------------------------------------------
CORE = "core"
EDGE = "edge"
#: The parts a check may be asked for, in the order their test cells appear.
PARTS = (CORE, EDGE)
#: How each part is named in a success line.
PART_LABELS = {CORE: "", EDGE: " (edge cases)"}


def exercise_of(grade_id: str, exercises: list[str]) -> str | None:
    """The exercise a graded test cell belongs to: its grade_id is ``test_NAME`` or ``test_NAME_...``
    (``test_MyLinear_edge_cases``); the longest name wins, so ``test_ResidualConvBlock`` is not Residual's."""
    for exercise in sorted(exercises, key=len, reverse=True):
        if grade_id == f"test_{exercise}" or grade_id.startswith(f"test_{exercise}_"):
            return exercise
    return None

# -- environment between the grader and the kernel launcher -----------------------------------------------
ENV_EVIDENCE_KEY = "AUTOGRADER_EVIDENCE_KEY"  # grader -> launcher (the launcher moves it into a pipe)
ENV_EVIDENCE_FD = "AUTOGRADER_EVIDENCE_FD"  # launcher -> kernel boot: the pipe to read the key from
ENV_CPU_SECONDS = "AUTOGRADER_CPU_SECONDS"
ENV_MEMORY_BYTES = "AUTOGRADER_MEMORY_BYTES"
ENV_SANDBOX = "AUTOGRADER_SANDBOX"
#: The module the kernel's boot code installs in ``sys.modules``: it holds only ``sign(message)``.
EVIDENCE_MODULE = "_course_evidence"

# -- failure messages -------------------------------------------------------------------------------------
CASE = "case:"
MISTAKE = "likely mistake:"
FIX = "fix:"
NOT_IMPLEMENTED = "not implemented yet"
REFUSAL = "the checks refuse to run because code in this notebook replaced"

_MISTAKE_LINE = re.compile(rf"^\s*{re.escape(MISTAKE)}\s*(.+?)\s*$", re.MULTILINE | re.IGNORECASE)


def failure_text(
    exercise: str,
    problem: str,
    *,
    case: str | None = None,
    mistake: str | None = None,
    fix: str | None = None,
    warned: str | None = None,
) -> str:
    """The message of a failed check: what went wrong, the case it showed in, the likely mistake, the fix."""
    lines = [f"{exercise}: {problem}"]
    if case:
        lines.append(f"  {CASE} {case}")
    if mistake:
        lines.append(f"  {MISTAKE} {mistake}")
    if fix:
        lines.append(f"  {FIX} {fix}")
    if warned:
        lines.append(f"  (your code also warned: {warned})")
    return "\n".join(lines)


def likely_mistake(text: str) -> str | None:
    """The likely mistake a failure message names, or None."""
    match = _MISTAKE_LINE.search(text)
    return " ".join(match.group(1).split()) if match else None


def refused_names(text: str) -> str | None:
    """What a refusal says the notebook replaced (``torch.allclose, ...``), or None for another message."""
    if REFUSAL not in text:
        return None
    return text.split(REFUSAL, 1)[1].split(". ", 1)[0].strip()


# -- evidence ---------------------------------------------------------------------------------------------
_TAG_LENGTH = 16
_EVIDENCE_LINE = re.compile(
    r"\[grading evidence (?P<name>\w+) part=(?P<part>\w+) hidden=(?P<hidden>[01]) seed=(?P<seed>-?\d+) "
    rf"checks=(?P<checks>\d+) n=(?P<number>\d+) (?P<tag>[0-9a-f]{{{_TAG_LENGTH}}})\]"
)
_ANY_EVIDENCE_LINE = re.compile(r"^\[grading evidence [^\n]*\]\n?", re.MULTILINE)


def sign(key: bytes, message: str) -> str:
    """The tag of one evidence message under ``key``."""
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()[:_TAG_LENGTH]


def signer(key: bytes) -> Callable[[str], str]:
    """``sign`` bound to ``key``: what the kernel's boot code hands the checks (never the key itself)."""

    def sign_message(message: str) -> str:
        return sign(key, message)

    return sign_message


@dataclass(frozen=True)
class Evidence:
    """One passed check call: which exercise and part, visible or hidden, its seed, how many checks passed,
    and its number in the kernel's sequence (so that one line cannot stand for two calls)."""

    name: str
    part: str
    hidden: int
    seed: int
    checks: int
    number: int

    def message(self) -> str:
        """What is signed."""
        return f"{self.name}|{self.part}|{self.hidden}|{self.seed}|{self.checks}|{self.number}"

    def line(self, sign_message: Callable[[str], str]) -> str:
        """The line the check prints."""
        return (
            f"[grading evidence {self.name} part={self.part} hidden={self.hidden} seed={self.seed} "
            f"checks={self.checks} n={self.number} {sign_message(self.message())}]"
        )


def evidence_lines(stdout: str) -> list[tuple[Evidence, str]]:
    """Every evidence line in a cell's output, with its tag (not yet verified)."""
    found = []
    for match in _EVIDENCE_LINE.finditer(stdout):
        values = match.groupdict()
        evidence = Evidence(
            values["name"],
            values["part"],
            int(values["hidden"]),
            int(values["seed"]),
            int(values["checks"]),
            int(values["number"]),
        )
        found.append((evidence, values["tag"]))
    return found


def strip_evidence(text: str) -> str:
    """``text`` without its evidence lines (no use to a student reading feedback)."""
    return _ANY_EVIDENCE_LINE.sub("", text)


@dataclass(frozen=True)
class CheckCall:
    """A check call in a test cell's source: ``checks.check_NAME(..., part=..., hidden=..., seed=...)``."""

    name: str
    part: str = CORE
    hidden: int = 0
    seed: int = 0

    def __str__(self) -> str:
        part = "" if self.part == CORE else f"part={self.part!r}, "
        return f"check_{self.name}({part}hidden={bool(self.hidden)}, seed={self.seed})"


def expected_checks(source: str) -> list[CheckCall]:
    """The check calls a test cell makes (keyword arguments given as constants, as the course writes them)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if not name.startswith("check_"):
            continue
        values = {k.arg: k.value.value for k in node.keywords if isinstance(k.value, ast.Constant)}
        found.append(
            CheckCall(
                name.removeprefix("check_"),
                str(values.get("part", CORE)),
                int(bool(values.get("hidden", False))),
                int(values.get("seed", 0)),
            )
        )
    return found


def missing_evidence(source: str, stdout: str, key: bytes) -> list[CheckCall]:
    """The check calls of a test cell that left no valid, distinct evidence line in its output."""
    lines = evidence_lines(stdout)
    used: set[int] = set()
    missing = []
    for call in expected_checks(source):
        for evidence, tag in lines:
            if evidence.number in used or (evidence.name, evidence.part, evidence.hidden, evidence.seed) != (
                call.name,
                call.part,
                call.hidden,
                call.seed,
            ):
                continue
            if hmac.compare_digest(sign(key, evidence.message()), tag):
                used.add(evidence.number)
                break
        else:
            missing.append(call)
    return missing
