"""config.inference_advice: what a config lacks for inference beside training (issue 15:
the defaults must not be a trap), in `simulate` notes and `config check` warnings."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from kant_slurm.cli import cli
from kant_slurm.config import config_from_dict, inference_advice

ZONE = {"inference_zone": {"nodes": "gn[13-16]"}}
PREEMPT = {"preemption": {"enabled": True, "classes": ["training"]}}


@pytest.mark.parametrize("raw, inference_jobs, expected", [
    ({}, 0, []),  # no inference in the workload: nothing to say
    ({}, 12, ["no inference zone", "preemption.enabled is false"]),
    (ZONE, 12, ["preemption.enabled is false"]),
    (PREEMPT, 12, ["no inference zone"]),
    ({**ZONE, **PREEMPT}, 12, []),
    ({"inference_zone": {"partition": "serve"}, **PREEMPT}, 12, []),
    # A live config: inference exists when a QOS or partition maps to it.
    ({}, None, []),
    ({"classes": {"by_qos": {"infer": "inference"}}}, None,
     ["no inference zone", "preemption.enabled is false"]),
    ({"classes": {"by_partition": {"train": "training"}}}, None, []),
])
def test_inference_advice(raw, inference_jobs, expected):
    lines = inference_advice(config_from_dict(raw), inference_jobs)
    assert len(lines) == len(expected)
    for line, part in zip(lines, expected, strict=True):
        assert part in line


def test_config_check_warns_but_passes(tmp_path):
    path = tmp_path / "kant.yaml"
    path.write_text("classes: {by_qos: {infer: inference}}\n")
    res = CliRunner().invoke(cli, ["config", "check", str(path)])
    assert res.exit_code == 0, res.output
    assert f"{path}: ok" in res.stdout
    assert res.stderr.count("warning:") == 2 and "QOS infer" in res.stderr
