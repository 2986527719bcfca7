"""The class report for one assignment, built from its grading records (autograder/engine/record.py).

``write_report`` writes into one folder: ``grades.csv`` (one row per student), ``score_histogram.png``,
``failures.png`` and ``index.html``. The page inlines both figures as base64 data URIs, so ``index.html``
alone can be mailed or attached; the PNG files are written next to it for slides and reuse.
Failure messages are grouped with ``failure_key`` so that one misconception shows up as one line. Given the
similarity pass's findings (autograder/reporting/similarity.py), it adds the similar submissions, side by
side, and ``similarity.csv``.
"""

from __future__ import annotations

import base64
import csv
import html
import logging
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autograder.engine.record import CellRecord, Record
from course_lib.protocol import NOT_IMPLEMENTED, likely_mistake

if TYPE_CHECKING:  # the similarity pass loads its fingerprinting library only when it runs
    from autograder.reporting.similarity import Findings

log = logging.getLogger(__name__)

MAX_KEY_LENGTH = 120
TOP_MESSAGES = 5
SLOWEST_SUBMISSIONS = 5
SLOWEST_CELLS = 10
MAX_LISTED_STUDENTS = 30
FIGURES = ("score_histogram.png", "failures.png")

_DIMENSIONS = re.compile(r"(?<![\w.])\d+(?:x\d+)+\b")  # "2x3" in "shapes cannot be multiplied (2x3 and 4x5)"
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# -- grouping failure messages -----------------------------------------------------------------------
def failure_key(ename: str, evalue: str) -> str:
    """The group of a failure: its likely mistake, "not implemented yet", or its normalised first line."""
    text = _ANSI.sub("", evalue or "")
    mistake = likely_mistake(text)
    if mistake:
        return _truncate(mistake)
    if NOT_IMPLEMENTED in text.lower() or ename == "NotImplementedError":
        return NOT_IMPLEMENTED
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    first = _DIMENSIONS.sub(lambda match: "x".join("N" * (match.group().count("x") + 1)), first)
    first = " ".join(_NUMBER.sub("N", first).split())
    name = (ename or "").strip() or "error"
    return _truncate(f"{name}: {first}" if first else name)


def _truncate(text: str, limit: int = MAX_KEY_LENGTH) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _error_key(cell: CellRecord) -> tuple[str, str] | None:
    """(failure key, first line of the message) for a cell that raised, else None."""
    if cell.status != "error" and cell.error is None:
        return None
    ename, evalue = (cell.error.ename, cell.error.evalue) if cell.error else ("", "")
    first = next((line.strip() for line in _ANSI.sub("", evalue).splitlines() if line.strip()), "")
    example = f"{ename}: {first}" if first else ename or "error"
    return failure_key(ename, evalue), _truncate(example, 300)


# -- statistics --------------------------------------------------------------------------------------------
@dataclass
class _Row:
    student: str
    record: Record
    status: str
    score: float
    max_score: float | None
    percent: float | None
    capped: str
    exercises: dict[str, tuple[float, float]]
    seconds: float | None


@dataclass
class _Exercise:
    name: str
    max_points: float = 0.0
    points: list[float] = field(default_factory=list)
    passed: int = 0
    attempted: int = 0
    messages: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    examples: dict[str, str] = field(default_factory=dict)

    @property
    def graded(self) -> int:
        return len(self.points)


def _rows(assignment: str, records: list[Record]) -> list[_Row]:
    """One row per student (the latest record when a student has several), sorted by student."""
    latest: dict[str, Record] = {}
    for record in records:
        student = record.student or "(unknown)"
        if record.assignment not in ("", assignment):
            log.warning("record of %s is for %s, not %s", student, record.assignment, assignment)
        if student in latest:
            log.warning("several records for %s: the report uses the latest graded_at", student)
            if (record.graded_at or "") < (latest[student].graded_at or ""):
                continue
        latest[student] = record
    assignment_max = max((r.max_score for r in latest.values()), default=0.0)
    rows = []
    for student in sorted(latest):
        record = latest[student]
        maximum = record.max_score or assignment_max or None
        rows.append(
            _Row(
                student=student,
                record=record,
                status=record.status,
                score=record.score,
                max_score=maximum,
                percent=100.0 * record.score / maximum if maximum else None,
                capped=record.capped or "",
                exercises=record.exercise_scores(),
                seconds=record.timings.total,
            )
        )
    return rows


