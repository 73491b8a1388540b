"""Running a sweep locally: the same figures as a direct simulator run, resume, a failed cell
that loses nothing else, a merge that does not depend on the order, the Slurm backend's script
and sbatch arguments."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kant_slurm import __version__
from kant_slurm.cli import cli
from kant_slurm.config import load_config
from kant_slurm.sim.cluster import load_cluster_spec
from kant_slurm.sim.run import compare_policies
from kant_slurm.formats.traces import read_trace
from kant_slurm.whatif import slurmarray, stats
from kant_slurm.whatif.grid import load_grid
from kant_slurm.whatif.runner import collect, prepare_out, result_path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep_helpers import TINY_CLUSTER, grid_text, tiny_philly  # noqa: E402


@pytest.fixture
def grid_file(tmp_path):
    trace = tiny_philly(tmp_path / "t.csv")
    g = tmp_path / "g.yaml"
    g.write_text(grid_text(trace))
    return g


def _sweep(grid, out, *more):
    r = CliRunner().invoke(cli, ["sweep", str(grid), "--out", str(out), *more])
    return r


def test_local_backend_equals_a_direct_simulator_run(grid_file, tmp_path):
    r = _sweep(grid_file, tmp_path / "o", "--workers", "2", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert len(doc["cells"]) == 4 and doc["cell_counts"]["done"] == 4
    trace = read_trace(tmp_path / "t.csv")
    cluster = load_cluster_spec(TINY_CLUSTER)
    for cell in doc["cells"]:
        k = cell["spec"]["overrides"]["backfill.reservations"]
        base = load_config()
        config = base.__class__(**{**base.__dict__, "backfill": base.backfill.__class__(
            reservations=k, max_job_test=base.backfill.max_job_test)})
        per_seed = []
        for seed in (0, 1):
            run = compare_policies(trace, cluster, [cell["spec"]["policy"]], config=config,
                                   seed=seed).runs[cell["spec"]["policy"]]
            per_seed.append(run.headline)
        for key in stats.METRIC_KEYS:
            assert cell["metrics"][key]["values"] == [h[key] for h in per_seed], (cell, key)
            assert cell["metrics"][key]["mean"] == pytest.approx(
                sum(h[key] for h in per_seed) / 2)
        # Provenance: version and a command that reruns exactly this cell.
        for run in cell["runs"]:
            assert run["version"] == __version__
            assert shlex.split(run["cell_command"])[-4:] == ["--out", str((tmp_path / "o")
                                                                           .resolve()),
                                                             "--cell", str(cell["index"])]
    # The seeds draw different limits, so at least one metric has a spread.
    assert any(c["metrics"][k]["ci95"] for c in doc["cells"] for k in stats.METRIC_KEYS)


def test_resume_runs_only_what_is_missing_and_merges_the_same(grid_file, tmp_path):
    out = tmp_path / "o"
    assert _sweep(grid_file, out, "--workers", "1").exit_code == 0
    table = (out / "table.txt").read_text()
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(stats.METRICS)  # one chart per metric
    assert "slurm backfill.reservations=8" in page
    grid = load_grid(grid_file)
    cells = grid.cells()
    files = {(c.index, s): result_path(out.resolve(), c, s) for c in cells for s in grid.seeds}
    before = {k: (p.stat().st_mtime_ns, p.read_text()) for k, p in files.items()}
    files[(2, 1)].unlink()  # as if the task of cell 2 had been killed before seed 1 finished
    r = _sweep(grid_file, out, "--workers", "1")
    assert r.exit_code == 0, r.output
    after = {k: (p.stat().st_mtime_ns, p.read_text()) for k, p in files.items()}
    rerun = {k for k in files if after[k][0] != before[k][0]}
    assert rerun == {(2, 1)}
    assert (out / "table.txt").read_text() == table


def test_merge_is_the_same_whatever_the_order_and_the_workers(grid_file, tmp_path):
    assert _sweep(grid_file, tmp_path / "a", "--workers", "1").exit_code == 0
    assert _sweep(grid_file, tmp_path / "b", "--workers", "2").exit_code == 0
    for name in ("table.txt", "cells.csv"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
    # Merging per-seed results handed over in another order gives the same entry.
    grid = load_grid(grid_file)
    a = collect((tmp_path / "a").resolve(), grid)
    res = {s: {"metrics": {k: a[0]["metrics"][k]["values"][i] for k in stats.METRIC_KEYS}}
           for i, s in enumerate(grid.seeds)}
    forward = stats.merge_cell({"index": 0}, grid.seeds, res, {})
    backward = stats.merge_cell({"index": 0}, grid.seeds, dict(reversed(list(res.items()))), {})
    assert forward["metrics"] == backward["metrics"]


def test_a_failed_cell_is_reported_and_the_others_are_kept(tmp_path):
    tiny_philly(tmp_path / "t.csv")
    (tmp_path / "broken.csv").write_text("timestamp,duration,num_gpus,gpu_time,cluster\n"
                                         "2017-10-16 00:00:00,ten,1,1,vc\n")
    g = tmp_path / "g.yaml"
    g.write_text(f"policies: [slurm]\ntraces: [t.csv, broken.csv]\nclusters: [{TINY_CLUSTER}]\n")
    r = _sweep(g, tmp_path / "o", "--workers", "2")
    assert r.exit_code == 1
    doc = json.loads((tmp_path / "o" / "cells.json").read_text())
    status = {c["label"]: c["status"] for c in doc["cells"]}
    assert status == {"slurm trace=t.csv": "done", "slurm trace=broken.csv": "failed"}
    failed = doc["cells"][1]["seeds_failed"]["0"]
    assert "broken.csv" in failed and "duration" in failed
    assert "cell 1 (slurm trace=broken.csv) failed" in r.stderr
    assert "1 of 2 cells did not finish" in r.stderr


def test_array_spec_compresses_runs():
    assert slurmarray.array_spec([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert slurmarray.array_spec([3], limit=2) == "3%2"


def test_task_script_quotes_every_value(tmp_path):
    """The generated script, run by sh with hostile paths, hands each one over intact and runs
    nothing else."""
    weird = tmp_path / "a b;$(touch PWNED)'\"`x`"
    weird.mkdir()
    record = tmp_path / "argv.json"
    stub = weird / "py thon"
    stub.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                    f"json.dump({{'argv': sys.argv[1:], 'pp': os.environ['PYTHONPATH'], "
                    f"'cwd': os.getcwd()}}, open({str(record)!r}, 'w'))\n")
    stub.chmod(0o755)
    out = weird / "out $HOME"
    text = slurmarray.task_script(out, python=str(stub), pythonpath=str(weird), cwd=str(weird),
                                  merge=False)
    script = tmp_path / "task.sh"
    script.write_text(text)
    subprocess.run(["sh", str(script)], check=True, cwd=tmp_path,
                   env=dict(os.environ, SLURM_ARRAY_TASK_ID="3"))
    got = json.loads(record.read_text())
    assert got == {"argv": ["-m", "kant_slurm", "sweep", "--out", str(out), "--cell", "3"],
                   "pp": str(weird), "cwd": str(weird)}
    assert not list(tmp_path.rglob("PWNED"))


def test_slurm_submit_passes_the_job_name_as_one_argument_and_only_unfinished_cells(
        grid_file, tmp_path):
    grid = load_grid(grid_file)
    out = prepare_out(tmp_path / "o", grid, "test")
    # Cell 1 is done already (both seeds).
    cell1 = grid.cells()[1]
    for s in grid.seeds:
        result_path(out, cell1, s).parent.mkdir(parents=True, exist_ok=True)
        result_path(out, cell1, s).write_text("{}")
    calls = []

    def runner(argv, timeout=0):
        calls.append(argv)
        return "" if argv[0] == "squeue" else f"{100 + len(calls)}\n"

    name = "sw; rm -rf / $(id) `x`"
    sub = slurmarray.submit(out, grid, job_name=name, extra=["--partition=cpu"], runner=runner)
    array_argv, merge_argv = calls
    assert f"--job-name={name}" in array_argv and "--array=0,2-3" in array_argv
    assert "--partition=cpu" in array_argv and array_argv[-1] == str(out / "slurm-array.sh")
    assert f"--job-name={name}-merge" in merge_argv
    assert f"--dependency=afterany:{sub.array_id}" in merge_argv
    assert sub.cells == [0, 2, 3]
