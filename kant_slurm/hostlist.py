"""Slurm hostlist expressions: ``gn[01-04,07],cpu1`` <-> ``["gn01", ..., "cpu1"]``.

Pure functions; the syntax is Slurm's (src/common/hostlist.c): a prefix, a bracketed list of
numbers and ranges whose zero padding is kept, and several bracket groups in one name
(``r[1-2]n[1-2]``) expand as a cartesian product.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .errors import InputError

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def _split_top_level(expr: str) -> list[str]:
    """Split on commas that are not inside brackets."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(expr):
        if ch == "[":
            depth += 1
            if depth > 1:
                raise InputError(f"hostlist {expr!r}: nested '[' at position {i}")
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise InputError(f"hostlist {expr!r}: unmatched ']' at position {i}")
        elif ch == "," and depth == 0:
            parts.append(expr[start:i])
            start = i + 1
    if depth != 0:
        raise InputError(f"hostlist {expr!r}: unclosed '['")
    parts.append(expr[start:])
    return [p.strip() for p in parts if p.strip()]


def _expand_ranges(body: str, expr: str) -> list[str]:
    values: list[str] = []
    for item in body.split(","):
        m = _RANGE.match(item.strip())
        if not m:
            raise InputError(f"hostlist {expr!r}: {item!r} is not a number or a range like 01-04")
        lo_s, hi_s = m.group(1), m.group(2)
        if hi_s is None:
            values.append(lo_s)
            continue
        lo, hi = int(lo_s), int(hi_s)
        if hi < lo:
            raise InputError(f"hostlist {expr!r}: range {item!r} runs backwards")
        if hi - lo > 1_000_000:
            raise InputError(f"hostlist {expr!r}: range {item!r} is larger than 1,000,000 hosts")
        width = len(lo_s) if lo_s.startswith("0") else 0
        values.extend(str(n).zfill(width) for n in range(lo, hi + 1))
    return values


def _expand_one(name: str, expr: str) -> list[str]:
    open_at = name.find("[")
    if open_at < 0:
        return [name]
    close_at = name.find("]", open_at)
    prefix = name[:open_at]
    rest = _expand_one(name[close_at + 1 :], expr) if close_at + 1 < len(name) else [""]
    return [
        prefix + v + r for v in _expand_ranges(name[open_at + 1 : close_at], expr) for r in rest
    ]


def expand(expr: str | None) -> list[str]:
    """Expand a hostlist expression into host names, in order, keeping duplicates out."""
    if not expr or expr in ("(null)", "None"):
        return []
    seen: dict[str, None] = {}
    for part in _split_top_level(expr):
        for host in _expand_one(part, expr):
            seen.setdefault(host, None)
    return list(seen)


_TAIL_NUMBER = re.compile(r"^(.*?)(\d+)$")


def compress(hosts: Iterable[str]) -> str:
    """Compress host names into the shortest usual Slurm form, e.g. ``gn[01-04,07],cpu1``.

    Hosts with the same prefix and number width are grouped; order of first appearance of each
    prefix is kept so the result is stable.
    """
    groups: dict[tuple[str, int], list[int]] = {}
    plain: list[str] = []
    order: list[tuple[str, int] | str] = []
    for host in hosts:
        m = _TAIL_NUMBER.match(host)
        if not m:
            if host not in plain:
                plain.append(host)
                order.append(host)
            continue
        prefix, digits = m.group(1), m.group(2)
        width = len(digits) if digits.startswith("0") and len(digits) > 1 else 0
        key = (prefix, width)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(int(digits))

    # "10" has no zero padding but belongs with "09" (width 2): gn[09-11], not gn09,gn[10-11].
    for (prefix, width), numbers in list(groups.items()):
        if width != 0:
            continue
        for n in list(numbers):
            padded = (prefix, len(str(n)))
            if padded in groups and padded[1] > 1:
                groups[padded].append(n)
                numbers.remove(n)
        if not numbers:
            del groups[(prefix, width)]
            order.remove((prefix, width))

    out: list[str] = []
    for entry in order:
        if isinstance(entry, str):
            out.append(entry)
            continue
        prefix, width = entry
        numbers = sorted(set(groups[entry]))
        if len(numbers) == 1:
            out.append(f"{prefix}{str(numbers[0]).zfill(width)}")
            continue
        ranges: list[str] = []
        lo = prev = numbers[0]
        following: list[int | None] = [*numbers[1:], None]
        for nxt in following:
            if nxt is not None and nxt == prev + 1:
                prev = nxt
                continue
            lo_s, hi_s = str(lo).zfill(width), str(prev).zfill(width)
            ranges.append(lo_s if lo == prev else f"{lo_s}-{hi_s}")
            if nxt is not None:
                lo = prev = nxt
        out.append(f"{prefix}[{','.join(ranges)}]")
    return ",".join(out)
