"""Student feedback that never shows hidden-test source: the ``HideHiddenTests`` preprocessor.

``nbgrader generate_feedback`` renders the autograded notebook to HTML, and the autograded notebook holds
the hidden tests: in the test cells' source, between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN
TESTS``, and in error tracebacks, where IPython quotes the cell's code around the failing line
(``----> 6 checks.check_x(f, hidden=True, seed=123)``). autograder/nbgrader_config.py puts this
preprocessor between nbgrader's GetGrades and the HTML styling, so every feedback run (the command line,
the formgrader's button, ``python -m autograder grade``) passes through it. It works on nbconvert's
in-memory copy: the autograded notebooks on disk keep everything for the instructor.

What it changes in the copy:

- each hidden block in a cell's source becomes one comment line (``PLACEHOLDER``); visible test lines stay;
- every error output, in every cell, becomes ``ename: evalue``: the check's message (what went wrong, the
  likely mistake, the fix) is kept whole, the traceback frames are dropped. Doing it for every cell rather
  than only for cells with hidden tests leaves no way around it (a frame from a test cell can show up in
  another cell's traceback, e.g. through a function a test cell defined), and a graded run's frames show
  the grading machine's copy of course_lib rather than the student's code; students see full tracebacks
  when they run their own notebook;
- any other text output line (streams such as a warning that quotes its source line, displayed text)
  that reproduces a hidden source line is replaced by ``SCRUBBED``; other output stays as the code made it.

Scores are untouched: they come from cell metadata that GetGrades fills in before this runs.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from typing import Any

import jinja2
import jinja2.bccache
from nbconvert.exporters import HTMLExporter
from nbconvert.exporters.exporter import ResourcesDict
from nbconvert.filters.highlight import Highlight2HTML
from nbconvert.preprocessors import Preprocessor
from nbformat.notebooknode import NotebookNode
from traitlets import Bool, Unicode

from course_lib.protocol import strip_evidence

PLACEHOLDER = "# hidden tests: not shown (their results are reported below)"
SCRUBBED = "(line of a hidden test, not shown)"

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# A hidden line shorter than this must match an output line exactly to be scrubbed; a longer one is also
# found inside a longer output line (a quoted source line with a prefix, such as a line number).
_MIN_CONTAINED = 8
_TEXT_TYPES = ("text/plain", "text/html", "text/markdown", "text/latex")


def hide_blocks(source: str, begin: str, end: str) -> tuple[str, list[str]]:
    """``source`` with each hidden block replaced by ``PLACEHOLDER``, and the hidden lines removed."""
    kept: list[str] = []
    hidden: list[str] = []
    inside = False
    for line in source.split("\n"):
        if begin in line:
            if not inside:
                indent = line[: len(line) - len(line.lstrip())]
                kept.append(indent + PLACEHOLDER)
            inside = True
        elif end in line and inside:
            inside = False
        elif inside:
            hidden.append(line)
        else:
            kept.append(line)
    # A block without its end marker hides everything after its start (nbgrader refuses such a
    # notebook when it releases it, so this only guards hand-edited autograded copies).
    return "\n".join(kept), hidden


class _Scrubber:
    """Replaces output lines that reproduce a hidden source line."""

    def __init__(self, hidden_lines: list[str]) -> None:
        meaningful = {line.strip() for line in hidden_lines if re.search(r"\w", line)}
        self.exact = meaningful
        self.contained = [line for line in meaningful if len(line) >= _MIN_CONTAINED]

    def _leaks(self, line: str) -> bool:
        plain = _ANSI.sub("", line).strip()
        for candidate in (plain, html.unescape(plain)):
            if candidate in self.exact or any(hidden in candidate for hidden in self.contained):
                return True
        return False

    def text(self, text: str | list[str]) -> str:
        """``text`` with every leaking line replaced by ``SCRUBBED``."""
        if isinstance(text, list):
            text = "".join(text)
        if not self.exact:
            return text
        lines = text.splitlines(keepends=True)
        return "".join(
            SCRUBBED + ("\n" if line.endswith("\n") else "") if self._leaks(line) else line for line in lines
        )


class HideHiddenTests(Preprocessor):
    """Hide hidden-test source and tracebacks in the feedback copy of an autograded notebook."""

    enabled = Bool(True, help="Whether feedback hides hidden tests (keep it on)").tag(config=True)

    begin_test_delimeter = Unicode(
        "BEGIN HIDDEN TESTS", help="The marker that starts a hidden test block (as in ClearHiddenTests)"
    ).tag(config=True)
    end_test_delimeter = Unicode(
        "END HIDDEN TESTS", help="The marker that ends a hidden test block (as in ClearHiddenTests)"
    ).tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict) -> tuple[NotebookNode, ResourcesDict]:
        """Hide every hidden block, then shorten errors and scrub outputs in every cell."""
        hidden_lines: list[str] = []
        for cell in nb.cells:
            cell.source, hidden = hide_blocks(cell.source, self.begin_test_delimeter, self.end_test_delimeter)
            hidden_lines.extend(hidden)
        scrubber = _Scrubber(hidden_lines)
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                _clean_output(output, scrubber)
        return nb, resources


def _clean_output(output: NotebookNode, scrubber: _Scrubber) -> None:
    """Shorten an error to its name and message; scrub text that echoes hidden source."""
    kind = output.get("output_type")
    if kind == "error":
        ename = output.get("ename", "Error")
        evalue = scrubber.text(output.get("evalue", ""))
        output["evalue"] = evalue
        output["traceback"] = [f"\x1b[31m{ename}\x1b[39m: {evalue}"]
    elif kind == "stream":
        text = output.get("text", "")
        text = "".join(text) if isinstance(text, list) else text
        output["text"] = scrubber.text(strip_evidence(text))  # evidence: no use to a student
    elif kind in ("display_data", "execute_result"):
        data = output.get("data", {})
        for mime in _TEXT_TYPES:
            if mime in data:
                data[mime] = scrubber.text(data[mime])


class _MemoryBytecodeCache(jinja2.BytecodeCache):
    """Compiled Jinja templates kept in memory for the life of a process (keyed by name and source hash)."""

    def __init__(self) -> None:
        self.store: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if bucket.key in self.store:
            bucket.bytecode_from_string(self.store[bucket.key])

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self.store[bucket.key] = bucket.bytecode_to_string()


_BYTECODE = _MemoryBytecodeCache()


class _Memo:
    """Results of a pure function of strings, kept for the life of a process; emptied when it holds more
    than ``limit`` characters, so a long run cannot grow it without bound."""

    def __init__(self, limit: int = 64 * 2**20) -> None:
        self.store: dict[Any, str] = {}
        self.size = 0
        self.limit = limit

    def get(self, key: Any, compute: Callable[[], str]) -> str:
        try:
            return self.store[key]
        except KeyError:
            pass
        value = compute()
        size = len(value) + sum(len(part) for part in key if isinstance(part, str))
        if self.size + size > self.limit:
            self.store.clear()
            self.size = 0
        self.store[key] = value
        self.size += size
        return value


_HIGHLIGHT = _Memo()
_MARKDOWN = _Memo()


class _CachedHighlight:
    """An nbconvert ``Highlight2HTML`` filter whose results are memoized (pygments, a pure function of the
    source, the language, the lexer and the formatter options)."""

    def __init__(self, highlight: Highlight2HTML) -> None:
        self.highlight = highlight
        self.options = json.dumps(highlight.extra_formatter_options, sort_keys=True, default=repr)

    def __call__(self, source: str, language: str | None = None, metadata: Any = None) -> str:
        # The only metadata the highlighter reads (nbconvert.filters.highlight._pygments_highlight).
        magics = metadata.get("magics_language") if metadata else None
        key = (str(source), language or "", str(magics), str(self.highlight.pygments_lexer), self.options)
        return _HIGHLIGHT.get(key, lambda: self.highlight(source, language, metadata))


class CachedHTMLExporter(HTMLExporter):
    """nbconvert's HTML exporter with its compiled templates cached across instances: nbgrader makes a new
    exporter for every feedback file, and compiling the feedback templates was most of its cost. The
    grading command's workers use it; the rendered HTML is the same. The filters that dominate rendering
    the cells (syntax highlighting, markdown) are memoized across instances too: the cells that are the
    same in every submission (instructions, setup, tests) are rendered once per worker."""

    def _create_environment(self):  # type: ignore[no-untyped-def]
        environment = super()._create_environment()
        environment.bytecode_cache = _BYTECODE
        return environment

    def register_filter(self, name: str, jinja_filter: Any) -> Any:
        """Memoize the syntax highlighter HTMLExporter registers for each notebook."""
        if name == "highlight_code" and type(jinja_filter) is Highlight2HTML:
            jinja_filter = _CachedHighlight(jinja_filter)
        return super().register_filter(name, jinja_filter)

    @jinja2.pass_context
    def markdown2html(self, context: Any, source: str) -> str:
        """HTMLExporter's markdown filter, memoized for cells without attachments when images are not
        embedded: the output then depends only on the source and the exporter's settings."""
        if self.embed_images or context.get("cell", {}).get("attachments"):
            return super().markdown2html(context, source)
        key = (
            str(source),
            repr((self.anchor_link_text, self.exclude_anchor_links)),
            json.dumps(self.lexer_options, sort_keys=True, default=repr),
        )
        return _MARKDOWN.get(key, lambda: super(CachedHTMLExporter, self).markdown2html(context, source))