def _exercise_order(rows: list[_Row]) -> list[str]:
    """Exercise names in notebook order: first appearance in the cells, then any only named in scores."""
    order: dict[str, None] = {}
    for row in rows:
        for cell in row.record.cells:
            if cell.exercise:
                order.setdefault(cell.exercise, None)
    for row in rows:
        for name in row.exercises:
            order.setdefault(name, None)
    return list(order)


def _exercise_stats(rows: list[_Row], names: list[str]) -> dict[str, _Exercise]:
    stats = {name: _Exercise(name) for name in names}
    for row in rows:
        if row.status != "graded":
            continue
        failures: dict[str, set[str]] = defaultdict(set)
        # Test cells first, so an example message comes from the check rather than the solution cell.
        for cell in sorted(row.record.cells, key=lambda cell: cell.max_score is None):
            found = _error_key(cell)
            if found and cell.exercise:
                key, example = found
                failures[cell.exercise].add(key)
                stats[cell.exercise].examples.setdefault(key, example)
        for name, (score, maximum) in row.exercises.items():
            exercise = stats[name]
            exercise.max_points = max(exercise.max_points, maximum)
            exercise.points.append(score)
            exercise.passed += score >= maximum
            exercise.attempted += NOT_IMPLEMENTED not in failures[name]
        for name, keys in failures.items():
            for key in keys:
                stats[name].messages[key].add(row.student)
    return stats


def _other_failures(rows: list[_Row]) -> tuple[dict[str, set[str]], dict[str, str]]:
    """Failures in cells outside any exercise (imports, helpers), grouped like exercise failures."""
    messages: dict[str, set[str]] = defaultdict(set)
    examples: dict[str, str] = {}
    for row in rows:
        for cell in row.record.cells:
            found = _error_key(cell)
            if found and not cell.exercise:
                messages[found[0]].add(row.student)
                examples.setdefault(found[0], found[1])
    return messages, examples


def _cell_timings(rows: list[_Row]) -> list[tuple[int, str, str, float, float, int]]:
    """(index, grade_id, exercise, mean s, max s, runs) for the slowest cells by mean time."""
    seconds: dict[int, list[float]] = defaultdict(list)
    labels: dict[int, tuple[str, str]] = {}
    for row in rows:
        for cell in row.record.cells:
            index, spent = cell.index, cell.seconds
            if index is None or spent is None:
                continue
            seconds[index].append(spent)
            grade_id, exercise = labels.get(index, ("", ""))
            labels[index] = (grade_id or cell.grade_id or "", exercise or cell.exercise or "")
    table = [
        (index, *labels[index], statistics.fmean(values), max(values), len(values))
        for index, values in seconds.items()
    ]
    return sorted(table, key=lambda item: (-item[3], item[0]))[:SLOWEST_CELLS]


# -- files -------------------------------------------------------------------------------------------------
def _plain(value: float | None, digits: int | None = None) -> str | float:
    if value is None:
        return ""
    return round(value, digits) if digits is not None else value


def _write_csv(path: Path, rows: list[_Row], names: list[str]) -> None:
    header = ["student", "score", "max_score", "percent", "status", "capped", *names, "graded_at", "seconds"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow(
                [
                    row.student,
                    _plain(row.score),
                    _plain(row.max_score),
                    _plain(row.percent, 2),
                    row.status,
                    row.capped,
                    *(_plain(row.exercises[name][0]) if name in row.exercises else "" for name in names),
                    row.record.graded_at or "",
                    _plain(row.seconds, 3),
                ]
            )


def _plot_text(text: str) -> str:
    return text.replace("$", r"\$")  # no mathtext from names


def _save(fig: Any, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # this figure only; pyplot and the global backend stay untouched
    fig.savefig(path, dpi=110)


def _histogram(path: Path, assignment: str, percents: list[float]) -> None:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    ax.hist(
        [min(max(p, 0.0), 100.0) for p in percents],
        bins=range(0, 101, 10),
        color="#4c78a8",
        edgecolor="white",
    )
    if percents:
        mean, median = statistics.fmean(percents), statistics.median(percents)
        ax.axvline(mean, color="#e45756", linestyle="--", linewidth=2, label=f"mean {mean:.1f}%")
        ax.axvline(median, color="#222222", linestyle=":", linewidth=2, label=f"median {median:.1f}%")
        ax.legend(loc="upper left")
    ax.set_xlim(0, 100)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("score (% of maximum)")
    ax.set_ylabel("submissions")
    ax.set_title(_plot_text(f"{assignment}: score distribution ({len(percents)} submissions)"))
    _save(fig, path)


def _failure_chart(path: Path, assignment: str, stats: list[_Exercise]) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 1.6 + 0.45 * max(len(stats), 1)), layout="constrained")
    ax = fig.add_subplot()
    rates = [100.0 * (e.graded - e.passed) / e.graded if e.graded else 0.0 for e in stats]
    positions = range(len(stats))
    ax.barh(positions, rates, color="#f58518")
    for position, exercise, rate in zip(positions, stats, rates, strict=True):
        ax.text(
            min(rate + 1, 85),
            position,
            f"{exercise.graded - exercise.passed}/{exercise.graded}",
            va="center",
            fontsize=9,
        )
    ax.set_yticks(list(positions), [_plot_text(e.name) for e in stats])
    ax.invert_yaxis()  # notebook order from the top
    ax.set_xlim(0, 100)
    ax.set_xlabel("failure rate (% of graded submissions below full points)")
    ax.set_title(_plot_text(f"{assignment}: failures per exercise"))
    if not stats:
        ax.text(50, 0, "no graded exercises", ha="center", va="center")
    _save(fig, path)


