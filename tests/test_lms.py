"""Do grades reach Canvas and a plain CSV from the grading records, matching every student it can and
listing the rest? (A realistic Canvas export: byte-order mark, a posting-policy row, the points-possible
row, read-only total columns, a student in two sections and Canvas's test student.)"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.reporting import lms

EXPORT = Path(__file__).parent / "data" / "canvas_gradebook.csv"
GRADES = {
    "alovelace": lms.Grade("alovelace", 8.5, 9.0, {"linear_forward": (4.0, 4.0)}),
    "ghopper": lms.Grade("ghopper", 9.0, 9.0, {"linear_forward": (4.0, 4.0)}),  # Canvas login GHopper
    "aturing": lms.Grade("aturing", 0.0, 9.0, {"linear_forward": (0.0, 4.0)}),
    "kgodel": lms.Grade("kgodel", 6.0, 9.0, {"linear_forward": (2.0, 4.0)}),  # not in this Canvas course
}


def _rows(rows: list[list[str]]) -> dict[str, list[str]]:
    return {row[0]: row for row in rows[1:]}


def test_existing_column_is_filled_by_login():
    """Is the assignment's column (named with its Canvas id) filled by SIS login, case aside, with the
    points possible set, Canvas's identity columns kept and nothing else?"""
    rows, report = lms.fill_canvas(lms.read_canvas(EXPORT), "01_linear", GRADES)
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "01_linear (4321)"]
    by_name = _rows(rows)
    assert by_name["    Points Possible"][-1] == "9.00"
    assert by_name["    Manual Posting"][-1] == ""
    assert by_name["Lovelace, Ada"] == ["Lovelace, Ada", "1001", "S0001", "alovelace", "Section 01", "8.50"]
    assert by_name["Hopper, Grace"][3:] == ["GHopper", "Section 01 and Section 02", "9.00"]
    assert by_name["Turing, Alan"][-1] == "0.00"  # a zero is a grade, not a blank
    assert by_name["Noether, Emmy"][-1] == "" and by_name["Student, Test"][-1] == ""
    assert report.column == "01_linear (4321)"
    assert report.matched == {
        "alovelace": "Lovelace, Ada",
        "aturing": "Turing, Alan",
        "ghopper": "Hopper, Grace",
    }
    assert report.not_in_gradebook == ["kgodel"]
    assert report.not_graded == ["Noether, Emmy", "Student, Test"]


def test_new_assignment_column_and_sis_matching():
    """Is a column added for an assignment Canvas does not have yet, and can students match by SIS id?"""
    grades = {"S0001": lms.Grade("S0001", 3.0, 5.0), "S0004": lms.Grade("S0004", 5.0, 5.0)}
    rows, report = lms.fill_canvas(lms.read_canvas(EXPORT), "02_modules", grades, match="sis")
    assert rows[0][-1] == "02_modules"
    by_name = _rows(rows)
    assert by_name["    Points Possible"][-1] == "5.00"
    assert by_name["Lovelace, Ada"][-1] == "3.00" and by_name["Noether, Emmy"][-1] == "5.00"
    assert report.not_in_gradebook == [] and "Hopper, Grace" in report.not_graded


def test_written_file_reads_back_as_csv(tmp_path):
    """Does the import file round-trip through the csv module, quoting names with commas?"""
    rows, _ = lms.fill_canvas(lms.read_canvas(EXPORT), "01_linear", GRADES)
    path = tmp_path / "canvas_import.csv"
    lms.write_rows(path, rows)
    assert '"Lovelace, Ada"' in path.read_text()
    with path.open(newline="") as handle:
        assert list(csv.reader(handle)) == rows


def test_bad_gradebooks_are_refused_with_the_fix(tmp_path):
    """Are a file that is not a Canvas export and a --match column it lacks refused, naming the fix?"""
    other = tmp_path / "grades.csv"
    other.write_text("student,score\nalovelace,3\n")
    with pytest.raises(ValueError, match="not a Canvas gradebook export.*Export Entire Gradebook"):
        lms.read_canvas(other)
    with pytest.raises(ValueError, match="cannot read the Canvas gradebook .*missing.csv: No such file"):
        lms.read_canvas(tmp_path / "missing.csv")
    resaved = tmp_path / "resaved.csv"  # opened and saved again by a spreadsheet program in Windows-1252
    text = EXPORT.read_text(encoding="utf-8-sig").replace("Lovelace", "Lövelace")
    resaved.write_bytes(text.encode("cp1252"))
    with pytest.raises(ValueError, match='resaved.csv is not UTF-8 text.*"CSV UTF-8"'):
        lms.read_canvas(resaved)
    no_login = tmp_path / "no_login.csv"
    no_login.write_text("Student,ID,SIS User ID,Section\n    Points Possible,,,\n\"A, B\",1,S1,X\n")
    with pytest.raises(ValueError, match="no 'SIS Login ID' column.*--match"):
        lms.fill_canvas(lms.read_canvas(no_login), "01_linear", GRADES)
    with pytest.raises(ValueError, match="--match must be one of"):
        lms.fill_canvas(lms.read_canvas(EXPORT), "01_linear", GRADES, match="email")


