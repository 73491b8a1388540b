"""The SPANK plugin: it builds with -Wall -Werror, and its option parsers survive a fuzz.

The parsers are compiled from spank/kant_spank.c with -DKANT_PARSE_ONLY (no Slurm symbols) and
called through ctypes. The duration parser is checked against the Python one that validates
template values (kant_slurm.jobscript.parse_duration): both must agree on every input.
"""

from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kant_slurm.jobscript import parse_duration

SPANK_DIR = Path(__file__).resolve().parents[2] / "spank"

OK, EFORMAT, EZERO, ETOOLONG = 0, -1, -2, -3


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Both builds of the plugin, into a scratch directory (make OUT=...)."""
    out = tmp_path_factory.mktemp("spank")
    proc = subprocess.run(["make", "-C", str(SPANK_DIR), f"OUT={out}", "all", "parse"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.fixture(scope="module")
def lib(built):
    lib = ctypes.CDLL(str(built / "kant_spank_parse.so"))
    lib.kant_parse_duration.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_long)]
    lib.kant_parse_duration_unit.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_long)]
    lib.kant_check_workload.argtypes = [ctypes.c_char_p]
    lib.kant_check_service.argtypes = [ctypes.c_char_p]
    lib.kant_printable.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
    return lib


def c_duration(lib, text: bytes) -> tuple[int, int]:
    seconds = ctypes.c_long(-7)
    rc = lib.kant_parse_duration(text, ctypes.byref(seconds))
    return rc, seconds.value


def test_plugin_exports_the_spank_entry_points(built):
    syms = subprocess.run(["nm", "-D", "--defined-only", str(built / "kant_spank.so")],
                          capture_output=True, text=True, check=True).stdout
    for name in ("slurm_spank_init", "slurm_spank_init_post_opt", "plugin_name", "plugin_type"):
        assert name in syms
    # The parse-only build must not need Slurm: it loaded with ctypes without libslurm.
    undefined = subprocess.run(["nm", "-D", "--undefined-only", str(built / "kant_spank_parse.so")],
                               capture_output=True, text=True, check=True).stdout
    assert "spank_" not in undefined and "slurm_" not in undefined


@pytest.mark.parametrize("text,rc,seconds", [
    (b"90", OK, 5400), (b"1:30", OK, 90), (b"01:00:00", OK, 3600), (b"2-3", OK, 183600),
    (b"2-03:04", OK, 183840), (b"1-0:0:1", OK, 86401), (b"365-0", OK, 365 * 86400),
    (b"0", EZERO, -7), (b"0-0:0:0", EZERO, -7), (b"366-0", ETOOLONG, -7),
    (b"", EFORMAT, -7), (b"1-", EFORMAT, -7), (b"-1", EFORMAT, -7), (b"1:2:3:4", EFORMAT, -7),
    (b"1-2-3", EFORMAT, -7), (b"123456789", EFORMAT, -7), (b" 5", EFORMAT, -7),
    (b"5\n", EFORMAT, -7), (b"1h", EFORMAT, -7), (b"1::2", EFORMAT, -7),
])
def test_duration_table(lib, text, rc, seconds):
    assert c_duration(lib, text) == (rc, seconds)


def c_duration_unit(lib, text: bytes) -> tuple[int, int]:
    seconds = ctypes.c_long(-7)
    rc = lib.kant_parse_duration_unit(text, ctypes.byref(seconds))
    return rc, seconds.value


@pytest.mark.parametrize("text,rc,seconds", [
    (b"60s", OK, 60), (b"5m", OK, 300), (b"2h", OK, 7200), (b"1d", OK, 86400),
    (b"365d", OK, 365 * 86400), (b"12345678s", OK, 12345678), (b"1:00", OK, 60),
    (b"90", OK, 5400),  # no unit: a Slurm time, minutes
    (b"0s", EZERO, -7), (b"366d", ETOOLONG, -7), (b"123456789s", EFORMAT, -7),
    (b"s", EFORMAT, -7), (b"60S", EFORMAT, -7), (b"60sec", EFORMAT, -7), (b"1h30m", EFORMAT, -7),
    (b"60 s", EFORMAT, -7), (b"-5s", EFORMAT, -7), (b"", EFORMAT, -7),
])
def test_duration_with_unit_table(lib, text, rc, seconds):
    assert c_duration_unit(lib, text) == (rc, seconds)


def test_null_inputs_are_errors_not_crashes(lib):
    assert lib.kant_parse_duration(None, None) == EFORMAT
    assert lib.kant_parse_duration_unit(None, None) == EFORMAT
    assert lib.kant_check_workload(None) == EFORMAT
    assert lib.kant_check_service(None) == EFORMAT


@pytest.mark.parametrize("text,ok", [(b"training", True), (b"inference", True), (b"batch", True),
                                     (b"bogus", False), (b"Training", False), (b"", False),
                                     (b"training ", False), (b"inference\n", False)])
def test_workload(lib, text, ok):
    assert (lib.kant_check_workload(text) == OK) is ok


@pytest.mark.parametrize("text,rc", [(b"chat", OK), (b"llama-3.1_8b", OK), (b"a" * 64, OK),
                                     (b"a" * 65, ETOOLONG), (b"-chat", EFORMAT), (b"", EFORMAT),
                                     (b"a;b", EFORMAT), (b"a=b", EFORMAT), (b"a b", EFORMAT),
                                     (b"caf\xc3\xa9", EFORMAT)])
def test_service(lib, text, rc):
    assert lib.kant_check_service(text) == rc


def _python_duration(text: bytes):
    try:
        return OK, parse_duration(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


_UNIT = {b"s": 1, b"m": 60, b"h": 3600, b"d": 86400}


def _python_duration_unit(text: bytes):
    """The rule kant_parse_duration_unit follows (and job_submit.lua): N[smhd], else a Slurm
    time. (rc, seconds) for errors of the unit form, None for any other invalid text."""
    import re

    m = re.fullmatch(rb"([0-9]{1,8})([smhd])", text)
    if not m:
        return _python_duration(text)
    total = int(m.group(1)) * _UNIT[m.group(2)]
    if total == 0:
        return EZERO, -7
    if total > 365 * 86400:
        return ETOOLONG, -7
    return OK, total


# Strings near the grammar (digits and separators) find edge cases; arbitrary bytes find crashes.
near_grammar = st.text(alphabet="0123456789-: ", max_size=40).map(str.encode)
any_bytes = st.binary(max_size=300).map(lambda b: b.replace(b"\0", b""))


@settings(max_examples=3000, deadline=None)
@given(st.one_of(near_grammar, any_bytes))
def test_fuzz_duration_agrees_with_python(lib, text):
    rc, seconds = c_duration(lib, text)
    expected = _python_duration(text)
    if expected is None:
        assert rc != OK and seconds == -7, text
    else:
        assert (rc, seconds) == expected, text


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.text(alphabet="0123456789smhd-: ", max_size=20).map(str.encode), any_bytes))
def test_fuzz_duration_with_unit_agrees_with_python(lib, text):
    rc, seconds = c_duration_unit(lib, text)
    expected = _python_duration_unit(text)
    if expected is None:
        assert rc != OK and seconds == -7, text
    else:
        assert (rc, seconds) == expected, text


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=500).map(lambda b: b.replace(b"\0", b"")))
def test_fuzz_names_and_printable(lib, text):
    lib.kant_check_workload(text)
    rc = lib.kant_check_service(text)
    import re
    assert (rc == OK) == bool(re.fullmatch(rb"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", text))
    out = ctypes.create_string_buffer(48)
    lib.kant_printable(text, out, 48)
    shown = out.value
    assert len(shown) <= 43 and all(0x20 <= c < 0x7f for c in shown)


@pytest.mark.parametrize("size", [10_000, 1_000_000])
def test_very_long_strings(lib, size):
    assert c_duration(lib, b"9" * size) == (EFORMAT, -7)
    assert c_duration(lib, b"1:" * size) == (EFORMAT, -7)
    assert c_duration_unit(lib, b"9" * size + b"s") == (EFORMAT, -7)
    assert lib.kant_check_service(b"a" * size) == ETOOLONG
    assert lib.kant_check_workload(b"t" * size) == EFORMAT
    out = ctypes.create_string_buffer(48)
    lib.kant_printable(b"x" * size, out, 48)
    assert out.value == b"x" * 40 + b"..."


def test_plugstack_example_names_the_plugin():
    """site-config/plugstack.conf: every entry is `required|optional /abs/path.so [args]`."""
    conf = Path(__file__).resolve().parents[2] / "site-config" / "plugstack.conf"
    entries = [line.split() for line in conf.read_text().splitlines()
               if line.strip() and not line.lstrip().startswith("#")]
    assert entries, "no plugin line"
    for words in entries:
        assert words[0] in ("required", "optional") and words[1].startswith("/")
    assert any(Path(w[1]).name == "kant_spank.so" for w in entries)


def _corpus(n: int, seed: int) -> list[bytes]:
    """Seeded odd strings: near the grammar, random bytes, long runs, UTF-8, edge lengths."""
    import random

    rnd = random.Random(seed)
    pieces = [b"0", b"9", b"12", b"-", b":", b" ", b"\n", b"s", b"m", b"h", b"d", b"\xff",
              b"\xc3\xa9", b"%s", b"%n", b"inference", b"chat", b";", b"=", b"99999999",
              b"000000000", b"\t", b"\x1b["]
    out = [b"", b"9" * 1_000_000, b":" * 100_000, b"1-" * 50_000, b"a" * 64, b"a" * 65,
           b"%s%s%s%n" * 1000]
    for _ in range(n):
        kind = rnd.random()
        if kind < 0.6:
            out.append(b"".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 12))))
        elif kind < 0.9:
            out.append(bytes(rnd.randint(1, 255) for _ in range(rnd.randint(1, 200))))
        else:
            out.append(rnd.choice(pieces) * rnd.randint(100, 5000))
    return out


def test_parsers_under_address_sanitizer(tmp_path):
    """The C parsers under ASan/UBSan over 5,000 odd strings agree with the Python rules."""
    import re
    import struct

    proc = subprocess.run(["make", "-C", str(SPANK_DIR), f"OUT={tmp_path}", "fuzz"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    corpus = _corpus(5000, seed=7)
    feed = b"".join(struct.pack("<I", len(t)) + t for t in corpus)
    run = subprocess.run([str(tmp_path / "kant_spank_fuzz")], input=feed, capture_output=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-3000:]
    lines = run.stdout.split(b"\n")[:-1]
    assert len(lines) == len(corpus)
    for text, line in zip(corpus, lines, strict=True):
        d, seconds, w, s, u, useconds, _shown = line.split(b" ", 6)
        expected = _python_duration(text)
        if expected is None:
            assert int(d) != OK and int(seconds) == -7, text[:80]
        else:
            assert (int(d), int(seconds)) == expected, text[:80]
        expected_u = _python_duration_unit(text)
        if expected_u is None:
            assert int(u) != OK and int(useconds) == -7, text[:80]
        else:
            assert (int(u), int(useconds)) == expected_u, text[:80]
        assert (int(w) == OK) == (text in (b"training", b"inference", b"batch"))
        assert (int(s) == OK) == bool(re.fullmatch(rb"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", text))
