"""The docs show what the code prints, and link only to what exists."""

from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import re
import shlex
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from docs.stable_output import differences
from gradcheck import mlp, problems
from gradcheck.cli import _app, _main_job

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))


def test_quickstart_example_prints_what_the_page_shows(tmp_path: Path) -> None:
    page = (DOCS / "quickstart.md").read_text()
    match = re.search(
        r"```python\n(.*?)```\n\nprints \(this exact script, run with `python`.*?\n\n"
        r"(?:<!-- .*? -->\n)?```\n(.*?)```",
        page,
        re.S,
    )
    assert match, "docs/quickstart.md lost its API example"
    script, shown = match.groups()
    (tmp_path / "example.py").write_text(script)
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert not differences(shown, done.stdout), "\n".join(differences(shown, done.stdout))


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_images_in_the_docs_exist_and_come_with_their_command(page: Path) -> None:
    text = page.read_text()
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (page.parent / image).is_file(), f"{page.name} shows {image}, which is missing"
        assert "gradcheck plot --out docs/img" in text, f"{page.name} shows {image} without the command that draws it"


def test_readme_links_point_at_files() -> None:
    readme = (ROOT / "README.md").read_text()
    targets = [t for t in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme) if "://" not in t]
    assert targets
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"


# --- commands and recipes shown in the docs --------------------------------------------

#: Shell operators that end a command (`gradcheck ... > report.json || status=$?`).
_OPERATORS = {">", ">>", "<", "|", "||", "&&", ";", "&"}


