"""`kant-slurm replay` against the dev cluster: a tiny trace as sleep jobs, sacct read back,
metrics printed; a timeout (like Ctrl-C) cancels what it submitted."""

from __future__ import annotations

import json
import subprocess

import pytest

from kant_slurm.devcluster.replay import prepare_replay, replay_trace

pytestmark = pytest.mark.slurm

# Philly format; times 60 s apart; run times 60..600 s; one 16-GPU (2-node) job.
TRACE = """timestamp,duration,num_gpus,gpu_time,cluster
2017-10-16 00:00:00,120,1,120,vc;rm -rf /
2017-10-16 00:01:00,60,4,240,vc2
2017-10-16 00:02:00,180,16,2880,vc2
2017-10-16 00:03:00,600,8,4800,vc3
2017-10-16 00:04:00,60,2,120,vc3
"""


def test_replay_cli_reads_back_every_job(slurm_clean, tmp_path):
    cluster = slurm_clean
    trace = tmp_path / "tiny philly.csv"
    trace.write_text(TRACE)
    res = subprocess.run(
        ["kant-slurm", "replay", "--trace", str(trace), "--trace-format", "philly",
         "--speedup", "60", "--time-limits", "exact", "--json", "--timeout", "120"],
        env=cluster.env, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["submitted"] == 5 and data["failed_submits"] == []
    m = data["metrics"]
    assert m["jobs"] == 5
    assert 0 < m["gar_mean"] <= 1 and 0 <= m["gfr_mean"] <= 1
    sizes = {row["size_bucket"]: row["jobs"] for row in data["details"]["by_size"]}
    assert sizes == {"1": 1, "2-8": 3, "9-64": 1}
    # Run times 1..10 s of wall time become 60..600 trace seconds again (within launch jitter).
    assert 5 * 60 <= m["makespan_s"] <= 5 * 60 + 600 + 600
    # Limits: exact 60..600 s / 60 = 1..10 s -> Slurm's minimum of 1 minute.
    assert any("raised to Slurm's minimum of 1 min" in n for n in data["notes"])


def test_replay_timeout_cancels_submitted_jobs(slurm_clean, tmp_path):
    cluster = slurm_clean
    trace = tmp_path / "t.csv"
    trace.write_text(TRACE.replace(",120,1,", ",36000,1,"))  # first job sleeps 600 s
    jobs = prepare_replay(trace, "philly", speedup=60, limit=1)
    res = replay_trace(jobs, timeout=8)
    assert res.submitted == 1
    left = cluster.run("squeue", "-h", "-o", "%i").stdout.split()
    assert left == []
    assert res.records["state"].iloc[0].startswith("CANCELLED")
