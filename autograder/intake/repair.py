"""Submissions as they arrive: read what can be read, repair what can be repaired from the released
notebook, and say clearly why the rest cannot be graded. The submitted files are never changed: the
grader works on a copy.

``prepare_submission`` copies a submission folder to the grader's working folder and leaves there a
notebook ``<assignment>.ipynb`` that nbgrader can grade, or a reason why there is none:

- a healthy notebook is left byte for byte as submitted, so it scores exactly as with plain nbgrader;
- a missing notebook: another notebook in the folder (renamed, "01_linear (1).ipynb") is graded instead;
- bytes that are not UTF-8 are replaced; trailing data after the notebook's JSON is ignored; an old
  nbformat (v1-v3) is converted to v4; a notebook over ``LARGE_NOTEBOOK_BYTES`` has its outputs cleared
  (nbgrader clears them anyway), one over ``MAX_NOTEBOOK_BYTES`` is not read;
- cells are checked against the released notebook by nbgrader grade_id: deleted nbgrader cells are put
  back, re-typed ones turned back, mangled or missing nbgrader metadata restored, copies of a graded cell
  made ordinary cells, nbgrader cells out of place moved back; the student's own cells are kept;
- image attachments that markdown cells refer to but lack are put back from the release (nbconvert would
  refuse to render the feedback).

Each repair adds a flag (shown in the class report); what cannot be graded gets a reason.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import json
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

# Above this size a notebook's outputs are cleared before grading.
LARGE_NOTEBOOK_BYTES = 50 * 2**20
# Above this size a notebook is not even read.
MAX_NOTEBOOK_BYTES = 200 * 2**20

TIMESTAMP = "timestamp.txt"
CHECKPOINTS = ".ipynb_checkpoints"
_RESUBMIT = "ask the student to save the notebook in Jupyter and submit it again"
_COPY_SUFFIX = re.compile(r"(\s*\(\d+\)|[\s_-]*copy\d*|^copy of\s*|[\s_-]*checkpoint)", re.IGNORECASE)
_ATTACHMENT = re.compile(r"attachment:([^\s)\"'>]+)")
_CELL_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_DEFINITION = re.compile(r"^(?:async\s+)?(?:def|class)\s+(\w+)", re.MULTILINE)
RESTORED_SOLUTION = (
    "# This answer cell was missing from the submission: the grader put it back empty.\n"
    "# (Any definition made in another cell of the notebook is still used.)"
)


@dataclass
class Preparation:
    """What ``prepare_submission`` did: ``reason`` is set when nothing can be graded."""

    flags: list[str] = field(default_factory=list)
    reason: str | None = None


class Unreadable(Exception):
    """A notebook file that cannot be graded; the message is the reason shown to the instructor."""


def prepare_submission(source: Path, target: Path, assignment: str, release: Path) -> Preparation:
    """Copy the submission folder ``source`` to ``target`` (the grader's working copy), leaving a notebook
    ``target/<assignment>.ipynb`` that nbgrader can grade; ``release`` is the released notebook."""
    preparation = Preparation()
    try:
        _prepare(Path(source), Path(target), assignment, Path(release), preparation)
    except Exception as error:  # a bug here must not stop the class's grading
        preparation.reason = (
            f"the submission could not be prepared for grading ({type(error).__name__}: {error}); "
            "this is a grader bug: grade this submission by hand and report it"
        )
    return preparation


# ------------------------------------------------------------------------------------------- the folder


def _prepare(source: Path, target: Path, assignment: str, release: Path, preparation: Preparation) -> None:
    if not source.is_dir():
        preparation.reason = f"no submission folder at {source}"
        return
    links: list[str] = []

    def skip_links(folder: str, names: list[str]) -> set[str]:
        found = {n for n in names if Path(folder, n).is_symlink()}
        links.extend(str(Path(folder, n).relative_to(source)) for n in sorted(found))
        return found

    shutil.copytree(source, target, ignore=skip_links)
    if links:
        preparation.flags.append(f"ignored symbolic link(s) in the submission: {', '.join(links[:5])}")
    _check_timestamp(target, preparation.flags)
    expected = target / f"{assignment}.ipynb"
    files = [p for p in target.rglob("*") if p.is_file() and p.name != TIMESTAMP]
    if not files:
        preparation.reason = (
            f"empty submission: the folder holds no files (expected {expected.name}); {_RESUBMIT}"
        )
        return
    candidates = _candidates(target, expected)
    if not candidates:
        found = ", ".join(sorted(str(p.relative_to(target)) for p in files)[:5])
        more = f" and {len(files) - 5} more" if len(files) > 5 else ""
        preparation.reason = (
            f"no notebook in the submission (expected {expected.name}; found: {found}{more}): "
            "ask the student to submit the .ipynb file"
        )
        return
    try:
        released = _read_release(release)
    except Exception as error:
        released = None
        preparation.flags.append(f"cells not checked: the released notebook could not be read ({error})")
    problems: list[tuple[Path, str]] = []
    for candidate in candidates:
        flags: list[str] = []
        try:
            nb, changed = _load(candidate, flags)
            if candidate != expected and released is not None and not _belongs(nb, released):
                raise Unreadable(f"not this assignment's notebook (none of {expected.name}'s exercises)")
        except Unreadable as error:
            problems.append((candidate, str(error)))
            continue
        name = str(candidate.relative_to(target))
        for path, problem in problems:
            preparation.flags.append(f"{path.relative_to(target)}: {problem}; graded {name} instead")
        if candidate != expected and not problems:
            preparation.flags.append(f"renamed: graded {name} as {expected.name}")
        if released is not None:
            changed |= repair_cells(nb, released, flags)
        changed |= restore_attachments(nb, released, flags)
        preparation.flags.extend(flags)
        if changed:
            nbformat.write(nb, expected)
        elif candidate != expected:
            shutil.copyfile(candidate, expected)
        return
    path, problem = problems[0]
    where = "" if path == expected else f" ({path.relative_to(target)})"
    preparation.reason = f"{problem}{where}"
    if len(problems) > 1:
        others = "; ".join(f"{p.relative_to(target)}: {why}" for p, why in problems[1:])
        preparation.reason += f"; the other notebooks are no better: {others}"


def _check_timestamp(target: Path, flags: list[str]) -> None:
    """nbgrader stops on a timestamp.txt it cannot parse: grade without it and say so."""
    from nbgrader.utils import parse_utc

    path = target / TIMESTAMP
    if not path.is_file():
        return
    try:
        text = path.read_text(encoding="utf-8").strip()
        if text:
            parse_utc(text)
    except (ValueError, OverflowError, UnicodeDecodeError):
        path.unlink()
        flags.append(f"{TIMESTAMP} is unreadable: graded without a submission time (no late penalty)")


def _candidates(target: Path, expected: Path) -> list[Path]:
    """The notebooks to try, best first: the expected one, then the most plausible other ones."""
    assignment = expected.stem.lower()

    def plausibility(path: Path) -> tuple[bool, float, float, str]:
        stem = _COPY_SUFFIX.sub("", path.stem).strip().lower()
        similarity = difflib.SequenceMatcher(None, stem, assignment).ratio()
        return (CHECKPOINTS in path.parts, -similarity, -path.stat().st_mtime, str(path))

    others = [p for p in target.rglob("*.ipynb") if p.is_file() and p != expected]
    ranked = sorted(others, key=plausibility)
    return ([expected] if expected.is_file() else []) + ranked


# ------------------------------------------------------------------------------------------ the file


def _load(path: Path, flags: list[str]) -> tuple[nbformat.NotebookNode, bool]:
    """Read one notebook file leniently; return it as v4 and whether it differs from the file's bytes."""
    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        raise Unreadable(
            f"the notebook is {_mb(size)}, over the {_mb(MAX_NOTEBOOK_BYTES)} limit, and was not read: "
            "ask the student to clear all outputs (Edit > Clear Outputs of All Cells), save and submit again"
        )
    data = path.read_bytes()
    if not data.strip():
        raise Unreadable(f"empty submission: {path.name} is {'empty' if not data else 'blank'}; {_RESUBMIT}")
    text, changed = _decode(data, flags)
    raw, salvaged = _parse(text, flags)
    nb, converted = _to_v4(raw, flags)
    changed |= salvaged | converted
    if size > LARGE_NOTEBOOK_BYTES:
        changed |= _shrink(nb, size, flags)
    return nb, changed


def _mb(size: int) -> str:
    return f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size / 2**10:.0f} KB"


