"""Does the grading engine's logic hold, piece by piece, without a kernel: the record and its versions, a
submission's files as data, the gradebook snapshot and merge, the evidence rule, nbgrader's error extraction,
the record built from an autograded notebook, the fingerprint and the workers' check? (Fast.)"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import threading
from pathlib import Path

import nbformat
import pytest

from autograder.engine import fingerprint as fp
from autograder.engine import results
from autograder.engine.executors import check_workers, scheduler_address
from autograder.engine.folder import Folder, FolderTooLarge, folder_sha256
from autograder.engine.merge import Merger, snapshot
from autograder.engine.record import (
    RECORD_VERSION,
    CellError,
    CellRecord,
    ExerciseScore,
    Record,
    RecordError,
    Timings,
    load_records,
)
from autograder.engine.run import Interrupted, _interrupts_deferred, _sigterm_interrupts, is_done
from autograder.engine.settings import Course, Options, Settings
from autograder.engine.task import Outcome, Task
from autograder.kernel.caps import CellRun, ExecutionReport, evidence_problem
from autograder.nbgrader_cli import tool_env
from course_lib import protocol

ASSIGNMENT = "01_linear"
COURSE_ID = "torch-course"
KEY = b"k" * 32


# ------------------------------------------------------------------------------------------------ record
def _full_record() -> Record:
    return Record(
        ASSIGNMENT,
        "ada",
        "graded",
        submission_sha256="ab" * 32,
        timestamp="2026-11-20 10:00:00 UTC",
        capped="memory",
        reason="cell 7 ran out of its memory cap of 4 GiB; later cells ran on",
        score=3.0,
        max_score=9.0,
        exercises={"linear_forward": ExerciseScore(3.0, 4.0)},
        cells=[
            CellRecord(1, seconds=0.5),
            CellRecord(
                4, "test_linear_forward", "linear_forward", 0.2, "error", 0.0, 1.0, CellError("E", "x")
            ),
        ],
        timings=Timings(9.0, 8.0, 7.0, 0.5, 5.0, 600.0),
        graded_at="2026-11-23T15:00:00+00:00",
        flags=["a flag"],
        worker="vm (pid 1)",
    )


def test_record_round_trips_through_json(tmp_path):
    """Does a record written to disk read back equal, with its version, and keep the keys the tests read?"""
    record = _full_record()
    path = tmp_path / "grading" / "ada.json"
    record.write(path)
    data = json.loads(path.read_text())
    assert data["version"] == RECORD_VERSION and data["exercises"]["linear_forward"] == {
        "score": 3.0,
        "max_score": 4.0,
    }
    assert data["cells"][1]["error"] == {"ename": "E", "evalue": "x"} and data["timings"]["execute"] == 7.0
    assert Record.read(path) == record
    assert not list(path.parent.glob(".*.tmp"))


def test_record_reads_old_and_sparse_versions_and_refuses_newer():
    """Is a version-1 record (no version key, an int worker) read, missing fields defaulted, a newer version
    refused with what to do, and a file that is no record named as such?"""
    old = Record.from_json(
        {"student": "bo", "status": "graded", "worker": 1234, "score": "n/a", "cells": [7]}
    )
    assert (old.version, old.worker, old.score, old.cells, old.timings) == (
        RECORD_VERSION,
        "1234",
        0.0,
        [],
        Timings(),
    )
    with pytest.raises(RecordError, match="newer than this grader reads.*update the course checkout"):
        Record.from_json({"student": "bo", "version": RECORD_VERSION + 1})
    with pytest.raises(RecordError, match="not a grading record"):
        Record.from_json([1, 2])


def test_exercise_scores_fall_back_to_the_graded_cells():
    """Without exercise totals, are a graded record's scores summed per exercise from its test cells?"""
    cells = [
        CellRecord(3, "test_f", "f", score=1.0, max_score=2.0),
        CellRecord(5, "test_f_edge", "f", None, "ok", 2, 2),
    ]
    assert Record(ASSIGNMENT, "x", "graded", cells=cells).exercise_scores() == {"f": (3.0, 4.0)}
    assert Record(ASSIGNMENT, "x", "failed", cells=cells).exercise_scores() == {}


