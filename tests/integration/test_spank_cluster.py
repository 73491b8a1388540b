"""The kant SPANK plugin on the real dev cluster.

The plugin is compiled by a fixture into the path the dev cluster's plugstack.conf names
(``optional <dir>/kant_spank.so``); sbatch loads it on every call, so its options exist from
then on. job_submit.lua (copied by the dev cluster) turns the values into the admin-comment tag
that the snapshot reader classifies jobs by.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kant_slurm.jobscript import parse_duration
from kant_slurm import devcluster as dc
from kant_slurm.slurm import read_snapshot
from kant_slurm.slurm.backend import slurm_version

pytestmark = pytest.mark.slurm

SPANK_DIR = Path(__file__).resolve().parents[2] / "spank"
SHIPPED_PLUGSTACK = Path(__file__).resolve().parents[2] / "site-config" / "plugstack.conf"


@pytest.fixture(scope="session")
def kant_spank(slurm_cluster):
    """Build spank/kant_spank.c into the dev cluster's plugin path; the cluster then has it."""
    target = Path(slurm_cluster.paths.spank_plugin)
    proc = subprocess.run(["make", "-C", str(SPANK_DIR), f"OUT={target.parent}", "all"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert target.is_file()
    dc.write_plugstack(slurm_cluster.paths)  # named now, should `devcluster up` not have built it
    assert str(target) in Path(slurm_cluster.paths.plugstack_conf).read_text()
    help_text = slurm_cluster.run("sbatch", "--help").stdout
    assert "--workload=training|inference|batch" in help_text, "sbatch did not load the plugin"
    return slurm_cluster


def _admin_comment(cluster, job_id: str) -> str:
    out = cluster.run("scontrol", "show", "job", job_id, "-o").stdout
    for field in out.split():
        if field.startswith("AdminComment="):
            return field.split("=", 1)[1]
    return ""


def test_inference_service_option_reaches_the_snapshot(kant_spank, slurm_clean):
    cluster = slurm_clean
    job = cluster.sbatch("--workload=inference", "--service=chat", "--est-runtime=1:30:00",
                         "--gres=gpu:1", "-t", "30", "--wrap", "sleep 300")
    cluster.wait_running([job])
    assert _admin_comment(cluster, job) == "kant:workload=inference;service=chat;est=5400"
    snap_job = read_snapshot().job[job]
    assert (snap_job.job_class, snap_job.class_source, snap_job.service, snap_job.est_runtime) == \
        ("inference", "tag", "chat", 5400.0)


def test_service_alone_implies_inference(kant_spank, slurm_clean):
    job = slurm_clean.sbatch("--service=search", "--hold", "--wrap", "true")
    assert _admin_comment(slurm_clean, job) == "kant:workload=inference;service=search"


@pytest.mark.parametrize("args,message", [
    (["--workload=bogus"],
     "kant: --workload=bogus is not valid; expected training, inference or batch"),
    (["--est-runtime=5h"], "kant: --est-runtime=5h is not valid; expected a Slurm time"),
    (["--est-runtime=0"], "kant: --est-runtime=0 is zero"),
    (["--service=a;b"], "kant: --service=a;b is not valid"),
    (["--workload=training", "--service=chat"],
     "kant: --service=chat needs --workload=inference (got --workload=training)"),
    (["--workload=training", "--comment=kant:workload=inference"],
     "kant: --workload and the --comment tag disagree (training vs inference)"),
])
def test_bad_values_fail_the_submission_with_the_message(kant_spank, slurm_clean, args, message):
    res = slurm_clean.run("sbatch", "--parsable", "--hold", *args, "--wrap", "true", check=False)
    assert res.returncode != 0
    assert message in res.stderr
    assert slurm_clean.run("squeue", "-h", "-o", "%i").stdout.strip() == "", "a job was created"


# Odd values through the real sbatch -> plugin -> job_submit.lua path, bounded to a few dozen.
odd = st.one_of(
    st.text(alphabet="0123456789-: ", min_size=1, max_size=12),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1,
            max_size=300),
)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=odd)
def test_fuzz_est_runtime_through_sbatch(kant_spank, value):
    cluster = kant_spank
    res = cluster.run("sbatch", "--parsable", "--hold", "--output=/dev/null",
                      f"--est-runtime={value}", "--wrap", "true", check=False)
    try:
        expected = parse_duration(value)
    except ValueError:
        expected = None
    if expected is None:
        assert res.returncode != 0 and "kant: --est-runtime=" in res.stderr, (value, res.stderr)
        return
    assert res.returncode == 0, (value, res.stderr)
    job = res.stdout.strip().split(";")[0]
    try:
        assert _admin_comment(cluster, job) == f"kant:workload=batch;est={expected}"
    finally:
        cluster.run("scancel", job, check=False)


