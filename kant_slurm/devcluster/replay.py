"""Replay a trace on the live cluster: ``sleep`` jobs submitted on the trace's (compressed)
clock, then sacct read back into job records and measured by :mod:`kant_slurm.metrics`.

Compression. Arrival gaps, run times and time limits are all divided by ``speedup``. Slurm's
time limits are whole minutes with a minimum of one, so a compressed limit is rounded *up* to
the next minute (at least 1 min); a job's compressed run time never exceeds its compressed
limit, so rounding never kills a job that the trace let finish. The rounding only makes a
short job look longer to backfill; :class:`ReplayJobs` counts how many limits were raised.

Shapes come from the simulator's own :func:`kant_slurm.sim.workload.prepare_workload` on the
live inventory, so the replay and a simulation of the same slice ask for the same nodes and
GPUs per node. Job names are built from the trace's job id, reduced to ``[A-Za-z0-9._-]``;
every value goes to ``sbatch`` as one argument of an argument list (no shell).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, KantError, SlurmError
from ..formats.records import make_records
from ..formats.slurm_values import parse_duration
from ..formats.traces import read_trace
from ..hostlist import expand
from ..metrics.summary import all_metrics
from ..metrics.timeline import scheduling_window
from ..model import Inventory
from ..sim.workload import prepare_workload
from ..sim.timelimit import apply_time_limits
from ..slurm import read_snapshot
from ..slurm.backend import run_slurm

log = logging.getLogger(__name__)

NAME_PREFIX = "kr-"  # replay job names start with this (easy to find and cancel)
MIN_LIMIT_S = 60.0  # Slurm's smallest time limit: one minute
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_job_name(trace_id: Any, max_len: int = 40) -> str:
    """A Slurm job name from a trace job id: only ``[A-Za-z0-9._-]``, prefixed, bounded."""
    body = _UNSAFE.sub("_", str(trace_id)).strip("_.-") or "job"
    return (NAME_PREFIX + body)[:max_len]


def compressed_limit_s(limit_s: float, speedup: float) -> float:
    """A time limit divided by ``speedup`` and rounded up to whole minutes, at least one.

    >>> compressed_limit_s(3600, 60), compressed_limit_s(900, 60), compressed_limit_s(3601, 60)
    (60.0, 60.0, 120.0)
    """
    if not math.isfinite(limit_s):
        return math.nan
    return max(MIN_LIMIT_S, math.ceil(limit_s / speedup / 60.0 - 1e-9) * 60.0)


@dataclass
class ReplayJobs:
    """A trace slice made ready for the live cluster (compressed, shaped)."""

    table: pd.DataFrame  # workload columns + num_nodes, gpus_per_node (compressed seconds)
    speedup: float
    inventory: Inventory
    notes: list[str] = field(default_factory=list)


def compress_workload(
    jobs: pd.DataFrame, speedup: float, arrival_speedup: float | None = None
) -> tuple[pd.DataFrame, int]:
    """Divide submit times by ``arrival_speedup`` (default ``speedup``), durations and limits by
    ``speedup`` (limits rounded as Slurm takes them).

    Returns the table and how many limits were raised to Slurm's one-minute floor. Pure.
    """
    if speedup < 1 or (arrival_speedup is not None and arrival_speedup < 1):
        raise InputError(
            f"--speedup {speedup} / --arrival-speedup {arrival_speedup}: expected >= 1"
        )
    out = jobs.copy()
    out["submit_time"] = out["submit_time"] / (arrival_speedup or speedup)
    out["duration"] = out["duration"] / speedup
    raw = out["time_limit"].to_numpy(dtype=float) / speedup
    limits = np.array([compressed_limit_s(v * speedup, speedup) for v in raw], dtype=float)
    raised = int(np.sum(np.isfinite(raw) & (raw < MIN_LIMIT_S)))
    out["time_limit"] = limits
    # A job may not sleep past its limit (the trace's own timeouts stay timeouts).
    out["duration"] = np.where(
        np.isfinite(limits), np.minimum(out["duration"], limits), out["duration"]
    )
    return out, raised


def prepare_replay(
    trace_path,
    trace_format: str | None = None,
    *,
    speedup: float = 60.0,
    limit: int | None = None,
    skip: int = 0,
    time_limit_model: str = "ladder",
    seed: int = 0,
    inventory: Inventory | None = None,
    arrival_speedup: float | None = None,
    max_runtime: float | None = None,
) -> ReplayJobs:
    """Read a trace, take ``skip``/``limit`` jobs, give limits, compress, shape on the cluster.

    ``max_runtime`` (trace seconds) acts as a partition MaxTime: longer jobs are cut to it and
    no limit exceeds it (so a 15-minute replay is not held up by a week-long job).
    ``arrival_speedup`` compresses arrivals more than run times, to load a small cluster.
    """
    trace = read_trace(trace_path, trace_format)
    jobs = trace.jobs.iloc[skip : (skip + limit) if limit else None].reset_index(drop=True)
    if jobs.empty:
        raise InputError(f"{trace_path}: no jobs left after --skip {skip} --limit {limit}")
    jobs = jobs.assign(submit_time=jobs["submit_time"] - jobs["submit_time"].min())
    jobs = apply_time_limits(jobs, time_limit_model, seed)
    finite = np.isfinite(jobs["duration"].to_numpy(dtype=float))
    notes = list(trace.notes)
    if not finite.all():
        notes.append(f"dropped {int((~finite).sum())} jobs without an end (cannot be a sleep)")
        jobs = jobs[finite].reset_index(drop=True)
    if max_runtime:
        cut = int((jobs["duration"] > max_runtime).sum())
        limits = jobs["time_limit"].to_numpy(dtype=float)
        jobs = jobs.assign(
            duration=jobs["duration"].clip(upper=max_runtime),
            time_limit=np.where(np.isfinite(limits), np.minimum(limits, max_runtime), max_runtime),
        )
        if cut:
            notes.append(
                f"{cut} jobs longer than max_runtime {max_runtime:.0f}s cut to it "
                f"(like a partition MaxTime)"
            )
    compressed, raised = compress_workload(jobs, speedup, arrival_speedup)
    if raised:
        notes.append(
            f"{raised} time limits under one minute after compression raised to "
            f"Slurm's minimum of 1 min"
        )
    if inventory is None:
        inventory = read_snapshot().inventory
    workload = prepare_workload(compressed, inventory)
    notes.extend(workload.notes)
    return ReplayJobs(table=workload.table, speedup=speedup, inventory=inventory, notes=notes)


def sbatch_argv(row: Mapping, gres_type: str | None = None) -> list[str]:
    """The sbatch command for one replay job (argument list; the wrap is a number only)."""
    nodes = int(row["num_nodes"])
    gpn = int(row["gpus_per_node"])
    gres = f"gpu:{gres_type}:{gpn}" if gres_type else f"gpu:{gpn}"
    argv = [
        "sbatch",
        "--parsable",
        f"--job-name={safe_job_name(row['job_id'])}",
        f"--nodes={nodes}",
        "--ntasks-per-node=1",
        f"--gres={gres}",
        "--output=/dev/null",
        "--error=/dev/null",
        "--chdir=/tmp",
    ]
    if row.get("partition"):
        part = str(row["partition"])
        if not re.fullmatch(r"[A-Za-z0-9._-]+", part):
            raise InputError(f"trace job {row['job_id']}: partition {part!r} is not a Slurm name")
        argv.append(f"--partition={part}")
    limit = float(row["time_limit"])
    if math.isfinite(limit):
        argv.append(f"--time={int(limit // 60)}")
    argv.append(f"--wrap=sleep {max(0.0, float(row['duration'])):.1f}")
    return argv


@dataclass
class ReplayResult:
    """Records read back from sacct and the metrics of :mod:`kant_slurm.metrics`."""

    records: pd.DataFrame
    headline: dict[str, Any]
    detail: dict[str, Any]
    submitted: int
    failed_submits: list[str]
    wall_s: float
    speedup: float
    notes: list[str] = field(default_factory=list)
    slurm_ids: dict[str, str] = field(default_factory=dict)  # trace job id -> Slurm job id

    def to_dict(self) -> dict[str, Any]:
        return {
            "submitted": self.submitted,
            "failed_submits": self.failed_submits,
            "wall_s": self.wall_s,
            "speedup": self.speedup,
            "notes": self.notes,
            "metrics": self.headline,
            "details": self.detail,
        }

    def format(self) -> str:
        lines = [
            f"replayed {self.submitted} jobs in {self.wall_s:.0f}s (speed-up {self.speedup:g})"
        ]
        lines += [f"  note: {n}" for n in self.notes]
        for k, v in self.headline.items():
            lines.append(f"  {k:<22} {v:.4g}" if isinstance(v, float) else f"  {k:<22} {v}")
        for row in self.detail.get("by_size", []) or []:
            lines.append(
                "  wait "
                + ", ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                )
            )
        return "\n".join(lines)


SACCT_FORMAT = (
    "JobID,JobName,Submit,Start,End,NodeList,AllocTRES,State,Timelimit,ElapsedRaw,ReqTRES,ReqNodes"
)


def parse_sacct_records(text: str, speedup: float = 1.0, t0: float = 0.0) -> pd.DataFrame:
    """``sacct -X -P -n --format=SACCT_FORMAT`` with ``SLURM_TIME_FORMAT=%s`` -> job records.

    Times become seconds since ``t0`` multiplied by ``speedup`` (back on the trace's clock),
    so the metrics compare with a simulation of the uncompressed slice. Pure.
    """
    cols: dict[str, list] = {
        k: []
        for k in (
            "job_id",
            "submit_time",
            "start_time",
            "end_time",
            "nodes",
            "node_gpus",
            "gpus",
            "num_nodes",
            "state",
            "time_limit",
            "duration",
            "job_class",
            "class_source",
        )
    }
    slurm_ids: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != 12:
            raise SlurmError(f"sacct line {n}: expected 12 '|' fields, got {len(parts)}: {line!r}")
        jid, name, sub, start, end, nodelist, tres, state, limit, elapsed, req, req_nodes = parts

        def clock(v: str) -> float:
            if not v or v in ("Unknown", "None") or not re.fullmatch(r"\d+", v):
                return math.nan
            return (float(v) - t0) * speedup

        nodes = tuple(expand(nodelist)) if nodelist and nodelist != "None assigned" else ()
        m = re.search(r"gres/gpu=(\d+)", tres) or re.search(r"gres/gpu=(\d+)", req)
        gpus = int(m.group(1)) if m else 0
        per = gpus // len(nodes) if nodes else 0
        lim = parse_duration(limit)
        slurm_ids.append(jid)
        cols["job_id"].append(name[len(NAME_PREFIX) :] if name.startswith(NAME_PREFIX) else jid)
        cols["submit_time"].append(clock(sub))
        cols["start_time"].append(clock(start) if nodes else math.nan)
        cols["end_time"].append(clock(end) if nodes else math.nan)
        cols["nodes"].append(nodes)
        cols["node_gpus"].append((per,) * len(nodes))
        cols["gpus"].append(gpus)
        cols["num_nodes"].append(len(nodes) or (int(req_nodes) if req_nodes.isdigit() else 1))
        cols["state"].append(state.split()[0] if state else "")
        cols["time_limit"].append(lim * speedup if lim is not None else math.nan)
        cols["duration"].append(float(elapsed) * speedup if elapsed.isdigit() else math.nan)
        cols["job_class"].append("training")
        cols["class_source"].append("trace")
    cols["slurm_id"] = slurm_ids
    return make_records(**_merge_resized(cols))


def _merge_resized(cols: dict[str, list]) -> dict[str, list]:
    """One record per Slurm job: a job resized while running (RESIZING) has several sacct
    records; keep the first submit and start, the last end, nodes and state."""
    ids = cols.pop("slurm_id")
    first: dict[str, int] = {}
    keep: list[int] = []
    for i, jid in enumerate(ids):
        if jid not in first:
            first[jid] = i
            keep.append(i)
            continue
        j = first[jid]
        for key in ("end_time", "nodes", "node_gpus", "state", "duration"):
            cols[key][j] = cols[key][i]
    return {k: [v[i] for i in keep] for k, v in cols.items()}


def _submit(argv: list[str]) -> str:
    out = run_slurm(argv, timeout=60)
    return out.strip().split(";")[0]


def _cancel(ids: Sequence[str], timeout: float = 60.0) -> None:
    """scancel the jobs, then wait until they have left the queue.

    scancel only asks: a cancelled job stays listed as COMPLETING until slurmd has killed its
    processes, and accounting may say CANCELLED before that (seen on Slurm 26.05 here). A
    replay that is stopped must leave nothing in ``squeue``, so it waits, up to ``timeout``.
    """
    if not ids:
        return
    for i in range(0, len(ids), 200):
        try:
            run_slurm(["scancel", *ids[i : i + 200]], timeout=60)
        except SlurmError as exc:
            log.warning("scancel failed: %s", exc)
    left = set(ids)
    deadline = time.monotonic() + timeout
    while True:
        try:
            left = _alive(left)
        except SlurmError as exc:
            log.warning("squeue failed while waiting for cancelled jobs: %s", exc)
            return
        if not left:
            return
        if time.monotonic() > deadline:
            log.warning(
                "%d cancelled jobs still in the queue after %.0f s: %s",
                len(left),
                timeout,
                ",".join(sorted(left, key=int)[:20]),
            )
            return
        time.sleep(0.5)


def _alive(ids: set[str]) -> set[str]:
    out = run_slurm(["squeue", "-h", "-o", "%i", "-t", "PD,R,CG,CF,S"], timeout=60)
    return ids & set(out.split())


def read_back(
    slurm_ids: dict[str, str], speedup: float, t0: float, timeout: float = 60.0
) -> pd.DataFrame:
    """sacct records of the replayed jobs, waiting until accounting has every one ended."""
    ids = sorted(slurm_ids.values(), key=int)
    env_key = "SLURM_TIME_FORMAT"
    old = os.environ.get(env_key)
    os.environ[env_key] = "%s"
    try:
        deadline = time.monotonic() + timeout
        while True:
            text = "".join(
                run_slurm(
                    [
                        "sacct",
                        "-X",
                        "-P",
                        "-n",
                        f"--format={SACCT_FORMAT}",
                        "-j",
                        ",".join(ids[i : i + 500]),
                    ],
                    timeout=120,
                )
                for i in range(0, len(ids), 500)
            )
            records = parse_sacct_records(text, speedup, t0)
            ended = records["state"].isin(
                [
                    "COMPLETED",
                    "TIMEOUT",
                    "CANCELLED",
                    "FAILED",
                    "NODE_FAIL",
                    "OUT_OF_MEMORY",
                    "PREEMPTED",
                ]
            )
            if (len(records) >= len(ids) and ended.all()) or time.monotonic() > deadline:
                return records
            time.sleep(2)
    finally:
        if old is None:
            os.environ.pop(env_key, None)
        else:
            os.environ[env_key] = old


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so that a replay unwinds as it does on Ctrl-C.

    A BaseException, like KeyboardInterrupt, so no ``except Exception`` on the way swallows it.
    """


def _raise_terminated(signum, frame):
    raise _Terminated()


@contextlib.contextmanager
def _sigterm_unwinds():
    """While inside, SIGTERM raises :class:`_Terminated` (main thread only: Python delivers
    signals there, and elsewhere signal.signal cannot be called)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def replay_trace(
    jobs: ReplayJobs,
    *,
    speedup: float | None = None,
    timeout: float | None = None,
    poll: float = 2.0,
    on_progress: Callable[[str], None] | None = None,
    gres_type: str | None = None,
) -> ReplayResult:
    """Submit every job at its compressed time, wait for all to end, measure.

    Ctrl-C (KeyboardInterrupt), SIGTERM (systemd, kill, a CI job's timeout) or ``timeout``
    cancels every job this replay submitted. After SIGTERM it raises KantError naming how many
    jobs it cancelled; after Ctrl-C it raises KeyboardInterrupt again.
    """
    speedup = speedup or jobs.speedup
    rows = jobs.table.to_dict("records")
    slurm_ids: dict[str, str] = {}
    failed: list[str] = []
    wall0 = time.monotonic()
    t0 = time.time()
    deadline = wall0 + timeout if timeout else math.inf
    try:
        with _sigterm_unwinds():
            _submit_and_wait(rows, slurm_ids, failed, wall0, deadline, poll, on_progress, gres_type)
    except (KeyboardInterrupt, _Terminated, TimeoutError) as exc:
        why = "SIGTERM" if isinstance(exc, _Terminated) else type(exc).__name__
        log.warning("replay interrupted (%s): cancelling %d submitted jobs", why, len(slurm_ids))
        # A second SIGTERM (systemd repeats it, a user presses twice) must not cut the scancel
        # short and leave jobs queued; SIGKILL still ends everything.
        old = (
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            if threading.current_thread() is threading.main_thread()
            else None
        )
        try:
            _cancel(list(slurm_ids.values()))
        finally:
            if old is not None:
                signal.signal(signal.SIGTERM, old)
        if isinstance(exc, KeyboardInterrupt):
            raise
        if isinstance(exc, _Terminated):
            raise KantError(
                f"replay stopped by SIGTERM: cancelled the {len(slurm_ids)} jobs it had submitted"
            ) from None
    wall = time.monotonic() - wall0
    records = read_back(slurm_ids, speedup, t0)
    window = scheduling_window(records) if len(records) else None
    headline, detail, _ = all_metrics(records, jobs.inventory, window)
    return ReplayResult(
        records=records,
        headline=headline,
        detail=detail,
        submitted=len(slurm_ids),
        failed_submits=failed,
        wall_s=wall,
        speedup=speedup,
        notes=list(jobs.notes),
        slurm_ids=slurm_ids,
    )


def _submit_and_wait(
    rows,
    slurm_ids: dict[str, str],
    failed: list[str],
    wall0: float,
    deadline: float,
    poll: float,
    on_progress: Callable[[str], None] | None,
    gres_type: str | None,
) -> None:
    """Submit each row at its time (ids into ``slurm_ids`` as they come), then wait for all."""
    for row in rows:
        due = wall0 + float(row["submit_time"])
        while time.monotonic() < due:
            if time.monotonic() > deadline:
                raise TimeoutError
            time.sleep(min(0.5, max(0.0, due - time.monotonic())))
        try:
            slurm_ids[str(row["job_id"])] = _submit(sbatch_argv(row, gres_type))
        except SlurmError as exc:
            failed.append(f"{row['job_id']}: {exc}")
            log.warning("trace job %s not submitted: %s", row["job_id"], exc)
        if time.monotonic() > deadline:
            raise TimeoutError
    left = set(slurm_ids.values())
    last_report = 0.0
    while left:
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(poll)
        left = _alive(left)
        if on_progress and time.monotonic() - last_report > 30:
            last_report = time.monotonic()
            on_progress(f"{len(left)} of {len(slurm_ids)} replay jobs not finished")
