"""Does the instructor's save_checkpoint (10_saving_loading) leave the previous checkpoint intact when the
process dies in the middle of a save?

The checks in course_lib simulate the crash with an exception; here a real process saving a ~100 MB
model is killed at three points, each reached deterministically (no sleeps that race the writer):

- ``sigkill-while-pickling``: the child blocks inside ``torch.save`` (a value in ``extra`` whose pickling
  waits on stdin), after the temporary file was opened; the parent polls for that file, then SIGKILLs;
- ``sigkill-before-rename``: the child's ``os.replace``/``os.rename`` block before renaming, when the
  temporary file holds the whole new checkpoint; the parent polls for the file, then SIGKILLs;
- ``killed-mid-write``: the child may write at most 16 MB per file (``RLIMIT_FSIZE``, with ``SIGXFSZ`` at
  its default action, which Python otherwise ignores), so the kernel kills it in the middle of writing
  the tensors' bytes.

After each, the file at ``path`` must load with ``weights_only=True`` and equal the first checkpoint, byte
for byte. A run without a kill shows that the same child does replace the checkpoint.

And does the checkpoint get the permissions a plain ``open(path, "wb")`` gives? ``os.replace`` keeps the
temporary file's, so ``tempfile.mkstemp``'s 0600 would lock the rest of a group out. The instructor's
solution creates its temporary file with ``open(temporary, "xb")``, which asks for 0666 and lets the kernel
apply the umask (or the folder's default ACL) exactly as for a plain open, without ever setting the
process-wide umask.
"""

from __future__ import annotations

import os
import selectors
import signal
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
import torch
from torch import nn

from tests.helpers import solution_sources

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and resource limits"),
]

NOTEBOOK = "10_saving_loading"
PRELUDE = "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n"
FILE_SIZE_LIMIT = 16 * 2**20  # bytes the child may write per file in the killed-mid-write run
TIMEOUT = 120  # seconds any child may take (it imports torch and writes ~100 MB)

# The child process: mode, solution file, checkpoint path. It saves a model of 26M float32 parameters
# (~105 MB) with the instructor's save_checkpoint over the existing checkpoint.
CHILD = r"""
import os
import resource
import signal
import sys

import torch
from torch import nn

mode, solution, path = sys.argv[1:4]
namespace = {}
exec(compile(open(solution).read(), solution, "exec"), namespace)
save_checkpoint = namespace["save_checkpoint"]


def block(where):
    print(f"blocked {where}", flush=True)
    sys.stdin.readline()  # the parent never writes: it kills this process
    os._exit(3)  # never continue the save (stdin closed without a kill)


class Gate:
    def __reduce__(self):
        block("while pickling")


extra = {"note": "the new checkpoint"}
if mode == "sigkill-while-pickling":
    extra["gate"] = Gate()
elif mode == "sigkill-before-rename":
    real_replace, real_rename = os.replace, os.rename

    def replace(src, dst, *args, **kwargs):
        block("before rename")
        return real_replace(src, dst, *args, **kwargs)

    os.replace = os.rename = replace
elif mode == "killed-mid-write":
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it by default
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[4]), hard))

torch.manual_seed(1)
model = nn.Linear(5120, 5120)
save_checkpoint(path, model, None, 2, **extra)
print("saved", flush=True)
"""


def _first_checkpoint(folder: Path):
    """Write the first, small checkpoint with the instructor's save_checkpoint; return its path, its bytes
    and the model it holds."""
    source = PRELUDE + solution_sources(NOTEBOOK)["save_checkpoint"]
    namespace: dict[str, object] = {}
    exec(compile(source, "save_checkpoint", "exec"), namespace)
    (folder / "save_checkpoint.py").write_text(source)
    checkpoints = folder / "checkpoints"
    checkpoints.mkdir()
    path = checkpoints / "checkpoint.pt"
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    namespace["save_checkpoint"](path, model, optimizer, 1, note="the first checkpoint")
    return path, path.read_bytes(), model, optimizer


