"""Slurm's small values, as its CLI prints them: numbers, node states, GRES, durations,
timestamps and the ``key=value`` records of ``scontrol show ... -o``. Pure (no command is run).

Inputs are what the CLI prints: ``squeue --json`` / ``sinfo --json`` (OpenAPI v0.0.38 in Slurm
22.05; v0.0.40+ nest numbers as ``{"set":..,"infinite":..,"number":..}`` and turn states into
lists, both are accepted), and the one-record-per-line text of ``scontrol show node -o``,
``show partition -o``, ``show job -d -o`` and ``show topology``. Tested on output recorded from
the real dev cluster (tests/fixtures/slurm-22.05/).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime

from ..errors import SlurmError


# States and flags of a node that may take no new work. Slurm prints a base state plus flags
# ("IDLE+DRAIN", "MIXED*"); a word matches by prefix, so DRAIN covers DRAINING (still runs its
# jobs, takes no new ones) and DRAINED, FAIL covers FAILING. POWERING_DOWN cannot run jobs until
# it is off; POWER_DOWN is a pending power-off (Slurm gives the node no new work).
# Schedulable on purpose:
# - PLANNED: Slurm's backfill holds the node for a higher-priority pending job. That job is in
#   the snapshot and the engine plans it (and keeps later jobs out of its way) itself; marking
#   the node unschedulable would hide it from that very job.
# - POWERED_DOWN / POWERING_UP (idle~ / idle#): power saving resumes the node when a job is
#   given to it, so it is capacity with a boot delay, not lost capacity.
# - COMPLETING: its last jobs are ending; it takes work again.
# MAINT / RESERVED (the node is in an advance reservation) are unschedulable here; build_snapshot
# opens such a node again when a reservation read beside the nodes covers it, since then
# pools.room_mask keeps other jobs off it and lets the reservation's own jobs in.
RESERVED_FLAGS = ("MAINT", "RESERVED")
_UNSCHEDULABLE = (
    "DOWN",
    "DRAIN",
    "FAIL",
    "INVAL",
    "REBOOT",
    "POWER_DOWN",
    "POWERING_DOWN",
    "NOT_RESPONDING",
    "FUTURE",
    "UNKNOWN",
) + RESERVED_FLAGS
# sinfo's one-character state suffixes (sinfo(1), NODE STATE CODES), as the flags they stand for.
_SUFFIX_FLAGS = {
    "*": "NOT_RESPONDING",
    "~": "POWERED_DOWN",
    "#": "POWERING_UP",
    "%": "POWERING_DOWN",
    "!": "POWER_DOWN",
    "$": "MAINT",
    "@": "REBOOT_REQUESTED",
    "^": "REBOOT_ISSUED",
    "-": "PLANNED",
}


# --------------------------------------------------------------------------------------------
# Small value parsers
# --------------------------------------------------------------------------------------------


def number(value, field: str = "value") -> float | None:
    """A Slurm number: plain, or v0.0.40+ ``{"set": bool, "infinite": bool, "number": n}``.

    Returns None for unset or infinite; raises SlurmError naming ``field`` on anything else.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, Mapping):
        if value.get("infinite") or not value.get("set", True):
            return None
        return number(value.get("number"), field)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise SlurmError(f"slurm field {field}: expected a number or {{set, number}}, got {value!r}")


def integer(value, field: str = "value", default: int = 0) -> int:
    n = number(value, field)
    return default if n is None else int(n)