def test_load_records_skips_what_is_not_a_record(tmp_path, caplog):
    """Are unreadable files and leftovers of interrupted writes skipped, each broken file named?"""
    _full_record().write(tmp_path / "ada.json")
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / ".ada.json.99.tmp").write_text("{")
    assert [r.student for r in load_records(tmp_path)] == ["ada"]
    assert "broken.json" in caplog.text and ".ada.json" not in caplog.text


# ------------------------------------------------------------------------------------------------ folder
def _submission(root: Path) -> Path:
    folder = root / "submitted" / "ada" / ASSIGNMENT
    (folder / "data").mkdir(parents=True)
    (folder / f"{ASSIGNMENT}.ipynb").write_text('{"cells": []}')
    (folder / "data" / "weights.bin").write_bytes(bytes(range(256)))
    (folder / "empty").mkdir()
    os.symlink("/etc/passwd", folder / "link")
    os.utime(folder / f"{ASSIGNMENT}.ipynb", (1_000_000, 1_000_000))
    return folder


def test_folder_round_trip_keeps_files_times_and_links_unfollowed(tmp_path):
    """Does a folder sent as data come back with the same bytes, modification times, empty folders and
    symbolic links (as links, never their targets), and the same hash as the folder on disk?"""
    source = _submission(tmp_path)
    data = Folder.read(source)
    assert {f.path for f in data.files} == {f"{ASSIGNMENT}.ipynb", "data/weights.bin"}
    assert data.links == (("link", "/etc/passwd"),) and "empty" in data.dirs
    copy = tmp_path / "copy"
    data.write(copy)
    assert (copy / "data" / "weights.bin").read_bytes() == bytes(range(256))
    assert (copy / f"{ASSIGNMENT}.ipynb").stat().st_mtime == 1_000_000
    assert os.readlink(copy / "link") == "/etc/passwd" and (copy / "empty").is_dir()
    assert data.sha256() == folder_sha256(source) == folder_sha256(copy) == Folder.read(copy).sha256()


def test_folder_hash_of_plain_files_is_the_one_records_hold():
    """Is a folder of regular files hashed as the grader always hashed submissions (so old records hold)?"""
    import hashlib

    folder = Folder.read(Path(__file__).resolve().parent / "catalogue")
    digest = hashlib.sha256()
    for file in sorted(folder.files, key=lambda f: Path(f.path)):
        digest.update(file.path.encode() + b"\0" + file.data + b"\0")
    assert not folder.links and folder.sha256() == digest.hexdigest()


def test_folder_refuses_too_much_and_paths_outside(tmp_path):
    """Is a submission over the size limit refused with the reason, and a path leaving the folder refused?"""
    with pytest.raises(FolderTooLarge, match="more than 0 MiB.*without big data files"):
        Folder.read(_submission(tmp_path), limit=100)
    with pytest.raises(ValueError, match="not a path inside a folder"):
        Folder((), (("../escape", "x"),)).write(tmp_path / "out")


# ------------------------------------------------------------------------------------- gradebook, merge
@pytest.fixture(scope="module")
def gradebook(tmp_path_factory) -> Path:
    """A course gradebook that knows 01_linear: two graded test cells of 1 and 2 points."""
    from nbgrader.api import Gradebook

    path = tmp_path_factory.mktemp("gradebook") / "gradebook.db"
    saved = os.environ["PATH"]
    os.environ["PATH"] = tool_env()["PATH"]  # nbgrader runs alembic when it makes a gradebook
    try:
        with Gradebook(f"sqlite:///{path}", COURSE_ID) as gb:
            gb.add_assignment(ASSIGNMENT)
            gb.add_notebook(ASSIGNMENT, ASSIGNMENT)
            for name, points in (("test_f", 1.0), ("test_f_edge", 2.0)):
                gb.add_grade_cell(name, ASSIGNMENT, ASSIGNMENT, max_score=points, cell_type="code")
    finally:
        os.environ["PATH"] = saved
    return path


def _course(tmp_path: Path, gradebook: Path) -> Course:
    course = Course(tmp_path / "course")
    course.autograder.mkdir(parents=True)
    shutil.copy(gradebook, course.gradebook)
    return course


