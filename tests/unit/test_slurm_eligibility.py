"""Jobs Slurm would not start (issue 16): read from Slurm's own word, kept out of every plan,
never pinned or lifted, and what kant set on one before Slurm held it is taken back.

The squeue JSON here is written by hand in the v0.0.42 shape (a parser test); the real cluster
test is tests/integration/test_held_jobs.py.
"""

from __future__ import annotations

import dataclasses

import pytest

from kant_slurm.config import load_config
from kant_slurm.engine.render import format_explain, format_plan
from kant_slurm.model import Inventory, Partition
from kant_slurm.slurm import diff
from kant_slurm.formats import slurm_jobs, slurm_nodes, snapshot
from kant_slurm.slurm.state import PIN, SITE_FACTOR, SteerState
from kant_slurm.steer import live_plan

NOW = 1_800_000_000.0


@pytest.mark.parametrize("reason, held, eligible, expected", [
    ("Priority", False, NOW - 60, None),
    ("Resources", False, NOW - 60, None),
    ("None", False, NOW - 1, None),  # not looked at yet: Slurm will try it
    ("", False, NOW - 1, None),
    ("JobHeldUser", True, 0, "JobHeldUser"),
    ("JobHeldAdmin", True, 0, "JobHeldAdmin"),
    ("Priority", True, NOW, "JobHeldUser"),  # v0.0.42's hold flag wins over a stale reason
    ("Dependency", False, 0, "Dependency"),
    ("DependencyNeverSatisfied", False, 0, "DependencyNeverSatisfied"),
    ("BeginTime", False, NOW + 3600, "BeginTime"),
    ("AssocGrpGRES", False, NOW, "AssocGrpGRES"),
    ("AssocMaxJobsLimit", False, NOW, "AssocMaxJobsLimit"),
    ("QOSGrpGRES", False, NOW, "QOSGrpGRES"),
    ("QOSMaxGRESPerUser", False, NOW, "QOSMaxGRESPerUser"),
    ("PartitionDown", False, NOW, "PartitionDown"),
    ("PartitionInactive", False, NOW, "PartitionInactive"),
    ("ReqNodeNotAvail, UnavailableNodes:gn01", False, NOW,
     "ReqNodeNotAvail, UnavailableNodes:gn01"),
    ("Reservation", False, NOW, "Reservation"),
    ("Licenses", False, NOW, "Licenses"),
    ("JobArrayTaskLimit", False, 0, "JobArrayTaskLimit"),
    ("SomeFutureReason", False, NOW, "SomeFutureReason"),  # unknown: left to Slurm
    ("Priority", False, 0, "EligibleTimeUnknown"),  # 0 is "not known yet", never "now"
    ("Priority", False, None, "EligibleTimeUnknown"),
])
def test_slurm_block(reason, held, eligible, expected):
    assert slurm_jobs.slurm_block(reason, held, eligible) == expected


@pytest.mark.parametrize("text, expected", [
    ("1-3", [1, 2, 3]),
    ("1-5%1", [1, 2, 3, 4, 5]),
    ("4,6,8-10", [4, 6, 8, 9, 10]),
    ("0-9:3", [0, 3, 6, 9]),
    ("7", [7]),
    ("3-1", None),
    ("1-4:0", None),
    ("[1-3]", None),
    ("a-b", None),
])
def test_array_tasks(text, expected):
    assert slurm_jobs.array_tasks(text) == expected


def _num(n):
    return {"set": True, "infinite": False, "number": n}


def _job(job_id, state, reason, *, hold=False, eligible=NOW - 60, nodes="", gpus=2,
         array_job=0, array_task=None, tasks="", max_tasks=0, priority=1000):
    return {
        "job_id": job_id, "job_state": [state], "state_reason": reason, "hold": hold,
        "eligible_time": _num(eligible), "submit_time": _num(NOW - 120),
        "start_time": _num(NOW - 30 if state == "RUNNING" else 0), "time_limit": _num(30),
        "node_count": _num(1), "tres_per_node": f"gres/gpu:{gpus}", "nodes": nodes,
        "partition": "gpu", "priority": _num(priority), "cpus": _num(1), "shared": [],
        "array_job_id": _num(array_job),
        "array_task_id": {"set": array_task is not None, "infinite": False,
                          "number": array_task or 0},
        "array_task_string": tasks, "array_max_tasks": _num(max_tasks),
    }


SQUEUE = {"jobs": [
    _job(1, "RUNNING", "None", nodes="gn01"),
    _job(2, "PENDING", "Resources", gpus=8),
    _job(3, "PENDING", "JobHeldUser", hold=True, eligible=0, priority=0),
    _job(4, "PENDING", "Dependency", eligible=0),
    _job(5, "PENDING", "BeginTime", eligible=NOW + 7200),
    _job(6, "PENDING", "QOSGrpGRES"),
    # A throttled array 7 (%2): task 0 runs, tasks 1-4 pending; one more may run.
    _job(8, "RUNNING", "None", nodes="gn02", array_job=7, array_task=0, max_tasks=2),
    _job(7, "PENDING", "Priority", array_job=7, tasks="1-4%2", max_tasks=2),
    # A plain pending array: every task counts, in jobs and GPUs.
    _job(9, "PENDING", "Priority", array_job=9, tasks="0-2", gpus=1),
]}


