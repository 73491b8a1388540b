"""Slurm accounting (sacct through slurmdbd) into the job-record table of :mod:`kant_slurm.metrics`.

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

Large windows are read in time chunks (``chunk_s``), each parsed into compact columns at once, so
memory holds one chunk's text plus the records, never the whole history's text.

Per-node GPUs: sacct gives a job's total GPUs (``AllocTRES gres/gpu=N``) and its node list, not
the split; it is taken as even, the remainder on the first nodes (exact for ``--gres=gpu:K``
per node, which is how multi-node GPU jobs are asked for).

Only :func:`read_sacct_chunks` runs a command, through :func:`kant_slurm.slurm.backend.run_slurm`;
everything else is pure.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from ..hostlist import expand
from ..metrics.records import RECORD_COLUMNS, make_records
from ..model import Job
from .backend import run_slurm
from .tags import parse_kant_tag

log = logging.getLogger(__name__)

# Field order of the sacct call. AdminComment is last so that a '|' inside it (sacct -P does not
# escape) stays in that one field.
SACCT_FIELDS = (
    "JobID", "JobIDRaw", "JobName", "User", "Account", "Partition", "QOS", "State", "Submit",
    "Start", "End", "ElapsedRaw", "TimelimitRaw", "NNodes", "NodeList", "AllocTRES", "ReqTRES",
    "AdminComment",
)
REQUIRED_FIELDS = ("JobID", "Submit", "Start", "End", "NodeList", "AllocTRES", "State")
DEFAULT_CHUNK_S = 86_400.0
_ARRAY_PENDING = re.compile(r"^(\d+)_\[([^\]]+)\]$")
_GPU = re.compile(r"gres/gpu=(\d+)")
MAX_ARRAY_EXPAND = 100_000  # tasks of one pending array record turned into rows


# --------------------------------------------------------------------------------------------
# Pure parsing
# --------------------------------------------------------------------------------------------


def split_sacct_lines(text: str, fields: Sequence[str] | None = None,
                      source: str = "sacct") -> dict[str, list[str]]:
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
                f"`sacct -P` dump with the fields {','.join(SACCT_FIELDS)}")
    fields = list(fields)
    n = len(fields)
    body = lines[start:]
    rows = [line.split("|", n - 1) for line in body if line.strip()]
    short = next((i for i, r in enumerate(rows) if len(r) != n), None)
    if short is not None:
        # Back to the line number (blank lines were skipped).
        lineno = start + [i for i, line in enumerate(body) if line.strip()][short] + 1
        raise InputError(f"{source}: line {lineno}: {len(rows[short])} '|' fields, expected "
                         f"{n} ({'|'.join(fields)}): {lines[lineno - 1][:120]!r}")
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
        return np.array([v if v[:1].isdigit() and v.replace(".", "", 1).isdigit() else "nan"
                         for v in values], dtype=float)


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
            raise InputError(f"{source}: field {field} = {first!r}: expected epoch seconds "
                             "(SLURM_TIME_FORMAT=%s) or YYYY-MM-DDTHH:MM:SS")
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
    from .parse import parse_duration

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
    per = np.array([int(m.group(1)) if (m := _GPU.search(u or "")) else 0 for u in uniques],
                   dtype=np.int64)
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


def classify_rows(qos: Sequence[str], partition: Sequence[str],
                  classify: Callable[[Job], Job] | None) -> tuple[list[str], list[str]]:
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
                job = classify(Job(job_id="0", state="PENDING", num_nodes=1, gpus_per_node=0,
                                   submit_time=0.0, qos=q,
                                   partitions=tuple(x for x in p.split(",") if x)))
                hit = (job.job_class, job.class_source)
            memo[key] = hit
        classes.append(hit[0])
        sources.append(hit[1])
    return classes, sources


def records_from_columns(cols: dict[str, list[str]], *, since: float | None = None,
                         until: float | None = None,
                         classify: Callable[[Job], Job] | None = None,
                         source: str = "sacct") -> pd.DataFrame:
    """sacct columns (from :func:`split_sacct_lines`) -> job records, clipped to the window.

    Adds the helper columns ``key`` (JobIDRaw/Submit/Start, unique per run), ``qos`` and
    ``runs`` (always 1; the table has one row per run) to the record columns.
    """
    if not cols or not cols.get("JobID"):
        return _empty()
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
            raise InputError(f"{source}: job {job_id[row]}: NodeList {text!r} is not a Slurm "
                             f"host list ({exc})") from None
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
                raise InputError(f"{source}: JobID {job_id[i]!r}: array expression not "
                                 "understood; expected e.g. 12_[1-10%2]") from None

    tag_class, est = _tag_fields(col("AdminComment"), source)
    partition = col("Partition")
    qos = col("QOS")
    rule_class, rule_source = classify_rows(qos, partition, classify)
    job_class = [t or r for t, r in zip(tag_class, rule_class, strict=True)]
    class_source = ["tag" if t else s for t, s in zip(tag_class, rule_source, strict=True)]
    key = [f"{r}/{cols['Submit'][i]}/{cols['Start'][i]}" for i, r in enumerate(raw)]

    frame = make_records(
        job_id=job_id, job_class=job_class, class_source=class_source, user=col("User"),
        account=col("Account"), partition=_per_distinct(partition, lambda v: v.split(",")[0]),
        submit_time=submit, start_time=start, end_time=end, num_nodes=nnodes, gpus=gpus,
        nodes=nodes_col, node_gpus=node_gpus, time_limit=limit, est_runtime=np.array(est),
        estimate_source=np.where(np.isnan(est), "", "user"), state=state,
        duration=np.where(np.isnan(end), np.nan, elapsed),
    )
    frame["key"] = key
    frame["qos"] = qos
    frame = frame[keep]
    if (repeat[keep] > 1).any():
        rep = repeat[keep]
        frame = frame.loc[frame.index.repeat(rep)].copy()
        task = np.concatenate([np.arange(r) for r in rep])
        frame["key"] = frame["key"] + np.where(rep.repeat(rep) > 1,
                                               pd.Series(task).astype(str).radd("#").to_numpy(),
                                               "")
    return frame.reset_index(drop=True)


def _empty() -> pd.DataFrame:
    frame = make_records(job_id=[], submit_time=[], gpus=[], nodes=[], node_gpus=[])
    frame["key"] = pd.Series(dtype=object)
    frame["qos"] = pd.Series(dtype=object)
    return frame


def parse_sacct_dump(text: str, *, since: float | None = None, until: float | None = None,
                     classify: Callable[[Job], Job] | None = None,
                     source: str = "sacct dump") -> pd.DataFrame:
    """A saved ``sacct -a -X -D -P`` dump (with its header line) -> job records.

    Runs seen twice (the same JobIDRaw, Submit and Start, as in concatenated chunk dumps) are
    kept once.
    """
    return read_sacct_dump(io.StringIO(text), since=since, until=until, classify=classify,
                           source=source)


def read_sacct_dump(lines: Iterable[str], *, since: float | None = None,
                    until: float | None = None, classify: Callable[[Job], Job] | None = None,
                    source: str = "sacct dump", block: int = 200_000) -> pd.DataFrame:
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
        return _empty()
    fields = list(split_sacct_lines(header + "\n", None, source).keys()) or \
        [f.strip() for f in header.split("|")]
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
        frames.append(records_from_columns(cols, since=since, until=until, classify=classify,
                                           source=source))
        del cols
    if not frames:
        return _empty()
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return frame.drop_duplicates("key", keep="last").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Running sacct
# --------------------------------------------------------------------------------------------


def _slurm_time(epoch: float) -> str:
    """sacct -S/-E take local time."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(epoch))


