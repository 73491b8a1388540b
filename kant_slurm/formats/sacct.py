"""Pure parsers of Slurm accounting (``sacct``) into the job-record table
(:mod:`kant_slurm.formats.records`): ``sacct -P`` text and ``sacct --json``. Nothing here runs a
command; :mod:`kant_slurm.slurm.accounting` runs sacct and parses its output with these.

One row per allocation:

- ``sacct -X`` gives allocation-level records (no steps). Heterogeneous job components
  (``123+0``, ``123+1``) are separate allocations on separate nodes, so each is a row.
- ``-D`` (duplicates) gives every run of a requeued or restarted job: each run is its own
  allocation and is counted once, as Slurm's ``sreport`` job reports count it. Rows are keyed by
  (JobIDRaw, Submit, Start) so a run seen in two time chunks is kept once.
- A job array's tasks are rows of their own once they run; a pending array record
  (``123_[4-10%2]``) stands for several tasks and is expanded into one row per task.
- Window edges: a job still running at ``until`` has no end (it runs to the window's end), one
  that started after ``until`` is pending (no start, no nodes). A job cancelled while pending
  has no start and keeps its end (when it stopped asking for GPUs). The occupancy sweep clips the
  rest to the window. Wait times keep the real submit time.

Text is parsed in blocks into compact columns at once, so memory holds one block's text plus the
records, never a whole history's text.

Per-node GPUs: sacct gives a job's total GPUs (``AllocTRES gres/gpu=N``) and its node list, not
the split; it is taken as even, the remainder on the first nodes (exact for ``--gres=gpu:K``
per node, which is how multi-node GPU jobs are asked for).

``sacct --json`` (Slurm 22.05's data_parser, also the later ``{"set", "number"}`` number form) is
parsed into the same columns by :func:`parse_sacct_json`; :func:`parse_sacct` takes a saved dump
of either form.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..hostlist import expand
from ..model import Job
from .records import PREEMPTION_COLUMNS, RECORD_COLUMNS, make_records
from .slurm_values import parse_duration
from .tags import parse_kant_tag

log = logging.getLogger(__name__)

# Field order of the sacct call. AdminComment is last so that a '|' inside it (sacct -P does not
# escape) stays in that one field.
SACCT_FIELDS = (
    "JobID",
    "JobIDRaw",
    "JobName",
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
    "ReqTRES",
    "AdminComment",
)
REQUIRED_FIELDS = ("JobID", "Submit", "Start", "End", "NodeList", "AllocTRES", "State")
_ARRAY_PENDING = re.compile(r"^(\d+)_\[([^\]]+)\]$")
_GPU = re.compile(r"gres/gpu=(\d+)")
MAX_ARRAY_EXPAND = 100_000  # tasks of one pending array record turned into rows


# --------------------------------------------------------------------------------------------
# sacct -P text
# --------------------------------------------------------------------------------------------


def split_sacct_lines(
    text: str, fields: Sequence[str] | None = None, source: str = "sacct"
) -> dict[str, list[str]]:
    """``sacct -P`` text -> columns of strings.

    With ``fields`` None the first line must be sacct's header (``JobID|JobIDRaw|...``, as a
    dump saved without ``-n`` has); otherwise every line is data in ``fields`` order. The last
    field takes any extra ``|`` (free text). A short line raises InputError naming it.
    """
    lines = text.splitlines()
    start = 0
    if fields is None:
        while start < len(lines) and not lines[start].strip():
            start += 1
        if start >= len(lines):
            return {}
        fields = [f.strip() for f in lines[start].split("|")]
        start += 1
        missing = [f for f in REQUIRED_FIELDS if f not in fields]
        if missing:
            raise InputError(
                f"{source}: line {start}: header has no {missing[0]!r} field; expected a "
                f"`sacct -P` dump with the fields {','.join(SACCT_FIELDS)}"
            )
    fields = list(fields)
    n = len(fields)
    body = lines[start:]
    rows = [line.split("|", n - 1) for line in body if line.strip()]
    short = next((i for i, r in enumerate(rows) if len(r) != n), None)
    if short is not None:
        # Back to the line number (blank lines were skipped).
        lineno = start + [i for i, line in enumerate(body) if line.strip()][short] + 1
        raise InputError(
            f"{source}: line {lineno}: {len(rows[short])} '|' fields, expected "
            f"{n} ({'|'.join(fields)}): {lines[lineno - 1][:120]!r}"
        )
    if not rows:
        return {f: [] for f in fields}
    return {f: list(col) for f, col in zip(fields, zip(*rows, strict=True), strict=True)}


def _numbers(values: Sequence[str]) -> np.ndarray:
    """Plain decimal numbers as floats; anything else (None, UNLIMITED, ISO times) NaN.

    numpy parses the strings in C: a few times faster than pandas.to_numeric on 1M rows.
    """
    try:
        return np.array(values, dtype=float)
    except ValueError:
        return np.array(
            [v if v[:1].isdigit() and v.replace(".", "", 1).isdigit() else "nan" for v in values],
            dtype=float,
        )


def _times(values: Sequence[str], source: str, field: str) -> np.ndarray:
    """Epoch seconds from sacct times: ``%s`` integers or ISO local times; Unknown/None -> NaN."""
    out = _numbers(values)
    todo = np.isnan(out)
    if todo.any():
        s = pd.Series(values, dtype=object)
        todo &= ~s.isin(["", "Unknown", "None", "N/A"]).to_numpy()
    if todo.any():
        iso = pd.to_datetime(s[todo], format="%Y-%m-%dT%H:%M:%S", errors="coerce")
        bad = iso.isna().to_numpy()
        if bad.any():
            first = s[todo][bad].iloc[0]
            raise InputError(
                f"{source}: field {field} = {first!r}: expected epoch seconds "
                "(SLURM_TIME_FORMAT=%s) or YYYY-MM-DDTHH:MM:SS"
            )
        # sacct prints local time; mktime applies the local zone and its DST.
        out[todo] = [time.mktime(t.timetuple()) for t in iso]
    return out


def _per_distinct(values: Sequence[str], f: Callable[[str], object]) -> np.ndarray:
    """``f`` of each value, computed once per distinct value (states, partitions repeat)."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=False)
    mapped = np.empty(len(uniques), dtype=object)
    for k, u in enumerate(uniques):
        mapped[k] = f(u)
    return mapped[codes]


