"""Pure parsers of saved ``sacct`` dumps (``--json`` and ``-P``) into the job-record table.

``sacct -P`` text goes through :func:`kant_slurm.slurm.accounting.parse_sacct_dump` (the same
reader ``kant-slurm report`` uses); ``sacct --json`` (Slurm 22.05's data_parser, also the later
``{"set", "number"}`` number form) is parsed here into the same columns
(:mod:`kant_slurm.metrics.records`). Nothing here runs a command.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..hostlist import expand
from ..metrics.records import make_records
from .tags import parse_kant_tag


def _num(value: Any) -> float | None:
    """A JSON number, or Slurm >= 23.02's ``{"set": bool, "infinite": bool, "number": n}``."""
    if isinstance(value, Mapping):
        if value.get("infinite") or not value.get("set", True):
            return None
        value = value.get("number")
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# Slurm's "no value" and "infinite" sentinels of 32-bit fields (NO_VAL, INFINITE). sacct --json of
# 24.11 and 26.05 gives a job cancelled while pending the start time NO_VAL; taken as a time it
# would be a start in 2106 and a negative run time.
_NO_VAL32 = 0xFFFFFFFE


def _epoch(value: Any) -> float:
    """A Unix time; unset, zero and Slurm's NO_VAL/INFINITE sentinels are NaN (no time)."""
    v = _num(value)
    return float("nan") if v is None or v <= 0 or v >= _NO_VAL32 else v


def _gpus_of(tres: Any) -> int:
    """GPUs in a TRES list: the plain ``gres/gpu`` entry, else the sum of typed ones."""
    plain, typed = None, 0
    for item in tres or ():
        if not isinstance(item, Mapping) or item.get("type") != "gres":
            continue
        name = str(item.get("name") or "")
        count = int(_num(item.get("count")) or 0)
        if name == "gpu":
            plain = count
        elif name.startswith("gpu:"):
            typed += count
    return plain if plain is not None else typed


def _job_id(job: Mapping) -> str:
    jid = str(job.get("job_id"))
    array = job.get("array") or {}
    task = _num(array.get("task_id"))
    if task is not None and _num(array.get("job_id")):
        return f"{int(_num(array['job_id']))}_{int(task)}"
    het = job.get("het") or {}
    off = _num(het.get("job_offset"))
    if off is not None and _num(het.get("job_id")):
        return f"{int(_num(het['job_id']))}+{int(off)}"
    return jid


def parse_sacct_json(data: str | Mapping, source: str = "sacct --json") -> pd.DataFrame:
    """``sacct --json`` output -> job records (one row per job record of the dump).

    Per-node GPUs are taken as even over the node list (sacct does not give the split), the
    remainder on the first nodes. The class comes from the kant tag in the admin comment
    (``class_source`` ``tag``), else ``batch``/``default``; rules in config apply later.
    """
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise InputError(f"{source}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("jobs"), list):
        raise InputError(f"{source}: expected a JSON object with a 'jobs' list (sacct --json)")
    cols: dict[str, list] = {k: [] for k in (
        "job_id", "job_class", "class_source", "user", "account", "partition", "submit_time",
        "start_time", "end_time", "num_nodes", "gpus", "nodes", "node_gpus", "time_limit",
        "est_runtime", "estimate_source", "state", "duration")}
    for k, job in enumerate(data["jobs"]):
        where = f"{source}: jobs[{k}]"
        if not isinstance(job, Mapping) or "job_id" not in job:
            raise InputError(f"{where}: expected an object with 'job_id'")
        t = job.get("time") or {}
        submit = _epoch(t.get("submission"))
        if np.isnan(submit):
            raise InputError(f"{where} (job {job.get('job_id')}): field 'time.submission' missing")
        start, end = _epoch(t.get("start")), _epoch(t.get("end"))
        if np.isnan(start):
            end = float("nan")
        limit = _num(t.get("limit"))
        state = job.get("state") or {}
        state = state.get("current") if isinstance(state, Mapping) else state
        if isinstance(state, list):
            state = state[0] if state else ""
        gpus = _gpus_of((job.get("tres") or {}).get("allocated")) or \
            _gpus_of((job.get("tres") or {}).get("requested"))
        text = str(job.get("nodes") or "")
        hosts: tuple[str, ...] = ()
        if not np.isnan(start) and text and text not in ("None assigned", "(null)"):
            try:
                hosts = tuple(expand(text))
            except Exception as exc:  # noqa: BLE001 - name the job on any hostlist error
                raise InputError(f"{where}: field 'nodes' {text!r} is not a host list "
                                 f"({exc})") from None
        split = ()
        if hosts:
            base, extra = divmod(int(gpus), len(hosts))
            split = tuple(base + (1 if i < extra else 0) for i in range(len(hosts)))
        comment = job.get("comment") or {}
        admin = comment.get("administrator") if isinstance(comment, Mapping) else None
        try:
            tag = parse_kant_tag(admin)
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
        cols["job_id"].append(_job_id(job))
        cols["job_class"].append(tag.get("workload", "batch"))
        cols["class_source"].append("tag" if "workload" in tag else "default")
        cols["user"].append(str(job.get("user") or ""))
        cols["account"].append(str(job.get("account") or ""))
        cols["partition"].append(str(job.get("partition") or "").split(",")[0])
        cols["submit_time"].append(submit)
        cols["start_time"].append(start)
        cols["end_time"].append(end)
        cols["num_nodes"].append(len(hosts) or int(_num(job.get("allocation_nodes")) or 1))
        cols["gpus"].append(int(gpus))
        cols["nodes"].append(hosts)
        cols["node_gpus"].append(split)
        cols["time_limit"].append(limit * 60.0 if limit else float("nan"))  # minutes
        cols["est_runtime"].append(float(tag["est"]) if "est" in tag else float("nan"))
        cols["estimate_source"].append("user" if "est" in tag else "")
        cols["state"].append(str(state or ""))
        cols["duration"].append(end - start if not np.isnan(end) else float("nan"))
    return make_records(**cols)


def parse_sacct(text: str, source: str = "sacct dump") -> pd.DataFrame:
    """A saved dump of either form (JSON when it starts with ``{``, else ``-P`` text)."""
    if text.lstrip().startswith("{"):
        return parse_sacct_json(text, source)
    from .accounting import parse_sacct_dump

    frame = parse_sacct_dump(text, source=source)
    return frame.drop(columns=[c for c in ("key", "qos", "runs") if c in frame.columns])
