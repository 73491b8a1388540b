"""The actuator against the real dev cluster: dry run, apply, idempotence, pins, reset, CLI."""

from __future__ import annotations

import json
import subprocess

import pytest

from kant_slurm.engine.policies.slurm import modelled_release
from kant_slurm.exporter import cycle_metrics
from kant_slurm.slurm.backend import slurm_version
from kant_slurm.slurm import actuator as act
from kant_slurm.slurm.state import load_state
from kant_slurm.steer import reset, run_cycle

pytestmark = pytest.mark.slurm


def exc_nodes(cluster, job_id: str) -> str:
    out = cluster.run("scontrol", "show", "job", "-o", job_id).stdout
    return out.split("ExcNodeList=", 1)[1].split()[0]


def fill(cluster, gpus_per_node=8, nodes=None, seconds=120):
    """One job per node holding ``gpus_per_node`` GPUs (so nothing else fits there)."""
    ids = [cluster.sbatch(f"--nodelist={n}", f"--gres=gpu:{gpus_per_node}", "-t", "5",
                          "--wrap", f"sleep {seconds}") for n in (nodes or cluster.nodes)]
    cluster.wait_running(ids)
    return ids


def test_dry_run_changes_nothing_then_apply_then_idempotent(steer_env):
    cluster, config, state = steer_env
    fill(cluster, 7, cluster.nodes[:3])  # gn01-03 partly used: tier 0
    # 15 whole nodes: it cannot start (13 are idle), and its 120 GPUs stay under the 128 of
    # the cluster, so best fit is in force on every release (see the test after this one).
    pending = cluster.sbatch("-N", "15", "--gres=gpu:8", "-t", "5", "--wrap", "sleep 1")
    before = cluster.node_weights()
    dry = run_cycle(config, state, dry_run=True)
    assert dry.ok and dry.changes and not state.exists()
    assert cluster.node_weights() == before and cluster.site_factors()[pending] == 0
    # The exact commands a dry run prints are the ones the apply runs.
    applied = run_cycle(config, state)
    assert applied.ok and [c.command() for c in applied.applied] == \
        [c.command() for c in dry.changes]
    w = cluster.node_weights()
    # gn01-03 partly used (tier 0 -> 1, + 1 free GPU for best fit = 2); gn04 idle in a used
    # leaf (tier 1) and gn05-16 idle in idle leaves (tier 2) share Weight 11.
    assert [w[n] for n in ("gn01", "gn03", "gn04", "gn05", "gn16")] == [2, 2, 11, 11, 11]
    # A job of class batch (tier 2), quota within (0): key 6 of 12 -> 100000 * 5.
    assert cluster.site_factors()[pending] == 500_000
    # Each applying cycle leaves its figures for the exporter, a cycle with no change too.
    first = cycle_metrics(state)
    assert first["last_cycle_applied_changes"] == len(applied.applied) > 0
    assert first["last_cycle_duration_seconds"] == pytest.approx(applied.duration_s, abs=0.05)
    again = run_cycle(config, state)
    assert again.ok and again.changes == [] and again.applied == []
    second = cycle_metrics(state)
    assert second["last_cycle_applied_changes"] == 0
    assert second["last_cycle_timestamp_seconds"] >= first["last_cycle_timestamp_seconds"]


def test_best_fit_weights_pause_under_a_deep_queue_on_26_05(steer_env):
    """The live cycle reads the release that runs (sinfo --version): from 26.05, with pending
    jobs asking for the cluster's 128 GPUs or more (weights.deep_queue 1.0), partly used
    nodes share their tier's Weight; before 26.05 they keep best fit."""
    cluster, config, state = steer_env
    fill(cluster, 7, cluster.nodes[:1])  # gn01 partly used: 1 GPU free
    cluster.sbatch("-N", "16", "--gres=gpu:8", "-t", "5", "--wrap", "sleep 1")  # 128 GPUs
    report = run_cycle(config, state, dry_run=True)
    assert report.ok
    # What the Weights would be: Slurm's now, with the cycle's changes
    weight = cluster.node_weights() | {c.target: c.value for c in report.changes
                                       if c.kind == "weight"}
    deep = modelled_release(slurm_version()) >= "26.05"
    assert weight["gn01"] == (1 if deep else 2), (slurm_version(), weight)
    assert weight["gn02"] == 11


