"""Declared template parameters: the schema of a template's sidecar file and value checking.

Each template ``NAME.sbatch.j2`` has a sidecar ``NAME.yaml`` that declares every parameter once:
name, type, default, required, help and validation (pattern, min/max, choices). Values from
``--set key=value`` (strings) and ``--values FILE.yaml`` (typed) are checked against it; an unknown
key, a missing required key or a bad value is a :class:`TemplateError` that lists the valid keys
and their defaults.

Pure functions only: nothing here renders, runs or reads anything but the sidecar file given.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import TemplateError

PARAM_TYPES = ("str", "int", "bool", "duration", "choice", "argv", "env")
"""Value types a template may declare.

- ``str``: one string (``pattern`` may restrict it);
- ``int``: an integer within ``min``/``max``;
- ``bool``: true/false (also yes/no, 1/0 from ``--set``);
- ``duration``: a Slurm time (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``,
  ``D-HH:MM:SS``), kept as seconds;
- ``choice``: one of ``choices``;
- ``argv``: a command as a list of words (a string from ``--set`` is split like a shell would,
  each word then reaches the script quoted, so nothing in it is ever expanded);
- ``env``: a mapping of environment variable names to string values.
"""

SPEC_KEYS = {
    "name",
    "type",
    "default",
    "required",
    "help",
    "pattern",
    "min",
    "max",
    "choices",
    "allow_unlimited",
    "key_pattern",
    "example",
}

MAX_DURATION_S = 365 * 86400
"""Longest duration accepted (one year): longer is almost surely a typo (minutes for seconds)."""

UNLIMITED = -1
"""Seconds value of ``UNLIMITED``/``INFINITE`` where a parameter allows it."""

_DURATION_FORMS = (
    # (regex, names of the captured fields in order); mirrors Slurm's time_str2mins forms.
    (re.compile(r"([0-9]{1,8})"), ("m",)),
    (re.compile(r"([0-9]{1,8}):([0-9]{1,8})"), ("m", "s")),
    (re.compile(r"([0-9]{1,8}):([0-9]{1,8}):([0-9]{1,8})"), ("h", "m", "s")),
    (re.compile(r"([0-9]{1,8})-([0-9]{1,8})"), ("d", "h")),
    (re.compile(r"([0-9]{1,8})-([0-9]{1,8}):([0-9]{1,8})"), ("d", "h", "m")),
    (re.compile(r"([0-9]{1,8})-([0-9]{1,8}):([0-9]{1,8}):([0-9]{1,8})"), ("d", "h", "m", "s")),
)
_UNIT_S = {"d": 86400, "h": 3600, "m": 60, "s": 1}

DURATION_HELP = "a Slurm time: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"


def parse_duration(text: str) -> int:
    """Seconds of a Slurm time string; ``ValueError`` naming the accepted forms otherwise.

    Accepted: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS`` (ASCII digits,
    at most 8 per field), more than 0 and at most one year. The SPANK plugin's C parser
    (spank/kant_spank.c) implements the same rules; a unit test checks that they agree.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected {DURATION_HELP}, got {text!r}")
    for regex, units in _DURATION_FORMS:
        m = regex.fullmatch(text)
        if m is None:
            continue
        seconds = sum(int(v) * _UNIT_S[u] for v, u in zip(m.groups(), units, strict=True))
        if seconds <= 0:
            raise ValueError(f"duration {text!r} is zero; expected more than 0")
        if seconds > MAX_DURATION_S:
            raise ValueError(f"duration {text!r} is over one year ({MAX_DURATION_S} s)")
        return seconds
    raise ValueError(f"expected {DURATION_HELP}, got {text!r}")


