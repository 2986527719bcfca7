"""Which submissions look copied from each other: pairwise similarity of the students' solution cells.

Built on copydetect's fingerprints: each solution cell is tokenised with its names normalised (a renamed
variable still matches), cut into k-grams and winnowed, as the MOSS family of detectors does. Every
fingerprint of the released notebook's own code (the stubs, the examples, the test cells) is boilerplate
and discarded, so starter code that every student has never counts as a match. Cells are compared
exercise by exercise, and a pair of students sums its exercises.

Correct solutions to tiny exercises look alike by necessity (there are few ways to count a layer's
parameters), so a pair is ranked by the amount of matching code, in tokens, and not only by the share of
each submission it covers; a pair is listed when both the share and the amount reach their thresholds.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from copydetect import CodeFingerprint, compare_files
from copydetect.utils import highlight_overlap

__all__ = [
    "DEFAULT_MIN_TOKENS",
    "DEFAULT_THRESHOLD",
    "Findings",
    "Match",
    "Pair",
    "boilerplate_of",
    "compare",
    "find",
    "flagged",
    "solution_cells",
    "write_csv",
]

#: Share of the smaller side's code that must match for a pair to be listed (--similarity-threshold).
DEFAULT_THRESHOLD = 0.6
#: Matching code a listed pair must have at least, in tokens of normalised code (names count one each).
DEFAULT_MIN_TOKENS = 60
#: k-gram length and window: matches shorter than NOISE tokens are ignored, those of GUARANTEE are found.
NOISE = 20
GUARANTEE = 25

_STUB = "raise NotImplementedError"


@dataclass(frozen=True)
class Match:
    """The matching code of one exercise between two students: tokens, shares and highlighted sources."""

    exercise: str
    tokens: int
    share_a: float
    share_b: float
    html_a: str
    html_b: str


@dataclass(frozen=True)
class Pair:
    """Two students, their matches per exercise and the pair's totals."""

    a: str
    b: str
    tokens: int
    share_a: float
    share_b: float
    matches: tuple[Match, ...]

    @property
    def share(self) -> float:
        """The larger of the two shares: how much of one student's code the other's covers."""
        return max(self.share_a, self.share_b)

    @property
    def exercises(self) -> list[str]:
        return [match.exercise for match in self.matches]


def solution_cells(nb: Mapping) -> dict[str, str]:
    """``{exercise: source}`` of a notebook's solution cells (nbgrader ``solution: true`` with a grade_id),
    leaving out cells still holding the stub (an untouched exercise is not code of the student's)."""
    found = {}
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        if cell.get("cell_type") == "code" and meta.get("solution") and meta.get("grade_id"):
            if _STUB not in source:
                found[str(meta["grade_id"])] = source
    return found


def boilerplate_of(nb: Mapping) -> list[str]:
    """The code every student starts from: all code cells of the released notebook."""
    sources = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            source = cell.get("source", "")
            sources.append("".join(source) if isinstance(source, list) else str(source))
    return sources


def _fingerprint(code: str, window: int, boilerplate: np.ndarray | None = None) -> CodeFingerprint:
    return CodeFingerprint(
        "cell.py", NOISE, window, boilerplate=boilerplate, language="python", fp=io.StringIO(code)
    )


def _boilerplate_hashes(sources: Iterable[str]) -> np.ndarray:
    hashes: set[int] = set()
    for source in sources:
        hashes |= _fingerprint(source, 1).hashes
    return np.array(sorted(hashes), dtype=np.int64)


