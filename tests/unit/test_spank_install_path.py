"""`make -C spank install` puts the plugin where the shipped plugstack.conf looks for it (a
`required` plugin that is missing fails every job submission)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def plugstack_paths(text: str) -> list[tuple[str, str]]:
    """(required|optional, path) of each plugin line of a plugstack.conf."""
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("include"):
            continue
        kind, path = line.split()[:2]
        out.append((kind, path))
    return out


def make_install_path(prefix: str | None = None) -> str:
    """Where `make install` would copy kant_spank.so (make -n: nothing is built or copied)."""
    argv = ["make", "-n", "-C", str(ROOT / "spank"), "install"]
    if prefix:
        argv.append(f"PREFIX={prefix}")
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    m = re.search(r"^install -m \d+ \S+ (\S+)$", out, re.M)
    assert m, out
    return m.group(1)


@pytest.mark.parametrize("text, expected", [
    ("required /a/b.so\n", [("required", "/a/b.so")]),
    ("# comment\n\noptional  /x.so  arg=1 # why\n", [("optional", "/x.so")]),
    ("include /etc/slurm/plugstack.conf.d/*\n", []),
])
def test_plugstack_paths(text, expected):
    assert plugstack_paths(text) == expected


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_install_and_shipped_plugstack_agree():
    shipped = plugstack_paths((ROOT / "site-config" / "plugstack.conf").read_text())
    assert shipped, "site-config/plugstack.conf names no plugin"
    installed = make_install_path()
    assert [p for _, p in shipped if p.endswith("/kant_spank.so")] == [installed]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_prefix_moves_the_install():
    # The check above reads what make does, not a copy of the Makefile's default.
    assert make_install_path("/opt/x") == "/opt/x/kant_spank.so"
