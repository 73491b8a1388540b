"""benchmarks/lever_trial.py --from-json: a trial's stored runs against a quality-tables
baseline, per seed, and one-line errors for a baseline that does not fit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_quality_tables_join import defaults, figures  # one fixture for both scripts

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "lever_trial.py"


def baseline(path: Path, seeds: dict, argv: list[str], kant_config: dict | None = None) -> Path:
    """A quality_tables.py --json output of philly-64x8: {seed: (slurm GFR, steered GFR)}."""
    runs = {
        str(s): {"slurm": figures(a), "kant-steered": figures(b), "kant": figures(0.005)}
        for s, (a, b) in seeds.items()
    }
    data: dict = {"argv": argv, "results": {"philly-64x8": {"runs": runs}}}
    if kant_config is not None:
        data["kant_config"] = kant_config
    path.write_text(json.dumps(data))
    return path


def trial(
    path: Path, seeds: dict, release: str = "22.05", kant_config: dict | None = None
) -> Path:
    runs = {
        str(s): {"slurm": figures(a), "kant-steered": figures(b)} for s, (a, b) in seeds.items()
    }
    argv = ["--config", "x.yaml", "--slurm-release", release]
    data: dict = {"argv": argv, "commit": "abc1234", "runs": {"philly-64x8": runs}}
    if kant_config is not None:
        data["kant_config"] = kant_config
    path.write_text(json.dumps(data))
    return path


def run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=120
    )


def test_trial_and_default_side_by_side_per_seed(tmp_path):
    base = baseline(tmp_path / "base.json", {0: (0.02, 0.02), 1: (0.02, 0.04)}, [])
    t = trial(tmp_path / "t.json", {0: (0.02, 0.02), 1: (0.04, 0.02)})
    out = run("--from-json", t, "--baseline", base)
    assert out.returncode == 0, out.stderr
    # Default: steered 0.03 against 0.02; trial: 0.02 against 0.03.
    assert "| GFR | 1.50x (1.00-2.00) | 0.67x (0.50-1.00) |" in out.stdout
    assert "GFR ratio per seed, baseline -> trial: 0: 1.00 -> 1.00, 1: 2.00 -> 0.50." in out.stdout
    assert "runs at commit abc1234" in out.stdout


@pytest.mark.parametrize(
    "case, expected",
    [
        ("seed missing", "--baseline has no seed 2 of philly-64x8"),
        ("other release", "the trial models Slurm 26.05, --baseline 22.05"),
        ("baseline with a config", "ran with --config y.yaml, not the default config"),
    ],
)
def test_a_baseline_that_does_not_fit_is_refused_in_one_line(tmp_path, case, expected):
    argv = ["--config", "y.yaml"] if case == "baseline with a config" else []
    base = baseline(tmp_path / "base.json", {0: (0.02, 0.02), 1: (0.02, 0.04)}, argv)
    seeds = {0: (0.02, 0.02), 1: (0.04, 0.02)}
    if case == "seed missing":
        seeds[2] = (0.02, 0.02)
    t = trial(tmp_path / "t.json", seeds, release="26.05" if case == "other release" else "22.05")
    out = run("--from-json", t, "--baseline", base)
    assert out.returncode == 2
    assert expected in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "case, expected",
    [
        ("bad config", "--config: "),
        ("seed not in baseline", "--baseline: no seed 5 of philly-64x8"),
        ("other release", "--slurm-release 26.05: --baseline models 22.05"),
    ],
)
def test_a_trial_that_cannot_be_judged_is_refused_before_it_runs(tmp_path, case, expected):
    base = baseline(tmp_path / "base.json", {0: (0.02, 0.02)}, [])
    config = tmp_path / "trial.yaml"
    config.write_text("actuator:\n  pin_jobs: sometimes\n" if case == "bad config" else "{}\n")
    seeds = "5" if case == "seed not in baseline" else "0"
    release = "26.05" if case == "other release" else "22.05"
    out = run(
        "--config",
        config,
        "--baseline",
        base,
        "--loads",
        "philly-64x8",
        "--seeds",
        seeds,
        "--slurm-release",
        release,
    )
    assert out.returncode == 2
    assert expected in out.stderr
    assert "Traceback" not in out.stderr and "seed 0:" not in out.stderr  # nothing replayed


def test_the_header_names_what_the_trial_changes_against_the_baseline(tmp_path):
    seeds = {0: (0.02, 0.02)}
    pinned = defaults(actuator__pin_jobs="multi-node")
    base = baseline(tmp_path / "base.json", seeds, [], kant_config=pinned)
    t = trial(tmp_path / "t.json", seeds, kant_config=defaults(actuator__pin_jobs="none"))
    out = run("--from-json", t, "--baseline", base)
    assert out.returncode == 0, out.stderr
    assert "- changed against the baseline: actuator.pin_jobs 'multi-node' -> 'none'" in out.stdout
    out = run("--from-json", trial(tmp_path / "old.json", seeds), "--baseline", base)
    assert "- changed against the baseline: not known" in out.stdout
