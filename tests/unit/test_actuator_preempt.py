"""The actuator's preemption side (issue 8): which signals and requeues a cycle runs, the
records in the state file, and the fault cases (victim gone, not requeueable, slurmctld down,
a crash between the record and the signal). Hand-made plans and snapshots; a stand-in
scontrol. Expected commands and records are written out by hand."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from kant_slurm.engine.plan import Placement, Plan, Preemption
from kant_slurm.errors import SlurmError, SlurmUnreachable
from kant_slurm.model import ClusterSnapshot, Inventory, Job, Partition, Topology
from kant_slurm.slurm import actuator as act
from kant_slurm.slurm import diff
from kant_slurm.slurm import preemption
from kant_slurm.slurm.state import (REQUEUED, SIGNALLED, SIGNALLING, PreemptRecord, SteerState,
                                    StateCorrupt, load_state, state_from_dict)

S = diff.ActuatorSettings(tier_base=1, tier_step=10, site_factor_scale=1000, class_levels=4,
                         max_changes=0, preempt_grace=60.0, max_preemptions=2)
NAMES = ["gn01", "gn02", "gn03", "gn04"]


def snapshot(jobs):
    topo = Topology.from_links({"leaf1": NAMES[:2], "leaf2": NAMES[2:]}, node_order=NAMES)
    inv = Inventory.build(NAMES, [8] * 4, [64] * 4,
                          partitions=[Partition("gpu", tuple(NAMES), default=True)],
                          topology=topo, config_weight=[1] * 4)
    return ClusterSnapshot.idle(inv, jobs)


def train(job_id, node, start=1000.0):
    return Job(job_id, "RUNNING", 1, 8, 0.0, nodes=(node,), node_gpus=(8,), start_time=start,
               job_class="training", preemptible=True)


def infer(job_id="9", submit=1100.0):
    return Job(job_id, "PENDING", 1, 8, submit, job_class="inference", sla=60.0)


def pre(victim, node, for_job="9", lost=7200.0):
    return Preemption(victim, for_job, (node,), (8,), lost, "least checkpoint loss")


FULL = [train("1", "gn01"), train("2", "gn02"), train("3", "gn03"), train("4", "gn04"), infer()]


def rec(for_job="9", start=1000.0, status=SIGNALLED, at=1150.0, node="gn02"):
    return PreemptRecord(for_job=for_job, start_time=start, nodes=(node,), status=status,
                         signalled_at=at)


# -- the pure step list -----------------------------------------------------------------------

def test_new_victim_gets_the_checkpoint_signal_on_its_batch_shell():
    d = preemption.preemption_steps([pre("2", "gn02")], snapshot(FULL), {}, 1150.0, S)
    assert [s.command() for s in d.steps] == ["scancel --signal=USR1 --batch 2"]
    step = d.steps[0]
    assert (step.for_job, step.start_time, step.nodes) == ("9", 1000.0, ("gn02",))
    # 7200 GPU-seconds = 2.00 GPU-hours
    assert "preempt for job 9 on gn02" in step.reason and "~2.00 GPU-h" in step.reason
    assert d.forget == [] and d.deferred == []


@pytest.mark.parametrize("now, status, want, forget", [
    (1170.0, SIGNALLED, [], []),  # 20 s of 60 s grace: wait
    (1210.0, SIGNALLED, ["scontrol requeue 2"], []),  # 60 s: grace over, still running
    (1300.0, REQUEUED, [], []),  # requeued, still on its node (completing): wait
    (1151.0, SIGNALLING, ["scancel --signal=USR1 --batch 2"], []),  # unknown outcome: again
])
def test_recorded_victim_still_on_its_nodes(now, status, want, forget):
    d = preemption.preemption_steps([pre("2", "gn02")], snapshot(FULL), {"2": rec(status=status)},
                             now, S)
    assert [s.command() for s in d.steps] == want and d.forget == forget


@pytest.mark.parametrize("victim_now, how", [
    (Job("2", "PENDING", 1, 8, 0.0, job_class="training"), "is pending again"),
    (train("2", "gn02", start=1290.0), "runs a later run"),  # requeued and restarted
])
def test_victim_that_left_its_nodes_is_forgotten_never_requeued(victim_now, how):
    jobs = [j for j in FULL if j.job_id != "2"] + ([victim_now] if victim_now else [])
    d = preemption.preemption_steps([], snapshot(jobs), {"2": rec()}, 1300.0, S)
    assert d.steps == [] and d.forget == ["2"]
    assert how in d.notes[0] and "150s after the signal" in d.notes[0]


def test_victim_that_ended_after_the_signal_is_requeued_at_once():
    # Neither running nor pending: its batch shell may have died of the signal (no trap).
    jobs = [j for j in FULL if j.job_id != "2"]
    d = preemption.preemption_steps([], snapshot(jobs), {"2": rec()}, 1155.0, S)
    assert [s.command() for s in d.steps] == ["scontrol requeue 2"] and d.forget == []
    assert "ended after the signal" in d.steps[0].reason


def test_grace_over_but_the_preempting_job_no_longer_waits_is_not_requeued():
    jobs = [j for j in FULL if j.job_id != "9"]  # job 9 was cancelled
    d = preemption.preemption_steps([], snapshot(jobs), {"2": rec()}, 1300.0, S)
    assert d.steps == [] and d.forget == ["2"] and "no longer waits" in d.notes[0]


@pytest.mark.parametrize("planned, starts, requeued", [
    ([], {"9": ("gn04",)}, False),  # job 9 now starts on gn04 without victim 2: spared
    ([], {"9": ("gn02",)}, True),  # still on victim 2's node
    ([pre("2", "gn02")], {"9": ("gn04",)}, True),  # the plan still wants victim 2
    ([], {}, True),  # no start planned for 9: the requeue goes on
])
def test_grace_over_victim_spared_when_the_plan_no_longer_needs_it(planned, starts, requeued):
    d = preemption.preemption_steps(planned, snapshot(FULL), {"2": rec()}, 1250.0, S, starts=starts)
    assert ([s.command() for s in d.steps] == ["scontrol requeue 2"]) is requeued
    assert (d.forget == ["2"]) is not requeued


def test_no_new_victims_for_a_job_whose_victims_are_still_leaving():
    # The plan now names victim 3 for the same job 9 while 2 is in its grace time.
    d = preemption.preemption_steps([pre("2", "gn02"), pre("3", "gn03")], snapshot(FULL),
                             {"2": rec()}, 1170.0, S)
    assert d.steps == [] and any("earlier victims" in n for n in d.notes)


def test_bound_on_new_victims_per_cycle_and_skip_of_a_victim_not_running():
    jobs = FULL + [infer("10"), infer("11")]
    plan = [pre("1", "gn01", "9"), pre("2", "gn02", "10"), pre("3", "gn03", "11"),
            pre("7", "gn04", "11")]
    d = preemption.preemption_steps(plan, snapshot(jobs), {}, 1150.0, S)
    assert [s.job_id for s in d.steps] == ["1", "2"]  # max_preemptions = 2
    assert [s.job_id for s in d.deferred] == ["3"]
    assert any("victim 7" in n and "not running" in n for n in d.notes)


def test_preempting_job_is_pinned_even_when_single_node_pins_are_off():
    plan = Plan(policy="kant", now=1150.0, starts=(Placement("9", ("gn02",), (8,)),),
                preemptions=(pre("2", "gn02"),))
    import dataclasses
    d = diff.desired_from_plan(plan, snapshot(FULL), dataclasses.replace(S, pin_jobs="multi-node"))
    assert d.pins == {"9": ("gn01", "gn03", "gn04")}


# -- applying: records and faults ---------------------------------------------------------------

def scontrol_line(job_id, state="RUNNING", start=1000.0, requeue=1):
    started = datetime.fromtimestamp(start).isoformat(timespec="seconds")
    return (f"JobId={job_id} JobName=train UserId=root(0) JobState={state} Reason=None "
            f"Requeue={requeue} Restarts=0 BatchFlag=1 StartTime={started} EndTime=Unknown "
            f"NodeList=gn02\n")


class FakeSlurm:
    """scontrol/scancel stand-in: records commands; ``show`` answers from ``jobs``."""

    def __init__(self, jobs=None, fail=None):
        self.jobs = jobs or {}
        self.fail = fail or {}
        self.ran: list[str] = []

    def __call__(self, argv):
        cmd = " ".join(argv)
        self.ran.append(cmd)
        for prefix, exc in self.fail.items():
            if cmd.startswith(prefix):
                raise exc
        if argv[:3] == ["scontrol", "show", "job"]:
            if argv[-1] not in self.jobs:
                raise SlurmError(f"`{cmd}` failed: slurm_load_jobs error: Invalid job id specified")
            return self.jobs[argv[-1]]
        return ""


def test_signal_writes_the_record_ahead_then_marks_it_signalled(tmp_path):
    path = tmp_path / "state.json"
    state = SteerState()
    seen = []

    def runner(argv):
        if argv[0] == "scancel":  # the record is on disk before the signal goes out
            seen.append(load_state(path).preemptions["2"].status)
        return FakeSlurm({"2": scontrol_line("2")})(argv)

    step = preemption.preemption_steps([pre("2", "gn02")], snapshot(FULL), {}, 1150.0, S).steps
    res = act.apply_preemptions(step, state, path, runner, clock=lambda: 1151.0)
    assert seen == [SIGNALLING] and [s.job_id for s in res.applied] == ["2"]
    saved = load_state(path).preemptions["2"]
    assert (saved.status, saved.signalled_at, saved.for_job, saved.start_time, saved.nodes) == \
        (SIGNALLED, 1151.0, "9", 1000.0, ("gn02",))
    # The file keeps it as plain JSON next to the marks.
    assert json.loads(path.read_text())["preemptions"]["2"]["status"] == "signalled"


def test_victim_completing_is_waited_for_not_signalled(tmp_path):
    fake = FakeSlurm({"2": scontrol_line("2", state="COMPLETING")})
    step = preemption.preemption_steps([pre("2", "gn02")], snapshot(FULL), {}, 1150.0, S).steps
    res = act.apply_preemptions(step, SteerState(), tmp_path / "s.json", fake)
    assert res.applied == [] and res.failed == [] and fake.ran == ["scontrol show job -o 2"]


@pytest.mark.parametrize("line, problem", [
    (scontrol_line("2", state="COMPLETED"), "it is COMPLETED"),
    (scontrol_line("2", start=1300.0), "a later run"),
    (scontrol_line("2", requeue=0), "cannot be requeued"),
])
def test_victim_rechecked_before_the_signal(tmp_path, line, problem):
    fake = FakeSlurm({"2": line})
    step = preemption.preemption_steps([pre("2", "gn02")], snapshot(FULL), {}, 1150.0, S).steps
    state = SteerState()
    res = act.apply_preemptions(step, state, tmp_path / "s.json", fake)
    assert res.applied == [] and problem in res.failed[0][1]
    assert not any(c.startswith("scancel") for c in fake.ran) and state.preemptions == {}


def test_victim_gone_between_read_and_apply(tmp_path):
    fake = FakeSlurm({})  # scontrol show job: Invalid job id
    step = preemption.preemption_steps([pre("2", "gn02")], snapshot(FULL), {}, 1150.0, S).steps
    res = act.apply_preemptions(step, SteerState(), tmp_path / "s.json", fake)
    assert res.applied == [] and "no longer knows the job" in res.failed[0][1]
    assert fake.ran == ["scontrol show job -o 2"]


def test_slurmctld_down_keeps_the_record_so_the_next_cycle_signals_again(tmp_path):
    path = tmp_path / "s.json"
    fake = FakeSlurm({"2": scontrol_line("2")},
                     fail={"scancel": SlurmUnreachable("slurmctld does not answer")})
    steps = preemption.preemption_steps([pre("2", "gn02"), pre("3", "gn03")], snapshot(FULL), {},
                                 1150.0, S).steps
    state = SteerState()
    res = act.apply_preemptions(steps, state, path, fake)
    assert res.unreachable and [s.job_id for s in res.not_run] == ["2", "3"]
    kept = load_state(path).preemptions
    assert list(kept) == ["2"] and kept["2"].status == SIGNALLING
    # Next cycle (Slurm back): the unknown signal is sent again, 3 waits (same job 9).
    d = preemption.preemption_steps([pre("2", "gn02"), pre("3", "gn03")], snapshot(FULL), kept,
                             1160.0, S)
    assert [s.command() for s in d.steps] == ["scancel --signal=USR1 --batch 2"]


def test_requeue_after_grace_and_refused_requeue_forgets(tmp_path):
    path = tmp_path / "s.json"
    state = SteerState(preemptions={"2": rec()})
    d = preemption.preemption_steps([], snapshot(FULL), state.preemptions, 1250.0, S)
    running = {"2": scontrol_line("2")}
    res = act.apply_preemptions(d.steps, state, path, FakeSlurm(running), clock=lambda: 1250.0)
    assert [s.command() for s in res.applied] == ["scontrol requeue 2"]
    assert (state.preemptions["2"].status, state.preemptions["2"].requeued_at) == \
        (REQUEUED, 1250.0)
    # A requeue Slurm refuses (the job ended meanwhile): the record goes.
    state2 = SteerState(preemptions={"2": rec()})
    fake = FakeSlurm(running, fail={"scontrol requeue": SlurmError("Job has already finished")})
    res2 = act.apply_preemptions(d.steps, state2, path, fake)
    assert res2.applied == [] and state2.preemptions == {}


def test_state_file_round_trip_and_bad_record():
    state = SteerState(preemptions={"2": rec(status=REQUEUED)})
    state.preemptions["2"].requeued_at = 1250.0
    back = state_from_dict(json.loads(json.dumps(state.to_dict())), "s.json")
    assert back.preemptions == state.preemptions
    bad = state.to_dict()
    bad["preemptions"]["2"]["status"] = "paused"
    with pytest.raises(StateCorrupt, match=r"preemptions\.2\.status = 'paused'"):
        state_from_dict(bad, "s.json")
    # A state file written before issue 8 has no preemptions: still valid.
    old = state.to_dict()
    del old["preemptions"]
    assert state_from_dict(old, "s.json").preemptions == {}


def test_parse_victim_reads_state_start_and_requeue():
    v = preemption.parse_victim(scontrol_line("2", requeue=0), "2")
    assert (v.state, v.start_time, v.requeue) == ("RUNNING", 1000.0, False)
    with pytest.raises(SlurmError, match="no record of job 5"):
        preemption.parse_victim(scontrol_line("2"), "5")


@pytest.mark.parametrize("state_now, exit_code, requeued", [
    ("FAILED", "0:10", True),  # its batch shell died of USR1 (signal 10): requeue it
    ("COMPLETED", "0:0", False),  # it finished its work meanwhile: never run it again
    ("CANCELLED", "0:15", False),  # someone cancelled it: respected
    ("TIMEOUT", "0:1", False),
])
def test_ended_victim_requeued_only_when_it_failed(tmp_path, state_now, exit_code, requeued):
    line = scontrol_line("2", state=state_now).replace("Reason=None",
                                                       f"Reason=None ExitCode={exit_code}")
    fake = FakeSlurm({"2": line})
    jobs = [j for j in FULL if j.job_id != "2"]
    state = SteerState(preemptions={"2": rec()})
    d = preemption.preemption_steps([], snapshot(jobs), state.preemptions, 1155.0, S)
    res = act.apply_preemptions(d.steps, state, tmp_path / "s.json", fake)
    assert ("scontrol requeue 2" in fake.ran) is requeued
    if requeued:
        assert state.preemptions["2"].status == REQUEUED
    else:
        assert state.preemptions == {} and f"it is {state_now}" in res.settled[0][1]
        assert res.failed == []


# -- one steer cycle with the real engine, and reset ---------------------------------------------

def _config():
    from kant_slurm.config import config_from_dict

    return config_from_dict({"preemption": {"enabled": True, "qos": ["training"],
                                            "grace_seconds": 60, "lead_seconds": 45.0},
                             "inference": {"sla": 60.0}}, "test")


def _full_cluster():
    jobs = [dataclass_replace(train(str(i), n, start=1000.0), qos="training",
                              checkpoint_interval=5.0 if i == 2 else 3600.0)
            for i, n in zip(range(1, 5), NAMES, strict=True)]
    jobs.append(infer("9", submit=1100.0))
    snap = snapshot(jobs)
    return dataclass_replace(snap, taken_at=1130.0)  # job 9 waited 30 s of its 60 s SLA


def dataclass_replace(obj, **kw):
    import dataclasses

    return dataclasses.replace(obj, **kw)


def test_dry_run_cycle_prints_the_signal_for_the_engines_victim(tmp_path):
    from kant_slurm.steer import run_cycle

    snap = _full_cluster()
    report = run_cycle(_config(), tmp_path / "s.json", dry_run=True, read=lambda: (snap, {}),
                       runner=FakeSlurm(), clock=lambda: 1130.0)
    assert report.ok and not (tmp_path / "s.json").exists()
    # Job 2 checkpoints every 5 s: 130 s into its run it lost 0 s; the others 130 s x 8 GPUs.
    assert [s.command() for s in report.preemptions] == ["scancel --signal=USR1 --batch 2"]
    assert report.to_dict()["commands"][0] == "scancel --signal=USR1 --batch 2"
    assert "preempt_signal=1" in report.summary()
    # The preempting job is pinned to the victim's node.
    assert [(c.kind, c.target, c.value) for c in report.changes if c.kind == "pin"] == \
        [("pin", "9", ("gn01", "gn03", "gn04"))]


def test_applied_cycle_records_the_victim_and_reset_forgets_it(tmp_path, monkeypatch):
    from kant_slurm import steer

    snap = _full_cluster()
    fake = FakeSlurm({"2": scontrol_line("2")})
    path = tmp_path / "s.json"
    report = steer.run_cycle(_config(), path, read=lambda: (snap, {}), runner=fake,
                             clock=lambda: 1131.0)
    assert report.ok and [s.job_id for s in report.preempted] == ["2"]
    assert fake.ran[:2] == ["scontrol show job -o 2", "scancel --signal=USR1 --batch 2"]
    assert load_state(path).preemptions["2"].status == SIGNALLED
    # A second cycle within the grace time sends nothing again.
    again = steer.run_cycle(_config(), path, read=lambda: (snap, {}), runner=fake,
                            clock=lambda: 1140.0)
    assert again.preempted == [] and any("checkpointing for job 9" in n for n in again.notes)
    # Reset: the record is forgotten (a signal cannot be taken back), no command for it.
    view = diff.view_from_snapshot(snap, {})
    monkeypatch.setattr(steer, "_read_view", lambda config: view)
    monkeypatch.setattr(act, "config_weights", lambda path=None: dict(view.weights))
    fake.ran.clear()
    rep = steer.reset(_config(), path, runner=fake)
    assert not any("scancel" in c or "requeue" in c for c in fake.ran)
    assert any("victim 2" in n and "forgotten, not undone" in n for n in rep.notes)
    assert load_state(path).preemptions == {}
