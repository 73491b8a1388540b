"""Trace readers: real job logs -> a workload table the simulator replays.

Every reader returns a :class:`Trace` whose ``jobs`` is a pandas DataFrame with these columns
(one row per job, sorted by ``submit_time``, times in seconds from the trace's first submit):

=============== ====================================================================
job_id          str, unique (the trace's id, else the 1-based row number)
submit_time     float, seconds since the first submit of the trace
duration        float, actual run seconds (``inf``: runs until the simulation stops)
gpus            int, total GPUs the job asks for (>= 1)
num_nodes       int, nodes asked for; 0 = let the simulator derive it from the pool shape
time_limit      float, seconds, NaN when the trace has none (see :mod:`kant_slurm.sim.timelimit`)
job_class       str, the class the trace gives (``inference``/``training``/``batch``) or ""
user, account   str ("" when the trace has none)
partition       str, "" = the cluster's default partition
name            str
line            int, the job's line in the source file (for messages)
=============== ====================================================================

Optional columns (a reader may add them; :func:`_frame` fills the defaults):

=============== ====================================================================
cpus_per_node   int, CPUs the job asks for on each node; 0 = the simulator's default
service         str, the inference service the job is a replica of ("" = none)
max_per_node    int, cap on the service's replicas per node; -1 = none
=============== ====================================================================

Malformed input raises :class:`InputError` naming the file, the line and the field.
"""

from __future__ import annotations

import csv
import gzip
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .sacct import parse_sacct

log = logging.getLogger(__name__)

TRACE_FORMATS = ("philly", "swf", "openb", "sacct", "alibaba-inference")
WORKLOAD_COLUMNS = (
    "job_id",
    "submit_time",
    "duration",
    "gpus",
    "num_nodes",
    "time_limit",
    "job_class",
    "user",
    "account",
    "partition",
    "name",
    "line",
)
OPTIONAL_COLUMNS = {"cpus_per_node": 0, "service": "", "max_per_node": -1}


@dataclass
class Trace:
    """A workload read from a file, with what was dropped or assumed on the way."""

    jobs: pd.DataFrame
    source: str
    fmt: str
    epoch: datetime | None = None  # wall-clock time of submit_time 0, when the trace has one
    notes: list[str] = field(default_factory=list)  # e.g. "dropped 12 CPU-only pods"
    fill_until_full: bool = False  # openb fill mode: stop at the first job that cannot start

    def __len__(self) -> int:
        return len(self.jobs)


def _frame(rows: dict[str, list], source: str, shift: bool = True) -> pd.DataFrame:
    """The workload table of ``rows``; ``shift``: submit times from the first submit."""
    df = pd.DataFrame({c: rows[c] for c in WORKLOAD_COLUMNS})
    for c in OPTIONAL_COLUMNS:
        if c in rows:
            df[c] = rows[c]
    df = df.astype(
        {
            "job_id": str,
            "submit_time": float,
            "duration": float,
            "gpus": np.int64,
            "num_nodes": np.int64,
            "time_limit": float,
            "line": np.int64,
        }
    )
    if df["job_id"].duplicated().any():
        dup = df.loc[df["job_id"].duplicated(), ["job_id", "line"]].iloc[0]
        raise InputError(f"{source}:{dup['line']}: job id {dup['job_id']!r} appears twice")
    if len(df) and shift:
        df["submit_time"] -= df["submit_time"].min()
    return df.sort_values(["submit_time", "line"], kind="stable").reset_index(drop=True)


def _empty_rows() -> dict[str, list]:
    return {c: [] for c in WORKLOAD_COLUMNS}


def _num(
    value: str, path, line: int, fieldname: str, kind=float, minimum=None, column: int | None = None
) -> float:
    """``value`` as a finite number of ``kind``; InputError naming file:line[:column] and field.

    inf and NaN are refused: an infinite submit time sorts last and an infinite run time never
    ends, so either would turn a typo into a silently wrong simulation.
    """
    where = f"{path}:{line}" + (f":{column}" if column else "")
    try:
        out = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(
            f"{where}: field {fieldname!r}: expected a{'n integer' if kind is int else ' number'},"
            f" got {value!r}"
        ) from None
    if isinstance(out, float) and not math.isfinite(out):
        raise InputError(f"{where}: field {fieldname!r}: expected a finite number, got {value!r}")
    if minimum is not None and out < minimum:
        raise InputError(f"{where}: field {fieldname!r}: must be >= {minimum}, got {value!r}")
    return out


