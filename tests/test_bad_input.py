"""Are broken submissions (unreadable files, renamed or missing notebooks, deleted, re-typed, copied or
moved cells) repaired from the released notebook or reported with a clear reason, without ever changing
the submitted files, and does one broken submission leave the rest of the class's grading alone?"""

from __future__ import annotations

import copy
import hashlib
import html
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook
from nbgrader.nbgraderformat import MetadataValidator

from autograder.authoring import notebooks as nbtools
from autograder.intake import repair
from tests import catalogue
from tests.helpers import ROOT, make_course, nbgrader, student_notebook, tool_env

NAME = "01_linear"
RELEASE = nbtools.notebook_path(NAME, nbtools.RELEASE)
NOTEBOOK = f"{NAME}.ipynb"


# --------------------------------------------------------------------------------------------- builders


def _correct() -> nbformat.NotebookNode:
    """The released notebook with every exercise answered correctly."""
    return student_notebook(NAME, {})


def _grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _at(nb, grade_id: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if _grade_id(c) == grade_id)


def _bytes(nb) -> bytes:
    return nbformat.writes(nb).encode()


def _deleted(*grade_ids: str, answers: dict[str, str] | None = None) -> bytes:
    nb = student_notebook(NAME, answers or {})
    for grade_id in grade_ids:
        del nb.cells[_at(nb, grade_id)]
    return _bytes(nb)


def _wrong(exercise: str) -> str:
    """A known wrong answer to ``exercise`` (from the mistakes catalogue)."""
    return next(m.source for m in catalogue.load(NAME).MISTAKES if m.exercise == exercise)


def _retyped(*changes: tuple[str, str], nb=None) -> nbformat.NotebookNode:
    """``nb`` (a correct notebook by default) with cells turned into markdown or raw cells."""
    nb = nb or _correct()
    for grade_id, kind in changes:
        index = _at(nb, grade_id)
        old = nb.cells[index]
        new = {"markdown": nbformat.v4.new_markdown_cell, "raw": nbformat.v4.new_raw_cell}[kind]
        nb.cells[index] = new(old.source, metadata=old.metadata, id=old.id)
    return nb


def _reordered(nb=None) -> nbformat.NotebookNode:
    """The test cell of linear_forward moved above its answer cell."""
    nb = nb or _correct()
    test = nb.cells.pop(_at(nb, "test_linear_forward"))
    nb.cells.insert(_at(nb, "linear_forward"), test)
    return nb


def _duplicated(nb=None) -> nbformat.NotebookNode:
    """The answer cell of make_linear copied (metadata and all) below itself, as copy and paste does."""
    nb = nb or _correct()
    index = _at(nb, "make_linear")
    twin = copy.deepcopy(nb.cells[index])
    twin.id = "pasted-copy"
    nb.cells.insert(index + 1, twin)
    return nb


def _stripped() -> bytes:
    """Every nbgrader metadata and cell id gone (a notebook saved by a tool that drops them)."""
    nb = _correct()
    nb.nbformat_minor = 4
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)
        cell.pop("id", None)
    return _bytes(nb)


def _mangled(nb=None) -> nbformat.NotebookNode:
    """A test cell's nbgrader metadata without a schema version, an answer cell with a made-up grade_id."""
    nb = nb or _correct()
    del nb.cells[_at(nb, "test_linear_forward")].metadata.nbgrader["schema_version"]
    nb.cells[_at(nb, "linear_forward")].metadata.nbgrader["grade_id"] = "my_answer"
    return nb


def _old_format(version: int) -> bytes:
    return nbformat.writes(nbformat.convert(_correct(), version), version=version).encode()


def _latin1(nb=None) -> bytes:
    """A correct notebook with a comment in Latin-1, not UTF-8."""
    nb = nb or _correct()
    nb.cells[_at(nb, "linear_forward")].source += "\n# r\u00e9sum\u00e9"
    return _bytes(nb).replace("\u00e9".encode(), b"\xe9")


def _with_output(nb, size: int) -> bytes:
    nb.cells[_at(nb, "linear_forward")].outputs = [nbformat.v4.new_output("stream", text="x" * size)]
    return _bytes(nb)


