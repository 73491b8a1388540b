"""``plan -o/-P/-h``: one row per pending job, as squeue prints one line per job (issue 19)."""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner

from kant_slurm.cli import cli
from kant_slurm.engine.registry import get_policy
from kant_slurm.engine.render import PLAN_ROW_FIELDS, plan_rows
from kant_slurm.engine.plan import with_held
from kant_slurm.model import ClusterSnapshot, Job

from test_engine_policies import cluster, pending, running

NOW = 100.0


def snapshot_and_plan():
    """2 nodes: gn01 full until 1000, gn02 half used until 3000 (test_engine_policies'
    reservation scenario): ``short`` backfills on gn02, ``big`` and ``long`` are reserved;
    ``held`` is held by its user."""
    inv = cluster(leaves=(2,))
    jobs = [running("r1", "gn01", 8, limit=1000.0), running("r2", "gn02", 4, limit=3000.0),
            pending("big", 2, 8, submit=10.0, limit=5000.0),
            pending("short", 1, 4, submit=20.0, limit=500.0),
            pending("long", 1, 4, submit=30.0, limit=5000.0)]
    held = Job("held", "PENDING", 1, 2, 40.0, slurm_blocked="JobHeldUser")
    snap = dataclasses.replace(ClusterSnapshot.idle(inv, jobs, taken_at=NOW), held=(held,))
    return snap, with_held(get_policy("kant").plan(snap, NOW), snap.held)


def test_rows_say_each_jobs_outcome():
    snap, plan = snapshot_and_plan()
    rows = {r["job_id"]: r for r in plan_rows(plan, {j.job_id: j.gpus for j in snap.queued})}
    assert [r["job_id"] for r in plan_rows(plan)] == ["big", "short", "long", "held"]
    assert {k: (r["outcome"], r["nodes"], r["start_time"], r["gpus"]) for k, r in rows.items()} == {
        "big": ("reserved", "gn[01-02]", "3000", 16),
        "short": ("backfill", "gn02", "100", 4),
        "long": ("reserved", "gn01", "8000", 4),
        "held": ("held", None, None, 2),
    }
    assert rows["held"]["reason"] == "JobHeldUser" and rows["held"]["rank"] is None
    assert rows["short"]["reason"] == "" and rows["big"]["reason"] == plan.blocked["big"]
    assert rows["big"]["class_tier"] == plan.order[0].factors["class_tier"]


@pytest.fixture()
def live(monkeypatch):
    snap, plan = snapshot_and_plan()
    monkeypatch.setattr("kant_slurm.cli.plan.plan_live", lambda *a, **k: (plan, snap))
    return plan


def run(args):
    return CliRunner().invoke(cli, ["plan", *args])


def test_parsable_noheader_rows(live):
    res = run(["-P", "-h", "-o", "job_id,outcome,nodes,gpus"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines() == ["big|reserved|gn[01-02]|16", "short|backfill|gn02|4",
                                       "long|reserved|gn01|4", "held|held||2"]


def test_default_fields_with_header(live):
    lines = run(["-P"]).output.splitlines()
    assert lines[0] == "|".join(PLAN_ROW_FIELDS) and len(lines) == 1 + 4
    aligned = run(["-h"]).output.splitlines()
    assert len(aligned) == 4 and aligned[0].split()[:3] == ["big", "0", "reserved"]
    header = run(["-o", "job_id,outcome"]).output.splitlines()[0]
    assert header.split() == ["job_id", "outcome"]


def test_format_help_lists_the_factors(live):
    fields = run(["-o", "help"]).output.split()
    assert set(PLAN_ROW_FIELDS) <= set(fields) and "class_tier" in fields


@pytest.mark.parametrize("args, expected", [
    (["--json", "-P"], "--json and the job table (-o/-P/-h): choose one"),
    (["--explain", "big", "-h"], "--explain and the job table (-o/-P/-h): choose one"),
    (["-o", "job_id,nope"], "unknown field 'nope'"),
])
def test_usage_errors(live, args, expected):
    res = run(args)
    assert res.exit_code == 2 and expected in res.output, res.output


def test_dash_h_is_noheader_and_help_stays():
    res = run(["--help"])
    assert res.exit_code == 0 and "-h, --noheader" in res.output
