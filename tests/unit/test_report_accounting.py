"""The accounting report: hand-computed figures, JSON keys, CSV tables, self-contained HTML, CLI."""

from __future__ import annotations

import base64
import json
import math
import re

import numpy as np
import pytest
from click.testing import CliRunner

from kant_slurm.cli import cli
from kant_slurm.jsonready import json_ready as _clean
from kant_slurm.formats.records import make_records
from kant_slurm.model import Inventory, Partition, Topology
from kant_slurm.report.accounting import (REPORT_KEYS, build_report, format_report,
                                          report_tables, stranded_gpu_seconds)
from kant_slurm.report.accounting_html import render_html
from kant_slurm.formats.sacct import SACCT_FIELDS

NAN = math.nan


def _inventory() -> Inventory:
    names = ["n1", "n2"]
    return Inventory.build(names, [8, 8], partitions=[Partition("gpu", tuple(names), True)],
                           topology=Topology.from_links({"leaf1": names}))


def _records():
    """A (u1): n1 2 GPUs 0-50; B (u2): n1 2 GPUs 0-100; C (u2): n2 8 GPUs from 60, waited 50 s;
    D (u1): 4 GPUs, submitted at 20, never starts. Window 0-100."""
    return make_records(
        job_id=["A", "B", "C", "D"], user=["u1", "u2", "u2", "u1"], account=["a1"] * 4,
        job_class=["batch", "batch", "training", "training"],
        submit_time=[0, 0, 10, 20], start_time=[0, 0, 60, NAN], end_time=[50, 100, NAN, NAN],
        gpus=[2, 2, 8, 4], nodes=[("n1",), ("n1",), ("n2",), ()],
        node_gpus=[(2,), (2,), (8,), ()], time_limit=[100, 400, 1000, 1000],
        state=["COMPLETED", "COMPLETED", "RUNNING", "PENDING"], duration=[50, 100, NAN, NAN],
    )


@pytest.fixture(scope="module")
def report():
    return build_report(_records(), _inventory(), (0.0, 100.0))


def test_headline_figures_by_hand(report):
    assert report["jobs"] == 4
    # 2x50 + 2x100 + 8x40 GPU-seconds
    assert report["gpu_hours_allocated"] == pytest.approx(620 / 3600)
    assert report["gar_mean"] == pytest.approx(620 / 1600)
    assert report["gfr_mean"] == pytest.approx(0.5)  # n1 partly used all the time, n2 never
    # stranded / free: 4/12 for 50 s, 6/14 for 10 s, 6/6 for 40 s
    assert report["stranded_gpu_share"] == pytest.approx((50 / 3 + 10 * 6 / 14 + 40) / 100)
    assert report["gpu_hours_stranded"] == pytest.approx(500 / 3600)
    assert report["gpu_hours_waiting"] == pytest.approx((8 * 50 + 4 * 80) / 3600)
    assert report["wait_p50_s"] == 0 and report["not_started"] == 1


def test_json_keys(report):
    for key in REPORT_KEYS:
        assert key in report
    json.dumps(_clean(report))  # serialisable once NaN is cleaned
    assert {r["job_class"] for r in report["by_class"]} == {"batch", "training"}
    assert {r["size_bucket"] for r in report["by_size"]} == {"2-8"}


def test_stranded_attribution_by_hand():
    """n1 0-50: A and B hold 2 each, 4 stranded -> 100 GPU-s each; 50-100: B alone, 6 stranded."""
    got = stranded_gpu_seconds(_records(), _inventory(), (0.0, 100.0))
    assert got.tolist() == pytest.approx([100.0, 400.0, 0.0, 0.0])


def test_stranded_attribution_sums_to_the_stranded_integral():
    rng = np.random.default_rng(3)
    n = 200
    inv = Inventory.build([f"n{i}" for i in range(6)], [8] * 6)
    start = rng.uniform(0, 900, n)
    end = start + rng.uniform(1, 300, n)
    nodes, node_gpus = [], []
    alloc = np.zeros((6, 2000))
    keep_start, keep_end, gpus = [], [], []
    for s, e in zip(start, end, strict=True):  # only jobs that fit (so no node is over-allocated)
        i, g = int(rng.integers(6)), int(rng.integers(1, 4))
        a, b = int(s), int(e)
        if (alloc[i, a:b] + g <= 8).all():
            alloc[i, a:b] += g
            nodes.append((f"n{i}",))
            node_gpus.append((g,))
            gpus.append(g)
            keep_start.append(float(a))
            keep_end.append(float(b))
    rec = make_records(job_id=[str(k) for k in range(len(gpus))], submit_time=keep_start,
                       start_time=keep_start, end_time=keep_end, gpus=gpus, nodes=nodes,
                       node_gpus=node_gpus)
    got = stranded_gpu_seconds(rec, inv, (0.0, 2000.0)).sum()
    partly = (alloc > 0) & (alloc < 8)
    assert got == pytest.approx(float(((8 - alloc) * partly).sum()))


def test_time_limit_accuracy_and_top_users(report):
    by_user = {r["user"]: r for r in report["time_limit_accuracy"]["by_user"]}
    assert by_user["u1"]["elapsed_over_limit_p50"] == pytest.approx(0.5)
    assert by_user["u2"]["elapsed_over_limit_p50"] == pytest.approx(0.25)
    assert by_user["u2"]["jobs"] == 1  # C has not ended
    acc = report["time_limit_accuracy"]["by_account"][0]
    assert acc["account"] == "a1" and acc["elapsed_over_limit_mean"] == pytest.approx(0.375)
    waiting = report["top_users"]["waiting_gpus"]
    assert [r["user"] for r in waiting] == ["u2", "u1"]
    assert waiting[0]["share"] == pytest.approx(400 / 720)
    stranded = report["top_users"]["stranded_gpus"]
    assert [(r["user"], round(r["gpu_hours"] * 3600)) for r in stranded] == [("u2", 400),
                                                                             ("u1", 100)]


