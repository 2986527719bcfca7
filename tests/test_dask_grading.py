"""Does grading on a Dask cluster (`python -m autograder grade NN --scheduler ...`) give every cell the score
the local pool gives, with the same records, feedback and report, keep every submission graded exactly once
when the client is killed -9 and when a worker is killed -9 in the middle of a submission, and refuse workers
whose course differs? Does SIGTERM (a batch system stopping a job) stop the client as Ctrl-C does? A real
`dask scheduler` and two `dask worker` processes on 127.0.0.1, on free ports, started as `make grade-worker`
starts them and always stopped (benchmarks/cluster.py)."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from autograder.authoring import notebooks as nbtools
from benchmarks.cluster import LocalCluster
from benchmarks.simulate import student_notebook, submit
from tests import catalogue
from tests.helpers import ROOT, grade_cli, make_course, nbgrader, tool_env

pytestmark = pytest.mark.slow

NAME = "01_linear"


def _class(course: Path) -> list[str]:
    """Seven students: three correct, two with one mistake each, untouched, and one with a syntax error."""
    mistakes = catalogue.load(NAME).MISTAKES
    wrong = [next(m for m in mistakes if m.exercise == ex) for ex in ("linear_forward", "make_linear")]
    students = {
        "c1": student_notebook(NAME, {}),
        "c2": student_notebook(NAME, {}),
        "c3": student_notebook(NAME, {}),
        "m1": student_notebook(NAME, {wrong[0].exercise: wrong[0].source}),
        "m2": student_notebook(NAME, {wrong[1].exercise: wrong[1].source}),
        "u1": nbtools.read(nbtools.notebook_path(NAME, nbtools.RELEASE)),
        "s1": student_notebook(NAME, {"make_linear": "def make_linear(:\n    pass"}),
    }
    for student, nb in students.items():
        submit(course, student, NAME, nb)
    return sorted(students)


def _scores(course: Path) -> dict[str, dict[str, tuple[float | None, bool]]]:
    with Gradebook(f"sqlite:///{course / 'autograder' / 'gradebook.db'}", "torch-course") as gb:
        submissions = gb.find_assignment(NAME).submissions
        students = [s.student.id for s in submissions]
        assert len(students) == len(set(students)), f"a student graded twice: {students}"
        found = {}
        for sub in submissions:
            found[sub.student.id] = {
                g.name: (g.auto_score, g.needs_manual_grade) for nb in sub.notebooks for g in nb.grades
            }
        return found


def _records(course: Path) -> dict[str, dict]:
    folder = course / "autograder" / "grading" / NAME
    return {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}


def _command(course: Path, address: str) -> list[str]:
    return [sys.executable, "-m", "autograder", "grade", NAME, "--course", str(course), "--no-progress",
            "--scheduler", address]  # fmt: skip


def _kernels(pids: list[int]) -> dict[int, int]:
    """``{worker pid: its kernel launcher's pid}`` for the workers that are grading right now."""
    found = {}
    for pid in pids:
        for child in _children(pid):
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"launch.py" in cmdline:
                found[pid] = child
    return found


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            found += [int(child) for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    except OSError:
        pass
    return found


def _wait(condition, seconds: float, what: str, steady: float = 0.0) -> None:
    """Wait until ``condition()`` holds (for ``steady`` seconds in a row)."""
    deadline = time.monotonic() + seconds
    since = None
    while True:
        if condition():
            since = since or time.monotonic()
            if time.monotonic() - since >= steady:
                return
        else:
            since = None
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _grading(cluster: LocalCluster) -> tuple[int, str] | None:
    """(pid, student) of a worker process grading a submission right now, or None."""
    for worker, launcher in _kernels(cluster.worker_pids()).items():
        try:
            return worker, Path(os.readlink(f"/proc/{launcher}/cwd")).parent.name  # .../autograded/STUDENT/NN
        except OSError:
            continue  # that kernel ended meanwhile
    return None


def _first_grading(cluster: LocalCluster, run: subprocess.Popen, seconds: float = 600) -> tuple[int, str]:
    """(pid, student) of the first worker process seen grading while ``run`` goes on."""
    deadline = time.monotonic() + seconds
    while (found := _grading(cluster)) is None:
        assert run.poll() is None, "the run ended before a worker could be killed"
        assert time.monotonic() < deadline, "no worker started grading"
        time.sleep(0.2)
    return found


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The same class graded by the local pool (--jobs 2) and through a two-worker Dask cluster, where the
    first Dask run is killed -9 once a submission is in, the second gets SIGTERM once one more is in, and the
    third has a worker killed -9 mid-task."""
    tmp = tmp_path_factory.mktemp("dask")
    courses = {}
    for label in ("local", "dask"):
        courses[label] = make_course(tmp / label, [NAME])
        nbgrader(courses[label], "generate_assignment", NAME, "--force")
        students = _class(courses[label])
    course = courses["dask"]
    records = course / "autograder" / "grading" / NAME
    with LocalCluster(course, tmp / "cluster", workers=2) as cluster:
        # The client killed -9 once one submission is merged: what it merged stays, the rest is regraded.
        client = subprocess.Popen(
            _command(course, cluster.address), cwd=ROOT, env=tool_env(), start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait(lambda: any(records.glob("*.json")) or client.poll() is not None, 600, "a first record")
        assert client.poll() is None, "the run ended before it could be killed"
        os.killpg(client.pid, signal.SIGKILL)
        client.wait()
        kept = sorted(p.stem for p in records.glob("*.json"))
        # The workers finish what they had started for the dead client, then sit idle.
        _wait(lambda: not _kernels(cluster.worker_pids()), 300, "the killed client's tasks to end", steady=3)

        # SIGTERM to the client alone (`kill PID`, a batch system's time limit) once one more is merged.
        stopped = subprocess.Popen(
            _command(course, cluster.address), cwd=ROOT, env=tool_env(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        merged = lambda: len(list(records.glob("*.json"))) > len(kept)  # noqa: E731
        _wait(lambda: merged() or stopped.poll() is not None, 600, "one more record")
        stopped.terminate()
        _, terminated = stopped.communicate(timeout=60)
        terminated = (stopped.returncode, terminated, sorted(p.stem for p in records.glob("*.json")))
        _wait(lambda: not _kernels(cluster.worker_pids()), 300, "the stopped client's tasks to end", steady=3)

        rerun = subprocess.Popen(
            _command(course, cluster.address), cwd=ROOT, env=tool_env(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        worker, victim = _first_grading(cluster, rerun)
        launchers = list(_kernels([worker]).values())
        os.kill(worker, signal.SIGKILL)
        out, err = rerun.communicate(timeout=900)
        assert rerun.returncode == 0, out + err
        _wait(lambda: not any(Path(f"/proc/{p}").exists() for p in launchers), 30, "its kernel to die")
    local = grade_cli(courses["local"], NAME, "--jobs", "2")
    return courses, students, terminated[2], out, local.stdout, (worker, victim), (kept, terminated)


def test_dask_grades_each_cell_as_the_local_pool(graded):
    """Does every student get, through Dask, exactly the gradebook scores the local pool gives, once each?"""
    courses, students, *_ = graded
    dask, local = _scores(courses["dask"]), _scores(courses["local"])
    assert sorted(dask) == students and dask == local
    assert any(score for score, _ in dask["c1"].values())
    assert not any(score for score, _ in dask["u1"].values())


def test_records_feedback_and_report_match_the_local_pool(graded):
    """Are the records' scores and messages, the feedback pages and the class report's grades the same?"""
    courses, students, *_ = graded

    def essence(record: dict) -> tuple:
        cells = [(c["index"], c["status"], c["score"], c["error"]) for c in record["cells"]]
        return tuple(record[k] for k in ("status", "score", "exercises", "capped", "reason")), cells

    dask, local = _records(courses["dask"]), _records(courses["local"])
    assert sorted(dask) == students and {s: essence(r) for s, r in dask.items()} == {
        s: essence(r) for s, r in local.items()
    }
    assert all(r["worker"].startswith("tcp://127.0.0.1:") for r in dask.values())

    def text(course: Path, student: str) -> str:
        """The feedback page's text: how a cell's printed lines were split into outputs depends on timing."""
        page = (course / "autograder" / "feedback" / student / NAME / f"{NAME}.html").read_text()
        return " ".join(re.sub(r"<[^>]+>", " ", page).split())

    for student in students:
        if dask[student]["status"] == "graded":
            assert text(courses["dask"], student) == text(courses["local"], student), student

    def grades(course: Path) -> list[list[str]]:
        with open(course / "autograder" / "reports" / NAME / "grades.csv", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        keep = [i for i, name in enumerate(rows[0]) if name not in ("graded_at", "seconds")]
        return [[row[i] for i in keep] for row in rows]

    assert grades(courses["dask"]) == grades(courses["local"])


def test_killed_client_and_worker_lose_nothing(graded):
    """After the client's kill -9, does the rerun grade only what had no record, and does the submission whose
    worker was killed -9 mid-task get graded by another worker, once?"""
    courses, students, kept, out, _, (worker, victim), _ = graded
    assert kept and len(kept) < len(students)
    assert f"{len(students) - len(kept)} to grade, {len(kept)} already graded" in out, out
    assert f"graded {len(students) - len(kept)} of {len(students) - len(kept)} submission(s)" in out, out
    record = _records(courses["dask"])[victim]
    assert record["status"] == "graded" and f"(pid {worker})" not in record["worker"], record["worker"]
    assert not (courses["dask"] / "autograder" / ".work").exists()


def test_sigterm_stops_the_client_and_the_next_run_resumes(graded):
    """Did SIGTERM stop the client at once with one line saying what it kept, was every submission it merged
    kept, and did the next run grade only the others?"""
    _, students, resumed_from, out, _, _, (killed, (status, err, kept)) = graded
    assert status == 130 and "Traceback" not in err, err
    assert err.strip().splitlines() == [
        f"interrupted: {len(kept) - len(killed)} of {len(students) - len(killed)} submission(s) graded and "
        f"kept, {len(students) - len(kept)} not graded. Run the command again to grade the rest."
    ], err
    assert set(killed) < set(kept) == set(resumed_from) < set(students)
    assert f"{len(students) - len(kept)} to grade, {len(kept)} already graded" in out, out


def test_workers_with_another_course_are_refused(tmp_path):
    """Does a run whose course differs from the workers' stop before grading, naming the workers and file?"""
    workers = make_course(tmp_path / "workers", [NAME])
    client = make_course(tmp_path / "client", [NAME])
    solution = client / "solutions" / NAME / f"{NAME}.ipynb"
    solution.write_text(solution.read_text().replace("nn.Linear", "nn.Linear ", 1))
    submit(client, "ada", NAME, student_notebook(NAME, {}))
    with LocalCluster(workers, tmp_path / "cluster", workers=2) as cluster:
        refused = subprocess.run(
            _command(client, cluster.address), cwd=ROOT, env=tool_env(), capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        addresses = [w for w in refused.stderr.split() if w.startswith("tcp://127.0.0.1:")]
    assert refused.returncode != 0 and "these Dask workers cannot grade this run" in refused.stderr
    assert len(set(addresses)) == 2, refused.stderr
    assert f"solutions/{NAME}/{NAME}.ipynb differs" in refused.stderr
    assert "make grade-worker" in refused.stderr
    assert not list((client / "autograder" / "grading").glob(f"{NAME}/*.json")), "nothing may be graded"
