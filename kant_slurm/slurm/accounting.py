"""Running ``sacct`` (through slurmdbd) over a time window, in chunks, into the job-record
table; the parsing is :mod:`kant_slurm.formats.sacct`.

Large windows are read in time chunks (``chunk_s``), each parsed into compact columns at once, so
memory holds one chunk's text plus the records, never the whole history's text.

Only :func:`read_sacct_chunks` runs a command, through :func:`kant_slurm.slurm.backend.run_slurm`;
the window helpers are pure.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from ..errors import InputError
from ..formats.records import RECORD_COLUMNS
from ..formats.sacct import SACCT_FIELDS, empty_records, records_from_columns, split_sacct_lines
from ..model import Job
from .backend import run_slurm

log = logging.getLogger(__name__)

DEFAULT_CHUNK_S = 86_400.0


def _slurm_time(epoch: float) -> str:
    """sacct -S/-E take local time."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(epoch))


def sacct_argv(
    since: float, until: float, partition: str | None = None, account: str | None = None
) -> list[str]:
    """The sacct command of one chunk (an argument list: no shell sees the values)."""
    argv = [
        "sacct",
        "-a",
        "-X",
        "-D",
        "-P",
        "-n",
        f"--format={','.join(SACCT_FIELDS)}",
        "-S",
        _slurm_time(since),
        "-E",
        _slurm_time(until),
    ]
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
        raise InputError(
            f"accounting window: --until ({_slurm_time(until)}) must be after "
            f"--since ({_slurm_time(since)})"
        )
    if chunk_s <= 0:
        raise InputError(f"accounting chunk: {chunk_s} s; expected a positive number of seconds")
    edges = list(np.arange(since, until, chunk_s)) + [until]
    return [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def read_sacct_chunks(
    since: float,
    until: float,
    *,
    chunk_s: float = DEFAULT_CHUNK_S,
    partition: str | None = None,
    account: str | None = None,
    classify: Callable[[Job], Job] | None = None,
    runner: Callable[..., str] = run_slurm,
    timeout: float = 600.0,
) -> pd.DataFrame:
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
            frame = records_from_columns(
                cols, since=since, until=until, classify=classify, source=f"sacct {_slurm_time(a)}"
            )
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
        return empty_records()
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
    for fmt in (
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d",
    ):
        try:
            return time.mktime(time.strptime(t, fmt))
        except ValueError:
            continue
    raise InputError(
        f"{option} {text!r}: expected YYYY-MM-DD[THH:MM[:SS]], epoch seconds, now or now-N[smhd]"
    )
