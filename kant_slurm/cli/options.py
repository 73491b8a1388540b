"""Option groups shared by several commands (reusable decorators, as sqlite-utils does)."""

from __future__ import annotations

import json
from typing import Any

import click

from ..jsonready import json_ready


def json_option(f):
    """``--json``: machine-readable output with stable keys instead of the table."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(f)


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON (NaN becomes null, numpy numbers become plain)."""
    click.echo(json.dumps(json_ready(data), indent=2, sort_keys=False))


# --------------------------------------------------------------------------------------------
# sacct's time forms (-S/--starttime, -E/--endtime)
# --------------------------------------------------------------------------------------------

_UNITS = {
    "": 1,
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
    "weeks": 604800,
}
_DATE_FORMS = (
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
)
TIME_FORMS = (
    "now, now-7days, now-2hours, now-30minutes (sacct's units; also s/m/h/d/w), "
    "YYYY-MM-DD[THH:MM[:SS]] (local time), today, midnight, epoch seconds"
)


def parse_slurm_time(text: str, now: float) -> float:
    """Epoch seconds of one of sacct's time forms (see :data:`TIME_FORMS`); ValueError if none.

    As sacct reads them: ``now[{+|-}N[unit]]`` with N in seconds when no unit is given, a
    local date or date and time, ``today``/``midnight`` (the start of today).
    """
    import re
    import time as _time

    t = text.strip().lower()
    m = re.fullmatch(r"now(?:([+-])(\d+)([a-z]*))?", t)
    if m:
        if not m.group(1):
            return now
        if m.group(3) not in _UNITS:
            raise ValueError(f"unknown unit {m.group(3)!r}")
        delta = int(m.group(2)) * _UNITS[m.group(3)]
        return now - delta if m.group(1) == "-" else now + delta
    if t in ("today", "midnight"):
        day = _time.localtime(now)
        return _time.mktime((day.tm_year, day.tm_mon, day.tm_mday, 0, 0, 0, 0, 0, -1))
    if re.fullmatch(r"\d{9,}(\.\d+)?", t):
        return float(t)
    for form in _DATE_FORMS:
        try:
            return _time.mktime(_time.strptime(text.strip(), form))
        except ValueError:
            continue
    raise ValueError("not a time")


class SlurmTime(click.ParamType):
    """A click type for sacct's time forms; the value stays text until the command knows `now`
    (so --help shows what the user typed and one `now` serves both ends of a window)."""

    name = "TIME"

    def convert(self, value, param, ctx):
        import time as _time

        if value is None:
            return None
        try:
            parse_slurm_time(str(value), _time.time())
        except ValueError:
            self.fail(f"{value!r}: expected {TIME_FORMS}", param, ctx)
        return str(value)


def window_options(f):
    """``-S/--starttime`` and ``-E/--endtime`` as sacct spells them; ``--since``/``--until``
    stay as the same options' older names."""
    f = click.option(
        "-E",
        "--endtime",
        "--until",
        "until",
        type=SlurmTime(),
        default=None,
        help="Window end (same forms)  [default: now; with --input: the dump's last time].",
    )(f)
    f = click.option(
        "-S",
        "--starttime",
        "--since",
        "since",
        type=SlurmTime(),
        default=None,
        help=f"Window start: {TIME_FORMS}  [default: now-1day; with --input: the "
        f"dump's first submit].",
    )(f)
    return f


# --------------------------------------------------------------------------------------------
# Tabular output as Slurm's commands print it: -h/--noheader, -P/--parsable, -o/--format
# --------------------------------------------------------------------------------------------

NO_HELP_SHORTCUT = {"help_option_names": ["--help"]}  # -h is --noheader there, as in Slurm


def table_options(f):
    """``-h/--noheader``, ``-P/--parsable`` and ``-o/--format`` (a command using them also takes
    ``context_settings=NO_HELP_SHORTCUT`` so that ``-h`` is free)."""
    f = click.option(
        "-o",
        "--format",
        "fields",
        default=None,
        metavar="FIELD[,FIELD...]",
        help="Print these fields as a table (--format=help lists them).",
    )(f)
    f = click.option(
        "-P", "--parsable", is_flag=True, help="Print the fields '|'-separated, as sacct -P does."
    )(f)
    f = click.option(
        "-h", "--noheader", is_flag=True, help="Print the field table without its header line."
    )(f)
    return f


def wants_table(fields: str | None, parsable: bool, noheader: bool) -> bool:
    """Whether -o, -P or -h asked for the field table instead of the readable output."""
    return bool(fields) or parsable or noheader


def format_table(
    rows: list[dict[str, Any]],
    fields: str | None,
    default: tuple[str, ...],
    *,
    parsable: bool = False,
    noheader: bool = False,
) -> str:
    """``rows`` as a table of ``fields`` (comma-separated, case-insensitive; ``default`` when
    None): aligned columns, or ``|``-separated with ``parsable``. Raises click.UsageError on an
    unknown field, naming the known ones."""
    known = list(rows[0]) if rows else list(default)
    wanted = [x.strip() for x in fields.split(",") if x.strip()] if fields else list(default)
    lower = {k.lower(): k for k in known}
    if fields and fields.strip().lower() == "help":
        return "\n".join(known)
    bad = [x for x in wanted if x.lower() not in lower]
    if bad:
        raise click.UsageError(f"--format: unknown field {bad[0]!r}; fields: {','.join(known)}")
    cols = [lower[x.lower()] for x in wanted]
    cells = [[_cell(row.get(c)) for c in cols] for row in rows]
    if parsable:
        lines = ([] if noheader else ["|".join(cols)]) + ["|".join(r) for r in cells]
        return "\n".join(lines)
    width = [max([len(c)] + [len(r[k]) for r in cells]) for k, c in enumerate(cols)]
    out = (
        []
        if noheader
        else [
            " ".join(c.rjust(w) for c, w in zip(cols, width, strict=True)),
            " ".join("-" * w for w in width),
        ]
    )
    out += [" ".join(v.rjust(w) for v, w in zip(r, width, strict=True)) for r in cells]
    return "\n".join(out)


def _cell(value: Any) -> str:
    value = json_ready(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)
