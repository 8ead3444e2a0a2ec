"""`gradcheck prove`: the symbolic proofs (`gradcheck._prove`, SymPy) as a table or JSON."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from gradcheck import _prove
from gradcheck.cli import _render


def build_prove_parser() -> argparse.ArgumentParser:
    """The parser of `gradcheck prove`."""
    parser = argparse.ArgumentParser(
        prog="gradcheck prove",
        description=(
            "Prove symbolically, with SymPy: dL/dz = a - y for every canonical head (and refute it for the "
            "non-canonical ones); the seed network's four closed-form gradients and the general network's "
            "backward pass on scalar networks; and refute the source text's dL/db1, which uses w1 where w2 "
            f"belongs. Needs the symbolic extra: {_prove.INSTALL_HINT}"
        ),
        epilog="Exit codes: 0 every claim as expected, 1 a claim failed, 2 SymPy missing or usage error.",
    )
    parser.add_argument("--json", action="store_true", help="print a machine-readable JSON report only")
    return parser


def prove_main(args: argparse.Namespace) -> int:
    """Run every proof; print the table (or JSON); return the exit code."""
    try:
        _prove.sympy()
    except ModuleNotFoundError as exc:
        print(f"gradcheck prove: error: {exc}", file=sys.stderr)
        return _render.EXIT_USAGE
    proofs = _prove.prove_all()
    ok = all(p.ok for p in proofs)
    if args.json:
        rows = [{**dataclasses.asdict(p), "outcome": p.outcome, "ok": p.ok} for p in proofs]
        _render.print_json({"schema": _render.JSON_SCHEMA, "sympy": _prove.version(), "ok": ok, "proofs": rows})
        return _render.EXIT_OK if ok else _render.EXIT_MISMATCH
    console = _render.make_console()
    title = f"gradcheck prove (SymPy {_prove.version()}): derivative - closed form identically 0"
    table = _render.report_table(title, console)
    for column in ("subject", "claim", "outcome", "as expected", "difference"):
        table.add_column(column, overflow="fold")
    for p in proofs:
        colour = "green" if p.ok else "red"
        difference = p.difference if p.holds else f"{p.difference}" + (f"; = {p.witness}" if p.witness else "")
        table.add_row(p.subject, p.claim, p.outcome, f"[{colour}]{'yes' if p.ok else 'NO'}[/]", difference)
    console.print(table)
    refuted = sum(not p.holds for p in proofs)
    console.print(
        f"{len(proofs) - refuted} claims proved, {refuted} refuted as expected"
        if ok
        else f"[red]{sum(not p.ok for p in proofs)} claims not as expected[/]",
        soft_wrap=True,
    )
    return _render.EXIT_OK if ok else _render.EXIT_MISMATCH
