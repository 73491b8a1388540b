"""The Prometheus exporter: figures of a hand-built snapshot, the state file, textfile, HTTP, and
the Grafana dashboard's metric names."""

from __future__ import annotations

import json
import re
import socket
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kant_slurm.errors import SlurmUnreachable
from kant_slurm.exporter import (METRIC_NAMES, cycle_metrics, make_registry, serve,
                                 snapshot_metrics, write_textfile)
from kant_slurm.model import ClusterSnapshot, Inventory, Job, Partition, Topology

DASHBOARD = Path(__file__).resolve().parents[2] / "site-config" / "grafana" / \
    "kant-slurm-dashboard.json"


def _snapshot() -> ClusterSnapshot:
    """n1 3/8 GPUs, n2 8/8 (leaf1), n3 free (leaf2); pending: training 2x8, inference 1."""
    names = ["n1", "n2", "n3"]
    inv = Inventory.build(names, [8, 8, 8], partitions=[Partition("gpu", tuple(names), True)],
                          topology=Topology.from_links({"leaf1": ["n1", "n2"], "leaf2": ["n3"]}))
    jobs = [
        Job("1", "RUNNING", 1, 3, 0.0, nodes=("n1",), node_gpus=(3,), job_class="batch"),
        Job("2", "RUNNING", 1, 8, 0.0, nodes=("n2",), node_gpus=(8,), job_class="training"),
        Job("3", "PENDING", 2, 8, 0.0, job_class="training"),
        Job("4", "PENDING", 1, 1, 0.0, job_class="inference"),
        Job("5", "PENDING", 1, 1, 0.0, job_class="inference"),
    ]
    return ClusterSnapshot.idle(inv, jobs)


def test_snapshot_figures_by_hand():
    m = snapshot_metrics(_snapshot())
    assert m["gpus_total"] == 24 and m["gpus_allocated"] == 11
    assert m["gar"] == pytest.approx(11 / 24)
    assert m["gfr"] == pytest.approx(1 / 3)
    assert m["stranded_gpus"] == 5
    assert m["stranded_gpu_share"] == pytest.approx(5 / 13)
    assert m["free_whole_nodes"] == 1
    assert m["leaves"] == {"leaf1": {"free_whole_nodes": 0, "gpus_total": 16, "gpus_allocated": 11},
                           "leaf2": {"free_whole_nodes": 1, "gpus_total": 8, "gpus_allocated": 0}}
    assert m["pending_jobs"] == {"training": 1, "inference": 2, "batch": 0}
    assert m["pending_gpus"] == {"training": 16, "inference": 2, "batch": 0}


@pytest.mark.parametrize("content, expected", [
    (None, {"state_file_ok": 0}),
    ("{not json", {"state_file_ok": 0}),
    (json.dumps({"version": 1, "cycle": 4, "updated_at": 1700000000.5,
                 "marks": {"weight": {"n1": {}}, "site_factor": {}, "pin": {}}}),
     {"state_file_ok": 1, "steer_cycles": 4, "state_updated_timestamp_seconds": 1700000000.5,
      "marks": {"weight": 1, "site_factor": 0, "pin": 0}}),
    (json.dumps({"version": 1, "cycle": 2, "marks": {},
                 "last_cycle": {"duration_s": 0.25, "applied": [{}, {}, {}], "at": 1700000001}}),
     {"state_file_ok": 1, "steer_cycles": 2, "marks": {}, "last_cycle_duration_seconds": 0.25,
      "last_cycle_changes": 3.0, "last_cycle_timestamp_seconds": 1700000001.0}),
])
def test_cycle_metrics_from_the_state_file(tmp_path, content, expected):
    path = tmp_path / "state.json"
    if content is not None:
        path.write_text(content)
    assert cycle_metrics(path) == expected


def _families(text: str) -> dict:
    out = {}
    for fam in text_string_to_metric_families(text):
        out[fam.name] = {tuple(sorted(s.labels.items())): s.value for s in fam.samples}
    return out


def test_textfile(tmp_path):
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"version": 1, "cycle": 7, "marks": {"pin": {"12": {}}},
                                 "last_cycle": {"duration_s": 1.5, "applied": 4}}))
    out = tmp_path / "kant.prom"
    write_textfile(out, make_registry(_snapshot, state))
    fam = _families(out.read_text())
    assert fam["kant_slurm_up"][()] == 1
    assert fam["kant_slurm_gar"][()] == pytest.approx(11 / 24)
    assert fam["kant_slurm_stranded_gpus"][()] == 5
    assert fam["kant_slurm_leaf_free_whole_nodes"][(("leaf_group", "leaf2"),)] == 1
    assert fam["kant_slurm_pending_gpus"][(("job_class", "training"),)] == 16
    assert fam["kant_slurm_pending_jobs"][(("job_class", "inference"),)] == 2
    assert fam["kant_slurm_last_cycle_duration_seconds"][()] == 1.5
    assert fam["kant_slurm_last_cycle_changes"][()] == 4
    assert fam["kant_slurm_marks"][(("kind", "pin"),)] == 1
    assert set(fam) <= set(METRIC_NAMES)


def test_slurm_down_exports_up_zero(tmp_path):
    def read():
        raise SlurmUnreachable("slurmctld does not answer")

    out = tmp_path / "kant.prom"
    write_textfile(out, make_registry(read, tmp_path / "missing.json"))
    fam = _families(out.read_text())
    assert fam["kant_slurm_up"][()] == 0
    assert "kant_slurm_gar" not in fam
    assert fam["kant_slurm_state_file_ok"][()] == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_http_scrape_on_loopback(tmp_path):
    reads = []

    def read():
        reads.append(1)
        return _snapshot()

    port = _free_port()
    server, thread = serve(port, make_registry(read, None), addr="127.0.0.1")
    try:
        for _ in range(2):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
                body = resp.read().decode()
        assert _families(body)["kant_slurm_gfr"][()] == pytest.approx(1 / 3)
        assert len(reads) == 2  # every scrape reads Slurm afresh
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_grafana_dashboard_uses_only_exported_metrics():
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    used = {name for e in exprs for name in re.findall(r"\bkant_slurm_[a-z_]+\b", e)}
    assert used, "the dashboard queries no kant_slurm_ metric"
    assert used <= set(METRIC_NAMES), sorted(used - set(METRIC_NAMES))
    # Every query names one of our metrics (no stray metric from another exporter).
    for e in exprs:
        assert re.search(r"\bkant_slurm_", e), e
    for key in ("kant_slurm_gar", "kant_slurm_gfr", "kant_slurm_stranded_gpus",
                "kant_slurm_leaf_free_whole_nodes", "kant_slurm_pending_jobs",
                "kant_slurm_pending_gpus", "kant_slurm_last_cycle_duration_seconds",
                "kant_slurm_last_cycle_changes"):
        assert key in used
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
