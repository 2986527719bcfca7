"""Exercise checks, one module per notebook (``course_lib.checks.linear`` for 01_linear).

Test cells call them; each check runs the student's code on every available device, compares it with
PyTorch's own result and names the likely mistake when it fails. All check modules are imported here,
when the setup cell imports course_lib, so that they are recorded before any student code runs.
"""

from course_lib.checks import (
    custom_layers,
    hooks,
    initialization,
    lazy_layers,
    linear,
    modules,
    parameters,
    saving_loading,
    shared_parameters,
    training_loops,
)
from course_lib.checks._core import CheckFailure, Exercise, seeded, tolerances
from course_lib.checks._integrity import protect_module, tampered

__all__ = [
    "CheckFailure",
    "Exercise",
    "custom_layers",
    "hooks",
    "initialization",
    "lazy_layers",
    "linear",
    "modules",
    "parameters",
    "saving_loading",
    "seeded",
    "shared_parameters",
    "tampered",
    "tolerances",
    "training_loops",
]

protect_module(__name__)
