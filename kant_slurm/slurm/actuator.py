"""The actuator: runs the changes :mod:`kant_slurm.slurm.diff` gives and the preemption steps
:mod:`kant_slurm.slurm.preemption` gives, with ``scontrol`` and ``scancel``.

:func:`apply_changes` writes each mark to the state file before its ``scontrol`` runs, so a
cycle cut short (slurmctld gone, a job that vanished, a crash) leaves a record the next cycle
completes or cleans up. :func:`apply_preemptions` likewise writes a victim's record before its
``scancel`` or ``scontrol requeue`` runs, so a cycle cut short neither signals a run twice nor
requeues a later run. It also reads what the snapshot lacks: the pending jobs' SiteFactor
(``sprio``) and the PriorityWeight* of slurm.conf.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, SlurmError, SlurmUnreachable
from ..hostlist import compress, expand
from .diff import Change, Diff
from .preemption import FORGET, SIGNAL, WAIT, PreemptStep, VictimNow, parse_victim, victim_decision
from .state import (
    REQUEUED,
    SIGNALLED,
    SIGNALLING,
    SITE_FACTOR,
    WEIGHT,
    Mark,
    PreemptRecord,
    SteerState,
    save_state,
)

log = logging.getLogger(__name__)


def parse_config_weights(text: str, where: str = "slurm.conf") -> dict[str, int]:
    """Node Weight per node from slurm.conf text (``NodeName=`` lines; Weight defaults to 1,
    ``NodeName=DEFAULT`` sets later lines' default). Pure. Include files are not followed."""
    weights: dict[str, int] = {}
    default = 1
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line.lower().startswith("nodename="):
            continue
        pairs = dict(p.split("=", 1) for p in line.split() if "=" in p)
        pairs = {k.lower(): v for k, v in pairs.items()}
        w = pairs.get("weight")
        if w is not None and not re.fullmatch(r"\d+", w):
            raise InputError(f"{where}:{n}: Weight={w!r}: expected a non-negative integer")
        name = pairs["nodename"]
        if name.upper() == "DEFAULT":
            if w is not None:
                default = int(w)
            continue
        for node in expand(name):
            weights[node] = int(w) if w is not None else default
    return weights


def slurm_conf_path() -> Path:
    """The slurm.conf Slurm's commands use here (SLURM_CONF, else the Debian default)."""
    return Path(os.environ.get("SLURM_CONF") or "/etc/slurm/slurm.conf")


def config_weights(path: str | os.PathLike | None = None) -> dict[str, int]:
    """Node weights as slurm.conf declares them (what `reset` restores without a state)."""
    p = Path(path) if path else slurm_conf_path()
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(
            f"{p}: cannot read slurm.conf for node weights: {exc.strerror or exc}"
        ) from None
    return parse_config_weights(text, str(p))


# ------------------------------------------------------------------------------------------
# Applying
# ------------------------------------------------------------------------------------------


def run_scontrol(argv: Sequence[str], timeout: float = 20.0) -> str:
    """Run one scontrol command (argument list, no shell)."""
    from .backend import run_slurm

    return run_slurm(argv, timeout=timeout)


@dataclass
class ApplyResult:
    """What :func:`apply_changes` did."""

    applied: list[Change] = field(default_factory=list)
    failed: list[tuple[Change, str]] = field(default_factory=list)  # target gone, refused, ...
    not_run: list[Change] = field(default_factory=list)  # left when slurmctld stopped answering
    unreachable: str | None = None  # the error that stopped the cycle


def edit_marks(state: SteerState, d: Diff) -> None:
    """Apply the diff's bookkeeping edits (no Slurm command) to ``state``."""
    for kind, target in d.forget:
        state.drop(kind, target)
    for kind, target, value in d.adopt:
        mark = state.get(kind, target)
        if mark is not None:
            state.put(kind, target, value, mark.set, at=mark.at, reapplied=mark.reapplied)


def mark_applied(state: SteerState, change: Change, at: float | None = None) -> None:
    """Record that ``change`` is in force: a set is marked (with what to restore), a restore
    unmarked. What :func:`apply_changes` records for each command Slurm accepts."""
    if change.action == "set":
        before = state.get(change.kind, change.target)
        again = (before.reapplied + 1 if before is not None else 1) if change.again else 0
        state.put(change.kind, change.target, change.orig, change.value, at=at, reapplied=again)
    else:
        state.drop(change.kind, change.target)


MAX_GROUP = 100  # targets per grouped command (keeps the command line short)


@dataclass(frozen=True)
class Command:
    """One scontrol command carrying one or more changes: node weights of equal value go in
    one command over a hostlist, SiteFactors of equal value in one over a job list (a few
    commands per cycle instead of one per node or job: each costs a slurmctld RPC, ~0.1 s when
    it is busy)."""

    changes: tuple[Change, ...]

    def argv(self) -> list[str]:
        first = self.changes[0]
        if len(self.changes) == 1:
            return first.argv()
        if first.kind == SITE_FACTOR:
            jobs = ",".join(c.target for c in self.changes)
            return ["scontrol", "update", f"JobId={jobs}", f"SiteFactor={int(first.value)}"]
        nodes = compress([c.target for c in self.changes])
        return ["scontrol", "update", f"NodeName={nodes}", f"Weight={int(first.value)}"]

    def command(self) -> str:
        return shlex.join(self.argv())

    @property
    def reason(self) -> str:
        return self.changes[0].reason


def group_changes(changes: Sequence[Change]) -> list[Command]:
    """Consecutive node-weight (or SiteFactor) changes with the same value and action share one
    command, at most ``MAX_GROUP`` targets each. Pure."""
    out: list[list[Change]] = []
    for ch in changes:
        prev = out[-1][-1] if out else None
        if (
            prev is not None
            and ch.kind in (WEIGHT, SITE_FACTOR)
            and prev.kind == ch.kind
            and ch.value == prev.value
            and ch.action == prev.action
            and ch.again == prev.again
            and len(out[-1]) < MAX_GROUP
        ):
            out[-1].append(ch)
        else:
            out.append([ch])
    return [Command(tuple(g)) for g in out]


def apply_changes(
    changes: Sequence[Change],
    state: SteerState,
    state_path: str | os.PathLike,
    runner: Callable[[Sequence[str]], str] = run_scontrol,
) -> ApplyResult:
    """Run ``changes`` in order (grouped by :func:`group_changes`), keeping ``state`` (and its
    file) true at every step.

    Each mark is written before its command runs (write-ahead); a command Slurm refuses
    (the job started or vanished since the read) takes its marks back, and a refused group of
    nodes is retried node by node so one bad node does not hold back the rest; when slurmctld
    stops answering, the rest is not run and the marks written so far stay: the next cycle
    sees each value as in force or not and completes or cleans up.
    """
    result = ApplyResult()
    queue = list(group_changes(changes))
    done = 0
    while queue:
        cmd = queue.pop(0)
        before = {c.target: state.get(c.kind, c.target) for c in cmd.changes}
        for c in cmd.changes:
            if c.action == "set":
                mark_applied(state, c)
        if any(c.action == "set" for c in cmd.changes):
            save_state(state, state_path)
        try:
            runner(cmd.argv())
        except SlurmUnreachable as exc:
            result.unreachable = str(exc)
            result.not_run = [c for q in [cmd, *queue] for c in q.changes]
            log.error(
                "slurmctld stopped answering after %d of %d changes: %s; the next cycle "
                "finishes or undoes them",
                done,
                len(changes),
                exc,
            )
            break
        except SlurmError as exc:
            if len(cmd.changes) > 1:
                log.info("%s failed (%s); retrying one by one", cmd.command(), exc)
                for c in cmd.changes:
                    _restore_mark(state, c, before[c.target])
                queue[:0] = [Command((c,)) for c in cmd.changes]
                continue
            ch = cmd.changes[0]
            _restore_mark(state, ch, before[ch.target])
            save_state(state, state_path)
            result.failed.append((ch, str(exc)))
            log.warning("%s failed (%s); left as it was", ch.command(), exc)
            continue
        for c in cmd.changes:
            if c.action == "restore":  # a set was marked before its command ran
                mark_applied(state, c)
            result.applied.append(c)
        done += len(cmd.changes)
        log.info("%s  # %s", cmd.command(), cmd.reason)
    save_state(state, state_path)
    return result


def _restore_mark(state: SteerState, ch: Change, before: Mark | None) -> None:
    if before is None:
        state.drop(ch.kind, ch.target)
    else:
        state.marks[ch.kind][ch.target] = before


@dataclass
class PreemptResult:
    """What :func:`apply_preemptions` did."""

    applied: list[PreemptStep] = field(default_factory=list)
    failed: list[tuple[PreemptStep, str]] = field(default_factory=list)  # signals not sent
    # Requeues found needless at the last look (the victim left by itself): no failure.
    settled: list[tuple[PreemptStep, str]] = field(default_factory=list)
    not_run: list[PreemptStep] = field(default_factory=list)
    unreachable: str | None = None


def _show_victim(runner: Callable[[Sequence[str]], str], job_id: str) -> VictimNow | None:
    try:
        return parse_victim(runner(["scontrol", "show", "job", "-o", job_id]), job_id)
    except SlurmUnreachable:
        raise
    except SlurmError:  # Invalid job id: purged from slurmctld's memory (MinJobAge)
        return None


def apply_preemptions(
    steps: Sequence[PreemptStep],
    state: SteerState,
    state_path: str | os.PathLike,
    runner: Callable[[Sequence[str]], str] = run_scontrol,
    clock: Callable[[], float] = time.time,
) -> PreemptResult:
    """Run the preemption steps, keeping the records in ``state`` (and its file) true.

    Each command is preceded by a fresh look at the victim (``scontrol show job``) and run
    only as :func:`victim_decision` says. A signal's record is written as ``signalling``
    before ``scancel`` runs and as ``signalled`` (the grace time starts) after; a requeue marks
    it ``requeued``. A victim left as it is, or a command Slurm refuses (the job ended since
    the look), drops the record; slurmctld not answering stops the rest.
    """
    result = PreemptResult()
    queue = list(steps)
    while queue:
        step = queue.pop(0)
        try:
            verdict, why = victim_decision(step, _show_victim(runner, step.job_id))
            if verdict == WAIT:
                log.info("victim %s for job %s: %s", step.job_id, step.for_job, why)
                continue
            if verdict == FORGET:
                state.preemptions.pop(step.job_id, None)
                save_state(state, state_path)
                if step.action == SIGNAL:
                    result.failed.append((step, why))
                    log.warning(
                        "victim %s for job %s: %s; not signalled", step.job_id, step.for_job, why
                    )
                else:
                    result.settled.append((step, why))
                    log.info(
                        "victim %s for job %s: %s; no requeue needed",
                        step.job_id,
                        step.for_job,
                        why,
                    )
                continue
            rec = state.preemptions.get(step.job_id)
            if step.action == SIGNAL:
                rec = rec or PreemptRecord(
                    for_job=step.for_job,
                    start_time=step.start_time,
                    nodes=step.nodes,
                    signal=step.signal,
                    lost_gpu_seconds=step.lost_gpu_seconds,
                )
                rec.status = SIGNALLING
                rec.signalled_at = clock()
                state.preemptions[step.job_id] = rec
                save_state(state, state_path)  # write-ahead
                runner(step.argv())
                rec.status, rec.signalled_at = SIGNALLED, clock()
            else:
                runner(step.argv())
                if rec is not None:
                    rec.status, rec.requeued_at = REQUEUED, clock()
        except SlurmUnreachable as exc:
            result.unreachable = str(exc)
            result.not_run = [step, *queue]
            log.error(
                "slurmctld stopped answering during preemption: %s; the next cycle "
                "goes on from the records",
                exc,
            )
            break
        except SlurmError as exc:
            state.preemptions.pop(step.job_id, None)
            save_state(state, state_path)
            result.failed.append((step, str(exc)))
            log.warning("%s failed (%s); victim %s forgotten", step.command(), exc, step.job_id)
            continue
        save_state(state, state_path)
        result.applied.append(step)
        log.info("%s  # %s", step.command(), step.reason)
    return result