# -- html --------------------------------------------------------------------------------------------------
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.95em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } tr:nth-child(even) td { background: #fafafa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.muted { color: #666; } .empty { font-size: 1.2em; padding: 1em; background: #fff4e5; border-radius: 6px; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; } img { max-width: 100%; border: 1px solid #eee; }
code { background: #f3f3f3; padding: 0 0.2em; }
.side { display: grid; grid-template-columns: 1fr 1fr; gap: 0.8em; margin: 0.4em 0 1em; }
.side pre { margin: 0; padding: 0.5em; background: #fafafa; border: 1px solid #eee; overflow-x: auto;
            font-size: 0.85em; } mark { background: #ffe08a; }
details { margin: 0.3em 0; } summary { cursor: pointer; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "–" if value is None else f"{value:.{digits}f}{suffix}"


def _rate(count: int, total: int) -> str:
    return "–" if not total else f"{100 * count / total:.0f}% ({count}/{total})"


def _table(header: list[str] | None, rows: list[list[str]], numeric: set[int] | None = None) -> str:
    """An HTML table; cells are already HTML (escape student text before)."""
    numeric = numeric or set()
    head = "<thead><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr></thead>" if header else ""
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _students(names: set[str]) -> str:
    ordered = sorted(names)
    shown = ", ".join(_e(name) for name in ordered[:MAX_LISTED_STUDENTS])
    extra = len(ordered) - MAX_LISTED_STUDENTS
    return shown + (f" … and {extra} more" if extra > 0 else "")


def _messages_table(messages: dict[str, set[str]], examples: dict[str, str]) -> str:
    ranked = sorted(messages.items(), key=lambda item: (-len(item[1]), item[0]))[:TOP_MESSAGES]
    rows = [
        [
            str(rank),
            _e(key),
            str(len(students)),
            _students(students),
            f'<span class="muted">{_e(examples[key])}</span>',
        ]
        for rank, (key, students) in enumerate(ranked, 1)
    ]
    more = len(messages) - len(ranked)
    note = f'<p class="muted">{more} less frequent message(s) not shown.</p>' if more > 0 else ""
    return _table(["#", "message", "students", "who", "example"], rows, numeric={0, 2}) + note


def _page(assignment: str, generated: str, body: str) -> str:
    title = f"Class report: {_e(assignment)}"
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n'
        f"<style>{_CSS}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
        f'<p class="muted">Generated {_e(generated)}</p>\n{body}\n</body>\n</html>\n'
    )


def _empty_page(assignment: str, generated: str) -> str:
    body = (
        '<p class="empty"><strong>No submissions were graded</strong> for this assignment: the report got no '
        "grading records. Grade the collected submissions first, then build the report again.</p>"
    )
    return _page(assignment, generated, body)


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_e(alt)}">'
        f'<figcaption class="muted">{_e(alt)} (also saved as <code>{_e(path.name)}</code>)</figcaption>'
        "</figure>"
    )


def _summary(rows: list[_Row]) -> str:
    percents = [row.percent for row in rows if row.percent is not None]
    graded = sum(row.status == "graded" for row in rows)
    full = sum(row.max_score is not None and row.score >= row.max_score for row in rows)
    items = [
        ("students", str(len(rows))),
        ("graded", str(graded)),
        ("failed (could not be graded, score 0)", str(sum(row.status == "failed" for row in rows))),
        ("capped (stopped by a resource limit)", str(sum(bool(row.capped) for row in rows))),
        ("mean percent", _fmt(statistics.fmean(percents) if percents else None, suffix="%")),
        ("median percent", _fmt(statistics.median(percents) if percents else None, suffix="%")),
        ("min percent", _fmt(min(percents, default=None), suffix="%")),
        ("max percent", _fmt(max(percents, default=None), suffix="%")),
        ("full marks", str(full)),
    ]
    return (
        "<h2>Summary</h2>"
        + _table(None, [[_e(k), v] for k, v in items], numeric={1})
        + '<p class="muted">Percentages cover every submission; a failed submission counts as 0%.</p>'
    )


def _exercise_section(stats: list[_Exercise]) -> str:
    if not stats:
        return "<h2>Exercises</h2><p>No graded exercises.</p>"
    rows = [
        [
            f"<code>{_e(e.name)}</code>",
            _fmt(e.max_points, 1),
            _fmt(statistics.fmean(e.points) if e.points else None, 2),
            _rate(e.passed, e.graded),
            _rate(e.attempted, e.graded),
        ]
        for e in stats
    ]
    return (
        "<h2>Exercises</h2>"
        + _table(
            ["exercise", "max points", "mean points", "pass rate (full points)", "attempted rate"],
            rows,
            numeric={1, 2, 3, 4},
        )
        + '<p class="muted">Rates are over graded submissions. Attempted: the exercise did not fail with '
        "&ldquo;not implemented yet&rdquo;.</p>"
    )


def _messages_section(stats: list[_Exercise], other: tuple[dict[str, set[str]], dict[str, str]]) -> str:
    parts = [
        "<h2>Most frequent failure messages</h2>",
        '<p class="muted">Messages are grouped by the likely mistake the checks name, else by their '
        "first line with numbers replaced by N; counts are students.</p>",
    ]
    for exercise in stats:
        if exercise.messages:
            parts.append(f"<h3><code>{_e(exercise.name)}</code></h3>")
            parts.append(_messages_table(exercise.messages, exercise.examples))
    if other[0]:
        parts.append("<h3>Cells outside the exercises</h3>")
        parts.append(_messages_table(*other))
    if len(parts) == 2:
        parts.append("<p>No failures recorded.</p>")
    return "".join(parts)


def _problems_section(rows: list[_Row]) -> str:
    problems = [row for row in rows if row.status != "graded" or row.capped]
    if not problems:
        return (
            "<h2>Failed or capped submissions</h2><p>None: every submission was graded within its limits.</p>"
        )
    table = [
        [
            _e(row.student),
            _e(row.status),
            _e(row.capped or "–"),
            _fmt(row.percent, suffix="%"),
            _e(row.record.reason or "(no reason recorded)"),
        ]
        for row in problems
    ]
    return "<h2>Failed or capped submissions</h2>" + _table(
        ["student", "status", "capped", "percent", "reason"], table, numeric={3}
    )


def _flags_section(rows: list[_Row]) -> str:
    table = [[_e(row.student), _e(flag)] for row in rows for flag in row.record.flags]
    if not table:
        return ""
    return "<h2>Integrity flags</h2>" + _table(["student", "flag"], table)


def _timings_section(rows: list[_Row]) -> str:
    timed = sorted((row for row in rows if row.seconds is not None), key=lambda row: -(row.seconds or 0.0))
    parts = ["<h2>Timings</h2>", f"<h3>Slowest {SLOWEST_SUBMISSIONS} submissions</h3>"]
    if timed:
        table = []
        for row in timed[:SLOWEST_SUBMISSIONS]:
            timings = row.record.timings
            table.append(
                [
                    _e(row.student),
                    _fmt(row.seconds),
                    _fmt(timings.execute),
                    _fmt(timings.cpu),
                    _fmt(timings.peak_memory_mb, 0),
                    _e(row.capped or "–"),
                ]
            )
        parts.append(
            _table(
                ["student", "total s", "execute s", "cpu s", "peak memory MB", "capped"],
                table,
                numeric={1, 2, 3, 4},
            )
        )
    else:
        parts.append("<p>No timings recorded.</p>")
    parts.append(f"<h3>Slowest {SLOWEST_CELLS} code cells (by mean time)</h3>")
    cells = _cell_timings(rows)
    if cells:
        table = [
            [
                str(index),
                f"<code>{_e(grade_id)}</code>" if grade_id else "–",
                _e(exercise or "–"),
                _fmt(mean, 2),
                _fmt(top, 2),
                str(runs),
            ]
            for index, grade_id, exercise, mean, top, runs in cells
        ]
        parts.append(
            _table(
                ["cell index", "grade_id", "exercise", "mean s", "max s", "runs"], table, numeric={0, 3, 4, 5}
            )
        )
    else:
        parts.append("<p>No cell timings recorded.</p>")
    return "".join(parts)


# -- entry point -------------------------------------------------------------------------------------------
def _similarity_section(findings: Findings | None) -> str:
    if findings is None:
        return ""
    parts = [
        "<h2>Similar submissions</h2>",
        f'<p class="muted">The students&rsquo; solution cells, compared in pairs exercise by exercise '
        f"({findings.students} submissions, {_fmt(findings.seconds, 2)} s). Names do not matter (a renamed "
        "variable still matches) and the released notebook&rsquo;s own code (stubs, examples, tests) never "
        "counts. Correct solutions to tiny exercises look alike by necessity, so pairs are ranked by the "
        "amount of matching code, in tokens, and a pair is listed only when at least "
        f"{findings.min_tokens} tokens match and they cover at least {findings.threshold:.0%} of one "
        "student&rsquo;s code (<code>--similarity-threshold</code>). A listed pair is a place to look, not a "
        'verdict. Every pair that shares code: <a href="similarity.csv">similarity.csv</a>.</p>',
    ]
    if not findings.listed:
        parts.append("<p>No pair of submissions reaches the threshold.</p>")
        return "".join(parts)
    rows = [
        [
            str(rank),
            _e(pair.a),
            _e(pair.b),
            str(pair.tokens),
            f"{pair.share:.0%} ({pair.share_a:.0%} / {pair.share_b:.0%})",
            ", ".join(f"<code>{_e(name)}</code>" for name in pair.exercises),
        ]
        for rank, pair in enumerate(findings.listed, 1)
    ]
    header = ["#", "student", "student", "matching tokens", "share (of each)", "exercises"]
    parts.append(_table(header, rows, numeric={0, 3}))
    for rank, pair in enumerate(findings.listed, 1):
        views = "".join(
            f"<p><code>{_e(match.exercise)}</code>: {match.tokens} tokens</p>"
            f'<div class="side"><pre>{match.html_a}</pre><pre>{match.html_b}</pre></div>'
            for match in pair.matches
        )
        parts.append(
            f"<details><summary>#{rank}: {_e(pair.a)} and {_e(pair.b)}, side by side "
            f"(matching code marked)</summary>{views}</details>"
        )
    return "".join(parts)


def write_report(
    assignment: str, records: list[Record], out_dir: Path, similarity: Findings | None = None
) -> Path:
    """Write grades.csv, both figures and index.html for ``assignment`` in ``out_dir`` (with the similar
    submissions and similarity.csv when given the similarity pass's findings); return index.html."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    index = out_dir / "index.html"
    rows = _rows(assignment, list(records))
    names = _exercise_order(rows)
    _write_csv(out_dir / "grades.csv", rows, names)
    if similarity is not None:
        from autograder.reporting.similarity import write_csv

        write_csv(out_dir / "similarity.csv", similarity.pairs, similarity.listed)
    if not rows:
        for name in FIGURES:  # figures of an earlier run would no longer match this report
            (out_dir / name).unlink(missing_ok=True)
        index.write_text(_empty_page(assignment, generated), encoding="utf-8")
        return index
    stats = _exercise_stats(rows, names)
    ordered = [stats[name] for name in names]
    histogram, failures = (out_dir / name for name in FIGURES)
    _histogram(histogram, assignment, [row.percent for row in rows if row.percent is not None])
    _failure_chart(failures, assignment, ordered)
    body = "".join(
        [
            _summary(rows),
            "<h2>Figures</h2>",
            _image(histogram, "Distribution of percent scores with mean and median"),
            _image(failures, "Failure rate per exercise, in notebook order"),
            _exercise_section(ordered),
            _messages_section(ordered, _other_failures(rows)),
            _problems_section(rows),
            _flags_section(rows),
            _similarity_section(similarity),
            _timings_section(rows),
            '<p class="muted">Per-student scores: <a href="grades.csv">grades.csv</a>.</p>',
        ]
    )
    index.write_text(_page(assignment, generated, body), encoding="utf-8")
    return index
