"""The cron line and systemd units in site-config/ name commands and options that exist."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import click
import pytest

from kant_slurm.cli import cli

ROOT = Path(__file__).resolve().parents[2] / "site-config"


def _parses(argv: list[str]) -> None:
    assert argv[0].endswith("kant-slurm"), argv
    ctx = cli.make_context("kant-slurm", argv[1:2] + ["--help"], resilient_parsing=True)
    command = cli.get_command(ctx, argv[1])
    assert command is not None, f"no command {argv[1]!r}"
    command.make_context(argv[1], list(argv[2:]))  # raises on an unknown option or bad value


def test_crontab_line():
    lines = [x for x in (ROOT / "cron" / "kant-slurm").read_text().splitlines()
             if x.strip() and not x.startswith("#") and "=" not in x.split()[0]]
    assert len(lines) == 1
    fields = lines[0].split(None, 6)
    assert fields[:5] == ["*"] * 5 and fields[5] == "slurm"
    command = fields[6].split(">>")[0]
    _parses(shlex.split(command))


@pytest.mark.parametrize("unit", ["kant-slurm.service", "kant-slurm-schedule.service"])
def test_systemd_units(unit):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(ROOT / "systemd" / unit)
    service = parser["Service"]
    assert service["User"] == "slurm"
    argv = shlex.split(service["ExecStart"])
    _parses(argv)
    assert "StateDirectory" in service and "RuntimeDirectory" in service


def test_timer_points_at_its_service():
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read(ROOT / "systemd" / "kant-slurm-schedule.timer")
    assert parser["Timer"]["OnUnitActiveSec"] == "60s"
    assert (ROOT / "systemd" / "kant-slurm-schedule.service").exists()


_ = click
