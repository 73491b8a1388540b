"""read_snapshot() against the real dev cluster: GPU by GPU, what Slurm placed."""

from __future__ import annotations

import re

import pytest

from kant_slurm.slurm import read_snapshot

pytestmark = pytest.mark.slurm


def _node_gres_used(cluster) -> dict[str, set[int]]:
    """Per node, the GPU indices slurmctld marks used (node side, independent of job records)."""
    out = cluster.run("scontrol", "show", "node", "-d", "-o").stdout
    used: dict[str, set[int]] = {}
    for line in out.splitlines():
        name = re.search(r"NodeName=(\S+)", line).group(1)
        m = re.search(r"GresUsed=gpu:[^:(]*:?(\d+)\(IDX:([^)]*)\)", line)
        idx: set[int] = set()
        if m and m.group(2) not in ("N/A", ""):
            for part in m.group(2).split(","):
                lo, _, hi = part.partition("-")
                idx.update(range(int(lo), int(hi or lo) + 1))
        used[name] = idx
    return used


def test_snapshot_matches_slurm_gpu_by_gpu(slurm_clean):
    cluster = slurm_clean
    ids = {
        "one": cluster.sbatch("-J", "one", "--gres=gpu:1", "-t", "30", "--wrap", "sleep 300"),
        "three": cluster.sbatch("-J", "three", "--gres=gpu:3", "-t", "30", "--wrap", "sleep 300"),
        "eight": cluster.sbatch("-J", "eight", "--gres=gpu:8", "-t", "30", "--wrap", "sleep 300"),
        "twox8": cluster.sbatch("-J", "twox8", "-N", "2", "--gres=gpu:8", "-t", "30", "--wrap",
                                "sleep 300"),
    }
    cluster.wait_running(ids.values())
    # One job that cannot fit: 16 nodes x 8 GPUs while 28 GPUs are taken.
    pending = cluster.sbatch("-J", "big", "-N", "16", "--gres=gpu:8", "-t", "60", "--wrap",
                             "sleep 1")
    cluster.run("scontrol", "update", f"jobid={ids['one']}",
                "AdminComment=kant:workload=inference;service=chat;est=600")

    snap = read_snapshot()
    inv = snap.inventory
    assert len(inv) == 16 and int(inv.gpus_total.sum()) == 128
    assert set(inv.leaf_names) == {"leaf1", "leaf2", "leaf3", "leaf4"}

    jobs = snap.job
    want = {"one": (1, 1), "three": (1, 3), "eight": (1, 8), "twox8": (2, 8)}
    for key, (n_nodes, per_node) in want.items():
        job = jobs[ids[key]]
        assert job.is_running and job.name == key
        assert len(job.nodes) == n_nodes
        assert job.node_gpus == (per_node,) * n_nodes
        assert [len(ix) for ix in job.node_gpu_indices] == [per_node] * n_nodes
        assert job.time_limit == 1800
    assert jobs[pending].is_pending and jobs[pending].num_nodes == 16 and jobs[pending].gpus == 128
    tagged = jobs[ids["one"]]
    assert (tagged.job_class, tagged.class_source, tagged.service, tagged.est_runtime) == (
        "inference", "tag", "chat", 600.0)

    # GPU by GPU: the indices of all jobs on a node are exactly what the node marks used,
    # and no GPU is given twice.
    from_jobs: dict[str, list[int]] = {n: [] for n in inv.names}
    for job in snap.running:
        for node, idx in zip(job.nodes, job.node_gpu_indices, strict=True):
            from_jobs[node].extend(idx)
    node_side = _node_gres_used(cluster)
    for name in inv.names:
        assert len(from_jobs[name]) == len(set(from_jobs[name])), f"{name}: GPU given twice"
        assert set(from_jobs[name]) == node_side[name], name
        assert int(snap.gpus_alloc[inv.index[name]]) == len(node_side[name]), name
    assert int(snap.gpus_alloc.sum()) == 1 + 3 + 8 + 16


def test_classify_is_applied_to_every_job(slurm_clean):
    cluster = slurm_clean
    job_id = cluster.sbatch("--gres=gpu:2", "-t", "10", "--wrap", "sleep 120")
    cluster.wait_running([job_id])
    seen = []

    def classify(job):
        seen.append(job.job_id)
        return job

    snap = read_snapshot(classify=classify)
    assert seen == [j.job_id for j in snap.jobs] and job_id in seen
