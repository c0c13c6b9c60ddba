"""The contract documents in docs/ stay in step with the code: every adapter key and
placeholder, rule, trace event type, probe kind and subcommand the code knows is documented.
Fast: reads files and builds the argument parser, starts no process."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable
from pathlib import Path

import pytest

from checkers import trace
from checkers.rulebook import RULEBOOK
from harness.adapters import adapter
from harness.cli import main as cli

pytestmark = pytest.mark.timeout(30)

DOCS = Path(__file__).resolve().parent.parent / "docs"
CONTRACTS = ("adapter.md", "trace-format.md", "rules.md", "cli.md")


def doc(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def code_spans(text: str) -> set[str]:
    """Every `inline code` span of a Markdown text."""
    return set(re.findall(r"`([^`\n]+)`", text))


def missing(names: Iterable[str], text: str) -> list[str]:
    """The names that appear in no code span of `text`."""
    spans = code_spans(text)
    return sorted(n for n in names if n not in spans)


@pytest.mark.parametrize("name", CONTRACTS)
def test_each_contract_says_what_it_covers_and_that_it_is_a_contract(name: str) -> None:
    text = doc(name)
    assert text.startswith("# ") and "(contract)" in text.splitlines()[0]
    first = text.split("\n\n")[1]
    assert "contract" in first.lower() and "optional" in first.lower(), first


def test_adapter_doc_lists_every_key_of_the_schema() -> None:
    keys = {f"{t}.{k}" if t else k for t, fields in adapter._SCHEMA.items() for k in fields}
    assert missing(keys, doc("adapter.md")) == []


def test_adapter_doc_lists_every_placeholder() -> None:
    names = {"{" + p + "}" for p in adapter.ALL_PLACEHOLDERS}
    assert missing(names, doc("adapter.md")) == []


def test_adapter_doc_lists_every_templated_field() -> None:
    assert missing(adapter.PLACEHOLDERS, doc("adapter.md")) == []


def _table_row_or_heading(line: str, name: str) -> bool:
    if line.startswith("#"):
        return f"`{name}`" in line or line.rstrip().endswith(f" {name}")
    return line.startswith("|") and line.split("|")[1].strip() in (name, f"`{name}`")


def test_rules_doc_has_every_rule_as_heading_or_table_row() -> None:
    lines = doc("rules.md").splitlines()
    absent = [r.name for r in RULEBOOK if not any(_table_row_or_heading(x, r.name) for x in lines)]
    assert absent == []


def test_rules_doc_lists_every_expectation_kind() -> None:
    from harness.scenarios.model import EXPECT_KINDS

    assert missing(EXPECT_KINDS, doc("rules.md")) == []


def test_trace_doc_lists_every_event_type_the_reader_handles() -> None:
    assert missing(trace._HANDLERS, doc("trace-format.md")) == []


def test_trace_doc_lists_every_probe_kind() -> None:
    assert missing(trace.PROBES, doc("trace-format.md")) == []


def _subcommands(parser: argparse.ArgumentParser) -> set[str]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {name for a in actions for name in a.choices}


def test_cli_doc_lists_every_subcommand() -> None:
    names = _subcommands(cli.build_parser())
    assert {"check", "run", "grade"} <= names  # the parser was found
    spans = code_spans(doc("cli.md"))
    absent = [n for n in names if not any(re.match(rf"pams {re.escape(n)}\b", s) for s in spans)]
    assert sorted(absent) == []


def test_cli_doc_lists_every_option_of_every_subcommand() -> None:
    parser = cli.build_parser()
    text = doc("cli.md")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    absent = [
        f"{name} {opt}"
        for name, p in sub.choices.items()
        for action in p._actions
        for opt in action.option_strings
        if opt not in ("-h", "--help") and f"`{opt}" not in text and f"[{opt}" not in text
    ]
    assert absent == []


def test_code_points_at_sections_that_exist() -> None:
    """Docstrings cite `docs/X.md, "Section"`: each such section is a heading of X."""
    root = DOCS.parent
    cited = []
    for path in [*root.glob("harness/*.py"), *root.glob("checkers/*.py")]:
        for f, section in re.findall(r'docs/([\w-]+\.md), "([^"]+)"', path.read_text()):
            cited.append((path.name, f, section))
    assert cited
    absent = [
        c
        for c in cited
        if (DOCS / c[1]).exists()
        and not re.search(rf"^#+ .*{re.escape(c[2])}", doc(c[1]), re.MULTILINE)
    ]
    assert absent == []