def _cell(
    row: dict, name: str, path, line: int, kind=float, minimum=None, value: str | None = None
) -> float:
    """:func:`_num` of CSV cell ``name`` (or of ``value`` standing in for it), with its column."""
    columns = getattr(row, "columns", ())
    column = columns.index(name) + 1 if name in columns else None
    return _num(row[name] if value is None else value, path, line, name, kind, minimum, column)


def _where(row: dict, name: str, path, line: int) -> str:
    """``path:line:column`` of CSV cell ``name`` (``path:line`` when the header lacks it)."""
    columns = getattr(row, "columns", ())
    return f"{path}:{line}" + (f":{columns.index(name) + 1}" if name in columns else "")


class _Row(dict):
    """A CSV row that knows its header, so a bad cell is named by its column number too."""

    columns: tuple[str, ...] = ()


def _open(path) -> str:
    try:
        if str(path).endswith(".gz"):  # the bundled Alibaba trace ships gzipped (232 KB, not 2 MB)
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                return fh.read()
        return Path(path).read_text()
    except (OSError, EOFError) as exc:
        if isinstance(exc, EOFError) or not getattr(exc, "strerror", None):
            raise InputError(
                f"{path}: cannot read trace (not a complete gzip file: {exc})"
            ) from None
        raise InputError(f"{path}: cannot read trace ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a text file ({exc.reason} at byte {exc.start})") from None


def _csv_rows(path, required: tuple[str, ...]):
    """Yield (line number, row dict) of a CSV with a header naming at least ``required``."""
    text = _open(path)
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(
            f"{path}:1: header lacks column {missing[0]!r}; expected columns: {', '.join(required)}"
        )
    for row in reader:
        if None in row:  # more cells than header columns
            raise InputError(
                f"{path}:{reader.line_num}: {len(header) + len(row[None])} fields, "
                f"header has {len(header)}"
            )
        cells = _Row(row)
        cells.columns = tuple(header)
        yield reader.line_num, cells


# --------------------------------------------------------------------------------------------
# Philly
# --------------------------------------------------------------------------------------------


def read_philly(path) -> Trace:
    """The Philly CSV of shared/traces: ``timestamp,duration,num_gpus,gpu_time,cluster``.

    The hashed virtual cluster becomes the job's account (Philly VCs were quota groups). The
    trace has no user or time limit. Philly was a DNN-training cluster (Jeon et al., ATC'19), so
    every job is class ``training`` from the trace (said in the notes).
    """
    rows = _empty_rows()
    stamps: list[float] = []
    fmt = "%Y-%m-%d %H:%M:%S"
    for line, row in _csv_rows(path, ("timestamp", "duration", "num_gpus", "cluster")):
        try:
            ts = datetime.strptime(row["timestamp"].strip(), fmt)
        except ValueError:
            raise InputError(
                f"{_where(row, 'timestamp', path, line)}: field 'timestamp': expected "
                f"YYYY-MM-DD HH:MM:SS, got {row['timestamp']!r}"
            ) from None
        stamps.append(ts.timestamp())
        rows["duration"].append(_cell(row, "duration", path, line, float, 0))
        gpus = _cell(row, "num_gpus", path, line, float, 1)
        if gpus != int(gpus):
            raise InputError(
                f"{_where(row, 'num_gpus', path, line)}: "
                f"field 'num_gpus': expected a whole number, got "
                f"{row['num_gpus']!r}"
            )
        rows["gpus"].append(int(gpus))
        rows["job_id"].append(str(len(stamps)))
        rows["num_nodes"].append(0)
        rows["time_limit"].append(float("nan"))
        rows["job_class"].append("training")
        rows["user"].append("")
        rows["account"].append(row["cluster"].strip())
        rows["partition"].append("")
        rows["name"].append("")
        rows["line"].append(line)
    rows["submit_time"] = stamps
    epoch = datetime.fromtimestamp(min(stamps)) if stamps else None
    return Trace(
        jobs=_frame(rows, str(path)),
        source=str(path),
        fmt="philly",
        epoch=epoch,
        notes=["Philly is a DNN-training cluster log: every job is class training"],
    )


# --------------------------------------------------------------------------------------------
# SWF
# --------------------------------------------------------------------------------------------

