"""Slurm's CLI habits (-S/-E and sacct's time forms, -h/-P/-o), report --input of both dump forms,
and the documented exit codes, all through the real click CLI."""

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from kant_slurm.cli import cli
from kant_slurm.cli.options import format_table, parse_slurm_time

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "slurm-22.05"
SLURM_CONF = """\
ClusterName=t
NodeName=gn[01-04] CPUs=16 RealMemory=1000 Gres=gpu:8
PartitionName=gpu Nodes=gn[01-04] Default=YES
"""
NOW = 1_800_000_000.0


def run(args, **kw):
    return CliRunner().invoke(cli, args, **kw)


@pytest.fixture()
def conf(tmp_path):
    path = tmp_path / "slurm.conf"
    path.write_text(SLURM_CONF)
    return str(path)


# --- sacct's time forms ----------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("now", NOW),
    ("now-7days", NOW - 7 * 86400),
    ("now-2hours", NOW - 7200),
    ("now-30minutes", NOW - 1800),
    ("now-90", NOW - 90),            # sacct: no unit = seconds
    ("now-1d", NOW - 86400),         # kant's older short units stay
    ("now-2weeks", NOW - 14 * 86400),
    ("now+1hour", NOW + 3600),
    ("1700000000", 1_700_000_000.0),
    ("2026-11-01", time.mktime((2026, 11, 1, 0, 0, 0, 0, 0, -1))),
    ("2026-11-01T08:00", time.mktime((2026, 11, 1, 8, 0, 0, 0, 0, -1))),
    ("2026-11-01T08:00:30", time.mktime((2026, 11, 1, 8, 0, 30, 0, 0, -1))),
])
def test_slurm_time_forms(text, expected):
    assert parse_slurm_time(text, NOW) == expected


@pytest.mark.parametrize("text", ["soon", "now-7fortnights", "now-", "2026-13-01", "yesterday-ish",
                                  "2026-11-01T25:00"])
def test_slurm_time_refused(text):
    with pytest.raises(ValueError):
        parse_slurm_time(text, NOW)


def test_today_is_local_midnight():
    t = parse_slurm_time("today", NOW)
    assert time.localtime(t)[3:6] == (0, 0, 0) and 0 <= NOW - t < 86400


# --- report --input: both dump forms, the dump's own span, empty windows ----------------------

