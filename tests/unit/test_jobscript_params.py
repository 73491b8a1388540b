"""Template parameters: Slurm durations, value checking, and the messages users get."""

from __future__ import annotations

import pytest

from kant_slurm.errors import TemplateError
from kant_slurm.jobscript import find_template, parse_duration, parse_set, render
from kant_slurm.jobscript.params import format_duration, parse_spec, resolve_values

# (text, seconds), computed by hand from Slurm's forms.
DURATIONS = [
    ("90", 90 * 60),  # bare number is minutes
    ("1:30", 90),  # MM:SS
    ("01:00:00", 3600),  # HH:MM:SS
    ("2-3", 2 * 86400 + 3 * 3600),  # D-HH
    ("2-03:04", 2 * 86400 + 3 * 3600 + 4 * 60),  # D-HH:MM
    ("1-0:0:1", 86401),  # D-HH:MM:SS
    ("0:1", 1),
    ("90:00", 5400),  # minutes above 59 are allowed, as in Slurm
    ("365-0", 365 * 86400),  # the longest accepted
    ("00000007", 7 * 60),  # 8 digits in a field
]

BAD_DURATIONS = [
    "", "0", "0:0", "0-0", " 5", "5 ", "1-", "-1", "1:", ":1", "1::2", "1:2:3:4", "1-2-3",
    "1-2:3:4:5", "366-0", "123456789", "1h", "1.5", "+5", "٣",  # an Arabic-Indic digit
    "5\n", "1-2:", "UNLIMITED",
]


@pytest.mark.parametrize("text,seconds", DURATIONS)
def test_parse_duration_forms(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", BAD_DURATIONS)
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("seconds,text", [(59, "00:00:59"), (3600, "01:00:00"),
                                          (86400 + 61, "1-00:01:01"), (-1, "UNLIMITED")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_parse_set_plain_and_mapping():
    assert parse_set(["nodes=2", "env.A=x=y", "env.B=", "program=a b"]) == {
        "nodes": "2", "env": {"A": "x=y", "B": ""}, "program": "a b"}
    with pytest.raises(TemplateError, match="expected key=value"):
        parse_set(["nodes"])


def _training(**sets):
    return render("training", [("--set", {"program": "train.py", "time": "60", **sets})])


def test_unknown_key_lists_valid_keys_and_defaults():
    with pytest.raises(TemplateError) as err:
        _training(gpu_per_node="8")
    msg = str(err.value)
    assert "unknown parameter 'gpu_per_node'" in msg
    assert "gpus_per_node=8" in msg and "nodes=2" in msg and "time=(required)" in msg


def test_missing_required_key_is_named():
    with pytest.raises(TemplateError, match=r"missing required parameter\(s\) program, time"):
        render("training", [])


@pytest.mark.parametrize("key,value,expected", [
    ("nodes", "0", "below the minimum 1"),
    ("nodes", "two", "expected an integer"),
    ("gpus_per_node", "65", "above the maximum 64"),
    ("launcher", "mpirun", "not one of torchrun, deepspeed, command"),
    ("time_min", "2:00:00", "time_min=02:00:00 (7200 s) must be at most time=01:00:00 (3600 s)"),
    ("warning_seconds", "3600", "warning_seconds=3600 must be less than time=01:00:00 (3600 s)"),
    ("job_name", "a b", "does not match"),
    ("est_runtime", "soon", "expected a Slurm time"),
    ("requeue", "maybe", "expected true or false"),
])
def test_bad_values_name_the_parameter(key, value, expected):
    with pytest.raises(TemplateError) as err:
        _training(**{"time": "60", key: value})
    assert f"parameter {key!r}" in str(err.value) or key in str(err.value)
    assert expected in str(err.value)


def test_values_file_then_set_layers_and_env_merge():
    spec = find_template("training").spec
    values = resolve_values(spec, [
        ("--values f", {"program": ["a.py"], "time": 90, "nccl_env": {"NCCL_IB_HCA": "mlx5"}}),
        ("--set", {"nodes": "4", "nccl_env": {"NCCL_DEBUG": "INFO"}}),
    ])
    assert values["time"] == 90 * 60  # YAML int 90 is Slurm's minutes
    assert values["nodes"] == 4
    assert values["nccl_env"] == {"NCCL_DEBUG": "INFO", "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1",
                                  "NCCL_IB_HCA": "mlx5"}


def test_env_names_are_checked():
    with pytest.raises(TemplateError, match="does not match"):
        _training(env={"BAD-NAME": "x"})
    with pytest.raises(TemplateError, match="does not match"):
        _training(nccl_env={"PATH": "/evil"})


def test_sidecar_schema_is_strict():
    with pytest.raises(TemplateError, match="unknown key"):
        parse_spec("t", {"parameters": [{"name": "a", "type": "str", "help": "h", "regex": "x"}]},
                   "t.yaml")
    with pytest.raises(TemplateError, match="type 'float' is not one of"):
        parse_spec("t", {"parameters": [{"name": "a", "type": "float", "help": "h"}]}, "t.yaml")
    with pytest.raises(TemplateError, match="needs a help text"):
        parse_spec("t", {"parameters": [{"name": "a", "type": "str"}]}, "t.yaml")
    with pytest.raises(TemplateError, match="t.yaml: default: parameter 'n'"):
        parse_spec("t", {"parameters": [{"name": "n", "type": "int", "help": "h", "min": 1,
                                         "default": 0}]}, "t.yaml")


@pytest.mark.parametrize("args,text", [
    (("training", None, 3600), "kant:workload=training;est=3600"),
    (("inference", "chat", None), "kant:workload=inference;service=chat"),
    (("batch", None, None), "kant:workload=batch"),
])
def test_kant_tag_is_what_the_snapshot_reader_parses(args, text):
    from kant_slurm.jobscript import kant_tag
    from kant_slurm.formats.tags import parse_kant_tag

    assert kant_tag(*args) == text
    parsed = parse_kant_tag(text)
    assert parsed["workload"] == args[0] and parsed.get("service") == args[1]
    assert parsed.get("est") == args[2]