def parse_gradcheck(command: str) -> argparse.Namespace:
    """Parse a `gradcheck ...` command line with its command's parser; fail on a flag that does not exist."""
    lexer = shlex.shlex(command.replace("\\\n", " "), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    argv = []
    for token in lexer:
        if token in _OPERATORS:
            break
        argv.append(token)
    assert argv[0] == "gradcheck", command
    name = argv[1] if len(argv) > 1 and argv[1] in _app._SUBCOMMANDS else None
    build = _app._SUBCOMMANDS[name][0] if name else _main_job.build_parser
    args = argv[2:] if name else argv[1:]
    parser = build()
    parser.allow_abbrev = False  # the docs name each flag in full
    try:
        return parser.parse_args(args)
    except SystemExit as exc:  # argparse printed why
        pytest.fail(f"`{command}` does not parse (exit {exc.code})")


def _bash_commands(page: Path) -> list[str]:
    """The `gradcheck` command lines in the ```bash blocks of `page`, continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", page.read_text(), re.S)
    lines = [line.strip() for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [line for line in lines if line.startswith("gradcheck ") or line == "gradcheck"]


SHOWN = sorted({(page, c) for page in [ROOT / "README.md", *PAGES] for c in _bash_commands(page)})


@pytest.mark.parametrize(("page", "command"), SHOWN, ids=[f"{p.name}: {c[:60]}" for p, c in SHOWN])
def test_every_gradcheck_command_in_the_docs_parses(page: Path, command: str) -> None:
    parse_gradcheck(command)


def _yaml_blocks(page: Path) -> list[Any]:
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", page.read_text(), re.S)]


def _recipes() -> dict[str, Any]:
    """The CI guide's YAML, by what it is: GitHub Actions, GitLab CI, a pre-commit config."""
    found = {}
    for block in _yaml_blocks(DOCS / "guides" / "ci.md"):
        kind = "github" if "jobs" in block else "pre-commit" if "repos" in block else "gitlab"
        assert kind not in found, f"two {kind} recipes"
        found[kind] = block
    assert set(found) == {"github", "gitlab", "pre-commit"}
    return found


def _junit_path(command: str) -> str:
    path = parse_gradcheck(command).junit_xml
    assert path is not None, f"`{command}` writes no JUnit report"
    return str(path)


def test_the_github_actions_workflow_publishes_the_junit_report_gradcheck_writes() -> None:
    workflow = _recipes()["github"]
    assert workflow[True] == ["push", "pull_request"]  # YAML 1.1 reads the key `on` as true
    (job,) = workflow["jobs"].values()
    runs = [step["run"] for step in job["steps"] if "run" in step]
    reports = [step["with"]["report_paths"] for step in job["steps"] if "junit-report" in step.get("uses", "")]
    commands = [run for run in runs if run.startswith("gradcheck")]
    assert commands
    assert reports
    for command in commands:
        assert any(fnmatch.fnmatch(_junit_path(command), report) for report in reports)


def test_the_gitlab_jobs_give_gitlab_the_junit_report_gradcheck_writes() -> None:
    pipeline = _recipes()["gitlab"]
    jobs = {name: job for name, job in pipeline.items() if not name.startswith(".")}
    assert {job["extends"] for job in jobs.values()} == {".gradcheck"}
    template = pipeline[".gradcheck"]
    assert template["artifacts"]["when"] == "always"
    report = template["artifacts"]["reports"]["junit"]
    commands = [line for job in jobs.values() for line in job["script"] if line.startswith("gradcheck")]
    assert {shlex.split(c)[1] == "check" for c in commands} == {True, False}  # `gradcheck check` and the main job
    for command in commands:
        assert fnmatch.fnmatch(_junit_path(command), report)


def test_the_pre_commit_config_names_a_hook_gradcheck_provides() -> None:
    provided = {hook["id"]: hook for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    scripts = {script.name for script in entry_points(group="console_scripts") if script.value.startswith("gradcheck")}
    for hook in provided.values():
        assert {"id", "name", "entry", "language"} <= set(hook)  # what pre-commit requires of a hook
        assert hook["entry"].split()[0] in scripts  # a command that installing gradcheck provides
        assert hook["language"] == "python"
        assert hook["pass_filenames"] is False  # the arguments are FILE:FUNC specs, not the changed files
    config = _recipes()["pre-commit"]
    used = [hook for repo in config["repos"] for hook in repo["hooks"]]
    assert used
    for hook in used:
        assert hook["id"] in provided
        args = parse_gradcheck(shlex.join([*shlex.split(provided[hook["id"]]["entry"]), *hook["args"]]))
        for spec in args.submissions:  # the hook runs when a commit touches the files it checks
            assert re.search(hook["files"], spec.rpartition(":")[0])


# --- the calibration table of docs/tolerances.md ------------------------------------------
# `python benchmarks/calibrate_tolerance.py --problems 25` is deterministic (seeded problems,
# seeded Monte Carlo arithmetic) but takes about 20 s of CPU: too slow for a cog block, which
# `.ci/run` regenerates one after another. One test per regime instead, spread over the
# pytest-xdist workers, regenerates each row and compares it with the page.


def _calibration() -> Any:
    spec = importlib.util.spec_from_file_location("calibrate_tolerance", ROOT / "benchmarks/calibrate_tolerance.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _calibration_table() -> dict[str, str]:
    """The rows of docs/tolerances.md's calibration table, by regime."""
    text = (DOCS / "tolerances.md").read_text()
    table = text.split("| regime | err/noise | used | fd used | ref gap |\n|---|---|---|---|---|\n", 1)[1]
    rows = [line for line in table.split("\n\n", 1)[0].splitlines() if line.startswith("| ")]
    return {row.split(" | ", 1)[0].removeprefix("| "): row for row in rows}


def test_the_calibration_table_has_one_row_per_regime_and_its_worst_line() -> None:
    rows = _calibration_table()
    assert list(rows) == list(problems.REGIMES)
    columns = [[float(v) for v in row.strip("| ").split(" | ")[1:]] for row in rows.values()]
    worst = dict(zip(("err/noise", "used", "fd used", "ref gap"), (f"{max(c):.3g}" for c in zip(*columns))))
    assert f"`worst over all: {worst}`" in (DOCS / "tolerances.md").read_text()


@pytest.mark.parametrize("regime", problems.REGIMES)
def test_the_calibration_table_is_what_the_script_prints(regime: str) -> None:
    calibration = _calibration()
    worst = np.zeros(4)
    for task in mlp.TASKS:
        for ratios in calibration.calibrate(task, regime).values():
            worst = np.maximum(worst, ratios)
    # The ratios measure rounding: another CPU prints other last digits (docs/stable_output.py).
    assert not differences(_calibration_table()[regime], calibration.markdown_row(regime, worst)), (
        "docs/tolerances.md is stale: paste the table `python benchmarks/calibrate_tolerance.py --problems 25` prints"
    )


@pytest.mark.parametrize(
    "module",
    sorted(
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "gradcheck").rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
    ),
)
def test_the_architecture_page_names_every_module(module: str) -> None:
    """docs/architecture.md's table gives each module of gradcheck/ its layer and its one job: a module moved,
    split or added is named there (as `name` or `package.name`), or this fails."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    assert f"{Path(module).stem}`" in text, f"{module} is not in docs/architecture.md"
