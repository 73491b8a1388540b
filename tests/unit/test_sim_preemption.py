"""The simulator's preemption with requeue, CPU accounting and SLA polling (issue 8, issue 5).

Every expected time is worked out by hand from the rules in sim/simulator.py's docstring. The
policy is a test double (first fit in snapshot order, plus: preempt running training jobs for a
pending inference job that does not fit); the real preempting engine is tested in engine/.
"""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from kant_slurm.engine.plan import Placement, Plan, Preemption
from kant_slurm.errors import InputError, SimulationError
from kant_slurm.metrics.timeline import occupancy, scheduling_window
from kant_slurm.model import Inventory, Partition
from kant_slurm.sim.simulator import SimSettings, Simulator
from kant_slurm.sim.workload import prepare_workload

NAN = float("nan")


class Preempter:
    """First fit; an inference job that does not fit preempts running training jobs (in
    snapshot order) once it has waited ``after`` seconds. Respects eligible times."""

    name = "preempter"
    may_preempt = True

    def __init__(self, after: float = 0.0):
        self.after = after
        self.calls: list[float] = []
        self.snapshots = []

    def plan(self, snap, now):
        self.calls.append(now)
        self.snapshots.append(snap)
        names = snap.inventory.names
        free = (snap.inventory.gpus_total - snap.gpus_alloc).astype(int)
        starts, victims = [], []
        running = [j for j in snap.running if j.job_class == "training"]
        for job in snap.pending:
            if job.eligible_time is not None and job.eligible_time > now:
                continue
            cand = np.nonzero(free >= job.gpus_per_node)[0][: job.num_nodes]
            if len(cand) < job.num_nodes and job.job_class == "inference" \
                    and now - job.submit_time >= self.after:
                while running and len(cand) < job.num_nodes:
                    v = running.pop(0)
                    victims.append(Preemption(v.job_id, job.job_id, v.nodes, v.node_gpus))
                    for n, g in zip(v.nodes, v.node_gpus, strict=True):
                        free[names.index(n)] += g
                    cand = np.nonzero(free >= job.gpus_per_node)[0][: job.num_nodes]
            if len(cand) < job.num_nodes:
                continue
            free[cand] -= job.gpus_per_node
            starts.append(Placement(job.job_id, tuple(names[i] for i in cand),
                                    (job.gpus_per_node,) * job.num_nodes))
        return Plan(self.name, now, starts=tuple(starts), preemptions=tuple(victims))


def _inv(n=1, gpus=2, cpus=None):
    names = [f"n{i + 1}" for i in range(n)]
    return Inventory.build(names, [gpus] * n, cpus_total=cpus and [cpus] * n,
                           partitions=[Partition("gpu", tuple(names), True)])


def _workload(rows, inv, **extra):
    """rows: (job_id, submit, duration, gpus, time_limit, class)."""
    df = pd.DataFrame(rows, columns=["job_id", "submit_time", "duration", "gpus", "time_limit",
                                     "job_class"])
    for c, v in (("num_nodes", 0), ("user", ""), ("account", ""), ("partition", ""),
                 ("name", "")):
        df[c] = v
    df["line"] = range(2, 2 + len(df))
    for c, v in extra.items():
        df[c] = v
    return prepare_workload(df, inv)


def _classifier(ckpt=100.0, sla=60.0):
    def classify(job):
        if job.job_class == "training":
            return dataclasses.replace(job, checkpoint_interval=ckpt, preemptible=True)
        if job.job_class == "inference":
            return dataclasses.replace(job, sla=sla)
        return job
    return classify


def _run(rows, inv=None, policy=None, classifier=None, workload_extra=None, **settings):
    inv = inv or _inv()
    policy = policy or Preempter()
    settings.setdefault("interval", 0)
    settings.setdefault("requeue_delay", 0)
    res = Simulator(inv, _workload(rows, inv, **(workload_extra or {})), policy,
                    settings=SimSettings(**settings),
                    classifier=classifier or _classifier()).run()
    return res.records.set_index("job_id"), res, policy


TRAIN = ("T", 0, 1000, 2, 2000, "training")
INFER = ("I", 250, 50, 2, 3600, "inference")


def test_victim_loses_work_since_checkpoint_and_is_requeued():
    rec, res, _ = _run([TRAIN, INFER])
    # T ran 0..250: checkpoints at 100, 200 -> 50 s x 2 GPUs lost, 800 s left
    t = rec.loc["T"]
    assert (t["start_time"], t["last_start_time"], t["end_time"]) == (0, 300, 1100)
    assert t["preemptions"] == 1 and t["preempted_gpu_seconds"] == 100
    assert t["preempted_runs"] == ((0.0, 250.0, ("n1",), (2,)),)
    assert t["state"] == "COMPLETED" and t["submit_time"] == 0
    i = rec.loc["I"]
    assert (i["start_time"], i["end_time"], i["preemptions"]) == (250, 300, 0)
    assert i["sla"] == 60 and math.isnan(t["sla"])
    assert res.preemptions == 1