def state_words(value) -> list[str]:
    """``"MIXED+DRAIN"``, ``"mixed"``, ``["MIXED", "DRAIN"]`` -> ``["MIXED", "DRAIN"]``;
    ``"IDLE*"`` -> ``["IDLE", "NOT_RESPONDING"]`` (a suffix becomes its flag)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = re.split(r"[+,]", value)
    out: list[str] = []
    for v in value:
        word = str(v).strip()
        base = word.rstrip("*~#!%$@^-")
        if not base:
            continue
        out.append(base.upper())
        # "IDLE*" is a node that does not respond, "idle~" one powered down: keep the flag.
        out.extend(_SUFFIX_FLAGS[c] for c in word[len(base) :] if _SUFFIX_FLAGS[c] not in out)
    return out


def schedulable_state(words: Sequence[str], state_flags: Sequence[str] = ()) -> bool:
    """False when the node is down, drained, failing, ... (no new work may land on it)."""
    return not any(
        w in _UNSCHEDULABLE or w.startswith(_UNSCHEDULABLE) for w in list(words) + list(state_flags)
    )


_GRES_ITEM = re.compile(
    r"^(?:gres[:/])?(?P<name>[a-zA-Z_]+)(?::(?P<type>[^:(]+?))?"
    r"(?::(?P<count>\d+))?"
    r"(?:\((?P<extra>[^)]*)\))?$"
)


def split_gres(text: str | None) -> list[str]:
    """Split a GRES list on commas outside parentheses (``gpu:h100:2(IDX:0,3)`` stays one)."""
    if not text or text in ("(null)", "N/A"):
        return []
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [x.strip() for x in out if x.strip()]


def parse_gpu_gres(text: str | None) -> tuple[int, str | None, tuple[int, ...] | None]:
    """GPUs in a GRES string: ``gpu:h100:8`` / ``gres/gpu:3`` / ``gpu:h100:3(IDX:1-3)``.

    Returns ``(count, type, indices)``; indices is None when the text has none (or ``N/A``).
    A GPU item written without a count means 1 (Slurm's default).
    """
    total, gtype, indices = 0, None, None
    for item in split_gres(text):
        m = _GRES_ITEM.match(item)
        if not m or m.group("name") != "gpu":
            continue
        typ, count = m.group("type"), m.group("count")
        if typ is not None and typ.isdigit() and count is None:
            typ, count = None, typ  # "gpu:8": the number is the count, not a type
        total += int(count) if count is not None else 1
        gtype = gtype or typ
        extra = m.group("extra") or ""
        if extra.startswith("IDX:"):
            idx = extra[4:]
            if idx and idx != "N/A":
                indices = (indices or ()) + tuple(parse_index_list(idx))
    return total, gtype, indices


def parse_index_list(text: str) -> list[int]:
    """``0-2,5`` -> ``[0, 1, 2, 5]``."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.extend(range(int(lo), int(hi) + 1))
        else:
            out.append(int(part))
    return out


def tres_count(text: str | None, key: str) -> int | None:
    """``cpu=2,gres/gpu=4`` -> 4 for key ``gres/gpu`` (None when absent)."""
    for item in (text or "").split(","):
        if "=" in item:
            k, v = item.split("=", 1)
            if k.strip() == key:
                m = re.match(r"^(\d+)", v.strip())
                if m:
                    return int(m.group(1))
    return None


def parse_duration(text: str | None) -> float | None:
    """Slurm time ``[D-]HH:MM:SS`` / ``MM:SS`` / minutes -> seconds; UNLIMITED/NONE -> None."""
    if text is None:
        return None
    text = text.strip()
    if text.upper() in ("", "UNLIMITED", "INFINITE", "NONE", "N/A", "PARTITION_LIMIT"):
        return None
    days = 0
    if "-" in text:
        d, text = text.split("-", 1)
        days = int(d)
    parts = [int(p) for p in text.split(":")]
    if len(parts) == 1:
        secs = parts[0] * 60 if days == 0 else parts[0] * 3600
    elif len(parts) == 2:
        secs = parts[0] * 60 + parts[1] if days == 0 else parts[0] * 3600 + parts[1] * 60
    elif len(parts) == 3:
        secs = parts[0] * 3600 + parts[1] * 60 + parts[2]
    else:
        raise SlurmError(f"slurm time {text!r}: expected [D-]HH:MM:SS")
    return float(days * 86400 + secs)


def parse_timestamp(text: str | None) -> float | None:
    """``2026-11-21T14:52:23`` (local time, as Slurm prints) -> epoch seconds."""
    if not text or text in ("None", "Unknown", "N/A", "(null)"):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise SlurmError(f"slurm timestamp {text!r}: expected YYYY-MM-DDTHH:MM:SS") from None


# --------------------------------------------------------------------------------------------
# scontrol one-line records
# --------------------------------------------------------------------------------------------

_KEY = re.compile(r"(?:(?<=\s)|^)([A-Za-z][A-Za-z0-9_:/]*)=")


def scontrol_pairs(line: str) -> list[tuple[str, str]]:
    """One ``scontrol show ... -o`` line -> ordered ``(key, value)`` pairs (keys may repeat).

    Values run to the next `` Key=``, so values with spaces (``OS=Linux 6.1 #1 SMP``) survive.
    """
    matches = list(_KEY.finditer(line))
    pairs = []
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(line)
        pairs.append((m.group(1), line[m.end() : end].strip()))
    return pairs


def scontrol_records(text: str) -> list[dict[str, str]]:
    """Every non-empty line -> a dict of its first occurrence of each key."""
    out = []
    for line in text.splitlines():
        if not line.strip() or "=" not in line:
            continue
        rec: dict[str, str] = {}
        for k, v in scontrol_pairs(line):
            rec.setdefault(k, v)
        out.append(rec)
    return out


def slurm_text(v: str | None) -> str:
    """A text value with Slurm's null markers ("(null)", "N/A", "None") as the empty string."""
    return "" if v in (None, "(null)", "N/A", "None") else v
