"""What must be the same on every machine that grades one run: the fingerprint of a course and environment.

Workers on other machines grade with their own copy of the course and their own Python environment, so the
client compares its fingerprint with each worker's before it sends a task, and each task carries the digest
the worker must match. The fingerprint is by content, never by path: a hash of every file of the graded
assignments' solutions/ and notebooks/ folders, of the course_lib package the kernels import and of the
grader's own code, and the versions of Python and of the packages that decide a grade.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import platform
from importlib import metadata
from pathlib import Path

from autograder.engine.settings import DATA_FOLDERS

#: Packages whose version can change a grade, a feedback page, or how client and workers talk.
PACKAGES = (
    "torch",
    "numpy",
    "matplotlib",
    "scikit-learn",
    "torchsummary",
    "nbgrader",
    "nbclient",
    "nbconvert",
    "nbformat",
    "ipykernel",
    "ipython",
    "jupyter_client",
    "traitlets",
    "dask",
    "distributed",
    "cloudpickle",
)

Fingerprint = dict[str, str]


def package_dir(name: str) -> Path | None:
    """The folder of the package ``name`` as this process imports it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def _files(folder: Path | None, label: str, entries: Fingerprint, code_only: bool = False) -> None:
    if folder is None or not folder.is_dir():
        entries[label] = "missing"
        return
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        if code_only and (path.suffix != ".py" or rel.parts[0] in DATA_FOLDERS):
            continue
        entries[f"{label}/{rel.as_posix()}"] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def fingerprint(course_root: Path, assignments: list[str] | tuple[str, ...]) -> Fingerprint:
    """``{what: hash or version}`` for this machine's course at ``course_root`` and this environment."""
    course_root = Path(course_root)
    entries: Fingerprint = {}
    for assignment in assignments:
        for folder in ("solutions", "notebooks"):
            _files(course_root / folder / assignment, f"{folder}/{assignment}", entries)
    _files(package_dir("course_lib"), "course_lib", entries)
    _files(package_dir("autograder"), "autograder", entries, code_only=True)
    entries["python"] = platform.python_version()
    for name in PACKAGES:
        try:
            entries[f"package {name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            entries[f"package {name}"] = "not installed"
    return entries


def digest(entries: Fingerprint) -> str:
    """One hash for a whole fingerprint."""
    return hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()


def differences(here: Fingerprint, there: Fingerprint, limit: int = 6) -> list[str]:
    """What differs between this machine's fingerprint and a worker's, in words (at most ``limit`` lines)."""
    absent = [key for key, value in [*here.items(), *there.items()] if value == "missing"]
    found = []
    for key in sorted(set(here) | set(there)):
        mine, theirs = here.get(key), there.get(key)
        if mine == theirs or any(key.startswith(f"{folder}/") for folder in absent):
            continue
        if key == "python" or key.startswith("package "):
            name = key.removeprefix("package ")
            found.append(f"{name} {theirs or 'not installed'} on the worker, {mine or 'not installed'} here")
        elif theirs == "missing" or theirs is None:
            found.append(f"{key} is missing on the worker")
        elif mine == "missing" or mine is None:
            found.append(f"{key} is on the worker, not here")
        else:
            found.append(f"{key} differs")
    if len(found) > limit:
        found = [*found[:limit], f"and {len(found) - limit} more"]
    return found