def _decode(data: bytes, flags: list[str]) -> tuple[str, bool]:
    """The file's text: UTF-8, with a byte order mark dropped and undecodable bytes replaced."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            pass
        else:
            flags.append("the notebook was saved as UTF-16: read it as such")
            return text.lstrip("\ufeff"), True
    changed = False
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
        changed = True
        flags.append("the notebook starts with a byte order mark: ignored it")
    try:
        return data.decode("utf-8"), changed
    except UnicodeDecodeError as error:
        text = data.decode("utf-8", errors="replace")
        bad = text.count("\ufffd") - data.count("\ufffd".encode())
        line = data.count(b"\n", 0, error.start) + 1
        flags.append(
            f"the notebook is not valid UTF-8: {bad} undecodable byte(s) (first on line {line}) "
            "replaced with \ufffd"
        )
        return text, True


def _parse(text: str, flags: list[str]) -> tuple[Any, bool]:
    """The notebook's JSON; trailing data after a complete JSON object is ignored (and flagged)."""
    try:
        return json.loads(text), False
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":
            start = len(text) - len(text.lstrip())
            raw, end = json.JSONDecoder().raw_decode(text, start)
            if isinstance(raw, dict) and ("cells" in raw or "worksheets" in raw):
                rest = len(text) - end
                flags.append(
                    f"ignored {rest} character(s) of trailing data after the notebook's JSON "
                    f"(from line {error.lineno})"
                )
                return raw, True
        hint = ""
        stripped = text.lstrip()
        if stripped[:1] == "<":
            hint = "; it looks like a web page, not a notebook (a download of the page instead of the file?)"
        elif stripped[:1] == "{" and not text.rstrip().endswith("}"):
            hint = "; the file ends in the middle of the notebook: it looks truncated"
        raise Unreadable(
            f"not a readable notebook: invalid JSON at line {error.lineno} column {error.colno} "
            f"({error.msg}){hint}; {_RESUBMIT}"
        ) from None