@pytest.mark.parametrize("template,values,tag", [
    ("training", {"program": ["true"], "time": "30", "nodes": 1, "est_runtime": "20"},
     "kant:workload=training;est=1200"),
    ("inference-service", {"service": "chat", "command": ["true"], "port": 8000,
                           "est_runtime": "1-00"},
     "kant:workload=inference;service=chat;est=86400"),
])
def test_templates_with_spank_tags(kant_spank, slurm_clean, tmp_path, template, values, tag):
    """tag=spank puts #SBATCH --workload/--service/--est-runtime lines the plugin reads."""
    from kant_slurm.jobscript import render, submit

    script = render(template, [("t", {**values, "tag": "spank", "workdir": str(tmp_path)})])
    assert "#SBATCH --workload=" in script and "--comment" not in script
    job = submit(script, ["--hold"])
    assert _admin_comment(slurm_clean, job) == tag


def _sacct_state(cluster, job_id: str) -> str:
    out = cluster.run("sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State", check=False).stdout
    return out.strip().splitlines()[-1] if out.strip() else ""


def test_installed_plugin_loads_through_the_shipped_plugstack(kant_spank, slurm_clean, tmp_path):
    """As a site sets it up: `make -C spank install` and site-config/plugstack.conf (its
    `required` line) as the cluster's plugstack.conf, read by sbatch and by the nodes' job steps
    (a required plugin that does not load fails the submission or the job)."""
    cluster = slurm_clean
    shipped = SHIPPED_PLUGSTACK.read_text()
    [(kind, path)] = [line.split()[:2] for line in shipped.splitlines()
                      if line.strip() and not line.lstrip().startswith("#")]
    assert kind == "required"
    installed = Path(path)
    before = installed.read_bytes() if installed.exists() else None
    made_dir = not installed.parent.exists()
    dev_plugstack = cluster.paths.plugstack_conf.read_text()
    try:
        # OUT: the build goes to tmp_path, not spank/ (a build there for another Slurm release
        # would look up to date to make).
        proc = subprocess.run(["make", "-C", str(SPANK_DIR), f"OUT={tmp_path}", "install"],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert installed.is_file()
        cluster.paths.plugstack_conf.write_text(shipped)
        help_run = cluster.run("sbatch", "--help")
        assert "--workload=training|inference|batch" in help_run.stdout
        assert "Dlopen" not in help_run.stderr and "error" not in help_run.stderr
        job = cluster.sbatch("--workload=inference", "--service=chat", "--gres=gpu:1", "-t", "5",
                             "--wrap", "true")
        assert _admin_comment(cluster, job) == "kant:workload=inference;service=chat"
        # The job step loaded the required plugin on its node too, or the job would fail.
        ended = wait_for(f"job {job} ends",
                         lambda: _sacct_state(cluster, job) in ("COMPLETED", "FAILED")
                         and _sacct_state(cluster, job), 60, every=0.5)
        assert ended == "COMPLETED"
    finally:
        cluster.paths.plugstack_conf.write_text(dev_plugstack)
        if before is None:
            installed.unlink(missing_ok=True)
            if made_dir:
                installed.parent.rmdir()
        else:
            installed.write_bytes(before)


def test_no_dlopen_error_when_the_plugin_was_not_built(kant_spank, slurm_clean):
    """devcluster names the plugin in plugstack.conf only when it is there (issue 19: two
    "Dlopen of plugin file failed" errors on every sbatch)."""
    cluster = slurm_clean
    plugin = Path(cluster.paths.spank_plugin)
    away = plugin.with_name(plugin.name + ".away")
    plugin.rename(away)
    try:
        # What the dev cluster wrote before: a line naming the missing file.
        cluster.paths.plugstack_conf.write_text(f"optional {plugin}\n")
        res = cluster.run("sbatch", "--hold", "--output=/dev/null", "--wrap", "true")
        # 22.05 and 24.11 print the error for the missing file; 26.05's sbatch says nothing
        # (seen 2026-12-07), so there only the fix below is checked.
        if (slurm_version() or (0, 0)) < (25, 0):
            assert "Dlopen of plugin file failed" in res.stderr
        assert dc.write_plugstack(cluster.paths) is False
        res = cluster.run("sbatch", "--hold", "--output=/dev/null", "--wrap", "true")
        assert res.stderr == "", res.stderr
    finally:
        away.rename(plugin)
        assert dc.write_plugstack(cluster.paths) is True