# ------------------------------------------------------------------------------------------ unit tests


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _prepare(tmp_path: Path, files: dict[str, bytes]) -> tuple[repair.Preparation, Path]:
    """Prepare a submission made of ``files``; check the submitted files were left alone."""
    source = tmp_path / "submitted" / "student" / NAME
    source.mkdir(parents=True)
    for name, data in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    before = _digest(source)
    target = tmp_path / "work" / "student" / NAME
    preparation = repair.prepare_submission(source, target, NAME, RELEASE)
    assert _digest(source) == before, "the submitted files must never change"
    return preparation, target


def _graded(tmp_path: Path, files: dict[str, bytes], *flags: str) -> nbformat.NotebookNode:
    """Prepare a submission that must be graded, with flags containing ``flags``; return its notebook,
    after checking nbgrader's own metadata checks pass and that it needs no more repair."""
    preparation, target = _prepare(tmp_path, files)
    assert preparation.reason is None, preparation.reason
    for flag in flags:
        assert any(flag in f for f in preparation.flags), (flag, preparation.flags)
    assert bool(preparation.flags) == bool(flags), preparation.flags
    nb = nbformat.read(target / NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    MetadataValidator().validate_nb(nb)  # what nbgrader's CheckCellMetadata runs
    again, _ = _prepare(tmp_path / "again", {NOTEBOOK: (target / NOTEBOOK).read_bytes()})
    assert again.flags == [] and again.reason is None, again.flags
    return nb


def _failed(tmp_path: Path, files: dict[str, bytes], *words: str) -> str:
    preparation, _ = _prepare(tmp_path, files)
    assert preparation.reason is not None, preparation.flags
    for word in words:
        assert word in preparation.reason, (word, preparation.reason)
    return preparation.reason


def _layout(nb) -> list[tuple[str, str | None]]:
    """The notebook's cells as (type, grade_id), for its nbgrader cells and their neighbours."""
    return [(c.cell_type, _grade_id(c)) for c in nb.cells]


def _released_layout() -> list[tuple[str, str | None]]:
    return _layout(nbtools.read(RELEASE))


def test_healthy_notebook_is_left_byte_for_byte(tmp_path):
    """Is a healthy notebook (and the other files of the submission) copied exactly, with no flag?"""
    data = _bytes(_correct())
    preparation, target = _prepare(tmp_path, {NOTEBOOK: data, "data/extra.csv": b"a,b\n1,2\n"})
    assert preparation == repair.Preparation()
    assert (target / NOTEBOOK).read_bytes() == data
    assert (target / "data" / "extra.csv").read_bytes() == b"a,b\n1,2\n"
    untouched = nbtools.RELEASE / NAME / NOTEBOOK
    preparation, target = _prepare(tmp_path / "untouched", {NOTEBOOK: untouched.read_bytes()})
    assert preparation.flags == [] and (target / NOTEBOOK).read_bytes() == untouched.read_bytes()


def test_renamed_notebook_is_graded_under_the_expected_name(tmp_path):
    """Is the only notebook of a submission, under another name, graded as the assignment's notebook?"""
    data = _bytes(_correct())
    preparation, target = _prepare(tmp_path, {f"{NAME} (1).ipynb": data})
    assert preparation.reason is None
    assert preparation.flags == [f"renamed: graded {NAME} (1).ipynb as {NOTEBOOK}"]
    assert (target / NOTEBOOK).read_bytes() == data


def test_most_plausible_of_several_notebooks(tmp_path):
    """With several other notebooks, is the one named most like the assignment graded, and a readable
    copy graded when the expected notebook is broken?"""
    data = _bytes(_correct())
    files = {"Untitled.ipynb": b"{}", f"{NAME}-Copy1.ipynb": data, f"{NAME}_old.ipynb": b"{}"}
    preparation, target = _prepare(tmp_path / "several", files)
    assert preparation.flags == [f"renamed: graded {NAME}-Copy1.ipynb as {NOTEBOOK}"]
    assert (target / NOTEBOOK).read_bytes() == data
    broken = {NOTEBOOK: data[:1000], f"{NAME} (2).ipynb": data}
    preparation, target = _prepare(tmp_path / "broken", broken)
    assert preparation.reason is None and (target / NOTEBOOK).read_bytes() == data
    assert len(preparation.flags) == 1 and "invalid JSON" in preparation.flags[0]
    assert f"graded {NAME} (2).ipynb instead" in preparation.flags[0]
    # A scratch notebook is no stand-in for the assignment, nor is the previous assignment.
    scratch = nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])).encode()
    previous = nbtools.notebook_path("02_modules", nbtools.RELEASE).read_bytes()
    files = {NOTEBOOK: b"", "Untitled.ipynb": scratch, "02_modules.ipynb": previous}
    reason = _failed(tmp_path / "scratch", files, "empty submission")
    assert "Untitled.ipynb: not this assignment's notebook" in reason and "02_modules.ipynb" in reason