def _to_v4(raw: Any, flags: list[str]) -> tuple[nbformat.NotebookNode, bool]:
    """A v4 notebook from the parsed JSON: old formats converted, a broken structure refused or mended."""
    if not isinstance(raw, dict):
        kind = type(raw).__name__
        raise Unreadable(f"not a readable notebook: the file holds a JSON {kind}, not a notebook")
    major, minor = raw.get("nbformat"), raw.get("nbformat_minor", 0)
    if not isinstance(major, int) or isinstance(major, bool) or not isinstance(minor, int):
        raise Unreadable(
            "not a readable notebook: its nbformat version fields are missing or not numbers "
            f"(nbformat: {str(major)[:40]!r}, nbformat_minor: {str(minor)[:40]!r}); {_RESUBMIT}"
        )
    if major > 4 or major < 1:
        raise Unreadable(f"not a readable notebook: nbformat {major} is not a format this grader reads")
    if major < 4:
        try:
            old = nbformat.versions[major].to_notebook_json(raw, minor=minor)
            nb = nbformat.convert(old, 4)
            nbformat.validate(nb)
        except Exception as error:
            raise Unreadable(
                f"not a readable notebook: an old notebook format (nbformat {major}.{minor}) that could not "
                f"be converted ({_short(error)}); {_RESUBMIT}"
            ) from None
        flags.append(f"old notebook format (nbformat {major}.{minor}): converted to nbformat 4")
        return nb, True
    changed = _mend_structure(raw, major, minor, flags)
    nb = nbformat.from_dict(raw)
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError:
        nb = _revalidate(raw, flags)
        changed = True
    return nb, changed