SWF_FIELDS = (
    "job_number",
    "submit_time",
    "wait_time",
    "run_time",
    "allocated_processors",
    "average_cpu_time",
    "used_memory",
    "requested_processors",
    "requested_time",
    "requested_memory",
    "status",
    "user_id",
    "group_id",
    "executable",
    "queue_number",
    "partition_number",
    "preceding_job",
    "think_time",
)


SWF_CANCELLED = 5  # SWF field 11 "status": 1 completed, 0 failed, 5 cancelled


def read_swf(path, procs_per_gpu: int = 1) -> Trace:
    """The Parallel Workloads Archive's Standard Workload Format.

    18 whitespace-separated fields per line, ``;`` starts a header comment, -1 means unknown.
    GPUs = ceil(processors / ``procs_per_gpu``) (allocated processors, else requested).
    Requested time becomes the time limit. Jobs cancelled before they ran (status 5, run time
    <= 0) and jobs with unknown run time or processors are dropped and counted in the notes;
    a job cancelled while running (status 5, run time > 0) held its processors and is kept.
    Queue number becomes the partition name ``q<N>`` only when known.
    """
    if procs_per_gpu < 1:
        raise InputError(f"swf: procs_per_gpu must be >= 1, got {procs_per_gpu}")
    rows = _empty_rows()
    dropped = cancelled = 0
    for line, raw in enumerate(_open(path).splitlines(), start=1):
        text = raw.split(";", 1)[0].strip()
        if not text:
            continue
        parts = text.split()
        if len(parts) != 18:
            raise InputError(
                f"{path}:{line}: {len(parts)} fields, SWF has 18 ({' '.join(SWF_FIELDS[:4])} ...)"
            )
        # Column = the field's place among the 18 (SWF has no header to name it by).
        vals = [
            _num(p, path, line, SWF_FIELDS[k], float, column=k + 1) for k, p in enumerate(parts)
        ]
        rec = dict(zip(SWF_FIELDS, vals, strict=True))
        procs = (
            rec["allocated_processors"]
            if rec["allocated_processors"] > 0
            else rec["requested_processors"]
        )
        if rec["status"] == SWF_CANCELLED and rec["run_time"] <= 0:
            # The SWF definition: status 5 = cancelled; a cancelled job that never ran has run
            # time 0 or -1. It held no processor, so it is not a job to replay.
            cancelled += 1
            continue
        if rec["run_time"] < 0 or procs <= 0 or rec["submit_time"] < 0:
            dropped += 1
            continue
        rows["job_id"].append(str(int(rec["job_number"])))
        rows["submit_time"].append(rec["submit_time"])
        rows["duration"].append(rec["run_time"])
        rows["gpus"].append(int(math.ceil(procs / procs_per_gpu)))
        rows["num_nodes"].append(0)
        rows["time_limit"].append(
            rec["requested_time"] if rec["requested_time"] > 0 else float("nan")
        )
        rows["job_class"].append("")
        rows["user"].append(f"u{int(rec['user_id'])}" if rec["user_id"] >= 0 else "")
        rows["account"].append(f"g{int(rec['group_id'])}" if rec["group_id"] >= 0 else "")
        rows["partition"].append("")
        rows["name"].append(f"x{int(rec['executable'])}" if rec["executable"] >= 0 else "")
        rows["line"].append(line)
    trace = Trace(jobs=_frame(rows, str(path)), source=str(path), fmt="swf")
    if procs_per_gpu != 1:
        trace.notes.append(f"{procs_per_gpu} processors = 1 GPU")
    if cancelled:
        trace.notes.append(
            f"dropped {cancelled} jobs cancelled before they ran (SWF status 5, run time <= 0)"
        )
    if dropped:
        trace.notes.append(f"dropped {dropped} jobs with unknown run time or processors")
    return trace


# --------------------------------------------------------------------------------------------
# Alibaba openb pods
# --------------------------------------------------------------------------------------------

OPENB_QOS_CLASS = {"LS": "inference", "BE": "batch", "Burstable": "batch", "Guaranteed": "batch"}


