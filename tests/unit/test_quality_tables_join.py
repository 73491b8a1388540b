"""benchmarks/quality_tables.py --from-json: the table made from stored runs, their seeds
joined per load, and one-line errors for files that cannot be joined; and the effective config
a run records for them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "quality_tables.py"
POLICIES = ("slurm", "kant-steered", "kant")


def figures(gfr: float) -> dict:
    return {
        "gfr": gfr,
        "stranded": 0.2,
        "wait_mean_s": 3600.0,
        "wait_p99_s": 7200.0,
        "wait_p99_big_s": None,
        "big_jobs": 0,
        "p99_by_size": {"1": 7200.0},
        "sim_seconds": 1.0,
    }


def stored(
    path: Path, seeds: dict, release: str | None = None, kant_config: dict | None = None
) -> Path:
    """A --json output with the runs {seed: (slurm GFR, kant-steered GFR)} of philly-64x8,
    recording ``kant_config`` (the effective config of its runs) when given."""
    argv = ["--loads", "philly-64x8"] + (["--slurm-release", release] if release else [])
    runs = {
        str(s): {"slurm": figures(a), "kant-steered": figures(b), "kant": figures(0.005)}
        for s, (a, b) in seeds.items()
    }
    data: dict = {"argv": argv, "results": {"philly-64x8": {"runs": runs}}}
    if kant_config is not None:
        data["kant_config"] = kant_config
    path.write_text(json.dumps(data))
    return path


def defaults(**changed: str) -> dict:
    """The built-in kant config as a dict, with ``section__key=value`` changed."""
    from kant_slurm.config import load_config

    config = load_config().to_dict()
    for name, value in changed.items():
        section, key = name.split("__")
        config[section][key] = value
    return config


def run(*args: str | Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_seeds_of_two_files_are_joined_and_judged_together(tmp_path):
    a = stored(tmp_path / "a.json", {0: (0.02, 0.01), 1: (0.02, 0.01)})
    b = stored(tmp_path / "b.json", {2: (0.02, 0.04)})
    out = run("--from-json", a, "--from-json", b, "--json", tmp_path / "joined.json")
    assert out.returncode == 0, out.stderr
    assert "Seeds: 0, 1, 2." in out.stdout
    # Mean GFR 0.02 against 0.02: 1.00x, met on the two seeds of a.json only. The paired
    # bootstrap draws only seeds 0-1 (ratio 0.5) in 8 of 27 cases and only seed 2 (ratio 2.0)
    # in 1 of 27 (3.7%, above the 2.5% tail), so the 95% interval is 0.50-2.00x.
    assert (
        "| kant-steered: GFR <= 0.6x slurm | **MISSED** | 1.00x, 95% interval 0.50-2.00x "
        "(0.020 vs 0.020); 2 of 3 seeds |" in out.stdout
    )
    joined = json.loads((tmp_path / "joined.json").read_text())
    assert joined["from_json"] == [str(a), str(b)]
    assert sorted(joined["results"]["philly-64x8"]["runs"]) == ["0", "1", "2"]
    gfr_target = joined["results"]["philly-64x8"]["targets"][0]
    assert gfr_target["interval"] == [0.5, 2.0]


def test_one_seed_gives_no_interval(tmp_path):
    a = stored(tmp_path / "a.json", {0: (0.02, 0.01)})
    out = run("--from-json", a)
    assert out.returncode == 0, out.stderr
    assert (
        "| kant-steered: GFR <= 0.6x slurm | **MET** | 0.50x (0.010 vs 0.020); 1 of 1 seeds |"
        in out.stdout
    )


@pytest.mark.parametrize("option", [["--seeds", "0,1"], ["--slurm-release=26.05"]])
def test_options_that_choose_what_runs_are_refused_with_stored_runs(tmp_path, option):
    a = stored(tmp_path / "a.json", {0: (0.02, 0.01)})
    out = run("--from-json", a, *option)
    assert out.returncode == 2
    assert f"--from-json: {option[0].split('=')[0]} chooses what runs" in out.stderr
    assert out.stdout == ""


@pytest.mark.parametrize(
    "case, expected",
    [
        ("same seed twice", "seed 1 of philly-64x8 is also in"),
        ("other release", "models release 26.05 with config None, but"),
        ("not json", "not a --json output of this script"),
        ("no runs", "philly-64x8 has no 'runs' object with a seed"),
        ("seed not a number", "philly-64x8: seed 'x' is not an integer"),
        ("policy missing", "philly-64x8 seed 2: no figures of policy 'kant'"),
        ("figure missing", "philly-64x8 seed 2, slurm: 'gfr' is missing, expected a number"),
        ("figure not a number", "seed 2, slurm: 'stranded' is '0.2', expected a number"),
        ("argv not a list", "'argv' is not a list of strings"),
        ("other defaults", "effective config differs from that of"),
        ("other defaults", "a.json (actuator.pin_jobs)"),
    ],
)
def test_files_that_cannot_be_joined_are_refused_in_one_line(tmp_path, case, expected):
    a = stored(tmp_path / "a.json", {0: (0.02, 0.01), 1: (0.02, 0.01)})
    if case == "same seed twice":
        b = stored(tmp_path / "b.json", {1: (0.02, 0.01)})
    elif case == "other release":
        b = stored(tmp_path / "b.json", {2: (0.02, 0.01)}, release="26.05")
    elif case == "other defaults":
        a = stored(tmp_path / "a.json", {0: (0.02, 0.01)}, kant_config=defaults())
        b = stored(
            tmp_path / "b.json", {2: (0.02, 0.01)}, kant_config=defaults(actuator__pin_jobs="all")
        )
    elif case == "not json":
        b = tmp_path / "b.json"
        b.write_text("philly,64x8\n")
    else:
        b = stored(tmp_path / "b.json", {2: (0.02, 0.01)})
        data = json.loads(b.read_text())
        runs = data["results"]["philly-64x8"]["runs"]
        if case == "no runs":
            del data["results"]["philly-64x8"]["runs"]
        elif case == "seed not a number":
            runs["x"] = runs.pop("2")
        elif case == "policy missing":
            del runs["2"]["kant"]
        elif case == "figure missing":
            del runs["2"]["slurm"]["gfr"]
        elif case == "argv not a list":
            data["argv"] = "--loads philly-64x8"
        else:
            runs["2"]["slurm"]["stranded"] = "0.2"
        b.write_text(json.dumps(data))
    out = run("--from-json", a, "--from-json", b)
    assert out.returncode == 2
    assert expected in out.stderr
    assert "Traceback" not in out.stderr
    assert out.stdout == ""


def test_a_joined_file_keeps_the_release_it_models(tmp_path):
    # A joined file's argv names only the files it joined; it records the release itself, so
    # that it can be joined again (or read as a baseline) with runs of the same release.
    a = stored(tmp_path / "a.json", {0: (0.02, 0.01)}, release="26.05")
    b = stored(tmp_path / "b.json", {1: (0.02, 0.01)}, release="26.05")
    joined = tmp_path / "ab.json"
    out = run("--from-json", a, "--from-json", b, "--json", joined)
    assert out.returncode == 0, out.stderr
    data = json.loads(joined.read_text())
    assert (data["slurm_release"], data["config"]) == ("26.05", None)
    c = stored(tmp_path / "c.json", {2: (0.02, 0.01)}, release="26.05")
    out = run("--from-json", joined, "--from-json", c)
    assert out.returncode == 0, out.stderr
    assert "Slurm release modelled by `slurm` and `kant-steered`: 26.05" in out.stdout
    assert "Seeds: 0, 1, 2." in out.stdout
    out = run("--from-json", joined, "--from-json", stored(tmp_path / "d.json", {3: (0.02, 0.01)}))
    assert out.returncode == 2
    assert "models release 22.05 with config None, but" in out.stderr


def test_the_header_names_the_levers_in_force_and_a_join_keeps_them(tmp_path):
    # A built-in default can change after a table is made: the runs record their effective
    # config, the header names kant-steered's levers from it, and a join carries it on.
    pinned = defaults(actuator__pin_jobs="multi-node")
    a = stored(tmp_path / "a.json", {0: (0.02, 0.01)}, kant_config=pinned)
    b = stored(tmp_path / "b.json", {1: (0.02, 0.01)}, kant_config=pinned)
    joined = tmp_path / "ab.json"
    out = run("--from-json", a, "--from-json", b, "--json", joined)
    assert out.returncode == 0, out.stderr
    assert (
        "- levers in force: actuator.pin_jobs=multi-node, weights.best_fit=True, "
        "weights.deep_queue=1.0, placement.single_node=leaf" in out.stdout
    )
    assert json.loads(joined.read_text())["kant_config"] == pinned
    # Files from before the record: said so, and they join with recorded ones.
    old = stored(tmp_path / "old.json", {2: (0.02, 0.01)})
    out = run("--from-json", old)
    assert "- levers in force: not recorded" in out.stdout
    out = run("--from-json", joined, "--from-json", old)
    assert out.returncode == 0, out.stderr
    assert "actuator.pin_jobs=multi-node" in out.stdout


def test_a_run_records_the_config_it_ran_with_kant_config_included(tmp_path):
    # $KANT_CONFIG reaches the simulator when --config is not given; the table names it as
    # the config, and the JSON keeps the effective values. 24 synthetic openb pods (1 and 8
    # GPUs) make the run take a second.
    rows = ["name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,"
            "creation_time,deletion_time,scheduled_time"]
    for i in range(24):
        t = i * 600
        rows.append(f"openb-pod-{i:04d},8000,16384,{1 if i % 3 else 8},1000,,LS,Running,"
                    f"{t},{t + 7200 + i * 300},{t}")
    pods = tmp_path / "pods.csv"
    pods.write_text("\n".join(rows) + "\n")
    config = tmp_path / "pin-all.yaml"
    config.write_text("actuator:\n  pin_jobs: all\n")
    env = {**os.environ, "KANT_CONFIG": str(config)}
    out = run("--loads", "openb-6x8", "--seeds", "0", "--workers", "1", "--openb", pods,
              "--json", tmp_path / "run.json", env=env)
    assert out.returncode == 0, out.stderr
    assert f"- kant config: `{config}`" in out.stdout
    assert "- levers in force: actuator.pin_jobs=all," in out.stdout
    data = json.loads((tmp_path / "run.json").read_text())
    assert data["config"] == str(config)
    assert data["kant_config"] == defaults(actuator__pin_jobs="all")