def test_unknown_checkpoint_interval_loses_everything():
    rec, _, _ = _run([TRAIN, INFER], classifier=_classifier(ckpt=None))
    t = rec.loc["T"]
    assert t["preempted_gpu_seconds"] == 500  # 250 s x 2 GPUs
    assert (t["last_start_time"], t["end_time"]) == (300, 1300)  # all 1000 s again


def test_requeue_delay_makes_victim_wait():
    rec, res, policy = _run([TRAIN, INFER], requeue_delay=121)
    # I ends at 300 but T is eligible only at 250 + 121 = 371: a wake-up cycle then
    assert (rec.loc["T", "last_start_time"], rec.loc["T", "end_time"]) == (371, 1171)
    assert 371 in policy.calls
    requeued = [j for t, s in zip(policy.calls, policy.snapshots, strict=True) if t > 250
                for j in s.pending if j.job_id == "T"]
    assert requeued and requeued[0].eligible_time == 371 and requeued[0].submit_time == 0


def test_requeued_job_keeps_limit_for_its_rest():
    # Limit 1000 < run time 1500: alone it would time out. Preempted at 600 with checkpoints
    # every 100: 900 s left, within the limit of the new run -> completes at 650 + 900.
    rows = [("T", 0, 1500, 2, 1000, "training"), ("I", 600, 50, 2, 3600, "inference")]
    rec, _, _ = _run(rows)
    assert rec.loc["T", "state"] == "COMPLETED" and rec.loc["T", "end_time"] == 1550
    # 2500 s with a 1000 s limit, preempted at 500: 2000 s left > limit -> TIMEOUT at 550+1000
    rows = [("T", 0, 2500, 2, 1000, "training"), ("I", 500, 50, 2, 3600, "inference")]
    rec, _, _ = _run(rows)
    assert rec.loc["T", "state"] == "TIMEOUT" and rec.loc["T", "end_time"] == 1550


def test_preempted_runs_count_in_occupancy():
    rec, res, _ = _run([TRAIN, INFER])
    records = res.records
    window = scheduling_window(records)
    assert window == (0, 300)  # to the last (re)start
    occ = occupancy(records, _inv(), window)
    # T 0..250, I 250..300, T again from 300: 2 of 2 GPUs busy all the time
    assert occ.gar.mean() == 1.0
    assert occ.allocated.integral() == 600


def test_gang_victim_preempted_whole_and_gpus_freed():
    inv = _inv(n=2, gpus=2)
    rows = [("G", 0, 1000, 4, 2000, "training"), ("I", 100, 50, 1, 3600, "inference")]
    rec, _, policy = _run(rows, inv=inv)
    assert rec.loc["I", "start_time"] == 100 and rec.loc["I", "nodes"] == ("n1",)
    # G lost 0 s (100 mod 100) and waits for I to free n1, then runs its 900 s left
    assert rec.loc["G", "preempted_gpu_seconds"] == 0
    assert (rec.loc["G", "last_start_time"], rec.loc["G", "end_time"]) == (150, 1050)
    # the snapshot after the preemption shows n2 idle, n1 with I's GPU only
    snap = policy.snapshots[policy.calls.index(100) + 0]
    assert list(snap.gpus_alloc) == [2, 2]


@pytest.mark.parametrize("bad, msg", [
    (Preemption("X", "I", ("n1",), (2,)), "not running"),
    (Preemption("T", "I", ("n2",), (2,)), "runs on"),
    (Preemption("T", "I", ("n1",), (1,)), "runs on"),
])
def test_bad_preemption_is_an_error(bad, msg):
    class Bad(Preempter):
        def plan(self, snap, now):
            plan = super().plan(snap, now)
            if now == 250:
                return dataclasses.replace(plan, preemptions=(bad,), starts=())
            return plan

    with pytest.raises(SimulationError, match=msg):
        _run([TRAIN, INFER], inv=_inv(n=2, gpus=2) if "n2" in bad.nodes else None,
             policy=Bad())


def test_same_victim_twice_is_an_error():
    class Twice(Preempter):
        def plan(self, snap, now):
            plan = super().plan(snap, now)
            return dataclasses.replace(plan, preemptions=plan.preemptions * 2)

    with pytest.raises(SimulationError, match="not running"):
        _run([TRAIN, INFER], policy=Twice())


def test_full_cluster_cycle_not_skipped_when_policy_may_preempt():
    # Cluster full with T; I arrives at 250. Without preemption the cycle is skipped.
    class NoPreempt(Preempter):
        may_preempt = False

        def plan(self, snap, now):
            self.calls.append(now)
            return Plan(self.name, now, starts=tuple(
                Placement(j.job_id, ("n1",), (2,)) for j in snap.pending
                if not snap.gpus_alloc.any()))

    _, res, policy = _run([TRAIN, INFER], policy=NoPreempt())
    assert 250 not in policy.calls and res.cycles_skipped >= 1
    _, res, policy = _run([TRAIN, INFER], policy=Preempter())
    assert 250 in policy.calls


