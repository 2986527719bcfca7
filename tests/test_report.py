"""Does the class report turn grading records (autograder/engine/record.py) into the right CSV, figures and
HTML page?"""

from __future__ import annotations

import csv
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.engine.record import CellError, CellRecord, ExerciseScore, Record, Timings, load_records
from autograder.reporting.report import NOT_IMPLEMENTED, failure_key, write_report

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "01_linear"
# Notebook order on purpose differs from alphabetical order.
EXERCISES = {"linear_forward": 4.0, "mse_loss": 3.0, "fit": 3.0}
SCRIPT = "<script>alert(1)</script>"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _mistake(exercise: str, mistake: str, number: float) -> CellError:
    return CellError(
        "CheckFailure",
        f"{exercise}: the output has wrong values (max error {number})\n"
        f"  case: x ({int(number * 10) + 2}, 3)\n  likely mistake: {mistake}\n  fix: see the exercise text",
    )


def _untouched(exercise: str) -> CellError:
    return CellError(
        "CheckFailure",
        f"{exercise}: not implemented yet\n  fix: replace `raise NotImplementedError()` with code",
    )


def _record(student: str, outcomes: dict[str, CellError | None], **extra) -> Record:
    """A graded record; ``outcomes`` maps each exercise to None (full marks) or its test cell error."""
    cells = [CellRecord(index=1, seconds=0.5)]
    exercises = {}
    for position, (exercise, maximum) in enumerate(EXERCISES.items()):
        error = outcomes.get(exercise)
        untouched = error is not None and "not implemented yet" in error.evalue
        seconds = 3.0 if exercise == "fit" else 0.1
        cells.append(
            CellRecord(
                index=2 + 2 * position,
                grade_id=exercise,
                exercise=exercise,
                seconds=0.01,
                status="error" if untouched else "ok",
                error=CellError("NotImplementedError", "") if untouched else None,
            )
        )
        score = 0.0 if error else maximum
        cells.append(
            CellRecord(
                index=3 + 2 * position,
                grade_id=f"test_{exercise}",
                exercise=exercise,
                seconds=seconds,
                status="error" if error else "ok",
                score=score,
                max_score=maximum,
                error=error,
            )
        )
        exercises[exercise] = ExerciseScore(score, maximum)
    fields = dict(
        status="graded",
        submission_sha256="ab" * 32,
        timestamp="2026-11-20 10:00:00 UTC",
        score=sum(entry.score for entry in exercises.values()),
        max_score=sum(EXERCISES.values()),
        exercises=exercises,
        cells=cells,
        timings=Timings(total=9.0, execute=7.0, cpu=5.0, peak_memory_mb=600.0),
        graded_at="2026-11-23T15:00:00+00:00",
    )
    return Record(ASSIGNMENT, student, **(fields | extra))


def _records() -> list[Record]:
    """Six students: full marks, a shared mistake, untouched exercises, failed, capped and flagged ones."""
    reason = "nbgrader could not read the notebook: it is not valid JSON"
    failed = Record.failed(ASSIGNMENT, "erin", None, reason)
    failed.max_score = 10.0  # no cells, no exercises, no timings, no flags
    return [
        _record("alice", {}, timings=Timings(total=8.0, execute=6.0, cpu=5.0, peak_memory_mb=500.0)),
        _record(
            "bob",
            {"linear_forward": _mistake("linear_forward", "bias ignored", 0.31), "fit": _untouched("fit")},
        ),
        _record("carol", {"linear_forward": _mistake("linear_forward", "bias ignored", 1.7)}),
        _record(
            "dave",
            {
                "linear_forward": _mistake("linear_forward", "bias ignored", 0.05),
                "mse_loss": CellError("ValueError", "shapes (2, 3) and (4, 5) cannot be multiplied"),
            },
            capped="wall",
            reason="stopped after 600 s of wall time",
            timings=Timings(total=600.0),
        ),
        _record(
            SCRIPT,
            {
                "linear_forward": _mistake("linear_forward", "weight transposed", 0.2),
                "fit": _untouched("fit"),
            },
            flags=["same submission as bob"],
        ),
        failed,
    ]


