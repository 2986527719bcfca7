"""Start a grading kernel with resource caps: ``python launch.py -f CONNECTION_FILE``.

The grading worker writes a kernelspec whose argv runs this file (by path, so it works from any working
directory; it needs only the standard library and course_lib.protocol). It caps the kernel's CPU time and
address space with setrlimit, and dies with the grading worker. Then it either supervises the kernel in its
bubblewrap sandbox (sandbox.py next to it: it stays the kernel's parent and ends as the kernel ends, with
the same signal), or, with --no-sandbox, replaces itself with ipykernel:

- AUTOGRADER_CPU_SECONDS: CPU seconds for the whole kernel; at the limit the kernel gets SIGXCPU and dies,
  and the grader reports the submission as capped ("cpu") and grades the cells that ran.
- AUTOGRADER_MEMORY_BYTES: address space; an allocation beyond it fails with MemoryError (Python) or a
  RuntimeError (PyTorch) in the cell that made it, and the kernel lives on.

Every process the kernel starts inherits the same limits.
"""

from __future__ import annotations

import json
import os
import resource
import sys

from course_lib import protocol

# What the kernel process runs: take the evidence key from its pipe before any notebook code runs, make it
# available to course_lib's checks as a signing function only, then start ipykernel as its launcher does.
BOOT = """
import os, sys
if sys.path and sys.path[0] == "":
    del sys.path[0]
from course_lib import protocol
fd = os.environ.pop(protocol.ENV_EVIDENCE_FD, None)
if fd is not None:
    import types

    evidence = types.ModuleType(protocol.EVIDENCE_MODULE)
    evidence.sign = protocol.signer(os.read(int(fd), 4096))
    os.close(int(fd))
    sys.modules[protocol.EVIDENCE_MODULE] = evidence
    del evidence, fd, types
del protocol
from ipykernel import kernelapp
kernelapp.launch_new_instance()
"""


def _limit(kind: int, value: int) -> None:
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY and value > hard:
        value = hard
    resource.setrlimit(kind, (value, value if kind != resource.RLIMIT_CPU else value + 5))


def _die_with_parent() -> None:
    """Be killed when the grading worker that started this kernel dies, even by kill -9 (Linux; the
    setting survives exec, so it holds for ipykernel and for the sandbox this process supervises)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the worker is already gone
            os._exit(1)
    except (OSError, AttributeError):
        pass


def main() -> None:
    _die_with_parent()
    cpu = int(os.environ.get(protocol.ENV_CPU_SECONDS, "0") or 0)
    memory = int(os.environ.get(protocol.ENV_MEMORY_BYTES, "0") or 0)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a capped kernel leaves no core file behind
    if cpu > 0:
        _limit(resource.RLIMIT_CPU, cpu)
    if memory > 0:
        _limit(resource.RLIMIT_AS, memory)
    command = [sys.executable, "-c", BOOT, *sys.argv[1:]]
    key = os.environ.pop(protocol.ENV_EVIDENCE_KEY, "")
    if key:
        # The evidence key goes through a pipe, so it is in no environment /proc could show the student.
        read_end, write_end = os.pipe()
        os.write(write_end, key.encode())
        os.close(write_end)
        os.set_inheritable(read_end, True)
        os.environ[protocol.ENV_EVIDENCE_FD] = str(read_end)
    spec = os.environ.pop(protocol.ENV_SANDBOX, "")
    if spec:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import sandbox  # autograder/kernel/sandbox.py, next to this file

        # The kernel runs in a bubblewrap sandbox; this process stays its parent and ends as it ends.
        sandbox.run(command, json.loads(spec), os.getcwd())
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
