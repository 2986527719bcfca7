"""Does the grading sandbox keep student code away from solutions, the gradebook, other students' work and
the network, leave nothing running, and does the grader refuse to grade without it unless told?"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder.kernel import sandbox
from benchmarks.simulate import submit
from tests.helpers import ROOT, make_course, nbgrader, solution_sources, student_notebook, tool_env

pytestmark = pytest.mark.slow

NAME = "01_linear"
SECRET = f"secret-{uuid.uuid4().hex}"

# Every attack runs in make_linear's cell, before the correct answer, and reports each attempt on one line:
# "ATTACK <what>: failed <error>" or "ATTACK <what>: SUCCEEDED <result>".
PRELUDE = """
import os, sys
def _attempt(what, action):
    try:
        result = action()
    except BaseException as error:
        print(f"ATTACK {what}: failed {type(error).__name__}: {error}"[:300])
    else:
        print(f"ATTACK {what}: SUCCEEDED {result!r}"[:300])
def _read(path):
    with open(path, "rb") as f:
        return f"{len(f.read())} bytes"
# from the kernel's folder, autograder/.work/NN/worker-PID/autograded/STUDENT/NN, up to the course
UP = "../" * 7
"""

SNOOP = """
_attempt("solutions by absolute path", lambda: _read({course!r} + "/solutions/01_linear/01_linear.ipynb"))
_attempt("solutions by relative path", lambda: _read(UP + "solutions/01_linear/01_linear.ipynb"))
_attempt("solutions through the worker", lambda: _read("../../../source/01_linear/01_linear.ipynb"))
_attempt("the notebook being graded", lambda: _read("01_linear.ipynb"))
_attempt("another student's submission", lambda: _read(
    {course!r} + "/autograder/submitted/honest/01_linear/01_linear.ipynb"))
_attempt("another student in the worker", lambda: _read(
    "../../../submitted/honest/01_linear/01_linear.ipynb"))
_attempt("the repository", lambda: os.listdir({repo!r} + "/solutions"))
print("FOLDER", sorted(os.listdir(".")))
print("COURSE FILES", [os.path.join(d, f) for d, _, files in os.walk({course!r}) for f in files])
"""

FORGER = """
import sqlite3
def _forge(path):
    db = sqlite3.connect(f"file:{{path}}?mode=rw", uri=True)
    with db:
        db.execute("UPDATE grade SET auto_score = "
                   "(SELECT max_score FROM grade_cells WHERE grade_cells.id = grade.cell_id)")
        db.execute("UPDATE student SET first_name = 'forged'")
    return "scores set to the maximum"
_attempt("the course gradebook", lambda: _forge({course!r} + "/autograder/gradebook.db"))
_attempt("the gradebook by relative path", lambda: _forge(UP + "autograder/gradebook.db"))
_attempt("the worker's gradebook", lambda: _forge(os.path.abspath("../../../gradebook.db")))
def _write(path):
    with open(path, "w") as f:
        f.write("forged")
    return path
_attempt("a file in the course", lambda: _write({course!r} + "/FORGED.txt"))
_attempt("a file in the course by relative path", lambda: _write(UP + "FORGED_RELATIVE.txt"))
_attempt("a file in another submission", lambda: _write(
    {course!r} + "/autograder/submitted/honest/01_linear/FORGED.txt"))
with open("scratch.txt", "w") as f:
    f.write("own folder")
print("OWN FOLDER", sorted(os.listdir(".")))
"""

CALLER = """
import resource, socket
_attempt("TCP to the grading machine", lambda: socket.create_connection(
    ("127.0.0.1", {port}), timeout=5).close())
_attempt("DNS", lambda: socket.getaddrinfo("pypi.org", 443))
_attempt("TCP to the internet", lambda: socket.create_connection(("1.1.1.1", 53), timeout=5).close())
_attempt("a secret in the environment", lambda: os.environ["SANDBOX_TEST_TOKEN"])
print("CPU LIMIT", resource.getrlimit(resource.RLIMIT_CPU)[0])
"""

LURKER = """
import subprocess, time
SLEEP = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
subprocess.Popen([sys.executable, "-c", SLEEP, {marker!r}], start_new_session=True)
subprocess.Popen(["nohup", sys.executable, "-c", SLEEP, {marker!r}], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_child = os.fork()
if _child == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", SLEEP, {marker!r}])
    os._exit(0)
os.waitpid(_child, 0)
time.sleep(1)
print("STARTED", sum({marker!r} in open(f"/proc/{{p}}/cmdline").read() for p in os.listdir("/proc")
                     if p.isdigit() and os.path.exists(f"/proc/{{p}}/cmdline")))
"""


def _attack(body: str) -> str:
    """make_linear's cell: the attack, then the correct answer (the other exercises stay correct too)."""
    return f"{PRELUDE}\n{body}\n{solution_sources(NAME)['make_linear']}"


def _grade(course: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "autograder", "grade", NAME, "--course", str(course), "--no-progress", *args],
        cwd=ROOT,
        env=env or tool_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )


