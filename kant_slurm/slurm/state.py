"""kant's record of what it set in Slurm: the state file the actuator diffs against.

One JSON file. For every node Weight, job SiteFactor and job pin (ExcNodeList) that kant changed it
keeps the value Slurm had before (``orig``, what ``reset`` restores) and the value kant set
(``set``). Reading Slurm back against that record tells three cases apart (see
:func:`classify_value`): kant's value is in force, it is not (never applied, or lost when
slurmctld restarted and re-read slurm.conf), or someone else changed it since.

It also keeps the preemptions in progress (issue 8): a running job kant sent its checkpoint
signal, to be requeued once its grace time is over unless it left its nodes by itself. Those
are actions, not settings: ``reset`` cannot undo a signal or a requeue, and only forgets them.

The file is written atomically (temporary file + fsync + rename), so a crash leaves either the
old or the new record, never half of one. An entry is written *before* its ``scontrol`` runs
(write-ahead), so a crash between the two leaves an entry whose value is simply not in force.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import KantError

log = logging.getLogger(__name__)

STATE_VERSION = 1

# The three kinds of change kant makes (field names as `scontrol update` spells them).
WEIGHT = "weight"  # node Weight, value int
SITE_FACTOR = "site_factor"  # pending job SiteFactor, value int
PIN = "pin"  # pending job ExcNodeList (every node but the chosen), tuple of names (() = none)
KINDS = (WEIGHT, SITE_FACTOR, PIN)

IN_FORCE = "in_force"  # Slurm shows what kant set
NOT_IN_FORCE = "not_in_force"  # Slurm shows the original value: kant's change is not applied
FOREIGN = "foreign"  # Slurm shows a third value: an administrator (or user) changed it


class StateCorrupt(KantError):
    """The state file exists but cannot be read as kant's state (the message names it)."""


@dataclass
class Mark:
    """One value kant changed: what Slurm had before and what kant set."""

    orig: Any
    set: Any
    at: float = 0.0  # when kant set it (epoch seconds)
    reapplied: int = 0  # times the same SiteFactor was sent again (actuator.MAX_REAPPLY)


# Preemption steps (kant's record of a victim, see :class:`PreemptRecord`).
SIGNALLING = "signalling"  # written before scancel runs: whether the signal went out is unknown
SIGNALLED = "signalled"  # the victim's batch shell got the checkpoint signal; grace time runs
REQUEUED = "requeued"  # kant ran `scontrol requeue` after the grace time
PREEMPT_STATUSES = (SIGNALLING, SIGNALLED, REQUEUED)


@dataclass
class PreemptRecord:
    """One victim kant is preempting: which run of it (its start time), for which job, and how
    far it got. The start time tells a new run of the same job id (after a requeue) from the
    run kant signalled, so a cycle cut short never requeues a later run."""

    for_job: str
    start_time: float
    nodes: tuple[str, ...] = ()
    signal: str = "USR1"
    status: str = SIGNALLING
    signalled_at: float = 0.0
    requeued_at: float | None = None
    lost_gpu_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "for_job": self.for_job,
            "start_time": self.start_time,
            "nodes": list(self.nodes),
            "signal": self.signal,
            "status": self.status,
            "signalled_at": self.signalled_at,
            "requeued_at": self.requeued_at,
            "lost_gpu_seconds": self.lost_gpu_seconds,
        }


@dataclass
class SteerState:
    """Everything kant set, by kind then target (node name or job id)."""

    marks: dict[str, dict[str, Mark]] = field(default_factory=lambda: {k: {} for k in KINDS})
    cycle: int = 0  # cycles that applied changes (for log lines)
    updated_at: float = 0.0
    # The last cycle's figures (duration_s, applied, failed, at): what the exporter shows.
    last_cycle: dict[str, float] | None = None
    # Victims in preemption, by job id (not marks: nothing here can be restored).
    preemptions: dict[str, PreemptRecord] = field(default_factory=dict)

    def get(self, kind: str, target: str) -> Mark | None:
        return self.marks[kind].get(target)

    def put(
        self,
        kind: str,
        target: str,
        orig: Any,
        value: Any,
        at: float | None = None,
        reapplied: int = 0,
    ) -> None:
        self.marks[kind][target] = Mark(
            orig=_norm(kind, orig),
            set=_norm(kind, value),
            at=time.time() if at is None else at,
            reapplied=reapplied,
        )

    def drop(self, kind: str, target: str) -> None:
        self.marks[kind].pop(target, None)

    def count(self) -> int:
        return sum(len(v) for v in self.marks.values())

    def is_empty(self) -> bool:
        return self.count() == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "cycle": self.cycle,
            "updated_at": self.updated_at,
            "last_cycle": self.last_cycle,
            "preemptions": {job: rec.to_dict() for job, rec in sorted(self.preemptions.items())},
            "marks": {
                kind: {t: _mark_dict(m) for t, m in sorted(entries.items())}
                for kind, entries in self.marks.items()
            },
        }


def _mark_dict(mark: Mark) -> dict[str, Any]:
    out = {"orig": _plain(mark.orig), "set": _plain(mark.set), "at": mark.at}
    if mark.reapplied:  # absent when 0, as in files of earlier versions
        out["reapplied"] = mark.reapplied
    return out


def _norm(kind: str, value: Any) -> Any:
    """Values as kept in memory: ints for weight/site factor, a tuple of names for a pin."""
    if kind == PIN:
        return tuple(value or ())
    return int(value)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def classify_value(mark: Mark, shown: Any) -> str:
    """Compare what Slurm shows with kant's mark: IN_FORCE, NOT_IN_FORCE or FOREIGN."""
    if shown == mark.set:
        return IN_FORCE
    if shown == mark.orig:
        return NOT_IN_FORCE
    return FOREIGN


