"""`kant-slurm status` against the real dev cluster, on hand-computable cases."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import pytest

from kant_slurm.hostlist import expand

pytestmark = pytest.mark.slurm

KEYS = {"nodes", "gpus_total", "gpus_allocated", "leaf_groups", "gar", "gfr", "stranded_gpu_share",
        "pending_jobs"}


def _status(cluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["kant-slurm", "status", *args], env=cluster.env, capture_output=True,
                          text=True, timeout=120)


def test_idle_cluster_shows_16x8_in_four_leaf_groups_gar_zero(slurm_clean):
    res = _status(slurm_clean, "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert set(data) >= KEYS
    assert len(data["nodes"]) == 16 and data["gpus_total"] == 128 and data["gpus_allocated"] == 0
    assert [g["name"] for g in data["leaf_groups"]] == ["leaf1", "leaf2", "leaf3", "leaf4"]
    assert all(g["free_nodes"] == 4 and g["gpus_total"] == 32 for g in data["leaf_groups"])
    assert data["gar"] == 0 and data["gfr"] == 0 and data["stranded_gpu_share"] == 0
    text = _status(slurm_clean)
    assert text.returncode == 0 and "leaf4" in text.stdout and "[........] 0/8" in text.stdout


def test_two_three_gpu_jobs_give_six_gpus_and_gfr_matching_squeue(slurm_clean):
    cluster = slurm_clean
    ids = [cluster.sbatch("--gres=gpu:3", "--wrap", "sleep 120") for _ in range(2)]
    cluster.wait_running(ids)
    # One more that waits: 16 whole nodes cannot be had now.
    cluster.sbatch("-N", "16", "--gres=gpu:8", "--wrap", "sleep 1")
    data = json.loads(_status(cluster, "--json").stdout)

    squeue = cluster.run("squeue", "-h", "-t", "R", "-o", "%N %b").stdout.split("\n")
    used: dict[str, int] = {}
    for line in filter(None, squeue):
        nodes, gres = line.split()
        for node in expand(nodes):
            used[node] = used.get(node, 0) + int(gres.rsplit(":", 1)[1])
    assert sum(used.values()) == 6 == data["gpus_allocated"]
    partly = sum(1 for v in used.values() if 0 < v < 8)
    assert data["gfr"] == pytest.approx(partly / 16) and data["gfr"] > 0
    assert data["gar"] == pytest.approx(6 / 128)
    free_on_partly = sum(8 - v for v in used.values() if 0 < v < 8)
    assert data["stranded_gpu_share"] == pytest.approx(free_on_partly / 122)
    per_node = {n["name"]: n["gpus_allocated"] for n in data["nodes"]}
    assert {k: v for k, v in per_node.items() if v} == used
    assert data["pending_jobs"]["count"] == 1 and data["pending_jobs"]["by_gpu_size"]["65+"] == 1


def test_unreachable_slurmctld_exits_3_with_one_line(slurm_cluster, tmp_path):
    # A copy of the cluster's config whose slurmctld port nobody listens on.
    conf = slurm_cluster.conf_path.read_text()
    port = slurm_cluster.port_base + 9
    dead = "\n".join(f"SlurmctldPort={port}" if line.startswith("SlurmctldPort=") else line
                     for line in conf.splitlines())
    (tmp_path / "slurm.conf").write_text(dead + "\n")
    for name in ("gres.conf", "topology.conf", "plugstack.conf"):
        shutil.copy(slurm_cluster.conf_path.parent / name, tmp_path / name)
    env = dict(slurm_cluster.env, SLURM_CONF=str(tmp_path / "slurm.conf"))
    started = time.monotonic()
    res = subprocess.run(["kant-slurm", "status"], env=env, capture_output=True, text=True,
                         timeout=120)
    took = time.monotonic() - started
    assert res.returncode == 3  # issue 19: 3 = Slurm not answering
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "slurmctld" in lines[0] and "Traceback" not in res.stderr
    assert "Unable to contact slurm controller" in lines[0]
    # Fast: Slurm's reads retry a refused connection for MessageTimeout seconds before they
    # give up (issue 19: "status against a stopped cluster waits 19 s"); kant asks once.
    message_timeout = int(re.search(r"^MessageTimeout=(\d+)", conf, re.M).group(1))
    assert took < message_timeout / 2, f"status took {took:.1f}s to fail"