def _record(course: Path, student: str) -> dict:
    return json.loads((course / "autograder" / "grading" / NAME / f"{student}.json").read_text())


def _scores(course: Path) -> dict[str, dict[str, float | None]]:
    with Gradebook(f"sqlite:///{course / 'autograder' / 'gradebook.db'}", "torch-course") as gb:
        return {
            sub.student.id: {g.name: g.auto_score for nb in sub.notebooks for g in nb.grades}
            for sub in gb.find_assignment(NAME).submissions
        }


def _cell_output(course: Path, student: str, grade_id: str = "make_linear") -> str:
    """The text a student's cell printed, from the autograded notebook."""
    path = course / "autograder" / "autograded" / student / NAME / f"{NAME}.ipynb"
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")


def _attempts(text: str) -> dict[str, str]:
    return dict(re.findall(r"^ATTACK (.+?): (.*)$", text, flags=re.MULTILINE))


def _marked(marker: str) -> list[int]:
    """Processes anywhere on this machine with ``marker`` in their command line."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
        except OSError:
            pass
    return found


class _Listener:
    """A TCP server on 127.0.0.1 that counts the connections it gets."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.done.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.done.set()
        self.thread.join()
        self.server.close()


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    """One sandboxed grading run of an honest student, a blank notebook and four attackers; a watcher
    notes whether the lurker's processes ever ran on this machine."""
    if sandbox.problem() is not None:
        pytest.fail(f"no sandbox on this machine: {sandbox.problem()}")
    course = make_course(tmp_path_factory.mktemp("sandbox"), [NAME])
    nbgrader(course, "generate_assignment", NAME, "--force")
    listener = _Listener()
    marker = f"lurker-{uuid.uuid4().hex}"
    attacks = {
        "snoop": SNOOP.format(course=str(course), repo=str(ROOT)),
        "forger": FORGER.format(course=str(course)),
        "caller": CALLER.format(port=listener.port),
        "lurker": LURKER.format(marker=marker),
    }
    submit(course, "honest", NAME, student_notebook(NAME, {}))
    submit(course, "blank", NAME, student_notebook(NAME, {}, fill=False))
    for student, body in attacks.items():
        submit(course, student, NAME, student_notebook(NAME, {"make_linear": _attack(body)}))
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.extend(_marked(marker))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    env = {**tool_env(), "SANDBOX_TEST_TOKEN": SECRET}
    began = time.monotonic()
    run = _grade(course, "--jobs", "2", "--cpu", "120", env=env)
    seconds = time.monotonic() - began
    stop.set()
    watcher.join()
    listener.close()
    assert run.returncode == 0, f"grade failed ({run.returncode}):\n{run.stdout}{run.stderr}"
    yield {"course": course, "run": run, "listener": listener, "marker": marker, "seen": seen, "s": seconds}
    for pid in _marked(marker):  # only if the test failed: leave nothing behind
        os.kill(pid, signal.SIGKILL)


def test_attackers_read_nothing_they_should_not(attacked):
    """Are the solutions, the notebook being graded (hidden tests) and other students' work invisible?"""
    course = attacked["course"]
    text = _cell_output(course, "snoop")
    attempts = _attempts(text)
    assert len(attempts) == 7, text
    for what, outcome in attempts.items():
        assert outcome.startswith("failed"), (what, outcome)
    assert "FOLDER []" in text, text  # the kernel's folder is there, without the notebook
    # Of the course, the kernel sees only the folders on the way to its own: not one file.
    assert "COURSE FILES []" in text, text


def test_attackers_change_no_grade_and_write_nothing(attacked):
    """Do gradebook forgery and writes outside the kernel's own folder fail, and does that folder's
    scratch copy vanish afterwards?"""
    course = attacked["course"]
    text = _cell_output(course, "forger")
    attempts = _attempts(text)
    assert len(attempts) == 6, text
    for what, outcome in attempts.items():
        # A course under /tmp (as here) lies in the kernel's private /tmp: writes there land in memory and
        # vanish with the sandbox (checked below); elsewhere they fail outright.
        assert outcome.startswith("failed") or what.startswith("a file in the course"), (what, outcome)
    assert "scratch.txt" in text.split("OWN FOLDER")[1], "the kernel's own folder must stay writable"
    assert not list(course.rglob("FORGED*")) and not list(course.parent.rglob("FORGED*"))
    assert not (course / "autograder" / "autograded" / "forger" / NAME / "scratch.txt").exists()
    with Gradebook(f"sqlite:///{course / 'autograder' / 'gradebook.db'}", "torch-course") as gb:
        assert all(s.first_name != "forged" for s in gb.students)
    scores = _scores(course)
    assert all(score == 0 for score in scores["blank"].values()), scores["blank"]


