"""Start a grading kernel with resource caps: ``python kernel.py -f CONNECTION_FILE``.

The grading command writes a kernelspec whose argv runs this file (by path, so it works from any working
directory; standard library only). It caps the kernel's CPU time and address space with setrlimit, then
replaces itself with ipykernel, so the kernel manager sees and signals the kernel process itself:

- AUTOGRADER_CPU_SECONDS: CPU seconds for the whole kernel; at the limit the kernel gets SIGXCPU and dies,
  and the grader reports the submission as capped ("cpu") and grades the cells that ran.
- AUTOGRADER_MEMORY_BYTES: address space; an allocation beyond it fails with MemoryError (Python) or a
  RuntimeError (PyTorch) in the cell that made it, and the kernel lives on.

Every process the kernel starts inherits the same limits.
"""

from __future__ import annotations

import os
import resource
import sys


def _limit(kind: int, value: int) -> None:
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY and value > hard:
        value = hard
    resource.setrlimit(kind, (value, value if kind != resource.RLIMIT_CPU else value + 5))


def main() -> None:
    cpu = int(os.environ.get("AUTOGRADER_CPU_SECONDS", "0") or 0)
    memory = int(os.environ.get("AUTOGRADER_MEMORY_BYTES", "0") or 0)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a capped kernel leaves no core file behind
    if cpu > 0:
        _limit(resource.RLIMIT_CPU, cpu)
    if memory > 0:
        _limit(resource.RLIMIT_AS, memory)
    os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", *sys.argv[1:]])


if __name__ == "__main__":
    main()
