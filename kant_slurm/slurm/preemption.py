"""Preemption steps: the victims kant's engine chose (``Plan.preemptions``), diffed against
the state file's records and what Slurm shows of each victim. Pure:
:func:`kant_slurm.slurm.actuator.apply_preemptions` runs the steps.

Preemption (issue 8, site-config/PREEMPTION.md): kant's engine chooses the victims
(``Plan.preemptions``); the actuator carries them out in two steps, each an action rather than
a setting to diff and restore. First ``scancel --signal=USR1 --batch <victim>``: the training
template's batch shell traps it, checkpoints the step and requeues the job itself. Then, on a
later cycle, ``scontrol requeue <victim>`` if that run still holds its nodes once the grace
time is over. Each victim has a :class:`~kant_slurm.slurm.state.PreemptRecord` in the state
file, keyed by the run's start time, written before its command runs, so a cycle cut short
neither signals a run twice nor requeues a later run. :func:`preemption_steps` is the pure
part, :func:`kant_slurm.slurm.actuator.apply_preemptions` runs the steps before the other
changes (the preempting job's pin then waits for the freed nodes). ``reset`` forgets the
records: a signal or a requeue cannot be undone.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import SlurmError
from ..formats.slurm_values import parse_timestamp, scontrol_records
from ..hostlist import compress
from ..model import ClusterSnapshot
from .diff import ActuatorSettings, target_key
from .state import REQUEUED, SIGNALLING, PreemptRecord

# ------------------------------------------------------------------------------------------
# Preemption: signal the victims kant's engine chose, requeue them after the grace time
# ------------------------------------------------------------------------------------------

SIGNAL, REQUEUE = "signal", "requeue"
SIGNAL_NAMES = ("USR1", "USR2", "TERM", "INT", "CONT")


@dataclass(frozen=True)
class PreemptStep:
    """One preemption command: the checkpoint signal to a victim's batch shell, or its requeue."""

    action: str  # SIGNAL or REQUEUE
    job_id: str  # the victim
    for_job: str  # the pending job it makes room for
    start_time: float  # the victim's run this step is for
    nodes: tuple[str, ...] = ()
    signal: str = "USR1"
    lost_gpu_seconds: float = 0.0
    reason: str = ""

    def argv(self) -> list[str]:
        """The command as an argument list (no shell)."""
        if self.action == SIGNAL:
            # --batch: only the batch shell gets it (it traps it and checkpoints the step);
            # with --full the training step would get USR1 too, which kills an untrapped one.
            return ["scancel", f"--signal={self.signal}", "--batch", self.job_id]
        return ["scontrol", "requeue", self.job_id]

    def command(self) -> str:
        return shlex.join(self.argv())

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "job_id": self.job_id,
            "for_job": self.for_job,
            "start_time": self.start_time,
            "nodes": list(self.nodes),
            "signal": self.signal,
            "lost_gpu_seconds": self.lost_gpu_seconds,
            "reason": self.reason,
            "command": self.command(),
        }


@dataclass
class PreemptDiff:
    """The outcome of :func:`preemption_steps`."""

    steps: list[PreemptStep] = field(default_factory=list)
    deferred: list[PreemptStep] = field(default_factory=list)  # over max_preemptions
    forget: list[str] = field(default_factory=list)  # victims whose record is done
    notes: list[str] = field(default_factory=list)


def _same_run(job, start_time: float) -> bool:
    # squeue's JSON gives whole seconds; a requeued and restarted run starts later.
    return job.start_time is not None and abs(float(job.start_time) - start_time) < 1.0