def read_openb(path, mode: str = "arrival") -> Trace:
    """Alibaba cluster-trace-gpu-v2023 pods (the FGD paper's ``openb_pod_list_*.csv``).

    ``mode="arrival"``: pods arrive at ``creation_time`` and run until ``deletion_time`` (from
    ``scheduled_time`` when set). ``mode="fill"``: the FGD use, pods arrive one second apart in
    trace order, never end, and the simulation stops at the first pod that cannot start.
    GPU-sharing pods (``gpu_milli`` < 1000) take one whole GPU, as Slurm has no fractional GPU;
    CPU-only pods are dropped; both counts are in the notes. QoS LS (latency-sensitive) is class
    ``inference``, the others ``batch``.
    """
    if mode not in ("arrival", "fill"):
        raise InputError(f"openb: mode must be 'arrival' or 'fill', got {mode!r}")
    rows = _empty_rows()
    cpu_only = shared = 0
    need = (
        "name",
        "num_gpu",
        "gpu_milli",
        "qos",
        "creation_time",
        "deletion_time",
        "scheduled_time",
    )
    for line, row in _csv_rows(path, need):
        gpus = int(_cell(row, "num_gpu", path, line, int, 0))
        if gpus == 0:
            cpu_only += 1
            continue
        milli = _cell(row, "gpu_milli", path, line, float, 0, value=row["gpu_milli"] or "1000")
        if gpus == 1 and milli < 1000:
            shared += 1
        qos = row["qos"].strip()
        if qos not in OPENB_QOS_CLASS:
            raise InputError(
                f"{_where(row, 'qos', path, line)}: field 'qos': expected one of "
                f"{', '.join(OPENB_QOS_CLASS)}, got {qos!r}"
            )
        if mode == "fill":
            submit, duration = float(len(rows["job_id"])), float("inf")
        else:
            created = _cell(row, "creation_time", path, line, float, 0)
            sched = row["scheduled_time"].strip()
            begin = (
                _cell(row, "scheduled_time", path, line, float, 0, value=sched)
                if sched
                else created
            )
            deleted = row["deletion_time"].strip()
            end = (
                _cell(row, "deletion_time", path, line, float, 0, value=deleted)
                if deleted
                else float("inf")
            )
            if end < begin:
                raise InputError(
                    f"{_where(row, 'deletion_time', path, line)}: "
                    f"field 'deletion_time': {end:g} is before the pod "
                    f"started ({begin:g})"
                )
            submit, duration = created, end - begin
        rows["job_id"].append(row["name"].strip() or str(line))
        rows["submit_time"].append(submit)
        rows["duration"].append(duration)
        rows["gpus"].append(gpus)
        rows["num_nodes"].append(1)  # pods are single-node
        rows["time_limit"].append(float("nan"))
        rows["job_class"].append(OPENB_QOS_CLASS[qos])
        rows["user"].append("")
        rows["account"].append("")
        rows["partition"].append("")
        rows["name"].append(row["name"].strip())
        rows["line"].append(line)
    trace = Trace(
        jobs=_frame(rows, str(path)),
        source=str(path),
        fmt="openb",
        fill_until_full=(mode == "fill"),
    )
    if cpu_only:
        trace.notes.append(f"dropped {cpu_only} CPU-only pods")
    if shared:
        trace.notes.append(f"{shared} GPU-sharing pods (gpu_milli < 1000) take one whole GPU")
    return trace


# --------------------------------------------------------------------------------------------
# Alibaba DLRM inference services (cluster-trace-gpu-v2025)
# --------------------------------------------------------------------------------------------

ALIBABA_INFERENCE_WINDOW_S = 31 * 86400.0  # the trace's observation window
_ALIBABA_NEED = (
    "instance_sn",
    "role",
    "app_name",
    "cpu_request",
    "gpu_request",
    "max_instance_per_node",
    "creation_time",
    "scheduled_time",
    "deletion_time",
)


