"""`make release`: regenerate notebooks/ from solutions/ with nbgrader generate_assignment."""

from __future__ import annotations

from autograder import nbgrader_cli
from autograder.authoring import notebooks as nbtools


def release(names: list[str]) -> None:
    """Generate the student version of each named notebook (and record it in the gradebook)."""
    for name in names:
        nbgrader_cli.run(
            nbtools.ROOT, "generate_assignment", name, "--force", "--log-level=WARN", capture=False
        )
        print(f"released notebooks/{name}/{name}.ipynb")