def test_ambiguous_ids_are_listed_not_guessed(tmp_path):
    """Is a student id that matches two Canvas rows left out and listed, rather than given to either?"""
    twice = tmp_path / "twice.csv"
    twice.write_text(
        "Student,ID,SIS User ID,SIS Login ID,Section\n    Points Possible,,,,\n"
        '"A, One",1,S1,same,X\n"A, Two",2,S2,same,X\n'
    )
    rows, report = lms.fill_canvas(lms.read_canvas(twice), "01_linear", {"same": lms.Grade("same", 1, 2)})
    assert report.ambiguous == ["same"] and all(row[-1] == "" for row in rows[2:])


def test_files_go_into_new_folders_or_are_refused_with_the_reason(tmp_path):
    """Is an output file's folder made when missing, and is a path that cannot be written refused, naming
    it, the reason and the fix?"""
    deep = tmp_path / "exports" / "spring" / "points.csv"
    lms.write_points_csv(deep, GRADES, ["linear_forward"])
    assert deep.read_text().startswith("student,score,max_score,linear_forward")
    blocked = tmp_path / "a_file"
    blocked.write_text("mine")
    with pytest.raises(ValueError, match=r"cannot write .*/points.csv: .*a_file is a file, not a folder"):
        lms.write_points_csv(blocked / "points.csv", GRADES, ["linear_forward"])
    assert blocked.read_text() == "mine"


def test_points_csv_has_a_column_per_exercise(tmp_path):
    """Does the plain CSV hold one row per student with the points of each exercise?"""
    path = tmp_path / "points.csv"
    lms.write_points_csv(path, GRADES, ["linear_forward", "make_linear"])
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["student", "score", "max_score", "linear_forward", "make_linear"]
    assert rows[1] == ["alovelace", "8.50", "9.00", "4.00", ""]
    assert [row[0] for row in rows[1:]] == sorted(GRADES)


def test_export_command_round_trip(tmp_path):
    """Through `python -m autograder export`: grading records in, a Canvas import, the list of who is
    missing, and the plain CSV out; a bad gradebook refused with the reason."""
    from autograder.engine.record import ExerciseScore, Record
    from tests.helpers import ROOT, make_course, tool_env

    course = make_course(tmp_path, ["01_linear"])
    records = course / "autograder" / "grading" / "01_linear"
    for student, score in (("alovelace", 9.0), ("GHOPPER", 4.5), ("kgodel", 3.0)):
        exercises = {"linear_forward": ExerciseScore(min(score, 4.0), 4.0)}
        Record("01_linear", student, "graded", score=score, max_score=9.0, exercises=exercises).write(
            records / f"{student}.json"
        )
    Record.failed("01_linear", "aturing", None, "not a notebook").write(records / "aturing.json")

    def export(*args: str):
        command = [sys.executable, "-m", "autograder", "export", "01_linear", "--course", str(course), *args]
        return subprocess.run(command, cwd=ROOT, env=tool_env(), capture_output=True, text=True, timeout=300)

    points = tmp_path / "points.csv"
    done = export("--canvas", str(EXPORT), "--csv", str(points))
    assert done.returncode == 0, done.stderr
    out = course / "autograder" / "reports" / "01_linear" / "canvas_import.csv"
    with out.open(newline="") as handle:
        by_name = _rows(list(csv.reader(handle)))
    assert by_name["Lovelace, Ada"][-1] == "9.00" and by_name["Hopper, Grace"][-1] == "4.50"
    assert by_name["Turing, Alan"][-1] == "0.00"  # a submission that could not be graded counts 0
    assert by_name["    Points Possible"][-1] == "9.00"
    assert "1 graded here but not in the Canvas gradebook: kgodel" in done.stdout
    assert "2 in Canvas without a grading record (left empty): Noether, Emmy, Student, Test" in done.stdout
    unmatched = (out.parent / "canvas_import_unmatched.csv").read_text().splitlines()
    assert unmatched[0] == "student,problem" and len(unmatched) == 4 and unmatched[1].startswith("kgodel,")
    with points.open(newline="") as handle:
        table = list(csv.reader(handle))
    exercises = ["linear_forward", "make_linear", "linear_param_count"]
    assert table[0] == ["student", "score", "max_score", *exercises]
    assert ["GHOPPER", "4.50", "9.00", "4.00", "", ""] in table

    refused = export("--canvas", str(points))
    assert refused.returncode == 1 and "not a Canvas gradebook export" in refused.stderr
    # The Canvas export is never written over, whichever option names it.
    mine = tmp_path / "gradebook.csv"
    mine.write_bytes(EXPORT.read_bytes())
    for option in ("--out", "--csv"):
        kept = export("--canvas", str(mine), option, str(tmp_path / "." / "gradebook.csv"))
        assert kept.returncode == 1 and f"{option} " in kept.stderr, kept.stderr
        assert "is the Canvas gradebook being read" in kept.stderr, kept.stderr
        assert f"give {option} another path" in kept.stderr, kept.stderr
    assert mine.read_bytes() == EXPORT.read_bytes()
    nothing = export()
    assert nothing.returncode == 1 and "--canvas GRADEBOOK.csv" in nothing.stderr