def test_tables_and_text(report):
    tables = report_tables(report)
    assert set(tables) >= {"summary", "by_class", "by_size", "timeline", "time_limit_by_user",
                           "top_waiting_users", "top_stranded_users"}
    summary = dict(zip(tables["summary"]["metric"], tables["summary"]["value"], strict=True))
    assert summary["jobs"] == 4
    text = format_report(report)
    assert "GAR             mean 38.8%" in text
    assert "top users of stranded GPUs" in text


def test_text_tables_put_numbers_under_their_headings(report):
    """Each table of the text report: the count column ends where its heading ends, and the
    columns after it start where their headings start (user and account rows alike)."""
    blocks = format_report(report).split("\n\n")[1:]
    assert len(blocks) == 4
    for block in blocks:
        header, *rows = block.splitlines()
        assert rows
        first = "jobs" if "jobs" in header else "GPU-h"
        end = header.index(first) + len(first)
        starts = [m.start() for m in re.finditer(r"\S+", header[end:])]
        for row in rows:
            assert row[end - 1].isdigit() and row[end:end + 1] in ("", " "), (header, row)
            cells = [m.start() for m in re.finditer(r"\S+", row[end:])]
            assert cells == starts, (header, row)


def test_html_is_self_contained(report):
    html = render_html(_clean(report))
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<script" not in html
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 3
    for b64 in images:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "u2" in html and "Time-limit accuracy" in html


def test_html_with_no_jobs():
    rec = make_records(job_id=[], submit_time=[], gpus=[], nodes=[], node_gpus=[])
    html = render_html(_clean(build_report(rec, _inventory(), (0.0, 100.0))))
    assert "none" in html


# --------------------------------------------------------------------------------------------
# CLI on a dump + slurm.conf (offline)
# --------------------------------------------------------------------------------------------

SLURM_CONF = """\
ClusterName=t
NodeName=n[1-2] CPUs=16 RealMemory=1000 Gres=gpu:8
PartitionName=gpu Nodes=n[1-2] Default=YES
"""


@pytest.fixture()
def offline(tmp_path):
    (tmp_path / "slurm.conf").write_text(SLURM_CONF)
    rows = ["|".join(SACCT_FIELDS)]

    def add(jid, user, submit, start, end, nodelist, g, limit_min, state="COMPLETED", admin=""):
        el = str(end - start) if start is not None else "0"
        rows.append("|".join([
            jid, jid, "j", user, "a1", "gpu", "normal", state, str(submit),
            "None" if start is None else str(start), "Unknown" if end is None else str(end),
            el, str(limit_min), "1", nodelist or "None assigned",
            f"gres/gpu={g}" if start is not None else "", f"gres/gpu={g}", admin]))

    t = 1_700_000_000
    add("1", "u1", t, t, t + 50, "n1", 2, 2)
    add("2", "u2", t, t, t + 100, "n1", 2, 4, admin="kant:workload=inference")
    add("3", "u2", t + 10, t + 60, t + 100, "n2", 8, 10, admin="kant:workload=training")
    (tmp_path / "dump.txt").write_text("\n".join(rows) + "\n")
    return tmp_path, t


def test_cli_json_from_dump(offline):
    d, t = offline
    res = CliRunner().invoke(cli, ["report", "--input", str(d / "dump.txt"), "--slurm-conf",
                                   str(d / "slurm.conf"), "--since", str(t),
                                   "--until", str(t + 100), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["jobs"] == 3
    assert data["gpu_hours_allocated"] == pytest.approx((100 + 200 + 320) / 3600)
    for key in REPORT_KEYS:
        assert key in data
    assert {r["job_class"] for r in data["by_class"]} == {"batch", "inference", "training"}


def test_cli_class_filter_csv_and_html(offline):
    d, t = offline
    base = ["report", "--input", str(d / "dump.txt"), "--slurm-conf", str(d / "slurm.conf"),
            "--since", str(t), "--until", str(t + 100)]
    res = CliRunner().invoke(cli, base + ["--class", "training", "--csv", str(d / "out")])
    assert res.exit_code == 0, res.output
    jobs = (d / "out" / "jobs.csv").read_text().splitlines()
    assert len(jobs) == 2 and jobs[1].startswith("3,training")
    res = CliRunner().invoke(cli, base + ["--html", str(d / "r.html")])
    assert res.exit_code == 0, res.output
    assert "data:image/png;base64," in (d / "r.html").read_text()


def test_cli_errors_are_one_line(offline):
    d, t = offline
    res = CliRunner().invoke(cli, ["report", "--input", str(d / "dump.txt"), "--slurm-conf",
                                   str(d / "slurm.conf"), "--since", "soon"])
    # A bad time is a usage error (exit 2), named with the option as click names it.
    assert res.exit_code == 2
    assert "'soon': expected now, now-7days" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["report", "--input", str(d / "dump.txt"), "--slurm-conf",
                                   str(d / "slurm.conf"), "--partition", "nope",
                                   "--since", str(t), "--until", str(t + 100)])
    assert res.exit_code == 1 and "no such partition" in res.output
    res = CliRunner().invoke(cli, ["report", "--json", "--html", "x.html", "--input",
                                   str(d / "dump.txt"), "--slurm-conf", str(d / "slurm.conf")])
    assert res.exit_code == 2 and "choose one" in res.output
