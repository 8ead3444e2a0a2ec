"""JUnit XML: the test report that CI systems read (GitLab, Jenkins, GitHub Actions' test reporters).

The document is built with the standard library's ElementTree, which escapes
what needs escaping. JUnit XML has no one official schema; this writes what
the common ones (Jenkins' ``junit-10.xsd``, Ant's) require and what reporters
show::

    <testsuites name tests failures errors skipped time>
      <testsuite name tests failures errors skipped time>
        <testcase name classname [time]>
          [<failure message type>text</failure> | <error message type>text</error>]
          [<system-out>text</system-out>]

A ``failure`` is a check that failed (a wrong gradient); an ``error`` is one
that could not be made (a file that fails to load, references that disagree).
It reads `Results`' suites and cases (a case's graded parts are Gradescope's).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from gradcheck.cli._results import Case, Results

#: Characters that XML 1.0 does not allow anywhere, escaped or not (most
#: control characters). A user's traceback or print may hold them (a colour
#: code, a NUL); they are written as Python would show them, ``\x1b``.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def document(results: Results) -> bytes:
    """The JUnit XML document of `results`' suites and cases, UTF-8 encoded with its XML declaration."""
    root = ET.Element("testsuites", name=_text(results.name))
    suites = results.suites
    for suite in suites:
        element = ET.SubElement(root, "testsuite", name=_text(suite.name))
        for case in suite.cases:
            element.append(_case(case))
        _count(element, [suite.cases], suite.time)
    _count(root, [s.cases for s in suites], sum(s.time for s in suites))
    ET.indent(root)
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text + b"\n"


def _case(case: Case) -> ET.Element:
    element = ET.Element("testcase", name=_text(case.name), classname=_text(case.classname))
    if case.time is not None:
        element.set("time", f"{case.time:.3f}")
    if case.outcome is not None:
        outcome = ET.SubElement(element, case.outcome.kind, message=_text(case.outcome.message))
        outcome.set("type", _text(case.outcome.type))
        outcome.text = _text(case.outcome.text)
    if case.output:
        ET.SubElement(element, "system-out").text = _text(case.output)
    return element


def _count(element: ET.Element, groups: Sequence[Sequence[Case]], time: float) -> None:
    """Set the totals that every suite (and the root) carries: tests, failures, errors, skipped, time."""
    cases = [case for group in groups for case in group]
    kinds = [case.outcome.kind if case.outcome else "" for case in cases]
    element.set("tests", str(len(cases)))
    element.set("failures", str(kinds.count("failure")))
    element.set("errors", str(kinds.count("error")))
    element.set("skipped", "0")
    element.set("time", f"{time:.3f}")


def _text(value: str) -> str:
    """`value` with the characters XML cannot hold written as escapes (``\\x1b``)."""
    return _NOT_XML.sub(lambda m: repr(m.group())[1:-1], value)
