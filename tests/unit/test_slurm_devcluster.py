"""The dev cluster's config rendering and its checks that need no running Slurm."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from kant_slurm import devcluster as dc
from kant_slurm.devcluster import cluster, packages
from kant_slurm.errors import DevClusterError


def render(tmp_path, **spec):
    paths = dc.DevClusterPaths(tmp_path)
    return dc.render_configs(dc.DevClusterSpec(**spec), paths, "pw'1", "host1"), paths


def conf_lines(text):
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_default_shape_16x8_four_leaves(tmp_path):
    files, paths = render(tmp_path)
    slurm = files["slurm.conf"]
    nodes = [line for line in conf_lines(slurm) if line.startswith("NodeName=")]
    assert len(nodes) == 16
    assert nodes[0].startswith("NodeName=gn01 ") and "Port=16810" in nodes[0] \
        and "Gres=gpu:h100:8" in nodes[0]
    assert "Port=16825" in nodes[-1]
    for key in ("SchedulerType=sched/backfill", "SelectType=select/cons_tres",
                "TopologyPlugin=topology/tree", "PriorityType=priority/multifactor",
                "AccountingStorageTRES=gres/gpu", "GresTypes=gpu", "SlurmctldPort=16802",
                "AccountingStoragePort=16801", "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none", f"AuthInfo=socket={paths.munge_socket}",
                f"PlugStackConfig={paths.plugstack_conf}",
                "PartitionName=gpu Nodes=gn[01-16] Default=YES"):
        assert key in slurm, key
    assert "PartitionName=infer" not in slurm and "JobSubmitPlugins" not in slurm
    topo = conf_lines(files["topology.conf"])
    assert topo == ["SwitchName=leaf1 Nodes=gn[01-04]", "SwitchName=leaf2 Nodes=gn[05-08]",
                    "SwitchName=leaf3 Nodes=gn[09-12]", "SwitchName=leaf4 Nodes=gn[13-16]",
                    "SwitchName=spine Switches=leaf1,leaf2,leaf3,leaf4"]
    assert conf_lines(files["gres.conf"]) == [
        "AutoDetect=off", f"NodeName=gn[01-16] Name=gpu Type=h100 File={paths.gpus}/nvidia[0-7]"]
    assert conf_lines(files["plugstack.conf"]) == []  # no plugin built in tmp_path
    dbd = files["slurmdbd.conf"]
    assert "StorageHost=127.0.0.1" in dbd and "StoragePort=16800" in dbd and "DbdPort=16801" in dbd
    assert f"AuthInfo=socket={paths.munge_socket}" in dbd and "StoragePass=pw'1" in dbd


def test_shape_options(tmp_path):
    files, _ = render(tmp_path, nodes=6, gpus_per_node=4, leaf_size=4, gpu_type="a100",
                      inference_nodes=2, port_base=20000)
    slurm = files["slurm.conf"]
    assert "PartitionName=infer Nodes=gn[05-06]" in slurm and "Gres=gpu:a100:4" in slurm
    assert "Port=20015" in slurm and "SlurmctldPort=20002" in slurm
    assert conf_lines(files["topology.conf"])[:2] == ["SwitchName=leaf1 Nodes=gn[01-04]",
                                                       "SwitchName=leaf2 Nodes=gn[05-06]"]
    assert "nvidia[0-3]" in files["gres.conf"]


def test_job_submit_lua_switches_the_plugin_on(tmp_path):
    paths = dc.DevClusterPaths(tmp_path)
    files = dc.render_configs(dc.DevClusterSpec(nodes=2), paths, "pw", "h", job_submit_lua=True)
    assert "JobSubmitPlugins=lua" in files["slurm.conf"]


@pytest.mark.parametrize("field, value, option", [
    ("nodes", 0, "--nodes"), ("nodes", 10_000, "--nodes"), ("gpus_per_node", 0, "--gpus-per-node"),
    ("leaf_size", 0, "--leaf-size"), ("inference_nodes", 17, "--inference-nodes"),
    ("port_base", 80, "--port-base"), ("gpu_type", "h 100", "--gpu-type"),
    ("gpu_type", "a:b", "--gpu-type"),
])
def test_bad_options_name_the_option(field, value, option):
    with pytest.raises(DevClusterError, match=option):
        dc.DevClusterSpec(**{field: value}).validate()


def test_not_root_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(cluster.os, "geteuid", lambda: 1000)
    with pytest.raises(DevClusterError, match="must run as root") as err:
        dc.up(tmp_path / "c", dc.DevClusterSpec(nodes=1, port_base=31000))
    assert "\n" not in str(err.value)


def test_no_apt_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(packages, "missing_packages",
                        lambda packages=packages.DEBIAN_PACKAGES: ["slurmdbd"])
    monkeypatch.setattr(packages.shutil, "which", lambda name: None)
    with pytest.raises(DevClusterError, match="no apt-get") as err:
        packages.ensure_packages()
    assert "slurmdbd" in str(err.value)


def test_defaults_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("KANT_DEVCLUSTER_PORT_BASE", "18100")
    monkeypatch.setenv("KANT_DEVCLUSTER_DIR", str(tmp_path))
    assert dc.default_port_base() == 18100 and dc.default_dir() == tmp_path
    monkeypatch.setenv("KANT_DEVCLUSTER_PORT_BASE", "high")
    with pytest.raises(DevClusterError, match="KANT_DEVCLUSTER_PORT_BASE"):
        dc.default_port_base()
    monkeypatch.delenv("KANT_DEVCLUSTER_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "/c")
    assert dc.default_dir() == Path("/c/kant-slurm/devcluster")


def test_status_of_an_empty_directory(tmp_path):
    st = dc.status(tmp_path)
    assert st.running is False and st.daemons == {}
    assert dc.down(tmp_path) == []


def test_dev_cluster_conf_states_the_preemption_setup(tmp_path):
    """kant preempts (site-config/PREEMPTION.md): Slurm's own preemption off, jobs opt in to
    requeue, the QOS priority counts; the QOS themselves are made by sacctmgr (DEV_QOS)."""
    from kant_slurm import devcluster as dc

    spec = dc.DevClusterSpec(nodes=4)
    text = dc.render_configs(spec, dc.DevClusterPaths(tmp_path), "pw", "host")["slurm.conf"]
    lines = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in text.splitlines()
             if "=" in line and not line.startswith("#") and " " not in line.split("=", 1)[0]}
    assert (lines["PreemptType"], lines["JobRequeue"], lines["PriorityWeightQOS"]) == \
        ("preempt/none", "0", "2000")
    assert list(dc.DEV_QOS) == ["training", "inference"]  # Preempt=training needs it first
    assert "Preempt=training" in dc.DEV_QOS["inference"]


# --- Slurm releases and the cluster's PID namespace -----------------------------------------

from kant_slurm.devcluster import chroot  # noqa: E402


def test_unknown_slurm_version_is_a_one_line_error_naming_the_choices(tmp_path):
    with pytest.raises(DevClusterError) as err:
        dc.up(tmp_path / "c", dc.DevClusterSpec(nodes=1, port_base=31000, slurm_version="23.02"))
    assert str(err.value) == "--slurm-version 23.02: expected one of 22.05, 24.11, 26.05"


def test_cli_unknown_slurm_version_is_one_line(tmp_path):
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-c",
         "import sys; from kant_slurm.cli import main; sys.argv[0] = 'kant-slurm'; main()",
         "devcluster", "up", "--slurm-version", "23.02", "--dir", str(tmp_path / "c")],
        capture_output=True, text=True)
    assert res.returncode != 0 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [
        "error: --slurm-version 23.02: expected one of 22.05, 24.11, 26.05"]


@pytest.mark.parametrize("text, version", [
    ("22.05.8-4+deb12u3", "22.05"), ("24.11.5-4+deb13u1", "24.11"), ("26.05.5-1", "26.05"),
    ("1:11.8.3-1", "11.08"), ("garbage", None),
])
def test_parse_debian_version(text, version):
    assert chroot.parse_debian_version(text) == version


@pytest.mark.parametrize("local, wanted, root", [
    ("22.05", "22.05", False), ("22.05", "24.11", True), ("22.05", "26.05", True),
    ("24.11", "24.11", False), (None, "22.05", False), (None, "24.11", True),
])
def test_needs_root_when_the_installed_slurm_is_another_release(monkeypatch, local, wanted, root):
    monkeypatch.setattr(chroot, "local_slurm_version", lambda: local)
    monkeypatch.setattr(chroot, "inside_root", lambda: None)
    assert chroot.needs_root(wanted) is root


def test_roots_are_cached_per_suite_and_overridable(monkeypatch, tmp_path):
    monkeypatch.delenv(chroot.ROOTS_ENV, raising=False)
    assert chroot.root_path("24.11") == Path("/var/cache/kant-slurm/roots/trixie")
    monkeypatch.setenv(chroot.ROOTS_ENV, str(tmp_path))
    assert chroot.root_path("26.05") == tmp_path / "sid"
    assert not chroot.root_ready(tmp_path / "sid")


def test_in_root_mounts_privately_and_quotes_nothing_into_a_shell(tmp_path):
    root = tmp_path / "r o'ot"
    argv = chroot.in_root(root, ["apt-get", "install", "-y", "x; rm -rf /"])
    assert argv[:4] == ["unshare", "--mount", "--", "sh"]
    # The root and the command are positional arguments of the script, never part of its text.
    script = argv[5]
    assert str(root) not in script and "apt-get" not in script
    assert argv[6:] == [str(root), str(root), "apt-get", "install", "-y", "x; rm -rf /"]


def _fake_cluster(tmp_path, root: str | None, init: int, pid_ns: str | None) -> dc.DevClusterPaths:
    paths = dc.DevClusterPaths(tmp_path)
    paths.run.mkdir(parents=True)
    paths.state_file.write_text(json.dumps({"spec": {"nodes": 1, "slurm_version": "24.11"},
                                            "root": root}))
    paths.namespace_file.write_text(json.dumps({"init": init, "pid_ns": pid_ns}))
    return paths


def test_client_argv_enters_the_root_through_the_cluster_namespace(tmp_path):
    me = os.getpid()
    paths = _fake_cluster(tmp_path, "/roots/trixie", me, os.readlink(f"/proc/{me}/ns/pid"))
    assert dc.client_argv(paths, ["sinfo", "-N"]) == [
        "nsenter", f"--target={me}", "--pid", "--mount", "--root", f"--wd={tmp_path}", "--",
        "chroot", "/roots/trixie", "sinfo", "-N"]
    native = _fake_cluster(tmp_path / "n", None, me, os.readlink(f"/proc/{me}/ns/pid"))
    assert dc.client_argv(native, ["sinfo"]) == ["sinfo"]


def test_client_argv_of_a_stopped_root_cluster_is_an_error(tmp_path):
    paths = _fake_cluster(tmp_path, "/roots/trixie", 2**22 + 12345, "pid:[1]")
    with pytest.raises(DevClusterError, match="does not run"):
        dc.client_argv(paths, ["sinfo"])


def test_down_kills_nothing_when_the_recorded_init_is_not_in_the_recorded_namespace(tmp_path):
    # A recycled pid: the recorded init now is some other process, in another PID namespace.
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        paths = _fake_cluster(tmp_path, None, bystander.pid, "pid:[4026531999]")
        paths.pid_file("slurmctld").write_text(f"{bystander.pid}\n")
        assert dc.running_processes(tmp_path) == []
        assert dc.down(tmp_path) == []
        assert bystander.poll() is None
        assert dc.status(tmp_path).daemons.get("slurmctld") is None
    finally:
        bystander.kill()
        bystander.wait()


def test_processes_in_a_root_do_not_get_the_host_tmpdir(monkeypatch):
    # The host's TMPDIR does not exist in the root: ca-certificates' postinst failed on it.
    monkeypatch.setenv("TMPDIR", "/tmp/host-only")
    assert "TMPDIR" not in chroot.root_env()
    assert chroot.root_env({"A": "1", "TMPDIR": "/y"}) == {"A": "1"}


def test_a_dir_too_long_for_slurmstepd_sockets_is_a_one_line_error(tmp_path):
    # Recorded: with 117 characters every job failed to launch while the cluster came up idle.
    deep = Path("/tmp") / ("d" * 70)
    with pytest.raises(DevClusterError,
                       match=r"too long for a unix socket path.*at most 66 ") as err:
        dc.up(deep, dc.DevClusterSpec(nodes=3, port_base=31000, slurm_version="22.05"))
    assert "\n" not in str(err.value)


def test_plugstack_names_the_spank_plugin_only_when_it_is_there(tmp_path):
    # A line naming a missing plugin makes every sbatch print "Dlopen of plugin file failed".
    paths = dc.DevClusterPaths(tmp_path)
    paths.etc.mkdir(parents=True)

    def plugin_lines() -> list[str]:
        return [line for line in paths.plugstack_conf.read_text().splitlines()
                if line and not line.startswith("#")]

    assert dc.write_plugstack(paths) is False and plugin_lines() == []
    assert dc.render_configs(dc.DevClusterSpec(nodes=2), paths, "pw", "h")["plugstack.conf"] == \
        paths.plugstack_conf.read_text()
    paths.spank_plugin.write_bytes(b"")
    assert dc.write_plugstack(paths) is True
    assert plugin_lines() == [f"optional {paths.spank_plugin}"]
    assert dc.render_configs(dc.DevClusterSpec(nodes=2), paths, "pw", "h")["plugstack.conf"] == \
        paths.plugstack_conf.read_text()