def test_missing_or_empty_notebook_is_reported(tmp_path):
    """Do a submission without a notebook, an empty folder and an empty notebook file get a clear reason?"""
    reason = _failed(tmp_path / "none", {"notes.txt": b"sorry"}, "no notebook in the submission")
    assert f"expected {NOTEBOOK}" in reason and "notes.txt" in reason
    _failed(tmp_path / "zero", {NOTEBOOK: b""}, "empty submission")
    _failed(tmp_path / "blank", {NOTEBOOK: b"\n  \n"}, "empty submission")
    _failed(tmp_path / "folder", {}, "empty submission")
    _failed(tmp_path / "stamp", {"timestamp.txt": b"2026-01-01 10:00:00"}, "empty submission")


def test_bytes_that_are_not_utf8_are_replaced(tmp_path):
    """Are undecodable bytes replaced (and flagged), and UTF-16 or a byte order mark read as such?"""
    nb = _graded(tmp_path / "latin1", {NOTEBOOK: _latin1()}, "not valid UTF-8: 2 undecodable byte(s)")
    assert "# r\ufffdsum\ufffd" in nb.cells[_at(nb, "linear_forward")].source
    utf16 = nbformat.writes(_correct()).encode("utf-16")
    _graded(tmp_path / "utf16", {NOTEBOOK: utf16}, "saved as UTF-16")
    _graded(tmp_path / "bom", {NOTEBOOK: b"\xef\xbb\xbf" + _bytes(_correct())}, "byte order mark")


