"""Install by role (issue 17): the plain install has no numba and no matplotlib; an HTML page
asked for without matplotlib fails before any work with what to install, and a sweep's page
is written without its charts."""

from __future__ import annotations

import configparser
import importlib.util
from pathlib import Path

import pytest

from kant_slurm.errors import InputError
from kant_slurm.report import html as report_html

REPO = Path(__file__).resolve().parents[2]


def test_plain_install_has_neither_numba_nor_matplotlib():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    requires = cfg["options"]["install_requires"].split()
    assert not [r for r in requires if r.startswith(("numba", "matplotlib"))]
    extras = cfg["options.extras_require"]
    assert extras["sim"].split() == ["numba>=0.59"]
    assert extras["plots"].split() == ["matplotlib>=3.7"]


@pytest.fixture
def no_matplotlib(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))


def test_html_without_matplotlib_says_what_to_install(no_matplotlib):
    with pytest.raises(InputError, match=r"--html: .*pip install 'kant-slurm\[plots\]'"):
        report_html.require_plotting("--html")


def test_simulate_html_fails_before_the_run(no_matplotlib, tmp_path):
    from click.testing import CliRunner

    from kant_slurm.cli import cli

    res = CliRunner().invoke(cli, ["simulate", "--html", str(tmp_path / "r.html")])
    assert res.exit_code == 1 and "kant-slurm[plots]" in res.output
    assert "trace:" not in res.output and not (tmp_path / "r.html").exists()


def test_sweep_page_without_charts(no_matplotlib):
    from kant_slurm.whatif import html as whatif_html

    assert "Charts need matplotlib" in whatif_html._charts([])
