"""The simulator carries out plans exactly, on the cadence documented in sim/simulator.py.

Policies here are tiny test doubles (first fit in submit order); the real ones live in engine/.
"""

import numpy as np
import pandas as pd
import pytest

from kant_slurm.engine.plan import Placement, Plan
from kant_slurm.errors import InputError, SimulationError
from kant_slurm.model import Inventory, Partition
from kant_slurm.sim.simulator import SimSettings, Simulator
from kant_slurm.sim.workload import job_shapes, prepare_workload


class FirstFit:
    """Pending jobs in snapshot order, each on the first nodes with room."""

    name = "first-fit"

    def __init__(self):
        self.calls = []

    def plan(self, snap, now):
        self.calls.append((now, len(snap.pending), len(snap.running)))
        free = (snap.inventory.gpus_total - snap.gpus_alloc).astype(int)
        starts = []
        for job in snap.pending:
            cand = np.nonzero(free >= job.gpus_per_node)[0][: job.num_nodes]
            if len(cand) < job.num_nodes:
                continue
            free[cand] -= job.gpus_per_node
            starts.append(Placement(job.job_id, tuple(snap.inventory.names[i] for i in cand),
                                    (job.gpus_per_node,) * job.num_nodes,
                                    runtime_estimate=job.time_limit))
        return Plan(self.name, now, starts=tuple(starts))


def _inv(n=2, gpus=2):
    names = [f"n{i + 1}" for i in range(n)]
    return Inventory.build(names, [gpus] * n, partitions=[Partition("gpu", tuple(names), True)])


def _workload(rows, inv):
    cols = ["job_id", "submit_time", "duration", "gpus", "time_limit"]
    df = pd.DataFrame(rows, columns=cols)
    for c, v in (("num_nodes", 0), ("job_class", ""), ("user", ""), ("account", ""),
                 ("partition", ""), ("name", ""), ("line", 0)):
        df[c] = v
    df["line"] = range(2, 2 + len(df))
    return prepare_workload(df, inv)


def _run(rows, inv=None, policy=None, **settings):
    inv = inv or _inv()
    policy = policy or FirstFit()
    res = Simulator(inv, _workload(rows, inv), policy, settings=SimSettings(**settings)).run()
    return res.records.set_index("job_id"), res, policy


NAN = float("nan")


def test_event_driven_replay_exact_times():
    rec, res, _ = _run([("A", 0, 100, 2, 200), ("B", 0, 50, 2, 60), ("C", 10, 10, 2, 20)],
                       interval=0)
    assert rec.loc["A", ["start_time", "end_time"]].tolist() == [0, 100]
    assert rec.loc["B", ["start_time", "end_time"]].tolist() == [0, 50]
    # C waits for B's node: it starts the instant B ends
    assert rec.loc["C", ["start_time", "end_time"]].tolist() == [50, 60]
    assert rec.loc["C", "nodes"] == ("n2",) and rec.loc["C", "node_gpus"] == (2,)
    assert rec.loc["A", "est_runtime"] == 200
    assert list(rec["state"]) == ["COMPLETED"] * 3
    assert res.end_time == 100


def test_interval_batches_changes():
    # cycle at 0 starts A; B's submit at 5 waits for the next cycle at 0 + 30
    rec, res, policy = _run([("A", 0, 100, 1, 200), ("B", 5, 10, 1, 20)], interval=30)
    assert rec.loc["B", "start_time"] == 30
    assert [c[0] for c in policy.calls] == [0, 30]


def test_time_limit_ends_job_as_timeout():
    rec, _, _ = _run([("A", 0, 100, 1, 60)], interval=0)
    assert rec.loc["A", "end_time"] == 60
    assert rec.loc["A", "state"] == "TIMEOUT"


