"""The docs' prose claims: each figure has its command, and what the pages name exists as named.

`tests/test_docs.py` and `cog --check` hold the *outputs* shown in the docs to the
code. This file holds the *prose* to the same standard: a sentence that claims a
time, a rate, a ratio or a sensitivity sits beside the command that measures it,
and its figures are the ones that command printed; the pages cite no file outside
the repository; what they say about the command line, the install, the test files,
the JSON schema and kinks is what the code does.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from gradcheck import cli, heads
from gradcheck.cli import _app

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TESTS = ROOT / "tests"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md")), *sorted((DOCS / "guides").glob("*.md"))]
PAGE_IDS = [str(p.relative_to(ROOT)) for p in PAGES]

# --- pages and sections ----------------------------------------------------------------

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
_HEADING = re.compile(r"^(#{1,6}) +(.+?)[ \t]*$", re.M)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_INLINE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_MATH = re.compile(r"\$\$.*?\$\$|\\\(.*?\\\)|\\\[.*?\\\]", re.S)


def slugify(heading: str) -> str:
    """The anchor mkdocs gives a heading (Python-Markdown's toc `slugify`, after the inline markup goes)."""
    text = re.sub(r"[`*_]", "", heading)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


@dataclass(frozen=True)
class Section:
    """A page from one heading to the next (the text above the first heading is a section too)."""

    page: Path
    heading: str
    text: str

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)} § {self.heading or '(top)'}"

    @property
    def prose(self) -> str:
        """The text a reader reads as sentences: no code blocks, no comments, no tables."""
        text = _MATH.sub(" ", _COMMENT.sub("", _FENCE.sub("", self.text)))
        return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("|", "#")))

    @property
    def fences(self) -> list[tuple[str, str]]:
        """The fenced blocks, as (language, content)."""
        return _FENCE.findall(self.text)

    @property
    def cog(self) -> list[str]:
        """The cog directives of the section (each generates the output below it)."""
        return re.findall(r"\[\[\[cog (.*?)\]\]\]", self.text, re.S)

    def paragraphs(self) -> list[str]:
        """The prose by paragraph (a list item is a paragraph), each on one line."""
        blocks = re.split(r"\n\s*\n|\n(?=\s*(?:[-*]|\d+\.) )", self.prose)
        return [flat for block in blocks if (flat := " ".join(block.split()))]

    @property
    def shows_a_command(self) -> bool:
        """A code block or cog block of the section runs a command (its output is below it)."""
        return bool(shown_commands(self))