def _minutes(values: Sequence[str]) -> np.ndarray:
    """TimelimitRaw (minutes; UNLIMITED/Partition_Limit -> NaN) -> seconds."""
    return _numbers(values) * 60


def _limit(values: Sequence[str]) -> np.ndarray:
    """Timelimit in [D-]HH:MM:SS form (dumps saved with Timelimit instead of TimelimitRaw)."""
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        try:
            d = parse_duration(v)
        except Exception:  # noqa: BLE001 - UNLIMITED, Partition_Limit, ...
            d = None
        if d is not None:
            out[i] = d
    return out


def _gpus(tres: Sequence[str]) -> np.ndarray:
    """``gres/gpu=N`` of each TRES string (0 without); the regex runs once per distinct string."""
    codes, uniques = pd.factorize(pd.Series(tres, dtype=object), use_na_sentinel=False)
    per = np.array(
        [int(m.group(1)) if (m := _GPU.search(u or "")) else 0 for u in uniques], dtype=np.int64
    )
    return per[codes] if len(per) else np.zeros(len(codes), dtype=np.int64)


def split_gpus(gpus: int, n_nodes: int) -> tuple[int, ...]:
    """Spread ``gpus`` over ``n_nodes`` evenly, the remainder on the first nodes."""
    if n_nodes <= 0:
        return ()
    base, extra = divmod(int(gpus), n_nodes)
    return tuple(base + (1 if i < extra else 0) for i in range(n_nodes))


