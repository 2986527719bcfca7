"""Does `make lab` really serve the course, and does course_lib install from a git URL (as in Colab)?"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.browser import stop_server
from tests.helpers import NOTEBOOKS, ROOT, tool_env

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_make_lab_serves_the_notebooks_with_nbgrader():
    """Started by `make lab` without a browser on a free port, does JupyterLab list the notebooks, and is
    nbgrader's server extension (validate and formgrader) answering? Then it is stopped."""
    port, token = _free_port(), "course-test-token"
    args = (
        f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={token} "
        "--ServerApp.port_retries=0"
    )
    env = tool_env()
    server = subprocess.Popen(
        ["make", "--no-print-directory", "lab", f"LAB_ARGS={args}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline:
            if server.poll() is not None:
                pytest.fail(
                    f"make lab exited with {server.returncode}:\n{server.stdout.read().decode()[-3000:]}"
                )
            try:
                status, body = _get(f"{base}/api/contents/notebooks?token={token}")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        assert status == 200, f"JupyterLab did not answer on port {port}"
        listed = sorted(entry["name"] for entry in json.loads(body)["content"])
        assert listed == NOTEBOOKS
        status, body = _get(f"{base}/api/contents/notebooks/01_linear?token={token}")
        assert status == 200 and "01_linear.ipynb" in body

        status, body = _get(f"{base}/nbgrader_version?version=0.9.6&token={token}")
        assert status == 200 and json.loads(body)["success"], body
        status, body = _get(f"{base}/formgrader/api/assignments?token={token}")
        assert status == 200, f"formgrader not served: {status} {body[:300]}"
        assert "01_linear" in {a["name"] for a in json.loads(body)}
        status, page = _get(f"{base}/lab?token={token}")
        assert status == 200 and "JupyterLab" in page
    finally:
        stop_server(server)
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5)


def test_course_lib_installs_from_a_git_url(tmp_path):
    """Does `pip install git+file://` of a clone install the whole of course_lib, and does it import?"""
    repo = tmp_path / "repo"
    shutil.copytree(
        ROOT,
        repo,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "__pycache__", "*.egg-info", "autograder", "solutions", "notebooks"
        ),
    )
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run(git + command, cwd=repo, check=True, capture_output=True)
    target = tmp_path / "site"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            f"course-lib @ git+file://{repo}@main",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    installed = {p.relative_to(target).as_posix() for p in (target / "course_lib").rglob("*.py")}
    expected = {p.relative_to(ROOT).as_posix() for p in (ROOT / "course_lib").rglob("*.py")}
    assert installed == expected
    probe = subprocess.run(
        [sys.executable, "-c", "import course_lib, course_lib.checks.linear; print(course_lib.__file__)"],
        env={**os.environ, "PYTHONPATH": str(target)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip().startswith(str(target))