def sacct_argv(since: float, until: float, partition: str | None = None,
               account: str | None = None) -> list[str]:
    """The sacct command of one chunk (an argument list: no shell sees the values)."""
    argv = ["sacct", "-a", "-X", "-D", "-P", "-n", f"--format={','.join(SACCT_FIELDS)}",
            "-S", _slurm_time(since), "-E", _slurm_time(until)]
    if partition:
        argv += ["-r", partition]
    if account:
        argv += ["-A", account]
    return argv


@contextlib.contextmanager
def _epoch_times() -> Iterator[None]:
    """SLURM_TIME_FORMAT=%s for the sacct calls: epoch seconds, no time-zone guessing."""
    key = "SLURM_TIME_FORMAT"
    old = os.environ.get(key)
    os.environ[key] = "%s"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def chunk_bounds(since: float, until: float, chunk_s: float) -> list[tuple[float, float]]:
    """[since, until) cut into chunks of at most ``chunk_s`` seconds."""
    if until <= since:
        raise InputError(f"accounting window: --until ({_slurm_time(until)}) must be after "
                         f"--since ({_slurm_time(since)})")
    if chunk_s <= 0:
        raise InputError(f"accounting chunk: {chunk_s} s; expected a positive number of seconds")
    edges = list(np.arange(since, until, chunk_s)) + [until]
    return [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def read_sacct_chunks(since: float, until: float, *, chunk_s: float = DEFAULT_CHUNK_S,
                      partition: str | None = None, account: str | None = None,
                      classify: Callable[[Job], Job] | None = None,
                      runner: Callable[..., str] = run_slurm,
                      timeout: float = 600.0) -> pd.DataFrame:
    """Every allocation in [since, until) from sacct, one chunk of time per call.

    A run reaching past a chunk's end appears in the next chunk too; only the keys of such runs
    are carried over (bounded by the jobs running or pending at a chunk edge) to drop the repeat.
    """
    frames: list[pd.DataFrame] = []
    carried: set[str] = set()
    with _epoch_times():
        for a, b in chunk_bounds(since, until, chunk_s):
            text = runner(sacct_argv(a, b, partition, account), timeout=timeout)
            cols = split_sacct_lines(text, SACCT_FIELDS, source=f"sacct {_slurm_time(a)}")
            del text
            frame = records_from_columns(cols, since=since, until=until, classify=classify,
                                         source=f"sacct {_slurm_time(a)}")
            del cols
            frame = frame.drop_duplicates("key", keep="last")
            open_at_edge = frame["end_time"].isna() | (frame["end_time"] >= b)
            next_carried = set(frame.loc[open_at_edge, "key"])
            if carried:
                frame = frame[~frame["key"].isin(carried)]
            carried = next_carried
            frames.append(frame)
            log.info("sacct %s .. %s: %d runs", _slurm_time(a), _slurm_time(b), len(frame))
    if not frames:
        return _empty()
    out = pd.concat(frames, ignore_index=True)
    # A run first seen running, then ended in a later chunk, was kept from the first chunk:
    # sacct answers from the same database row, so both copies are the same.
    return out.drop_duplicates("key", keep="first").reset_index(drop=True)


def record_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Only the record columns (drops the reader's helper columns)."""
    return frame[list(RECORD_COLUMNS)]


def parse_when(text: str, option: str, now: float | None = None) -> float:
    """A --since/--until value: epoch seconds, YYYY-MM-DD[THH:MM[:SS]] (local), ``now`` or
    ``now-N{s,m,h,d}``."""
    now = time.time() if now is None else now
    t = text.strip()
    m = re.fullmatch(r"now(?:-(\d+)([smhd]?))?", t)
    if m:
        if not m.group(1):
            return now
        mult = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        return now - int(m.group(1)) * mult
    if re.fullmatch(r"\d{9,}(\.\d+)?", t):
        return float(t)
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M",
                "%Y-%m-%d"):
        try:
            return time.mktime(time.strptime(t, fmt))
        except ValueError:
            continue
    raise InputError(f"{option} {text!r}: expected YYYY-MM-DD[THH:MM[:SS]], epoch seconds, "
                     "now or now-N[smhd]")