def test_pin_for_a_start_and_stale_pin_cleared(steer_env, read_released):
    cluster, config, state = steer_env
    fill(cluster, 8, cluster.nodes[1:])  # only gn01 is free
    # A held job stays pending whatever the nodes; planned as if released, kant pins it to
    # the one node where it fits.
    small = cluster.sbatch("--gres=gpu:2", "-t", "1", "--hold", "--wrap", "sleep 30")
    read = read_released(config, small)
    report = run_cycle(config, state, read=read)
    assert report.ok
    others = tuple(cluster.nodes[1:])
    assert {c.target: c.value for c in report.applied if c.kind == "pin"} == {small: others}
    assert exc_nodes(cluster, small) == "gn[02-16]"
    assert load_state(state).get("pin", small).set == others
    # A user's own job takes gn01 whole: the plan no longer starts `small`, so its pin is stale.
    taker = cluster.sbatch("--nodelist=gn01", "--gres=gpu:8", "-t", "5", "--wrap", "sleep 60")
    cluster.wait_running([taker])
    report2 = run_cycle(config, state, read=read)
    assert report2.ok
    assert [(c.kind, c.target, c.action) for c in report2.applied if c.kind == "pin"] == \
        [("pin", small, "restore")]
    assert exc_nodes(cluster, small) == "(null)"
    assert load_state(state).marks["pin"] == {}


def test_reset_restores_weights_and_site_factors(steer_env):
    cluster, config, state = steer_env
    fill(cluster, 3, cluster.nodes[:2])
    pending = cluster.sbatch("-N", "16", "--gres=gpu:8", "-t", "5", "--wrap", "sleep 1")
    assert run_cycle(config, state).applied
    assert cluster.node_weights() != act.config_weights(cluster.conf_path)
    rep = reset(config, state)
    assert rep.clean and rep.applied
    assert cluster.node_weights() == act.config_weights(cluster.conf_path)
    assert cluster.site_factors()[pending] == 0
    assert load_state(state).is_empty()


def test_cli_schedule_dry_run_prints_quoted_commands_and_reset(steer_env, tmp_path):
    cluster, config, state = steer_env
    fill(cluster, 5, cluster.nodes[:1])
    lock = tmp_path / "lock"
    base = ["kant-slurm", "schedule", "--once", "--state-file", str(state), "--lock-file",
            str(lock)]
    dry = subprocess.run(base + ["--dry-run"], env=cluster.env, capture_output=True, text=True,
                         timeout=60)
    assert dry.returncode == 0, dry.stderr
    lines = [x for x in dry.stdout.splitlines() if x.startswith("scontrol update")]
    # gn01 partly used (tier 0, weight 1 + 3 free GPUs = 4), gn02-16 idle, in a used leaf
    # or not (11, one command).
    assert lines == ["scontrol update NodeName=gn01 Weight=4  # node preference tier "
                     "(partly used nodes and used leaves first)",
                     "scontrol update 'NodeName=gn[02-16]' Weight=11  # node preference tier "
                     "(partly used nodes and used leaves first)"]
    assert lines and not state.exists()
    js = subprocess.run(base + ["--json"], env=cluster.env, capture_output=True, text=True,
                        timeout=60)
    data = json.loads(js.stdout)
    assert data["ok"] and len(data["applied"]) == 16
    assert data["commands"] == [x.split("  #")[0] for x in lines]
    out = subprocess.run(["kant-slurm", "reset", "--state-file", str(state), "--lock-file",
                          str(lock)], env=cluster.env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "Slurm shows no kant change" in out.stdout
