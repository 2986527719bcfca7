"""A folder's contents as data, to hand between processes and machines: a submission goes to a worker this
way, and its autograded notebook and feedback come back this way (autograder/engine/task.py)."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

#: A submission folder larger than this is not sent to a worker (it is recorded as failed, with the reason).
MAX_FOLDER_BYTES = 256 * 2**20


class FolderTooLarge(ValueError):
    """A folder holds more than ``MAX_FOLDER_BYTES``; the message says how much and what to do."""


@dataclass(frozen=True)
class File:
    path: str  # relative, with / between parts
    data: bytes
    mtime: float


@dataclass(frozen=True)
class Folder:
    """Regular files (bytes and modification time), symbolic links (as their target text, never followed)
    and subfolders of a folder; anything else in it (FIFOs, sockets, devices) is left out."""

    files: tuple[File, ...] = ()
    links: tuple[tuple[str, str], ...] = ()
    dirs: tuple[str, ...] = ()

    @classmethod
    def read(cls, root: Path, limit: int | None = None) -> Folder:
        """The contents of ``root``; with ``limit``, FolderTooLarge when its files add up to more bytes."""
        root = Path(root)
        files, links, dirs = [], [], []
        total = 0
        for path, kind in _walk(root):
            rel = path.relative_to(root).as_posix()
            if kind == "dir":
                dirs.append(rel)
            elif kind == "link":
                links.append((rel, os.readlink(path)))
            else:
                size = path.stat().st_size
                total += size
                if limit is not None and total > limit:
                    raise FolderTooLarge(
                        f"the submission folder holds more than {limit / 2**20:.0f} MiB of files: nothing "
                        "this large is graded; ask the student to submit the notebook without big data files"
                    )
                files.append(File(rel, path.read_bytes(), path.stat().st_mtime))
        return cls(tuple(files), tuple(links), tuple(dirs))

    def write(self, root: Path) -> None:
        """Recreate the folder at ``root`` (which must not exist yet), modification times included."""
        root = Path(root)
        root.mkdir(parents=True)
        for rel in self.dirs:
            (root / _safe(rel)).mkdir(parents=True, exist_ok=True)
        for file in self.files:
            path = root / _safe(file.path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(file.data)
            os.utime(path, (file.mtime, file.mtime))
        for rel, target in self.links:
            path = root / _safe(rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, path)

    @property
    def size(self) -> int:
        return sum(len(f.data) for f in self.files)

    def sha256(self) -> str:
        """sha256 over each file's relative path and bytes, in path order (links by their target text): the
        identity of a submission, which decides whether it was graded already."""
        entries = sorted(
            [(PurePosixPath(f.path), b"", f.data) for f in self.files]
            + [(PurePosixPath(rel), b"-> ", target.encode()) for rel, target in self.links]
        )
        digest = hashlib.sha256()
        for path, marker, data in entries:
            digest.update(str(path).encode() + b"\0" + marker)
            digest.update(data)
            digest.update(b"\0")
        return digest.hexdigest()


def folder_sha256(root: Path) -> str:
    """``Folder.read(root).sha256()`` without holding the files in memory."""
    root = Path(root)
    entries = []
    for path, kind in _walk(root):
        if kind in ("file", "link"):
            entries.append((PurePosixPath(path.relative_to(root).as_posix()), kind, path))
    digest = hashlib.sha256()
    for rel, kind, path in sorted(entries):
        if kind == "link":
            digest.update(str(rel).encode() + b"\0-> " + os.readlink(path).encode() + b"\0")
            continue
        digest.update(str(rel).encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def _walk(root: Path):
    """``(path, kind)`` below ``root``, kind ``dir``, ``link`` or ``file``; links are not followed."""
    for folder, names, filenames in os.walk(root, followlinks=False):
        for name in sorted(names + filenames):
            path = Path(folder, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                yield path, "link"
            elif stat.S_ISDIR(mode):
                yield path, "dir"
            elif stat.S_ISREG(mode):
                yield path, "file"


def _safe(rel: str) -> str:
    """A relative path that stays inside the folder it is written to."""
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
        raise ValueError(f"not a path inside a folder: {rel!r}")
    return rel
