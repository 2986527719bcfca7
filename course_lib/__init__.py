"""course_lib: the helpers the course's notebooks and their tests share.

Modules: ``devices`` (which devices exist), ``seeding`` (repeatable runs), ``summary`` (torchsummary on
any device), ``plots`` (figures), ``notebook`` (the setup cell), ``data`` (offline datasets),
``training`` (``fit`` with a progress bar and a history), and ``checks`` (what test cells call).
Importing course_lib records PyTorch's comparison functions and the checks, before any student code runs.
"""

__version__ = "0.1.0"

from course_lib import checks, devices, notebook, plots, seeding, summary  # noqa: E402

__all__ = ["checks", "devices", "notebook", "plots", "seeding", "summary", "__version__"]
