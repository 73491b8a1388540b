"""Loading a config: the shipped defaults with a file merged over them, validated against
the schema (:mod:`.schema`) and the rules between keys (:mod:`.rules`).

Strict, as Slurm is with slurm.conf: an unknown key, a key given twice, a value of the wrong
type or out of range is an error naming the file, the line (from :mod:`.parse`), the dotted
key and what is allowed. Validation goes on past the first error: the
:class:`~kant_slurm.errors.ConfigError` holds every one, one per line, in file order.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType
from typing import Any

import yaml

from ..errors import ConfigError
from .parse import parse_config_file
from .rules import CROSS_FIELD_RULES
from .schema import KantConfig, KeyPath, _bounds, _dotted, _type_name

CONFIG_ENV = "KANT_CONFIG"
"""Environment variable naming a config file used when no path is given on the command line."""

_BAD = object()
"""What a validator returns for a value it reported as wrong (the caller builds nothing)."""


class _Problems:
    """Every error of one config, each with the file line its key is on when that is known.

    Validation goes on past the first error so that one ``config check`` shows them all.
    """

    def __init__(self, where: str, lines: Mapping[KeyPath, int] | None = None):
        self.where = where
        self.lines = lines or {}
        self.items: list[tuple[float, int, str]] = []
        self.values: dict[KeyPath, Any] = {}  # every leaf that passed, for cross-field rules

    def line(self, *paths: KeyPath) -> int | None:
        """The line of the first of ``paths`` written in the file, else of the nearest parent
        of the first that has one (a key inside a TOML inline table, a default's section)."""
        for path in paths:
            if path in self.lines:
                return self.lines[path]
        for path in paths:
            for i in range(len(path) - 1, 0, -1):
                if path[:i] in self.lines:
                    return self.lines[path[:i]]
        return None

    def add(self, path: KeyPath, text: str, *more: KeyPath) -> None:
        self.add_at(self.line(path, *more), text)

    def add_at(self, line: int | None, text: str) -> None:
        place = f"{self.where}:{line}" if line else self.where
        # Sorted by line so that a long list reads top to bottom like the file.
        self.items.append((line or float("inf"), len(self.items), f"{place}: {text}"))

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError("\n".join(text for _, _, text in sorted(self.items)))


def _check_scalar(
    value: Any, tp: Any, path: KeyPath, meta: Mapping[str, Any], problems: _Problems
) -> Any:
    given = value  # as written (an int given for a float key is shown as written)

    def bad(expected: str) -> Any:
        problems.add(path, f"{_dotted(path)} = {given!r}: expected {expected}")
        return _BAD

    if tp is bool:
        if not isinstance(value, bool):
            return bad("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return bad("an integer" + _bounds(meta))
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return bad("a number" + _bounds(meta))
        value = float(value)
    elif tp is str:
        if not isinstance(value, str):
            return bad(
                "a string"
                + (f", one of: {', '.join(meta['choices'])}" if meta.get("choices") else "")
            )
        choices = meta.get("choices")
        if choices and value not in choices:
            return bad(f"one of: {', '.join(choices)}")
        return value
    lo, hi = meta.get("lo"), meta.get("hi")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        return bad(f"{_type_name(tp)}{_bounds(meta)}")
    return value


def _build(cls: type, raw: Any, prefix: KeyPath, problems: _Problems) -> Any:
    """Validate ``raw`` (a mapping) against dataclass ``cls``; unknown keys are errors."""
    if not isinstance(raw, Mapping):
        problems.add(prefix, f"{_dotted(prefix) or 'top level'} must be a mapping, got {raw!r}")
        return _BAD
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    ok = True
    for key in raw:
        if key not in fields:
            problems.add(
                prefix + (key,),
                f"unknown key {_dotted(prefix + (key,))!r}; allowed here: {', '.join(fields)}",
            )
            ok = False
    kwargs = {}
    for name, f in fields.items():
        if name not in raw:
            continue
        kwargs[name] = _value(hints[name], raw[name], prefix + (name,), f.metadata, problems)
        ok = ok and kwargs[name] is not _BAD
    return cls(**kwargs) if ok else _BAD


def _value(tp: Any, value: Any, path: KeyPath, meta: Mapping[str, Any], problems: _Problems) -> Any:
    key = _dotted(path)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, path, problems)
    origin = typing.get_origin(tp)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            problems.add(path, f"{key} = {value!r}: expected a list of strings")
            return _BAD
        allowed = meta.get("values") or ()
        wrong = [v for v in value if allowed and v not in allowed]
        if wrong:
            problems.add(
                path, f"{key} = {list(value)!r}: {wrong[0]!r} is not one of: {', '.join(allowed)}"
            )
            return _BAD
        choices = meta.get("choices")
        if choices and sorted(value) != sorted(choices):
            problems.add(
                path, f"{key} = {list(value)!r}: expected each of {', '.join(choices)} exactly once"
            )
            return _BAD
        problems.values[path] = tuple(value)
        return tuple(value)
    if origin in (Mapping, dict):
        _, vtp = typing.get_args(tp)
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            problems.add(path, f"{key} = {value!r}: expected {_type_name(tp)}")
            return _BAD
        out = {}
        for k, v in value.items():
            sub = path + (k,)
            if not isinstance(k, str):
                problems.add(sub, f"{_dotted(sub)}: keys must be strings")
                out[k] = _BAD
            elif typing.get_origin(vtp) in (Mapping, dict):
                out[k] = _value(vtp, v, sub, meta, problems)
            elif meta.get("values") and v not in meta["values"]:
                problems.add(
                    sub, f"{_dotted(sub)} = {v!r}: expected one of: {', '.join(meta['values'])}"
                )
                out[k] = _BAD
            else:
                out[k] = _check_scalar(v, vtp, sub, meta, problems)
        if any(v is _BAD for v in out.values()):
            return _BAD
        return MappingProxyType(out)
    checked = _check_scalar(value, tp, path, meta, problems)
    if checked is not _BAD:
        problems.values[path] = checked
    return checked


def _check_cross_fields(problems: _Problems, steering: bool) -> None:
    """Add a problem for every broken rule whose keys all passed their own checks."""
    for rule in CROSS_FIELD_RULES:
        if rule.steering and not steering:
            continue
        if not all(k in problems.values for k in rule.keys):
            continue  # a key already has its own error
        args = [problems.values[k] for k in rule.keys]
        if not rule.holds(*args):
            problems.add(rule.keys[0], rule.explain(*args), *rule.keys[1:])


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` over ``base``: a section in both is merged key by key, anything else in
    ``over`` replaces; neither argument is changed."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a YAML (.yaml/.yml) or TOML (.toml) file into a plain mapping (a duplicate key
    is an error)."""
    parsed = parse_config_file(path)
    problems = _Problems(str(path))
    for line, text in parsed.duplicates:
        problems.add_at(line, text)
    problems.raise_if_any()
    return parsed.data


def default_config_text() -> str:
    """The shipped defaults, as YAML with comments."""
    return resources.files("kant_slurm").joinpath("data/default-config.yaml").read_text("utf-8")


def config_from_dict(
    raw: Mapping[str, Any],
    where: str = "config",
    *,
    lines: Mapping[KeyPath, int] | None = None,
    duplicates: typing.Sequence[tuple[int, str]] = (),
    steering: bool = False,
) -> KantConfig:
    """Validate a mapping merged over the shipped defaults.

    Every error is reported at once, one line each, sorted by the line of its key (``lines``,
    from :func:`parse_config_file`), ``duplicates`` among them. With ``steering``, the
    cross-field rules of live steering are checked too.
    """
    defaults = yaml.safe_load(default_config_text()) or {}
    problems = _Problems(where, lines)
    for line, text in duplicates:
        problems.add_at(line, text)
    config = _build(KantConfig, deep_merge(defaults, raw), (), problems)
    _check_cross_fields(problems, steering)
    problems.raise_if_any()
    return config


def load_config(path: str | os.PathLike | None = None, *, steering: bool = False) -> KantConfig:
    """The shipped defaults, with ``path`` (YAML or TOML) merged over them.

    With ``path`` None, the file named by ``$KANT_CONFIG`` is used if set, else the defaults.
    ``steering`` adds the cross-field rules that matter where kant steers a live Slurm
    (:data:`CROSS_FIELD_RULES`; ``kant-slurm config check`` applies them).
    """
    if path is None:
        path = os.environ.get(CONFIG_ENV) or None
    if path is None:
        return config_from_dict({}, "default-config.yaml", steering=steering)
    parsed = parse_config_file(path)
    return config_from_dict(
        parsed.data, str(path), lines=parsed.lines, duplicates=parsed.duplicates, steering=steering
    )