def read_alibaba_inference(path) -> Trace:
    """Alibaba cluster-trace-gpu-v2025 (``alibaba-dlrm-inference-2025.csv``): inference service
    instances of a disaggregated recommendation-model deployment.

    Only GPU instances (role ``HN``) are jobs; CPU-only ones (``CN``) are dropped and counted.
    Each is a single-node class ``inference`` job with ``gpu_request`` GPUs (1 in this trace),
    ``cpu_request`` CPUs, service = ``app_name`` (its instances are replicas) and the per-node
    replica cap ``max_instance_per_node`` (-1 = none). Times are seconds from the start of the
    trace's 31-day window and are kept as they are (not shifted):

    - the job arrives at ``creation_time`` and runs ``deletion_time - scheduled_time`` (the wait
      in Alibaba's own cluster, ``scheduled - creation``, is the simulated scheduler's to decide);
    - empty ``creation_time`` (with empty ``scheduled_time``): the instance was running before
      the window opened; it arrives at 0 and runs from there (lifetime = ``deletion_time``);
    - empty ``deletion_time``: it was still running when the window closed; it never ends
      (duration ``inf``: it runs until the simulation stops);
    - ``scheduled_time`` empty but ``creation_time`` given: taken as scheduled on creation.

    The trace has no time limit (NaN: the time-limit model decides; a service that never ends
    gets none). Malformed cells raise :class:`InputError` naming file, line and field.
    """
    rows = _empty_rows()
    extra: dict[str, list] = {"cpus_per_node": [], "service": [], "max_per_node": []}
    cpu_only = before = after = 0
    for line, row in _csv_rows(path, _ALIBABA_NEED):
        role = row["role"].strip()
        if role not in ("HN", "CN"):
            raise InputError(
                f"{_where(row, 'role', path, line)}: "
                f"field 'role': expected HN (GPU instance) or CN "
                f"(CPU-only), got {row['role']!r}"
            )
        if role == "CN":
            cpu_only += 1
            continue
        gpus = int(_cell(row, "gpu_request", path, line, int, 1))
        cpus = int(_cell(row, "cpu_request", path, line, int, 0))
        cap = int(_cell(row, "max_instance_per_node", path, line, int, -1))
        if cap == 0:
            raise InputError(
                f"{_where(row, 'max_instance_per_node', path, line)}: "
                f"field 'max_instance_per_node': expected -1 (no "
                f"cap) or a positive number of replicas, got 0"
            )
        app = row["app_name"].strip()
        if not app:
            raise InputError(
                f"{_where(row, 'app_name', path, line)}: "
                f"field 'app_name': empty (every instance belongs "
                f"to an app)"
            )
        created_s, sched_s, deleted_s = (
            row[k].strip() for k in ("creation_time", "scheduled_time", "deletion_time")
        )
        if created_s:
            created = _cell(row, "creation_time", path, line, float, 0, value=created_s)
            begin = (
                _cell(row, "scheduled_time", path, line, float, 0, value=sched_s)
                if sched_s
                else created
            )
            if begin < created:
                raise InputError(
                    f"{_where(row, 'scheduled_time', path, line)}: "
                    f"field 'scheduled_time': {begin:g} is before "
                    f"creation_time {created:g}"
                )
        else:
            if sched_s:
                raise InputError(
                    f"{_where(row, 'creation_time', path, line)}: "
                    f"field 'creation_time': empty while "
                    f"scheduled_time is {sched_s!r} (expected both or neither)"
                )
            created = begin = 0.0
            before += 1
        if deleted_s:
            end = _cell(row, "deletion_time", path, line, float, 0, value=deleted_s)
            if end < begin:
                raise InputError(
                    f"{_where(row, 'deletion_time', path, line)}: "
                    f"field 'deletion_time': {end:g} is before the "
                    f"instance started ({begin:g})"
                )
        else:
            end = math.inf
            after += 1
        rows["job_id"].append(row["instance_sn"].strip() or f"line{line}")
        rows["submit_time"].append(created)
        rows["duration"].append(end - begin)
        rows["gpus"].append(gpus)
        rows["num_nodes"].append(1)
        rows["time_limit"].append(float("nan"))
        rows["job_class"].append("inference")
        rows["user"].append("")
        rows["account"].append(app)
        rows["partition"].append("")
        rows["name"].append(app)
        rows["line"].append(line)
        extra["cpus_per_node"].append(cpus)
        extra["service"].append(app)
        extra["max_per_node"].append(cap)
    rows |= extra
    trace = Trace(
        jobs=_frame(rows, str(path), shift=False), source=str(path), fmt="alibaba-inference"
    )
    if cpu_only:
        trace.notes.append(f"dropped {cpu_only} CPU-only instances (role CN)")
    if before:
        trace.notes.append(
            f"{before} instances were running when the trace window opened: they arrive at 0"
        )
    if after:
        trace.notes.append(
            f"{after} instances were still running when the window closed: they never end"
        )
    return trace


# --------------------------------------------------------------------------------------------
# sacct dumps
# --------------------------------------------------------------------------------------------


