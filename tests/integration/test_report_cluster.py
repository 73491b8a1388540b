"""`kant-slurm report` and `kant-slurm exporter` against the dev cluster's real slurmdbd/slurmctld.

The cross-check: after a mixed workload (1, 2, 3, 4 and 8 GPUs on one node, 2 nodes x 8 GPUs, a
3-task array, a requeued run), the GPU-time our sacct reader allocates agrees with Slurm's own
``sreport job sizesbyaccount -T gres/gpu`` (a job report: it reads job records, not the hourly
rollups) within 1%. The jobs run under an account made for the test, so both sides see exactly
these jobs. sreport's window is whole hours (it rounds start down and end up to the hour it
reports); a window of the current and the next hour holds every job whole.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kant_slurm.report.accounting import allocated_gpu_seconds
from kant_slurm.slurm.accounting import read_sacct_chunks

pytestmark = pytest.mark.slurm


def _sacctmgr(cluster, *args: str) -> None:
    cluster.run("sacctmgr", "-i", *args)


def _wait_done(cluster, ids, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = cluster.run("squeue", "-h", "-o", "%i", "-j", ",".join(ids), check=False).stdout
        if not left.split():
            return
        time.sleep(1)
    raise AssertionError(f"jobs still in the queue after {timeout}s: {left.split()}")


def _sacct_sees_all_ended(cluster, account, n_runs, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = cluster.run("sacct", "-a", "-X", "-D", "-n", "-P", "-A", account, "-o", "State",
                          "-S", "now-2hours", check=False).stdout.split()
        if len(out) >= n_runs and not {"RUNNING", "PENDING", "COMPLETING"} & set(out):
            return
        time.sleep(1)
    raise AssertionError(f"sacct has not recorded the {n_runs} runs as ended")


def _sreport_gpu_seconds(cluster, account, start, end) -> tuple[float, str]:
    res = cluster.run("sreport", "-P", "-t", "Seconds", "job", "sizesbyaccount", "-T",
                      "gres/gpu", "FlatView", f"Accounts={account}", f"start={start}",
                      f"end={end}")
    lines = res.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("Cluster|Account|"))
    cols = lines[header].split("|")
    row = next(line.split("|") for line in lines[header + 1:]
               if line.split("|")[1:2] == [account])
    total = sum(float(v) for c, v in zip(cols, row, strict=True) if c.endswith("TRES"))
    return total, res.stdout


def test_gpu_time_agrees_with_sreport_and_report_json(slurm_clean):
    c = slurm_clean
    account = f"krep{int(time.time()) % 10**6}"
    _sacctmgr(c, "add", "account", account)
    _sacctmgr(c, "add", "user", "root", f"account={account}")
    hour0 = time.time() // 3600 * 3600
    sub = ["-A", account]
    ids = [c.sbatch(*sub, f"--gres=gpu:{g}", "--wrap", f"sleep {s}")
           for g, s in ((1, 4), (2, 5), (3, 6), (4, 4), (8, 5))]
    ids.append(c.sbatch(*sub, "-N", "2", "--gres=gpu:8", "--wrap", "sleep 4"))
    ids.append(c.sbatch(*sub, "--array=1-3", "--gres=gpu:1", "--wrap", "sleep 3"))
    requeued = c.sbatch(*sub, "--requeue", "--gres=gpu:2", "--wrap", "sleep 60")
    c.wait_running([requeued])
    time.sleep(3)
    c.run("scontrol", "requeue", requeued)
    time.sleep(1)
    c.run("scancel", requeued)  # each run (REQUEUED, then CANCELLED) counts once
    _wait_done(c, ids + [requeued])
    # 5 single jobs + 1 two-node job + 3 array tasks + the requeued run (its rerun, cancelled,
    # is a record of its own only when Slurm had restarted it before the scancel)
    _sacct_sees_all_ended(c, account, 10)

    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(hour0))
    end = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(hour0 + 7200))
    theirs, text = _sreport_gpu_seconds(c, account, start, end)
    frame = read_sacct_chunks(hour0, hour0 + 7200, chunk_s=1800, account=account)
    ours = float(allocated_gpu_seconds(frame, (hour0, hour0 + 7200)).sum())
    started = frame[frame["start_time"].notna()]
    runs = frame[frame["job_id"] == requeued]
    assert list(runs["state"])[:1] == ["REQUEUED"] and len(runs) <= 2, runs
    assert runs["end_time"].iloc[0] - runs["start_time"].iloc[0] >= 2
    assert len(started) == 9 + runs["start_time"].notna().sum(), started[["job_id", "state"]]
    assert frame["key"].is_unique
    assert set(started["gpus"]) == {1, 2, 3, 4, 8, 16}
    assert ours > 0
    assert abs(ours - theirs) <= 0.01 * theirs, f"ours {ours} vs sreport {theirs}\n{text}"

    res = subprocess.run(["kant-slurm", "report", "--since", str(hour0), "--until",
                          str(min(time.time(), hour0 + 7200)), "--account", account, "--json"],
                         env=c.env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    # sacct -E now leaves out a rerun that Slurm made eligible after "now" (0 s of GPU time).
    assert data["runs_started"] in (10, len(started))
    assert data["gpu_hours_allocated"] == pytest.approx(ours / 3600, rel=1e-6)
    assert data["gpus_total"] == 128
    assert {r["size_bucket"] for r in data["by_size"]} == {"1", "2-8", "9-64"}
    assert data["wait_p50_s"] is not None and data["gar_mean"] > 0


def _families(text: str) -> dict:
    return {f.name: {tuple(sorted(s.labels.items())): s.value for s in f.samples}
            for f in text_string_to_metric_families(text)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_exporter_textfile_and_http_on_the_live_cluster(slurm_clean, tmp_path):
    c = slurm_clean
    running = c.sbatch("--gres=gpu:2", "--wrap", "sleep 120")
    c.wait_running([running])
    c.sbatch("-N", "16", "--gres=gpu:8", "--wrap", "sleep 5")  # cannot start: 2 GPUs are taken
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"version": 1, "cycle": 3, "marks": {"weight": {}, "pin": {},
                                                                     "site_factor": {}}}))
    out = tmp_path / "kant.prom"
    res = subprocess.run(["kant-slurm", "exporter", "--textfile", str(out), "--state-file",
                          str(state)], env=c.env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    fam = _families(out.read_text())
    assert fam["kant_slurm_up"][()] == 1
    assert fam["kant_slurm_gpus"][()] == 128
    assert fam["kant_slurm_gpus_allocated"][()] == 2
    assert fam["kant_slurm_stranded_gpus"][()] == 6
    assert fam["kant_slurm_gpu_fragmentation_ratio"][()] == pytest.approx(1 / 16)
    assert fam["kant_slurm_free_whole_nodes"][()] == 15
    leaf_free = fam["kant_slurm_leaf_free_whole_nodes"]
    assert sorted(leaf_free.values()) == [3, 4, 4, 4]
    assert fam["kant_slurm_pending_jobs"][(("job_class", "batch"),)] == 1
    assert fam["kant_slurm_pending_gpus"][(("job_class", "batch"),)] == 128
    assert fam["kant_slurm_steer_cycles"][()] == 3

    port = _free_port()
    proc = subprocess.Popen(["kant-slurm", "exporter", "--port", str(port), "--address",
                             "127.0.0.1", "--state-file", str(state), "--max-seconds", "60"],
                            env=c.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        import urllib.request

        body = None
        deadline = time.monotonic() + 30
        while body is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=20) as r:
                    body = r.read().decode()
            except OSError:
                time.sleep(0.3)
        assert body is not None, "the exporter did not answer on 127.0.0.1"
        assert _families(body)["kant_slurm_gpus_allocated"][()] == 2
    finally:
        proc.terminate()
        proc.wait(timeout=30)
