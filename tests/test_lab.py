"""Does `make lab` really serve the course? (Installing course_lib from a git URL: tests/test_install.py.)"""

from __future__ import annotations

import json
import socket
import subprocess
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
