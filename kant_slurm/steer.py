"""Steering a live Slurm: one read-plan-apply cycle, the daemon loop around it, and reset.

A cycle reads Slurm (snapshot + SiteFactors), plans with the configured policy, diffs the
plan against kant's marks (the state file) and what Slurm shows, and applies the changes
(:mod:`kant_slurm.slurm.actuator`). A failed read changes nothing. One instance at a time:
``schedule``, ``daemon`` and ``reset`` hold an exclusive ``fcntl.flock`` on the lock file.
"""

from __future__ import annotations

import fcntl
import logging
import logging.handlers
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import KantConfig, load_config
from .engine.classify import make_classifier
from .engine.plan import Plan, with_held
from .engine.policies.slurm import SlurmPolicy, modelled_release
from .engine.registry import get_policy
from .errors import InputError, KantError, SlurmError, SlurmUnreachable
from .slurm import actuator as act
from .slurm import diff
from .slurm import preemption
from .slurm import read_snapshot
from .slurm.backend import slurm_version
from .slurm.state import SteerState, StateCorrupt, load_state, save_state, set_aside

log = logging.getLogger(__name__)


class LockHeld(KantError):
    """Another kant-slurm steering process holds the lock."""

    exit_code = 3


# ------------------------------------------------------------------------------------------
# The live plan: one function for `plan`, `schedule` and `daemon`
# ------------------------------------------------------------------------------------------

DAEMON_INTERVAL_S = 30.0  # `kant-slurm daemon --interval` default (kant-steered's too)
HISTORY_DAYS = 14  # finished jobs read for the history estimator
HISTORY_REFRESH_S = 600.0  # the daemon reads sacct again after this long


class HistorySource:
    """The history estimator of ``estimator.history``, from the last HISTORY_DAYS of sacct.

    Read at the first cycle that needs it and again every ``refresh`` seconds, so that the
    daemon does not read two weeks of accounting every cycle. None (with a warning) when
    accounting cannot be read: estimates then fall back to time limits.
    """

    def __init__(self, refresh: float = HISTORY_REFRESH_S) -> None:
        self.refresh = refresh
        self._read_at: float | None = None
        self._estimator = None

    def get(self, config: KantConfig, now: float):
        if self._read_at is None or now - self._read_at >= self.refresh:
            self._estimator = self._read(config, now)
            self._read_at = now
        return self._estimator

    @staticmethod
    def _read(config: KantConfig, now: float):
        from .engine.estimate import HistoryEstimator
        from .slurm.accounting import read_sacct_chunks

        est = config.estimator
        try:
            table = read_sacct_chunks(now - HISTORY_DAYS * 86400.0, now)
        except KantError as exc:
            log.warning("estimator.history: sacct not readable (%s); using time limits", exc)
            return None
        return HistoryEstimator.from_table(
            table, est.history_min_samples, est.history_quantile, est.history_margin
        )


def live_plan(
    config: KantConfig,
    snapshot,
    now: float,
    *,
    policy: str | None = None,
    history: HistorySource | None = None,
    release: str | None = None,
) -> Plan:
    """The plan of a live snapshot, as ``plan`` shows it and ``schedule``/``daemon`` apply it:
    the policy (``policy`` or the config's) with the history estimator when the config asks
    for it, and the jobs Slurm holds back named with Slurm's reason (issue 16). ``release``:
    the Slurm release that runs, as :func:`modelled_release` names it (read when not given)."""
    engine = get_policy(policy or config.policy, config)
    if isinstance(engine, SlurmPolicy):  # the model follows the release that runs here
        engine.release = release or modelled_release(slurm_version())
    if config.estimator.history:
        engine.with_history((history or HistorySource()).get(config, now))
    return with_held(engine.plan(snapshot, now), snapshot.held)


# ------------------------------------------------------------------------------------------
# The lock
# ------------------------------------------------------------------------------------------