def read_sacct(path) -> Trace:
    """A saved ``sacct --json`` or ``sacct -P`` dump (see :mod:`kant_slurm.formats.sacct`).

    Jobs that never started are dropped (their run time is unknown) and counted in the notes.
    The class comes from the kant tag in the admin comment / comment when there is one.
    """
    text = _open(path)
    records = parse_sacct(text, source=str(path))
    started = records[records["start_time"].notna() & (records["gpus"] > 0)]
    dropped = len(records) - len(started)
    end = started["end_time"].fillna(np.inf)
    # One job id can have several records: ``sacct -D`` lists each run of a requeued job, and a
    # controller whose state was cleared hands out ids again. Each record is a job of the
    # trace; a repeated id gets its run number (``123-run2``) and a note says how many.
    seen: Counter[str] = Counter()
    job_ids = []
    for jid in started["job_id"].astype(str):
        seen[jid] += 1
        job_ids.append(jid if seen[jid] == 1 else f"{jid}-run{seen[jid]}")
    repeated = sum(n - 1 for n in seen.values())
    rows = {
        "job_id": job_ids,
        "submit_time": started["submit_time"].astype(float).tolist(),
        "duration": (end - started["start_time"]).clip(lower=0).tolist(),
        "gpus": started["gpus"].astype(int).tolist(),
        "num_nodes": started["num_nodes"].astype(int).tolist(),
        "time_limit": started["time_limit"].astype(float).tolist(),
        "job_class": [
            c if s == "tag" else ""
            for c, s in zip(started["job_class"], started["class_source"], strict=True)
        ],
        "user": started["user"].tolist(),
        "account": started["account"].tolist(),
        "partition": started["partition"].tolist(),
        "name": [""] * len(started),
        "line": (started.index.to_numpy() + 2).tolist(),  # record order (header = 1)
    }
    epoch = None
    if len(started):
        epoch = datetime.fromtimestamp(float(started["submit_time"].min()))
    trace = Trace(jobs=_frame(rows, str(path)), source=str(path), fmt="sacct", epoch=epoch)
    if dropped:
        trace.notes.append(f"dropped {dropped} jobs that never started or hold no GPU")
    if repeated:
        trace.notes.append(
            f"{repeated} records repeat a job id (requeued runs, or ids handed "
            f"out again): each is a job, its id suffixed -runN"
        )
    return trace


def guess_format(path) -> str:
    """The trace format from the file name or its first line (philly, swf, openb, sacct,
    alibaba-inference)."""
    name = Path(path).name.lower()
    if name.endswith(".swf") or name.endswith(".swf.txt"):
        return "swf"
    if name.endswith(".json"):
        return "sacct"
    opener = gzip.open if name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            first = fh.readline()
    except OSError as exc:
        raise InputError(f"{path}: cannot read trace ({exc.strerror or exc})") from None
    if first.startswith("timestamp,") or "num_gpus" in first and "cluster" in first:
        return "philly"
    if first.startswith("name,") and "gpu_milli" in first:
        return "openb"
    if first.startswith("instance_sn,") and "app_name" in first:
        return "alibaba-inference"
    if "|" in first and "JobID" in first:
        return "sacct"
    if first.lstrip().startswith(";") or first.lstrip()[:1].isdigit():
        return "swf"
    raise InputError(
        f"{path}:1: cannot tell the trace format; pass --trace-format ({'|'.join(TRACE_FORMATS)})"
    )


def read_trace(
    path, fmt: str | None = None, *, procs_per_gpu: int = 1, openb_mode: str = "arrival"
) -> Trace:
    """Read a trace of format ``fmt`` (guessed when None). A trace with no job to replay (a
    header only, or every job dropped) is an InputError: a run over nothing has no result."""
    fmt = fmt or guess_format(path)
    readers = {
        "philly": read_philly,
        "swf": lambda p: read_swf(p, procs_per_gpu=procs_per_gpu),
        "openb": lambda p: read_openb(p, mode=openb_mode),
        "sacct": read_sacct,
        "alibaba-inference": read_alibaba_inference,
    }
    if fmt not in readers:
        raise InputError(f"unknown trace format {fmt!r}; choose one of: {', '.join(TRACE_FORMATS)}")
    trace = readers[fmt](path)
    if not len(trace):
        why = f" ({'; '.join(trace.notes)})" if any("dropped" in n for n in trace.notes) else ""
        raise InputError(
            f"{path}: no job in the {fmt} trace{why}; expected at least one job "
            "line after the header"
        )
    return trace


def bundled_trace_path() -> Path:
    """The Philly slice shipped inside the package (see data/traces/README.md)."""
    return (
        Path(__file__).resolve().parent.parent / "data" / "traces" / "philly-2017-10-16-to-18.csv"
    )
