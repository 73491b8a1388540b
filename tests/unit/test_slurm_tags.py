"""parse_kant_tag: the admin-comment tag job_submit.lua writes."""

import pytest

from kant_slurm.errors import InputError
from kant_slurm.slurm.tags import parse_kant_tag


@pytest.mark.parametrize("text, expected", [
    ("kant:workload=inference;service=chat;est=3600;sla=60",
     {"workload": "inference", "service": "chat", "est": 3600, "sla": 60}),
    ("kant:workload=training;est=7200", {"workload": "training", "est": 7200}),
    ("kant:est=5;workload=batch", {"workload": "batch", "est": 5}),
    ("kant:workload=training;", {"workload": "training"}),
    ("", {}),
    (None, {}),
    ("reserved for the ops team", {}),
    ("ops note kant:workload=inference;service=a.b-c_1", {"workload": "inference", "service": "a.b-c_1"}),
])
def test_valid_tags(text, expected):
    assert parse_kant_tag(text) == expected


@pytest.mark.parametrize("text, field", [
    ("kant:workload=gaming", "workload"),
    ("kant:workload=training;est=1h", "est"),
    ("kant:workload=training;sla=-5", "sla"),
    ("kant:workload=inference;service=a b", "service"),
    ("kant:workload=inference;service=;est=1", "service"),
    ("kant:est=10", "workload"),
    ("kant:workload=training;gpus=8", "gpus"),
    ("kant:workload=training;workload=batch", "workload"),
    ("kant:workload", "workload"),
    ("kant:", "kant:"),
])
def test_bad_tags_name_the_field(text, field):
    with pytest.raises(InputError) as err:
        parse_kant_tag(text)
    assert field in str(err.value)
