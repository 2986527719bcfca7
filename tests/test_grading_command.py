"""Does `python -m autograder grade` grade a class in parallel exactly as plain nbgrader does, resume after an
interruption, cap runaway submissions, and write the class report?"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder.authoring import notebooks as nbtools
from tests import catalogue
from tests.helpers import ROOT, grade_cli, make_course, nbgrader, student_notebook, tool_env

pytestmark = pytest.mark.slow

NAME = "01_linear"


def _submit(course, student: str, nb) -> None:
    folder = course / "autograder" / "submitted" / student / NAME
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{NAME}.ipynb")


def _grade(course, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The real command line, as an instructor runs it."""
    return grade_cli(course, NAME, *args, check=check)


def _scores(course) -> dict[str, dict[str, tuple[float | None, bool]]]:
    """``{student: {grade cell: (auto score, needs manual grade)}}`` from a course's gradebook."""
    url = f"sqlite:///{course / 'autograder' / 'gradebook.db'}"
    with Gradebook(url, "torch-course") as gb:
        return {
            sub.student.id: {
                g.name: (g.auto_score, g.needs_manual_grade) for nb in sub.notebooks for g in nb.grades
            }
            for sub in gb.find_assignment(NAME).submissions
        }


def _students(*names: str) -> list[str]:
    return [arg for name in names for arg in ("--student", name)]


def _record(course, student: str) -> dict:
    return json.loads((course / "autograder" / "grading" / NAME / f"{student}.json").read_text())


@pytest.fixture(scope="module")
def class_of_four(tmp_path_factory):
    """A class of four (correct, untouched, one mistake per exercise, a cell with a syntax error) graded by
    plain serial nbgrader in one course folder and by the parallel command in another."""
    tmp = tmp_path_factory.mktemp("grading")
    book = catalogue.load(NAME)
    first = {}
    for mistake in book.MISTAKES:
        first.setdefault(mistake.exercise, mistake)
    courses = {}
    for label in ("serial", "parallel"):
        course = make_course(tmp / label, [NAME])
        nbgrader(course, "generate_assignment", NAME, "--force")
        _submit(course, "ada", nbtools.read(nbtools.notebook_path(NAME)))
        _submit(course, "ben", nbtools.read(nbtools.notebook_path(NAME, nbtools.RELEASE)))
        _submit(course, "cy", student_notebook(NAME, {ex: m.source for ex, m in first.items()}))
        _submit(course, "dee", student_notebook(NAME, {"make_linear": "def make_linear(:\n    pass"}))
        courses[label] = course
    nbgrader(courses["serial"], "autograde", NAME, "--force")
    run = _grade(courses["parallel"], "--jobs", "2")
    return courses, run, first


def test_parallel_scores_equal_serial_nbgrader(class_of_four):
    """Does the parallel command give every cell of every student the score plain nbgrader gives?"""
    courses, run, _ = class_of_four
    serial, parallel = _scores(courses["serial"]), _scores(courses["parallel"])
    assert set(parallel) == {"ada", "ben", "cy", "dee"}
    assert parallel == serial
    assert "graded 4 of 4 submission(s)" in run.stdout
    ada = parallel["ada"]
    assert all(score is not None for score, _ in ada.values()) and any(score for score, _ in ada.values())


def test_records_hold_scores_timings_and_messages(class_of_four):
    """Does each submission's record hold its score, per-cell timings and the failure messages?"""
    courses, _, first = class_of_four
    course = courses["parallel"]
    ada, ben, cy = (_record(course, s) for s in ("ada", "ben", "cy"))
    assert ada["status"] == "graded" and ada["score"] == ada["max_score"] > 0
    assert ben["score"] == 0 and cy["score"] < cy["max_score"]
    assert ada["timings"]["total"] >= ada["timings"]["execute"] > 0
    timed = [c for c in ada["cells"] if c["seconds"] is not None]
    assert len(timed) == len(ada["cells"]) > 5 and all(c["status"] == "ok" for c in ada["cells"])
    messages = " ".join(c["error"]["evalue"] for c in cy["cells"] if c["error"])
    for mistake in first.values():
        assert mistake.message in messages
    for exercise, mistake in first.items():
        assert cy["exercises"][exercise]["score"] == 0, mistake.name
    autograded = course / "autograder" / "autograded" / "cy" / NAME / f"{NAME}.ipynb"
    feedback = course / "autograder" / "feedback" / "cy" / NAME / f"{NAME}.html"
    assert autograded.is_file() and feedback.is_file()
    assert not (course / "autograder" / ".work").exists(), "the workers' scratch folders must be removed"


