"""Does real nbgrader, in a temporary course folder, grade the notebooks as the contract says?

For each notebook, one `nbgrader autograde` run grades a class of simulated students:
- "solutions": the instructor's notebook, which must get full marks;
- "untouched": the released notebook as is, which must get 0 on every graded cell without crashing;
- "mistakes-K": correct answers except one known mistake per exercise (from tests/catalogue), which must
  lose points in that exercise (all of them, or those of the test cell it fails: partial credit) and none
  elsewhere, with feedback that names the mistake. The first
  PIPELINE_MISTAKES (default 6) mistakes of each exercise go through nbgrader: the catalogues list the
  curriculum's mistakes first, and every mistake, the extra ones included, is also checked in-process by
  test_checks_catalogue.py. PIPELINE_MISTAKES=all sends every one through nbgrader;
- "alternatives-K": correct answers written differently from ours, which must get full marks.
"""

from __future__ import annotations

import html
import itertools
import os
import re
import shutil

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder.authoring import notebooks as nbtools
from course_lib import protocol
from tests import catalogue
from tests.helpers import NOTEBOOKS, make_course, nbgrader, student_notebook

pytestmark = pytest.mark.slow


def _first_per_exercise(mistakes):
    """The first PIPELINE_MISTAKES mistakes of each exercise (all of them with PIPELINE_MISTAKES=all)."""
    limit = os.environ.get("PIPELINE_MISTAKES", "6")
    if limit == "all":
        return list(mistakes)
    if not limit.isdigit() or int(limit) < 1:
        raise ValueError(f"PIPELINE_MISTAKES must be a positive number or 'all', got {limit!r}")
    seen: dict[str, int] = {}
    chosen = []
    for mistake in mistakes:
        seen[mistake.exercise] = seen.get(mistake.exercise, 0) + 1
        if seen[mistake.exercise] <= int(limit):
            chosen.append(mistake)
    return chosen


def _pack(items) -> list[dict[str, object]]:
    """Group catalogue entries into submissions holding at most one entry per exercise."""
    groups: list[dict[str, object]] = []
    for item in items:
        for group in groups:
            if item.exercise not in group:
                group[item.exercise] = item
                break
        else:
            groups.append({item.exercise: item})
    return groups


def _submit(course, student: str, name: str, nb: nbformat.NotebookNode) -> None:
    folder = course / "autograder" / "submitted" / student / name
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{name}.ipynb")


def _test_cells(nb) -> dict[str, list[str]]:
    """``{exercise: [grade_id of its test cells]}``."""
    exercises = [
        c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")
    ]
    graded = [
        c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")
    ]
    return {ex: [g for g in graded if protocol.exercise_of(g, exercises) == ex] for ex in exercises}


def _feedback_text(course, student: str, name: str) -> str:
    path = course / "autograder" / "feedback" / student / name / f"{name}.html"
    text = re.sub(r"<[^>]+>", "", path.read_text())
    return html.unescape(text)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_nbgrader_grades_the_class(name, tmp_path):
    """Solutions full marks; untouched zero; each known mistake loses points in its exercise only and is
    named in the feedback; each alternative correct solution gets full marks."""
    course = make_course(tmp_path, [name])
    nbgrader(course, "generate_assignment", name, "--force")
    source = nbtools.read(nbtools.notebook_path(name))
    tests_of = _test_cells(source)
    assert all(tests_of.values()), f"every exercise needs a test cell: {tests_of}"

    book = catalogue.load(name)
    mistake_groups = _pack(_first_per_exercise(book.MISTAKES))
    alternative_groups = _pack(book.ALTERNATIVES)
    listed = {m.exercise for m in book.MISTAKES}
    assert listed == set(tests_of), f"the catalogue should list mistakes for every exercise of {name}"

    solutions_nb = nbtools.read(nbtools.notebook_path(name))
    _submit(course, "solutions", name, solutions_nb)
    _submit(course, "untouched", name, nbtools.read(nbtools.notebook_path(name, nbtools.RELEASE)))
    for index, group in enumerate(mistake_groups):
        _submit(
            course,
            f"mistakes-{index}",
            name,
            student_notebook(name, {ex: m.source for ex, m in group.items()}),
        )
    for index, group in enumerate(alternative_groups):
        _submit(
            course,
            f"alternatives-{index}",
            name,
            student_notebook(name, {ex: a.source for ex, a in group.items()}),
        )

    nbgrader(course, "autograde", name, "--force")
    nbgrader(course, "generate_feedback", name, "--force")

    db_url = f"sqlite:///{course / 'autograder' / 'gradebook.db'}"
    with Gradebook(db_url) as gradebook:

        def scores(student: str) -> dict[str, tuple[float, float]]:
            submission = gradebook.find_submission_notebook(name, name, student)
            return {g.name: (g.score, g.max_score) for g in submission.grades if g.cell_type == "code"}

        full = scores("solutions")
        assert full and all(score == top > 0 for score, top in full.values()), f"solutions: {full}"

        untouched = scores("untouched")
        assert set(untouched) == set(full) and all(score == 0 for score, _ in untouched.values()), untouched
        untouched_nb = nbtools.read(
            course / "autograder" / "autograded" / "untouched" / name / f"{name}.ipynb"
        )
        for cell in untouched_nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
            if cell.metadata.get("nbgrader", {}).get("grade"):
                errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
                text = " ".join(o.get("evalue", "") for o in errors)
                assert "not implemented yet" in text, (
                    f"untouched {grade_id} should say 'not implemented yet': {text}"
                )

        problems = []
        for index, group in enumerate(mistake_groups):
            student = f"mistakes-{index}"
            got = scores(student)
            feedback = _feedback_text(course, student, name)
            for exercise, cells in tests_of.items():
                score = sum(got[cell][0] for cell in cells)
                top = sum(got[cell][1] for cell in cells)
                if exercise in group and score >= top:
                    problems.append(f"{group[exercise].name!r} kept all {top} points of {exercise}")
                if exercise not in group and score != top:
                    problems.append(f"{student}: correct {exercise} lost points: {score}/{top}")
            for mistake in group.values():
                if mistake.message not in feedback:
                    problems.append(f"feedback for {mistake.name!r} does not say {mistake.message!r}")
        for index, group in enumerate(alternative_groups):
            got = scores(f"alternatives-{index}")
            for cell, (score, top) in got.items():
                if score != top:
                    names = ", ".join(a.name for a in group.values())
                    problems.append(f"alternatives ({names}) scored {score}/{top} in {cell}")
        assert not problems, "\n".join(problems)

    # Hidden tests reach the autograded copies and never the student notebooks.
    autograded = (course / "autograder" / "autograded" / "solutions" / name / f"{name}.ipynb").read_text()
    assert "hidden=True" in autograded
    shutil.rmtree(course)


def test_catalogue_covers_every_notebook():
    """Does every notebook have a catalogue of mistakes and alternatives?"""
    assert set(catalogue.NOTEBOOKS) == set(NOTEBOOKS)
    for name in NOTEBOOKS:
        book = catalogue.load(name)
        assert book.NOTEBOOK == name and book.MISTAKES and book.ALTERNATIVES
        names = [(m.exercise, m.name) for m in itertools.chain(book.MISTAKES, book.ALTERNATIVES)]
        repeated = {name for name in names if names.count(name) > 1}
        assert not repeated, f"{name}: catalogue entries of one exercise need distinct names: {repeated}"