def state_from_dict(data: Any, where: str) -> SteerState:
    """Validate a parsed state file; anything unexpected is StateCorrupt naming the field."""
    if not isinstance(data, dict):
        raise StateCorrupt(f"{where}: expected a JSON object at the top level")
    if data.get("version") != STATE_VERSION:
        raise StateCorrupt(f"{where}: version {data.get('version')!r}, expected {STATE_VERSION}")
    marks = data.get("marks")
    if not isinstance(marks, dict):
        raise StateCorrupt(f"{where}: 'marks' must be an object of {', '.join(KINDS)}")
    state = SteerState(
        cycle=int(data.get("cycle") or 0), updated_at=float(data.get("updated_at") or 0.0)
    )
    last = data.get("last_cycle")
    if last is not None:
        if not isinstance(last, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in last.values()
        ):
            raise StateCorrupt(
                f"{where}: last_cycle must be an object of numbers "
                "(duration_s, applied, failed, at)"
            )
        state.last_cycle = {str(k): float(v) for k, v in last.items()}
    state.preemptions = _preemptions_from_dict(data.get("preemptions"), where)
    for kind, entries in marks.items():
        if kind not in KINDS:
            raise StateCorrupt(
                f"{where}: marks.{kind}: unknown kind, expected one of {', '.join(KINDS)}"
            )
        if not isinstance(entries, dict):
            raise StateCorrupt(f"{where}: marks.{kind} must be an object")
        for target, entry in entries.items():
            at = f"{where}: marks.{kind}.{target}"
            if not isinstance(entry, dict) or "orig" not in entry or "set" not in entry:
                raise StateCorrupt(f"{at}: expected {{orig, set, at}}")
            for key in ("orig", "set"):
                v = entry[key]
                ok = (
                    (isinstance(v, list) and all(isinstance(x, str) for x in v))
                    if kind == PIN
                    else (isinstance(v, int) and not isinstance(v, bool))
                )
                if not ok:
                    want = "a list of node names" if kind == PIN else "an integer"
                    raise StateCorrupt(f"{at}.{key} = {v!r}: expected {want}")
            reapplied = entry.get("reapplied", 0)
            if not isinstance(reapplied, int) or isinstance(reapplied, bool) or reapplied < 0:
                raise StateCorrupt(f"{at}.reapplied = {reapplied!r}: expected a count >= 0")
            state.put(
                kind,
                str(target),
                entry["orig"],
                entry["set"],
                at=float(entry.get("at") or 0.0),
                reapplied=reapplied,
            )
    return state


def _preemptions_from_dict(raw: Any, where: str) -> dict[str, PreemptRecord]:
    """The ``preemptions`` object of a state file (absent in files of older versions)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise StateCorrupt(f"{where}: 'preemptions' must be an object of job id -> record")
    out: dict[str, PreemptRecord] = {}
    for job, entry in raw.items():
        at = f"{where}: preemptions.{job}"
        if not isinstance(entry, dict):
            raise StateCorrupt(f"{at}: expected an object {{for_job, start_time, status, ...}}")
        try:
            status = entry["status"]
            if status not in PREEMPT_STATUSES:
                raise StateCorrupt(
                    f"{at}.status = {status!r}: expected one of {', '.join(PREEMPT_STATUSES)}"
                )
            nodes = entry.get("nodes") or []
            if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
                raise StateCorrupt(f"{at}.nodes: expected a list of node names")
            requeued = entry.get("requeued_at")
            out[str(job)] = PreemptRecord(
                for_job=str(entry["for_job"]),
                start_time=float(entry["start_time"]),
                nodes=tuple(nodes),
                signal=str(entry.get("signal") or "USR1"),
                status=status,
                signalled_at=float(entry.get("signalled_at") or 0.0),
                requeued_at=None if requeued is None else float(requeued),
                lost_gpu_seconds=float(entry.get("lost_gpu_seconds") or 0.0),
            )
        except KeyError as exc:
            raise StateCorrupt(f"{at}: field {exc.args[0]} is missing") from None
        except (TypeError, ValueError) as exc:
            raise StateCorrupt(f"{at}: {exc}") from None
    return out


def load_state(path: str | os.PathLike) -> SteerState:
    """The state at ``path``; an empty state when the file does not exist.

    A file that exists but is not valid raises :class:`StateCorrupt` (the caller decides what
    is safe: see ``steer.recover_from_corrupt_state``).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        log.info("no state file at %s: kant has set nothing yet", p)
        return SteerState()
    except OSError as exc:
        raise StateCorrupt(f"{p}: cannot read the state file: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise StateCorrupt(f"{p}: not valid JSON ({exc})") from None
    return state_from_dict(data, str(p))


def save_state(state: SteerState, path: str | os.PathLike) -> None:
    """Write ``state`` atomically: a temporary file in the same directory, fsync, rename."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    state.updated_at = time.time()
    text = json.dumps(state.to_dict(), indent=1, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=str(p.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def set_aside(path: str | os.PathLike) -> Path | None:
    """Rename a corrupt state file to ``<name>.corrupt-<epoch>`` (kept for a post-mortem)."""
    p = Path(path)
    if not p.exists():
        return None
    dest = p.with_name(f"{p.name}.corrupt-{int(time.time())}")
    os.replace(p, dest)
    return dest
