"""site-config/job_submit.lua in the real slurmctld: tags, fallbacks and rejections.

These submissions carry no SPANK option: the class comes from the templates' comment tag or
from the QOS rule, which is what a cluster without the plugin sees.
"""

from __future__ import annotations

import pytest

from kant_slurm.slurm import read_snapshot

pytestmark = pytest.mark.slurm


def _admin_comment(cluster, job_id: str) -> str:
    out = cluster.run("scontrol", "show", "job", job_id, "-o").stdout
    fields = dict(f.split("=", 1) for f in out.split() if "=" in f)
    return fields.get("AdminComment", "")


def test_lua_is_the_clusters_job_submit_plugin(slurm_cluster):
    conf = slurm_cluster.run("scontrol", "show", "config").stdout
    assert any(line.split("=")[0].strip() == "JobSubmitPlugins" and "lua" in line
               for line in conf.splitlines())


def test_comment_tag_becomes_the_admin_tag(slurm_clean):
    cluster = slurm_clean
    job = cluster.sbatch("--hold", "--comment=kant:workload=training;est=7200", "--wrap", "true")
    assert _admin_comment(cluster, job) == "kant:workload=training;est=7200"
    j = read_snapshot().released().job[job]  # held: Slurm starts none of them
    assert (j.job_class, j.class_source, j.est_runtime) == ("training", "tag", 7200.0)


def test_comment_est_as_slurm_time_is_converted(slurm_clean):
    job = slurm_clean.sbatch("--hold", "--comment=kant:workload=inference;service=chat;est=1-00",
                             "--wrap", "true")
    assert _admin_comment(slurm_clean, job) == "kant:workload=inference;service=chat;est=86400"


def test_untagged_job_stays_untagged_and_reads_as_batch(slurm_clean):
    job = slurm_clean.sbatch("--hold", "--comment=just a note", "--wrap", "true")
    assert _admin_comment(slurm_clean, job) == ""
    j = read_snapshot().released().job[job]  # held: Slurm starts none of them
    assert (j.job_class, j.class_source) == ("batch", "default")


def test_qos_rule_classifies_when_the_job_says_nothing(slurm_clean):
    cluster = slurm_clean
    # A QOS named like the rule in job_submit.lua (QOS_RULES: inference -> inference).
    cluster.run("sacctmgr", "-i", "add", "qos", "inference", check=False)
    cluster.run("sacctmgr", "-i", "modify", "user", "root", "set", "qos+=inference", check=False)
    job = cluster.sbatch("--hold", "--qos=inference", "--wrap", "true")
    assert _admin_comment(cluster, job) == "kant:workload=inference"


@pytest.mark.parametrize("comment,message", [
    ("kant:workload=bogus",
     "kant: workload=bogus is not valid; expected training, inference or batch"),
    ("kant:workload=training;service=chat",
     "kant: service=chat needs workload=inference, not training"),
    ("kant:workload=inference;colour=red", "unknown key colour"),
    ("kant:workload=batch;est=soon", "kant: est=soon is not valid"),
    ("kant:workload=inference;service=$(id)", "kant: service=$(id) is not valid"),
])
def test_bad_tags_are_rejected_with_a_message(slurm_clean, comment, message):
    res = slurm_clean.run("sbatch", "--parsable", "--hold", f"--comment={comment}", "--wrap",
                          "true", check=False)
    assert res.returncode != 0
    assert message in res.stderr
    assert slurm_clean.run("squeue", "-h", "-o", "%i").stdout.strip() == ""