def _snapshot():
    nodes = [slurm_nodes.NodeRecord(name=f"gn0{i}", state="IDLE", schedulable=True, gpus_total=8,
                              gpus_alloc=2 if i in (1, 2) else 0, gpu_type="h100", cpus_total=64,
                              cpus_alloc=1 if i in (1, 2) else 0, memory_mb=0, memory_alloc_mb=0,
                              features=(), partitions=("gpu",), weight=1) for i in range(1, 5)]
    names = tuple(n.name for n in nodes)
    return snapshot.build_snapshot(nodes, [Partition("gpu", names, default=True)],
                                Inventory.build(names, [8] * 4).topology,
                                slurm_jobs.parse_jobs_json(SQUEUE), taken_at=NOW)


def test_parse_reads_slurms_reason_and_expands_arrays():
    jobs = {j.job_id: j for j in slurm_jobs.parse_jobs_json(SQUEUE)}
    assert {k: j.slurm_blocked for k, j in jobs.items() if j.is_pending} == {
        "2": None, "3": "JobHeldUser", "4": "Dependency", "5": "BeginTime", "6": "QOSGrpGRES",
        "7_1": None, "7_2": "JobArrayTaskLimit", "7_3": "JobArrayTaskLimit",
        "7_4": "JobArrayTaskLimit", "9_0": None, "9_1": None, "9_2": None}
    assert jobs["4"].eligible_time is None  # 0: not known, not "since submit"
    assert jobs["7_0"].is_running and jobs["9_2"].gpus == 1


def test_snapshot_keeps_blocked_jobs_apart_and_counts_array_tasks():
    snap = _snapshot()
    assert [j.job_id for j in snap.pending] == ["2", "7_1", "9_0", "9_1", "9_2"]
    assert [j.job_id for j in snap.held] == ["3", "4", "5", "6", "7_2", "7_3", "7_4"]
    assert len(snap.queued) == 12 and sum(j.gpus for j in snap.queued) == 8 + 2 * 8 + 3
    # The what-if of `plan --release-held` frees user/admin holds only.
    released = snap.released()
    assert "3" in {j.job_id for j in released.pending} and len(released.held) == 6
    assert snap.released(["4"]) is snap  # a dependency is no hold to release


@pytest.mark.parametrize("policy", ["kant", "slurm", "fifo"])
def test_blocked_jobs_get_no_start_reservation_order_or_pin(policy):
    snap = _snapshot()
    config = load_config()
    plan = live_plan(config, snap, NOW, policy=policy)
    blocked = {j.job_id for j in snap.held}
    assert plan.held == {j.job_id: j.slurm_blocked for j in snap.held}
    planned = ({e.job_id for e in plan.order} | {p.job_id for p in plan.starts}
               | {r.job_id for r in plan.reservations})
    assert planned and not planned & blocked
    assert {p.job_id for p in plan.starts} >= {"7_1", "9_0"}  # room for the startable ones
    settings = diff.ActuatorSettings.from_config(config)
    desired = diff.desired_from_plan(plan, snap, dataclasses.replace(settings, pin_jobs="all"))
    assert not (set(desired.pins) | set(desired.site_factors)) & blocked
    # Slurm's reason is what --explain and the table print.
    assert "Slurm's reason: Dependency" in format_explain(plan, "4")
    assert "  7_3          JobArrayTaskLimit" in format_plan(plan)
    assert plan.to_dict()["held"]["6"] == "QOSGrpGRES"


def test_kants_change_on_a_job_slurm_now_holds_is_taken_back():
    snap = _snapshot()
    state = SteerState()
    # kant pinned job 3 and lifted it in an earlier cycle, before the user held it.
    state.put(PIN, "3", (), ("gn02", "gn03", "gn04"))
    state.put(SITE_FACTOR, "3", 0, 500_000)
    view = diff.view_from_snapshot(snap, {"2": 0})
    view.pins["3"] = ("gn02", "gn03", "gn04")
    config = load_config()
    plan = live_plan(config, snap, NOW)
    d = diff.diff(diff.desired_from_plan(plan, snap, diff.ActuatorSettings.from_config(config)),
                 view, state)
    assert [(c.kind, c.target, c.action) for c in d.changes if c.target == "3"] == \
        [("pin", "3", "restore")]
    # Held jobs are not in sprio (priority 0): their SiteFactor is unknown, so it is neither
    # set nor forgotten until Slurm shows it again.
    assert "3" in state.marks[SITE_FACTOR] and (SITE_FACTOR, "3") not in d.forget


# -- One live plan for `plan`, `schedule` and `daemon` ---------------------------------------


def test_schedule_and_daemon_plan_what_plan_shows_history_estimates_included(tmp_path,
                                                                            monkeypatch):
    from kant_slurm.engine.estimate import HistoryEstimator, history_key
    from kant_slurm.steer import HistorySource, run_cycle

    reads = []

    def fake_read(config, now):  # sacct stands here: two weeks of jobs of user "" say 40 s
        reads.append(now)
        return HistoryEstimator({history_key("", "", ""): 40.0})

    monkeypatch.setattr(HistorySource, "_read", staticmethod(fake_read))
    config = load_config()
    config = dataclasses.replace(config, estimator=dataclasses.replace(config.estimator,
                                                                       history=True))
    snap = _snapshot()
    shown = live_plan(config, snap, NOW)  # what `kant-slurm plan` computes
    assert {p.estimate_source for p in shown.starts} == {"history"}
    history = HistorySource(refresh=600)
    for _cycle in range(2):  # the daemon: one HistorySource across cycles
        report = run_cycle(config, tmp_path / "state.json", dry_run=True,
                           read=lambda: (snap, {}), history=history)
        assert report.ok and report.held == len(snap.held)
        assert report.plan.to_dict() == shown.to_dict()
    # plan read sacct once; the daemon's two cycles read it once (within the refresh time).
    assert len(reads) == 2
