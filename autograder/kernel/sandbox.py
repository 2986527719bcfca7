"""Sandboxed grading kernels with bubblewrap (standard library only: launch.py, next to it, imports it).

The grading command checks ``problem()`` before it starts (no sandbox, no grading, unless the instructor
passes --no-sandbox), writes ``kernel_env(...)`` into the grading kernelspec, and launch.py hands
the kernel command to ``run(...)``, which starts it inside the sandbox ``wrap(...)`` describes and stays as
its parent until it ends.

What a kernel sees (everything else of the machine does not exist for it):

- read-only: /usr and the /bin, /lib... links into it, a few files of /etc (the dynamic linker's cache,
  name service switch, time zone, alternatives, fonts; a made-up passwd and group), the Python installation
  (the virtual environment and the Python it was made from), the course_lib package, CPU topology in /sys,
  and its kernel connection file;
- its own /proc (its own processes only), a minimal /dev, a private /tmp in memory (``TMP_BYTES`` at most)
  holding HOME (with a copy of matplotlib's font list, so that no kernel spends seconds rebuilding it);
- read-write: the folder of its kernel sockets, and its working directory: a scratch copy of the student's
  folder WITHOUT the notebooks (the notebook being graded holds the hidden tests), thrown away afterwards;
- no network (a network namespace of its own with only loopback), no capabilities, no new user namespaces,
  a process namespace of its own: when the kernel ends or is killed, every process it started dies too,
  daemons included. The environment keeps only what Python, PyTorch and Jupyter use (no tokens).

The kernel's resource limits (launch.py) are inherited by the sandbox and everything in it.

The kernel manager's process is the launcher (launch.py running ``run``), two levels above the
kernel (bwrap, then bwrap's init in the sandbox): killing the launcher or its process group kills the whole
sandbox (--die-with-parent); a kernel that dies of a signal (SIGXCPU at the CPU cap) ends the launcher with
the same signal; and the sandbox ends when the kernel manager dies. /proc/PID of the launcher shows the
launcher's CPU time and memory, not the kernel's: those are in its descendants.
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from typing import NoReturn

from course_lib.protocol import ENV_SANDBOX

#: Size of the kernel's private /tmp (it lives in memory: a full /tmp fails the write, not the machine).
TMP_BYTES = 512 * 2**20
#: The kernel's home folder, inside its private /tmp.
HOME = "/tmp/home"
#: Files and folders of /etc a kernel may read (those that exist).
ETC = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "nsswitch.conf",
    "host.conf",
    "hosts",
    "gai.conf",
    "protocols",
    "services",
    "localtime",
    "timezone",
    "locale.alias",
    "mime.types",
    "alternatives",
    "fonts",
    "os-release",
)
#: What a kernel may read of /sys: CPU topology (PyTorch's CPU detection reads it).
SYS = ("/sys/devices/system/cpu",)
#: Environment variables a kernel keeps: these names, and names starting with these prefixes.
ENV_NAMES = frozenset(
    {
        "PATH",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TERM",
        "MPLBACKEND",
        "JPY_SESSION_NAME",
        "JUPYTER_PATH",
        "JUPYTER_RUNTIME_DIR",
        "CUBLAS_WORKSPACE_CONFIG",
        "CUDA_VISIBLE_DEVICES",
    }
)
ENV_PREFIXES = (
    "LC_",
    "PYTHON",
    "OMP_",
    "MKL_",
    "OPENBLAS_",
    "KMP_",
    "NUMEXPR_",
    "VECLIB_",
    "BLIS_",
    "TORCH_",
    "PYTORCH_",
    "NBGRADER_",
    "PYDEVD_",
    "AUTOGRADER_",
)
_SECRET = re.compile(r"TOKEN|SECRET|PASSW|CREDENTIAL|API_?KEY|PRIVATE", re.IGNORECASE)
#: Optional bwrap features, newest first: used when this bwrap has them (--disable-userns: 0.8, --size: 0.7).
_OPTIONAL = (("--disable-userns", "--size"), ("--size",), ("--disable-userns",), ())
#: Signals whose default action ends a process: how a kernel ended is passed on as the same signal.
_FATAL = frozenset(
    int(getattr(signal, name))
    for name in (
        "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGKILL",
        "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGXCPU", "SIGXFSZ", "SIGSYS",
    )
    if hasattr(signal, name)
)  # fmt: skip
INSTALL = (
    "install bubblewrap (Debian/Ubuntu: sudo apt-get install bubblewrap; "
    "Fedora: sudo dnf install bubblewrap)"
)


def bwrap_path() -> str | None:
    """The bwrap to use: $AUTOGRADER_BWRAP when set, else bwrap on PATH (None when there is none)."""
    return os.environ.get("AUTOGRADER_BWRAP") or shutil.which("bwrap")


@functools.lru_cache(maxsize=8)
def _probe(bwrap: str | None) -> tuple[str | None, tuple[str, ...]]:
    """(why no sandbox can be made, or None; the optional bwrap features that work), from trial runs."""
    if bwrap is None:
        return f"bubblewrap (bwrap) is not installed: {INSTALL}", ()
    source = "AUTOGRADER_BWRAP" if os.environ.get("AUTOGRADER_BWRAP") else "PATH"
    if not (os.path.isfile(bwrap) and os.access(bwrap, os.X_OK)):
        return f"bubblewrap not found at {bwrap} (from {source}): {INSTALL}, or fix {source}", ()
    true = shutil.which("true") or "/bin/true"
    error = ""
    for optional in _OPTIONAL:
        command = [bwrap, *_namespaces(optional), "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
        command += [*(["--size", str(TMP_BYTES)] if "--size" in optional else []), "--tmpfs", "/tmp"]
        command += ["--remount-ro", "/", true]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
        except subprocess.TimeoutExpired:
            return f"{bwrap} did not start a trivial sandbox within 10 s", ()
        except OSError as err:
            return f"{bwrap} cannot be run: {err}", ()
        if result.returncode == 0:
            return None, optional
        error = error or (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
    return (
        f"bubblewrap ({bwrap}) cannot make a sandbox on this machine: {error}. Usually user namespaces are "
        "off: as root, run `sysctl -w user.max_user_namespaces=10000` (Debian before 11 also "
        "`sysctl -w kernel.unprivileged_userns_clone=1`; Ubuntu 24.04 and later: "
        "`sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`); inside a container, start it with "
        "`--security-opt seccomp=unconfined --security-opt apparmor=unconfined`"
    ), ()


def problem() -> str | None:
    """Why no sandbox can be made on this machine (bwrap missing or failing), or None when it can."""
    return _probe(bwrap_path())[0]


def _namespaces(optional: tuple[str, ...] | list[str]) -> list[str]:
    """bwrap's isolation options: every namespace, no capabilities, no way out, nothing left behind."""
    flags = ["--unshare-all", "--unshare-user", "--cap-drop", "ALL", "--die-with-parent", "--new-session"]
    return flags + (["--disable-userns"] if "--disable-userns" in optional else [])


