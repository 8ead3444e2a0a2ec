"""`gradcheck prove`: the symbolic proofs, and how they fail when a closed form is wrong."""

from __future__ import annotations

import builtins
import importlib.util
import json
from typing import Any

import pytest

from gradcheck import _prove, cli, heads

needs_sympy = pytest.mark.skipif(
    importlib.util.find_spec("sympy") is None, reason='SymPy is not installed: pip install "gradcheck[symbolic]"'
)


@pytest.fixture(scope="module")
def proofs() -> list[_prove.Proof]:
    if importlib.util.find_spec("sympy") is None:
        pytest.skip('SymPy is not installed: pip install "gradcheck[symbolic]"')
    return _prove.prove_all()


@needs_sympy
def test_every_claim_comes_out_as_expected(proofs: list[_prove.Proof]) -> None:
    assert [p for p in proofs if not p.ok] == []


@needs_sympy
def test_every_canonical_head_is_proved_to_have_output_error_a_minus_y(proofs: list[_prove.Proof]) -> None:
    for name in heads.CANONICAL:
        (proof,) = [p for p in proofs if p.subject == f"head {name}"]
        assert proof.holds
        assert proof.claim == "dL/dz: δ = a − y"


@needs_sympy
@pytest.mark.parametrize("name", [n for n, h in heads.HEADS.items() if not h.canonical])
def test_non_canonical_heads_refute_a_minus_y_and_prove_their_own_delta(name: str, proofs: list[_prove.Proof]) -> None:
    own, canonical = [p for p in proofs if p.subject == f"head {name}"]
    assert own.holds
    assert not canonical.holds
    assert canonical.claim.startswith("dL/dz = a − y")
    assert float(canonical.witness.split()[0]) != 0.0


@needs_sympy
def test_the_seed_closed_form_is_proved_for_all_four_parameters_of_both_tasks(proofs: list[_prove.Proof]) -> None:
    seed = [p for p in proofs if p.subject.startswith("seed ")]
    assert {p.subject for p in seed} == {"seed regression", "seed classification"}
    assert sorted(p.claim.rsplit("/d", 1)[1] for p in seed) == sorted(["w1", "b1", "w2", "b2"] * 2)
    assert all(p.holds for p in seed)


@needs_sympy
def test_the_source_typo_is_refuted_with_its_difference(proofs: list[_prove.Proof]) -> None:
    (typo,) = [p for p in proofs if p.subject == "source text"]
    assert not typo.holds
    assert typo.ok
    assert "(w1 - w2)" in typo.difference
    assert typo.witness.startswith("-0.28747")  # δ2 (w1 - w2) a1 (1 - a1) at x=1, y=0, w1=1, w2=2


@needs_sympy
def test_a_wrong_closed_form_is_not_proved(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # The trap: a - y shipped as the output error of sigmoid with squared error.
    trap = heads.HEADS["sigmoid-mse"]._replace(output_error=heads.canonical_error)
    monkeypatch.setitem(heads.HEADS, "sigmoid-mse", trap)
    monkeypatch.setattr(_prove, "prove_all", _prove.prove_heads)  # the heads' proofs, the trap's among them
    assert cli.main(["prove", "--json"]) == cli.EXIT_MISMATCH
    data = json.loads(capsys.readouterr().out)
    assert not data["ok"]
    failed = [p for p in data["proofs"] if not p["ok"]]
    assert [p["subject"] for p in failed] == ["head sigmoid-mse"]


@needs_sympy
def test_prove_prints_a_table_and_exits_0(
    proofs: list[_prove.Proof], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_prove, "prove_all", lambda: proofs)  # the proofs once per module: the table is tested here
    assert cli.main(["prove"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "refuted as expected" in out
    assert "source text" in out


@needs_sympy
def test_prove_keeps_every_claim_on_one_line_when_piped(
    proofs: list[_prove.Proof], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    monkeypatch.setattr(_prove, "prove_all", lambda: proofs)
    assert cli.main(["prove"]) == cli.EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert "…" not in "".join(lines)
    for p in proofs:
        (line,) = [ln for ln in lines if f" {p.subject} " in ln and f" {p.claim} " in ln]
        assert p.difference in line
        assert p.witness in line


def test_without_sympy_prove_exits_2_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_import = builtins.__import__

    def no_sympy(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "sympy" or name.startswith("sympy."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sympy)
    assert cli.main(["prove"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert 'pip install "gradcheck[symbolic]"' in err
    assert "Traceback" not in err


def test_zero_decides_by_simplify_what_one_denominator_does_not_show() -> None:
    """`_zero`'s fast path (a common denominator, the numerator expanded) proves no identity that is false, and
    leaves to `simplify` what it cannot show: sin² + cos² − 1 is 0 by simplify alone; sin² + cos² is not 0."""
    sp = _prove.sympy()
    x, y = sp.symbols("x y", real=True)
    assert _prove._zero(1 / (1 + sp.exp(-x)) - sp.exp(x) / (sp.exp(x) + 1))  # the fast path: one denominator
    assert _prove._zero(sp.sin(x) ** 2 + sp.cos(x) ** 2 - 1)  # simplify, after the fast path fails
    assert not _prove._zero(sp.sin(x) ** 2 + sp.cos(x) ** 2)
    assert not _prove._zero(x / (1 + y) - x)