def test_full_cluster_cycles_are_skipped():
    # A and B fill both nodes; C's submit at 1 cannot start anywhere: no plan call for it
    _, res, policy = _run([("A", 0, 100, 2, 200), ("B", 0, 100, 2, 200), ("C", 1, 5, 1, 9)],
                          interval=0)
    assert [c[0] for c in policy.calls] == [0, 100]
    assert res.cycles_skipped == 1


def test_unknown_job_in_plan_is_an_error():
    class Bad(FirstFit):
        def plan(self, snap, now):
            return Plan("bad", now, starts=(Placement("nope", ("n1",), (1,)),))

    with pytest.raises(SimulationError, match="'nope'.*not pending"):
        _run([("A", 0, 10, 1, 20)], policy=Bad())


def test_a_failed_run_gives_the_policy_its_starts_only_setting_back():
    """The simulator asks a non-preempting policy for starts-only plans for the run; a plan
    that stops the run with an error must not leave the policy asking for them afterwards."""
    class Bad(FirstFit):
        starts_only = False
        seen: list = []

        def plan(self, snap, now):
            self.seen.append(self.starts_only)
            return Plan("bad", now, starts=(Placement("nope", ("n1",), (1,)),))

    bad = Bad()
    with pytest.raises(SimulationError):
        _run([("A", 0, 10, 1, 20)], policy=bad)
    assert bad.seen == [True] and bad.starts_only is False


def test_overcommitting_plan_is_an_error():
    class Over(FirstFit):
        def plan(self, snap, now):
            return Plan("over", now, starts=tuple(
                Placement(j.job_id, ("n1",), (2,)) for j in snap.pending))

    with pytest.raises(SimulationError, match="node 'n1', which has 0 free"):
        _run([("A", 0, 10, 2, 20), ("B", 0, 10, 2, 20)], policy=Over())


def test_fill_until_full_stops_at_first_blocked_job():
    rows = [("A", 0, float("inf"), 2, NAN), ("B", 1, float("inf"), 1, NAN),
            ("C", 2, float("inf"), 2, NAN), ("D", 3, float("inf"), 1, NAN)]
    rec, res, _ = _run(rows, interval=0, fill_until_full=True)
    assert res.stopped_full
    assert list(rec.index) == ["A", "B", "C"]  # D was never submitted
    assert np.isnan(rec.loc["C", "start_time"]) and rec.loc["C", "state"] == "PENDING"
    assert rec.loc["B", "state"] == "RUNNING"


def test_deterministic():
    rows = [(str(i), i * 3.0, 7.0 + i % 5, 1 + i % 2, 30) for i in range(40)]
    a, _, _ = _run(rows, interval=5)
    b, _, _ = _run(rows, interval=5)
    pd.testing.assert_frame_equal(a, b)


def test_job_shapes():
    nodes, per = job_shapes(np.array([1, 8, 12, 24, 16, 3]), np.array([0, 0, 0, 0, 4, 0]),
                            np.array([8, 8, 8, 8, 8, 8]))
    assert nodes.tolist() == [1, 1, 2, 3, 4, 1]
    assert per.tolist() == [1, 8, 6, 8, 4, 3]


def test_prepare_workload_drops_jobs_no_pool_can_hold():
    wl = _workload([("A", 0, 1, 4, 5), ("B", 0, 1, 5, 5)], _inv(n=2, gpus=2))
    assert wl.table["job_id"].tolist() == ["A"]
    assert wl.table.loc[0, ["num_nodes", "gpus_per_node"]].tolist() == [2, 2]
    assert "dropped 1 jobs" in wl.notes[0]


def test_prepare_workload_unknown_partition_names_line():
    df = pd.DataFrame({"job_id": ["A"], "submit_time": [0.0], "duration": [1.0], "gpus": [1],
                       "time_limit": [NAN], "num_nodes": [0], "job_class": [""], "user": [""],
                       "account": [""], "partition": ["nope"], "name": [""], "line": [7]})
    with pytest.raises(InputError, match="line 7: partition 'nope'"):
        prepare_workload(df, _inv())