def array_task_count(expr: str) -> int:
    """Tasks in an array expression such as ``4-10%2``, ``1,3,5-7`` or ``0-99:3``."""
    expr = expr.split("%")[0]
    total = 0
    for part in expr.split(","):
        part = part.strip()
        if not part:
            continue
        step = 1
        if ":" in part:
            part, s = part.split(":", 1)
            step = max(1, int(s))
        if "-" in part:
            a, b = part.split("-", 1)
            total += max(0, (int(b) - int(a)) // step + 1)
        else:
            int(part)
            total += 1
    return total


def _tag_fields(admin: Sequence[str], source: str) -> tuple[list[str], list[float]]:
    """Per row: workload from a kant tag ("" without one) and its est (NaN without)."""
    classes: list[str] = []
    est: list[float] = []
    bad = 0
    cache: dict[str, tuple[str, float]] = {}
    for text in admin:
        hit = cache.get(text)
        if hit is None:
            try:
                tag = parse_kant_tag(text)
            except InputError as exc:
                bad += 1
                if bad == 1:
                    log.warning("%s: ignoring a malformed kant tag (%s)", source, exc)
                tag = {}
            hit = (tag.get("workload", ""), float(tag["est"]) if "est" in tag else math.nan)
            if len(cache) < 100_000:
                cache[text] = hit
        classes.append(hit[0])
        est.append(hit[1])
    if bad > 1:
        log.warning("%s: %d malformed kant tags ignored", source, bad)
    return classes, est


def classify_rows(
    qos: Sequence[str], partition: Sequence[str], classify: Callable[[Job], Job] | None
) -> tuple[list[str], list[str]]:
    """Class and class source from config rules, once per distinct (QOS, partition) pair."""
    classes, sources = [], []
    memo: dict[tuple[str, str], tuple[str, str]] = {}
    for q, p in zip(qos, partition, strict=True):
        key = (q, p)
        hit = memo.get(key)
        if hit is None:
            if classify is None:
                hit = ("batch", "default")
            else:
                job = classify(
                    Job(
                        job_id="0",
                        state="PENDING",
                        num_nodes=1,
                        gpus_per_node=0,
                        submit_time=0.0,
                        qos=q,
                        partitions=tuple(x for x in p.split(",") if x),
                    )
                )
                hit = (job.job_class, job.class_source)
            memo[key] = hit
        classes.append(hit[0])
        sources.append(hit[1])
    return classes, sources


def records_from_columns(
    cols: dict[str, list[str]],
    *,
    since: float | None = None,
    until: float | None = None,
    classify: Callable[[Job], Job] | None = None,
    source: str = "sacct",
) -> pd.DataFrame:
    """sacct columns (from :func:`split_sacct_lines`) -> job records, clipped to the window.

    Adds the helper columns ``key`` (JobIDRaw/Submit/Start, unique per run), ``qos`` and
    ``runs`` (always 1; the table has one row per run) to the record columns.
    """
    if not cols or not cols.get("JobID"):
        return empty_records()
    n = len(cols["JobID"])

    def col(name: str, default: str = "") -> list[str]:
        return cols.get(name) or [default] * n

    job_id = list(cols["JobID"])
    raw = col("JobIDRaw") if "JobIDRaw" in cols else job_id
    submit = _times(cols["Submit"], source, "Submit")
    start = _times(cols["Start"], source, "Start")
    end = _times(cols["End"], source, "End")
    if "TimelimitRaw" in cols:
        limit = _minutes(cols["TimelimitRaw"])
    elif "Timelimit" in cols:
        limit = _limit(cols["Timelimit"])
    else:
        limit = np.full(n, np.nan)
    if "ElapsedRaw" in cols:
        elapsed = _numbers(cols["ElapsedRaw"])
    elif "Elapsed" in cols:
        elapsed = _limit(cols["Elapsed"])
    else:
        elapsed = end - start
    state = _per_distinct(cols["State"], lambda v: v.split(" ")[0] if v else "")
    alloc = _gpus(cols["AllocTRES"])
    req = _gpus(col("ReqTRES"))
    nnodes = np.nan_to_num(_numbers(col("NNodes", "1")), nan=1.0).astype(np.int64)
    nodelist = cols["NodeList"]

    # Drop runs wholly outside the window: submitted after it, or ended before it.
    keep = np.ones(n, dtype=bool)
    if until is not None:
        keep &= ~(submit > until)
    if since is not None:
        keep &= ~(end < since)
    # Pending at the window's end / running at it.
    if until is not None:
        late = start > until
        start = np.where(late, np.nan, start)
        end = np.where(late | (end > until), np.nan, end)
    # A job that never started keeps its end (cancelled while pending): its demand stops there.

    gpus = np.where(alloc > 0, alloc, req)
    # Host lists repeat a lot (one node, or the same set of nodes): expand each distinct one
    # once and index; a job that has not started holds no nodes whatever sacct prints.
    codes, uniques = pd.factorize(pd.Series(nodelist, dtype=object), use_na_sentinel=False)
    hosts_u: list[tuple[str, ...]] = []
    for k, text in enumerate(uniques):
        if not text or text in ("None assigned", "None", "(null)"):
            hosts_u.append(())
            continue
        try:
            hosts_u.append(tuple(expand(text)))
        except Exception as exc:  # noqa: BLE001 - any hostlist error: name the row
            row = int(np.argmax(codes == k))
            raise InputError(
                f"{source}: job {job_id[row]}: NodeList {text!r} is not a Slurm host list ({exc})"
            ) from None
    hosts_arr = np.empty(len(hosts_u) + 1, dtype=object)
    for k, h in enumerate(hosts_u):  # element by element: numpy would unpack the tuples
        hosts_arr[k] = h
    hosts_arr[-1] = ()
    codes = np.where(np.isnan(start), len(hosts_u), codes)
    n_hosts = np.array([len(h) for h in hosts_u] + [0], dtype=np.int64)[codes]
    nodes_col = hosts_arr[codes]
    nnodes = np.where(n_hosts > 0, n_hosts, nnodes)
    pair = gpus * 100_003 + n_hosts  # (GPUs, nodes) -> one code per distinct split
    pcodes, puniq = pd.factorize(pair)
    splits = np.empty(len(puniq), dtype=object)
    for k, p in enumerate(puniq):
        splits[k] = split_gpus(int(p // 100_003), int(p % 100_003))
    node_gpus = splits[pcodes] if len(puniq) else np.empty(0, dtype=object)

    # Pending job-array records stand for several tasks.
    repeat = np.ones(n, dtype=np.int64)
    for i in (i for i, j in enumerate(job_id) if "[" in j):
        m = _ARRAY_PENDING.match(job_id[i])
        if m and np.isnan(start[i]):
            try:
                repeat[i] = min(max(1, array_task_count(m.group(2))), MAX_ARRAY_EXPAND)
            except ValueError:
                raise InputError(
                    f"{source}: JobID {job_id[i]!r}: array expression not "
                    "understood; expected e.g. 12_[1-10%2]"
                ) from None

    tag_class, est = _tag_fields(col("AdminComment"), source)
    partition = col("Partition")
    qos = col("QOS")
    rule_class, rule_source = classify_rows(qos, partition, classify)
    job_class = [t or r for t, r in zip(tag_class, rule_class, strict=True)]
    class_source = ["tag" if t else s for t, s in zip(tag_class, rule_source, strict=True)]
    key = [f"{r}/{cols['Submit'][i]}/{cols['Start'][i]}" for i, r in enumerate(raw)]

    frame = make_records(
        job_id=job_id,
        job_class=job_class,
        class_source=class_source,
        user=col("User"),
        account=col("Account"),
        partition=_per_distinct(partition, lambda v: v.split(",")[0]),
        submit_time=submit,
        start_time=start,
        end_time=end,
        num_nodes=nnodes,
        gpus=gpus,
        nodes=nodes_col,
        node_gpus=node_gpus,
        time_limit=limit,
        est_runtime=np.array(est),
        estimate_source=np.where(np.isnan(est), "", "user"),
        state=state,
        duration=np.where(np.isnan(end), np.nan, elapsed),
    )
    frame["key"] = key
    frame["qos"] = qos
    frame = frame[keep]
    if (repeat[keep] > 1).any():
        rep = repeat[keep]
        frame = frame.loc[frame.index.repeat(rep)].copy()
        task = np.concatenate([np.arange(r) for r in rep])
        frame["key"] = frame["key"] + np.where(
            rep.repeat(rep) > 1, pd.Series(task).astype(str).radd("#").to_numpy(), ""
        )
    return frame.reset_index(drop=True)


def empty_records() -> pd.DataFrame:
    """No records, with the reader's helper columns (``key``, ``qos``)."""
    frame = make_records(job_id=[], submit_time=[], gpus=[], nodes=[], node_gpus=[])
    frame["key"] = pd.Series(dtype=object)
    frame["qos"] = pd.Series(dtype=object)
    return frame


def parse_sacct_dump(
    text: str,
    *,
    since: float | None = None,
    until: float | None = None,
    classify: Callable[[Job], Job] | None = None,
    source: str = "sacct dump",
) -> pd.DataFrame:
    """A saved ``sacct -a -X -D -P`` dump (with its header line) -> job records.

    Runs seen twice (the same JobIDRaw, Submit and Start, as in concatenated chunk dumps) are
    kept once.
    """
    return read_sacct_dump(
        io.StringIO(text), since=since, until=until, classify=classify, source=source
    )


def read_sacct_dump(
    lines: Iterable[str],
    *,
    since: float | None = None,
    until: float | None = None,
    classify: Callable[[Job], Job] | None = None,
    source: str = "sacct dump",
    block: int = 200_000,
) -> pd.DataFrame:
    """Like :func:`parse_sacct_dump` over an iterable of lines (an open file), ``block`` lines
    at a time, so a dump of millions of jobs never sits in memory as text or as str columns."""
    it = iter(lines)
    header = None
    lineno = 0
    for line in it:
        lineno += 1
        if line.strip():
            header = line.rstrip("\r\n")
            break
    if header is None:
        return empty_records()
    fields = list(split_sacct_lines(header + "\n", None, source).keys()) or [
        f.strip() for f in header.split("|")
    ]
    frames = []
    while True:
        chunk = list(itertools.islice(it, block))
        if not chunk:
            break
        try:
            cols = split_sacct_lines("".join(chunk), fields, source)
        except InputError as exc:
            raise InputError(f"{exc} (line numbers count from line {lineno + 1})") from None
        lineno += len(chunk)
        del chunk
        frames.append(
            records_from_columns(cols, since=since, until=until, classify=classify, source=source)
        )
        del cols
    if not frames:
        return empty_records()
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return frame.drop_duplicates("key", keep="last").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# sacct --json
# --------------------------------------------------------------------------------------------


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
    array_id = _num(array.get("job_id"))
    if task is not None and array_id:
        return f"{int(array_id)}_{int(task)}"
    het = job.get("het") or {}
    off = _num(het.get("job_offset"))
    het_id = _num(het.get("job_id"))
    if off is not None and het_id:
        return f"{int(het_id)}+{int(off)}"
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
    # sacct has no backfill flag or preemption history: make_records gives those their defaults.
    cols: dict[str, list] = {
        k: [] for k in RECORD_COLUMNS if k != "backfilled" and k not in PREEMPTION_COLUMNS
    }
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
        gpus = _gpus_of((job.get("tres") or {}).get("allocated")) or _gpus_of(
            (job.get("tres") or {}).get("requested")
        )
        text = str(job.get("nodes") or "")
        hosts: tuple[str, ...] = ()
        if not np.isnan(start) and text and text not in ("None assigned", "(null)"):
            try:
                hosts = tuple(expand(text))
            except Exception as exc:  # noqa: BLE001 - name the job on any hostlist error
                raise InputError(
                    f"{where}: field 'nodes' {text!r} is not a host list ({exc})"
                ) from None
        split: tuple[int, ...] = ()
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
    frame = parse_sacct_dump(text, source=source)
    return frame.drop(columns=[c for c in ("key", "qos", "runs") if c in frame.columns])
