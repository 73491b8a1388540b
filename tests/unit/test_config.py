"""The strict config: defaults, merging, errors that name the key, and every example loads."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kant_slurm.cli import cli
from kant_slurm.config import (KantConfig, config_from_dict, describe_schema, load_config)
from kant_slurm.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_the_shipped_values():
    c = load_config()
    assert isinstance(c, KantConfig)
    assert c.policy == "kant"
    assert c.classes.order == ("inference", "training", "batch")
    assert c.backfill.reservations == 8
    assert c.backfill.max_job_test == 0
    assert c.quota.borrow_limit == 1.0
    assert dict(c.quota.accounts) == {}
    assert c.estimator.history is False and c.estimator.use_user_estimate is True
    assert c.estimator.unlimited_runtime == 31536000.0
    assert c.inference_zone.nodes == "" and c.inference_zone.partition == ""
    assert (c.weights.tier_base, c.weights.tier_step) == (1, 10)


def test_defaults_dataclass_and_yaml_agree():
    # The shipped YAML and the dataclass defaults must say the same thing.
    assert load_config().to_dict() == KantConfig().to_dict()


def test_merge_keeps_unset_keys():
    c = config_from_dict({"backfill": {"reservations": 3}})
    assert c.backfill.reservations == 3
    assert c.backfill.max_job_test == 0
    assert c.policy == "kant"


@pytest.mark.parametrize("raw, fragment", [
    ({"bogus": 1}, "unknown key 'bogus'; allowed here: policy, classes"),
    ({"backfill": {"reservation": 3}}, "unknown key 'backfill.reservation'; allowed here: "
                                       "reservations, max_job_test"),
    ({"backfill": {"reservations": -1}}, "backfill.reservations = -1: expected an integer in "
                                         "[0, 100000]"),
    ({"backfill": {"reservations": "4"}}, "backfill.reservations = '4': expected an integer"),
    ({"backfill": {"reservations": True}}, "backfill.reservations = True: expected an integer"),
    ({"backfill": {"reservations": 2.5}}, "backfill.reservations = 2.5: expected an integer"),
    ({"quota": {"borrow_limit": -0.1}}, "quota.borrow_limit = -0.1: expected a number in "
                                        "[0.0, 1000.0]"),
    ({"estimator": {"history": "yes"}}, "estimator.history = 'yes': expected true or false"),
    ({"policy": "lsf"}, "policy = 'lsf': expected one of: kant, slurm, fifo"),
    ({"classes": {"order": ["inference", "batch"]}},
     "classes.order = ['inference', 'batch']: expected each of inference, training, batch "
     "exactly once"),
    ({"classes": {"by_qos": {"hi": "urgent"}}},
     "classes.by_qos.hi = 'urgent': expected one of: inference, training, batch"),
    ({"quota": {"accounts": {"a": {"h100": -5}}}},
     "quota.accounts.a.h100 = -5: expected an integer in [0, 10000000]"),
    ({"quota": {"accounts": {"a": 5}}}, "quota.accounts.a = 5: expected a mapping"),
    ({"backfill": 3}, "backfill must be a mapping"),
    ({"weights": {"tier_step": 0}}, "weights.tier_step = 0: expected an integer in "
                                    "[1, 2147483647]"),
])
def test_bad_values_name_the_key_and_what_is_allowed(raw, fragment):
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw, "site.yaml")
    assert fragment in str(err.value)
    assert str(err.value).startswith("site.yaml: ")


def test_yaml_and_toml_files(tmp_path):
    y = tmp_path / "k.yaml"
    y.write_text("backfill:\n  reservations: 2\nquota:\n  accounts:\n    a: {h100: 16}\n")
    c = load_config(y)
    assert c.backfill.reservations == 2
    assert c.quota.accounts["a"]["h100"] == 16
    t = tmp_path / "k.toml"
    t.write_text('[backfill]\nreservations = 5\n[inference_zone]\nnodes = "gn[01-02]"\n')
    c = load_config(t)
    assert c.backfill.reservations == 5 and c.inference_zone.nodes == "gn[01-02]"


def test_file_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("backfill:\n  reservations: [1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:3: not valid YAML: expected ','"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(top)
    badtoml = tmp_path / "bad.toml"
    badtoml.write_text("[backfill\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(badtoml)


def test_env_var_names_the_file(tmp_path, monkeypatch):
    f = tmp_path / "k.yaml"
    f.write_text("policy: slurm\n")
    monkeypatch.setenv("KANT_CONFIG", str(f))
    assert load_config().policy == "slurm"


def test_schema_lists_every_leaf_key():
    keys = [k for k, _, _ in describe_schema()]
    assert "backfill.reservations" in keys and "inference_zone.partition" in keys
    assert len(keys) == len(set(keys)) >= 20
    assert all(h for _, _, h in describe_schema())


EXAMPLES = sorted(list((ROOT / "site-config").glob("*.yaml"))
                  + list((ROOT / "site-config").glob("*.toml")))


def test_there_are_examples():
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_site_config_example_loads(path):
    c = load_config(path)
    assert isinstance(c, KantConfig)


def test_cli_config_check_and_show(tmp_path):
    runner = CliRunner()
    good = ROOT / "site-config" / "kant.yaml"
    r = runner.invoke(cli, ["config", "check", str(good)])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == f"{good}: ok"
    bad = tmp_path / "bad.yaml"
    bad.write_text("backfill:\n  reservations: many\n")
    r = runner.invoke(cli, ["config", "check", str(bad)])
    assert r.exit_code == 1
    assert "backfill.reservations = 'many': expected an integer" in r.output
    r = runner.invoke(cli, ["config", "show", "--config", str(good), "--json"])
    assert r.exit_code == 0, r.output
    assert '"reservations": 16' in r.output
    r = runner.invoke(cli, ["config", "show"])
    assert r.exit_code == 0 and "reservations: 8" in r.output
    r = runner.invoke(cli, ["config", "show", "--schema"])
    assert "backfill.reservations" in r.output