def compare(students: Mapping[str, Mapping[str, str]], boilerplate: Iterable[str]) -> list[Pair]:
    """Every pair of students that shares code beyond the boilerplate, ranked by matching tokens, then
    by share. ``students`` is ``{student: {exercise: solution source}}``."""
    window = GUARANTEE - NOISE + 1
    common = _boilerplate_hashes(boilerplate)
    prints: dict[str, dict[str, CodeFingerprint]] = {}
    index: dict[tuple[str, int], set[str]] = defaultdict(set)  # (exercise, hash) -> students
    for student, cells in students.items():
        prints[student] = {}
        for exercise, source in cells.items():
            fingerprint = _fingerprint(source, window, common)
            if fingerprint.token_coverage == 0:
                continue
            prints[student][exercise] = fingerprint
            for value in fingerprint.hashes:
                index[(exercise, int(value))].add(student)
    candidates: dict[tuple[str, str], set[str]] = defaultdict(set)  # only pairs sharing a fingerprint
    for (exercise, _), holders in index.items():
        for a, b in itertools.combinations(sorted(holders), 2):
            candidates[(a, b)].add(exercise)

    pairs = []
    for (a, b), exercises in candidates.items():
        matches = []
        for exercise in sorted(exercises):
            first, second = prints[a][exercise], prints[b][exercise]
            tokens, (share_a, share_b), (slices_a, slices_b) = compare_files(first, second)
            if tokens <= 0:
                continue
            html_a, _ = highlight_overlap(first.raw_code, slices_a, "<mark>", "</mark>", escape_html=True)
            html_b, _ = highlight_overlap(second.raw_code, slices_b, "<mark>", "</mark>", escape_html=True)
            matches.append(Match(exercise, int(tokens), float(share_a), float(share_b), html_a, html_b))
        if not matches:
            continue
        covered_a = sum(prints[a][e].token_coverage for e in prints[a])
        covered_b = sum(prints[b][e].token_coverage for e in prints[b])
        tokens = sum(m.tokens for m in matches)
        share_a = sum(m.share_a * prints[a][m.exercise].token_coverage for m in matches) / covered_a
        share_b = sum(m.share_b * prints[b][m.exercise].token_coverage for m in matches) / covered_b
        pairs.append(Pair(a, b, tokens, min(share_a, 1.0), min(share_b, 1.0), tuple(matches)))
    return sorted(pairs, key=lambda pair: (-pair.tokens, -pair.share, pair.a, pair.b))


def flagged(
    pairs: Iterable[Pair], threshold: float = DEFAULT_THRESHOLD, min_tokens: int = DEFAULT_MIN_TOKENS
) -> list[Pair]:
    """The pairs to show an instructor: share and amount of matching code both at their thresholds."""
    if not 0 < threshold <= 1:
        raise ValueError(f"the similarity threshold is a share between 0 and 1, got {threshold}")
    return [pair for pair in pairs if pair.share >= threshold and pair.tokens >= min_tokens]


def write_csv(path: Path, pairs: Iterable[Pair], listed: Iterable[Pair] = ()) -> None:
    """similarity.csv: one row per pair that shares code, most matching code first, and whether the
    report lists it (both thresholds reached)."""
    shown = {(pair.a, pair.b) for pair in listed}
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        header = ["student_a", "student_b", "matching_tokens", "share", "share_a", "share_b", "listed"]
        writer.writerow([*header, "exercises"])
        for pair in pairs:
            writer.writerow(
                [
                    pair.a,
                    pair.b,
                    pair.tokens,
                    f"{pair.share:.3f}",
                    f"{pair.share_a:.3f}",
                    f"{pair.share_b:.3f}",
                    "yes" if (pair.a, pair.b) in shown else "no",
                    " ".join(pair.exercises),
                ]
            )


@dataclass(frozen=True)
class Findings:
    """The similarity pass over one assignment: every pair sharing code, those listed, and the settings."""

    pairs: list[Pair]
    listed: list[Pair]
    students: int
    threshold: float
    min_tokens: int
    seconds: float


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def find(
    notebooks: Mapping[str, Path],
    release: Path,
    threshold: float = DEFAULT_THRESHOLD,
    min_tokens: int = DEFAULT_MIN_TOKENS,
) -> Findings:
    """Compare the solution cells of ``{student: notebook path}`` (the autograded copies) with the released
    notebook's code as boilerplate; notebooks that cannot be read are left out."""
    if not 0 < threshold <= 1:
        raise ValueError(f"the similarity threshold is a share between 0 and 1, got {threshold}")
    started = time.perf_counter()
    released = _read(Path(release))
    if released is None:
        raise ValueError(f"cannot read the released notebook {release}: run `make release` first")
    students = {}
    for student, path in notebooks.items():
        nb = _read(Path(path))
        if nb is not None:
            students[student] = solution_cells(nb)
    pairs = compare(students, boilerplate_of(released))
    listed = flagged(pairs, threshold, min_tokens)
    return Findings(pairs, listed, len(students), threshold, min_tokens, time.perf_counter() - started)
