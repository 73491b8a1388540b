"""`kant-slurm whatif` on the dev cluster: a short replay puts GPU jobs into its sacct, then
whatif reads the last 30 days of that history and the cluster's shape and SchedulerParameters
live, and compares slurm, kant-steered and kant over seeds, in well under 2 minutes."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slurm

# Philly format; a minute apart; 1..16 GPUs so that the 2-node job and the 8-GPU jobs queue.
TRACE = """timestamp,duration,num_gpus,gpu_time,cluster
2017-10-16 00:00:00,240,8,1920,vc1
2017-10-16 00:00:30,180,8,1440,vc1
2017-10-16 00:01:00,300,16,4800,vc2
2017-10-16 00:01:30,120,1,120,vc2
2017-10-16 00:02:00,60,4,240,vc3
2017-10-16 00:02:30,240,2,480,vc3
"""


def _kant(cluster, *args, timeout=180):
    return subprocess.run([sys.executable, "-m", "kant_slurm", *args], env=cluster.env,
                          capture_output=True, text=True, timeout=timeout)


def test_whatif_on_the_dev_clusters_history(slurm_clean, tmp_path):
    cluster = slurm_clean
    trace = tmp_path / "tiny.csv"
    trace.write_text(TRACE)
    replay = _kant(cluster, "replay", "--trace", str(trace), "--trace-format", "philly",
                   "--speedup", "60", "--time-limits", "exact", "--json", "--timeout", "120")
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout)["metrics"]["jobs"] == 6
    # sacct: the replayed jobs among the history of the last 30 days (the default window).
    t0 = time.monotonic()
    html = tmp_path / "whatif.html"
    saved = tmp_path / "history.txt"
    res = _kant(cluster, "whatif", "--seeds", "0,1", "--json", "--html", str(html),
                "--save-history", str(saved))
    elapsed = time.monotonic() - t0
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["history"]["jobs"] >= 6
    assert doc["cluster"]["nodes"] == len(cluster.nodes)
    assert doc["cluster"]["gpus"] == 8 * len(cluster.nodes)
    # The dev cluster's slurm.conf sets these; the model reads two of them.
    conf = cluster.conf_path.read_text()
    line = next(x for x in conf.splitlines() if x.startswith("SchedulerParameters="))
    expected = dict(p.split("=") for p in line.split("=", 1)[1].split(","))
    modelled = doc["scheduler_parameters"]["modelled"]
    assert modelled == {k: int(v) for k, v in expected.items() if k in ("bf_interval",
                                                                       "bf_window",
                                                                       "bf_max_job_test")}
    assert set(doc["scheduler_parameters"]["not_modelled"]) == set(expected) - set(modelled)
    assert [c["spec"]["policy"] for c in doc["cells"]] == ["slurm", "kant-steered", "kant"]
    assert all(c["status"] == "done" and c["seeds_done"] == [0, 1] for c in doc["cells"])
    assert doc["recommendation"]["summary"]
    assert elapsed < 120, elapsed
    assert "Recommendation" in html.read_text()
    # The history saved reruns offline with --input, on the same shape from slurm.conf.
    offline = _kant(cluster, "whatif", "--input", str(saved), "--slurm-conf",
                    str(cluster.conf_path), "--seeds", "0,1", "--json")
    assert offline.returncode == 0, offline.stderr
    again = json.loads(offline.stdout)
    assert again["history"]["jobs"] == doc["history"]["jobs"]
    assert [c["metrics"] for c in again["cells"]] == [c["metrics"] for c in doc["cells"]]
    print(f"\nwhatif on the dev cluster's history: {doc['history']['jobs']} jobs, "
          f"{elapsed:.1f}s")