def _start(mode: str, folder: Path, path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            mode,
            str(folder / "save_checkpoint.py"),
            str(path),
            str(FILE_SIZE_LIMIT),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_line(child: subprocess.Popen, deadline: float) -> str:
    """The child's next line of output, or a failure when it exits or the deadline passes."""
    with selectors.DefaultSelector() as selector:
        selector.register(child.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=max(0.0, deadline - time.monotonic())):
                line = child.stdout.readline()
                if not line:
                    child.wait(timeout=TIMEOUT)
                    raise AssertionError(
                        f"the child exited ({child.returncode}): {child.stderr.read()[-2000:]}"
                    )
                return line.strip()
    raise AssertionError("the child did not reach the kill point in time")


def _temporary_files(path: Path) -> list[Path]:
    return [p for p in path.parent.iterdir() if p.name != path.name]


def _wait_for_temporary_file(path: Path, deadline: float) -> list[Path]:
    """Poll the checkpoint's folder until a temporary file appears (the child is blocked meanwhile)."""
    while time.monotonic() < deadline:
        found = _temporary_files(path)
        if found:
            return found
        time.sleep(0.01)
    raise AssertionError("no temporary file appeared next to the checkpoint")


def _assert_first_checkpoint_intact(path: Path, first_bytes: bytes, model: nn.Module, optimizer) -> None:
    assert path.read_bytes() == first_bytes, "the previous checkpoint changed"
    checkpoint = torch.load(path, weights_only=True)
    assert set(checkpoint) == {"model", "optimizer", "epoch", "extra"}
    assert checkpoint["epoch"] == 1 and checkpoint["extra"] == {"note": "the first checkpoint"}
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(checkpoint["model"][name], tensor, rtol=0, atol=0)
    momentum = optimizer.state_dict()["state"][0]["momentum_buffer"]
    torch.testing.assert_close(
        checkpoint["optimizer"]["state"][0]["momentum_buffer"], momentum, rtol=0, atol=0
    )


@pytest.mark.parametrize("mode", ["sigkill-while-pickling", "sigkill-before-rename"])
def test_sigkill_midway_leaves_the_previous_checkpoint_intact(mode, tmp_path):
    """Killed with SIGKILL in the middle of save_checkpoint, is the previous checkpoint still whole?"""
    path, first_bytes, model, optimizer = _first_checkpoint(tmp_path)
    child = _start(mode, tmp_path, path)
    try:
        deadline = time.monotonic() + TIMEOUT
        assert _wait_for_line(child, deadline) == f"blocked {mode.removeprefix('sigkill-').replace('-', ' ')}"
        temporary = _wait_for_temporary_file(path, deadline)
        if mode == "sigkill-before-rename":  # the whole new checkpoint is written, not yet renamed
            assert max(p.stat().st_size for p in temporary) > 100 * 10**6
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=TIMEOUT) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=TIMEOUT)
    _assert_first_checkpoint_intact(path, first_bytes, model, optimizer)


def test_killed_while_writing_the_tensors_leaves_the_previous_checkpoint_intact(tmp_path):
    """Killed by the kernel after 16 of ~105 MB were written, is the previous checkpoint still whole?"""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    if hard != resource.RLIM_INFINITY and hard < FILE_SIZE_LIMIT:
        pytest.skip("the hard file size limit is below the test's")
    path, first_bytes, model, optimizer = _first_checkpoint(tmp_path)
    child = _start("killed-mid-write", tmp_path, path)
    _, stderr = child.communicate(timeout=TIMEOUT)
    assert child.returncode == -signal.SIGXFSZ, f"the child was not killed mid-write: {stderr[-2000:]}"
    sizes = [p.stat().st_size for p in _temporary_files(path)]
    assert sizes and FILE_SIZE_LIMIT // 2 < max(sizes) <= FILE_SIZE_LIMIT, sizes  # a half-written file
    _assert_first_checkpoint_intact(path, first_bytes, model, optimizer)


