"""Config keys of issue 8: inference.sla, preemption.*, inference_zone elastic keys."""

from __future__ import annotations

import pytest

from kant_slurm.config import config_from_dict, describe_schema, load_config
from kant_slurm.errors import ConfigError


def test_defaults():
    c = load_config()
    assert c.inference.sla == 300.0
    p = c.preemption
    assert (p.enabled, p.qos, p.partitions, p.classes) == (False, (), (), ())
    assert (p.checkpoint_interval, p.grace_seconds, p.lead_seconds, p.max_victims) == \
        (3600.0, 120, 180.0, 8)
    assert (p.slurm, p.slurm_youngest_first) == (False, False)
    z = c.inference_zone
    assert (z.elastic, z.max_borrow_nodes, z.lend_horizon) == (False, 0, 3600.0)


def test_values():
    c = config_from_dict({"inference": {"sla": 60},
                          "preemption": {"enabled": True, "qos": ["train"],
                                         "classes": ["training", "batch"], "max_victims": 2,
                                         "slurm": True, "slurm_youngest_first": True},
                          "inference_zone": {"elastic": True, "max_borrow_nodes": 4,
                                             "lend_horizon": 0}})
    assert c.inference.sla == 60.0
    assert c.preemption.qos == ("train",) and c.preemption.classes == ("training", "batch")
    assert c.preemption.max_victims == 2 and c.preemption.slurm_youngest_first
    assert c.inference_zone.max_borrow_nodes == 4 and c.inference_zone.lend_horizon == 0.0


@pytest.mark.parametrize("raw, fragment", [
    ({"preemption": {"enable": True}},
     "unknown key 'preemption.enable'; allowed here: enabled, qos"),
    ({"preemption": {"enabled": "yes"}}, "preemption.enabled = 'yes': expected true or false"),
    ({"preemption": {"qos": "train"}}, "preemption.qos = 'train': expected a list of strings"),
    ({"preemption": {"classes": ["inference"]}},
     "preemption.classes = ['inference']: 'inference' is not one of: training, batch"),
    ({"preemption": {"max_victims": 0}},
     "preemption.max_victims = 0: expected an integer in [1, 100000]"),
    ({"preemption": {"checkpoint_interval": 0}},
     "preemption.checkpoint_interval = 0: expected a number in [1.0, 1000000000.0]"),
    ({"preemption": {"grace_seconds": 1.5}}, "preemption.grace_seconds = 1.5: expected an "
                                             "integer"),
    ({"inference": {"sla": -1}}, "inference.sla = -1: expected a number in [0.0, 1000000000.0]"),
    ({"inference": {"slo": 1}}, "unknown key 'inference.slo'; allowed here: sla"),
    ({"inference_zone": {"elastic": 1}}, "inference_zone.elastic = 1: expected true or false"),
    ({"inference_zone": {"max_borrow_nodes": -2}},
     "inference_zone.max_borrow_nodes = -2: expected an integer in [0, 1000000]"),
])
def test_errors_name_the_key(raw, fragment):
    with pytest.raises(ConfigError) as exc:
        config_from_dict(raw, "site.yaml")
    assert fragment in str(exc.value)
    assert str(exc.value).startswith("site.yaml: ")


def test_schema_lists_the_new_keys():
    keys = {k for k, _, _ in describe_schema()}
    assert {"inference.sla", "preemption.enabled", "preemption.max_victims",
            "preemption.slurm", "inference_zone.elastic", "inference_zone.lend_horizon"} <= keys
