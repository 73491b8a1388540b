"""``kant-slurm bench plan --blocked``: a queue that cannot start its head, so the timed cycle
makes reservations and backfill tests (issue 15)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from kant_slurm.cli import cli
from kant_slurm.engine.benchmark import BLOCKED_FILL, bench_snapshot, head_gangs, run_bench


@pytest.mark.parametrize("policy", ["kant", "slurm"])
def test_the_blocked_scenario_reserves_for_the_gangs_at_its_head(policy):
    r = run_bench(32, 8, 200, 0, policy_name=policy, cycles=1, blocked=True)
    assert r.head_gangs == head_gangs(200) > 0
    assert r.gangs_started == 0
    assert r.reservations > 0
    assert r.started > 0  # the tail still backfills into the free GPUs left


def test_the_blocked_cluster_is_nearly_full_and_its_gangs_are_oldest():
    snap = bench_snapshot(32, 8, 200, 0, blocked=True)
    used = int(snap.gpus_alloc.sum())
    assert int(BLOCKED_FILL * 32 * 8) <= used < 32 * 8
    gangs = head_gangs(200)
    oldest = sorted(snap.pending, key=lambda j: j.submit_time)[:gangs]
    assert all(j.num_nodes >= 8 and j.gpus_per_node == 8 for j in oldest)
    assert len({j.job_id for j in snap.jobs}) == len(snap.jobs)


def test_the_plain_scenario_is_unchanged_by_the_option():
    # Without --blocked the snapshot is drawn as before: no gangs, the asked running count.
    snap = bench_snapshot(32, 8, 50, 20)
    assert len(snap.running) == 20 and len(snap.pending) == 50
    assert [j.job_id for j in snap.pending] == [str(21 + k) for k in range(50)]


def test_cli_prints_the_reservations_and_refuses_running_with_blocked():
    runner = CliRunner()
    out = runner.invoke(cli, ["bench", "plan", "--nodes", "32", "--pending", "100", "--blocked",
                              "--cycles", "1"])
    assert out.exit_code == 0, out.output
    assert "reservations" in out.output and "gangs at the head of the queue" in out.output
    bad = runner.invoke(cli, ["bench", "plan", "--nodes", "32", "--pending", "100", "--blocked",
                              "--running", "5"])
    assert bad.exit_code == 2 and "leave out --running" in bad.output