def test_no_network_no_secrets_and_caps_still_apply(attacked):
    """Does the kernel reach no server (the grading machine's loopback included), no DNS, see no secret from
    the grader's environment, and still run under the CPU cap?"""
    text = _cell_output(attacked["course"], "caller")
    attempts = _attempts(text)
    assert len(attempts) == 4, text
    for what, outcome in attempts.items():
        assert outcome.startswith("failed"), (what, outcome)
    assert attacked["listener"].connections == 0
    assert SECRET not in text
    assert "CPU LIMIT 120" in text, text


def test_processes_left_behind_die_with_the_kernel(attacked):
    """Do a new-session child, a nohup'd one and a double-forked daemon, all ignoring SIGTERM, die when
    their kernel ends?"""
    text = _cell_output(attacked["course"], "lurker")
    assert "STARTED 3" in text, text
    assert attacked["seen"], "the watcher never saw the lurker's processes: the attack did not run"
    assert _marked(attacked["marker"]) == [], "processes started in the sandbox outlived grading"


def test_everyone_is_graded_as_honest_work_is(attacked):
    """Do the attackers get exactly the honest student's scores (their answers are correct), recorded as
    graded, and appear in the class report?"""
    course = attacked["course"]
    scores = _scores(course)
    assert set(scores) == {"honest", "blank", "snoop", "forger", "caller", "lurker"}
    honest = _record(course, "honest")
    assert honest["status"] == "graded" and honest["score"] == honest["max_score"] > 0
    for student in ("snoop", "forger", "caller", "lurker"):
        record = _record(course, student)
        assert record["status"] == "graded" and record["capped"] is None, (student, record["reason"])
        assert scores[student] == scores["honest"], student
        assert record["score"] == honest["score"], student
    assert _record(course, "blank")["score"] == 0
    assert "graded 6 of 6 submission(s)" in attacked["run"].stdout, attacked["run"].stdout
    rows = (course / "autograder" / "reports" / NAME / "grades.csv").read_text().splitlines()
    assert len(rows) == 7 and all(any(r.startswith(f"{s},") for r in rows) for s in scores)
    print(f"sandboxed grading of 6 submissions: {attacked['s']:.1f} s")


def test_attacks_are_flagged_in_the_report(attacked):
    """Does the class report flag each attacker with what it tried, and leave the honest student unflagged?"""
    course = attacked["course"]
    expected = {
        "snoop": "reaches for course files",
        "forger": "reaches for course files",
        "caller": "opens network connections",
        "lurker": "starts processes",
    }
    assert not _record(course, "honest")["flags"]
    for student, flag in expected.items():
        flags = _record(course, student)["flags"]
        assert any(flag in f for f in flags), (student, flags)
    page = (course / "autograder" / "reports" / NAME / "index.html").read_text()
    for student, flag in expected.items():
        assert student in page and flag in page, student


def test_no_sandbox_refuses_unless_told(tmp_path):
    """Without bubblewrap, does the grader refuse and say what to do; with --no-sandbox, does it warn loudly
    and grade (and does the snooping attack then succeed, as the other tests assume it would)?"""
    course = make_course(tmp_path, [NAME])
    nbgrader(course, "generate_assignment", NAME, "--force")
    submit(course, "honest", NAME, student_notebook(NAME, {}))
    submit(course, "snoop", NAME, student_notebook(NAME, {"make_linear": _attack(
        SNOOP.format(course=str(course), repo=str(ROOT)))}))  # fmt: skip
    env = {**tool_env(), "AUTOGRADER_BWRAP": "/nonexistent/bwrap"}
    refused = _grade(course, env=env)
    assert refused.returncode != 0
    assert "bubblewrap" in refused.stderr and "--no-sandbox" in refused.stderr, refused.stderr
    assert not list((course / "autograder" / "grading").glob(f"{NAME}/*.json")), "nothing may be graded"
    graded = _grade(course, "--no-sandbox", "--jobs", "2", env=env)
    assert graded.returncode == 0, graded.stdout + graded.stderr
    assert "WARNING" in graded.stderr and "without a sandbox" in graded.stderr.lower(), graded.stderr
    honest = _record(course, "honest")
    assert honest["status"] == "graded" and honest["score"] == honest["max_score"] > 0
    attempts = _attempts(_cell_output(course, "snoop"))
    assert attempts["solutions by absolute path"].startswith("SUCCEEDED"), attempts
    assert attempts["the notebook being graded"].startswith("SUCCEEDED"), attempts