def _section(page: str, heading: str) -> str:
    """The HTML from the h2 ``heading`` up to the next h2."""
    start = page.index(f"<h2>{heading}</h2>")
    end = page.find("<h2>", start + 1)
    return page[start : end if end != -1 else len(page)]


def _rows(fragment: str) -> list[list[str]]:
    """The data cells of every table row in ``fragment`` (header rows left out)."""
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", fragment)]
    return [row for row in rows if row]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("report")
    index = write_report(ASSIGNMENT, _records(), out)
    return out, index.read_text(encoding="utf-8")


def test_returns_index_next_to_its_files(report):
    """Does write_report return out_dir/index.html and write the CSV and both figures next to it?"""
    out, page = report
    assert sorted(path.name for path in out.iterdir()) == [
        "failures.png",
        "grades.csv",
        "index.html",
        "score_histogram.png",
    ]
    assert page.startswith("<!DOCTYPE html>") and "Class report: 01_linear" in page and "Generated " in page


def test_csv_has_one_row_per_student_in_order(report):
    """Does grades.csv hold one sorted row per student with exercise columns in notebook order?"""
    out, _ = report
    with (out / "grades.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    header = list(rows[0])
    assert header == [
        "student",
        "score",
        "max_score",
        "percent",
        "status",
        "capped",
        "linear_forward",
        "mse_loss",
        "fit",
        "graded_at",
        "seconds",
    ]
    assert [row["student"] for row in rows] == sorted([SCRIPT, "alice", "bob", "carol", "dave", "erin"])
    by_student = {row["student"]: row for row in rows}
    assert by_student["alice"] == {
        "student": "alice",
        "score": "10.0",
        "max_score": "10.0",
        "percent": "100.0",
        "status": "graded",
        "capped": "",
        "linear_forward": "4.0",
        "mse_loss": "3.0",
        "fit": "3.0",
        "graded_at": "2026-11-23T15:00:00+00:00",
        "seconds": "8.0",
    }
    assert (by_student["bob"]["score"], by_student["bob"]["percent"]) == ("3.0", "30.0")
    assert (by_student["bob"]["linear_forward"], by_student["bob"]["fit"]) == ("0.0", "0.0")
    assert (by_student["dave"]["capped"], by_student["dave"]["seconds"]) == ("wall", "600.0")
    erin = by_student["erin"]
    assert (erin["status"], erin["score"], erin["percent"]) == ("failed", "0.0", "0.0")
    assert erin["linear_forward"] == erin["graded_at"] == erin["seconds"] == ""


def test_summary_counts_and_percentages(report):
    """Does the summary count students, graded, failed, capped and full marks, with percent statistics?"""
    _, page = report
    summary = dict((label, value) for label, value in _rows(_section(page, "Summary")))
    assert summary["students"] == "6" and summary["graded"] == "5" and summary["full marks"] == "1"
    assert summary["failed (could not be graded, score 0)"] == "1"
    assert summary["capped (stopped by a resource limit)"] == "1"
    # Percents: 100, 30, 60, 30, 30 and 0 for the failed submission.
    assert summary["mean percent"] == "41.7%" and summary["median percent"] == "30.0%"
    assert (summary["min percent"], summary["max percent"]) == ("0.0%", "100.0%")


def test_exercise_table_pass_and_attempted_rates(report):
    """Does the exercise table list exercises in notebook order with max, mean, pass and attempted rates?"""
    _, page = report
    rows = _rows(_section(page, "Exercises"))
    assert [row[0] for row in rows] == [
        "<code>linear_forward</code>",
        "<code>mse_loss</code>",
        "<code>fit</code>",
    ]
    by_name = {row[0][6:-7]: row[1:] for row in rows}
    assert by_name["linear_forward"] == ["4.0", "0.80", "20% (1/5)", "100% (5/5)"]
    assert by_name["mse_loss"] == ["3.0", "2.40", "80% (4/5)", "100% (5/5)"]
    assert by_name["fit"] == ["3.0", "1.80", "60% (3/5)", "60% (3/5)"]


def test_most_frequent_message_ranks_first(report):
    """Is the mistake three students share ranked first with its count and students, numbers aside?"""
    _, page = report
    section = _section(page, "Most frequent failure messages")
    forward = section[
        section.index("<h3><code>linear_forward</code></h3>") : section.index("<h3><code>mse_loss")
    ]
    rows = _rows(forward)
    assert rows[0][:4] == ["1", "bias ignored", "3", "bob, carol, dave"]
    assert rows[1][:4] == ["2", "weight transposed", "1", "&lt;script&gt;alert(1)&lt;/script&gt;"]
    assert len(rows) == 2
    assert "ValueError: shapes (N, N) and (N, N) cannot be multiplied" in section
    fit = _rows(section[section.index("<h3><code>fit</code></h3>") :])
    assert fit[0][:3] == ["1", NOT_IMPLEMENTED, "2"]  # solution and test cell count once per student


def test_failed_capped_flags_and_timings_tables(report):
    """Do the failed/capped, integrity flag and timing tables show the right submissions and cells?"""
    _, page = report
    problems = _rows(_section(page, "Failed or capped submissions"))
    assert [row[:3] for row in problems] == [["dave", "graded", "wall"], ["erin", "failed", "–"]]
    assert problems[1][4] == "nbgrader could not read the notebook: it is not valid JSON"
    assert _rows(_section(page, "Integrity flags")) == [
        ["&lt;script&gt;alert(1)&lt;/script&gt;", "same submission as bob"]
    ]
    timings = _section(page, "Timings")
    slowest_cells = timings.index("code cells")
    submissions = _rows(timings[:slowest_cells])
    assert [row[0] for row in submissions][:2] == ["dave", "&lt;script&gt;alert(1)&lt;/script&gt;"]
    assert submissions[0][1] == "600.0" and len(submissions) == 5
    cells = _rows(timings[slowest_cells:])
    assert cells[0] == ["7", "<code>test_fit</code>", "fit", "3.00", "3.00", "5"]
    assert len(cells) == 7  # every timed cell, fewer than ten


def test_figures_are_valid_pngs(report):
    """Are both figures real PNGs matplotlib reads back, also inlined in the page as data URIs?"""
    import matplotlib.image

    out, page = report
    for name in ("score_histogram.png", "failures.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
        image = matplotlib.image.imread(out / name)
        assert image.shape[0] > 200 and image.shape[1] > 400 and image.std() > 0.01
    assert page.count('src="data:image/png;base64,iVBORw0KGgo') == 2


def test_escapes_student_strings(report):
    """Is a student id containing a script tag escaped everywhere in the page?"""
    _, page = report
    assert SCRIPT not in page and "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_zero_records_page(tmp_path):
    """Does an empty record list give a clear "no submissions" page, a header-only CSV and no figures?"""
    (tmp_path / "failures.png").write_bytes(PNG_SIGNATURE)  # left from an earlier report
    index = write_report(ASSIGNMENT, [], tmp_path)
    page = index.read_text(encoding="utf-8")
    assert "No submissions were graded" in page and "Summary" not in page
    assert (tmp_path / "grades.csv").read_text(encoding="utf-8").splitlines() == [
        "student,score,max_score,percent,status,capped,graded_at,seconds"
    ]
    assert not (tmp_path / "failures.png").exists() and not (tmp_path / "score_histogram.png").exists()


def test_sparse_records(tmp_path):
    """Does a report still come out of records (read from JSON) missing every optional field, scores taken
    from cells?"""
    cell = {
        "index": 4,
        "exercise": "linear_forward",
        "score": 1.0,
        "max_score": 4.0,
        "status": "error",
        "error": {"ename": "CheckFailure", "evalue": "linear_forward: wrong\n  likely mistake: bias ignored"},
    }
    records = [
        Record.from_json({"student": "zoe", "status": "graded", "cells": [cell]}),
        Record.from_json({"student": "yan", "status": "failed"}),
    ]
    page = write_report(ASSIGNMENT, records, tmp_path).read_text(encoding="utf-8")
    assert ["<code>linear_forward</code>", "4.0", "1.00", "0% (0/1)", "100% (1/1)"] in _rows(
        _section(page, "Exercises")
    )
    assert "bias ignored" in page and "No timings recorded." in page
    rows = list(csv.reader((tmp_path / "grades.csv").open(encoding="utf-8")))
    assert rows[1][:7] == ["yan", "0.0", "", "", "failed", "", ""]
    assert rows[2][:7] == ["zoe", "0.0", "", "", "graded", "", "1.0"]


def test_failure_key_groups_same_mistake():
    """Does failure_key group one likely mistake across numbers and keep different mistakes apart?"""
    first = _mistake("linear_forward", "bias ignored", 0.31).evalue
    second = _mistake("linear_forward", "bias ignored", 12.5).evalue
    other = _mistake("linear_forward", "weight transposed", 0.31).evalue
    assert first != second
    assert failure_key("CheckFailure", first) == failure_key("CheckFailure", second) == "bias ignored"
    assert failure_key("CheckFailure", other) == "weight transposed"
    assert failure_key("CheckFailure", _untouched("fit").evalue) == NOT_IMPLEMENTED
    assert failure_key("NotImplementedError", "") == NOT_IMPLEMENTED


def test_failure_key_normalises_other_errors():
    """Does failure_key replace numbers (not digits inside names), keep only line one and truncate?"""
    one = failure_key("RuntimeError", "mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)\nmore")
    two = failure_key("RuntimeError", "mat1 and mat2 shapes cannot be multiplied (8x3 and 4x6)\nother")
    assert one == two == "RuntimeError: mat1 and mat2 shapes cannot be multiplied (NxN and NxN)"
    assert failure_key("ValueError", "expected -1.5e-3, got 0.25 from conv2d") == (
        "ValueError: expected N, got N from conv2d"
    )
    assert failure_key("ValueError", "size 3") != failure_key("TypeError", "size 4")
    long = failure_key("AssertionError", "x" * 500)
    assert len(long) <= 120 and long.endswith("…")
    assert failure_key("KeyError", "") == "KeyError"


def test_load_records_skips_unreadable_files(tmp_path, caplog):
    """Does load_records return the readable records and warn about broken or foreign files?"""
    for student in ("bob", "alice"):
        (tmp_path / f"{student}.json").write_text(json.dumps({"student": student, "status": "graded"}))
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "notes.txt").write_text("ignored")
    with caplog.at_level(logging.WARNING, logger="autograder.engine.record"):
        records = load_records(tmp_path)
    assert [record.student for record in records] == ["alice", "bob"]
    assert "broken.json" in caplog.text and "list.json" in caplog.text
    assert load_records(tmp_path / "missing") == []


def test_leaves_pyplot_alone(tmp_path):
    """Does building a report leave pyplot unimported, so notebooks keep their own backend?"""
    code = (
        "import sys, pathlib; from autograder.reporting.report import write_report; "
        "from autograder.engine.record import Record; "
        "write_report('a', [Record('a', 's', 'graded', score=1, max_score=2)], "
        f"pathlib.Path({str(tmp_path)!r})); print('matplotlib.pyplot' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
    assert (tmp_path / "score_histogram.png").read_bytes().startswith(PNG_SIGNATURE)