def format_duration(seconds: int) -> str:
    """Seconds as Slurm's ``D-HH:MM:SS`` (``HH:MM:SS`` under a day); ``UNLIMITED`` for -1."""
    if seconds == UNLIMITED:
        return "UNLIMITED"
    days, rest = divmod(int(seconds), 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    hms = f"{h:02d}:{m:02d}:{s:02d}"
    return f"{days}-{hms}" if days else hms


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter of a template."""

    name: str
    type: str
    help: str
    default: Any = None
    required: bool = False
    pattern: str | None = None
    min: int | None = None
    max: int | None = None
    choices: tuple[str, ...] = ()
    allow_unlimited: bool = False
    key_pattern: str | None = None  # env: names allowed as keys
    example: Any = None  # shown by `kant-slurm templates`, used by nothing else

    def describe_default(self) -> str:
        """The default as the user would type it (for error messages and listings)."""
        if self.required:
            return "(required)"
        if self.default is None:
            return "(none)"
        if self.type == "duration":
            return format_duration(self.default)
        if self.type == "argv":
            return shlex.join(self.default) if self.default else "(none)"
        if self.type == "env":
            return ",".join(f"{k}={v}" for k, v in self.default.items()) or "(none)"
        if self.type == "bool":
            return "true" if self.default else "false"
        return str(self.default)

    def check(self, value: Any, where: str) -> Any:
        """The value converted to this parameter's type, or :class:`TemplateError`.

        ``where`` names the source (``--set``, a values file) for the message. Strings are
        converted (``"8"`` -> 8, ``"a b"`` -> ``["a", "b"]`` for argv); typed YAML values must
        already have the right shape.
        """
        try:
            return _CHECKERS[self.type](self, value)
        except (ValueError, TypeError) as exc:
            raise TemplateError(f"{where}: parameter {self.name!r}: {exc}") from None


def _check_str(spec: ParamSpec, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    value = str(value)
    if "\0" in value:
        raise ValueError("a NUL byte cannot reach a shell")
    if spec.pattern and not re.fullmatch(spec.pattern, value):
        raise ValueError(f"{value!r} does not match {spec.pattern}")
    return value


def _check_int(spec: ParamSpec, value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("expected an integer, got a boolean")
    if isinstance(value, str):
        if not re.fullmatch(r"[+-]?[0-9]{1,18}", value.strip()):
            raise ValueError(f"expected an integer, got {value!r}")
        value = int(value.strip())
    if not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    if spec.min is not None and value < spec.min:
        raise ValueError(f"{value} is below the minimum {spec.min}")
    if spec.max is not None and value > spec.max:
        raise ValueError(f"{value} is above the maximum {spec.max}")
    return value


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _check_bool(spec: ParamSpec, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"expected true or false, got {value!r}")


def _check_duration(spec: ParamSpec, value: Any) -> int:
    if isinstance(value, str) and value.strip().upper() in ("UNLIMITED", "INFINITE"):
        if not spec.allow_unlimited:
            raise ValueError("UNLIMITED is not allowed here; expected " + DURATION_HELP)
        return UNLIMITED
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # YAML reads `time: 90` as an int: Slurm's bare number is minutes
    return parse_duration(value)


def _check_choice(spec: ParamSpec, value: Any) -> str:
    if not isinstance(value, str) or value not in spec.choices:
        raise ValueError(f"{value!r} is not one of {', '.join(spec.choices)}")
    return value


def _check_argv(spec: ParamSpec, value: Any) -> list[str]:
    if isinstance(value, str):
        # Split like a shell would, so `--set 'program=train.py --lr 0.1'` is three words; the
        # words are quoted again when rendered, so `$(...)` or `;` inside stay literal.
        words = shlex.split(value)
    elif isinstance(value, (list, tuple)):
        words = []
        for w in value:
            if isinstance(w, bool) or not isinstance(w, (str, int, float)):
                raise TypeError(f"expected a list of strings, got an item {w!r}")
            words.append(str(w))
    else:
        raise TypeError(f"expected a command (a list of words or a string), got {value!r}")
    if any("\0" in w for w in words):
        raise ValueError("a NUL byte cannot reach a shell")
    if spec.required and not words:
        raise ValueError("expected at least one word")
    return words


_ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


def _check_env(spec: ParamSpec, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a mapping NAME: value, got {value!r}")
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not re.fullmatch(spec.key_pattern or _ENV_NAME, k):
            raise ValueError(f"variable name {k!r} does not match {spec.key_pattern or _ENV_NAME}")
        if isinstance(v, bool):
            v = "1" if v else "0"
        if not isinstance(v, (str, int, float)):
            raise TypeError(f"variable {k}: expected a string, got {v!r}")
        if "\0" in str(v):
            raise ValueError(f"variable {k}: a NUL byte cannot reach a shell")
        out[k] = str(v)
    return out


_CHECKERS = {
    "str": _check_str,
    "int": _check_int,
    "bool": _check_bool,
    "duration": _check_duration,
    "choice": _check_choice,
    "argv": _check_argv,
    "env": _check_env,
}


@dataclass(frozen=True)
class TemplateSpec:
    """A template's description and declared parameters, from its sidecar file."""

    name: str
    description: str
    params: tuple[ParamSpec, ...]
    source: str = ""  # the sidecar path, for messages
    checks: tuple[Mapping[str, Any], ...] = field(default=())  # cross-parameter rules

    @property
    def by_name(self) -> dict[str, ParamSpec]:
        return {p.name: p for p in self.params}

    def valid_keys_text(self) -> str:
        """``key=default`` for every parameter: what error messages list."""
        return ", ".join(f"{p.name}={p.describe_default()}" for p in self.params)


def parse_spec(name: str, data: Any, source: str) -> TemplateSpec:
    """Build a :class:`TemplateSpec` from a loaded sidecar mapping; strict about every key."""
    if not isinstance(data, Mapping):
        raise TemplateError(f"{source}: expected a mapping with 'description' and 'parameters'")
    unknown = set(data) - {"description", "parameters", "checks"}
    if unknown:
        raise TemplateError(
            f"{source}: unknown top-level key(s) {sorted(unknown)}; "
            "expected description, parameters, checks"
        )
    raw_params = data.get("parameters")
    if not isinstance(raw_params, list) or not raw_params:
        raise TemplateError(f"{source}: 'parameters' must be a non-empty list")
    params: list[ParamSpec] = []
    for i, raw in enumerate(raw_params):
        where = f"{source}: parameters[{i}]"
        if not isinstance(raw, Mapping) or "name" not in raw or "type" not in raw:
            raise TemplateError(f"{where}: expected a mapping with at least name and type")
        bad = set(raw) - SPEC_KEYS
        if bad:
            raise TemplateError(
                f"{where} ({raw['name']}): unknown key(s) {sorted(bad)}; "
                f"expected some of {sorted(SPEC_KEYS)}"
            )
        if raw["type"] not in PARAM_TYPES:
            raise TemplateError(
                f"{where} ({raw['name']}): type {raw['type']!r} is not one of "
                f"{', '.join(PARAM_TYPES)}"
            )
        if not re.fullmatch(r"[a-z][a-z0-9_]*", str(raw["name"])):
            raise TemplateError(f"{where}: name {raw['name']!r} must be lower_snake_case")
        if not raw.get("help"):
            raise TemplateError(f"{where} ({raw['name']}): every parameter needs a help text")
        spec = ParamSpec(
            name=raw["name"],
            type=raw["type"],
            help=str(raw["help"]).strip(),
            required=bool(raw.get("required", False)),
            pattern=raw.get("pattern"),
            min=raw.get("min"),
            max=raw.get("max"),
            choices=tuple(raw.get("choices", ())),
            allow_unlimited=bool(raw.get("allow_unlimited", False)),
            key_pattern=raw.get("key_pattern"),
            example=raw.get("example"),
        )
        if spec.type == "choice" and not spec.choices:
            raise TemplateError(f"{where} ({spec.name}): a choice needs 'choices'")
        default = raw.get("default")
        if default is not None:
            # A default must itself be valid: a broken sidecar fails here, not in a user's job.
            default = spec.check(default, f"{source}: default")
        elif spec.type == "argv" and not spec.required:
            default = []
        elif spec.type == "env":
            default = {}
        elif spec.type == "bool":
            default = False
        params.append(ParamSpec(**{**spec.__dict__, "default": default}))
    names = [p.name for p in params]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise TemplateError(f"{source}: parameter(s) declared twice: {dupes}")
    checks = tuple(data.get("checks") or ())
    for c in checks:
        ok = (
            isinstance(c, Mapping)
            and not set(c) - {"param", "below", "at_most", "message"}
            and c.get("param") in names
            and (c.get("below") in names) != (c.get("at_most") in names)
        )
        if not ok:
            raise TemplateError(
                f"{source}: checks: expected entries "
                f"{{param: P, below: Q, message: M}} or "
                f"{{param: P, at_most: Q, message: M}} naming parameters, "
                f"got {c!r}"
            )
    return TemplateSpec(
        name=name,
        description=str(data.get("description", "")).strip(),
        params=tuple(params),
        source=source,
        checks=checks,
    )


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["key=value", "env.NAME=value"]`` -> ``{"key": "value", "env": {"NAME": "value"}}``.

    The value is everything after the first ``=``; a dotted key fills one entry of a mapping
    parameter (``env``-type), which is the only way to give a mapping on the command line.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise TemplateError(f"--set {item!r}: expected key=value (e.g. --set nodes=2)")
        if "." in key:
            base, _, sub = key.partition(".")
            slot = out.setdefault(base, {})
            if not isinstance(slot, dict):
                raise TemplateError(f"--set {item!r}: {base!r} was already given a plain value")
            slot[sub] = value
        else:
            out[key] = value
    return out


def resolve_values(spec: TemplateSpec, layers: list[tuple[str, Mapping[str, Any]]]) -> dict:
    """Defaults overlaid with each ``(where, values)`` layer in order, checked and typed.

    Later layers win (``--values`` first, then ``--set``); env mappings merge key by key.
    Unknown keys, missing required keys and bad values raise :class:`TemplateError` listing the
    valid keys with their defaults.
    """
    by_name = spec.by_name
    values: dict[str, Any] = {p.name: p.default for p in spec.params}
    given: set[str] = set()
    for where, layer in layers:
        for key, raw in layer.items():
            p = by_name.get(key)
            if p is None:
                raise TemplateError(
                    f"{where}: unknown parameter {key!r} for template {spec.name!r}; "
                    f"valid keys (with defaults): {spec.valid_keys_text()}"
                )
            if raw is None and not p.required:
                values[key] = p.default
                continue
            typed = p.check(raw, where)
            if p.type == "env" and key in given:
                values[key] = {**values[key], **typed}
            elif p.type == "env":
                values[key] = {**p.default, **typed}
            else:
                values[key] = typed
            given.add(key)
    missing = [p.name for p in spec.params if p.required and p.name not in given]
    if missing:
        raise TemplateError(
            f"template {spec.name!r}: missing required parameter(s) {', '.join(missing)}; "
            f"valid keys (with defaults): {spec.valid_keys_text()}"
        )
    for c in spec.checks:
        other = c.get("below") or c.get("at_most")
        if not other:
            continue
        lo, hi = values.get(c["param"]), values.get(other)
        if lo is None or hi is None or hi == UNLIMITED:
            continue
        if (lo >= hi) if "below" in c else (lo > hi):
            rel = "less than" if "below" in c else "at most"

            def show(name: str, v: int) -> str:
                return (
                    f"{format_duration(v)} ({v} s)" if by_name[name].type == "duration" else str(v)
                )

            raise TemplateError(
                f"template {spec.name!r}: {c['param']}={show(c['param'], lo)} must be {rel} "
                f"{other}={show(other, hi)}" + (f" ({c['message']})" if c.get("message") else "")
            )
    return values
