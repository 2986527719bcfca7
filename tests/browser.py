"""Helpers for the browser tests: a throwaway course served by `make lab`, the system's Chromium driven by
Playwright, numbered screenshots, and the page's JavaScript errors."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.helpers import ROOT, make_course, tool_env

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the tests skip and name the fix: see require_browser
    expect = sync_playwright = None

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright, Route

FIX = "run `make browser-deps` (Debian/Ubuntu: sudo apt-get install chromium chromium-driver)"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1400, "height": 900}
TOKEN = "course-browser-test"
# The Colab badge in each notebook's first cell is the only resource from outside the local server; it is
# answered with this stand-in so that the tests see the same page with or without internet access.
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="117" height="20"><rect width="117" height="20" rx="3" '
    'fill="#ddd"/><text x="58" y="14" font-family="sans-serif" font-size="11" text-anchor="middle">'
    "Open in Colab</text></svg>"
)
# Console errors that JupyterLab itself logs on a healthy page, as exact (message, resource URL) pairs.
ALLOWED_CONSOLE_ERRORS = {
    # JupyterLab's Markdown renderer writes <img src="attachment:NAME"> into the page before it swaps in the
    # cell attachment's data, so Chromium logs one failed load per attached image; the image then shows
    # (test_browser checks that it does). 01_linear's section 5 shows its figure that way.
    ("Failed to load resource: net::ERR_UNKNOWN_URL_SCHEME", "attachment:01_linear_fit.png"),
}


def chromium_path() -> Path:
    """The Chromium binary the tests drive: $COURSE_CHROMIUM if set, else Debian's /usr/bin/chromium."""
    return Path(os.environ.get("COURSE_CHROMIUM") or "/usr/bin/chromium")


def require_browser() -> Path:
    """Chromium's path, or skip the test (naming the fix) when Chromium or Playwright is missing."""
    if sync_playwright is None:
        pytest.skip(f"Playwright for Python is not installed in this environment: {FIX}")
    chromium = chromium_path()
    if not (chromium.is_file() and os.access(chromium, os.X_OK)):
        pytest.skip(f"no Chromium at {chromium}: {FIX}, or set COURSE_CHROMIUM to a Chromium binary")
    return chromium


def launch_chromium(playwright: Playwright, chromium: Path) -> Browser:
    """Headless system Chromium (Playwright's own browser download is not used)."""
    return playwright.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)


def new_offline_context(browser: Browser) -> BrowserContext:
    """A fresh browser context that reaches only the local server: the Colab badge gets a stand-in image
    and every other outside request is aborted (which the console-error check then reports)."""
    context = browser.new_context(viewport=VIEWPORT)

    def outside(route: Route) -> None:
        if route.request.url == COLAB_BADGE:
            route.fulfill(status=200, content_type="image/svg+xml", body=BADGE_SVG)
        else:
            route.abort()

    context.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/])[a-z]+://"), outside)
    return context


def artifacts_dir() -> Path:
    """Where the screenshots go: $BROWSER_ARTIFACTS, else tests/artifacts/browser/ in the repository."""
    folder = Path(os.environ.get("BROWSER_ARTIFACTS") or ROOT / "tests" / "artifacts" / "browser")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Screenshots:
    """Numbered screenshots of one test's steps (``NN_<path>_<step>.png``); the test's older ones go first."""

    page: Page
    path: str
    number: int = 1
    folder: Path = field(default_factory=artifacts_dir)

    def __post_init__(self) -> None:
        for old in self.folder.glob(f"[0-9][0-9]_{self.path}_*.png"):
            old.unlink()

    def take(self, step: str) -> Path:
        """Save the page as it is now under the next number."""
        target = self.folder / f"{self.number:02d}_{self.path}_{step}.png"
        self.page.screenshot(path=str(target))
        self.number += 1
        return target


@dataclass
class PageErrors:
    """JavaScript errors of a page: uncaught exceptions and console messages of type "error"."""

    errors: list[str] = field(default_factory=list)

    @classmethod
    def watch(cls, page: Page) -> PageErrors:
        """Start collecting ``page``'s errors (every frame's, the formgrader's iframe included)."""
        found = cls()
        page.on("pageerror", lambda error: found.errors.append(f"uncaught: {error}"))
        page.on("console", found._console)
        return found

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        url = message.location.get("url", "")
        if (message.text, url) not in ALLOWED_CONSOLE_ERRORS:
            self.errors.append(f"console error: {message.text} ({url})")


