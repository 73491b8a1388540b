"""Jobs Slurm would not start, on the real dev cluster (issue 16): kant plans, pins and lifts
none of them, names Slurm's reason, and counts a pending array's tasks.

Scenario: gn02-16 are full, gn01 is free. Pending beside a startable 2 x 8 GPU job (Resources)
are a user-held job, one waiting on a dependency, one with a begin time an hour ahead and a
throttled array (``%1``: task 0 runs on gn01, tasks 1-2 wait on the throttle). Each of those
asks 2 GPUs, so each would fit on gn01 and would get a pin if kant planned it.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from kant_slurm.slurm import actuator as act
from kant_slurm.formats.slurm_jobs import parse_sprio_site
from kant_slurm.formats.slurm_values import scontrol_records

pytestmark = pytest.mark.slurm

# Job fields that no kant lever may change (kant's levers: SiteFactor, ExcNodeList, Weight).
KEPT = ("JobState", "Reason", "Priority", "Nice", "Partition", "QOS", "TimeLimit", "ReqNodeList",
        "ExcNodeList", "Dependency", "Features", "Comment", "AdminComment", "NumNodes",
        "TresPerNode")


def _kant(cluster, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    res = subprocess.run(["kant-slurm", *args], env=cluster.env, capture_output=True, text=True,
                         timeout=timeout)
    assert res.returncode == 0, res.stderr
    return res


def _fields(cluster, job_ids) -> dict[str, list[dict[str, str]]]:
    """Per job id, the KEPT fields of each record Slurm shows for it (an array: its tasks)."""
    return {job_id: [{k: rec.get(k) for k in KEPT} for rec in scontrol_records(
        cluster.run("scontrol", "show", "job", "-o", job_id).stdout)] for job_id in job_ids}


def test_held_dependent_begin_and_throttled_jobs_are_left_to_slurm(slurm_clean, tmp_path):
    cluster = slurm_clean
    fillers = [cluster.sbatch(f"--nodelist={n}", "--gres=gpu:8", "-t", "10", "--wrap",
                              "sleep 300") for n in cluster.nodes[1:]]
    cluster.wait_running(fillers)
    big = cluster.sbatch("-N", "2", "--gres=gpu:8", "-t", "30", "--wrap", "sleep 1")
    two = ("--gres=gpu:2", "-t", "5", "--wrap", "sleep 300")
    held = cluster.sbatch("--hold", "--job-name=held", *two)
    dep = cluster.sbatch(f"--dependency=afterok:{fillers[0]}", "--job-name=dep", *two)
    begin = cluster.sbatch("--begin=now+1hour", "--job-name=begin", *two)
    array = cluster.sbatch("--array=0-2%1", "--job-name=arr", *two)
    cluster.wait_running([f"{array}_0"])
    blocked = {held: "JobHeldUser", dep: "Dependency", begin: "BeginTime",
               f"{array}_1": "JobArrayTaskLimit", f"{array}_2": "JobArrayTaskLimit"}

    plan = json.loads(_kant(cluster, "plan", "--json").stdout)
    assert plan["held"] == blocked
    planned = {e["job_id"] for e in plan["order"]} | {s["job_id"] for s in plan["starts"]} | \
        {r["job_id"] for r in plan["reservations"]}
    assert planned == {big}, plan
    explain = _kant(cluster, "plan", "--explain", dep).stdout
    assert "Slurm's reason: Dependency" in explain and "not planned" in explain

    # The pending array counts its tasks: big (16 GPUs) + 3 jobs and 2 tasks of 2 GPUs.
    status = json.loads(_kant(cluster, "status", "--json").stdout)
    assert status["pending_jobs"]["count"] == 6 and status["pending_jobs"]["gpus"] == 26
    assert status["pending_jobs"]["held_by_slurm"] == 5

    before = _fields(cluster, [held, dep, begin, array])
    config = tmp_path / "kant.yaml"
    config.write_text("actuator:\n  pin_jobs: all\n")
    paths = ["--config", str(config), "--state-file", str(tmp_path / "state.json"),
             "--lock-file", str(tmp_path / "lock")]
    daemon = _kant(cluster, "daemon", "--interval", "1", "--max-cycles", "3", *paths)
    assert "5 held by Slurm" in daemon.stderr, daemon.stderr
    try:
        assert _fields(cluster, [held, dep, begin, array]) == before
        site = parse_sprio_site(cluster.run("sprio", "-h", "-o", "%i %S").stdout)
        assert site[big] > 0  # kant lifts the startable job...
        assert all(site.get(j, 0) == 0 for j in (held, dep, begin, array))  # ...and no other
        assert cluster.node_weights() != act.config_weights(cluster.conf_path)
    finally:
        _kant(cluster, "reset", *paths)
    assert cluster.node_weights() == act.config_weights(cluster.conf_path)
    assert parse_sprio_site(cluster.run("sprio", "-h", "-o", "%i %S").stdout)[big] == 0
    assert _fields(cluster, [held, dep, begin, array]) == before
