"""The saved sacct dumps ``kant-slurm report --input`` reads: ``sacct -P`` text or ``sacct --json``.

Both forms end in the same records, through the same window clipping and class rules
(:func:`kant_slurm.formats.sacct.records_from_columns`): a JSON dump is first turned into
the columns ``sacct -P`` would have printed for the same jobs. Pure; nothing runs a command.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import cast

import numpy as np
import pandas as pd

from ..errors import InputError
from ..formats import sacct
from ..formats.sacct import parse_sacct_json
from ..model import Job


def _stamp(value: float) -> str:
    # records_from_columns reads epoch seconds (SLURM_TIME_FORMAT=%s); NaN is sacct's Unknown.
    return "Unknown" if value is None or not math.isfinite(value) else str(int(value))


def json_dump_columns(data: str | Mapping, source: str) -> dict[str, list[str]]:
    """``sacct --json`` -> the ``sacct -P`` columns of the same jobs (field name -> values)."""
    if isinstance(data, str):
        try:
            # Any JSON value: parse_sacct_json below refuses whatever is not sacct's object.
            data = cast(Mapping, json.loads(data))
        except json.JSONDecodeError as exc:
            raise InputError(f"{source}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    records = parse_sacct_json(data, source)  # validates every job and names the bad one
    jobs = data["jobs"]
    cols: dict[str, list[str]] = {
        k: []
        for k in (
            "JobID",
            "JobIDRaw",
            "User",
            "Account",
            "Partition",
            "QOS",
            "State",
            "Submit",
            "Start",
            "End",
            "ElapsedRaw",
            "TimelimitRaw",
            "NNodes",
            "NodeList",
            "AllocTRES",
            "AdminComment",
        )
    }
    for job, rec in zip(jobs, records.itertuples(index=False), strict=True):
        comment = job.get("comment") or {}
        admin = comment.get("administrator") if isinstance(comment, Mapping) else None
        limit = rec.time_limit
        cols["JobID"].append(str(rec.job_id))
        cols["JobIDRaw"].append(str(job.get("job_id")))
        cols["User"].append(str(rec.user))
        cols["Account"].append(str(rec.account))
        cols["Partition"].append(str(job.get("partition") or ""))
        cols["QOS"].append(str(job.get("qos") or ""))
        cols["State"].append(str(rec.state))
        cols["Submit"].append(_stamp(rec.submit_time))
        cols["Start"].append(_stamp(rec.start_time))
        cols["End"].append(_stamp(rec.end_time))
        cols["ElapsedRaw"].append(_stamp(rec.duration))
        cols["TimelimitRaw"].append(
            "UNLIMITED" if not limit or limit != limit else str(int(round(limit / 60)))
        )
        cols["NNodes"].append(str(int(rec.num_nodes)))
        cols["NodeList"].append(",".join(rec.nodes) or "None assigned")
        cols["AllocTRES"].append(f"gres/gpu={int(rec.gpus)}" if rec.gpus else "")
        cols["AdminComment"].append(str(admin or ""))
    return cols


def is_json_dump(path: str) -> bool:
    """Whether the dump at ``path`` is ``sacct --json`` (its first non-blank character is ``{``)."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.strip():
                return line.lstrip().startswith("{")
    return False


def read_dump(
    path: str, *, since: float | None, until: float | None, classify: Callable[[Job], Job] | None
) -> pd.DataFrame:
    """The job records of a ``sacct -P`` or ``sacct --json`` dump, clipped to the window
    (``None``: that side open)."""
    try:
        if is_json_dump(path):
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            cols = json_dump_columns(text, path)
            frame = sacct.records_from_columns(
                cols, since=since, until=until, classify=classify, source=path
            )
            return frame.drop_duplicates("key", keep="last").reset_index(drop=True)
        with open(path, encoding="utf-8", errors="replace") as fh:
            return sacct.read_sacct_dump(
                fh, since=since, until=until, classify=classify, source=path
            )
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); expected "
            "a sacct -P or sacct --json dump"
        ) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def dump_span(records: pd.DataFrame) -> tuple[float, float] | None:
    """The time the dump covers: its first submit to its last submit, start or end; None when
    it holds no job."""
    if not len(records):
        return None
    times = np.concatenate(
        [records[c].to_numpy(dtype=float) for c in ("submit_time", "start_time", "end_time")]
    )
    times = times[np.isfinite(times)]
    if not len(times):
        return None
    t0 = float(records["submit_time"].min())
    t1 = float(times.max())
    # A dump of jobs that all submitted and ended in one second still needs a window.
    return t0, max(t1, t0 + 1.0)
