"""Reading a config file (YAML or TOML) into a plain mapping, with the line of every key.

The lines let validation (:mod:`.load`) name the file line of each error: YAML's through the
composed node tree's marks, TOML's from its table headers and ``key =`` lines. A key given
twice in one YAML mapping (PyYAML would keep the last silently) is kept as a problem for
validation to report with the others; TOML refuses it itself, and its error names the key.
"""

from __future__ import annotations

import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .schema import KeyPath, _dotted


@dataclass(frozen=True)
class ConfigFile:
    """A parsed config file: its plain mapping and the line each key path is on."""

    path: Path
    data: dict[str, Any]
    lines: Mapping[KeyPath, int]
    duplicates: tuple[tuple[int, str], ...] = ()  # (line, message): keys given twice


def _yaml_key_lines(node: yaml.Node, problems: list[tuple[int, str]]) -> dict[KeyPath, int]:
    """The line of every mapping key under ``node``; a key given twice in one mapping is a
    problem (PyYAML would silently keep the last one)."""
    lines: dict[KeyPath, int] = {}

    def walk(n: yaml.Node, path: KeyPath) -> None:
        if isinstance(n, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, value_node in n.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                line = key_node.start_mark.line + 1
                if key is None:
                    continue  # a complex key: validation reports it
                sub = path + (key,)
                if key in seen:
                    problems.append(
                        (
                            line,
                            f"duplicate key {_dotted(sub)!r} (first at line "
                            f"{seen[key]}); expected each key once",
                        )
                    )
                else:
                    seen[key] = line
                # The last one is the value in force: its errors point at it.
                lines[sub] = line
                walk(value_node, sub)
        elif isinstance(n, yaml.SequenceNode):
            for item in n.value:
                walk(item, path)

    walk(node, ())
    return lines


_TOML_KEY = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_TOML_DOTTED = re.compile(rf"\s*({_TOML_KEY}(?:\s*\.\s*{_TOML_KEY})*)\s*")


def _toml_path(dotted: str) -> KeyPath:
    parts = re.findall(_TOML_KEY, dotted)
    return tuple(tomllib.loads(f"k = {p}")["k"] if p[0] in "\"'" else p for p in parts)


def _toml_keys(text: str) -> typing.Iterator[tuple[KeyPath, int]]:
    """Every table header and ``key =`` of a TOML text as (key path, line), in file order
    (best effort: a key inside an inline table or a multi-line value is not seen)."""
    table: KeyPath = ()
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        header = re.fullmatch(rf"\[\[?{_TOML_DOTTED.pattern}\]\]?\s*(#.*)?", stripped)
        if header:
            table = _toml_path(header.group(1))
            yield table, number
            continue
        assign = re.match(rf"{_TOML_DOTTED.pattern}=", stripped)
        if assign:
            path = table + _toml_path(assign.group(1))
            # A dotted key (quota.borrow_limit = 1) also places its parents.
            for i in range(len(table) + 1, len(path) + 1):
                yield path[:i], number


def _toml_key_lines(text: str) -> dict[KeyPath, int]:
    """The line of each key of a TOML text (a key missing here gets its parent's line)."""
    lines: dict[KeyPath, int] = {}
    for path, number in _toml_keys(text):
        lines.setdefault(path, number)
    return lines


def _toml_error(p: Path, text: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
    """tomllib's message with the file:line prefix, naming the key when tomllib refuses a
    key given twice (its message names only line and column)."""
    msg = str(exc)
    at = re.search(r"at line (\d+)", msg)
    if at is None:
        return ConfigError(f"{p}: not valid TOML: {msg}")
    line = int(at.group(1))
    if msg.startswith(("Cannot overwrite a value", "Cannot declare")):
        keys = [k for k, n in _toml_keys(text) if n == line]
        if keys:
            key = _dotted(max(keys, key=len))
            return ConfigError(
                f"{p}:{line}: duplicate key {key!r} (TOML: {msg}); expected each key once"
            )
    return ConfigError(f"{p}:{line}: not valid TOML: {msg}")


def _decode(p: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{p}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); expected "
            "a UTF-8 YAML or TOML file"
        ) from None


def parse_config_file(path: str | os.PathLike) -> ConfigFile:
    """Parse a YAML (.yaml/.yml) or TOML (.toml) file, keeping the line of every key.

    A file that cannot be read, is not UTF-8 or is not valid YAML/TOML is a
    :class:`ConfigError` naming file and line. A key given twice in one YAML mapping (PyYAML
    keeps the last silently; TOML refuses it itself) is listed in ``duplicates`` so that
    validation reports it with the other errors.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config: {exc.strerror or exc}") from None
    text = _decode(p, raw)
    data: Any
    if p.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise _toml_error(p, text, exc) from None
        return ConfigFile(p, data, _toml_key_lines(text))
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            f"{p}{at}: not valid YAML: {getattr(exc, 'problem', None) or exc}"
        ) from None
    if data is None:
        return ConfigFile(p, {}, {})
    if not isinstance(data, Mapping):
        raise ConfigError(f"{p}: the top level must be a mapping of sections")
    assert node is not None  # the document (data) was built from it
    duplicates: list[tuple[int, str]] = []
    lines = _yaml_key_lines(node, duplicates)
    return ConfigFile(p, dict(data), lines, tuple(duplicates))