def _revalidate(raw: dict[str, Any], flags: list[str]) -> nbformat.NotebookNode:
    """A notebook that fails nbformat's schema: drop unknown fields, then outputs, or refuse it."""
    from nbformat.validator import normalize

    try:
        _, fixed = normalize(raw, relax_add_props=True, strip_invalid_metadata=True)
        nb = nbformat.from_dict(fixed)
        nbformat.validate(nb)
        flags.append("the notebook had fields nbformat does not know: removed them")
        return nb
    except Exception:
        nb = nbformat.from_dict(raw)
    cleared = _clear_outputs(nb)
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as error:
        raise Unreadable(f"not a valid notebook: {_short(error)}; {_RESUBMIT}") from None
    flags.append(f"invalid outputs in {cleared} cell(s): cleared them")
    return nb


def _short(error: Exception) -> str:
    lines = str(error).strip().splitlines() or [type(error).__name__]
    return lines[0][:300]


def _mend_structure(raw: dict[str, Any], major: int, minor: int, flags: list[str]) -> bool:
    """Mend what nbgrader trips over in a v4 notebook's structure; refuse what cannot be mended."""
    cells = raw.get("cells")
    if not isinstance(cells, list):
        raise Unreadable(f"not a valid notebook: it has no list of cells; {_RESUBMIT}")
    mended: list[str] = []
    if not isinstance(raw.get("metadata"), dict):
        raw["metadata"] = {}
        mended.append("notebook metadata")
    ids: set[str] = set()
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict):
            raise Unreadable(f"not a valid notebook: cell {index} is not a JSON object; {_RESUBMIT}")
        kind = cell.get("cell_type")
        if kind not in ("code", "markdown", "raw"):
            raise Unreadable(
                f"not a valid notebook: cell {index} has cell type {str(kind)[:40]!r}; {_RESUBMIT}"
            )
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise Unreadable(f"not a valid notebook: cell {index} has no text source; {_RESUBMIT}")
        cell["source"] = source
        if not isinstance(cell.get("metadata"), dict):
            cell["metadata"] = {}
            mended.append(f"metadata of cell {index}")
        if kind == "code":
            if not isinstance(cell.get("outputs"), list):
                cell["outputs"] = []
                mended.append(f"outputs of cell {index}")
            count = cell.get("execution_count")
            if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
                cell["execution_count"] = None
                mended.append(f"execution count of cell {index}")
        else:
            for key in ("outputs", "execution_count"):
                if key in cell:
                    del cell[key]
                    mended.append(f"{key} of {kind} cell {index}")
        if (major, minor) >= (4, 5):
            cell_id = cell.get("id")
            if not isinstance(cell_id, str) or not _CELL_ID.fullmatch(cell_id) or cell_id in ids:
                cell["id"] = _new_id(ids)
                mended.append(f"id of cell {index}")
            ids.add(cell["id"])
        elif "id" in cell:
            del cell["id"]
            mended.append(f"id of cell {index} (nbformat {major}.{minor} has no cell ids)")
    if mended:
        more = ", ..." if len(mended) > 5 else ""
        flags.append(f"mended the notebook's structure ({', '.join(mended[:5])}{more})")
    return bool(mended)


def _new_id(used: set[str]) -> str:
    while True:
        cell_id = uuid.uuid4().hex[:8]
        if cell_id not in used:
            return cell_id


def _clear_outputs(nb: nbformat.NotebookNode) -> int:
    cleared = 0
    for cell in nb.cells:
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            cell.outputs = []
            cell.execution_count = None
            cleared += 1
    return cleared


def _shrink(nb: nbformat.NotebookNode, size: int, flags: list[str]) -> bool:
    """A notebook over LARGE_NOTEBOOK_BYTES: clear its outputs; refuse it if it is still too big."""
    cleared = _clear_outputs(nb)
    left = len(nbformat.writes(nb).encode())
    if left > LARGE_NOTEBOOK_BYTES:
        raise Unreadable(
            f"the notebook is {_mb(size)} and still {_mb(left)} without outputs, over the "
            f"{_mb(LARGE_NOTEBOOK_BYTES)} limit: ask the student to remove the data or images pasted into "
            "cells and submit again"
        )
    flags.append(
        f"the notebook is {_mb(size)}, over {_mb(LARGE_NOTEBOOK_BYTES)}: cleared the outputs of {cleared} "
        "cell(s) before grading (nbgrader clears outputs anyway)"
    )
    return True