def test_invalid_json(tmp_path):
    """Is a truncated notebook reported with the place of the error, and trailing data after a complete
    notebook ignored?"""
    data = _bytes(_correct())
    cut = {NOTEBOOK: data[: len(data) // 2]}
    reason = _failed(tmp_path / "cut", cut, "not a readable notebook: invalid JSON")
    assert "line " in reason and "column " in reason and "truncated" in reason
    _failed(tmp_path / "page", {NOTEBOOK: b"<!DOCTYPE html><html></html>"}, "web page")
    _failed(tmp_path / "list", {NOTEBOOK: b"[1, 2]"}, "JSON list, not a notebook")
    nb = _graded(tmp_path / "tail", {NOTEBOOK: data + b"\n}\x00\x00"}, "trailing data")
    assert _layout(nb) == _released_layout()


def _attachments(nb) -> dict[str, object]:
    return {name: data for cell in nb.cells for name, data in (cell.get("attachments") or {}).items()}


def test_old_nbformat_is_converted(tmp_path):
    """Are nbformat 3 and 2 notebooks converted to nbformat 4, keeping their nbgrader cells, and the image
    attachments nbformat 3 cannot hold put back from the release (or feedback could not be rendered)?"""
    released = _attachments(nbtools.read(RELEASE))
    assert released, "the released notebook shows its figures as attachments"
    for version in (3, 2):
        flags = (f"nbformat {version}.", "restored image attachment(s)")
        nb = _graded(tmp_path / str(version), {NOTEBOOK: _old_format(version)}, *flags)
        assert nb.nbformat == 4 and _layout(nb) == _released_layout()
        assert _attachments(nb) == released


def test_missing_attachment_becomes_a_plain_link(tmp_path):
    """Does a markdown reference to an attachment nobody has become a plain link (nbconvert would refuse
    to render the feedback)?"""
    nb = _correct()
    nb.cells.append(nbformat.v4.new_markdown_cell("My plot: ![plot](attachment:mine.png)"))
    nb = _graded(tmp_path, {NOTEBOOK: _bytes(nb)}, "missing attachment(s), now plain links: mine.png")
    assert nb.cells[-1].source == "My plot: ![plot](mine.png)"


def test_garbage_structure_is_reported(tmp_path):
    """Are missing version fields, cells that are not a list or not objects reported, and small structural
    faults (missing outputs, bad ids) mended?"""
    base = json.loads(_bytes(_correct()))

    def variant(change) -> bytes:
        raw = copy.deepcopy(base)
        change(raw)
        return json.dumps(raw).encode()

    _failed(tmp_path / "a", {NOTEBOOK: variant(lambda r: r.pop("nbformat"))}, "nbformat version fields")
    _failed(tmp_path / "b", {NOTEBOOK: variant(lambda r: r.update(nbformat="four"))}, "nbformat version")
    _failed(tmp_path / "c", {NOTEBOOK: variant(lambda r: r.update(cells="x"))}, "no list of cells")
    _failed(tmp_path / "d", {NOTEBOOK: variant(lambda r: r["cells"].insert(3, 7))}, "cell 3 is not a JSON")
    _failed(tmp_path / "e", {NOTEBOOK: variant(lambda r: r["cells"][3].update(cell_type="x"))}, "cell 3")

    def mendable(raw):
        del raw["cells"][3]["outputs"]
        raw["cells"][5]["id"] = raw["cells"][4]["id"]

    nb = _graded(tmp_path / "f", {NOTEBOOK: variant(mendable)}, "mended the notebook's structure")
    assert nb.cells[3].outputs == [] and nb.cells[5].id != nb.cells[4].id


def test_huge_notebooks(tmp_path, monkeypatch):
    """Is a big notebook graded with its outputs cleared, and one over the hard limit not read at all?"""
    monkeypatch.setattr(repair, "LARGE_NOTEBOOK_BYTES", 200_000)
    monkeypatch.setattr(repair, "MAX_NOTEBOOK_BYTES", 1_000_000)
    preparation, target = _prepare(tmp_path / "big", {NOTEBOOK: _with_output(_correct(), 500_000)})
    assert preparation.reason is None and "cleared the outputs" in " ".join(preparation.flags)
    nb = nbformat.read(target / NOTEBOOK, as_version=4)
    assert all(c.outputs == [] for c in nb.cells if c.cell_type == "code")
    reason = _failed(tmp_path / "huge", {NOTEBOOK: _with_output(_correct(), 1_500_000)}, "was not read")
    assert "Clear Outputs" in reason
    nb = _correct()
    nb.cells.append(nbformat.v4.new_code_cell("DATA = '" + "x" * 300_000 + "'"))
    _failed(tmp_path / "source", {NOTEBOOK: _bytes(nb)}, "without outputs")


def test_deleted_cells_are_restored(tmp_path):
    """Are deleted test, answer and locked cells put back in their released place, an answer cell empty
    (so a definition made elsewhere still counts)?"""
    for grade_id in ("test_make_linear", "setup", "colab_badge"):
        nb = _graded(tmp_path / grade_id, {NOTEBOOK: _deleted(grade_id)}, "restored deleted")
        assert _layout(nb) == _released_layout(), grade_id
        restored = nb.cells[_at(nb, grade_id)]
        assert restored.source == nbtools.read(RELEASE).cells[_at(nb, grade_id)].source
    nb = _graded(tmp_path / "answer", {NOTEBOOK: _deleted("linear_forward")}, "answer cell 'linear_forward'")
    assert _layout(nb) == _released_layout()
    assert nb.cells[_at(nb, "linear_forward")].source == repair.RESTORED_SOLUTION
    # The student rewrote the answer in a cell of their own: it is recognised as the answer cell.
    nb = _correct()
    index = _at(nb, "linear_forward")
    nb.cells[index] = nbformat.v4.new_code_cell(nb.cells[index].source)
    nb = _graded(tmp_path / "rewritten", {NOTEBOOK: _bytes(nb)}, "missing from 1 cell(s)")
    assert _layout(nb) == _released_layout()


def test_retyped_cells(tmp_path):
    """Is an answer cell made markdown graded as code with the student's source, and a test cell made raw
    restored?"""
    flags = ("had been made a markdown", "had been made a raw")
    nb = _graded(tmp_path, {NOTEBOOK: _bytes(_retyped(*RETYPES))}, *flags)
    assert _layout(nb) == _released_layout()
    assert nb.cells[_at(nb, "make_linear")].source == _correct().cells[_at(nb, "make_linear")].source


def test_copied_cell_keeps_the_first(tmp_path):
    """Does a copied answer cell keep nbgrader metadata on the first copy only (the copy still runs)?"""
    nb = _graded(tmp_path, {NOTEBOOK: _bytes(_duplicated())}, "is a copy of answer cell 'make_linear'")
    index = _at(nb, "make_linear")
    assert nb.cells[index + 1].source == nb.cells[index].source
    assert "nbgrader" not in nb.cells[index + 1].metadata


def test_reordered_cells_go_back_in_order(tmp_path):
    """Are nbgrader cells out of order moved back, with the student's own cells following them?"""
    nb = _graded(tmp_path / "moved", {NOTEBOOK: _bytes(_reordered())}, "out of the released order")
    assert _layout(nb) == _released_layout()
    # The answer cell moved to the end with a helper cell the student wrote after it: both come back.
    nb = _correct()
    answer = nb.cells.pop(_at(nb, "make_linear"))
    helper = nbformat.v4.new_code_cell("HELPER = 1")
    nb.cells += [answer, helper]
    nb = _graded(tmp_path / "end", {NOTEBOOK: _bytes(nb)}, "moved answer cell 'make_linear' back")
    index = _at(nb, "make_linear")
    assert nb.cells[index + 1].source == "HELPER = 1" and _grade_id(nb.cells[index + 2]) == "test_make_linear"


def test_any_shuffle_or_loss_of_nbgrader_cells_is_repaired(tmp_path):
    """Whatever the order of the nbgrader cells and whichever of them are deleted, does the repaired
    notebook hold them all in the released order, with every other cell kept?"""
    import random

    graded = [g for _, g in _released_layout() if g]
    for seed in range(12):
        rng = random.Random(seed)
        nb = _correct()
        cells = [c for c in nb.cells if not _grade_id(c)]
        kept = [c for c in nb.cells if _grade_id(c) and rng.random() > 0.25]
        for cell in kept:
            cells.insert(rng.randrange(len(cells) + 1), cell)
        nb.cells = cells
        preparation, target = _prepare(tmp_path / str(seed), {NOTEBOOK: _bytes(nb)})
        assert preparation.reason is None, preparation.reason
        repaired = nbformat.read(target / NOTEBOOK, as_version=4)
        MetadataValidator().validate_nb(repaired)
        assert [_grade_id(c) for c in repaired.cells if _grade_id(c)] == graded, (seed, preparation.flags)
        assert len(repaired.cells) == len(cells) + len(graded) - len(kept), seed


def test_inserted_cells_are_kept(tmp_path):
    """Are cells the student added (a helper used by the answer) kept in place, with no flag?"""
    nb = _correct()
    nb.cells.insert(_at(nb, "make_linear"), nbformat.v4.new_code_cell("def helper():\n    return 1"))
    data = _bytes(nb)
    preparation, target = _prepare(tmp_path, {NOTEBOOK: data})
    assert preparation == repair.Preparation() and (target / NOTEBOOK).read_bytes() == data


def test_lost_or_mangled_metadata(tmp_path):
    """Are cells whose nbgrader metadata was stripped, mangled or renamed recognised from the release?"""
    nbgrader_cells = sum("nbgrader" in cell.metadata for cell in nbtools.read(RELEASE).cells)
    nb = _graded(tmp_path / "stripped", {NOTEBOOK: _stripped()}, f"missing from {nbgrader_cells} cell(s)")
    assert _layout(nb) == _released_layout()
    flags = ("metadata of test cell", "nbgrader id 'my_answer'")
    nb = _graded(tmp_path / "mangled", {NOTEBOOK: _bytes(_mangled())}, *flags)
    assert _layout(nb) == _released_layout()
    nb = _correct()
    nb.cells[3].metadata["nbgrader"] = {"grade": False, "solution": False, "locked": True, "grade_id": "x"}
    nb = _graded(tmp_path / "unknown", {NOTEBOOK: _bytes(nb)}, "not a cell of this assignment")
    assert "nbgrader" not in nb.cells[3].metadata


def test_edited_test_cell_is_left_to_nbgrader(tmp_path):
    """Is a test cell whose source was edited left as submitted? nbgrader puts the released source back
    (and autograder/intake/scan.py flags the edit)."""
    nb = _correct()
    nb.cells[_at(nb, "test_make_linear")].source = "pass  # no tests for me"
    data = _bytes(nb)
    preparation, target = _prepare(tmp_path, {NOTEBOOK: data})
    assert preparation == repair.Preparation() and (target / NOTEBOOK).read_bytes() == data


def test_unreadable_timestamp_is_dropped(tmp_path):
    """Is a timestamp.txt nbgrader cannot parse left out of the working copy, with a flag?"""
    files = {NOTEBOOK: _bytes(_correct()), "timestamp.txt": b"yesterday-ish"}
    preparation, target = _prepare(tmp_path, files)
    assert preparation.reason is None and "timestamp.txt is unreadable" in preparation.flags[0]
    assert not (target / "timestamp.txt").exists()


def test_symbolic_links_are_not_followed(tmp_path):
    """Are symbolic links in a submission (to files outside it, or to nothing) left out of the copy?"""
    secret = tmp_path / "secret.txt"
    secret.write_text("not for students")
    source = tmp_path / "submitted" / NAME
    source.mkdir(parents=True)
    (source / NOTEBOOK).write_bytes(_bytes(_correct()))
    (source / "answers.txt").symlink_to(secret)
    (source / "gone").symlink_to(tmp_path / "nowhere")
    preparation = repair.prepare_submission(source, tmp_path / "work", NAME, RELEASE)
    assert preparation.reason is None
    assert preparation.flags == ["ignored symbolic link(s) in the submission: answers.txt, gone"]
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == [NOTEBOOK]


def test_an_unexpected_error_becomes_a_reason(tmp_path, monkeypatch):
    """Does a bug in the preparation become a clear reason instead of an exception?"""

    def broken(*args, **kwargs):
        raise KeyError("cells")

    monkeypatch.setattr(repair, "_load", broken)
    reason = _failed(tmp_path, {NOTEBOOK: _bytes(_correct())}, "could not be prepared", "KeyError")
    assert "grade this submission by hand" in reason


# ----------------------------------------------------------------------------------------- the pipeline

FULL = {"linear_forward": 4.0, "make_linear": 3.0, "linear_param_count": 2.0}

RETYPES = (("make_linear", "markdown"), ("test_linear_param_count", "raw"))

# student: (files, expected exercise scores or None for a failed submission, words in the flag or reason)
RETYPES = (("make_linear", "markdown"), ("test_linear_param_count", "raw"))

# student: (files, expected exercise scores or None for a failed submission, words in its flags or reason).
# Each submission that runs combines a few problems, to keep the number of kernels down.
CLASS = {
    "ok": ({NOTEBOOK: lambda: _bytes(_correct())}, FULL, ()),
    "bytes": ({NOTEBOOK: lambda: _latin1() + b"\n}garbage"}, FULL, ("not valid UTF-8", "trailing data")),
    "old": ({f"{NAME} (1).ipynb": lambda: _old_format(3)}, FULL, ("renamed", "old notebook format")),
    "big": ({NOTEBOOK: lambda: _with_output(_correct(), repair.LARGE_NOTEBOOK_BYTES)}, FULL, ("cleared",)),
    # Deleted test cells: a correct answer keeps its points, a wrong one gets none for free.
    "deltests": (
        {
            NOTEBOOK: lambda: _deleted(
                "test_make_linear",
                "test_linear_param_count",
                answers={"linear_param_count": _wrong("linear_param_count")},
            )
        },
        {**FULL, "linear_param_count": 0.0},
        ("deleted test cell 'test_make_linear'", "deleted test cell 'test_linear_param_count'"),
    ),
    "delanswer": (
        {NOTEBOOK: lambda: _deleted("linear_forward")},
        {**FULL, "linear_forward": 0.0},
        ("restored deleted answer cell",),
    ),
    "retyped": (
        {NOTEBOOK: lambda: _bytes(_mangled(_retyped(*RETYPES)))},
        FULL,
        ("made a markdown cell", "made a raw cell", "nbgrader id 'my_answer'", "metadata of test cell"),
    ),
    "moved": (
        {NOTEBOOK: lambda: _bytes(_duplicated(_reordered()))},
        FULL,
        ("out of the released order", "is a copy of"),
    ),
    "stripped": ({NOTEBOOK: _stripped}, FULL, ("nbgrader metadata missing",)),
    "cut": ({NOTEBOOK: lambda: _bytes(_correct())[:40_000]}, None, ("invalid JSON at line",)),
    "zero": ({NOTEBOOK: lambda: b""}, None, ("empty submission",)),
    "nothing": ({"answers.py": lambda: b"print(1)\n"}, None, ("no notebook in the submission",)),
    "garbage": ({NOTEBOOK: lambda: b'{"cells": [1], "nbformat": 4, "nbformat_minor": 5}'}, None, ("cell 0",)),
}


@pytest.mark.slow
def test_broken_submissions_in_one_class_run(tmp_path):
    """Does one `python -m autograder grade --jobs 2` run over a class full of broken submissions finish,
    give each repaired one the score its work deserves (with a flag), report the others with their reason,
    give the healthy one full marks, and leave every submitted file as it was?"""
    course = make_course(tmp_path, [NAME])
    nbgrader(course, "generate_assignment", NAME, "--force")
    submitted = course / "autograder" / "submitted"
    for student, (files, _, _) in CLASS.items():
        folder = submitted / student / NAME
        folder.mkdir(parents=True)
        for name, make in files.items():
            (folder / name).write_bytes(make())
    before = _digest(submitted)
    env = {**tool_env(), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", NAME, "--course", str(course), "--jobs", "2"]
        + ["--no-progress"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, f"grade failed ({run.returncode}):\n{run.stdout}{run.stderr}"
    failing = [s for s, (_, scores, _) in CLASS.items() if scores is None]
    assert f"graded {len(CLASS) - len(failing)} of {len(CLASS)} submission(s)" in run.stdout, run.stdout
    assert _digest(submitted) == before, "grading must never change a submitted file"

    page = (course / "autograder" / "reports" / NAME / "index.html").read_text()
    with Gradebook(f"sqlite:///{course / 'autograder' / 'gradebook.db'}", "torch-course") as gb:
        totals = {s.student.id: s.score for s in gb.find_assignment(NAME).submissions}
    for student, (_, scores, words) in CLASS.items():
        record = json.loads((course / "autograder" / "grading" / NAME / f"{student}.json").read_text())
        if scores is None:
            assert record["status"] == "failed", (student, record["reason"])
            assert all(word in record["reason"] for word in words), (student, record["reason"])
            assert student in page and html.escape(record["reason"]) in page, student
            assert totals[student] == 0
            continue
        assert record["status"] == "graded", (student, record["reason"])
        feedback = course / "autograder" / "feedback" / student / NAME / f"{NAME}.html"
        assert feedback.is_file(), (student, record["flags"])
        got = {exercise: entry["score"] for exercise, entry in record["exercises"].items()}
        assert got == scores, (student, got, record["flags"])
        assert totals[student] == sum(scores.values()), student
        for word in words:
            assert any(word in flag for flag in record["flags"]), (student, word, record["flags"])
        if not words:
            assert record["flags"] == [], (student, record["flags"])
