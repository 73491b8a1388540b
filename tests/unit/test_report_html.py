"""The HTML pages: no absolute path of this machine, waits on human-unit axes, small samples
marked."""

import matplotlib

matplotlib.use("Agg")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

import kant_slurm  # noqa: E402
from kant_slurm.cli import cli  # noqa: E402
from kant_slurm.report import html as html_mod  # noqa: E402
from kant_slurm.formats.traces import bundled_trace_path  # noqa: E402

# 4 x 8 GPUs, leaves of 2 (shared by the simulator CLI tests).
CLUSTER = (Path(__file__).parents[1] / "fixtures" / "clusters" / "tiny.yaml").read_text()


class _Axis:
    """Records what human_log_axis sets (no rendering needed to test the ticks)."""

    def __init__(self, lo, hi):
        self.lim, self.ticks, self.label = (lo, hi), None, None

    def set_xscale(self, scale):
        assert scale == "log"

    def get_xlim(self):
        return self.lim

    def set_xticks(self, values, labels):
        self.ticks = list(zip(values, labels, strict=True))

    def minorticks_off(self):
        pass

    def set_xlabel(self, label):
        self.label = label


@pytest.mark.parametrize("lo, hi, labels", [
    (1, 100_000, ["1s", "10s", "1m", "10m", "1h", "6h", "1d"]),
    (30, 4000, ["1m", "10m", "1h"]),
    (3600, 40 * 86400, ["1h", "6h", "1d", "7d", "30d"]),
    (0.5, 5, ["1s"]),
])
def test_human_log_axis_ticks(lo, hi, labels):
    ax = _Axis(lo, hi)
    html_mod.human_log_axis(ax, "wait")
    assert [t for _, t in ax.ticks] == labels


@pytest.mark.parametrize("n, marked", [(0, True), (2, True), (19, True), (20, False), (500, False)])
def test_small_sample_note(n, marked):
    assert ("small sample" in html_mod.small_sample_note(n)) is marked


def test_simulate_html_has_no_install_path(tmp_path, monkeypatch):
    spec = tmp_path / "c.yaml"
    spec.write_text(CLUSTER)
    trace = tmp_path / "t.csv"
    trace.write_text("\n".join(bundled_trace_path().read_text().splitlines()[:31]) + "\n")
    seen = []
    real = html_mod.small_sample_note
    monkeypatch.setattr(html_mod, "small_sample_note", lambda n: seen.append(n) or real(n))
    out = tmp_path / "sim.html"
    res = CliRunner().invoke(cli, ["simulate", "--trace", str(trace), "--cluster", str(spec),
                                   "--policies", "fifo,kant", "--workers", "1", "--html",
                                   str(out)])
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert "trace t.csv (philly" in page
    assert str(tmp_path) not in page
    install = str(kant_slurm.__file__).rsplit("/kant_slurm/", 1)[0]
    assert install not in page
    # 30 jobs: the size buckets hold fewer than 20 each, and the panels were told so.
    assert any(n < html_mod.SMALL_SAMPLE for n in seen)


def test_accounting_html_names_the_dump_by_file_name(tmp_path):
    from pathlib import Path

    fixtures = Path(__file__).resolve().parent.parent / "fixtures" / "slurm-22.05"
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=t\nNodeName=gn[01-04] CPUs=16 RealMemory=1000 Gres=gpu:8\n"
                    "PartitionName=gpu Nodes=gn[01-04] Default=YES\n")
    out = tmp_path / "r.html"
    res = CliRunner().invoke(cli, ["report", "--input", str(fixtures / "sacct.json"),
                                   "--slurm-conf", str(conf), "--html", str(out)])
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert "input=sacct.json" in page and str(fixtures) not in page


def test_report_html_into_a_missing_directory_fails_first(tmp_path):
    res = CliRunner().invoke(cli, ["report", "--html", str(tmp_path / "no" / "r.html"),
                                   "--input", "/dev/null"])
    assert res.exit_code == 1
    assert res.output == f"error: --html {tmp_path}/no/r.html: directory {tmp_path}/no does " \
                         "not exist\n"
