"""Is nothing lost when the grader is killed? `kill -9` of the whole grading run at two moments, then a run to
the end: every submission graded once, the gradebook consistent, the submitted files untouched, no process
left behind; and grading the same submissions again gives the same results."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from autograder.authoring import notebooks as nbtools
from benchmarks.simulate import solution_sources, student_notebook, submit
from tests import catalogue
from tests.helpers import ROOT, grade_cli, make_course, nbgrader, tool_env

pytestmark = pytest.mark.slow

NAME = "01_linear"


def _command(course: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "autograder",
        "grade",
        NAME,
        "--course",
        str(course),
        "--no-progress",
        *args,
    ]


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


def _processes_of(course: Path) -> list[str]:
    """Command lines of live processes that mention the course folder (workers, kernels, sandboxes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(course) in cmdline or str(course) in environ:
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def _kill_when(course: Path, ready) -> None:
    """Start a grading run in its own process group and SIGKILL the whole group once ``ready()`` holds."""
    process = subprocess.Popen(
        _command(course, "--jobs", "2"),
        cwd=ROOT,
        env=tool_env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert process.poll() is None, "the run ended before it could be killed: give it more submissions"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _scores(course: Path) -> dict[str, dict[str, float | None]]:
    with Gradebook(f"sqlite:///{course / 'autograder' / 'gradebook.db'}", "torch-course") as gb:
        submissions = gb.find_assignment(NAME).submissions
        students = [s.student.id for s in submissions]
        assert len(students) == len(set(students)), f"a student graded twice: {students}"
        return {
            s.student.id: {g.name: g.auto_score for nb in s.notebooks for g in nb.grades} for s in submissions
        }


def test_kill_nine_then_resume(tmp_path):
    """After two kill -9s, does a rerun finish with every submission graded once and nothing lost?"""
    course = make_course(tmp_path, [NAME])
    nbgrader(course, "generate_assignment", NAME, "--force")
    mistakes = [m for m in catalogue.load(NAME).MISTAKES][:2]
    students = {"c1": {}, "c2": {}, "m1": {mistakes[0].exercise: mistakes[0].source}}
    students |= {"m2": {mistakes[1].exercise: mistakes[1].source}}
    for student, replacements in students.items():
        submit(course, student, NAME, student_notebook(NAME, replacements))
    for student in ("u1", "u2"):
        submit(course, student, NAME, nbtools.read(nbtools.notebook_path(NAME, nbtools.RELEASE)))
    submitted = course / "autograder" / "submitted"
    before = _hashes(submitted)
    records = course / "autograder" / "grading" / NAME

    # Once while the workers start, once after some submissions are in.
    _kill_when(course, lambda: (course / "autograder" / ".work" / NAME).exists())
    _kill_when(course, lambda: len(list(records.glob("*.json"))) >= 2)
    deadline = time.monotonic() + 30
    while _processes_of(course) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _processes_of(course), f"processes left after kill -9: {_processes_of(course)}"

    # While one run holds the assignment, a second one is refused.
    first = subprocess.Popen(
        _command(course, "--jobs", "2"),
        cwd=ROOT,
        env=tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    second = subprocess.run(
        _command(course), cwd=ROOT, env=tool_env(), capture_output=True, text=True, timeout=120
    )
    assert second.returncode != 0 and "another grading run of 01_linear is in progress" in second.stderr
    out, err = first.communicate(timeout=900)
    assert first.returncode == 0, out + err

    assert sorted(p.stem for p in records.glob("*.json")) == sorted([*students, "u1", "u2"])
    scores = _scores(course)
    assert set(scores) == {*students, "u1", "u2"}
    top = {cell: max(s[cell] or 0 for s in scores.values()) for cell in scores["c1"]}
    assert scores["c1"] == scores["c2"] == top and all(v > 0 for v in top.values())
    assert all(score == 0 for score in scores["u1"].values())
    for student in ("m1", "m2"):
        assert sum(v or 0 for v in scores[student].values()) < sum(top.values()), scores[student]
    assert _hashes(submitted) == before, "grading changed a submitted file"
    assert not (course / "autograder" / ".work").exists()

    # The same submissions graded again: the same results.
    recorded = {p.stem: json.loads(p.read_text())["exercises"] for p in records.glob("*.json")}
    grade_cli(course, NAME, "--jobs", "2", "--force")
    assert _scores(course) == scores
    assert {p.stem: json.loads(p.read_text())["exercises"] for p in records.glob("*.json")} == recorded


def test_ctrl_c_stops_the_run_at_once_and_keeps_what_was_graded(tmp_path):
    """Ctrl-C in the terminal (SIGINT to the whole process group) while a submission would take minutes:
    does the run stop within seconds with one clear line and no traceback, keep the submissions it had
    merged, leave no process behind, and does the next run grade the rest?"""
    course = make_course(tmp_path, [NAME])
    nbgrader(course, "generate_assignment", NAME, "--force")
    slow = "import time\n\ntime.sleep(300)\n" + solution_sources(NAME)["make_linear"]
    students = {"c1": {}, "c2": {}, "c3": {}, "z_slow": {"make_linear": slow}}  # the slow one sorts last
    for student, replacements in students.items():
        submit(course, student, NAME, student_notebook(NAME, replacements))
    records = course / "autograder" / "grading" / NAME
    run = subprocess.Popen(
        _command(course, "--jobs", "2"), cwd=ROOT, env=tool_env(), start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    while not (records / "z_slow.json").exists() and _grading(course, "z_slow") is None:
        assert run.poll() is None and time.monotonic() < deadline, "the slow submission was never started"
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGINT)
    out, err = run.communicate(timeout=60)  # the slow submission alone would take 300 s
    kept = sorted(p.stem for p in records.glob("*.json"))
    assert run.returncode == 130, out + err
    assert "Traceback" not in err and err.strip().splitlines() == [
        f"interrupted: {len(kept)} of 4 submission(s) graded and kept, {4 - len(kept)} not graded. "
        "Run the command again to grade the rest."
    ], err
    assert "z_slow" not in kept
    deadline = time.monotonic() + 30
    while _processes_of(course) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _processes_of(course), f"processes left after Ctrl-C: {_processes_of(course)}"

    rerun = grade_cli(course, NAME, "--jobs", "2", "--wall", "20")
    assert f"{4 - len(kept)} to grade, {len(kept)} already graded" in rerun.stdout, rerun.stdout
    assert sorted(p.stem for p in records.glob("*.json")) == sorted(students)
    assert json.loads((records / "z_slow.json").read_text())["capped"] is not None
    assert set(_scores(course)) == set(students)


def _grading(course: Path, student: str) -> int | None:
    """The pid of a kernel launcher grading ``student``'s submission to the course right now, or None (its
    working folder is the course's .work/.../autograded/STUDENT/NN)."""
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or b"launch.py" not in (entry / "cmdline").read_bytes():
                continue
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if cwd.is_relative_to(course) and cwd.parent.name == student:
            return int(entry.name)
    return None
