"""parse_kant_tag: the admin-comment tag job_submit.lua writes."""

import pytest

from kant_slurm.errors import InputError
from kant_slurm.formats.tags import parse_kant_tag


@pytest.mark.parametrize("text, expected", [
    ("kant:workload=inference;service=chat;est=3600;sla=60",
     {"workload": "inference", "service": "chat", "est": 3600, "sla": 60}),
    ("kant:workload=training;est=7200", {"workload": "training", "est": 7200}),
    ("kant:est=5;workload=batch", {"workload": "batch", "est": 5}),
    ("kant:workload=training;", {"workload": "training"}),
    ("", {}),
    (None, {}),
    ("reserved for the ops team", {}),
    ("ops note kant:workload=inference;service=a.b-c_1",
     {"workload": "inference", "service": "a.b-c_1"}),
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


def test_sla_and_checkpoint_interval_fields():
    assert parse_kant_tag("kant:workload=training;ckpt=1800;est=7200") == \
        {"workload": "training", "ckpt": 1800, "est": 7200}
    with pytest.raises(InputError, match="ckpt='30m'"):
        parse_kant_tag("kant:workload=training;ckpt=30m")


def test_reader_copies_sla_and_checkpoint_interval_onto_the_job():
    from kant_slurm.model import Job
    from kant_slurm.formats.slurm_jobs import apply_tag

    inf = apply_tag(Job("1", "PENDING", 1, 1, 0.0,
                        admin_comment="kant:workload=inference;service=chat;sla=60"))
    assert (inf.job_class, inf.service, inf.sla, inf.checkpoint_interval) == \
        ("inference", "chat", 60.0, None)
    tr = apply_tag(Job("2", "RUNNING", 1, 8, 0.0, admin_comment="kant:workload=training;ckpt=900"))
    assert (tr.job_class, tr.sla, tr.checkpoint_interval) == ("training", None, 900.0)