# ------------------------------------------------------------------------------------------ the cells


def _read_release(release: Path) -> nbformat.NotebookNode:
    return nbformat.read(release, as_version=4)


def _belongs(nb: nbformat.NotebookNode, released: nbformat.NotebookNode) -> bool:
    """Does ``nb`` hold one of the released notebook's exercise cells (by grade_id, cell id or test source)?
    The setup and badge cells, the same in every notebook of the course, do not count."""
    exercises = [c for c in released.cells if any((_nbgrader(c) or {}).get(k) for k in ("grade", "solution"))]
    grade_ids = {_nbgrader(c)["grade_id"] for c in exercises}
    cell_ids = {c.get("id") for c in exercises} - {None}
    tests = {c.source.strip() for c in exercises if _nbgrader(c).get("locked")} - {""}
    for cell in nb.cells:
        if (_nbgrader(cell) or {}).get("grade_id") in grade_ids or cell.get("id") in cell_ids:
            return True
        if cell.source.strip() in tests:
            return True
    return False


def _nbgrader(cell: Any) -> dict[str, Any] | None:
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta if isinstance(meta, dict) else None


def _is_graded_cell(meta: dict[str, Any] | None) -> bool:
    """Does nbgrader track this cell (grade, solution, locked or task cell with a grade_id)?"""
    return bool(
        meta
        and isinstance(meta.get("grade_id"), str)
        and any(meta.get(k) for k in ("grade", "solution", "locked", "task"))
    )


def _harmless(cell: Any) -> bool:
    """Is this nbgrader metadata of an ordinary cell valid, so nbgrader just ignores it?"""
    meta = _nbgrader(cell)
    if meta is None or any(meta.get(k) for k in ("grade", "solution", "locked", "task")):
        return False
    return _validates(cell)


def _kind(meta: dict[str, Any]) -> str:
    if meta.get("grade") and not meta.get("solution"):
        return "test cell"
    if meta.get("solution"):
        return "answer cell"
    return "locked cell"


