"""Do the notebooks' own test cells, run in-process, fail every catalogued mistake with its message in the
visible tests alone, and pass every alternative and the instructor's solution, hidden tests included?
And does every exercise follow the contract's rules for test cells? (The fast twin of
test_grading_pipeline.py, which sends the same through real nbgrader.)"""

from __future__ import annotations

import contextlib
import io

import pytest

from autograder.authoring import notebooks as nbtools
from course_lib import checks, protocol
from tests import catalogue
from tests.helpers import NOTEBOOKS, solution_sources

ENTRIES = [(name, entry) for name in NOTEBOOKS for entry in catalogue.load(name).MISTAKES]
ALTERNATIVES = [(name, entry) for name in NOTEBOOKS for entry in catalogue.load(name).ALTERNATIVES]
SOLUTIONS = [
    (name, exercise, source) for name in NOTEBOOKS for exercise, source in solution_sources(name).items()
]
PRELUDE = (
    "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n"
    "from torch.utils.data import DataLoader, TensorDataset\n"
)


def graded_cells(name: str, folder=nbtools.SOLUTIONS) -> dict[str, list[tuple[str, str, float]]]:
    """``{exercise: [(grade_id, source, points)]}`` of a notebook's graded test cells, in notebook order."""
    nb = nbtools.read(nbtools.notebook_path(name, folder))
    exercises = [
        c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")
    ]
    found: dict[str, list[tuple[str, str, float]]] = {exercise: [] for exercise in exercises}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code":
            exercise = protocol.exercise_of(meta["grade_id"], exercises)
            assert exercise, f"{name}: graded cell {meta['grade_id']} belongs to no exercise"
            found[exercise].append((meta["grade_id"], cell.source, float(meta.get("points", 0))))
    return found


_CELLS: dict[tuple[str, str], dict] = {}


def _cells(name: str, folder) -> dict[str, list[tuple[str, str, float]]]:
    key = (name, str(folder))
    if key not in _CELLS:
        _CELLS[key] = graded_cells(name, folder)
    return _CELLS[key]


def _run(source: str, exercise: str, cells) -> list[tuple[str, BaseException | None, str]]:
    """Define the solution cell's code, then run each test cell after it as the notebook would:
    ``[(grade_id, the check failure or None, what it printed)]``."""
    namespace: dict[str, object] = {}
    exec(compile(source, f"<{exercise}>", "exec"), namespace)
    results = []
    for grade_id, cell, _ in cells:
        out = io.StringIO()
        failure = None
        with contextlib.redirect_stdout(out):
            try:
                exec(compile(cell, f"<{grade_id}>", "exec"), namespace)
            except checks.CheckFailure as exc:
                failure = exc
        results.append((grade_id, failure, out.getvalue()))
    return results


@pytest.mark.parametrize(("notebook", "mistake"), ENTRIES, ids=lambda v: getattr(v, "name", v))
def test_mistake_fails_the_visible_tests(notebook, mistake):
    """Does the release notebook's visible test cell (hidden tests removed) fail the mistake and name it?"""
    cells = _cells(notebook, nbtools.RELEASE)[mistake.exercise]
    results = _run(mistake.source, mistake.exercise, cells)
    failures = [(grade_id, str(failure)) for grade_id, failure, _ in results if failure is not None]
    assert failures, f"{mistake.name!r} passes every visible test of {mistake.exercise}"
    named = [text for _, text in failures if mistake.message in text]
    assert named, f"{mistake.name!r}: no visible failure says {mistake.message!r}:\n" + "\n".join(
        text for _, text in failures
    )
    assert all(text.startswith(f"{mistake.exercise}: ") for _, text in failures)


@pytest.mark.parametrize(("notebook", "alternative"), ALTERNATIVES, ids=lambda v: getattr(v, "name", v))
def test_alternative_solution_passes(notebook, alternative):
    """Does a correct solution in another style pass every test cell, visible and hidden?"""
    cells = _cells(notebook, nbtools.SOLUTIONS)[alternative.exercise]
    for grade_id, failure, out in _run(alternative.source, alternative.exercise, cells):
        assert failure is None, f"{grade_id}: {failure}"
        assert "✓" in out


@pytest.mark.parametrize(
    ("notebook", "exercise", "source"), SOLUTIONS, ids=lambda v: v if len(v) < 40 else ""
)
def test_instructor_solution_passes(notebook, exercise, source):
    """Does the instructor's own solution pass every test cell, visible and hidden?"""
    cells = _cells(notebook, nbtools.SOLUTIONS)[exercise]
    for grade_id, failure, out in _run(PRELUDE + source, exercise, cells):
        assert failure is None, f"{grade_id}: {failure}"
        assert out.count("✓") == out.count("checks passed") >= 2, out  # visible and hidden


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_test_cells_follow_the_contract(notebook):
    """Does every exercise have graded test cells with visible and hidden checks, and one worth 3 points or
    more at least two (core behaviour, then edge cases: partial credit)?"""
    problems = []
    released = _cells(notebook, nbtools.RELEASE)
    for exercise, cells in _cells(notebook, nbtools.SOLUTIONS).items():
        points = sum(p for _, _, p in cells)
        if not cells:
            problems.append(f"{exercise}: no graded test cell")
            continue
        if points >= 3 and len(cells) < 2:
            problems.append(f"{exercise}: {points:g} points in one test cell (partial credit needs two)")
        for index, (grade_id, source, cell_points) in enumerate(cells):
            calls = protocol.expected_checks(source)
            visible = [c for c in calls if not c.hidden]
            hidden = [c for c in calls if c.hidden]
            part = protocol.PARTS[min(index, 1)]
            if cell_points <= 0:
                problems.append(f"{grade_id}: no points")
            if not visible or not hidden or "### BEGIN HIDDEN TESTS" not in source:
                problems.append(f"{grade_id}: needs a visible check call and a hidden block calling it again")
            if any(c.name != exercise or c.part != part for c in calls):
                problems.append(f"{grade_id}: should call check_{exercise}(..., part={part!r}) only")
        if [g for g, _, _ in released.get(exercise, [])] != [g for g, _, _ in cells]:
            problems.append(f"{exercise}: the release notebook's test cells differ from the solutions'")
    assert not problems, "\n".join(problems)