class SteerLock:
    """An exclusive, non-blocking ``fcntl.flock`` on ``path``; the holder's pid is written in.

    The kernel drops the lock when the process dies, so a crash never leaves a stale lock.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> SteerLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise LockHeld(
                f"another kant-slurm steering process (pid {holder}) holds the lock "
                f"{self.path}; stop it first, or give it another --lock-file"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> SteerLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# ------------------------------------------------------------------------------------------
# One cycle
# ------------------------------------------------------------------------------------------


@dataclass
class CycleReport:
    """What one cycle read, planned and changed, and how long each step took."""

    dry_run: bool = False
    policy: str = ""
    ok: bool = True
    error: str | None = None
    read_s: float = 0.0
    plan_s: float = 0.0
    apply_s: float = 0.0
    duration_s: float = 0.0
    running: int = 0
    pending: int = 0  # pending jobs the policy planned
    held: int = 0  # pending jobs Slurm holds back (not planned, not touched)
    starts: int = 0
    plan: Plan | None = field(default=None, repr=False)  # the cycle's plan (not in to_dict)
    changes: list[diff.Change] = field(default_factory=list)  # planned for this cycle
    applied: list[diff.Change] = field(default_factory=list)
    failed: list[tuple[diff.Change, str]] = field(default_factory=list)
    not_run: list[diff.Change] = field(default_factory=list)
    deferred: list[diff.Change] = field(default_factory=list)
    forgotten: int = 0
    notes: list[str] = field(default_factory=list)
    # Preemption (issue 8): signals and requeues of victims, run before the changes above.
    preemptions: list[preemption.PreemptStep] = field(default_factory=list)  # planned this cycle
    preempted: list[preemption.PreemptStep] = field(default_factory=list)  # run
    preempt_failed: list[tuple[preemption.PreemptStep, str]] = field(default_factory=list)
    preempt_not_run: list[preemption.PreemptStep] = field(default_factory=list)
    preempt_deferred: list[preemption.PreemptStep] = field(default_factory=list)

    def preempt_commands(self) -> list[str]:
        """The preemption commands, planned (dry run) or run."""
        return [s.command() for s in (self.preemptions if self.dry_run else self.preempted)]

    def counts(self) -> dict[str, int]:
        by_kind: dict[str, int] = {}
        for ch in self.changes if self.dry_run else self.applied:
            key = f"{ch.kind}_{ch.action}"
            by_kind[key] = by_kind.get(key, 0) + 1
        for step in self.preemptions if self.dry_run else self.preempted:
            key = f"preempt_{step.action}"
            by_kind[key] = by_kind.get(key, 0) + 1
        return by_kind

    def summary(self) -> str:
        """The one log line per cycle: duration and counts."""
        if not self.ok:
            return f"cycle failed after {self.duration_s:.3f}s, nothing changed: {self.error}"
        verb = "would change" if self.dry_run else "changed"
        done = len(self.changes) if self.dry_run else len(self.applied)
        done += len(self.preemptions) if self.dry_run else len(self.preempted)
        kinds = ", ".join(f"{k}={v}" for k, v in sorted(self.counts().items())) or "-"
        return (
            f"cycle {self.duration_s:.3f}s (read {self.read_s:.3f}s, plan {self.plan_s:.3f}s, "
            f"apply {self.apply_s:.3f}s): {self.running} running, {self.pending} pending, "
            f"{self.held} held by Slurm, "
            f"{self.starts} starts planned; {verb} {done} ({kinds}), failed "
            f"{len(self.failed) + len(self.preempt_failed)}, deferred "
            f"{len(self.deferred) + len(self.preempt_deferred)}, not run "
            f"{len(self.not_run) + len(self.preempt_not_run)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "error": self.error,
            "dry_run": self.dry_run,
            "policy": self.policy,
            "duration_s": self.duration_s,
            "read_s": self.read_s,
            "plan_s": self.plan_s,
            "apply_s": self.apply_s,
            "running": self.running,
            "pending": self.pending,
            "held": self.held,
            "starts": self.starts,
            "changes": [c.to_dict() for c in self.changes],
            "commands": self.preempt_commands()
            + [
                cmd.command()
                for cmd in act.group_changes(self.changes if self.dry_run else self.applied)
            ],
            "preemptions": [s.to_dict() for s in self.preemptions],
            "preempted": [s.to_dict() for s in self.preempted],
            "preempt_failed": [s.to_dict() | {"error": e} for s, e in self.preempt_failed],
            "preempt_not_run": [s.to_dict() for s in self.preempt_not_run],
            "preempt_deferred": [s.to_dict() for s in self.preempt_deferred],
            "applied": [c.to_dict() for c in self.applied],
            "failed": [c.to_dict() | {"error": e} for c, e in self.failed],
            "not_run": [c.to_dict() for c in self.not_run],
            "deferred": [c.to_dict() for c in self.deferred],
            "forgotten": self.forgotten,
            "notes": list(self.notes),
        }


def _marks_or_rebuild(
    state_path: Path,
    view: diff.SlurmView,
    settings: diff.ActuatorSettings,
    notes: list[str],
    dry_run: bool,
) -> SteerState:
    """The marks from the state file; rebuilt from Slurm when the file is missing or corrupt."""
    try:
        if state_path.exists():
            return load_state(state_path)
        reason = f"no state file at {state_path}"
    except StateCorrupt as exc:
        reason = f"state file is corrupt ({exc})"
        if not dry_run:
            moved = set_aside(state_path)
            reason += f"; set aside as {moved}"
    try:
        conf = act.config_weights()
    except InputError as exc:
        log.warning(
            "%s; cannot read slurm.conf weights either (%s): starting with no marks", reason, exc
        )
        notes.append(reason)
        return SteerState()
    state = diff.marks_from_slurm(view, conf, settings)
    line = (
        f"{reason}: rebuilt kant's marks from Slurm ({len(state.marks['weight'])} node "
        f"weights differ from slurm.conf, {len(state.marks['site_factor'])} kant-like "
        f"SiteFactors)"
    )
    (log.error if "corrupt" in reason else log.info)(line)
    notes.append(line)
    return state


def run_cycle(
    config: KantConfig,
    state_path: str | os.PathLike,
    *,
    dry_run: bool = False,
    policy: str | None = None,
    read: Callable[[], tuple[Any, dict[str, int]]] | None = None,
    runner: Callable[[Sequence[str]], str] = act.run_scontrol,
    before_apply: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.time,
    history: HistorySource | None = None,
) -> CycleReport:
    """Read Slurm, plan, diff against the marks, apply (unless ``dry_run``). Never raises for
    Slurm trouble: the report says what went wrong and nothing was changed.

    ``read`` and ``runner`` replace the Slurm reads and scontrol (tests); ``before_apply`` is
    called between the read and the apply (fault tests change Slurm there); ``clock`` is the
    wall clock the preemption grace time is measured on; ``history`` keeps the history
    estimator between cycles (the daemon's), else it is read when the config asks for it.

    Preemptions the plan asks for (and requeues whose grace time is over) run first, then the
    other changes: the preempting job's pin to the victims' nodes goes in the same cycle and
    holds it there until they are free.
    """
    t0 = time.monotonic()
    report = CycleReport(dry_run=dry_run, policy=policy or config.policy)
    release = modelled_release(slurm_version())  # the Weights' rule depends on it
    settings = diff.ActuatorSettings.from_config(config, slurm_release=release)
    state_path = Path(state_path)
    try:
        if read is None:
            snapshot = read_snapshot(classify=make_classifier(config))
            site = diff.site_factors_shown(snapshot)
        else:
            snapshot, site = read()
    except SlurmError as exc:
        report.ok, report.error = False, f"read failed: {exc}"
        report.duration_s = time.monotonic() - t0
        return report
    t1 = time.monotonic()
    report.read_s = t1 - t0
    report.running, report.pending = len(snapshot.running), len(snapshot.pending)
    plan = live_plan(
        config,
        snapshot,
        snapshot.taken_at or time.time(),
        policy=report.policy,
        history=history,
        release=release,
    )
    report.plan = plan
    report.starts = len(plan.starts)
    report.held = len(snapshot.held)
    view = diff.view_from_snapshot(snapshot, site, lag_tolerance=settings.site_factor_scale // 2)
    desired = diff.desired_from_plan(plan, snapshot, settings)
    state = _marks_or_rebuild(state_path, view, settings, report.notes, dry_run)
    d = diff.diff(desired, view, state, settings.max_changes)
    pd = preemption.preemption_steps(
        plan.preemptions if settings.max_preemptions else (),
        snapshot,
        state.preemptions,
        clock(),
        settings,
        starts={p.job_id: p.nodes for p in plan.starts},
    )
    t2 = time.monotonic()
    report.plan_s = t2 - t1
    report.changes, report.deferred = d.changes, d.deferred
    report.preemptions, report.preempt_deferred = pd.steps, pd.deferred
    report.forgotten = len(d.forget) + len(pd.forget)
    report.notes.extend(pd.notes + d.notes)
    for note in pd.notes + d.notes:
        log.info("%s", note)
    if dry_run:
        report.duration_s = time.monotonic() - t0
        return report
    if before_apply is not None:
        before_apply()
    act.edit_marks(state, d)
    for victim in pd.forget:
        state.preemptions.pop(victim, None)
    if d.forget or d.adopt or pd.forget or not state_path.exists():
        save_state(state, state_path)
    pres = act.apply_preemptions(pd.steps, state, state_path, runner, clock)
    report.preempted, report.preempt_failed = pres.applied, pres.failed
    report.notes.extend(f"victim {st.job_id}: {why}; no requeue needed" for st, why in pres.settled)
    report.preempt_not_run = pres.not_run
    if pres.unreachable:
        # Nothing more this cycle: slurmctld does not answer.
        report.not_run = list(d.changes)
        report.ok, report.error = False, f"apply stopped: {pres.unreachable}"
        report.apply_s = time.monotonic() - t2
        report.duration_s = time.monotonic() - t0
        return report
    result = act.apply_changes(d.changes, state, state_path, runner)
    if result.applied or pres.applied:
        state.cycle += 1  # saved with last_cycle below
    report.applied, report.failed, report.not_run = result.applied, result.failed, result.not_run
    if result.unreachable:
        report.ok, report.error = False, f"apply stopped: {result.unreachable}"
    report.apply_s = time.monotonic() - t2
    report.duration_s = time.monotonic() - t0
    # Every applying cycle, changes or not, leaves its figures for the exporter.
    state.last_cycle = {
        "duration_s": report.duration_s,
        "applied": len(result.applied) + len(pres.applied),
        "failed": len(result.failed) + len(pres.failed),
        "at": time.time(),
    }
    try:
        save_state(state, state_path)
    except OSError as exc:
        log.warning("could not record the cycle in %s: %s", state_path, exc)
    return report


# ------------------------------------------------------------------------------------------
# Reset
# ------------------------------------------------------------------------------------------


@dataclass
class ResetReport:
    """What reset restored and whether Slurm then showed no kant change."""

    changes: list[diff.Change] = field(default_factory=list)
    applied: list[diff.Change] = field(default_factory=list)
    failed: list[tuple[diff.Change, str]] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # kant changes Slurm still shows
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def clean(self) -> bool:
        return not self.left and not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "dry_run": self.dry_run,
            "changes": [c.to_dict() for c in self.changes],
            "applied": [c.to_dict() for c in self.applied],
            "failed": [c.to_dict() | {"error": e} for c, e in self.failed],
            "left": list(self.left),
            "notes": list(self.notes),
        }


def _read_view(config: KantConfig) -> diff.SlurmView:
    snapshot = read_snapshot(classify=make_classifier(config))
    return diff.view_from_snapshot(snapshot, diff.site_factors_shown(snapshot))


def reset(
    config: KantConfig,
    state_path: str | os.PathLike,
    *,
    dry_run: bool = False,
    runner: Callable[[Sequence[str]], str] = act.run_scontrol,
) -> ResetReport:
    """Undo every change kant made (weights, SiteFactors, pins), then check Slurm shows none.

    Preemptions are not undone: a victim that got its checkpoint signal or was requeued stays
    so. Reset only forgets the victims in progress, so no later cycle requeues them.

    The marks come from the state file, plus, for nodes, slurm.conf: a node whose Weight
    differs from slurm.conf's and that kant has no mark for is also restored when it carries a
    weight kant's tiers produce. Raises SlurmUnreachable when Slurm cannot be read.
    """
    report = ResetReport(dry_run=dry_run)
    settings = diff.ActuatorSettings.from_config(config)
    state_path = Path(state_path)
    view = _read_view(config)
    state = _marks_or_rebuild(state_path, view, settings, report.notes, dry_run)
    for victim, rec in sorted(state.preemptions.items()):
        report.notes.append(
            f"victim {victim} ({rec.status} for job {rec.for_job}) is "
            f"forgotten, not undone: a signal or requeue cannot be taken back"
        )
    state.preemptions.clear()
    try:
        conf = act.config_weights()
    except InputError as exc:
        conf = {}
        report.notes.append(f"slurm.conf weights not checked: {exc}")
    kant_weights = settings.kant_weights()
    for node, w in view.weights.items():
        if (
            node not in state.marks["weight"]
            and node in conf
            and w != conf[node]
            and w in kant_weights
        ):
            state.put("weight", node, conf[node], w)
            report.notes.append(
                f"node {node} has Weight={w} (a kant tier weight) but "
                f"slurm.conf says {conf[node]}: restored too"
            )
    d = diff.diff(diff.Desired(), view, state, 0)
    report.changes = d.changes
    report.notes.extend(d.notes)
    if dry_run:
        return report
    act.edit_marks(state, d)
    before = SteerState(marks={k: dict(v) for k, v in state.marks.items()})
    result = act.apply_changes(d.changes, state, state_path, runner)
    report.applied, report.failed = result.applied, result.failed
    if result.unreachable:
        raise SlurmUnreachable(
            f"reset stopped after {len(result.applied)} changes: "
            f"{result.unreachable}; run reset again"
        )
    # Verify against a fresh read: every mark back to its original value.
    after = _read_view(config)
    report.left = diff.leftovers(before, after)
    for node, w in after.weights.items():
        if node in conf and w != conf[node] and w in kant_weights:
            report.left.append(f"weight of {node} is {w}, slurm.conf says {conf[node]}")
    for job, sf in after.site_factors.items():
        if (
            sf is not None
            and settings.is_kant_site_factor(sf)
            and job not in before.marks["site_factor"]
        ):
            report.notes.append(
                f"job {job} has SiteFactor={sf}, a kant-like value not in kant's marks: left alone"
            )
    if report.clean and not state.is_empty():
        report.notes.append(f"{state.count()} marks stayed in {state_path}")
    return report


# ------------------------------------------------------------------------------------------
# The daemon
# ------------------------------------------------------------------------------------------


def add_syslog(tag: str = "kant-slurm") -> logging.Handler:
    """Send kant_slurm's log records to syslog (/dev/log) too."""
    address = "/dev/log" if os.path.exists("/dev/log") else ("localhost", 514)
    handler = logging.handlers.SysLogHandler(
        address=address, facility=logging.handlers.SysLogHandler.LOG_DAEMON
    )
    handler.setFormatter(logging.Formatter(f"{tag}[%(process)d]: %(levelname)s %(message)s"))
    logging.getLogger("kant_slurm").addHandler(handler)
    return handler


class Daemon:
    """The steering loop: a cycle every ``interval`` seconds until SIGTERM/SIGINT.

    SIGTERM lets the current cycle finish, then stops; SIGHUP reloads the config before the
    next cycle (a bad new config is logged and the old one kept). A cycle that fails (Slurm
    down, a bug) is logged and the loop goes on, waiting up to 4 intervals while failures
    repeat, so a broken Slurm is not hammered and no crash loop starts.
    """

    def __init__(
        self,
        config_path: str | None,
        interval: float,
        *,
        state_path: str | None = None,
        lock_path: str | None = None,
        dry_run: bool = False,
        max_cycles: int | None = None,
        policy: str | None = None,
    ) -> None:
        self.config_path = config_path
        self.config = load_config(config_path)
        self.interval = interval
        self.state_path = state_path
        self.lock_path = lock_path
        self.dry_run = dry_run
        self.max_cycles = max_cycles
        self.policy = policy
        self.stop_requested = False
        self.reload_requested = False
        self.cycles = 0
        self.failures = 0
        self.history = HistorySource()

    def _on_term(self, signum, frame) -> None:
        log.info("signal %s: stopping after the current cycle", signal.Signals(signum).name)
        self.stop_requested = True

    def _on_hup(self, signum, frame) -> None:
        self.reload_requested = True

    def _reload(self) -> None:
        self.reload_requested = False
        try:
            self.config = load_config(self.config_path)
            log.info("SIGHUP: config reloaded from %s", self.config_path or "the defaults")
        except KantError as exc:
            log.error("SIGHUP: config not reloaded, keeping the old one: %s", exc)

    def paths(self) -> tuple[str, str]:
        a = self.config.actuator
        return self.state_path or a.state_file, self.lock_path or a.lock_file

    def run(self) -> int:
        """Loop until stopped; returns the number of cycles run."""
        _, lock_path = self.paths()
        lock = SteerLock(lock_path).acquire()
        old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, self._on_hup)
        log.info(
            "daemon started: pid %d, every %.1fs, policy %s, lock %s",
            os.getpid(),
            self.interval,
            self.policy or self.config.policy,
            lock_path,
        )
        try:
            while not self.stop_requested:
                if self.reload_requested:
                    self._reload()
                started = time.monotonic()
                self._one_cycle()
                self.cycles += 1
                if self.max_cycles is not None and self.cycles >= self.max_cycles:
                    break
                pause = (
                    self.interval * min(4, 2 ** min(self.failures, 2))
                    if self.failures
                    else self.interval
                )
                wake = started + pause
                while (
                    not self.stop_requested
                    and not self.reload_requested
                    and time.monotonic() < wake
                ):
                    time.sleep(min(0.2, max(0.0, wake - time.monotonic())))
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            lock.release()
            log.info("daemon stopped after %d cycles", self.cycles)
        return self.cycles

    def _one_cycle(self) -> None:
        state_path, _ = self.paths()
        try:
            report = run_cycle(
                self.config,
                state_path,
                dry_run=self.dry_run,
                policy=self.policy,
                history=self.history,
            )
        except Exception as exc:  # a bug must not end the loop: log it whole, go on
            self.failures += 1
            log.exception("cycle crashed (failure %d in a row): %s", self.failures, exc)
            return
        if report.ok:
            if self.failures:
                log.info("Slurm answers again after %d failed cycles", self.failures)
            self.failures = 0
            log.info("%s", report.summary())
        else:
            self.failures += 1
            log.warning("%s (failure %d in a row)", report.summary(), self.failures)