def lab_course(tmp: Path, notebooks: list[str]) -> Path:
    """A throwaway course folder (``tests.helpers.make_course``) that `make lab` can serve: the Makefile,
    requirements.txt and pyproject.toml with their times kept, and .venv linked to the environment the
    tests run in (this repository's .venv under `make test`)."""
    course = make_course(tmp, notebooks)
    for name in ("Makefile", "requirements.txt", "pyproject.toml"):
        shutil.copy2(ROOT / name, course / name)
    (course / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return course


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _process_table() -> dict[int, tuple[int, str, str]]:
    """``{pid: (parent pid, state, start time)}`` of every process, from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            table[int(entry.name)] = (int(fields[1]), fields[0], fields[19])
    return table


def _descendants(pid: int) -> dict[int, str]:
    """``{pid: start time}`` of the processes below ``pid``: the server, its kernels and nbgrader's."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for child, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(child)
    found, todo = {}, list(children.get(pid, []))
    while todo:
        current = todo.pop()
        found[current] = table[current][2]
        todo.extend(children.get(current, []))
    return found


def _still_running(processes: dict[int, str]) -> list[int]:
    """Those of ``processes`` that still run (the same process, not a zombie or a reused pid)."""
    table = _process_table()
    return [
        pid
        for pid, started in processes.items()
        if pid in table and table[pid][2] == started and table[pid][1] != "Z"
    ]


@dataclass
class Lab:
    """A running `make lab` server."""

    course: Path
    url: str
    token: str
    process: subprocess.Popen
    log: Path

    def page_url(self, path: str) -> str:
        """The address of ``path`` (e.g. ``/lab/tree/...``) with the token."""
        separator = "&" if "?" in path else "?"
        return f"{self.url}{path}{separator}token={self.token}"

    def log_tail(self) -> str:
        """The server's last lines of output, for failure messages."""
        return self.log.read_text(errors="replace")[-4000:]


@contextmanager
def make_lab(course: Path, timeout: float = 120) -> Iterator[Lab]:
    """Start `make lab` in ``course`` on a free port without a browser, wait until it answers, and stop it
    (with its kernels) afterwards."""
    port = _free_port()
    # As tests/test_lab.py starts it: no browser of its own, a free port, a known token.
    lab_args = f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={TOKEN} "
    lab_args += "--ServerApp.port_retries=0"
    env = tool_env()
    # Settings and workspaces of this server only: none of the user's, none shared with a parallel test.
    config = course.parent / "jupyter-config"
    env["JUPYTER_CONFIG_DIR"] = str(config)
    # The "official Jupyter news?" question answered No, as a user would, so it covers nothing on the page.
    notification = config / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True, exist_ok=True)
    (notification / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}\n')
    log = course.parent / "make-lab.log"
    with open(log, "wb") as out:
        # `-o .venv/.ready`: the test serves the environment it runs in and never reinstalls into it.
        process = subprocess.Popen(
            [
                "make",
                "--no-print-directory",
                "-C",
                str(course),
                "-o",
                ".venv/.ready",
                "lab",
                f"LAB_ARGS={lab_args}",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    lab = Lab(course, f"http://127.0.0.1:{port}", TOKEN, process, log)
    try:
        _wait_until_up(lab, timeout)
        yield lab
    finally:
        stop_server(process)


def _wait_until_up(lab: Lab, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.process.poll() is not None:
            pytest.fail(f"make lab exited with {lab.process.returncode}:\n{lab.log_tail()}")
        try:
            with urllib.request.urlopen(lab.page_url("/api/status"), timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    pytest.fail(f"make lab did not answer on {lab.url} within {timeout:.0f} s:\n{lab.log_tail()}")


def stop_server(process: subprocess.Popen) -> None:
    """Stop make and the server (which shuts its kernels down), then kill whatever of theirs is left."""
    below = _descendants(process.pid)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    # Kernels run in sessions of their own, out of reach of the process group's signal.
    deadline = time.monotonic() + 10
    while (alive := _still_running(below)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@contextmanager
def browser_page(browser: Browser, path: str) -> Iterator[tuple[Page, Screenshots, PageErrors]]:
    """A fresh offline page with its screenshots (``path`` names the test's steps) and its JavaScript
    errors; on a failure the page as it was is saved as ``FAILED_<path>.png``."""
    context = new_offline_context(browser)
    context.set_default_timeout(60_000)
    page = context.new_page()
    errors = PageErrors.watch(page)
    shots = Screenshots(page, path)
    (shots.folder / f"FAILED_{path}.png").unlink(missing_ok=True)
    try:
        yield page, shots, errors
    except BaseException:
        try:
            page.screenshot(path=str(shots.folder / f"FAILED_{path}.png"))
        except Exception:  # noqa: BLE001 - the test's own failure is the one to report
            pass
        raise
    finally:
        context.close()
