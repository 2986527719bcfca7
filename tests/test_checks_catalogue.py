"""Do the checks, called directly, fail every catalogued mistake with its message and pass every
alternative and the instructor's solution? (The fast twin of test_grading_pipeline.py.)"""

from __future__ import annotations

import contextlib
import io

import pytest

from course_lib import checks
from tests import catalogue
from tests.helpers import NOTEBOOKS, solution_sources

ENTRIES = [(name, entry) for name in NOTEBOOKS for entry in catalogue.load(name).MISTAKES]
ALTERNATIVES = [(name, entry) for name in NOTEBOOKS for entry in catalogue.load(name).ALTERNATIVES]
SOLUTIONS = [
    (name, exercise, source) for name in NOTEBOOKS for exercise, source in solution_sources(name).items()
]


def _check_module(notebook: str):
    return getattr(checks, catalogue.NOTEBOOKS[notebook])


def _run(notebook: str, exercise: str, source: str, hidden: bool) -> str:
    namespace: dict[str, object] = {}
    exec(compile(source, f"<{exercise}>", "exec"), namespace)
    check = getattr(_check_module(notebook), f"check_{exercise}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        check(namespace[exercise], hidden=hidden, seed=12345) if hidden else check(namespace[exercise])
    return out.getvalue()


@pytest.mark.parametrize(("notebook", "mistake"), ENTRIES, ids=lambda v: getattr(v, "name", v))
def test_mistake_fails_with_its_message(notebook, mistake):
    """Is the mistake caught, by the visible tests or else by the hidden ones, and named in the message?"""
    with pytest.raises(checks.CheckFailure) as info:
        _run(notebook, mistake.exercise, mistake.source, hidden=False)
        _run(notebook, mistake.exercise, mistake.source, hidden=True)
    assert mistake.message in str(info.value)
    assert str(info.value).startswith(f"{mistake.exercise}: ")


@pytest.mark.parametrize(("notebook", "alternative"), ALTERNATIVES, ids=lambda v: getattr(v, "name", v))
def test_alternative_solution_passes(notebook, alternative):
    """Does a correct solution in another style pass the visible and hidden checks?"""
    for hidden in (False, True):
        assert "✓" in _run(notebook, alternative.exercise, alternative.source, hidden)


@pytest.mark.parametrize(
    ("notebook", "exercise", "source"), SOLUTIONS, ids=lambda v: v if len(v) < 40 else ""
)
def test_instructor_solution_passes(notebook, exercise, source):
    """Does the instructor's own solution pass the visible and hidden checks?"""
    prelude = "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n"
    for hidden in (False, True):
        assert "✓" in _run(notebook, exercise, prelude + source, hidden)