def repair_cells(nb: nbformat.NotebookNode, released: nbformat.NotebookNode, flags: list[str]) -> bool:
    """Bring ``nb``'s nbgrader cells in line with the released notebook (by grade_id); return whether
    anything changed. The student's own cells are kept where they are."""
    reference = [(c, _nbgrader(c)) for c in released.cells if _is_graded_cell(_nbgrader(c))]
    if not reference:
        return False
    ref_meta = {meta["grade_id"]: meta for _, meta in reference}
    ref_cell = {meta["grade_id"]: cell for cell, meta in reference}
    rank = {meta["grade_id"]: i for i, (_, meta) in enumerate(reference)}
    released_position = {c.get("id"): i for i, c in enumerate(released.cells) if c.get("id")}
    released_plain_ids = {
        c.get("id") for c in released.cells if c.get("id") and not _is_graded_cell(_nbgrader(c))
    }
    changed = False

    # 1. Cells carrying a grade_id of the assignment; copies and unknown ids lose their nbgrader metadata.
    owner: dict[str, Any] = {}  # grade_id -> the student's cell
    copies: set[int] = set()
    unknown: dict[int, str] = {}
    for index, cell in enumerate(nb.cells):
        if "nbgrader" not in cell.metadata:
            continue
        meta = _nbgrader(cell)
        grade_id = meta.get("grade_id") if meta else None
        if isinstance(grade_id, str) and grade_id in ref_meta and grade_id not in owner:
            owner[grade_id] = cell
            continue
        if grade_id not in ref_meta and _harmless(cell):
            continue
        del cell.metadata["nbgrader"]
        changed = True
        if isinstance(grade_id, str) and grade_id in ref_meta:
            copies.add(id(cell))
            flags.append(
                f"cell {index} is a copy of {_kind(ref_meta[grade_id])} '{grade_id}': the first one is "
                "graded, the copy runs as an ordinary cell"
            )
        else:
            unknown[id(cell)] = str(grade_id)[:60] if meta else "(not readable)"

    # 2. Released nbgrader cells not found by grade_id: recognise them by cell id or content.
    recognised = []
    for grade_id, meta in ref_meta.items():
        if grade_id in owner:
            continue
        match = _recognise(nb, ref_cell[grade_id], meta, owner, copies, released_plain_ids)
        if match is None:
            continue
        owner[grade_id] = match
        index = next(i for i, c in enumerate(nb.cells) if c is match)
        lost = unknown.pop(id(match), None)
        if lost:
            flags.append(f"cell {index} had nbgrader id '{lost}': recognised as {_kind(meta)} '{grade_id}'")
        else:
            recognised.append(f"{index} ('{grade_id}')")
        match.metadata["nbgrader"] = copy.deepcopy(meta)
        changed = True
    if recognised:
        flags.append(
            f"nbgrader metadata missing from {len(recognised)} cell(s): recognised cells "
            f"{', '.join(recognised)} from the released notebook and restored it"
        )
    for index, cell in enumerate(nb.cells):
        if id(cell) in unknown:
            flags.append(
                f"cell {index} had nbgrader metadata for '{unknown[id(cell)]}', not a cell of this "
                "assignment: removed it (the cell runs as an ordinary cell)"
            )

    # 3. Metadata and cell types of the cells found.
    for grade_id, cell in owner.items():
        meta, original = ref_meta[grade_id], ref_cell[grade_id]
        theirs = _nbgrader(cell) or {}
        if not _same_role(cell, theirs, meta):
            cell.metadata["nbgrader"] = copy.deepcopy(meta)
            flags.append(f"the nbgrader metadata of {_kind(meta)} '{grade_id}' had been changed: restored it")
            changed = True
        if cell.cell_type != original.cell_type:
            old = cell.cell_type
            if meta.get("locked"):
                _retype(cell, original.cell_type, original.source)
                flags.append(
                    f"{_kind(meta)} '{grade_id}' had been made a {old} cell: restored it from the released "
                    "notebook"
                )
            else:
                _retype(cell, original.cell_type, cell.source)
                flags.append(
                    f"{_kind(meta)} '{grade_id}' had been made a {old} cell: graded it as a "
                    f"{original.cell_type} cell, with the student's source"
                )
            changed = True

    # 4. Put back missing cells and move nbgrader cells that are out of order.
    changed |= _restore_order(nb, released, owner, rank, ref_meta, ref_cell, released_position, flags)
    return changed


def restore_attachments(
    nb: nbformat.NotebookNode, released: nbformat.NotebookNode | None, flags: list[str]
) -> bool:
    """Give markdown cells back the image attachments they refer to but lack (from the released notebook;
    nbformat 3 has no attachments), or make the reference a plain link: nbconvert refuses to render a
    notebook with a missing attachment, and the student would get no feedback."""
    known: dict[str, Any] = {}
    for cell in released.cells if released is not None else []:
        known.update(cell.get("attachments") or {})
    restored, unlinked = [], []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        have = cell.get("attachments") or {}
        for name in dict.fromkeys(_ATTACHMENT.findall(cell.source)):
            if name in have:
                continue
            if name in known:
                have = cell["attachments"] = {**have, name: copy.deepcopy(known[name])}
                restored.append(name)
            else:
                cell.source = cell.source.replace(f"attachment:{name}", name)
                unlinked.append(name)
    if restored:
        flags.append(f"restored image attachment(s) missing from markdown cells: {', '.join(restored)}")
    if unlinked:
        flags.append(f"markdown referred to missing attachment(s), now plain links: {', '.join(unlinked)}")
    return bool(restored or unlinked)