def preemption_steps(
    preemptions: Sequence[Any],
    snapshot: ClusterSnapshot,
    records: Mapping[str, PreemptRecord],
    now: float,
    settings: ActuatorSettings,
    starts: Mapping[str, Sequence[str]] | None = None,
) -> PreemptDiff:
    """The preemption commands of this cycle. Pure.

    Records first (victims signalled earlier): a victim that is pending again (it requeued
    itself, as the template does) or runs a later run is done and forgotten; one that is
    neither running nor pending ended after the signal (a batch shell that does not trap the
    signal dies of it) and is requeued at once, unless :func:`apply_preemptions` finds it
    COMPLETED or CANCELLED; one still running after the grace time is requeued, unless the job
    it made room for no longer waits (then it is left to run: the signal cannot be taken
    back, the requeue can be spared), or the plan now starts that job on other nodes without
    this victim (``starts``: job id -> nodes of the plan's starts); a signal whose outcome a
    crash left unknown is sent again (the template ignores repeats).
    Then the plan's new victims: each running one gets the checkpoint signal, at most
    ``settings.max_preemptions`` per cycle; none for a pending job that already has victims
    in progress (kant waits for them to leave before it takes more).
    """
    out = PreemptDiff()
    running = {j.job_id: j for j in snapshot.running}
    pending = {j.job_id for j in snapshot.queued}  # a requeued victim may be held
    startable = {j.job_id for j in snapshot.pending}  # no victim is requeued for a held job
    busy_for: set[str] = set()
    planned_victims = {p.job_id for p in preemptions}
    starts = starts or {}
    for victim, rec in sorted(records.items(), key=lambda kv: target_key(kv[0])):
        job = running.get(victim)
        step = PreemptStep(
            REQUEUE,
            victim,
            rec.for_job,
            rec.start_time,
            rec.nodes,
            rec.signal,
            rec.lost_gpu_seconds,
        )
        if (
            victim in pending
            or (job is not None and not _same_run(job, rec.start_time))
            or (job is None and rec.status == REQUEUED)
        ):
            out.forget.append(victim)
            how = (
                "is pending again"
                if victim in pending
                else ("runs a later run" if job is not None else "was requeued")
            )
            out.notes.append(
                f"victim {victim} left its nodes ({how}) "
                f"{max(0.0, now - rec.signalled_at):.0f}s after the signal"
            )
            continue
        if job is None:
            out.steps.append(
                replace(
                    step,
                    reason=(
                        f"preempt for job {rec.for_job}: it ended after the signal without "
                        f"requeueing itself; requeued unless it completed or was cancelled"
                    ),
                )
            )
            busy_for.add(rec.for_job)
            continue
        if rec.status == SIGNALLING:
            out.steps.append(
                replace(
                    step,
                    action=SIGNAL,
                    reason=(
                        f"preempt for job {rec.for_job}: the last signal's outcome is unknown, "
                        f"sent again"
                    ),
                )
            )
            busy_for.add(rec.for_job)
        elif rec.status == REQUEUED:
            out.notes.append(
                f"victim {victim} requeued {now - (rec.requeued_at or now):.0f}s "
                f"ago, still on {compress(rec.nodes)}: waiting for it to end"
            )
            busy_for.add(rec.for_job)
        elif now - rec.signalled_at < settings.preempt_grace:
            out.notes.append(
                f"victim {victim} checkpointing for job {rec.for_job}: "
                f"{now - rec.signalled_at:.0f}s of {settings.preempt_grace:.0f}s "
                f"grace"
            )
            busy_for.add(rec.for_job)
        elif rec.for_job not in startable:
            out.forget.append(victim)
            out.notes.append(
                f"victim {victim}: grace over but job {rec.for_job} no longer "
                f"waits; not requeued (it got the signal)"
            )
        elif (
            victim not in planned_victims
            and rec.for_job in starts
            and not set(starts[rec.for_job]) & set(rec.nodes)
        ):
            out.forget.append(victim)
            out.notes.append(
                f"victim {victim}: grace over but the plan now starts job "
                f"{rec.for_job} on {compress(starts[rec.for_job])} without it; "
                f"not requeued (it got the signal)"
            )
        else:
            out.steps.append(
                replace(
                    step,
                    reason=(
                        f"preempt for job {rec.for_job}: still running "
                        f"{now - rec.signalled_at:.0f}s after the signal "
                        f"(grace {settings.preempt_grace:.0f}s)"
                    ),
                )
            )
            busy_for.add(rec.for_job)
    new = 0
    for p in preemptions:
        if p.job_id in records:
            continue  # in progress (above)
        job = running.get(p.job_id)
        if job is None or job.start_time is None:
            out.notes.append(f"victim {p.job_id} for job {p.for_job} is not running: skipped")
            continue
        if p.for_job in busy_for:
            out.notes.append(
                f"victim {p.job_id} for job {p.for_job} waits: earlier victims of "
                f"that job are still leaving"
            )
            continue
        lost_h = p.lost_gpu_seconds / 3600.0
        step = PreemptStep(
            SIGNAL,
            p.job_id,
            p.for_job,
            float(job.start_time),
            tuple(p.nodes),
            settings.preempt_signal,
            float(p.lost_gpu_seconds),
            f"preempt for job {p.for_job} on {compress(p.nodes)}: checkpoint "
            f"then requeue (~{lost_h:.2f} GPU-h since its last checkpoint)"
            + (f"; {p.why}" if p.why else ""),
        )
        if new >= settings.max_preemptions:
            out.deferred.append(step)
            continue
        out.steps.append(step)
        new += 1
    if out.deferred:
        out.notes.append(
            f"{len(out.deferred)} more victims deferred to the next cycle "
            f"(actuator.max_preemptions = {settings.max_preemptions})"
        )
    return out


