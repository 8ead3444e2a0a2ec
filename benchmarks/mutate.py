"""Mutation testing of the checker itself: does the suite notice a careless change?

Each mutation below is a small, plausible edit to one line of ``gradcheck/``
(a constant moved, a condition dropped, a rule made subtly wrong) with the
test files that should notice it. For each, the repository is copied to a
temporary folder (tracked and untracked files, as git lists them), the edit
applied, and those tests run there with ``HYPOTHESIS_PROFILE=ci``; the mutant
is *killed* when they fail. The kill rate is killed / mutants.

A mutation whose text is no longer found is reported as stale (the code
moved: update the list). Mutants known to be equivalent, or not yet killed,
are marked ``expected="survived"`` with the reason; they count against the
rate all the same.

Not part of the default suite (each mutant costs a test run): docs/testing.md
says when to run it. The list grows with every issue that adds a rule.

Run: python benchmarks/mutate.py [--only SUBSTRING] [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    expected: str = "killed"
    why: str = ""


PINNED = "tests/test_pinned.py"

MUTATIONS = (
    # --- issue 27's survivors -------------------------------------------------------------------
    Mutation("NOISE_SAFETY 16 -> 4", "gradcheck/_tolerance.py", "NOISE_SAFETY = 16.0", "NOISE_SAFETY = 4.0", (PINNED,)),
    Mutation("FLOOR_ULPS 256 -> 64", "gradcheck/_tolerance.py", "FLOOR_ULPS = 256.0", "FLOOR_ULPS = 64.0", (PINNED,)),
    Mutation(
        "absolute floor dropped",
        "gradcheck/_tolerance.py",
        "FLOOR_ULPS * eps * scale + absolute",
        "FLOOR_ULPS * eps * scale",
        (PINNED,),
    ),
    Mutation(
        "samples_safety -> 1",
        "gradcheck/_tolerance.py",
        "return float(np.sqrt(NOISE_SAMPLES / samples))",
        "return 1.0",
        (PINNED,),
    ),
    Mutation(
        "kink test without jump > tol",
        "gradcheck/_references/_evaluation.py",
        "(jump[1] > KINK_PERSISTENCE * jump[0]) & (jump[1] > tol[coordinates])",
        "(jump[1] > KINK_PERSISTENCE * jump[0])",
        (PINNED, "tests/test_finite_diff.py", "tests/test_references.py"),
    ),
    Mutation(
        "FD truncation term dropped",
        "gradcheck/_references/_finite_diff.py",
        "FiniteDifferences(final, xp.abs(final - before) + rounding, kink)",
        "FiniteDifferences(final, rounding, kink)",
        (PINNED,),
    ),
    Mutation(
        "scatter-add += -> =",
        "gradcheck/_references/_primitive_rules.py",
        "out[tuple(slice(s, s + n) for s, n in zip(start, full))] += update.reshape(full)",
        "out[tuple(slice(s, s + n) for s, n in zip(start, full))] = update.reshape(full)",
        (PINNED,),
    ),
    Mutation(
        "integer div floors",
        "gradcheck/_references/_primitive_rules.py",
        "return np.trunc(x / y).astype(np.result_type(x, y))",
        "return np.floor(x / y).astype(np.result_type(x, y))",
        (PINNED,),
    ),
    Mutation(
        "dynamic_slice start not clamped",
        "gradcheck/_references/_primitive_rules.py",
        "(int(np.clip(int(s), 0, dim - n)), n)",
        "(int(s), n)",
        (PINNED,),
    ),
    Mutation(
        "COMPILE_AFTER 64 -> 4096",
        "gradcheck/_references/_cost.py",
        "COMPILE_AFTER = 64",
        "COMPILE_AFTER = 4096",
        (PINNED,),
    ),
    Mutation(
        "bucket not rounded to the device count",
        "gradcheck/_batch_references.py",
        "return size + (-size % devices)",
        "return size",
        (PINNED,),
    ),
    Mutation(
        "min -> max over directions",
        "gradcheck/_derivative_calls.py",
        "k, best = min(",
        "k, best = max(",
        (PINNED,),
    ),
    Mutation(
        "screened note on any direction",
        "gradcheck/_derivative_calls.py",
        "screened = all(SCREENED_NOTE in r.notes for r in reports)",
        "screened = any(SCREENED_NOTE in r.notes for r in reports)",
        (PINNED,),
    ),
    Mutation(
        "reproduce line hard-codes --batch 8",
        "gradcheck/cli/_main_job.py",
        "--hidden {args.hidden} --batch {args.batch} ",
        "--hidden {args.hidden} --batch 8 ",
        (PINNED,),
    ),
    Mutation(
        "fixture counts a wrong call as ok",
        "gradcheck/pytest_plugin.py",
        "        if result.ok:\n            if strict",
        "        if result.ok or result.error is not None:\n            if strict",
        (PINNED,),
    ),
    Mutation(
        "custom rules left out of the cache key",
        "gradcheck/_references/_trace.py",
        "    if not _calls_custom_rule(closed.jaxpr):\n        return text",
        "    if True:\n        return text",
        ("tests/test_references.py",),
    ),
    # --- derivation or precision (issue 22) ---------------------------------------------------
    Mutation(
        "no wider evaluation",
        "gradcheck/_check.py",
        "    if mismatched and precision == np.float64:",
        "    if False and mismatched and precision == np.float64:",
        ("tests/test_precision.py",),
    ),
    Mutation(
        "arbitrary precision judged by any element",
        "gradcheck/_precision.py",
        "rounding[name] = bool(np.all(error <= REFERENCE_SHARE * tol))",
        "rounding[name] = bool(np.any(error <= REFERENCE_SHARE * tol))",
        ("tests/test_precision.py",),
    ),
    Mutation(
        "a mistake stable across precisions taken for rounding",
        "gradcheck/_precision.py",
        "    return Decision(rounding, wide_rel, how=how)\n\n\ndef _paired",
        "    return Decision({n: True for n in rounding}, wide_rel, how=how)\n\n\ndef _paired",
        ("tests/test_precision.py",),
    ),
    Mutation(
        "long double shrink allowance 64 -> 2048",
        "gradcheck/_precision.py",
        "SHRINK_SAFETY = 64.0",
        "SHRINK_SAFETY = 2048.0",
        ("tests/test_precision.py",),
    ),
    Mutation(
        "the whole tolerance allowed to the wider evaluation",
        "gradcheck/_precision.py",
        "REFERENCE_SHARE = 1.0 / _tolerance.NOISE_SAFETY",
        "REFERENCE_SHARE = 1.0",
        ("tests/test_precision.py",),
    ),
    Mutation(
        "no reproducibility check before the wider evaluation",
        "gradcheck/_precision.py",
        "    if (why := _not_reproduced(",
        "    if False and (why := _not_reproduced(",
        ("tests/test_precision.py", "tests/test_batch.py"),
    ),
    Mutation(
        "float32 JAX result not called again",
        "gradcheck/_check.py",
        "    if _narrowed_by_jax(params, closed, returned):",
        "    if False:",
        ("tests/test_precision.py",),
    ),
    Mutation(
        "accidental float32 passes",
        "gradcheck/_check.py",
        "if accidental and report.verdict in RIGHT:",
        "if False and accidental and report.verdict in RIGHT:",
        ("tests/test_precision.py",),
    ),
    Mutation(
        "imprecise exits 1 without --strict",
        "gradcheck/cli/_check.py",
        "imprecise = EXIT_MISMATCH if args.strict else EXIT_OK",
        "imprecise = EXIT_MISMATCH",
        ("tests/test_precision.py",),
    ),
    Mutation(
        "Taylor note calls h^2 on a mismatch a correct gradient",
        "gradcheck/_taylor.py",
        "    if not mismatch:\n",
        "    if True:\n",
        ("tests/test_precision.py",),
    ),
    Mutation(
        "mlp refuses arbitrary precision",
        "gradcheck/_validate.py",
        "        return array.size > 0 and all(_is_real_number(v) for v in array.ravel())",
        "        return False",
        ("tests/test_readme.py", "tests/test_precision.py"),
    ),
    Mutation(
        "imprecise ranked above inconclusive",
        "gradcheck/_report.py",
        '("mismatch", "error", "inconclusive", "imprecise", "pass")',
        '("mismatch", "error", "imprecise", "inconclusive", "pass")',
        ("tests/test_precision.py", "tests/test_batch.py", "tests/test_cli.py"),
    ),
    # --- older rules ------------------------------------------------------------------------------
    Mutation(
        "FD_SAFETY 16 -> 1",
        "gradcheck/_tolerance.py",
        "FD_SAFETY = 16.0",
        "FD_SAFETY = 1.0",
        # No verdict of the suite's draws needs the factor any more (a closed form is blamed only beyond
        # autodiff's own distance from the finite differences, and refinement settles the rest): the
        # calibration table, measured against it, is what changes.
        ("tests/test_docs.py", "-k", "calibration_table_is_what"),
    ),
    Mutation(
        "a search that raises is no failure",
        "gradcheck/_search.py",
        'if report.verdict in ("mismatch", "error"):\n            hunt.first_failure',
        'if report.verdict in ("mismatch",):\n            hunt.first_failure',
        (PINNED,),
    ),
    Mutation(
        "tuples not paired by position",
        "gradcheck/_inputs.py",
        "        if positional and len(names) == len(with_path):",
        "        if False:",
        (PINNED,),
    ),
    # --- the diagnosis (issue 23) ---------------------------------------------------------------
    Mutation(
        "a catalogue mistake named though another fits too",
        "gradcheck/_mistakes.py",
        "if len(words) == 1}",
        "if words}",
        ("tests/test_mistakes.py",),
    ),
    Mutation(
        "tanh's slope written 1 - a1",
        "gradcheck/_mistakes.py",
        "lambda a: 1 - np.asarray(a.a1) ** 2",
        "lambda a: 1 - np.asarray(a.a1)",
        ("tests/test_mistakes.py",),
    ),
    Mutation(
        "the missing diagonal term's sign",
        "gradcheck/_diagnose.py",
        "a term {-diagonal[0]:.6g} I missing",
        "a term {diagonal[0]:.6g} I missing",
        ("tests/test_mistakes.py",),
    ),
    Mutation(
        "key-name slips pass unnoticed",
        "gradcheck/_check.py",
        "    if slip is not None:  # a key-name slip",
        "    if False:  # a key-name slip",
        ("tests/test_wrong_calls.py",),
    ),
    Mutation(
        "the NumPy path's failures crash the check",
        "gradcheck/_references/__init__.py",
        "        except Exception as exc:  # noqa: BLE001 - a rule of ours that failed: never the user's verdict",
        "        except _interpret.Unsupported as exc:  # a rule of ours that failed: never the user's verdict",
        ("tests/test_wrong_calls.py",),
    ),
    Mutation(
        "a NumPy loss refused",
        "gradcheck/_check.py",
        "            evaluation = _forward.ForwardEvaluation(loss_fn, treedef, leaves, ref_args, seed, untraceable)",
        "            raise",
        ("tests/test_forward.py",),
    ),
    Mutation(
        "the finite differences' points all at once",
        "gradcheck/_references/_finite_diff.py",
        "VMAP_CHUNK = 1\n",
        "VMAP_CHUNK = 10**9\n",
        ("tests/test_finite_diff.py",),
        expected="survived",
        why="equivalent in results (only the speed changes, which no test may assert): benchmarks/conv.py shows it",
    ),
    # --- outputs compared across machines (issue 24) ------------------------------------------
    Mutation(
        "values compared to 4 digits",
        "docs/stable_output.py",
        "VALUE_RTOL = 1e-8",
        "VALUE_RTOL = 1e-4",
        ("tests/test_readme.py",),
    ),
    Mutation(
        "estimates compared within a factor of 1e6",
        "docs/stable_output.py",
        "ESTIMATE_FACTOR = 10.0",
        "ESTIMATE_FACTOR = 1e6",
        ("tests/test_readme.py",),
    ),
    Mutation(
        "integers compared as estimates",
        "docs/stable_output.py",
        '    if not re.search(r"[.eE]", shown) or not re.search(r"[.eE]", now):  # integers: exactly',
        "    if False:",
        ("tests/test_readme.py",),
    ),
)


def _copy(folder: Path) -> None:
    """The repository's tracked and untracked (not ignored) files, into `folder`."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / name.decode()
        if source.is_file():
            target = folder / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def run(m: Mutation) -> tuple[Mutation, str, float]:
    """Apply `m` in a fresh copy and run its tests: "killed", "survived" or "stale"."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _copy(folder)
        target = folder / m.path
        text = target.read_text()
        if text.count(m.old) != 1:
            return m, "stale", 0.0
        target.write_text(text.replace(m.old, m.new))
        # The copy's package first, in this process and in every subprocess its tests start.
        env = {**os.environ, "HYPOTHESIS_PROFILE": "ci", "PYTHONPATH": str(folder), "PYTHONDONTWRITEBYTECODE": "1"}
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-n", "0", "-p", "no:cacheprovider", *m.tests],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    outcome = "killed" if done.returncode not in (0, 5) else "survived"
    return m, outcome, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run the mutations whose name contains this")
    parser.add_argument("--jobs", type=int, default=2, help="mutants run at once (default 2)")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if args.only in m.name]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(run, chosen))
    killed = 0
    for m, outcome, seconds in results:
        killed += outcome == "killed"
        note = f"  (expected: {m.expected}: {m.why})" if m.expected != "killed" else ""
        flag = "" if outcome == m.expected else "  <-- not as expected"
        print(f"{outcome:8s} {seconds:6.1f} s  {m.path}: {m.name}{note}{flag}")
    print(f"kill rate: {killed}/{len(results)} = {killed / max(len(results), 1):.0%}")
    unexpected = [m.name for m, outcome, _ in results if outcome != m.expected]
    return 1 if unexpected else 0


if __name__ == "__main__":
    raise SystemExit(main())