def _same_role(cell: Any, theirs: dict[str, Any], meta: dict[str, Any]) -> bool:
    """Does the student's nbgrader metadata give the cell its released role (grade, solution, lock, points),
    in a form nbgrader accepts? (The checksum and cell type it records do not matter: nbgrader recomputes
    the first and only warns about the second.)"""
    keys = ("grade_id", "grade", "solution", "locked", "task", "points", "schema_version")
    if any(theirs.get(k) != meta.get(k) for k in keys):
        return False
    return _validates(cell)


def _retype(cell: Any, cell_type: str, source: str) -> None:
    """Turn ``cell`` into a cell of ``cell_type`` with ``source`` (keeping its id and metadata)."""
    cell.cell_type = cell_type
    cell.source = source
    for key in ("outputs", "execution_count", "attachments"):
        cell.pop(key, None)
    if cell_type == "code":
        cell.outputs = []
        cell.execution_count = None


def _definitions(source: str) -> set[str]:
    return set(_DEFINITION.findall(source))


def _recognise(
    nb: nbformat.NotebookNode,
    original: Any,
    meta: dict[str, Any],
    owner: dict[str, Any],
    copies: set[int],
    released_plain_ids: set[str],
) -> Any | None:
    """The student's cell that is released cell ``original`` without (valid) nbgrader metadata, if any:
    same cell id, else (for a locked cell) the same source, else (for an answer cell) a code cell that
    defines the same names as the released stub."""
    taken = {id(c) for c in owner.values()} | copies
    free = [c for c in nb.cells if id(c) not in taken and "nbgrader" not in c.metadata]
    if original.get("id"):
        for cell in free:
            if cell.get("id") == original.get("id"):
                return cell
    free = [c for c in free if c.get("id") not in released_plain_ids]
    if meta.get("locked"):
        for cell in free:
            if cell.cell_type == original.cell_type and cell.source.strip() == original.source.strip():
                return cell
        return None
    names = _definitions(original.source)
    for cell in free:
        if cell.cell_type != "markdown" and (
            cell.source.strip() == original.source.strip() or (names and names <= _definitions(cell.source))
        ):
            return cell
    return None


def _restore_order(
    nb: nbformat.NotebookNode,
    released: nbformat.NotebookNode,
    owner: dict[str, Any],
    rank: dict[str, int],
    ref_meta: dict[str, dict[str, Any]],
    ref_cell: dict[str, Any],
    released_position: dict[str, int],
    flags: list[str],
) -> bool:
    """Put released nbgrader cells that are missing back, and those out of order back in order, each right
    after the nbgrader cell it follows in the released notebook (before the released cells that follow it
    there). A moved cell takes the student's own cells that followed it along."""
    grade_id_of = {id(cell): grade_id for grade_id, cell in owner.items()}
    anchors = [(i, grade_id_of[id(c)]) for i, c in enumerate(nb.cells) if id(c) in grade_id_of]
    keep = _longest_increasing([rank[g] for _, g in anchors])
    kept = {anchors[k][1] for k in keep}
    moved = [g for _, g in anchors if g not in kept]
    missing = [g for g in rank if g not in owner]
    if not moved and not missing:
        return False

    # Take the moved cells out, each with the student's own cells that follow it.
    own = {id(c) for c in nb.cells if c.get("id") not in released_position}
    carried: dict[str, list[Any]] = {}
    cells = list(nb.cells)
    base: list[Any] = []
    index = 0
    while index < len(cells):
        cell = cells[index]
        grade_id = grade_id_of.get(id(cell))
        if grade_id in moved:
            group = [cell]
            index += 1
            while index < len(cells) and id(cells[index]) not in grade_id_of and id(cells[index]) in own:
                group.append(cells[index])
                index += 1
            carried[grade_id] = group
            continue
        base.append(cell)
        index += 1

    used_ids = {c.get("id") for c in nb.cells if c.get("id")}
    with_ids = nb.nbformat_minor >= 5
    placed = {id(c): grade_id_of[id(c)] for c in base if id(c) in grade_id_of}
    for grade_id in sorted(rank, key=rank.get):
        if grade_id in kept:
            continue
        what = f"{_kind(ref_meta[grade_id])} '{grade_id}'"
        position = _insertion_point(grade_id, rank, placed, base, ref_cell, released_position)
        if grade_id in carried:
            group = carried[grade_id]
            before = [placed[id(c)] for c in base[:position] if id(c) in placed]
            after = [placed[id(c)] for c in base[position:] if id(c) in placed]
            place = " and ".join(
                ([f"after '{before[-1]}'"] if before else []) + ([f"before '{after[0]}'"] if after else [])
            )
            flags.append(f"nbgrader cells out of the released order: moved {what} back {place}")
        else:
            group = [_restored_cell(ref_cell[grade_id], ref_meta[grade_id], used_ids, with_ids)]
            flags.append(f"restored deleted {what} from the released notebook")
        base[position:position] = group
        placed[id(group[0])] = grade_id
    nb.cells = base
    return True


