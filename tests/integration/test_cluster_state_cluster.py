"""The cluster as Slurm sees it, on the real dev cluster (issue 16 part 2; marked ``slurm``).

Scenario: a maintenance reservation open now on the first two nodes, a user reservation open
now on the last two, a reservation opening in two hours on nodes 9-10, a drained node 3; then
(all ``--hold``, so Slurm starts none of them while the plan is read, and planned as if
released: ``ClusterSnapshot.released``, ``plan --release-held``) a constrained job
(``--constraint=leaf2``), a job bound to the user reservation, a 5-hour job, a job over the
MaxTime of its partition, an ``--exclusive`` 1-GPU job, and 16 fillers of 30 minutes that want
every node. The plan, read through ``read_snapshot`` as ``kant-slurm plan``
reads it, must place nothing on the reserved or drained nodes, the bound job only inside its
reservation, the constrained job only on leaf2 nodes, the 5-hour job off the nodes of the
later reservation and 30-minute jobs on them, the job over MaxTime nowhere, and the exclusive
job on a whole node (8 GPUs) alone. Every cluster-wide change is undone in a ``finally``
(jobs cancelled, reservations and partition deleted, node resumed).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kant_slurm.engine.registry import get_policy
from kant_slurm.slurm import read_snapshot
from kant_slurm import devcluster as dc

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]
RESERVATIONS = ("kant-test-maint", "kant-test-team", "kant-test-later")
SHORT = "kant-test-short"  # a partition with MaxTime 30 minutes


def _restore(cluster, drained: str) -> None:
    """Undo the test's cluster-wide changes; a reservation that will not go is an error."""
    # Slurm refuses to delete a reservation that jobs still name: the jobs go first (not by
    # cancel_all, which waits for idle nodes, and reserved or drained ones are not).
    left: list[str] = []
    deadline = time.monotonic() + 30
    cluster.run("scancel", "--full", "-u", "root", check=False)
    while cluster.run("squeue", "-h", "-o", "%i", check=False).stdout.split():
        if time.monotonic() > deadline:
            left.append("jobs still queued after scancel")
            break
        time.sleep(0.5)
    for name in RESERVATIONS:
        while cluster.run("scontrol", "delete", f"reservation={name}", check=False).returncode:
            shown = cluster.run("scontrol", "show", f"reservation={name}", check=False)
            if shown.returncode or name not in shown.stdout:  # never made, or gone
                break
            if time.monotonic() > deadline:
                left.append(name)
                break
            time.sleep(0.5)
    cluster.run("scontrol", "delete", f"PartitionName={SHORT}", check=False)
    if SHORT in cluster.run("scontrol", "show", "partition", "-o", check=False).stdout:
        left.append(f"partition {SHORT}")
    cluster.run("scontrol", "update", f"nodename={drained}", "state=resume", check=False)
    # The node answers as idle again within a ping; the next test wants every node idle.
    deadline = time.monotonic() + 60
    while dc.node_states(cluster.conf_path).get(drained) != "idle":
        if time.monotonic() > deadline:
            left.append(f"{drained} not idle after resume")
            break
        time.sleep(0.5)
    assert not left, f"could not undo: {left}"


