"""simulate --json carries what the table prints; gangs count multi-node jobs only; every policy
of a run is measured over one window."""

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from kant_slurm.cli import cli
from kant_slurm.metrics.jobs import gang_placement
from kant_slurm.formats.records import make_records
from kant_slurm.model import Inventory, Partition, Topology
from kant_slurm.report.tables import detail_table
from kant_slurm.formats.traces import bundled_trace_path

# 4 x 8 GPUs, leaves of 2 (shared by the simulator CLI tests).
CLUSTER = (Path(__file__).parents[1] / "fixtures" / "clusters" / "tiny.yaml").read_text()


def _inventory():
    names = ["a1", "a2", "b1", "b2", "c1"]
    topo = Topology.from_links({"leafA": names[:2], "leafB": names[2:4]},
                               {"spine": ["leafA", "leafB"]}, node_order=names)
    return Inventory.build(names, [8] * 5,
                           partitions=[Partition("gpu", tuple(names), default=True)],
                           topology=topo)


def _records(placements):
    n = len(placements)
    return make_records(job_id=[str(k) for k in range(n)], submit_time=[0.0] * n,
                        start_time=[0.0 if p else math.nan for p in placements],
                        gpus=[8 * max(1, len(p)) for p in placements],
                        nodes=[tuple(p) for p in placements],
                        node_gpus=[tuple([8] * len(p)) for p in placements])


@pytest.mark.parametrize("placements, gangs, in_leaf", [
    ([["a1"], ["a2"], ["b1"]], 0, None),              # single-node only: no figure
    ([], 0, None),
    ([["a1", "a2"]], 1, 1.0),                          # one leaf
    ([["a1", "b1"]], 1, 0.0),                          # across the spine
    ([["a1", "a2"], ["a1", "b1"], ["a1"], ["b2"]], 2, 0.5),  # single-node jobs do not count
    ([["b2", "c1"]], 1, 0.0),                          # c1 is under no switch
    ([["a1", "a2"], []], 1, 1.0),                      # a job that never started
])
def test_gang_placement(placements, gangs, in_leaf):
    out = gang_placement(_records(placements), _inventory())
    assert out["gangs"] == gangs
    if in_leaf is None:
        assert math.isnan(out["in_one_leaf_share"])
    else:
        assert out["in_one_leaf_share"] == in_leaf


def test_detail_table_prints_a_dash_without_gangs():
    table = detail_table({"kant": {"gangs": {"gangs": 0, "in_one_leaf_share": float("nan")}},
                          "fifo": {"gangs": {"gangs": 4, "in_one_leaf_share": 0.25}}})
    header, kant, fifo = table.splitlines()
    col = header.index("gangs in 1 leaf")
    end = col + len("gangs in 1 leaf")
    assert kant[col:end].strip() == "-" and fifo[col:end].strip() == "0.25"


@pytest.fixture(scope="module")
def doc_and_text(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sim")
    spec = tmp / "c.yaml"
    spec.write_text(CLUSTER)
    trace = tmp / "t.csv"
    trace.write_text("\n".join(bundled_trace_path().read_text().splitlines()[:121]) + "\n")
    args = ["simulate", "--trace", str(trace), "--cluster", str(spec), "--policies",
            "fifo,kant", "--workers", "1"]
    res_json = CliRunner().invoke(cli, args + ["--json"])
    res_text = CliRunner().invoke(cli, args)
    assert res_json.exit_code == 0 and res_text.exit_code == 0, res_json.output
    return json.loads(res_json.output), res_text.output


def test_json_carries_every_table_figure(doc_and_text):
    doc, text = doc_and_text
    for name, obj in doc["policies"].items():
        d = obj["detail"]
        for key in ("by_size", "by_class", "jtted", "gangs", "backfilled",
                    "stranded_gpu_share_leaf", "gar_p10", "gar_p90", "gfr_p50",
                    "estimate_accuracy", "inference", "preemption", "training", "window_s",
                    "cycles"):
            assert key in d, (name, key)
        assert {r["size_bucket"] for r in d["by_size"]} and all("p99" in r and "max" in r
                                                                 for r in d["by_size"])
        assert "slowdown_gpu_weighted" in d["jtted"]
        # The text's detail row of this policy shows the same backfill count.
        lines = text.splitlines()
        head = next(k for k, line in enumerate(lines) if "leaf-stranded" in line)
        row = next(line for line in lines[head:] if line.startswith(name + " "))
        assert row.split()[4] == f"{d['backfilled']:,}"  # policy, leaf-str, GAR, GFR, backfilled


def test_one_window_for_every_policy(doc_and_text):
    doc, text = doc_and_text
    windows = {tuple(obj["detail"]["window_s"]) for obj in doc["policies"].values()}
    assert windows == {tuple(doc["window_s"])}
    days = (doc["window_s"][1] - doc["window_s"][0]) / 86400
    assert f"({days:.1f} days, the same for all)" in text