def test_class_report(class_of_four):
    """Does the class report list grades, pass rates and the most frequent failure messages?"""
    courses, _, first = class_of_four
    report = courses["parallel"] / "autograder" / "reports" / NAME
    rows = (report / "grades.csv").read_text().splitlines()
    assert rows[0].startswith("student,score,max_score,percent") and len(rows) == 5
    page = (report / "index.html").read_text()
    for mistake in first.values():
        assert mistake.message in page
    assert "not implemented yet" in page
    for png in ("score_histogram.png", "failures.png"):
        assert (report / png).read_bytes().startswith(b"\x89PNG")
    # Ada and Dee hand in the same linear_forward and linear_param_count (the instructor's): the similarity
    # pass lists them, side by side; Ben's untouched stubs match nobody.
    assert "<h2>Similar submissions</h2>" in page and "<mark>" in page
    pairs = (report / "similarity.csv").read_text().splitlines()
    assert pairs[0].startswith("student_a,student_b,matching_tokens,share")
    assert pairs[1].startswith("ada,dee,") and ",yes," in pairs[1]
    assert not any("ben" in line.split(",")[:2] for line in pairs[1:])


def test_resume_grades_only_what_is_missing(class_of_four):
    """After an interruption, does a rerun grade only the missing or changed submissions (--force: all)?"""
    courses, _, _ = class_of_four
    course = courses["parallel"]
    before = _scores(course)
    again = _grade(course)
    assert "0 to grade, 4 already graded" in again.stdout, again.stdout
    # As if the grader had been stopped before it finished ben: his record is missing.
    (course / "autograder" / "grading" / NAME / "ben.json").unlink()
    # And cy resubmitted a correct notebook.
    _submit(course, "cy", nbtools.read(nbtools.notebook_path(NAME)))
    stamp = {s: _record(course, s)["graded_at"] for s in ("ada", "dee")}
    resumed = _grade(course, "--jobs", "2")
    assert "2 to grade, 2 already graded" in resumed.stdout, resumed.stdout
    after = _scores(course)
    assert after["ben"] == before["ben"] and after["ada"] == before["ada"]
    assert _record(course, "cy")["score"] == _record(course, "cy")["max_score"]
    assert {s: _record(course, s)["graded_at"] for s in ("ada", "dee")} == stamp
    forced = _grade(course, "--force", "--student", "ada")
    assert "1 to grade" in forced.stdout and _scores(course)["ada"] == before["ada"]


def test_bad_arguments_say_what_to_do(tmp_path):
    """Do an unknown assignment, a missing student and a bad --jobs get a clear message?"""
    course = make_course(tmp_path, [NAME])
    unknown = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", "99_nothing", "--course", str(course)],
        cwd=ROOT, env=tool_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert unknown.returncode != 0 and "unknown assignment '99_nothing'" in unknown.stderr
    assert "01_linear" in unknown.stderr
    jobs = _grade(course, "--jobs", "0", check=False)
    assert jobs.returncode != 0 and "--jobs must be at least 1" in jobs.stderr
    nobody = _grade(course, "--student", "zed", check=False)
    assert nobody.returncode != 0 and "no submission of 01_linear from zed" in nobody.stderr
    empty = _grade(course)
    assert "0 submission(s)" in empty.stdout