def _grades(core: float, edge: float) -> dict:
    cell = {"needs_manual_grade": False, "cell_type": "code"}
    return {
        "timestamp": None,
        "notebooks": {
            ASSIGNMENT: {
                "late_submission_penalty": None,
                "grades": {
                    "test_f": {**cell, "auto_score": core, "max_score": 1.0},
                    "test_f_edge": {**cell, "auto_score": edge, "max_score": 2.0},
                },
                "comments": {},
            }
        },
    }


def _scores(course: Course) -> dict[str, dict[str, tuple[float | None, bool]]]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course.gradebook}", COURSE_ID) as gb:
        return {
            sub.student.id: {
                g.name: (g.auto_score, g.needs_manual_grade) for nb in sub.notebooks for g in nb.grades
            }
            for sub in gb.find_assignment(ASSIGNMENT).submissions
        }


def _outcome(student: str, core: float, edge: float, sha: str = "s1") -> Outcome:
    record = Record(ASSIGNMENT, student, "graded", submission_sha256=sha, score=core + edge, max_score=3.0)
    return Outcome(record, _grades(core, edge), Folder(), None)


def test_merge_writes_files_grades_then_record_once(tmp_path, gradebook):
    """Does a merge put the autograded folder, the grades and the record in place, and does merging the same
    outcome again (a retried task) leave one submission with the same scores?"""
    course = _course(tmp_path, gradebook)
    merger = Merger(course, COURSE_ID)
    try:
        outcome = _outcome("ada", 1.0, 0.5)
        outcome.autograded = Folder.read(_submission(tmp_path / "worker"))
        first = merger.merge(outcome)
        again = merger.merge(_outcome("ada", 1.0, 0.5))
    finally:
        merger.close()
    assert again is first and first.graded_at
    assert _scores(course) == {"ada": {"test_f": (1.0, False), "test_f_edge": (0.5, False)}}
    assert (course.folder("autograded") / "ada" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file()
    assert Record.read(course.records(ASSIGNMENT) / "ada.json").score == 1.5


def test_merge_of_a_failed_submission_and_a_regrade(tmp_path, gradebook):
    """Does a submission that could not be graded get zero auto scores marked for manual grading, and does a
    regrade replace them (one submission), keeping a manual score the instructor gave?"""
    from nbgrader.api import Gradebook

    course = _course(tmp_path, gradebook)
    merger = Merger(course, COURSE_ID)
    try:
        merger.merge(Outcome(Record.failed(ASSIGNMENT, "bo", "s1", "no notebook in the submission")))
        assert _scores(course) == {"bo": {"test_f": (0.0, True), "test_f_edge": (0.0, True)}}
        with Gradebook(f"sqlite:///{course.gradebook}", COURSE_ID) as gb:
            grade = gb.find_grade("test_f_edge", ASSIGNMENT, ASSIGNMENT, "bo")
            grade.manual_score = 1.5
            gb.db.commit()
        merger.merge(_outcome("bo", 1.0, 2.0, sha="s2"))
    finally:
        merger.close()
    assert _scores(course) == {"bo": {"test_f": (1.0, False), "test_f_edge": (2.0, True)}}
    assert Record.read(course.records(ASSIGNMENT) / "bo.json").submission_sha256 == "s2"


def test_snapshot_keeps_the_assignment_and_drops_every_submission(tmp_path, gradebook):
    """Does the workers' copy of the gradebook know the assignment's cells but no student or submission?"""
    course = _course(tmp_path, gradebook)
    merger = Merger(course, COURSE_ID)
    merger.merge(_outcome("ada", 1.0, 2.0))
    merger.close()
    taken = snapshot(course.gradebook, tmp_path / "work" / "gradebook.db")
    db = sqlite3.connect(taken.path)
    counts = {
        t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("student", "grade", "grade_cells")
    }
    db.close()
    assert counts == {"student": 0, "grade": 0, "grade_cells": 2}
    assert (
        taken.with_data().data == Path(taken.path).read_bytes() and taken.with_data().digest == taken.digest
    )
    copy = tmp_path / "copy.db"
    taken.with_data().write_to(copy)
    assert copy.read_bytes() == Path(taken.path).read_bytes()


def test_is_done_needs_the_same_files_and_the_autograded_notebook(tmp_path, gradebook):
    """Is a submission done only with a record of the same files (and, if graded, its autograded notebook)?"""
    course = _course(tmp_path, gradebook)
    Record(ASSIGNMENT, "ada", "graded", submission_sha256="s1").write(course.records(ASSIGNMENT) / "ada.json")
    Record.failed(ASSIGNMENT, "bo", "s1", "empty").write(course.records(ASSIGNMENT) / "bo.json")
    assert not is_done(course, ASSIGNMENT, "ada", "s1")  # no autograded notebook
    notebook = course.folder("autograded") / "ada" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    notebook.parent.mkdir(parents=True)
    notebook.write_text("{}")
    assert is_done(course, ASSIGNMENT, "ada", "s1") and not is_done(course, ASSIGNMENT, "ada", "s2")
    assert is_done(course, ASSIGNMENT, "bo", "s1") and not is_done(course, ASSIGNMENT, "cy", "s1")


# --------------------------------------------------------------------------------------- evidence rule
def _test_cell(
    source: str, stdout: str = "", error: bool = False, grade: bool = True
) -> nbformat.NotebookNode:
    outputs = [nbformat.v4.new_output("stream", name="stdout", text=stdout)]
    if error:
        outputs.append(nbformat.v4.new_output("error", ename="CheckFailure", evalue="x", traceback=[]))
    meta = {"nbgrader": {"grade": grade, "solution": False, "grade_id": "test_f", "points": 1}}
    return nbformat.v4.new_code_cell(source, metadata=meta, outputs=outputs)


def test_evidence_rule():
    """Does a graded test cell that ran cleanly need one signed line per check call, and only such a cell?"""
    source = (
        "checks.check_linear_forward(f)\nchecks.check_linear_forward(f, part='edge', hidden=True, seed=3)\n"
    )
    sign = protocol.signer(KEY)
    core = protocol.Evidence("linear_forward", "core", 0, 0, 5, 1).line(sign)
    edge = protocol.Evidence("linear_forward", "edge", 1, 3, 5, 2).line(sign)
    assert evidence_problem(_test_cell(source, f"{core}\n{edge}\n"), KEY) is None
    assert (
        evidence_problem(_test_cell(source, core), KEY)
        == "check_linear_forward(part='edge', hidden=True, seed=3)"
    )
    forged = protocol.Evidence("linear_forward", "edge", 1, 3, 5, 2).line(protocol.signer(b"guess"))
    assert evidence_problem(_test_cell(source, f"{core}\n{forged}"), KEY) is not None
    assert evidence_problem(_test_cell(source, "", error=True), KEY) is None  # it fails anyway
    assert evidence_problem(_test_cell(source, "", grade=False), KEY) is None  # not graded
    assert evidence_problem(_test_cell(source, ""), None) is None  # no key: plain nbgrader


# ------------------------------------------------------------------------------------ nbgrader's errors
def test_last_error_takes_the_cause_and_the_error_lines():
    """Does a failed nbgrader call come down to the exception it logged and its own error lines?"""
    log = (
        "[INFO] Converting notebook\n[ERROR] There was an error processing assignment: x\n"
        'Traceback (most recent call last):\n  File "a.py", line 1, in f\n    g()\n'
        "nbformat.reader.NotJSONError: Notebook does not appear to be JSON: ''\n"
        "[ERROR] see the log above\n[CRITICAL] nbgrader autograde failed\n"
    )
    assert results.last_error({"success": False, "log": log}) == (
        "nbformat.reader.NotJSONError: Notebook does not appear to be JSON: ''\n"
        "There was an error processing assignment: x\n[CRITICAL] nbgrader autograde failed"
    )
    assert results.last_error({"log": "", "error": "Traceback...\nValueError: bad"}) == "ValueError: bad"
    assert results.last_error({}) == "nbgrader could not grade this submission"


# ------------------------------------------------------------------------------- record from a notebook
def _autograded() -> nbformat.NotebookNode:
    def cell(source, grade_id=None, points=0, solution=False, outputs=()):
        meta = {
            "nbgrader": {"grade_id": grade_id, "solution": solution, "grade": points > 0, "points": points}
        }
        return nbformat.v4.new_code_cell(source, metadata=meta if grade_id else {}, outputs=list(outputs))

    refused = f"f: {protocol.REFUSAL} torch.allclose. The tests compare"
    return nbformat.v4.new_notebook(
        cells=[
            cell("import torch"),
            cell("def f(): ...", "f", solution=True),
            cell("checks.check_f(f)", "test_f", 1),
            cell(
                "checks.check_f(f, part='edge')",
                "test_f_edge_cases",
                2,
                outputs=[nbformat.v4.new_output("error", ename="CheckFailure", evalue=refused, traceback=[])],
            ),
            cell(
                "big = bytes(2**40)",
                outputs=[nbformat.v4.new_output("error", ename="MemoryError", evalue="")],
            ),
        ]
    )


def test_build_record_from_the_autograded_notebook():
    """Are cells mapped to their exercise (edge-case cells too), scored, timed, flagged, and a memory error
    seen as the memory cap?"""
    grades = _grades(1.0, 0.0)
    grades["notebooks"][ASSIGNMENT]["grades"]["test_f_edge_cases"] = grades["notebooks"][ASSIGNMENT][
        "grades"
    ].pop("test_f_edge")
    report = ExecutionReport(
        cells={0: CellRun(1.5, "ok"), 2: CellRun(0.2, "ok")}, execute_seconds=3.0, flags=["x"]
    )
    record = results.build_record(Record(ASSIGNMENT, "ada"), grades, report, _autograded(), memory_gib=2)
    assert (record.status, record.score, record.max_score) == ("graded", 1.0, 3.0)
    assert record.exercises == {"f": ExerciseScore(1.0, 3.0)}
    assert [(c.index, c.exercise, c.seconds, c.score) for c in record.cells] == [
        (0, None, 1.5, None),
        (1, "f", None, None),
        (2, "f", 0.2, 1.0),
        (3, "f", None, 0.0),
        (4, None, None, None),
    ]
    assert record.capped == "memory" and "memory cap of 2 GiB" in record.reason
    assert record.flags == ["x", "test_f_edge_cases: the checks refused to run: torch.allclose"]
    assert record.timings.execute == 3.0


def test_build_record_of_a_run_stopped_by_a_cap():
    """Does a run the wall budget stopped become a capped record with its reason, even without grades?"""
    report = ExecutionReport(stopped="wall", reason="grading stopped here: the submission used up its budget")
    record = results.build_record(Record(ASSIGNMENT, "ada", reason="nbgrader failed"), None, report, None, 4)
    assert (record.status, record.capped, record.reason) == ("failed", "wall", report.reason)


# ------------------------------------------------------------------------- fingerprint, workers' check
def test_fingerprint_names_what_differs(tmp_path):
    """Does the fingerprint name a changed solutions file, another package version and a missing folder?"""
    course = tmp_path / "course"
    (course / "solutions" / ASSIGNMENT).mkdir(parents=True)
    (course / "notebooks" / ASSIGNMENT).mkdir(parents=True)
    (course / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").write_text("one")
    here = fp.fingerprint(course, [ASSIGNMENT])
    assert "course_lib/protocol.py" in here and "autograder/engine/run.py" in here
    assert here["package nbgrader"] != "not installed" and fp.digest(here) == fp.digest(dict(here))
    (course / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").write_text("two")
    there = fp.fingerprint(course, [ASSIGNMENT]) | {"package torch": "0.1"}
    assert fp.differences(here, there) == [
        f"torch 0.1 on the worker, {here['package torch']} here",
        f"solutions/{ASSIGNMENT}/{ASSIGNMENT}.ipynb differs",
    ]
    gone = {k: v for k, v in here.items() if not k.startswith("notebooks/")} | {
        f"notebooks/{ASSIGNMENT}": "missing"
    }
    assert fp.differences(here, gone) == [f"notebooks/{ASSIGNMENT} is missing on the worker"]
    assert fp.differences(here, here) == []


class _Client:
    """A stand-in for distributed.Client: ``run`` answers with the given facts per worker."""

    def __init__(self, answers: dict) -> None:
        self.answers = answers

    def run(self, function, *args, on_error="raise"):
        return self.answers


def test_check_workers_refuses_each_unfit_worker_by_name():
    """Is a run refused, naming each worker and its problem, unless every worker fits?"""
    here = {"solutions/01_linear/01_linear.ipynb": "aa", "package torch": "2"}
    good = {"grading": True, "fingerprint": here, "threads": 1, "sandbox": None, "host": "h", "course": "/c"}
    check_workers(_Client({"tcp://a:1": good}), here, [ASSIGNMENT], True)
    answers = {
        "tcp://a:1": good,
        "tcp://b:1": good | {"fingerprint": here | {"package torch": "1"}},
        "tcp://c:1": good | {"threads": 4},
        "tcp://d:1": {"grading": False},
        "tcp://e:1": ModuleNotFoundError("No module named 'autograder'"),
        "tcp://f:1": good | {"sandbox": "bubblewrap (bwrap) is not installed"},
    }
    with pytest.raises(SystemExit) as refused:
        check_workers(_Client(answers), here, [ASSIGNMENT], True)
    message = str(refused.value)
    assert "tcp://a:1" not in message
    assert "tcp://b:1 (h, course /c): torch 1 on the worker, 2 here" in message
    assert "tcp://c:1 (h, course /c): 4 threads" in message and "--nthreads 1" in message
    assert "tcp://d:1: not a grading worker" in message and "No module named 'autograder'" in message
    assert "tcp://f:1 (h, course /c): cannot sandbox" in message and "make grade-worker" in message


# ------------------------------------------------------------------------------------------- settings
def test_options_and_settings_say_what_is_wrong(tmp_path):
    """Do a non-positive cap and --jobs 0 get a message naming the option?"""
    with pytest.raises(ValueError, match="--cpu must be a positive number, got 0"):
        Options(cpu=0)
    with pytest.raises(ValueError, match="--memory must be a positive number"):
        Options(memory_gib=-1)
    with pytest.raises(ValueError, match="--jobs must be at least 1, got 0"):
        Settings(tmp_path, [ASSIGNMENT], jobs=0)
    both = Settings(tmp_path, [ASSIGNMENT, "02_modules", ASSIGNMENT], jobs=2)
    assert both.assignments == [ASSIGNMENT, "02_modules"] and both.work.name == "01_linear+02_modules"
    task = Task(ASSIGNMENT, "ada", Folder(), "f" * 64)
    assert task.key("0123456789abcdef") == f"grade-{ASSIGNMENT}-ada-ffffffffffff-01234567"


def test_a_cluster_is_named_by_its_scheduler():
    """Is a cluster given as an address or as a cluster object named by its scheduler's address?"""

    class Cluster:
        scheduler_address = "tls://10.0.0.1:8786"

    assert scheduler_address("tcp://h:8786") == "tcp://h:8786"
    assert scheduler_address(Cluster()) == "tls://10.0.0.1:8786"


# ------------------------------------------------------------------------------------------ interruptions
def test_sigterm_stops_a_run_as_ctrl_c_does():
    """Within a run, does SIGTERM raise KeyboardInterrupt (what Ctrl-C raises), and is the previous handler
    back afterwards? Is the run's own interruption a KeyboardInterrupt that says what it kept?"""
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), _sigterm_interrupts():
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pause()  # not reached: the handler raises as soon as the signal arrives
    assert signal.getsignal(signal.SIGTERM) is previous
    assert issubclass(Interrupted, KeyboardInterrupt)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_a_merge_is_not_cut_short_by_an_interrupt(signum):
    """Does Ctrl-C or SIGTERM during a merge let the merge finish, and stop the run right after it (so
    that the count printed is the count of records written), with the handlers back as they were?"""
    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    steps = []
    with pytest.raises(KeyboardInterrupt), _sigterm_interrupts(), _interrupts_deferred():
        steps.append("gradebook")
        os.kill(os.getpid(), signum)
        steps.append("record")
    assert steps == ["gradebook", "record"]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == previous
    with _interrupts_deferred():  # no signal: nothing raised
        steps.append("next")
    assert steps[-1] == "next"


def test_sigterm_is_left_alone_off_the_main_thread():
    """Run from another thread (a notebook's or a service's), does the run leave SIGTERM's handler as it is
    (only the main thread may set one)?"""
    previous, seen = signal.getsignal(signal.SIGTERM), []

    def inside() -> None:
        with _sigterm_interrupts():
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=inside)
    thread.start()
    thread.join()
    assert seen == [previous]