@dataclass(frozen=True)
class VictimNow:
    """A victim as ``scontrol show job`` shows it right before a preemption command."""

    state: str  # JobState; "" when slurmctld no longer knows the job
    start_time: float | None
    requeue: bool
    exit_code: str = ""


def parse_victim(text: str, job_id: str) -> VictimNow:
    """``scontrol show job -o <id>`` -> its state, start time, Requeue flag, exit code. Pure."""
    for rec in scontrol_records(text):
        if (
            rec.get("JobId") == job_id
            or rec.get("ArrayJobId")
            and f"{rec.get('ArrayJobId')}_{rec.get('ArrayTaskId')}" == job_id
        ):
            return VictimNow(
                state=(rec.get("JobState") or "").upper(),
                start_time=parse_timestamp(rec.get("StartTime")),
                requeue=rec.get("Requeue", "0") == "1",
                exit_code=rec.get("ExitCode", ""),
            )
    raise SlurmError(f"scontrol show job {job_id}: no record of job {job_id} in the reply")


# Job states in which a victim is still on its way out: wait for the next cycle.
_LEAVING = (
    "COMPLETING",
    "CONFIGURING",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "REQUEUED",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "STOPPED",
    "SUSPENDED",
)
RUN, WAIT, FORGET = "run", "wait", "forget"


def victim_decision(step: PreemptStep, now: VictimNow | None) -> tuple[str, str]:
    """What to do with ``step`` given the victim's fresh state: (RUN | WAIT | FORGET, why). Pure.

    Signal: only the very run the plan saw, still running and requeueable. Requeue: that run
    still running (grace over), or ended FAILED after the signal (a batch shell killed by a
    signal it does not trap); never a job that COMPLETED its work, was CANCELLED by someone, or
    hit its TIMEOUT; a job still completing is waited for.
    """
    if now is None or not now.state:
        return FORGET, "slurmctld no longer knows the job"
    same = now.start_time is not None and abs(now.start_time - step.start_time) < 1.0
    if now.state == "RUNNING":
        if not same:
            return FORGET, "a later run of it holds the nodes now"
        if step.action == SIGNAL and not now.requeue:
            return FORGET, (
                "it cannot be requeued (submitted with --no-requeue, and "
                "JobRequeue=0): not preempted"
            )
        return RUN, ""
    if now.state == "PENDING":
        return FORGET, "it is pending again"
    if now.state in _LEAVING:
        return WAIT, f"it is {now.state}: waiting for it to leave"
    if step.action == REQUEUE and now.state == "FAILED" and same:
        return RUN, ""
    return FORGET, f"it is {now.state} (exit code {now.exit_code or '?'}): left as it is"
