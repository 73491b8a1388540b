"""`kant-slurm simulate` end to end on small real-trace pieces, with the real engine."""

import json
from pathlib import Path

from click.testing import CliRunner

from kant_slurm.cli import cli
from kant_slurm.formats.traces import bundled_trace_path

KEYS = ["jobs", "gar_mean", "sor", "gfr_mean", "stranded_gpu_share", "wait_mean_s",
        "wait_p50_s", "wait_p90_s", "wait_p99_s", "jct_mean_s", "makespan_s",
        "inference_sla_attainment", "inference_wait_p99_s", "preempted_gpu_hours", "preemptions",
        "sim_seconds"]

# 4 x 8 GPUs, leaves of 2 (shared by the simulator CLI tests).
CLUSTER = (Path(__file__).parents[1] / "fixtures" / "clusters" / "tiny.yaml").read_text()


def _small_trace(tmp_path, n=150):
    lines = bundled_trace_path().read_text().splitlines()
    p = tmp_path / "philly small.csv"  # a space in the path on purpose
    p.write_text("\n".join(lines[: n + 1]) + "\n")
    return p


def test_json_has_one_object_per_policy_with_the_issue_keys(tmp_path):
    spec = tmp_path / "c.yaml"
    spec.write_text(CLUSTER)
    res = CliRunner().invoke(cli, ["simulate", "--trace", str(_small_trace(tmp_path)),
                                   "--cluster", str(spec), "--policies", "fifo,slurm,kant",
                                   "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert list(doc["policies"]) == ["fifo", "slurm", "kant"]
    for obj in doc["policies"].values():
        assert list(obj) == KEYS + ["detail"]  # detail: every other figure (issue 19)
        assert obj["jobs"] == 150
        assert 0 < obj["gar_mean"] <= 1 and 0 < obj["sor"] <= 1
    assert doc["job_classes"] == {"training": 150}


def test_policies_side_by_side_give_the_same_records_as_one_after_another(tmp_path):
    import pandas as pd

    from kant_slurm.sim.cluster import load_cluster_spec
    from kant_slurm.sim.run import compare_policies
    from kant_slurm.formats.traces import read_trace

    spec = tmp_path / "c.yaml"
    spec.write_text(CLUSTER)
    trace = read_trace(_small_trace(tmp_path, 120), "philly")
    cluster = load_cluster_spec(spec)
    seen = []
    one = compare_policies(trace, cluster, ["fifo", "slurm", "kant"], workers=1)
    two = compare_policies(trace, cluster, ["fifo", "slurm", "kant"], workers=2,
                           progress=lambda *a: seen.append(a))
    assert list(two.runs) == ["fifo", "slurm", "kant"]
    for name in one.runs:
        pd.testing.assert_frame_equal(one.runs[name].result.records,
                                      two.runs[name].result.records)
        a = pd.Series({k: v for k, v in one.runs[name].headline.items() if k != "sim_seconds"})
        b = pd.Series({k: v for k, v in two.runs[name].headline.items() if k != "sim_seconds"})
        pd.testing.assert_series_equal(a, b)  # NaN (no inference jobs) equals NaN here
    # progress came back from the worker processes, ending at 120 of 120 for each policy
    assert {(p, d, t) for p, d, t in seen if d == t} == {(p, 120, 120)
                                                         for p in ("fifo", "slurm", "kant")}


def test_table_and_html(tmp_path):
    spec = tmp_path / "c.yaml"
    spec.write_text(CLUSTER)
    out = tmp_path / "r e p.html"
    res = CliRunner().invoke(cli, ["simulate", "--trace", str(_small_trace(tmp_path, 60)),
                                   "--cluster", str(spec), "--policies", "fifo",
                                   "--html", str(out)])
    assert res.exit_code == 0, res.output
    assert "classes: training 60" in res.output
    head = res.output.splitlines()
    row = next(line for line in head if line.startswith("fifo "))
    assert "60" in row
    page = out.read_text()
    assert page.count("data:image/png;base64,") == 6
    assert "http://" not in page and "https://" not in page  # opens with no network


def test_bad_cluster_spec_is_a_one_line_error(tmp_path):
    spec = tmp_path / "c.yaml"
    spec.write_text(CLUSTER.replace("leaf_size: 2", "leaf_size: 2\n    colour: red"))
    res = CliRunner().invoke(cli, ["simulate", "--cluster", str(spec)])
    assert res.exit_code == 1
    assert "unknown key 'colour'" in res.output


def test_unknown_policy(tmp_path):
    res = CliRunner().invoke(cli, ["simulate", "--trace", str(_small_trace(tmp_path, 5)),
                                   "--policies", "fifo,nope"])
    assert res.exit_code == 1 and "unknown policy 'nope'" in res.output


def test_slurm_conf_as_cluster(tmp_path):
    d = tmp_path / "etc"
    d.mkdir()
    (d / "slurm.conf").write_text("NodeName=gn[01-04] CPUs=8 Gres=gpu:v100:8\n"
                                  "PartitionName=gpu Nodes=gn[01-04] Default=YES\n")
    (d / "topology.conf").write_text("SwitchName=l1 Nodes=gn[01-02]\n"
                                     "SwitchName=l2 Nodes=gn[03-04]\n"
                                     "SwitchName=sp Switches=l[1-2]\n")
    res = CliRunner().invoke(cli, ["simulate", "--trace", str(_small_trace(tmp_path, 40)),
                                   "--slurm-conf", str(d / "slurm.conf"), "--policies", "fifo",
                                   "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["cluster"] == {"name": "slurm.conf", "gpus": 32, "nodes": 4}
    assert doc["policies"]["fifo"]["jobs"] == 40


FIXTURE_INF = (bundled_trace_path().parent.parent.parent.parent / "tests" / "fixtures"
               / "alibaba-inference" / "dlrm-inference-slice.csv")
MIXED_CONFIG = """inference:
  sla: 120
preemption:
  enabled: true
  slurm: true
  classes: [training]
  checkpoint_interval: 600
"""


def test_mixed_training_and_inference(tmp_path):
    spec = tmp_path / "c.yaml"
    spec.write_text(CLUSTER + "    cpus_per_node: 96\ninference_zone: {pool: gpu, nodes: 2}\n")
    cfg = tmp_path / "k.yaml"
    cfg.write_text(MIXED_CONFIG)
    out = tmp_path / "mixed.html"
    args = ["simulate", "--trace", str(_small_trace(tmp_path, 100)), "--inference-trace",
            str(FIXTURE_INF), "--inference-share", "0.5", "--cluster", str(spec), "--config",
            str(cfg), "--policies", "slurm,kant"]
    res = CliRunner().invoke(cli, args + ["--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    n_inf = doc["job_classes"]["inference"]
    assert doc["job_classes"]["training"] == 100 and n_inf > 0
    assert any(n.startswith("inference: ") and "apps in the window" in n for n in doc["notes"])
    for obj in doc["policies"].values():
        assert obj["jobs"] == 100 + n_inf
        assert 0 <= obj["inference_sla_attainment"] <= 1
        assert obj["preemptions"] >= 0 and obj["preempted_gpu_hours"] >= 0
    res = CliRunner().invoke(cli, args + ["--html", str(out)])
    assert res.exit_code == 0, res.output
    assert "inference SLA (first start) and preemption of training:" in res.output
    assert "GFR inside / outside the inference zone" in res.output
    page = out.read_text()
    assert page.count("data:image/png;base64,") == 7
    assert "Inference wait CDF against the SLA" in page


def test_inference_without_zone_or_preemption_is_noted(tmp_path):
    # The defaults must not be a trap (issue 15): a mixed workload run with kant's default
    # config says what the config lacks; the README's mixed config has both.
    spec = tmp_path / "c.yaml"
    spec.write_text(CLUSTER)
    mixed = ["--trace", str(_small_trace(tmp_path)), "--cluster", str(spec),
             "--inference-trace", str(bundled_trace_path().parent
                                      / "alibaba-dlrm-inference-2025.csv.gz"),
             "--inference-offset", "1728000", "--inference-share", "0.5",
             "--policies", "kant", "--json"]
    doc = json.loads(CliRunner().invoke(cli, ["simulate", *mixed]).stdout)
    assert doc["job_classes"]["inference"] > 0
    advice = [n for n in doc["notes"] if "inference jobs but" in n]
    assert len(advice) == 2
    config = Path(__file__).parents[2] / "benchmarks" / "mixed-kant.yaml"
    doc = json.loads(CliRunner().invoke(
        cli, ["simulate", *mixed, "--config", str(config)]).stdout)
    assert [n for n in doc["notes"] if "inference jobs but" in n] == \
        [n for n in advice if "no inference zone" in n]  # preemption on, still no zone


def test_slurm_release_reaches_the_model_of_slurm_and_kant_steered(tmp_path, monkeypatch):
    from kant_slurm.engine.policies.slurm import SlurmPolicy

    seen = set()
    selector = SlurmPolicy.selector

    def spy(self, job, ctx):
        seen.add(self.release)
        return selector(self, job, ctx)

    monkeypatch.setattr(SlurmPolicy, "selector", spy)
    spec = tmp_path / "c.yaml"
    spec.write_text(CLUSTER)
    args = ["simulate", "--trace", str(_small_trace(tmp_path, 40)), "--cluster", str(spec),
            "--workers", "1"]
    for policies in ("slurm", "kant-steered"):
        seen.clear()
        res = CliRunner().invoke(cli, args + ["--policies", policies, "--slurm-release", "26.05",
                                              "--json"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.output)["slurm_release"] == "26.05"
        assert seen == {"26.05"}, policies
    seen.clear()
    res = CliRunner().invoke(cli, args + ["--policies", "slurm"])
    assert res.exit_code == 0 and seen == {"22.05"}
    assert "model Slurm" not in res.output  # the default release is not announced
    res = CliRunner().invoke(cli, args + ["--policies", "slurm", "--slurm-release", "25.05"])
    assert res.exit_code == 2 and "25.05" in res.output
