"""Does course_lib install and work outside the course's own environment, the way the README says?

The fast test reads every module of course_lib for what it imports and asks pyproject.toml to declare each
third-party package; the slow one builds a fresh virtual environment holding only torch==2.13.0, installs
course_lib from a git clone with pip (dependencies and all), and runs one check of every notebook there.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import catalogue
from tests.helpers import NOTEBOOKS, ROOT, solution_sources

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

PRELUDE = (
    "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n"
    "from torch.utils.data import DataLoader, TensorDataset\n"
)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_normalise(re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0]) for spec in project["dependencies"]}


def _imported_modules(package: Path) -> dict[str, str]:
    """``{top-level module: first file importing it}`` for every import in a package, functions included."""
    found: dict[str, str] = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_every_import_is_a_declared_dependency():
    """Does pyproject.toml declare every third-party package that course_lib imports (scikit-learn too)?"""
    distributions = importlib.metadata.packages_distributions()
    declared = _declared()
    missing = []
    for module, where in _imported_modules(ROOT / "course_lib").items():
        if module in sys.stdlib_module_names or module in ("course_lib", "__future__"):
            continue
        names = {_normalise(d) for d in distributions.get(module, [module])}
        if not names & declared:
            missing.append(f"{module} (imported in {where}; distribution {', '.join(sorted(names))})")
    assert not missing, "add to [project] dependencies in pyproject.toml: " + "; ".join(missing)
    assert "scikit-learn" in declared


def _first_exercise_script() -> str:
    """A script that imports course_lib as a notebook's setup cell does, then runs the visible check of
    each notebook's first exercise on the instructor's solution."""
    lines = [
        "import importlib",
        "from course_lib.notebook import setup_notebook",
        "setup_notebook()",
    ]
    for name in NOTEBOOKS:
        exercise, source = next(iter(solution_sources(name).items()))
        lines += [
            f"namespace = {{}}\nexec({PRELUDE + source!r}, namespace)",
            f"checks = importlib.import_module('course_lib.checks.{catalogue.NOTEBOOKS[name]}')",
            f"checks.check_{exercise}(namespace[{exercise!r}])",
        ]
    return "\n".join(lines) + "\n"


@pytest.mark.slow
def test_fresh_environment_installs_from_a_clone(tmp_path):
    """In a new virtual environment holding only torch==2.13.0, does `pip install "course-lib @ git+..."`
    of a clone bring everything course_lib needs, every checks module import, and one check of every
    notebook pass?"""
    repo = tmp_path / "repo"
    shutil.copytree(
        ROOT,
        repo,
        ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", "tests", "notebooks"),
    )
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run(git + command, cwd=repo, check=True, capture_output=True)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    for step in (["pip==26.3"], ["torch==2.13.0"], [f"course-lib @ git+file://{repo}@main"]):
        result = subprocess.run(pip + step, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"pip install {step}: {result.stderr[-3000:]}"

    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format=json"], capture_output=True, text=True, timeout=120
    )
    installed = {_normalise(p["name"]) for p in json.loads(listed.stdout)}
    assert _declared() <= installed, f"not installed: {_declared() - installed}"
    files = subprocess.run(
        [python, "-c", "import course_lib, pathlib; print(pathlib.Path(course_lib.__file__).parent)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    site = Path(files.stdout.strip())
    assert site.is_relative_to(venv), files.stdout + files.stderr
    assert {p.relative_to(site).as_posix() for p in site.rglob("*.py")} == {
        p.relative_to(ROOT / "course_lib").as_posix() for p in (ROOT / "course_lib").rglob("*.py")
    }

    probe = subprocess.run(
        [python, "-c", _first_exercise_script()],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    assert probe.returncode == 0, probe.stdout[-2000:] + probe.stderr[-3000:]
    assert probe.stdout.count("✓") == len(NOTEBOOKS), probe.stdout
    assert probe.stderr == "", probe.stderr