def test_zip_collect_then_grade(tmp_path):
    """Does `--zip` collect LMS downloads (plain and Canvas-style names, inside a zip) and grade them, in a
    course never released (no generate_assignment yet: the command records the assignment in the gradebook
    itself and leaves the released notebooks untouched)?"""
    import zipfile

    course = make_course(tmp_path, [NAME])
    released = course / "notebooks" / NAME / f"{NAME}.ipynb"
    before = released.read_bytes()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    nbformat.write(nbtools.read(nbtools.notebook_path(NAME)), downloads / f"ann_{NAME}.ipynb")
    with zipfile.ZipFile(downloads / "submissions.zip", "w") as archive:
        untouched = nbformat.writes(nbtools.read(nbtools.notebook_path(NAME, nbtools.RELEASE)))
        archive.writestr(f"bo_12345_67890_{NAME}.ipynb", untouched)
    run = _grade(
        course,
        "--jobs",
        "2",
        "--zip",
        str(downloads / f"ann_{NAME}.ipynb"),
        str(downloads / "submissions.zip"),
    )
    assert "nbgrader zip_collect" in run.stdout and "2 to grade" in run.stdout, run.stdout
    ann, bo = _record(course, "ann"), _record(course, "bo")
    assert ann["score"] == ann["max_score"] > 0 and bo["score"] == 0
    assert released.read_bytes() == before
    missing = _grade(course, "--zip", str(tmp_path / "nowhere.zip"), check=False)
    assert missing.returncode != 0 and "no such file or folder" in missing.stderr


CAPPED = {
    # make_linear runs forever: the CPU cap stops the kernel; linear_forward (before it) keeps its points.
    "spin": ("cpu", "def make_linear(in_features, out_features, seed=0):\n    while True:\n        pass"),
    # Allocating far past the memory cap fails in that cell only; the notebook runs on.
    "hog": (
        "memory",
        "big = bytearray(8 * 2**30)\ndef make_linear(in_features, out_features, seed=0):\n    ...",
    ),
    # Sleeping: the wall-time budget runs out.
    "nap": ("wall", "import time\ntime.sleep(3600)"),
    # Ignores interrupts while it sleeps: the wall budget runs out, the interrupt does nothing, the kernel is
    # killed.
    "mule": ("wall", "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(3600)"),
}


def test_caps_stop_runaways_and_grade_what_ran(tmp_path):
    """Does a runaway submission get stopped by its CPU, memory or wall cap, graded on what ran, and reported,
    while a correct one in the same batch gets full marks?"""
    # Two classes graded side by side (the wall-capped pair mostly waits): CPU and memory caps with a wall
    # budget far beyond them (CPU time accrues slowly on a busy machine), and the wall budget alone for the
    # two that sleep.
    by_cap = {"cpu": make_course(tmp_path / "cpu", [NAME]), "wall": make_course(tmp_path / "wall", [NAME])}
    course_of = {student: by_cap["wall" if cap == "wall" else "cpu"] for student, (cap, _) in CAPPED.items()}
    course_of["ok"] = by_cap["cpu"]
    for course in by_cap.values():
        nbgrader(course, "generate_assignment", NAME, "--force")
    _submit(course_of["ok"], "ok", nbtools.read(nbtools.notebook_path(NAME)))
    for student, (_, source) in CAPPED.items():
        _submit(course_of[student], student, student_notebook(NAME, {"make_linear": source}))
    runs = [
        (by_cap["cpu"], "--jobs", "3", "--cpu", "20", "--wall", "400", "--memory", "2"),
        (by_cap["wall"], "--jobs", "2", "--wall", "40"),
    ]
    with ThreadPoolExecutor(len(runs)) as pool:
        list(pool.map(lambda run: _grade(*run), runs))
    ok = _record(course_of["ok"], "ok")
    assert ok["capped"] is None and ok["score"] == ok["max_score"]
    for student, (cap, _) in CAPPED.items():
        record = _record(course_of[student], student)
        assert record["status"] == "graded", (student, record["reason"])
        assert record["capped"] == cap, (student, record["capped"], record["reason"])
        assert record["reason"], student
        forward = record["exercises"]["linear_forward"]
        assert forward["score"] == forward["max_score"], student
        assert record["exercises"]["make_linear"]["score"] == 0
        if cap != "memory":
            assert any(c["status"] == "not run" for c in record["cells"]), student
        else:
            assert all(c["status"] != "not run" for c in record["cells"]), student
        page = (course_of[student] / "autograder" / "reports" / NAME / "index.html").read_text()
        assert student in page
    for course in by_cap.values():
        shutil.rmtree(course)
