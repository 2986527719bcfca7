"""Collect submissions into autograder/submitted/STUDENT/NN/, from nbgrader's exchange or LMS downloads."""

from __future__ import annotations

import shutil
from pathlib import Path

from autograder import nbgrader_cli


def from_exchange(course: Path, assignment: str) -> None:
    """nbgrader collect: copy the newest submissions from the exchange into autograder/submitted/."""
    nbgrader_cli.run(course, "collect", assignment, "--update", "--log-level=WARN")
    print(f"nbgrader collect {assignment}: done", flush=True)


def from_zip(course: Path, assignment: str, paths: list[Path]) -> None:
    """nbgrader zip_collect: put LMS downloads (zip files or notebooks) in autograder/downloaded/NN/archive/
    and collect them into autograder/submitted/ (file names as FileNameCollectorPlugin.named_regexp says)."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise SystemExit(f"--zip: no such file or folder: {', '.join(missing)}")
    archive = Path(course) / "autograder" / "downloaded" / assignment / "archive"
    archive.mkdir(parents=True, exist_ok=True)
    for path in paths:
        if path.is_dir():
            shutil.copytree(path, archive / path.name, dirs_exist_ok=True)
        else:
            shutil.copy2(path, archive / path.name)
    nbgrader_cli.run(course, "zip_collect", assignment, "--force", "--log-level=WARN")
    print(f"nbgrader zip_collect {assignment}: done", flush=True)
