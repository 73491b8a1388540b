"""The snapshot carries a pending job's SiteFactor (22.05's squeue JSON has none; sprio has it)."""

import pytest

from kant_slurm.slurm import read_snapshot

pytestmark = pytest.mark.slurm


def test_site_factor_of_pending_job_is_read(slurm_cluster, slurm_clean):
    # Fill every GPU so the next jobs wait for resources: eligible, so sprio lists them (sprio
    # leaves out held jobs and jobs whose begin time is ahead).
    filler = slurm_cluster.sbatch(
        f"--nodes={len(slurm_cluster.nodes)}", "--gres=gpu:8", "--wrap", "sleep 300"
    )
    slurm_cluster.wait_running([filler])
    job_id = slurm_cluster.sbatch("--gres=gpu:1", "--wrap", "sleep 1")
    other = slurm_cluster.sbatch("--gres=gpu:1", "--wrap", "sleep 1")
    slurm_cluster.run("scontrol", "update", f"JobId={job_id}", "SiteFactor=4321")
    snapshot = read_snapshot()
    assert snapshot.job[job_id].is_pending
    assert snapshot.job[job_id].site_factor == 4321
    assert snapshot.job[other].site_factor == 0  # none set
    assert snapshot.job[filler].site_factor == 0  # running: sprio does not list it