def test_the_same_save_without_a_kill_replaces_the_checkpoint(tmp_path):
    """Control: does the child, left alone, replace the checkpoint (so the kills above hit a real save)?"""
    path, first_bytes, _, _ = _first_checkpoint(tmp_path)
    child = _start("complete", tmp_path, path)
    stdout, stderr = child.communicate(timeout=TIMEOUT)
    assert child.returncode == 0 and stdout.strip() == "saved", stderr[-2000:]
    assert path.read_bytes() != first_bytes and _temporary_files(path) == []
    checkpoint = torch.load(path, weights_only=True, mmap=True)
    assert checkpoint["epoch"] == 2 and checkpoint["model"]["weight"].shape == (5120, 5120)


# -- permissions -----------------------------------------------------------------------------------------
def _instructor_save_checkpoint():
    namespace: dict[str, object] = {}
    exec(
        compile(PRELUDE + solution_sources(NOTEBOOK)["save_checkpoint"], "save_checkpoint", "exec"), namespace
    )
    return namespace["save_checkpoint"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _save_and_plain_open(folder: Path) -> tuple[int, int, int]:
    """The modes of a new checkpoint, of one saved over a 0600 checkpoint (as mkstemp left them), and of
    a file written with a plain open(path, "wb") in the same folder."""
    save_checkpoint = _instructor_save_checkpoint()
    model = nn.Linear(3, 2)
    save_checkpoint(folder / "new.pt", model, None, 0)
    over = folder / "over.pt"
    over.write_bytes(b"an older checkpoint")
    over.chmod(0o600)
    save_checkpoint(over, model, None, 1)
    with open(folder / "plain.pt", "wb") as file:
        file.write(b"plain")
    return _mode(folder / "new.pt"), _mode(over), _mode(folder / "plain.pt")


@pytest.mark.parametrize("umask", [0o022, 0o002], ids=["umask-022", "umask-002"])
def test_checkpoint_gets_the_permissions_of_a_plain_open(umask, tmp_path):
    """Under the umask given, does the instructor's checkpoint get 0o666 & ~umask, like open(path, "wb")?"""
    previous = os.umask(umask)
    try:
        new, over, plain = _save_and_plain_open(tmp_path)
    finally:
        os.umask(previous)
    assert new == over == plain == 0o666 & ~umask, (oct(new), oct(over), oct(plain))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.pt", "over.pt", "plain.pt"]


def _posix_acl(entries: list[tuple[int, int]]) -> bytes:
    """A POSIX ACL in the kernel's xattr format (version 2; tag, permissions, id per entry)."""
    return struct.pack("<I", 2) + b"".join(
        struct.pack("<HHI", tag, perm, 0xFFFFFFFF) for tag, perm in entries
    )


def test_checkpoint_follows_the_folders_default_acl_like_a_plain_open(tmp_path):
    """With a default ACL on the folder (group rwx, others nothing: a shared project folder), does the
    checkpoint get what open(path, "wb") gets (the umask no longer applies), where fixing the mode from the
    umask afterwards would not?"""
    user_obj, group_obj, other = 0x01, 0x04, 0x20
    try:
        os.setxattr(
            tmp_path, "system.posix_acl_default", _posix_acl([(user_obj, 7), (group_obj, 7), (other, 0)])
        )
    except (AttributeError, OSError) as error:
        pytest.skip(f"no default ACLs here: {error}")
    previous = os.umask(0o022)
    try:
        new, over, plain = _save_and_plain_open(tmp_path)
    finally:
        os.umask(previous)
    assert plain == 0o660, oct(plain)  # the ACL's group rw, not the umask's 0o644
    assert new == over == plain, (oct(new), oct(over), oct(plain))


def test_saving_never_sets_the_process_umask(tmp_path):
    """Does save_checkpoint leave the umask alone? It is the whole process's: setting it even for a moment
    changes the mode of every file that other threads create meanwhile."""
    save_checkpoint = _instructor_save_checkpoint()
    with mock.patch("os.umask", side_effect=AssertionError("save_checkpoint called os.umask")) as umask:
        save_checkpoint(tmp_path / "checkpoint.pt", nn.Linear(3, 2), None, 0)
    assert umask.call_count == 0
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["epoch"] == 0