@pytest.mark.parametrize("dump", ["sacct.txt", "sacct.json"])
def test_report_input_takes_the_dump_span(conf, dump):
    res = run(["report", "--input", str(FIXTURES / dump), "--slurm-conf", conf, "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    # 7 jobs recorded by record.sh (5 started); no window given: the dump's own span.
    assert data["jobs"] == 7 and data["runs_started"] == 5
    assert 0 < data["window"]["seconds"] < 3600


def test_report_json_and_parsable_dumps_agree(conf):
    out = {}
    for dump in ("sacct.txt", "sacct.json"):
        res = run(["report", "--input", str(FIXTURES / dump), "--slurm-conf", conf, "--json"])
        assert res.exit_code == 0, res.output
        out[dump] = json.loads(res.output)
    a, b = out["sacct.txt"], out["sacct.json"]
    for key in ("jobs", "runs_started", "gar_mean", "sor", "gfr_mean", "wait_p50_s",
                "gpu_hours_allocated"):
        assert a[key] == pytest.approx(b[key]), key
    assert a["by_class"] == b["by_class"]


@pytest.mark.parametrize("dump", ["sacct.txt", "sacct.json"])
def test_report_empty_window_of_a_dump_is_an_error(conf, dump):
    res = run(["report", "--input", str(FIXTURES / dump), "--slurm-conf", conf,
               "-S", "2026-11-01", "-E", "2026-11-08"])
    assert res.exit_code == 1
    line = res.output.strip()
    assert "\n" not in line and "no job in the window 2026-11-01T00:00:00" in line
    assert "it spans 2026-11-21" in line


def test_report_filters_that_leave_nothing_say_so(conf):
    res = run(["report", "--input", str(FIXTURES / "sacct.txt"), "--slurm-conf", conf,
               "-A", "nobody"])
    assert res.exit_code == 0
    assert "note: no job in the window" in res.output and "capacity only" in res.output


@pytest.mark.parametrize("dump_text, expected", [
    ("", "no job in the dump"),
    ('{"jobs": [{"job_id": 1}]}', "field 'time.submission' missing"),
    ("{not json", "not valid JSON"),
    ("JobID|Submit|Start|End|NodeList|AllocTRES|State\n1|soon|1|2|gn01|gres/gpu=1|COMPLETED\n",
     "field Submit = 'soon'"),
])
def test_report_bad_dumps(tmp_path, conf, dump_text, expected):
    dump = tmp_path / "dump"
    dump.write_text(dump_text)
    res = run(["report", "--input", str(dump), "--slurm-conf", conf])
    assert res.exit_code == 1, res.output
    assert expected in res.output and res.output.count("\n") == 1 and "Traceback" not in res.output


def test_report_long_and_short_window_options_agree(conf):
    dump = str(FIXTURES / "sacct.txt")
    longs = run(["report", "--input", dump, "--slurm-conf", conf, "--since", "2026-11-21",
                 "--until", "2026-11-22", "--json"])
    shorts = run(["report", "--input", dump, "--slurm-conf", conf, "-S", "2026-11-21",
                  "-E", "2026-11-22", "--json"])
    assert longs.exit_code == 0 and json.loads(longs.output) == json.loads(shorts.output)


# --- -h/-P/-o ----------------------------------------------------------------------------------

def test_report_field_table(conf):
    base = ["report", "--input", str(FIXTURES / "sacct.txt"), "--slurm-conf", conf]
    res = run(base + ["-P", "-o", "jobs,runs_started,GPUS_TOTAL"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines() == ["jobs|runs_started|gpus_total", "7|5|32"]
    res = run(base + ["-h", "-P", "-o", "jobs,gpus_total"])
    assert res.output.splitlines() == ["7|32"]
    res = run(base + ["-o", "jobs,gpus_total"])
    assert res.output.splitlines() == ["jobs gpus_total", "---- ----------", "   7         32"]


def test_dash_h_is_noheader_and_help_stays():
    assert run(["report", "--help"]).exit_code == 0
    assert "--noheader" in run(["report", "--help"]).output
    assert "--noheader" in run(["status", "--help"]).output
    assert run(["-h"]).exit_code == 0  # the group keeps -h as help: it has no table


@pytest.mark.parametrize("args, expected", [
    (["-o", "jobs,nope"], "unknown field 'nope'"),
    (["--json", "-P"], "choose one"),
    (["-S", "now-7fortnights"], "'now-7fortnights': expected"),
    (["-S", "2026-11-22", "-E", "2026-11-21"], "is not after"),
])
def test_report_usage_errors_exit_2(conf, args, expected):
    res = run(["report", "--input", str(FIXTURES / "sacct.txt"), "--slurm-conf", conf] + args)
    assert res.exit_code == 2, res.output
    assert expected in res.output and "Traceback" not in res.output


def test_format_table_rows():
    rows = [{"name": "gn01", "gpus": 8, "share": 0.5}, {"name": "gn02", "gpus": 0, "share": None}]
    assert format_table(rows, None, ("name", "gpus"), parsable=True).splitlines() == \
        ["name|gpus", "gn01|8", "gn02|0"]
    assert format_table(rows, "share,name", (), parsable=True, noheader=True).splitlines() == \
        ["0.5|gn01", "|gn02"]


def test_status_node_table(monkeypatch):
    from test_slurm_status_report import snapshot

    monkeypatch.setattr("kant_slurm.cli.status.read_snapshot", snapshot)
    res = run(["status", "-P", "-h", "-o", "name,leaf_group,gpus_allocated"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines() == ["gn01|leaf1|6", "gn02|leaf1|0", "gn03|leaf2|8",
                                       "gn04|leaf2|0"]
    res = run(["status", "--json", "-P"])
    assert res.exit_code == 2


# --- exit codes -------------------------------------------------------------------------------

def test_exit_codes_are_in_top_level_help():
    out = run(["--help"]).output
    for line in ("0  success", "1  error", "2  usage", "3  Slurm not answering",
                 "4  partial apply"):
        assert line in out


def test_exit_2_on_bad_option():
    assert run(["report", "--no-such-option"]).exit_code == 2


@pytest.mark.parametrize("args", [["status"], ["schedule", "--dry-run"],
                                  ["schedule", "--once", "--dry-run"], ["plan"]])
def test_exit_3_when_slurm_does_not_answer(tmp_path, monkeypatch, args):
    # SLURM_CONF naming no file: read_snapshot's "no cluster to read" is SlurmUnreachable.
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "nothing" / "slurm.conf"))
    res = run(args + ["--state-file", str(tmp_path / "state.json")] if args[0] == "schedule"
              else args)
    assert res.exit_code == 3, res.output
    assert "Traceback" not in res.output


def _fake_cycle(report_fields):
    from kant_slurm.steer import CycleReport

    def run_cycle(config, state_path, **kw):
        report = CycleReport(dry_run=kw.get("dry_run", False), policy="kant")
        for k, v in report_fields.items():
            setattr(report, k, v)
        return report
    return run_cycle


@pytest.mark.parametrize("fields, code", [
    ({}, 0),
    ({"failed": "one"}, 4),
    ({"ok": False, "error": "apply stopped: slurmctld does not answer"}, 3),
])
def test_schedule_exit_codes(tmp_path, monkeypatch, fields, code):
    from kant_slurm.slurm.diff import Change

    if "failed" in fields:
        ch = Change(kind="weight", target="gn01", value=5, before=1, orig=1, action="set",
                    reason="test")
        fields = {"applied": [ch], "failed": [(ch, "scontrol: error: Invalid node")]}
    monkeypatch.setattr("kant_slurm.steer.run_cycle", _fake_cycle(fields))
    res = run(["schedule", "--state-file", str(tmp_path / "s.json"), "--lock-file",
               str(tmp_path / "lock")])
    assert res.exit_code == code, res.output


def test_lock_held_exits_3(tmp_path, monkeypatch):
    # 3: nothing was read or changed, retry later (cron, systemd and test_faults rely on it).
    from kant_slurm.steer import SteerLock

    lock = tmp_path / "lock"
    with SteerLock(str(lock)):
        res = run(["schedule", "--state-file", str(tmp_path / "s.json"), "--lock-file",
                   str(lock)])
    assert res.exit_code == 3, res.output
    assert res.output.startswith("error: another kant-slurm steering process")