@pytest.mark.parametrize("interval, calls", [
    (0, [0, 250, 310]),  # SLA deadline 250 + 60 polled exactly
    (30, [0, 250, 280, 310]),  # every interval too, up to the deadline
])
def test_pending_inference_polled_until_its_sla_deadline(interval, calls):
    policy = Preempter(after=60)
    rec, res, _ = _run([TRAIN, INFER], policy=policy, interval=interval)
    assert policy.calls[:len(calls)] == calls
    assert rec.loc["I", "start_time"] == 310  # waited exactly its SLA: attained
    assert res.preempt_cycles == len(calls) - 2


def test_no_polling_without_preemption():
    policy = Preempter(after=60)
    _, _, _ = _run([TRAIN, INFER], policy=policy, may_preempt=False, skip_full=False)
    # no change between 250 and T's end at 1000: the policy is not asked in between
    assert [t for t in policy.calls if 250 < t < 1000] == []


def test_cpus_allocated_per_node_per_job():
    inv = _inv(n=2, gpus=2, cpus=4)
    rows = [("A", 0, 100, 1, 200, "training"), ("B", 0, 50, 1, 200, "training"),
            ("C", 10, 100, 4, 200, "training"), ("D", 150, 10, 1, 200, "training")]
    policy = Preempter()
    _run(rows, inv=inv, policy=policy, cpus_per_task=2, skip_full=False)
    at = {t: s for t, s in zip(policy.calls, policy.snapshots, strict=True)}
    # A and B both on n1 at 0 (first fit): 2 CPUs each at the cycle at 10
    assert list(at[10].cpus_alloc) == [4, 0]
    # B ended at 50: its CPUs came back
    assert list(at[50].cpus_alloc) == [2, 0]
    # C (2 nodes x 2 GPUs) starts at 100 when A ends: 2 CPUs on each node
    assert list(at[100].cpus_alloc) == [0, 0] and list(at[150].cpus_alloc) == [2, 2]
    # 4 CPUs >= 2 GPUs x 2 CPUs on every node: no CPU check can fail, jobs say 0
    assert {j.cpus_per_node for j in at[10].pending} == {0}


def test_job_cpus_told_to_policy_when_they_can_bind():
    inv = _inv(n=1, gpus=2, cpus=3)
    rows = [("A", 0, 100, 1, 200, "training"), ("B", 0, 100, 1, 200, "training")]
    policy = Preempter()
    _run(rows, inv=inv, policy=policy, cpus_per_task=2)
    assert {j.cpus_per_node for j in policy.snapshots[0].pending} == {2}


def test_trace_cpus_override_default_and_unfit_jobs_dropped():
    inv = _inv(n=1, gpus=2, cpus=8)
    rows = [("A", 0, 100, 1, 200, "inference"), ("B", 0, 100, 1, 200, "inference")]
    wl = _workload(rows, inv, cpus_per_node=[6, 9])
    assert list(wl.table["job_id"]) == ["A"] and "dropped 1" in wl.notes[0]
    policy = Preempter()
    _run(rows[:1], inv=inv, policy=policy, workload_extra={"cpus_per_node": [6]})
    assert policy.snapshots[0].pending[0].cpus_per_node == 6  # 6 x 2 GPUs > 8 CPUs: binds


def test_service_and_cap_reach_the_job():
    rows = [("A", 0, 100, 1, 200, "inference")]
    policy = Preempter()
    _run(rows, policy=policy, workload_extra={"service": ["app_7"], "max_per_node": [2]})
    job = policy.snapshots[0].pending[0]
    assert (job.service, job.max_per_node) == ("app_7", 2)
    _run(rows, policy=policy, workload_extra={"service": ["app_7"], "max_per_node": [-1]})
    assert policy.snapshots[-1].pending[0].max_per_node is None


def test_settings_validated():
    with pytest.raises(InputError, match="requeue_delay"):
        SimSettings(requeue_delay=-1)
    with pytest.raises(InputError, match="cpus_per_task"):
        SimSettings(cpus_per_task=-1)


def test_preemption_without_start_is_followed_by_a_cycle():
    # Slurm starts a preemptor only in a later pass: a plan that preempts and starts nothing
    class Later(Preempter):
        def plan(self, snap, now):
            plan = super().plan(snap, now)
            if plan.preemptions:
                return dataclasses.replace(plan, starts=())
            return plan

    policy = Later()
    rec, _, _ = _run([TRAIN, INFER], policy=policy, interval=30)
    assert policy.calls[:3] == [0, 250, 280]  # the requeue is a change: a cycle 30 s later
    assert rec.loc["I", "start_time"] == 280
    assert rec.loc["T", "last_start_time"] == 330  # after I's 50 s