def _longest_increasing(values: list[int]) -> list[int]:
    """Indices of a longest strictly increasing subsequence of ``values`` (the first one found)."""
    best: list[list[int]] = []
    for i, value in enumerate(values):
        candidates = [seq for seq in best if values[seq[-1]] < value]
        longest = max(candidates, key=len, default=[])
        best.append(longest + [i])
    return max(best, key=len, default=[])


def _insertion_point(
    grade_id: str,
    rank: dict[str, int],
    placed: dict[int, str],
    base: list[Any],
    ref_cell: dict[str, Any],
    released_position: dict[str, int],
) -> int:
    """Where released nbgrader cell ``grade_id`` goes in ``base``: after the nbgrader cell before it in the
    released order, before the next one, and before any released cell that follows it in the release."""
    start, end = 0, len(base)
    for position, cell in enumerate(base):
        other = placed.get(id(cell))
        if other is None:
            continue
        if rank[other] < rank[grade_id]:
            start = position + 1
        elif rank[other] > rank[grade_id]:
            end = position
            break
    mine = released_position.get(ref_cell[grade_id].get("id"))
    if mine is not None:
        for position in range(start, end):
            theirs = released_position.get(base[position].get("id"))
            if theirs is not None and theirs > mine:
                return position
    return end


def _restored_cell(
    original: Any, meta: dict[str, Any], used_ids: set[str], with_ids: bool
) -> nbformat.NotebookNode:
    """A copy of a released nbgrader cell to put back; an answer cell comes back empty, so it cannot hide a
    definition the student made in another cell."""
    cell = copy.deepcopy(original)
    cell.metadata["nbgrader"] = copy.deepcopy(meta)
    if cell.cell_type == "code":
        cell.outputs = []
        cell.execution_count = None
    if meta.get("solution") and not meta.get("locked"):
        cell.source = RESTORED_SOLUTION
    if not with_ids:
        cell.pop("id", None)
    elif not cell.get("id") or cell.get("id") in used_ids:
        cell.id = _new_id(used_ids)
    if with_ids:
        used_ids.add(cell.id)
    return cell


#: nbgrader's verdicts on cells so far, by cell type and nbgrader metadata (all its validator reads): the
#: released cells come back in every submission, and each verdict costs a JSON schema check.
_VERDICTS: dict[str, bool] = {}


def _validates(cell: dict) -> bool:
    """Does nbgrader's own metadata validator accept this cell?"""
    key = None
    meta = cell.get("metadata") if isinstance(cell, nbformat.NotebookNode) else None
    if isinstance(meta, dict) and isinstance(meta.get("nbgrader"), dict) and "cell_type" in cell:
        with contextlib.suppress(TypeError, ValueError):
            key = json.dumps([cell["cell_type"], meta["nbgrader"]], sort_keys=True)
    if key is not None and key in _VERDICTS:
        return _VERDICTS[key]
    from nbgrader.nbgraderformat import MetadataValidator

    try:
        MetadataValidator().validate_cell(cell)
        verdict = True
    except Exception:
        verdict = False
    if key is not None and len(_VERDICTS) < 10_000:
        _VERDICTS[key] = verdict
    return verdict