def _plan_cli(cluster) -> dict:
    """``kant-slurm plan --json`` from this checkout (not whatever kant-slurm is installed)."""
    code = "import sys; from kant_slurm.cli import main; sys.argv[0] = 'kant-slurm'; main()"
    env = dict(cluster.env, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-c", code, "plan", "--release-held", "--json"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_plan_keeps_to_reservations_drains_and_constraints(slurm_clean):
    cluster = slurm_clean
    nodes = cluster.nodes
    assert len(nodes) >= 12 and cluster.spec.leaf_size == 4
    maint, team, later = nodes[:2], nodes[-2:], nodes[8:10]
    drained = nodes[2]
    try:
        cluster.run("scontrol", "create", "reservation", "ReservationName=kant-test-maint",
                    "StartTime=now", "Duration=60", f"Nodes={','.join(maint)}", "Flags=MAINT",
                    "Users=root")
        cluster.run("scontrol", "create", "reservation", "ReservationName=kant-test-team",
                    "StartTime=now", "Duration=240", f"Nodes={','.join(team)}", "Users=root")
        cluster.run("scontrol", "create", "reservation", "ReservationName=kant-test-later",
                    "StartTime=now+2hours", "Duration=60", f"Nodes={','.join(later)}",
                    "Users=root")
        cluster.run("scontrol", "update", f"nodename={drained}", "state=drain",
                    "reason=kant-test-drain")
        # EnforcePartLimits=NO (the default): a job over MaxTime is queued and never started.
        cluster.run("scontrol", "create", f"PartitionName={SHORT}",
                    f"Nodes={','.join(nodes[4:8])}", "MaxTime=30", "State=UP")

        def hold(name, *args):
            job = cluster.sbatch("--hold", f"--job-name={name}", *args, "--wrap", "sleep 600")
            time.sleep(1.1)  # distinct submit times: the queue order is the submit order
            return job

        constrained = hold("constrained", "--constraint=leaf2", "--gres=gpu:8", "--time=30")
        bound = hold("bound", "--reservation=kant-test-team", "--gres=gpu:8", "--time=30")
        long = hold("long", "--gres=gpu:8", "--time=300")
        # With two GPU types (devcluster up --gpu-types h100:12,a100:4) a job asks for the
        # type of the last nodes, which the others lack.
        last_type = cluster.spec.node_gpu_types[-1]
        two_types = len(set(cluster.spec.node_gpu_types)) > 1
        typed = hold("typed", f"--gres=gpu:{last_type}:8", "--time=30") if two_types else None
        too_long = hold("too-long", "-p", SHORT, "--gres=gpu:1", "--time=60")
        exclusive = hold("exclusive", "--exclusive", "--gres=gpu:1", "--time=30")
        fillers = [cluster.sbatch("--hold", f"--job-name=filler{i}", "--gres=gpu:8",
                                  "--time=30", "--wrap", "sleep 600") for i in range(len(nodes))]

        # The jobs are held, so that Slurm starts none: plan them as released.
        snap = read_snapshot().released()
        assert {r.name for r in snap.reservations} >= set(RESERVATIONS)
        by_id = snap.job
        assert by_id[bound].reservation == "kant-test-team"
        assert by_id[constrained].features == "leaf2"
        assert by_id[too_long].closed_partitions == (SHORT,)
        assert by_id[exclusive].gpus_per_node == 8
        state = dict(zip(snap.inventory.names, snap.node_state, strict=True))
        assert "DRAIN" in state[drained] and "MAINT" in state[maint[0]], state
        leaf2 = {n for n, f in zip(snap.inventory.names, snap.inventory.features, strict=True)
                 if "leaf2" in f}
        assert leaf2 == set(nodes[4:8])
        gpu_type = dict(zip(snap.inventory.names, snap.inventory.gpu_type, strict=True))

        for policy in ("kant", "slurm"):
            plan = get_policy(policy).plan(snap, snap.taken_at)
            starts = {s.job_id: set(s.nodes) for s in plan.starts}
            closed = set(maint) | {drained}
            for job_id, used in starts.items():
                assert not used & closed, (policy, job_id, used)
                if job_id != bound:
                    assert not used & set(team), (policy, job_id, used)
            for r in plan.reservations:  # later starts it plans keep off them as well
                assert not set(r.nodes) & (closed | set(team)), (policy, r)
            assert starts[bound] <= set(team), policy
            assert starts[constrained] <= leaf2, policy
            assert not starts[long] & set(later), policy  # 5 h would run into the window
            # 30-minute jobs end before it opens: they use its nodes.
            assert set(later) <= set().union(*(starts.get(j, set()) for j in fillers
                                               + [exclusive])), (policy, starts)
            assert too_long not in starts, policy  # over its partition's MaxTime
            node_gpus = {p.job_id: p.node_gpus for p in plan.starts}
            assert node_gpus[exclusive] == (8,), policy  # Slurm gives it the whole node
            assert all(not used & starts[exclusive] for j, used in starts.items()
                       if j != exclusive), policy
            if typed is not None:
                assert {gpu_type[n] for n in starts[typed]} == {last_type}, policy

        # The CLI reads the same cluster and gives the same answer.
        plan = _plan_cli(cluster)
        starts = {s["job_id"]: set(s["nodes"]) for s in plan["starts"]}
        assert starts[bound] <= set(team) and starts[constrained] <= leaf2
        assert not set().union(*starts.values()) & (set(maint) | {drained})

        # Nothing was changed by planning: every job still pending.
        out = cluster.run("squeue", "-h", "-o", "%T").stdout.split()
        assert out and set(out) == {"PENDING"}
    finally:
        _restore(cluster, drained)