def test_problem_names_bubblewrap_and_the_fix(monkeypatch):
    """Does problem() say that bubblewrap is missing and how to install it, and find it when it is there?"""
    monkeypatch.setenv("AUTOGRADER_BWRAP", "/nonexistent/bwrap")
    why = sandbox.problem()
    assert why is not None and "bubblewrap" in why and "apt-get install bubblewrap" in why
    monkeypatch.delenv("AUTOGRADER_BWRAP")
    assert sandbox.problem() is None


def test_a_kernel_killed_by_a_signal_ends_its_launcher_the_same_way(tmp_path):
    """When the sandboxed process dies of SIGXCPU (its CPU cap), does its launcher die of SIGXCPU too, so
    the grader reports the cap, and is the scratch copy of the working folder removed?"""
    root = tmp_path / "worker"
    cwd = root / "autograded" / "ada" / NAME
    cwd.mkdir(parents=True)
    (cwd / "data.txt").write_text("data")
    spec = json.loads(sandbox.kernel_env(str(root), str(tmp_path))["AUTOGRADER_SANDBOX"])
    xcpu = int(signal.SIGXCPU)
    code = f"import os; print(sorted(os.listdir('.')), flush=True); os.kill(os.getpid(), {xcpu})"
    launcher = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'autograder' / 'kernel')!r}); import sandbox, resource; "
        "resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); "
        f"sandbox.run([sys.executable, '-c', {code!r}], {spec!r}, {str(cwd)!r})"
    )
    result = subprocess.run(
        [sys.executable, "-c", launcher], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == -signal.SIGXCPU, (result.returncode, result.stderr)
    assert "['data.txt']" in result.stdout
    assert [p.name for p in (root / "sandbox").iterdir()] == ["etc"]


def _start_sleepers(tmp_path: Path, through_manager: bool) -> tuple[subprocess.Popen, str]:
    """A sandboxed process that starts a new-session child and a setsid'd daemon, then sleeps itself (three
    processes in all, their command lines marked), launched as kernel.py launches a kernel; with
    ``through_manager`` by a stand-in kernel manager that waits for it. Returns (the launcher or the
    manager, the marker) once all three run."""
    root = tmp_path / "worker"
    cwd = root / "autograded" / "ada" / NAME
    cwd.mkdir(parents=True)
    spec = json.loads(sandbox.kernel_env(str(root), str(tmp_path))["AUTOGRADER_SANDBOX"])
    token = uuid.uuid4().hex
    marker = f"orphan-{token}"  # put together in the sandbox: only the sleepers' command lines hold it
    code = (
        "import os, subprocess, sys, time\n"
        f"sleeper = 'import time; time.sleep(600)  # orphan-' + {token!r}\n"
        "subprocess.Popen([sys.executable, '-c', sleeper], start_new_session=True)\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    os.execv(sys.executable, [sys.executable, '-c', sleeper])\n"
        "os.execv(sys.executable, [sys.executable, '-c', sleeper])\n"
    )
    launcher = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'autograder' / 'kernel')!r}); import sandbox; "
        f"sandbox.run([sys.executable, '-c', {code!r}], {spec!r}, {str(cwd)!r})"
    )
    if through_manager:
        launcher = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {launcher!r}])"
    process = subprocess.Popen([sys.executable, "-c", launcher], cwd=cwd, start_new_session=True)
    deadline = time.monotonic() + 30
    while len(_marked(marker)) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    if len(_marked(marker)) != 3:
        process.kill()
        pytest.fail(f"the sandboxed processes did not start: {_marked(marker)}")
    return process, marker


def _gone(marker: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _marked(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _marked(marker)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return not left


def test_killing_the_launcher_kills_everything_in_the_sandbox(tmp_path):
    """When the grader kills a kernel's launcher (SIGKILL: no chance to clean up), do the kernel and every
    process it started, daemons included, die with it?"""
    launcher, marker = _start_sleepers(tmp_path, through_manager=False)
    launcher.kill()  # the launcher only, as a kernel manager's kill does
    assert launcher.wait(timeout=10) == -signal.SIGKILL
    assert _gone(marker, 10), "processes outlived their sandbox's launcher"


def test_a_sandbox_whose_kernel_manager_dies_ends_too(tmp_path):
    """When the process that started a kernel dies (a grading worker killed), does the sandbox end, as an
    unsandboxed kernel ends when its parent is gone?"""
    manager, marker = _start_sleepers(tmp_path, through_manager=True)
    manager.kill()
    manager.wait(timeout=10)
    assert _gone(marker, 15), "the sandbox outlived the process that started it"