def sentences(paragraph: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?:;])\s+(?=[A-Z(`*\[])", paragraph) if s]


@cache
def sections(page: Path) -> tuple[Section, ...]:
    text = page.read_text()
    masked = _FENCE.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), text)  # no heading inside a code block
    marks = [(m.start(), m.group(2)) for m in _HEADING.finditer(masked)]
    starts = [(0, ""), *marks] if not marks or marks[0][0] else marks
    ends = [start for start, _ in starts[1:]] + [len(text)]
    return tuple(Section(page, heading, text[start:end]) for (start, heading), end in zip(starts, ends))


def section_at(page: Path, anchor: str) -> Section | None:
    for section in sections(page):
        if section.heading and slugify(section.heading) == anchor:
            return section
    return None


def links(section: Section, text: str | None = None) -> Iterator[tuple[str, Path, str]]:
    """The links of the section (or of `text`, a part of it) to files of the repository: (as written, file, anchor)."""
    for target in _LINK.findall(_COMMENT.sub("", _FENCE.sub("", section.text)) if text is None else text):
        if "://" in target or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        yield target, (section.page.parent / path).resolve() if path else section.page, anchor


# --- evidence: the commands a section shows or cites ---------------------------------------

#: How a command that measures or tests something starts (after `VAR=value` and `time`).
_RUNS = re.compile(r"^(?:python -m pytest|pytest|python benchmarks/\S+\.py|python examples/\S+\.py|gradcheck)\b")
_TEST_ID = re.compile(r"^(?:tests/)?(test_\w+\.py)(?:::(test_\w+))?$")
_BARE_TEST = re.compile(r"^test_\w+$")
#: Code blocks whose content is input (a command, a program, a config), not output.
_NOT_OUTPUT = ("bash", "sh", "python", "yaml", "toml")


def _command(line: str) -> str | None:
    """`line` as a command that runs something, without its environment and `time` prefixes; else None."""
    words = re.sub(r"^(?:\w+=\S+\s+)*(?:time\s+)?", "", line.strip().removeprefix("$ "))
    return words if _RUNS.match(words) else None


@cache
def suite_tests() -> dict[str, tuple[str, str]]:
    """Every test function of the suite: name -> (file name, source)."""
    found = {}
    for path in sorted(TESTS.glob("test_*.py")):
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                found[node.name] = (path.name, ast.get_source_segment(text, node) or "")
    return found


def cited_tests(command: str) -> list[str]:
    """The test functions a test id or a pytest command names (with `-k EXPR`: those whose name holds EXPR)."""
    tests = suite_tests()
    if match := _TEST_ID.match(command):
        file, name = match.groups()
        return [name] if name else [t for t, (f, _) in tests.items() if f == file]
    if _BARE_TEST.match(command):
        return [command] if command in tests else []
    words = command.split()
    if "pytest" not in words[:3]:
        return []
    targets = [w.removeprefix("tests/").partition("::") for w in words if w.startswith("tests/")]
    keyword = words[words.index("-k") + 1] if "-k" in words[:-1] else ""
    return [
        t
        for t, (f, _) in tests.items()
        if any(f == file and name in ("", t) for file, _, name in targets) and keyword in t
    ]


def shown_commands(section: Section) -> list[str]:
    """The commands the section's code blocks and cog blocks run."""
    found = []
    for lang, body in section.fences:
        if lang in ("bash", "sh", "console", ""):
            found += [c for line in body.replace("\\\n", " ").splitlines() if (c := _command(line))]
    for directive in section.cog:
        if call := re.match(r"\s*(?:shell|written)\(\s*(\"\"\"|\"|')(.*?)\1", directive, re.S):
            found += [c for part in re.split(r"\|\||&&|;|\|", call.group(2)) if (c := _command(part))]
        elif directive.lstrip().startswith("python_block("):
            found.append(directive.strip())
    return found


def cited_commands(paragraph: str) -> list[str]:
    """The commands and tests a paragraph cites in inline code."""
    return [
        code
        for code in _INLINE.findall(paragraph)
        if _command(code) or _TEST_ID.match(code) or (_BARE_TEST.match(code) and code in suite_tests())
    ]


def linked_sections(section: Section, paragraph: str) -> list[Section]:
    """The sections of pages in the repository that `paragraph` links to by anchor."""
    found = []
    for _, target, anchor in links(section, paragraph):
        if target.suffix == ".md" and target.is_file() and anchor and (linked := section_at(target, anchor)):
            found.append(linked)
    return found


def _is_test_id(command: str) -> bool:
    return bool(_TEST_ID.match(command) or _BARE_TEST.match(command))


def backed(section: Section, paragraph: str, kinds: list[str]) -> bool:
    """A claim in `paragraph` has its command: the section shows one, the paragraph cites one or links to it.

    A time, rate or ratio needs a command that was run and timed (a benchmark, `gradcheck`, a `pytest`
    run), not a test id: the tests assert no wall-clock time.
    """
    timed = bool({"time", "rate", "ratio"} & set(kinds))
    commands = shown_commands(section) + cited_commands(paragraph)
    for linked in linked_sections(section, paragraph):
        commands += shown_commands(linked) + [c for p in linked.paragraphs() for c in cited_commands(p)]
    return any(not (timed and _is_test_id(c)) for c in commands)


# --- claims ----------------------------------------------------------------------------------

_NUM = r"\d(?:[\d,]*\d)?(?:\.\d+)?"
_SUP = r"[⁰¹²³⁴⁵⁶⁷⁸⁹]+"
_SMALL = rf"\d(?:\.\d+)?\s*(?:[eE][-−]\d+|×\s*10⁻{_SUP})|10⁻{_SUP}"
_SENSES = r"\b(?:caught|catch\w*|flag\w*|detect\w*|resolv\w*|resolution|sensitiv\w*|miss\w*|finer)\b"
NUMBER_WORDS = {
    w: n
    for n, w in enumerate(
        ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"), 1
    )
}
_WORDS = rf"(?:a few|few|several|{'|'.join(NUMBER_WORDS)})"

#: What makes a sentence a quantitative claim about speed, scaling or sensitivity.
CLAIM = {
    "time": rf"{_NUM}\s*(?:ms|µs|us|ns|s|min)\b(?!-)|\b(?:milli|micro)?seconds\b|\bminutes?\b|\bhours?\b",
    "rate": r"\w/s\b|\bper second\b",
    "ratio": rf"{_NUM}[×x](?![\w\d])|{_NUM}\s*×\s+the floor"
    rf"|\b(?:{_NUM}|{_WORDS}|twice)(?:\s*(?:[–-]|to)\s*\S+)?\s+times\s+"
    r"(?:the\s+floor|faster|slower|as\s+(?:fast|slow|long|much)|torch|jax|scipy|its|gradcheck)"
    r"|\b(?:faster|slower|quicker|cheaper|speed-?ups?)\b|\borders? of magnitude\b",
    "scaling": r"\bdoes not grow\b|\bwhatever the size\b|\bconstant (?:time|cost)\b|\bflat in\b",
    "sensitivity": rf"(?:{_SMALL})(?=.{{0,60}}{_SENSES})|{_SENSES}(?=.{{0,60}}(?:{_SMALL}))",
}
_CLAIM = re.compile("|".join(f"(?P<{kind}>{pattern})" for kind, pattern in CLAIM.items()))

#: Claim-like sentences whose figures are settings the code fixes, not measurements, each with why.
#: A key is a phrase of the sentence; the whole sentence is excused, so keep keys specific.
NOT_MEASUREMENTS = {
    "the number of loss evaluations does not grow with the model": "a count the code fixes (`DIRECTIONS` = 2, "
    "6 loss evaluations each), not a measured cost; the sentence says each evaluation costs more on a larger model",
    "The target of 0.3 ms is not reached": "a goal (of the performance issue), not a measurement",
    "The target of 100,000 problems/s is not": "a goal (of the performance issue), not a measurement",
}


SECTIONS = [s for page in PAGES for s in sections(page)]


def claims(paragraph: str) -> list[tuple[str, list[str]]]:
    """Each sentence of `paragraph` that makes a quantitative claim, with the kinds of claim it makes."""
    found = []
    for sentence in sentences(paragraph):
        kinds = sorted({m.lastgroup for m in _CLAIM.finditer(sentence) if m.lastgroup})
        if kinds and not any(phrase in sentence for phrase in NOT_MEASUREMENTS):
            found.append((sentence, kinds))
    return found


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_quantitative_claim_sits_beside_its_command(page: Path) -> None:
    """A sentence claiming a time, rate, ratio, scaling or sensitivity comes with the command that measures it.

    The command is shown in the section (a bash or cog block), or cited in the claim's paragraph
    (`pytest ...`, `python benchmarks/...`, a test id), or in a section the paragraph links to
    (`[benchmarks](benchmarks.md#...)`).
    """
    unbacked = [
        f"{s.name}: [{', '.join(kinds)}] {text}"
        for s in sections(page)
        for paragraph in s.paragraphs()
        for text, kinds in claims(paragraph)
        if not backed(s, paragraph, kinds)
    ]
    assert not unbacked, "claims with no command beside them (add the command or a link, or drop the figure):\n" + (
        "\n".join(unbacked)
    )


#: Durations with no figure ("a few seconds", "takes hours"): a reader cannot check them against anything.
_VAGUE = re.compile(
    rf"\b{_WORDS}\s+(?:milli|micro)?(?:seconds?|minutes?|hours?|days?)\b|\b(?:takes|take|took|in)\s+(?:hours|minutes|seconds)\b"
)


def _sentences_where(page: Path, keep: Callable[[str], object]) -> list[str]:
    """Every sentence of `page` that `keep` accepts, with its section's name."""
    return [f"{s.name}: {text}" for s in sections(page) for p in s.paragraphs() for text in sentences(p) if keep(text)]


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_no_duration_without_its_figure(page: Path) -> None:
    vague = _sentences_where(page, _VAGUE.search)
    assert not vague, "durations with no figure (give the measured figure beside its command, or drop it):\n" + (
        "\n".join(vague)
    )


#: A figure of an earlier run or setting: the command beside it no longer prints it.
_EARLIER = re.compile(
    r"\b(?:an? )?(?:earlier|previous|older) (?:runs?|versions?|settings?)\b|\bit was \d|\bused to (?:take|be)\b"
)


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_no_figure_of_an_earlier_run(page: Path) -> None:
    earlier = _sentences_where(page, lambda text: _EARLIER.search(text) and re.search(r"\d", text))
    assert not earlier, "figures from an earlier run or setting (the CHANGELOG keeps history):\n" + "\n".join(earlier)


# --- the figures of a claim are the ones its command printed ------------------------------

_SECONDS = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0, "seconds": 1.0, "min": 60.0, "minutes": 60.0}
_SHOWN_NUMBER = re.compile(rf"(?<![\w.])({_NUM}(?:[eE][-+]?\d+)?)(?:\s*(ns|µs|us|ms|s|min)\b)?")
_SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")
#: A number is shown with a time unit in its own cell, or in the header of its table column.
Shown = tuple[float, float | None]


def _value(number: str) -> float:
    return float(number.replace(",", ""))


def _half_unit(number: str) -> float:
    """Half a unit in the last place `number` is written to: how far rounding may have moved it."""
    mantissa = number.replace(",", "")
    if "." in mantissa:
        return 0.5 * 10.0 ** -len(mantissa.partition(".")[2])
    return 0.5 * 10.0 ** (len(mantissa) - len(mantissa.rstrip("0")) if mantissa.strip("0") else 0)


@dataclass(frozen=True)
class Figure:
    """A figure a claim quotes: as written, its value, its time unit in seconds (if a time), and its rounding."""

    text: str
    value: float
    seconds: float | None
    half: float
    small: bool = False  # a relative error (a sensitivity), which a cited test may assert

    def matches(self, shown: Shown) -> bool:
        value, seconds = shown
        if self.seconds is not None and seconds is not None:
            value = value * seconds / self.seconds  # the shown time in the claim's unit
        return abs(value - self.value) <= self.half * (1 + 1e-9)


_FIGURES = re.compile(
    rf"(?P<lo>{_NUM})(?![\d,])(?:\s*(?:[–-]|to)\s*(?P<hi>{_NUM})(?![\d,]))?\s*"
    rf"(?:(?P<sci>[eE][-−]\d+|×\s*10⁻{_SUP})|(?P<time>ns|µs|us|ms|s|seconds|min|minutes)\b(?!-)|[×x](?![\w\d])|times\b"
    r"|(?=\w+/s\b|problems per second))"
    rf"|(?<![\d.])10⁻(?P<power>{_SUP})"
)


def figures(sentence: str) -> Iterator[Figure]:
    """The measured figures of a claim: times, ratios and rates, and (in a sensitivity claim) small errors."""
    sensitivity = re.search(CLAIM["sensitivity"], sentence)
    for m in _FIGURES.finditer(sentence):
        if m["power"] or m["sci"]:
            if not sensitivity:
                continue
            if m["power"]:
                scale = 10.0 ** -int(m["power"].translate(_SUPERSCRIPT))
                yield Figure(m.group(), scale, None, scale / 2, small=True)
                continue
            sci = m["sci"].replace("−", "-")
            scale = 10.0 ** (int(sci[1:]) if sci[0] in "eE" else -int(sci.rpartition("⁻")[2].translate(_SUPERSCRIPT)))
        else:
            scale = 1.0
        seconds = _SECONDS[m["time"]] if m["time"] else None
        for number in filter(None, (m["lo"], m["hi"])):
            yield Figure(m.group(), _value(number) * scale, seconds, _half_unit(number) * scale, bool(m["sci"]))


def _table_numbers(table: list[str]) -> list[Shown]:
    """The numbers of a markdown table, with the time unit of their column's header where it names one."""
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    units = [next((u for u in _SECONDS if re.search(rf"(?<![\w/]){u}\b", cell)), None) for cell in header]
    found = []
    for row in table[2:]:
        for cell, unit in zip(row.strip().strip("|").split("|"), units):
            for n, u in _SHOWN_NUMBER.findall(cell):
                found.append((_value(n), _SECONDS[u or unit] if (u or unit) else None))
    return found


def shown(section: Section, paragraph: str | None = None) -> list[Shown]:
    """The numbers the section shows as a command's output, times with their unit.

    That is its output blocks, and, where a code or cog block runs a command, its tables; in
    `paragraph`, the output it quotes in inline code beside a command it cites.
    """
    texts = [body for lang, body in section.fences if lang not in _NOT_OUTPUT]
    found = [(_value(n), _SECONDS[u] if u else None) for text in texts for n, u in _SHOWN_NUMBER.findall(text)]
    if shown_commands(section):
        rest = _COMMENT.sub("", _FENCE.sub("", section.text))
        for table in re.findall(r"(?:^\|.*\n?)+", rest, re.M):
            found += _table_numbers(table.splitlines())
    if paragraph is not None and any(not _is_test_id(c) for c in cited_commands(paragraph)):
        quotes = [code for code in _INLINE.findall(paragraph) if not _command(code)]
        found += [(_value(n), _SECONDS[u] if u else None) for q in quotes for n, u in _SHOWN_NUMBER.findall(q)]
    return found


def asserted(paragraph: str) -> list[Shown]:
    """The numbers in the code of the tests `paragraph` cites: the thresholds a sensitivity claim may quote."""
    numbers: list[Shown] = []
    for command in cited_commands(paragraph):
        for name in cited_tests(command):
            for node in ast.walk(ast.parse(suite_tests()[name][1])):
                if isinstance(node, ast.Constant) and type(node.value) in (int, float):
                    numbers.append((float(node.value), None))
    return numbers


def sources(section: Section, paragraph: str, sentence: str) -> tuple[list[Shown], list[Shown]]:
    """Where a claim's figures come from: (output shown, test constants), here and in the sections it links to."""
    output, tests = shown(section, paragraph), asserted(paragraph)
    for linked in linked_sections(section, sentence):
        output += shown(linked)
        for p in linked.paragraphs():
            output += shown(linked, p)
            tests += asserted(p)
    return output, tests


#: Figures a claim computes from the output beside it rather than quoting it: (a phrase of the sentence,
#: the figure as written) -> the (numerator, denominator) pairs of shown numbers it is computed from. Each
#: operand must be shown, and each end of the figure must be, to its rounding, one of the quotients.
DERIVED: dict[tuple[str, str], list[tuple[float, float]]] = {
    # check_batch's checks/s over torch gradcheck's (default mode, then fast_mode), task by task.
    ("problems per second in this side-by-side run", "53–64 times"): [(22611, 425), (30600, 479)],
    ("problems per second in this side-by-side run", "24–30 times"): [(22611, 942), (30600, 1033)],
}


def derived(figure: Figure, pairs: list[tuple[float, float]], output: list[Shown]) -> list[str]:
    """What is wrong with a derived figure: an operand not shown, or no quotient it rounds."""
    wrong = [f"{x:g} is not shown" for pair in pairs for x in pair if (x, None) not in output]
    if not any(figure.matches((a / b, None)) for a, b in pairs):
        wrong.append(f"{figure.value:g} is none of {', '.join(f'{a / b:.3g}' for a, b in pairs)}")
    return wrong


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_the_figures_of_a_claim_are_the_ones_its_command_printed(page: Path) -> None:
    """Each time, rate, ratio or sensitivity a claim quotes is, to its rounding, a number its evidence shows.

    The evidence is the section's output (output blocks, the tables below a command, output quoted
    beside a cited command), for sensitivities also the constants of the tests the paragraph cites,
    and the same in the sections the sentence links to. A figure from an earlier run, another
    setting or another table is not there, so it fails.
    """
    wrong = []
    for section in sections(page):
        for paragraph in section.paragraphs():
            for sentence, _ in claims(paragraph):
                output, tests = sources(section, paragraph, sentence)
                for figure in figures(sentence):
                    pairs = [v for (phrase, text), v in DERIVED.items() if phrase in sentence and text == figure.text]
                    if pairs:
                        wrong += [f"{section.name}: {figure.text!r}: {w}" for w in derived(figure, pairs[0], output)]
                        continue
                    usable = output + (tests if figure.small else [])
                    if usable and not any(figure.matches(n) for n in usable):
                        wrong.append(f"{section.name}: {figure.text!r} ({figure.value:g}) in: {sentence}")
    assert not wrong, "figures that the output beside them does not show:\n" + "\n".join(wrong)


def test_every_excused_figure_is_still_in_the_docs() -> None:
    """An entry of NOT_MEASUREMENTS or DERIVED that matches no sentence any more is dead: remove it."""
    text = "\n".join(sentence for s in SECTIONS for p in s.paragraphs() for sentence in sentences(p))
    for phrase in [*NOT_MEASUREMENTS, *(phrase for phrase, _ in DERIVED)]:
        assert phrase in text, f"no page says {phrase!r} any more"
    for phrase, figure in DERIVED:
        assert any(phrase in t and figure in t for t in text.splitlines()), (phrase, figure)


# --- the overstatements the review found, by name -------------------------------------------


def _table(section: Section, first_cell: str) -> list[list[str]]:
    """The rows of the section's markdown table whose first column header is `first_cell`."""
    rows = [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in section.text.splitlines()
        if line.startswith("|")
    ]
    start = next(i for i, row in enumerate(rows) if row[0] == first_cell)
    return [dict(zip(rows[start], row)) for row in rows[start + 2 :]]  # type: ignore[misc]


@cache
def _peers() -> list[dict[str, str]]:
    section = section_at(DOCS / "benchmarks.md", "gradcheck-and-its-peers-side-by-side")
    assert section is not None, "docs/benchmarks.md lost its peers section"
    return _table(section, "tool")  # type: ignore[return-value]


def test_the_speed_of_one_check_names_the_loss_it_was_measured_with_and_is_faster_than_no_unnamed_peer() -> None:
    """Issue 18: "faster than scipy" held for the built-in loss only (a user's own loss was slower)."""
    for page in PAGES:
        assert not re.search(r"faster than (?:\w+ )?scipy", page.read_text()), f"{page.name} says gradcheck beats scipy"
    (bullet,) = [
        p for s in sections(DOCS / "benchmarks.md") for p in s.paragraphs() if p.startswith("- **Speed of one check.**")
    ]
    assert "built-in loss" in bullet
    assert "`mlp.loss`" in bullet


def test_no_cost_is_said_not_to_grow_with_the_model() -> None:
    """Issue 18: "a cost that does not grow with their size", where the scaling table shows it grow."""
    for page in PAGES:
        text = " ".join(page.read_text().split())
        assert not re.search(r"\bcosts?\s+(?:that\s+)?(?:does|do|will)\s+not\s+grow", text), page.name


def test_torch_fast_modes_ratio_to_the_floor_is_the_peer_tables() -> None:
    """Issue 18: fast_mode was quoted at "14–16×" the floor where the table said otherwise."""
    shown = [float(row["x floor"]) for row in _peers() if row["tool"] == "torch gradcheck fast_mode"]
    assert shown
    ratio = re.compile(
        rf"fast_mode\W+(?:\w+\W+){{0,3}}?(?P<lo>{_NUM})(?:\s*[–-]\s*(?P<hi>{_NUM}))?\s*(?:×|x|times) the floor"
    )
    for page in PAGES:
        for m in ratio.finditer(" ".join(page.read_text().split())):
            quoted = [_value(n) for n in (m["lo"], m["hi"]) if n]
            assert (min(quoted), max(quoted)) == (round(min(shown)), round(max(shown))), (page.name, m.group())


def test_the_orders_of_magnitude_over_the_peers_are_the_peer_tables() -> None:
    """Issue 18: "eight to eleven orders of magnitude", where the gap to the closest peer (scipy) was 7.5.

    Each count of orders claimed in the peers section lies within half an order of a gap between
    gradcheck's and a peer's smallest relative error flagged (median and worst), and the smallest
    count claimed is no more than the gap to the closest peer.
    """
    flagged = "rel. error flagged: median", "worst"
    ours = [float(r[c]) for r in _peers() if r["tool"] == "gradcheck check_gradients" for c in flagged]
    theirs = [float(r[c]) for r in _peers() if not r["tool"].startswith("gradcheck") for c in flagged]
    gaps = [math.log10(t / o) for t in theirs for o in ours]
    section = section_at(DOCS / "benchmarks.md", "gradcheck-and-its-peers-side-by-side")
    assert section is not None
    claimed = []
    for paragraph in section.paragraphs():
        for sentence in sentences(paragraph):
            if "orders of magnitude" in sentence:
                words = re.findall(rf"\b(?:{'|'.join(NUMBER_WORDS)})\b|\b\d+(?:\.\d+)?\b(?= orders| finer)", sentence)
                claimed += [float(NUMBER_WORDS.get(w, w)) for w in words]
    assert claimed, "the peers section no longer says how much finer gradcheck is"
    for count in claimed:
        assert min(gaps) - 0.5 <= count <= max(gaps) + 0.5, (count, f"{min(gaps):.2f}–{max(gaps):.2f}")
    assert min(claimed) <= min(gaps) + 0.5, f"the closest peer is {min(gaps):.2f} orders away, not {min(claimed):g}"


# --- no page cites a file outside the repository --------------------------------------------

#: Where a path outside the repository would point: the machine's folders, a sibling checkout.
_OUTSIDE = re.compile(r"(?<![\w.-])(?:/(?:work|home|root|Users|tmp|mnt)/\S*|(?:\.\./)*shared/\S*)")


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_no_page_cites_a_path_outside_the_repository(page: Path) -> None:
    text = _COMMENT.sub("", page.read_text())
    assert not _OUTSIDE.findall(text), f"{page.name} cites a path outside the repository"
    for written, target, _ in links(sections(page)[0], text):
        assert target.is_relative_to(ROOT), f"{page.name} links to {written}, outside the repository"
        assert target.exists(), f"{page.name} links to {written}, which does not exist"
    for token in re.findall(r"(?<![\w/])(?:\.\./)+[\w./-]*", text):
        assert (page.parent / token).resolve().is_relative_to(ROOT), f"{page.name} cites {token}"


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_link_to_a_section_names_a_heading(page: Path) -> None:
    """A claim's evidence may be a linked section (above): a link whose anchor names no heading would hide it."""
    for section in sections(page):
        for written, target, anchor in links(section):
            if anchor and target.suffix == ".md" and target.name != "api.md":  # api.md's anchors: mkdocstrings'
                assert section_at(target, anchor) is not None, f"{section.name} links to {written}: no such heading"


def test_the_derivation_names_its_source_text_without_a_path() -> None:
    """The seed text is not in the repository: the page names it and restates what it needs from it."""
    text = (DOCS / "derivation.md").read_text()
    assert "source text" in text
    assert not re.search(r"[\w/.-]+\.txt\b|\bseeds?/", text), "docs/derivation.md cites the source text by a path"


# --- what the pages say about the command line ----------------------------------------------


def test_the_cli_reference_documents_exactly_the_parsers_commands() -> None:
    """docs/cli.md has one `## gradcheck ...` section per command the parser has, and counts them right."""
    commands = set(_app._SUBCOMMANDS)
    page = DOCS / "cli.md"
    documented = set()
    for section in sections(page):
        if (m := re.match(r"`gradcheck(?: (\w[\w-]*))?[^`]*`", section.heading)) and section.text.startswith("## "):
            documented.add(m[1] or "(main job)")
    assert documented == commands | {"(main job)"}
    for p in PAGES:  # "gradcheck has two jobs": every count of the commands is the parser's
        for m in re.finditer(r"`gradcheck` has (\w+) (?:commands|jobs|subcommands)(?P<rest>[^.]*)", p.read_text()):
            assert NUMBER_WORDS.get(m[1], m[1]) == len(commands) + 1, f"{p.name}: {m.group()}"
            assert set(re.findall(r"`(\w+)`", m["rest"])) == commands, f"{p.name}: {m.group()}"


def test_the_help_names_every_command_and_checks_default_task() -> None:
    """Pinned in tests/test_cli.py (`gradcheck --help` names `prove`; `check --help` gives `--task`'s default)."""
    source = (TESTS / "test_cli.py").read_text()
    assert "def test_help_names_every_command_and_every_default(" in source
    assert '"gradcheck prove --help"' in source
    assert '"which task to check (default both)"' in source


# --- install lines --------------------------------------------------------------------------

_EXTRA = re.compile(r"gradcheck\[(\w[\w,-]*)\]|\"\.\[([\w,-]+)\]\"")


@cache
def _extras() -> set[str]:
    text = (ROOT / "pyproject.toml").read_text()
    block = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^(\w[\w-]*)\s*=", block, re.M))


def _installed(line: str) -> set[str]:
    return {e for m in _EXTRA.finditer(line) for e in (m[1] or m[2]).split(",")}


def test_every_install_line_names_extras_that_exist() -> None:
    for page in PAGES:
        for line in page.read_text().splitlines():
            assert _installed(line) <= _extras(), f"{page.name}: {line.strip()}"


def test_every_install_line_that_runs_the_tests_installs_what_they_need() -> None:
    """The tests skip without an extra's package (their skip reasons say `pip install "gradcheck[X]"`)."""
    needed = {
        e for path in TESTS.glob("test_*.py") if path.name != Path(__file__).name for e in _installed(path.read_text())
    }
    assert {"symbolic", "plot"} <= needed
    lines = [
        (page, line)
        for page in PAGES
        for lang, body in sections(page)[0].fences + [f for s in sections(page)[1:] for f in s.fences]
        if lang == "bash"
        for line in body.splitlines()
        if "pip install" in line and re.search(r"&&\s*pytest\b", line)
    ]
    assert lines
    for page, line in lines:
        assert needed <= _installed(line), f"{page.name}: `{line.strip()}` leaves out {needed - _installed(line)}"


def test_a_page_that_runs_a_command_needing_an_extra_says_how_to_install_it() -> None:
    """`gradcheck prove` needs `symbolic`, `gradcheck plot` needs `plot`: the commands' own help says so."""
    needs = {}
    for name, (build, _) in _app._SUBCOMMANDS.items():
        if extra := _installed(build().format_help().replace("\n", " ")):
            needs[name] = extra
    assert needs == {"prove": {"symbolic"}, "plot": {"plot"}}
    for page in PAGES:
        run = {c.split()[1] for s in sections(page) for c in shown_commands(s) if len(c.split()) > 1}
        for name in run & set(needs):
            assert needs[name] <= _installed(page.read_text().replace("\n", " ")), (
                f"{page.name} runs `gradcheck {name}` but does not say how to install {needs[name]}"
            )


# --- the test files -------------------------------------------------------------------------


def test_the_testing_page_lists_every_test_file() -> None:
    listed = set(re.findall(r"`(test_\w+\.py)`", (DOCS / "testing.md").read_text()))
    assert listed == {p.name for p in TESTS.glob("test_*.py")}


# --- the JSON schema documents every key the CLI writes ---------------------------------------
# docs/cli.md writes the schema as JSON-like sketches: `{ "key": value, "key" }` (a key alone is a
# value), `"<task>"` for a key that is a name, `{...}` for anything, `a | b` for alternatives, `# ...`
# comments, and `<failure>` / `<report>` for objects defined in the prose below the sketches.

Node = dict[str, Any] | None  # None: a value; a dict: an object's keys; WILD: anything
WILD: dict[str, Any] = {"{...}": None}
_REFS = "<refs>"
_SKETCH_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|<\w+>|\{\.\.\.\}|#[^\n]*|[{}\[\]:,|]|[^\s{}\[\]:,|"#]+')


def _merge(a: Node, b: Node) -> Node:
    if a is WILD or b is WILD:
        return WILD
    if a is None or b is None:
        return a if b is None else b
    merged = dict(a)
    for key, value in b.items():
        merged[key] = (merged.get(key, []) + value) if key == _REFS else _merge(merged.get(key), value)
    return merged


class _Sketch:
    """A recursive-descent reading of one sketch."""

    def __init__(self, text: str) -> None:
        self.tokens = [t for t in _SKETCH_TOKEN.findall(text) if not t.startswith("#")]
        self.i = 0

    def value(self) -> Node:
        node = self.atom()
        while self.i < len(self.tokens) and self.tokens[self.i] == "|":
            self.i += 1
            node = _merge(node, self.atom())
        return node

    def atom(self) -> Node:
        token = self.tokens[self.i]
        self.i += 1
        if token == "{...}":
            return WILD
        if token.startswith("<"):
            return {_REFS: [token]}
        if token == "{":
            return self.obj()
        if token == "[":
            node: Node = None
            while self.tokens[self.i] != "]":
                if self.tokens[self.i] == ",":
                    self.i += 1
                else:
                    node = _merge(node, self.value())
            self.i += 1
            return node
        return None  # a string, a number, true, null, ...

    def obj(self) -> Node:
        node: dict[str, Any] = {}
        while self.tokens[self.i] != "}":
            token = self.tokens[self.i]
            self.i += 1
            if token.startswith('"'):
                child = None
                if self.tokens[self.i] == ":":
                    self.i += 1
                    child = self.value()
                node[token[1:-1]] = _merge(node.get(token[1:-1]), child)
            elif token.startswith("<"):
                node = _merge(node, {_REFS: [token]})  # type: ignore[assignment]
        self.i += 1
        return node


def _sketch(text: str) -> Node:
    return _Sketch(text).value()


@cache
def json_schema() -> dict[str, Node]:
    """The documented schema: the main job's, `check`'s (schema 1 and 2), and the objects the prose defines."""
    section = section_at(DOCS / "cli.md", "json-output-json")
    assert section is not None, "docs/cli.md lost its JSON section"
    main_job, check, loss = [_sketch(body) for lang, body in section.fences if body.lstrip().startswith("{")]
    prose = " ".join(section.prose.split())
    defined = {m[1]: _sketch(m[2]) for m in re.finditer(r"A `(<\w+>)` is `(\{.*?\})`", prose)}
    report = re.search(
        r"A `<report>` is `Report\.to_dict\(\)`:(.*?)`params`, one object per parameter with(.*?)\.(?: |$)", prose
    )
    assert report, "docs/cli.md no longer says what a <report> holds"
    names = re.compile(r"`([a-z_]+\*?)`")
    defined["<report>"] = {**dict.fromkeys(names.findall(report[1])), "params": dict.fromkeys(names.findall(report[2]))}
    return {"main job": main_job, "check": check, "check --loss": _merge(check, loss), **defined}


def undocumented(value: Any, node: Node, path: str) -> list[str]:
    """The keys of `value` (a JSON document) that `node` (its sketch) does not document."""
    if node is WILD:
        return []
    if isinstance(value, list):
        return [k for item in value for k in undocumented(item, node, f"{path}[]")]
    if not isinstance(value, dict):
        return []
    if node is None:
        return [f"{path} (documented as a value; holds {', '.join(value)})"]
    keys = _resolve(node)
    names = [k for k in keys if k.startswith("<")]
    missing = []
    for key, item in value.items():
        if key not in keys and any(k.endswith("*") and key.startswith(k[:-1]) for k in keys):
            continue
        if key not in keys and not names:
            missing.append(f"{path}.{key}")
            continue
        label = key if key in keys else f"<{key}>"  # a name the sketch writes as "<task>", "<param>", ...
        child = _merge(keys.get(key), keys[names[0]] if names else None) if key in keys else keys[names[0]]
        missing += undocumented(item, child, f"{path}.{label}")
    return missing


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    """An object's keys, with those of the objects it includes (`<report>` in a `<failure>`)."""
    keys = {k: v for k, v in node.items() if k != _REFS}
    for ref in node.get(_REFS, []):
        keys = _merge(keys, _resolve(json_schema()[ref])) or {}  # type: ignore[arg-type, assignment]
    return keys


def _json(argv: list[str]) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cli.main([*argv, "--json"])
    document: dict[str, Any] = json.loads(out.getvalue())
    return document


@pytest.fixture(scope="module")
def json_documents() -> dict[str, dict[str, Any]]:
    """What `--json` writes, from runs that fill every field: failures, identity failures, errors, counterexamples."""
    with pytest.MonkeyPatch.context() as patch:  # the non-canonical trap: a − y for a sigmoid with squared error
        patch.setitem(
            heads.HEADS, "sigmoid-mse", heads.HEADS["sigmoid-mse"]._replace(output_error=heads.canonical_error)
        )
        main_job = _json(["--head", "sigmoid-mse", "--examples", "2"])
    check = _json(["check", str(ROOT / "examples/submissions/*.py:grads"), "--task", "regression", "--examples", "10"])
    general = ROOT / "examples" / "general"
    loss = _json(
        [
            "check",
            f"{general}/students/*.py:logistic_grad",
            "--loss",
            f"{general}/losses.py:logistic",
            "--problems",
            f"{general}/problems.py:logistic_problems",
            "--examples",
            "10",
        ]
    )
    return {"main job": main_job, "check": check, "check --loss": loss}


def test_the_json_runs_fill_every_part_of_the_schema(json_documents: dict[str, dict[str, Any]]) -> None:
    """The documents below hold what the schema test must see: else that test could pass on too little."""
    (task,) = json_documents["main job"]["tasks"].values()
    assert task["failures"]
    assert task["identity"]["failures"]
    for kind, schema in (("check", 1), ("check --loss", 2)):
        document = json_documents[kind]
        assert document["schema"] == schema
        verdicts = {s["verdict"] for s in document["submissions"]}
        assert {"pass", "mismatch"} <= verdicts
        assert any(t["counterexample"] for s in document["submissions"] for t in s["tasks"].values())
    assert "error" in {s["verdict"] for s in json_documents["check"]["submissions"]}


@pytest.mark.parametrize("kind", ["main job", "check", "check --loss"])
def test_every_key_the_cli_writes_is_in_the_json_schema(kind: str, json_documents: dict[str, dict[str, Any]]) -> None:
    missing = undocumented(json_documents[kind], json_schema()[kind], "")
    assert not missing, f"docs/cli.md's JSON schema leaves out ({kind}): {', '.join(missing)}"


# --- kinks ----------------------------------------------------------------------------------


def test_the_kink_cases_canonical_md_describes_are_what_the_checker_does() -> None:
    """docs/canonical.md says what happens beside a ReLU kink, offset by offset: run each one."""
    from tests.test_network import check, kink_problem  # the tests' own kink problems

    text = " ".join((DOCS / "canonical.md").read_text().split())
    sentence = re.search(r"The tests put a hidden unit exactly on a kink, (.*?)\. ", text)
    assert sentence, "docs/canonical.md no longer says which kink cases the tests check"
    cases = re.findall(rf"(10⁻{_SUP}|\d+\.\d+) beside one \(((?:[^()]|\([^()]*\))*)\)", sentence[1])
    assert len(cases) == 3, sentence[1]
    for offset, said in cases:
        power = re.match(rf"10⁻({_SUP})$", offset)
        report = check(kink_problem(10.0 ** -int(power[1].translate(_SUPERSCRIPT)) if power else float(offset)))
        listed = (0,) in report["b1"].not_judged
        if "not judged" in said:
            assert (report.verdict, listed) == ("pass", True), (offset, said, str(report))
        elif "judged, and passes" in said or "checked as usual" in said:
            assert (report.verdict, listed) == ("pass", False), (offset, said, str(report))
        elif "inconclusive" in said:
            assert report.verdict == "inconclusive", (offset, said, str(report))
        else:
            pytest.fail(f"docs/canonical.md says {said!r} at {offset} beside a kink: which verdict is that?")


# --- the constants that prose names are the code's ------------------------------------------------------

_WORDS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14}


def _pages() -> dict[str, str]:
    pages = {"README.md": (ROOT / "README.md").read_text()}
    pages.update({str(p.relative_to(ROOT)): p.read_text() for p in sorted(DOCS.rglob("*.md"))})
    return pages


def test_the_safety_factors_and_floor_in_prose_are_the_tolerance_models() -> None:
    """ "16 × noise", "16 × the bound" and "256 ulps" are `NOISE_SAFETY`, `FD_SAFETY` and `FLOOR_ULPS`: a change
    to the model fails here until the prose follows it."""
    from gradcheck import _tolerance
    from gradcheck._references import _finite_diff

    said = {
        r"(\d+) × (?:measured )?noise": _tolerance.NOISE_SAFETY,
        r"(\d+) × the bound": _tolerance.FD_SAFETY,
        r"(\d+) ulps × the magnitude": _tolerance.FLOOR_ULPS,
        r"floor alone, (\d+) ulps": _tolerance.FLOOR_ULPS,
        r"floor is (\d+) ulps": _tolerance.FLOOR_ULPS,
    }
    found = 0
    for page, text in _pages().items():
        for pattern, value in said.items():
            for m in re.finditer(pattern, text):
                if "became" in text[max(0, m.start() - 40) : m.start()]:  # history: what the floor once was
                    continue
                found += 1
                assert float(m.group(1)) == value, f"{page}: {m.group(0)!r}, but the code has {value:g}"
    assert found >= 3
    assert _finite_diff.KINK_SAFETY == _tolerance.FD_SAFETY == _tolerance.NOISE_SAFETY == 16.0, (
        "the docs speak of one safety factor of 16 (docs/tolerances.md): say which one changed"
    )


def test_the_regime_counts_in_prose_are_the_code_s() -> None:
    from gradcheck import problems

    counts = {
        "numerical regimes": len(problems.REGIMES),
        "regimes of\n`problems.NET_REGIMES`": len(problems.NET_REGIMES),
    }
    for page, text in _pages().items():
        for m in re.finditer(
            r"\b(ten|eleven|twelve|thirteen|fourteen) (numerical regimes|regimes of\n`problems\.NET)", text
        ):
            want = counts["numerical regimes"] if m.group(2) == "numerical regimes" else len(problems.NET_REGIMES)
            assert _WORDS[m.group(1)] == want, f"{page}: {m.group(0)!r}, but there are {want}"
        for m in re.finditer(r"one problem in (ten|eleven|twelve|thirteen|fourteen)\b", text):
            assert _WORDS[m.group(1)] == len(problems.REGIMES), f"{page}: {m.group(0)!r}"
    assert counts