def _existing(paths: list[str]) -> list[str]:
    """The paths that exist, each once, as given and (where it differs) as its real path."""
    found: list[str] = []
    for path in paths:
        for candidate in (os.path.abspath(path), os.path.realpath(path)):
            if os.path.exists(candidate) and candidate not in found:
                found.append(candidate)
    return found


def _python_dirs() -> list[str]:
    """The Python installation a kernel runs: the environment, the Python it was made from, site-packages."""
    import site

    paths = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix]
    paths.append(os.path.dirname(sys.executable))
    paths += site.getsitepackages() if hasattr(site, "getsitepackages") else []
    if site.ENABLE_USER_SITE and site.getusersitepackages():
        paths.append(site.getusersitepackages())
    return _existing(paths)


def _package_dirs(name: str) -> list[str]:
    """Where a kernel imports package ``name`` from (an editable install's source folder included), found as
    the kernel finds it: without this process's working directory on the path."""
    here = os.getcwd()
    saved = sys.path[:]
    spec = None
    try:
        sys.path[:] = [p for p in sys.path if p not in ("", ".") and os.path.abspath(p) != here]
        for finder in sys.meta_path:  # not importlib.util.find_spec: that answers from sys.modules
            find = getattr(finder, "find_spec", None)
            spec = find(name, None) if find else None
            if spec is not None:
                break
    except Exception:
        spec = None
    finally:
        sys.path[:] = saved
    if spec is None:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
    if spec is None:
        return []
    if spec.submodule_search_locations:
        return _existing(list(spec.submodule_search_locations))
    return _existing([spec.origin]) if spec.origin else []


