"""Config errors as `kant-slurm config check` shows them: every error at once, each on one line
with file and line, duplicate keys, the cross-field rule of live steering, non-UTF-8 files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kant_slurm.cli import cli
from kant_slurm.config import load_config, parse_config_file
from kant_slurm.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

LEAD_BELOW_GRACE = ("preemption.lead_seconds = 100 is not above preemption.grace_seconds = 200: "
                    "expected more than grace_seconds plus one daemon cycle (--interval, 30 s "
                    "by default), e.g. 260, so that a victim's grace time ends before the "
                    "inference job's deadline")

# (name, file name, content, the whole error: one line per problem, "{f}" is the file)
CASES = [
    ("unknown key", "k.yaml", "policy: kant\nbackfill:\n  reservation: 3\n",
     ["{f}:3: unknown key 'backfill.reservation'; allowed here: reservations, max_job_test"]),
    ("duplicate key", "k.yaml", "backfill:\n  reservations: 4\n  max_job_test: 0\n"
     "  reservations: 6\n",
     ["{f}:4: duplicate key 'backfill.reservations' (first at line 2); expected each key once"]),
    ("duplicate section", "k.yaml", "backfill: {reservations: 4}\npolicy: kant\n"
     "backfill: {reservations: 5}\n",
     ["{f}:3: duplicate key 'backfill' (first at line 1); expected each key once"]),
    ("duplicate key in a mapping value", "k.yaml",
     "quota:\n  accounts:\n    a: {h100: 8}\n    a: {h100: 16}\n",
     ["{f}:4: duplicate key 'quota.accounts.a' (first at line 3); expected each key once"]),
    ("wrong type", "k.yaml", "estimator:\n  history: \"yes\"\n",
     ["{f}:2: estimator.history = 'yes': expected true or false"]),
    ("out of range", "k.yaml", "\n\nweights:\n  tier_step: 0\n",
     ["{f}:4: weights.tier_step = 0: expected an integer in [1, 2147483647]"]),
    ("cross-field", "k.yaml", "preemption:\n  enabled: true\n  grace_seconds: 200\n"
     "  lead_seconds: 100\n", ["{f}:4: " + LEAD_BELOW_GRACE]),
    # Only grace_seconds is in the file: the default lead_seconds (180) breaks the rule, and
    # the error points at the key the site set.
    ("cross-field against a default", "k.yaml", "preemption:\n  grace_seconds: 300\n",
     ["{f}:2: preemption.lead_seconds = 180 is not above preemption.grace_seconds = 300: "
      "expected more than grace_seconds plus one daemon cycle (--interval, 30 s by default), "
      "e.g. 360, so that a victim's grace time ends before the inference job's deadline"]),
    ("non-UTF-8", "k.yaml", b"policy: kant\nbackfill:\n  # caf\xe9 latin-1\n",
     ["{f}:3: not UTF-8 text (byte 0xe9); expected a UTF-8 YAML or TOML file"]),
    ("several at once, in file order", "k.yaml",
     "policy: lsf\nbackfill:\n  reservations: -1\n  reservations: 2\n  bogus: 1\n"
     "preemption:\n  grace_seconds: 200\n  lead_seconds: 100\nestimator:\n  history: 1\n",
     ["{f}:1: policy = 'lsf': expected one of: kant, slurm, fifo",
      "{f}:4: duplicate key 'backfill.reservations' (first at line 3); expected each key once",
      "{f}:5: unknown key 'backfill.bogus'; allowed here: reservations, max_job_test",
      "{f}:8: " + LEAD_BELOW_GRACE,
      "{f}:10: estimator.history = 1: expected true or false"]),
    ("YAML syntax", "k.yaml", "backfill:\n  reservations: [1\n",
     ["{f}:3: not valid YAML: expected ',' or ']', but got '<stream end>'"]),
    ("TOML: several at once", "k.toml",
     "# site\npolicy = \"kant\"\n\n[backfill]\nreservations = -1\n\"max_job_test\" = \"x\"\n"
     "\n[preemption]\ngrace_seconds = 200\nlead_seconds = 100\nquota.borrow_limit = 5\n"
     "\n[quota.accounts]\na = { h100 = -5 }\n",
     ["{f}:5: backfill.reservations = -1: expected an integer in [0, 100000]",
      "{f}:6: backfill.max_job_test = 'x': expected an integer in [0, 10000000]",
      "{f}:10: " + LEAD_BELOW_GRACE,
      "{f}:11: unknown key 'preemption.quota'; allowed here: enabled, qos, partitions, "
      "classes, checkpoint_interval, grace_seconds, lead_seconds, max_victims, slurm, "
      "slurm_youngest_first",
      # Inside an inline table: the line of its parent key.
      "{f}:14: quota.accounts.a.h100 = -5: expected an integer in [0, 10000000]"]),
    ("TOML: duplicate key", "k.toml", "[backfill]\nreservations = 1\nreservations = 2\n",
     ["{f}:3: duplicate key 'backfill.reservations' (TOML: Cannot overwrite a value (at line "
      "3, column 17)); expected each key once"]),
    ("TOML: duplicate table", "k.toml", "[backfill]\nreservations = 1\n[backfill]\n",
     ["{f}:3: duplicate key 'backfill' (TOML: Cannot declare ('backfill',) twice (at line 3, "
      "column 10)); expected each key once"]),
    ("TOML: non-UTF-8", "k.toml", b"policy = \"k\xffant\"\n",
     ["{f}:1: not UTF-8 text (byte 0xff); expected a UTF-8 YAML or TOML file"]),
]


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize("name, file_name, content, expected", CASES, ids=[c[0] for c in CASES])
def test_config_check_shows_every_error_with_file_and_line(tmp_path, name, file_name, content,
                                                           expected):
    path = _write(tmp_path, file_name, content)
    with pytest.raises(ConfigError) as err:
        load_config(path, steering=True)
    assert str(err.value).splitlines() == [e.format(f=path) for e in expected]
    # The CLI prints the same lines, each as its own error, and exits 1.
    r = CliRunner().invoke(cli, ["config", "check", str(path)])
    assert r.exit_code == 1, r.output
    assert r.stdout == ""
    assert r.stderr.splitlines() == [f"error: {e.format(f=path)}" for e in expected]


def test_steering_rules_are_left_to_steering(tmp_path):
    # The simulator models no grace time: its configs may act later than grace_seconds.
    path = _write(tmp_path, "sim.yaml", "preemption:\n  grace_seconds: 200\n  lead_seconds: 100\n")
    assert load_config(path).preemption.lead_seconds == 100.0
    r = CliRunner().invoke(cli, ["config", "check", "--simulation", str(path)])
    assert r.exit_code == 0 and r.output.strip() == f"{path}: ok"
    r = CliRunner().invoke(cli, ["config", "check", str(path)])
    assert r.exit_code == 1


def test_cross_field_rule_holds_at_the_boundary(tmp_path):
    equal = _write(tmp_path, "eq.yaml", "preemption: {grace_seconds: 120, lead_seconds: 120}\n")
    with pytest.raises(ConfigError, match="lead_seconds = 120 is not above"):
        load_config(equal, steering=True)
    above = _write(tmp_path, "ok.yaml", "preemption: {grace_seconds: 120, lead_seconds: 121}\n")
    assert load_config(above, steering=True).preemption.lead_seconds == 121.0


def test_a_key_with_its_own_error_is_not_also_reported_by_a_rule(tmp_path):
    path = _write(tmp_path, "k.yaml", "preemption:\n  grace_seconds: -1\n  lead_seconds: 0\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, steering=True)
    assert str(err.value) == (f"{path}:2: preemption.grace_seconds = -1: expected an integer in "
                              "[0, 86400]")


def test_lines_of_keys(tmp_path):
    y = _write(tmp_path, "k.yaml", "# top\npolicy: kant\nquota:\n  accounts:\n    a: {h100: 1}\n")
    assert dict(parse_config_file(y).lines) == {
        ("policy",): 2, ("quota",): 3, ("quota", "accounts"): 4, ("quota", "accounts", "a"): 5,
        ("quota", "accounts", "a", "h100"): 5}
    t = _write(tmp_path, "k.toml", "policy = 'kant'\n[quota.accounts]\n\"a b\" = {h100 = 1}\n")
    assert dict(parse_config_file(t).lines) == {
        ("policy",): 1, ("quota", "accounts"): 2, ("quota", "accounts", "a b"): 3}


def test_config_check_via_the_real_command_has_no_traceback(tmp_path):
    path = _write(tmp_path, "k.yaml", b"backfill:\n  reservations: 2\n  reservations: \xff\n")
    proc = subprocess.run([sys.executable, "-c", "from kant_slurm.cli import main; main()",
                           "config", "check", str(path)], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr == (f"error: {path}:3: not UTF-8 text (byte 0xff); expected a UTF-8 "
                           "YAML or TOML file\n")


def test_other_commands_name_a_non_utf8_config_in_one_line(tmp_path):
    path = _write(tmp_path, "k.yaml", b"policy: \xff\n")
    r = CliRunner().invoke(cli, ["config", "show", "--config", str(path)])
    assert r.exit_code == 1
    assert r.stderr == (f"error: {path}:1: not UTF-8 text (byte 0xff); expected a UTF-8 YAML "
                        "or TOML file\n")


@pytest.mark.parametrize("path", sorted((ROOT / "site-config").glob("*.yaml"))
                         + sorted((ROOT / "site-config").glob("*.toml")), ids=lambda p: p.name)
def test_site_config_examples_pass_the_steering_rules(path):
    # The examples are site files for live steering: config check must accept them as they are.
    r = CliRunner().invoke(cli, ["config", "check", str(path)])
    assert r.exit_code == 0, r.output
