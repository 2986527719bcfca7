"""Do the pinned package lists agree, and does course_lib declare what it imports?"""

import re

import yaml

from tests.helpers import ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def _requirements() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _conda_pip() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_lists = [item["pip"] for item in env["dependencies"] if isinstance(item, dict) and "pip" in item]
    assert len(pip_lists) == 1, "environment.yml should have one pip: list"
    return [entry for entry in pip_lists[0] if entry != "-e ."]


def test_requirements_and_environment_yml_pin_the_same_packages():
    """Does environment.yml give conda users exactly the pinned set of requirements.txt?"""
    assert sorted(_requirements()) == sorted(_conda_pip())


def test_every_requirement_is_pinned_exactly():
    """Is every package pinned to one version (name==version)?"""
    for line in _requirements():
        assert re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][A-Za-z0-9.+-]*(; .+)?", line), line


def test_torch_is_pinned_to_the_cpu_build_on_disk():
    """Is torch pinned to 2.13.0, the version the Makefile installs first?"""
    assert "torch==2.13.0" in _requirements()
    assert "torch==2.13.0" in (ROOT / "Makefile").read_text()


def test_course_lib_dependencies_are_in_the_pinned_set():
    """Is every dependency course_lib declares also pinned in requirements.txt?"""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = {line.split("==")[0].lower() for line in _requirements()}
    for dependency in project["dependencies"]:
        name = re.match(r"[A-Za-z0-9_.-]+", dependency).group(0).lower()
        assert name in pinned, f"{name} is a course_lib dependency but not pinned in requirements.txt"


def test_ci_runs_the_readme_test_command():
    """Does .ci/run call `make test`, the command the README gives?"""
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make lab" in readme
