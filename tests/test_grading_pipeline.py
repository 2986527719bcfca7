"""Does real nbgrader, in a temporary course folder, grade the notebooks as the contract says?

For each notebook, one `nbgrader autograde` run grades a class of simulated students:
- "solutions": the instructor's notebook, which must get full marks;
- "untouched": the released notebook as is, which must get 0 on every graded cell without crashing;
- "mistakes-K": one known mistake per exercise (from tests/catalogue), which must lose points in that
  exercise (all of them, or those of the test cell it fails: partial credit), with feedback that names the
  mistake; every other exercise holds a correct answer written differently from ours (the catalogue's
  alternatives, in turn with the instructor's), which must keep all its points. Every catalogued mistake
  and alternative goes through nbgrader (PIPELINE_MISTAKES=N sends only the first N mistakes of each
  exercise, for a quick run).

The "solutions" and "untouched" students hand in whole notebooks. The others hand in what a student who
deleted the teaching cells would: the nbgrader cells (setup, solutions, tests) and the cells that only
import. nbgrader grades such a notebook like any other, and it runs in a fraction of the time.
"""

from __future__ import annotations

import ast
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
    """The first PIPELINE_MISTAKES mistakes of each exercise (all of them by default)."""
    limit = os.environ.get("PIPELINE_MISTAKES", "all")
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


def _only_imports(source: str) -> bool:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    return bool(tree.body) and all(isinstance(node, (ast.Import, ast.ImportFrom)) for node in tree.body)


def _graded_parts(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook without its teaching cells: nbgrader's cells and the cells that only import."""
    nb.cells = [
        cell
        for cell in nb.cells
        if cell.metadata.get("nbgrader") or (cell.cell_type == "code" and _only_imports(cell.source))
    ]
    return nb


def _with_alternatives(groups, alternatives, exercises) -> list[dict[str, object]]:
    """Each mistake group completed with correct answers for its other exercises: the catalogue's
    alternatives in turn, then the instructor's (None); groups are added until every alternative is used."""
    pools = {exercise: [a for a in alternatives if a.exercise == exercise] + [None] for exercise in exercises}
    needed = max((len(pool) - 1 for pool in pools.values()), default=0)
    groups = [dict(group) for group in groups] + [{} for _ in range(max(0, needed - len(groups)))]
    used = {exercise: 0 for exercise in exercises}
    for group in groups:
        for exercise in exercises:
            if exercise not in group:
                pool = pools[exercise]
                choice = pool[used[exercise] % len(pool)]
                used[exercise] += 1
                if choice is not None:
                    group[exercise] = choice
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
    listed = {m.exercise for m in book.MISTAKES}
    assert listed == set(tests_of), f"the catalogue should list mistakes for every exercise of {name}"
    groups = _with_alternatives(_pack(_first_per_exercise(book.MISTAKES)), book.ALTERNATIVES, list(tests_of))

    solutions_nb = nbtools.read(nbtools.notebook_path(name))
    _submit(course, "solutions", name, solutions_nb)
    _submit(course, "untouched", name, nbtools.read(nbtools.notebook_path(name, nbtools.RELEASE)))
    for index, group in enumerate(groups):
        answers = {exercise: entry.source for exercise, entry in group.items()}
        _submit(course, f"mistakes-{index}", name, _graded_parts(student_notebook(name, answers)))

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
        for index, group in enumerate(groups):
            student = f"mistakes-{index}"
            got = scores(student)
            feedback = _feedback_text(course, student, name)
            for exercise, cells in tests_of.items():
                score = sum(got[cell][0] for cell in cells)
                top = sum(got[cell][1] for cell in cells)
                entry = group.get(exercise)
                if isinstance(entry, catalogue.Mistake):
                    if score >= top:
                        problems.append(f"mistake {entry.name!r} kept all {top} points of {exercise}")
                    if entry.message not in feedback:
                        problems.append(f"feedback for {entry.name!r} does not say {entry.message!r}")
                elif score != top:
                    answer = f"alternative {entry.name!r}" if entry else "the instructor's solution"
                    problems.append(f"{student}: {answer} for {exercise} scored {score}/{top}")
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
