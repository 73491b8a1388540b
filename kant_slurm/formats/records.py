"""The job-record table: the one input of the metrics, from the simulator or from sacct.

A pandas DataFrame, one row per job (per allocation; a requeued job's runs are counted once by
the reader), with these columns:

================= ===================================================================
job_id            str
job_class         str: inference, training or batch
class_source      str: where the class came from (tag, qos, partition, trace, rule, default)
user, account     str ("" when unknown)
partition         str: the pool the job ran (or waits) in
submit_time       float seconds (trace seconds or epoch)
start_time        float, NaN if the job never started (in the window)
end_time          float, NaN if it had not ended when the window closed
num_nodes         int, nodes the job asked for / holds
gpus              int, total GPUs the job asked for / holds
nodes             tuple[str, ...]: the nodes it ran on (empty if it never started)
node_gpus         tuple[int, ...]: GPUs it held on each of ``nodes``
time_limit        float seconds, NaN = unlimited / unknown
est_runtime       float seconds: the runtime estimate the scheduler used, NaN if none
estimate_source   str: where est_runtime came from (time_limit, history, user, default)
backfilled        bool: started ahead of a blocked higher-ranked job
state             str: COMPLETED, TIMEOUT, RUNNING, PENDING, FAILED, CANCELLED, ...
duration          float seconds: the job's real run time (simulator: from the trace; sacct:
                  elapsed), used for estimate accuracy
last_start_time   float: start of the job's last run (the one on ``nodes``); NaN = same as
                  ``start_time``. ``start_time`` is always the *first* start, so waits and
                  SLA attainment count to the first start
preemptions       int: times the job was preempted (requeued); 0 by default
preempted_gpu_seconds  float: GPU-seconds of work lost to those preemptions (since the last
                  checkpoint before each); 0 by default
preempted_runs    tuple of (start, end, nodes, node_gpus): the runs cut short by preemption,
                  oldest first; their GPUs count in the occupancy timeline; () by default
sla               float seconds: the inference start-time SLA the job had, NaN = none
================= ===================================================================

Derived columns are computed on demand (:func:`wait_s`, :func:`size_buckets`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from ..model import size_bucket

# Issue 8 (preemption, inference SLA): optional, with defaults.
PREEMPTION_COLUMNS = (
    "last_start_time",
    "preemptions",
    "preempted_gpu_seconds",
    "preempted_runs",
    "sla",
)
RECORD_COLUMNS = (
    "job_id",
    "job_class",
    "class_source",
    "user",
    "account",
    "partition",
    "submit_time",
    "start_time",
    "end_time",
    "num_nodes",
    "gpus",
    "nodes",
    "node_gpus",
    "time_limit",
    "est_runtime",
    "estimate_source",
    "backfilled",
    "state",
    "duration",
) + PREEMPTION_COLUMNS

_DEFAULTS = {
    "job_class": "batch",
    "class_source": "default",
    "user": "",
    "account": "",
    "partition": "",
    "start_time": np.nan,
    "end_time": np.nan,
    "time_limit": np.nan,
    "est_runtime": np.nan,
    "estimate_source": "",
    "backfilled": False,
    "state": "",
    "duration": np.nan,
    "last_start_time": np.nan,
    "preemptions": 0,
    "preempted_gpu_seconds": 0.0,
    "preempted_runs": (),
    "sla": np.nan,
}
_TUPLE_COLUMNS = ("nodes", "node_gpus", "preempted_runs")


def make_records(**columns) -> pd.DataFrame:
    """Build a record table from column sequences; missing optional columns get defaults.

    Required: job_id, submit_time, gpus, nodes, node_gpus (num_nodes defaults to len(nodes)).
    """
    for key in ("job_id", "submit_time", "gpus", "nodes", "node_gpus"):
        if key not in columns:
            raise InputError(f"job records: column {key!r} is required")
    n = len(columns["job_id"])
    unknown = sorted(set(columns) - set(RECORD_COLUMNS))
    if unknown:
        raise InputError(f"job records: unknown column {unknown[0]!r}")
    data = {}
    for key in RECORD_COLUMNS:
        if key in columns:
            value = columns[key]
        elif key == "num_nodes":
            value = [max(1, len(x)) for x in columns["nodes"]]
        else:
            value = [_DEFAULTS[key]] * n
        if key in _TUPLE_COLUMNS:
            value = pd.Series([tuple(v) for v in value], dtype=object)
        elif len(value) != n:
            raise InputError(f"job records: column {key!r} has {len(value)} rows, job_id has {n}")
        data[key] = (
            value
            if isinstance(value, pd.Series)
            else list(value)
            if not isinstance(value, np.ndarray)
            else value
        )
    df = pd.DataFrame(data)
    return df.astype(
        {
            "job_id": str,
            "submit_time": float,
            "start_time": float,
            "end_time": float,
            "num_nodes": np.int64,
            "gpus": np.int64,
            "time_limit": float,
            "est_runtime": float,
            "backfilled": bool,
            "duration": float,
            "last_start_time": float,
            "preemptions": np.int64,
            "preempted_gpu_seconds": float,
            "sla": float,
        }
    )


def records_from_frame(df: pd.DataFrame, source: str = "job records") -> pd.DataFrame:
    """Check a DataFrame has the record columns (adding optional ones with defaults)."""
    cols = {
        c: df[c].to_numpy() if c not in _TUPLE_COLUMNS else list(df[c])
        for c in df.columns
        if c in RECORD_COLUMNS
    }
    try:
        return make_records(**cols)
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from None


def wait_s(records: pd.DataFrame) -> pd.Series:
    """start - submit per job (NaN for jobs that never started)."""
    return records["start_time"] - records["submit_time"]


def last_start(records: pd.DataFrame) -> pd.Series:
    """Start of each job's last run (its first start when it was never preempted)."""
    if "last_start_time" not in records:
        return records["start_time"]
    return records["last_start_time"].where(
        records["last_start_time"].notna(), records["start_time"]
    )


def size_buckets(records: pd.DataFrame) -> pd.Series:
    """Each job's GPU size bucket (1, 2-8, 9-64, 65+)."""
    return records["gpus"].map(size_bucket)


def explode_nodes(records: pd.DataFrame, index) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (job, node) pair: the job's row, the node's inventory index and the GPUs held.

    ``index`` maps node name -> inventory position; unknown names raise InputError.
    """
    lengths = np.fromiter((len(x) for x in records["nodes"]), dtype=np.int64, count=len(records))
    rows = np.repeat(np.arange(len(records)), lengths)
    names: Sequence[str] = [n for x in records["nodes"] for n in x]
    try:
        idx = np.fromiter((index[n] for n in names), dtype=np.int64, count=len(names))
    except KeyError as exc:
        raise InputError(f"job records: node {exc.args[0]!r} is not in the inventory") from None
    gpus = np.fromiter(
        (g for x in records["node_gpus"] for g in x), dtype=np.int64, count=len(names)
    )
    return rows, idx, gpus
