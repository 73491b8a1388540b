"""What-if pieces: the SchedulerParameters the slurm model reads, the 95% interval, the
recommendation, and `kant-slurm whatif` on a saved dump."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kant_slurm.cli import cli
from kant_slurm.engine.registry import get_policy
from kant_slurm.whatif import recommend, schedparams, stats
from kant_slurm.whatif.history import scheduler_parameters_of_conf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep_helpers import TINY_CLUSTER  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.mark.parametrize("text,values,ignored", [
    ("", {}, ()),
    ("(null)", {}, ()),
    ("bf_window=2880,bf_continue,bf_interval=5", {"bf_window": 2880, "bf_interval": 5},
     ("bf_continue",)),
    ("BF_MAX_JOB_TEST=1000 , default_queue_depth=200", {"bf_max_job_test": 1000},
     ("default_queue_depth",)),
])
def test_scheduler_parameters_parse(text, values, ignored):
    got = schedparams.parse_scheduler_parameters(text)
    assert dict(got.values) == values and got.ignored == ignored


@pytest.mark.parametrize("text", ["bf_window=0", "bf_window=two", "bf_max_job_test=-3"])
def test_scheduler_parameters_bad_value_names_it(text):
    with pytest.raises(ValueError, match=text.split("=")[0] + ".*expected a whole number"):
        schedparams.parse_scheduler_parameters(text, "slurm.conf:7")


def test_scheduler_parameters_reach_the_slurm_model_inside_kant_steered():
    values = {"bf_max_job_test": 42, "bf_window": 60}
    slurm, steered, kant = (get_policy(n) for n in ("slurm", "kant-steered", "kant"))
    default_window = slurm.reservation_window()
    for p in (slurm, steered, kant):
        schedparams.apply_to_policy(p, values)
    assert default_window != 3600.0
    assert slurm.max_job_test() == 42 and slurm.reservation_window() == 3600.0
    assert steered.slurm.max_job_test() == 42 and steered.slurm.reservation_window() == 3600.0
    assert get_policy("slurm").max_job_test() != 42  # the class default is untouched
    assert kant.reservation_window() != 3600.0


def test_scheduler_parameters_of_a_slurm_conf(tmp_path):
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=x\nSchedulerParameters=bf_window=60 # old\n"
                    "SchedulerParameters=bf_window=120,bf_yield_interval=1\n")
    got = scheduler_parameters_of_conf(str(conf))
    assert dict(got.values) == {"bf_window": 120} and got.ignored == ("bf_yield_interval",)


@pytest.mark.parametrize("dof,t", [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262),
                                   (30, 2.042)])
def test_t_quantile_matches_the_tables(dof, t):
    assert stats.t_quantile_975(dof) == pytest.approx(t, abs=1e-3)


def test_mean_ci95():
    assert stats.mean_ci95([2.0]) == {"mean": 2.0, "ci95": None, "n": 1}
    got = stats.mean_ci95([1.0, 2.0, 3.0, None, float("nan")])
    assert got["n"] == 3 and got["mean"] == 2.0
    assert got["ci95"] == pytest.approx(4.303 * 1.0 / math.sqrt(3), rel=1e-3)
    assert stats.mean_ci95([5.0, 5.0])["ci95"] == 0.0


def _cell(policy, **means):
    metrics = {k: {"mean": None, "ci95": None, "n": 0} for k in stats.METRIC_KEYS}
    for key, (mean, ci) in means.items():
        metrics[key] = {"mean": mean, "ci95": ci, "n": 3}
    return {"spec": {"policy": policy}, "status": "done", "metrics": metrics}


def test_recommendation_counts_only_differences_beyond_noise_and_material():
    base = _cell("slurm", gfr_mean=(0.24, 0.01), wait_mean_s=(3600, 60), gar_mean=(0.74, 0.0),
                 jct_mean_s=(20000, 0))
    steered = _cell("kant-steered", gfr_mean=(0.20, 0.01), wait_mean_s=(3900, 60),
                    gar_mean=(0.742, 0.0), jct_mean_s=(20100, 0))
    found = recommend.compare(base, steered)
    assert [i["metric"] for i in found["better"]] == ["gfr_mean"]
    assert [i["metric"] for i in found["worse"]] == ["wait_mean_s"]
    # GAR +0.002 is below half a point; JCT +0.5% below 2%: no clear difference.
    assert {i["metric"] for i in found["same"]} == {"gar_mean", "jct_mean_s"}
    advice = recommend.recommend([base, steered])
    assert advice["summary"].startswith("a trade-off: kant-steered improves GFR but worsens "
                                        "wait mean")
    noisy = _cell("kant-steered", gfr_mean=(0.20, 0.05))
    assert recommend.compare(_cell("slurm", gfr_mean=(0.24, 0.05)), noisy)["same"]
    assert recommend.recommend([base, _cell("kant-steered", gfr_mean=(0.20, 0.0))])[
        "summary"].startswith("recommended: kant-steered improves GFR")


def test_whatif_on_a_dump_prints_table_json_and_html(tmp_path):
    dump = FIXTURES / "slurm-22.05" / "sacct.txt"
    html = tmp_path / "w.html"
    r = CliRunner().invoke(cli, ["whatif", "--input", str(dump), "--cluster", str(TINY_CLUSTER),
                                 "--seeds", "0,1", "--workers", "1", "--json", "--html",
                                 str(html)])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["history"]["jobs"] == 5 and doc["seeds"] == [0, 1]
    assert [c["label"] for c in doc["cells"]] == ["slurm", "kant-steered", "kant"]
    assert all(c["metrics"]["gar_mean"]["n"] == 2 for c in doc["cells"])
    assert any("spread over them is 0" in n for n in doc["notes"])
    assert doc["recommendation"]["lines"][0] == doc["recommendation"]["summary"]
    assert "kant-slurm whatif" in html.read_text()
    r = CliRunner().invoke(cli, ["whatif", "--input", str(dump), "--cluster", str(TINY_CLUSTER),
                                 "--seeds", "0,0"])
    assert r.exit_code == 2 and "expected distinct whole numbers" in r.output
