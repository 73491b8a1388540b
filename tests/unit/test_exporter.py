"""The Prometheus exporter: figures of a hand-built snapshot, the state file, textfile, HTTP,
promtool's verdict on the output and on the alert rules, one-line CLI errors, and the Grafana
dashboard's metric names."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from prometheus_client import generate_latest

from kant_slurm import __version__
from kant_slurm.errors import InputError, SlurmUnreachable
from kant_slurm.exporter import (DEFAULT_ADDRESS, DEFAULT_PORT, METRIC_NAMES, METRICS,
                                 cycle_metrics, make_registry, serve, snapshot_metrics,
                                 write_textfile)
from kant_slurm.model import ClusterSnapshot, Inventory, Job, Partition, Topology

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "site-config" / "grafana" / "kant-slurm-dashboard.json"
RULES = ROOT / "site-config" / "prometheus" / "kant-slurm-rules.yml"
README = ROOT / "README.md"


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
    # A fresh install has no state file yet: nothing is wrong.
    (None, {"state_file_ok": 1}),
    ("{not json", {"state_file_ok": 0}),
    ("[1, 2]", {"state_file_ok": 0}),
    (json.dumps({"version": 1, "cycle": 4, "updated_at": 1700000000.5,
                 "marks": {"weight": {"n1": {}}, "site_factor": {}, "pin": {}}}),
     {"state_file_ok": 1, "steer_cycles": 4, "state_updated_timestamp_seconds": 1700000000.5,
      "marks": {"weight": 1, "site_factor": 0, "pin": 0}}),
    (json.dumps({"version": 1, "cycle": 2, "marks": {},
                 "last_cycle": {"duration_s": 0.25, "applied": [{}, {}, {}], "at": 1700000001}}),
     {"state_file_ok": 1, "steer_cycles": 2, "marks": {}, "last_cycle_duration_seconds": 0.25,
      "last_cycle_applied_changes": 3.0, "last_cycle_timestamp_seconds": 1700000001.0}),
    # What steer.run_cycle writes (numbers as floats, failed beside applied).
    (json.dumps({"version": 1, "cycle": 9, "marks": {},
                 "last_cycle": {"duration_s": 0.5, "applied": 3.0, "failed": 2.0, "at": 5.0}}),
     {"state_file_ok": 1, "steer_cycles": 9, "marks": {}, "last_cycle_duration_seconds": 0.5,
      "last_cycle_applied_changes": 3.0, "last_cycle_failed_changes": 2.0,
      "last_cycle_timestamp_seconds": 5.0}),
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
    assert fam["kant_slurm_gpu_allocation_ratio"][()] == pytest.approx(11 / 24)
    assert fam["kant_slurm_gpu_fragmentation_ratio"][()] == pytest.approx(1 / 3)
    assert fam["kant_slurm_gpus"][()] == 24
    assert fam["kant_slurm_leaf_gpus"][(("leaf_group", "leaf1"),)] == 16
    assert fam["kant_slurm_stranded_gpus"][()] == 5
    assert fam["kant_slurm_leaf_free_whole_nodes"][(("leaf_group", "leaf2"),)] == 1
    assert fam["kant_slurm_pending_gpus"][(("job_class", "training"),)] == 16
    assert fam["kant_slurm_pending_jobs"][(("job_class", "inference"),)] == 2
    assert fam["kant_slurm_last_cycle_duration_seconds"][()] == 1.5
    assert fam["kant_slurm_last_cycle_applied_changes"][()] == 4
    assert fam["kant_slurm_marks"][(("kind", "pin"),)] == 1
    # The client parser names a counter's family without _total; its sample keeps it.
    assert fam["kant_slurm_steer_cycles"][()] == 7
    assert "kant_slurm_steer_cycles_total 7.0" in out.read_text()
    build = fam["kant_slurm_build_info"]
    assert build == {(("python_version", platform.python_version()),
                      ("version", __version__)): 1.0}
    samples = {line.split("{")[0].split(" ")[0] for line in out.read_text().splitlines()
               if line and not line.startswith("#")}
    assert samples <= set(METRIC_NAMES), sorted(samples - set(METRIC_NAMES))


def test_slurm_down_exports_up_zero(tmp_path):
    def read():
        raise SlurmUnreachable("slurmctld does not answer")

    out = tmp_path / "kant.prom"
    write_textfile(out, make_registry(read, tmp_path / "missing.json"))
    fam = _families(out.read_text())
    assert fam["kant_slurm_up"][()] == 0
    assert "kant_slurm_gpu_allocation_ratio" not in fam
    assert "kant_slurm_build_info" in fam
    # No state file yet (a fresh install) is not an error.
    assert fam["kant_slurm_state_file_ok"][()] == 1
    assert "kant_slurm_last_cycle_timestamp_seconds" not in fam


def test_metric_names_follow_prometheus_conventions():
    for name, spec in METRICS.items():
        assert spec.kind in ("gauge", "counter"), name
        # _total belongs to counters only; a counter's family name leaves it to the client.
        assert not name.endswith("_total"), name
        assert spec.help, name
    assert [n for n in METRIC_NAMES if n.endswith("_total")] == ["kant_slurm_steer_cycles_total"]
    for fraction in ("gpu_allocation_ratio", "gpu_fragmentation_ratio", "stranded_gpu_ratio",
                     "stranded_gpu_leaf_ratio"):
        assert fraction in METRICS


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
        assert _families(body)["kant_slurm_gpu_fragmentation_ratio"][()] == \
            pytest.approx(1 / 3)
        assert len(reads) == 2  # every scrape reads Slurm afresh
    finally:
        server.shutdown()
        thread.join(timeout=10)


def _dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def test_grafana_dashboard_uses_only_exported_metrics():
    dash = json.loads(DASHBOARD.read_text())
    exprs = _dashboard_exprs()
    assert len(exprs) >= 10
    used = {name for e in exprs for name in re.findall(r"\bkant_slurm_[a-z_]+\b", e)}
    assert used, "the dashboard queries no kant_slurm_ metric"
    assert used <= set(METRIC_NAMES), sorted(used - set(METRIC_NAMES))
    # Every query names one of our metrics (no stray metric from another exporter) and follows
    # the instance variable.
    for e in exprs:
        assert re.search(r"\bkant_slurm_", e), e
        for name in re.findall(r"\bkant_slurm_[a-z_]+\b(.?)", e):
            assert name == "{", f"{e}: every metric needs the instance selector"
        assert e.count('instance=~"$instance"') == len(re.findall(r"\bkant_slurm_", e)), e
    for key in ("kant_slurm_gpu_allocation_ratio", "kant_slurm_gpu_fragmentation_ratio",
                "kant_slurm_stranded_gpus", "kant_slurm_leaf_free_whole_nodes",
                "kant_slurm_pending_jobs", "kant_slurm_pending_gpus",
                "kant_slurm_last_cycle_duration_seconds", "kant_slurm_last_cycle_applied_changes",
                "kant_slurm_last_cycle_failed_changes", "kant_slurm_steer_cycles_total"):
        assert key in used, key
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    since = [p for p in dash["panels"] if p["title"] == "Time since last cycle"]
    assert [t["expr"] for t in since[0]["targets"]] == [
        'time() - kant_slurm_last_cycle_timestamp_seconds{instance=~"$instance"}']
    assert since[0]["fieldConfig"]["defaults"]["unit"] == "s"
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["instance"]["query"]["query"] == \
        "label_values(kant_slurm_build_info, instance)"
    assert variables["instance"]["includeAll"] and variables["instance"]["multi"]


# --- promtool (Debian package prometheus; .ci/test.sh installs it) ----------------------------

def _promtool() -> str:
    path = shutil.which("promtool")
    # Required, not skipped: a skipped lint would let a bad name through CI unnoticed.
    assert path, "promtool is required (Debian package prometheus: apt-get install prometheus)"
    return path


def _full_exposition(tmp_path) -> str:
    """Every metric family the exporter can emit, from a snapshot and a full state file."""
    state = tmp_path / "state.json"
    state.write_text(json.dumps({
        "version": 1, "cycle": 7, "updated_at": 1700000000.0,
        "marks": {"weight": {"n1": {}}, "site_factor": {}, "pin": {"12": {}}},
        "last_cycle": {"duration_s": 1.5, "applied": 4.0, "failed": 1.0, "at": 1700000000.0}}))
    return generate_latest(make_registry(_snapshot, state)).decode()


def test_promtool_check_metrics_passes_on_the_output(tmp_path):
    text = _full_exposition(tmp_path)
    families = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    assert len(families) == len(METRICS)  # every family is linted
    proc = subprocess.run([_promtool(), "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "" and proc.stderr.strip() == ""


def test_promtool_check_metrics_would_catch_a_bad_name():
    # The lint is real: the old name (a gauge with a counter's suffix) fails it.
    bad = "# HELP kant_slurm_gpus_total GPUs\n# TYPE kant_slurm_gpus_total gauge\n" \
          "kant_slurm_gpus_total 24.0\n"
    proc = subprocess.run([_promtool(), "check", "metrics"], input=bad, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0
    assert 'non-counter metrics should not have "_total" suffix' in proc.stdout + proc.stderr


def test_promtool_check_rules_passes_on_the_alert_rules():
    proc = subprocess.run([_promtool(), "check", "rules", str(RULES)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 5 rules found" in proc.stdout


def test_alert_rules_use_only_exported_metrics():
    import yaml

    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} == {
        "KantSlurmDaemonSilent", "KantSlurmSlurmDown", "KantSlurmFragmentationHigh",
        "KantSlurmPartialApply", "KantSlurmStateFileUnreadable"}
    for r in rules:
        names = set(re.findall(r"\bkant_slurm_[a-z_]+\b", r["expr"]))
        assert names and names <= set(METRIC_NAMES), (r["alert"], names)


# promtool's rule unit test: series in, alerts out, on the shipped rules file. Each case: alert,
# the last evaluation at which it must not fire yet, the first at which it fires, and its summary
# as rendered there (which also checks the templates).
ALERT_CASES = [
    # Slurm stops answering at 2m; fires once it has been down for 5m.
    ("KantSlurmSlurmDown", "6m", "8m", "critical", "Slurm does not answer kant-slurm on h:9810"),
    # The last cycle ended at time 0: late after 600 s, firing 5 minutes later.
    ("KantSlurmDaemonSilent", "14m", "16m", "warning",
     "kant-slurm has not finished a scheduling cycle for 16m 0s on h:9810"),
    ("KantSlurmFragmentationHigh", "29m", "31m", "warning",
     "GPU fragmentation (GFR) is 60% on h:9810"),
    ("KantSlurmPartialApply", "10m", "12m", "warning",
     "kant-slurm cycles apply only part of their changes on h:9810 (3 failed in the last one)"),
    ("KantSlurmStateFileUnreadable", "9m", "11m", "warning",
     "kant-slurm's state file cannot be read on h:9810"),
]
ALERT_SERIES = {
    "kant_slurm_up": "1 1 0x20",
    "kant_slurm_last_cycle_timestamp_seconds": "0x30",
    "kant_slurm_gpu_fragmentation_ratio": "0.6x40",
    "kant_slurm_last_cycle_failed_changes": "0 3x20",
    "kant_slurm_state_file_ok": "1x5 0x10",
}


def test_promtool_test_rules_fires_each_alert_when_it_should(tmp_path):
    import yaml

    descriptions = {r["alert"]: r["annotations"]["description"]
                    for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    checks = []
    for alert, quiet, firing, severity, summary in ALERT_CASES:
        checks.append({"eval_time": quiet, "alertname": alert, "exp_alerts": []})
        checks.append({"eval_time": firing, "alertname": alert, "exp_alerts": [{
            "exp_labels": {"severity": severity, "instance": "h:9810"},
            "exp_annotations": {"summary": summary, "description": descriptions[alert]}}]})
    test = {"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [{"series": f'{name}{{instance="h:9810"}}', "values": values}
                         for name, values in ALERT_SERIES.items()],
        "alert_rule_test": checks}]}
    test_file = tmp_path / "rules_test.yml"
    test_file.write_text(json.dumps(test))  # JSON is YAML
    proc = subprocess.run([_promtool(), "test", "rules", str(test_file)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_dashboard_queries_are_valid_promql(tmp_path):
    # promtool has no query checker; recording rules go through the same PromQL parser.
    exprs = [e.replace("$instance", ".*") for e in _dashboard_exprs()]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    proc = subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in proc.stdout


# --- the CLI's errors: one line naming the thing, exit 1, no traceback -------------------------

def _exporter_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("KANT_CONFIG", None)
    return subprocess.run([sys.executable, "-c", "from kant_slurm.cli import main; main()",
                           "exporter", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_cli_port_in_use_is_one_line():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = _one_line_error(_exporter_cli("--port", str(port), "--max-seconds", "0"))
    assert f"cannot listen on 127.0.0.1:{port}: port {port} is already in use" in line
    assert "choose another --port" in line


@pytest.mark.parametrize("address, fragment", [
    ("not an address!", "not an IP address or a host name that resolves; expected e.g. "
                        "127.0.0.1"),
    # TEST-NET-2 (RFC 5737): well-formed, never this machine's.
    ("198.51.100.7", "not an address of this machine"),
])
def test_cli_bad_address_is_one_line(address, fragment):
    # An unprivileged port: the address must be the only thing wrong.
    line = _one_line_error(_exporter_cli("--address", address, "--port", str(_free_port()),
                                         "--max-seconds", "0"))
    assert f"--address {address!r}: {fragment}" in line


def test_cli_textfile_into_a_missing_directory_is_one_line(tmp_path):
    target = tmp_path / "no such dir" / "kant.prom"
    line = _one_line_error(_exporter_cli("--textfile", str(target)))
    assert line == (f"error: --textfile {target}: directory {target.parent} does not exist; "
                    "expected an existing directory (node_exporter's "
                    "--collector.textfile.directory)")
    assert not target.parent.exists()


def test_library_errors_are_input_errors(tmp_path):
    registry = make_registry(_snapshot, None)
    with pytest.raises(InputError, match="is a directory"):
        write_textfile(tmp_path, registry)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(InputError, match="already in use"):
            serve(busy.getsockname()[1], registry, "127.0.0.1")


def test_cli_serves_on_loopback_by_default_and_help_and_readme_agree():
    assert (DEFAULT_ADDRESS, DEFAULT_PORT) == ("127.0.0.1", 9810)
    proc = _exporter_cli("--help")
    assert proc.returncode == 0
    assert "[default: 127.0.0.1]" in proc.stdout
    assert f"default: {DEFAULT_PORT}" in proc.stdout
    # Every port the help and the README's exporter lines name is the default.
    readme_ports = set(re.findall(r"exporter[^\n]*--port (\d+)", README.read_text()))
    help_ports = set(re.findall(r"--port (\d+)", proc.stdout))
    assert readme_ports | help_ports == {str(DEFAULT_PORT)}


def test_cli_http_endpoint_answers_then_stops():
    # The real command (no Slurm here: kant_slurm_up is 0) on a free loopback port.
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("KANT_CONFIG", None)
    proc = subprocess.Popen([sys.executable, "-c", "from kant_slurm.cli import main; main()",
                             "exporter", "--port", str(port), "--max-seconds", "30"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stderr.readline()
        assert first.strip() == f"serving metrics on http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:
            body = resp.read().decode()
        assert "kant_slurm_build_info{" in body and "kant_slurm_up " in body
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0