def _home_files() -> dict[str, str]:
    """Caches each kernel gets a private copy of in its HOME, ``{path in HOME: path here}``: matplotlib's font
    list (without it every kernel would scan the fonts anew, which takes seconds)."""
    base = os.environ.get("MPLCONFIGDIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "matplotlib"
    )
    try:
        names = sorted(n for n in os.listdir(base) if n.startswith("fontlist-") and n.endswith(".json"))
    except OSError:
        return {}
    return {f".cache/matplotlib/{name}": os.path.join(base, name) for name in names}


def kernel_env(root: str, sockets: str) -> dict[str, str]:
    """Environment entries for the grading kernelspec: what the sandbox of each kernel lets it see."""
    bwrap = bwrap_path()
    why, optional = _probe(bwrap)
    if why is not None:
        raise RuntimeError(f"cannot sandbox the grading kernels: {why}")
    identity = os.path.join(root, "sandbox", "etc")
    os.makedirs(identity, exist_ok=True)
    with open(os.path.join(identity, "passwd"), "w", encoding="utf-8") as f:
        f.write(f"root:x:0:0:student:{HOME}:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    with open(os.path.join(identity, "group"), "w", encoding="utf-8") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")
    spec = {
        "bwrap": bwrap,
        "optional": list(optional),
        "root": os.path.abspath(root),
        "sockets": os.path.abspath(sockets),
        "python": _python_dirs(),
        "packages": _package_dirs("course_lib"),
        "home_files": _home_files(),
        "tmp_bytes": TMP_BYTES,
    }
    return {ENV_SANDBOX: json.dumps(spec)}


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _connection_file(command: list[str]) -> str | None:
    for index, arg in enumerate(command):
        if arg == "-f" and index + 1 < len(command):
            return os.path.abspath(command[index + 1])
        if arg.startswith(("--f=", "--KernelApp.connection_file=", "--IPKernelApp.connection_file=")):
            return os.path.abspath(arg.split("=", 1)[1])
    return None


def wrap(
    command: list[str], spec: dict, cwd: str, scratch: str | None = None, files: dict[str, int] | None = None
) -> list[str]:
    """``command`` (the kernel's argv) run inside the sandbox described by ``spec``, working in ``cwd``,
    which shows ``scratch`` (a folder, writable) or else an empty folder in memory; ``files`` maps paths in
    the kernel's HOME to open file descriptors whose contents bwrap copies there."""
    optional = spec.get("optional", [])
    args = [spec["bwrap"], *_namespaces(optional), "--hostname", "grading"]
    bound: list[str] = []  # read-only binds so far: what lies inside them needs no bind of its own

    def ro_bind(path: str) -> None:
        if not any(_inside(path, b) for b in bound):
            args.extend(["--ro-bind", path, path])
            bound.append(path)

    ro_bind("/usr")
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = f"/{name}"
        if os.path.islink(path):
            args.extend(["--symlink", os.readlink(path), path])
        elif os.path.isdir(path):
            ro_bind(path)
    for name in ETC:
        if os.path.lexists(f"/etc/{name}"):
            args.extend(["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"])
    identity = os.path.join(spec["root"], "sandbox", "etc")
    for name in ("passwd", "group"):
        args.extend(["--ro-bind-try", os.path.join(identity, name), f"/etc/{name}"])
    for path in SYS:
        args.extend(["--ro-bind-try", path, path])
    args += ["--proc", "/proc", "--dev", "/dev"]
    # GPUs, where the machine has them: the checks also run on CUDA when the kernel can see it.
    for device in sorted(glob.glob("/dev/nvidia*")):
        args += ["--dev-bind-try", device, device]
    size = int(spec.get("tmp_bytes") or TMP_BYTES)
    args += [*(["--size", str(size)] if "--size" in optional else []), "--tmpfs", "/tmp", "--dir", HOME]
    for name, fd in (files or {}).items():
        args += ["--file", str(fd), os.path.join(HOME, name)]
    for path in [*spec.get("python", []), *spec.get("packages", [])]:
        ro_bind(path)  # after /tmp: an environment may live there
    args += ["--bind", spec["sockets"], spec["sockets"]]
    connection = _connection_file(command)
    if connection:
        args += ["--ro-bind", connection, connection]
    cwd = os.path.abspath(cwd)
    if cwd != "/":
        if scratch:
            args += ["--bind", scratch, cwd]
        else:
            args += [*(["--size", str(size)] if "--size" in optional else []), "--tmpfs", cwd]
    args += ["--remount-ro", "/", "--chdir", cwd if cwd != "/" else HOME, "--", *command]
    return args


def environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """The kernel's environment inside the sandbox: what Python, PyTorch and Jupyter use, nothing secret.
    JPY_PARENT_PID is 1: the kernel's parent in the sandbox is the sandbox's init, and ipykernel watches no
    parent of pid 1 (a kernel whose parent is not the one named would stop at once); the sandbox ends with
    the kernel's launcher anyway (--die-with-parent)."""
    env = dict(os.environ if env is None else env)
    kept = {
        k: v
        for k, v in env.items()
        if (k in ENV_NAMES or k.startswith(ENV_PREFIXES)) and not _SECRET.search(k) and k != "PYTHONSTARTUP"
    }
    kept.update(HOME=HOME, TMPDIR="/tmp", USER="student", LOGNAME="student", SHELL="/bin/sh")
    kept["JPY_PARENT_PID"] = "1"
    kept.setdefault("PATH", os.defpath)
    return kept


def _scratch(cwd: str, spec: dict) -> str | None:
    """A writable copy of the kernel's working folder without its notebooks, under the worker's folder
    (None when ``cwd`` is not a grading folder: the kernel then gets an empty one)."""
    root = spec["root"]
    cwd = os.path.abspath(cwd)
    if not _inside(cwd, root) or cwd == root:
        return None
    folder = os.path.join(root, "sandbox")
    os.makedirs(folder, exist_ok=True)
    for entry in os.listdir(folder):  # left behind by kernels that were killed with their launcher
        pid = entry.removeprefix("cwd-")
        if entry.startswith("cwd-") and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(os.path.join(folder, entry), ignore_errors=True)
    scratch = os.path.join(folder, f"cwd-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(
        cwd, scratch, symlinks=True, ignore=shutil.ignore_patterns("*.ipynb"), copy_function=_copy_regular
    )
    return scratch


def _copy_regular(source: str, target: str) -> None:
    """Copy a regular file; leave out anything else a submission may hold (a FIFO would block the copy)."""
    if stat.S_ISREG(os.lstat(source).st_mode):
        shutil.copy2(source, target)


def _inherited_fds() -> list[int]:
    """File descriptors above stderr this process was asked to hand on (e.g. launch.py's pipe)."""
    fds = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if fd > 2 and os.get_inheritable(fd):
                fds.append(fd)
        except OSError:
            pass  # the listing's own descriptor, closed by now
    return fds


def _wait(process: subprocess.Popen, parent: int, stop: list[int]) -> int:
    """Wait for the sandbox to end; if the kernel manager that started this launcher dies first (nobody is
    left to shut the kernel down), end the sandbox, as ipykernel ends a kernel whose parent is gone."""
    while True:
        try:
            return process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            if parent != 1 and os.getppid() != parent and not stop:
                stop.append(signal.SIGTERM)
                process.kill()


def run(command: list[str], spec: dict, cwd: str) -> NoReturn:
    """Run ``command`` in the sandbox and end as it ends (never returns): this process stays its parent,
    removes the scratch folder afterwards, and exits with the kernel's status; a kernel killed by a signal
    (e.g. SIGXCPU at its CPU cap) ends this process with the same signal, so the grader sees how it ended."""
    parent = os.getppid()  # the kernel manager
    scratch = _scratch(cwd, spec)
    fds = _inherited_fds()
    files = {}
    for name, path in spec.get("home_files", {}).items():
        try:
            files[name] = os.open(path, os.O_RDONLY)
        except OSError:
            continue  # gone since: the kernel does without
    argv = wrap(command, spec, cwd, scratch, files)
    stop: list[int] = []
    child: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        if signum == signal.SIGINT:
            return  # interrupts reach the kernel as messages; a stray SIGINT must not end the sandbox
        stop.append(signum)
        for pid in child:
            try:
                os.kill(pid, signal.SIGKILL)  # bwrap's --die-with-parent takes the sandbox down with it
            except ProcessLookupError:
                pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        process = subprocess.Popen(argv, env=environment(), pass_fds=[*fds, *files.values()], close_fds=True)
    except OSError as err:
        print(f"cannot start the grading sandbox ({argv[0]}): {err}", file=sys.stderr, flush=True)
        os._exit(1)
    child.append(process.pid)
    for fd in [*fds, *files.values()]:
        os.close(fd)
    status = _wait(process, parent, stop)
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    signum = stop[0] if stop else -status if status < 0 else status - 128 if status - 128 in _FATAL else 0
    if signum:
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    os._exit(status if 0 <= status < 256 else 1)
