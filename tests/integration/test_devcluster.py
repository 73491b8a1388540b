"""`kant-slurm devcluster up|down|status` as a user runs it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from kant_slurm import devcluster as dc

pytestmark = pytest.mark.slurm

DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd")


def _cli(*args: str, env=None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["kant-slurm", "devcluster", *args], capture_output=True, text=True,
                          timeout=timeout, env=env or dict(os.environ), stdin=subprocess.DEVNULL)


def _daemons_of(directory: Path) -> list[str]:
    """Names of live processes carrying the cluster's marker (munged, slurmd, ...)."""
    names = []
    for pid in dc.running_processes(directory):
        with contextlib.suppress(OSError):
            names.append(Path(f"/proc/{pid}/comm").read_text().strip())
    return names


def test_status_json_names_the_running_cluster_and_its_paths(slurm_cluster):
    res = _cli("status", "--dir", str(slurm_cluster.dir), "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["running"] is True
    assert set(data["daemons"]) >= {"munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd-gn01"}
    assert all(data["daemons"].values())
    assert data["paths"]["slurm_conf"] == str(slurm_cluster.conf_path)
    plugstack = Path(data["paths"]["plugstack_conf"]).read_text()
    assert f"optional {data['paths']['spank_plugin']}" in plugstack
    conf = slurm_cluster.conf_path.read_text()
    assert f"AuthInfo=socket={data['paths']['munge_socket']}" in conf
    assert "TopologyPlugin=topology/tree" in conf and "SelectType=select/cons_tres" in conf


def test_second_up_reports_the_running_cluster(slurm_cluster):
    res = _cli("up", "--dir", str(slurm_cluster.dir), "--port-base", str(slurm_cluster.port_base))
    assert res.returncode == 0, res.stderr
    assert "already running" in res.stdout
    assert f"export SLURM_CONF={slurm_cluster.conf_path}" in res.stdout.splitlines()


@pytest.fixture
def short_tmp():
    """A directory with a short path: a cluster's unix sockets live under it, and pytest's
    tmp_path (its run counter, the test's name) can be longer than a socket path may be."""
    path = Path(tempfile.mkdtemp(prefix="kdc-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_port_in_use_is_a_one_line_error(slurm_cluster, short_tmp):
    tmp_path = short_tmp
    base = slurm_cluster.port_base + 600
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", base + 2))  # slurmctld's port of that cluster
        sock.listen()
        res = _cli("up", "--dir", str(tmp_path / "c"), "--port-base", str(base), "--nodes", "2")
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert f"port {base + 2}" in lines[0] and "slurmctld" in lines[0] and "in use" in lines[0]
    assert not _daemons_of(tmp_path / "c")


def test_up_down_up_down_leaves_nothing_running(slurm_cluster, short_tmp):
    tmp_path = short_tmp
    bad = _cli("up", "--dir", str(tmp_path / "with space"), "--nodes", "1")
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1 \
        and "spaces" in bad.stderr
    directory = tmp_path / "small"
    base = slurm_cluster.port_base + 500
    args = ["--dir", str(directory), "--port-base", str(base), "--nodes", "3", "--leaf-size", "2",
            "--gpus-per-node", "4", "--inference-nodes", "1", "--gpu-type", "a100"]
    try:
        _up_down_twice(directory, args)
    finally:
        dc.down(directory)  # even when an assertion failed: nothing of it may outlive the test
    # The session cluster is untouched by the other one's down.
    assert json.loads(_cli("status", "--dir", str(slurm_cluster.dir), "--json").stdout)["running"]


def _up_down_twice(directory: Path, args: list[str]) -> None:
    for _round in range(2):
        res = _cli("up", *args)
        assert res.returncode == 0, res.stderr
        conf = directory / "etc" / "slurm.conf"
        env = dict(os.environ, SLURM_CONF=str(conf))
        sinfo = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %P %t %G"], env=env,
                               capture_output=True, text=True).stdout.split("\n")
        assert "gn03 infer idle gpu:a100:4" in sinfo and "gn01 gpu* idle gpu:a100:4" in sinfo
        running = _daemons_of(directory)
        for daemon in DAEMONS:
            assert any(name.startswith(daemon) for name in running), (daemon, running)
        assert sum(name in ("slurmd", "slurmd-wlm") for name in running) == 3
        escaped = _leave_a_detached_job_process(directory, env)
        # A process outside the cluster with the very same command line must survive its down.
        bystander = subprocess.Popen(["sleep", "4711"], start_new_session=True)

        res = _cli("down", "--dir", str(directory))
        try:
            assert res.returncode == 0, res.stderr
            assert _daemons_of(directory) == []
            assert not Path(f"/proc/{escaped}").exists(), "a job's detached process outlived down"
            assert bystander.poll() is None, "down killed a process that is not the cluster's"
        finally:
            bystander.kill()
            bystander.wait()
        status = json.loads(_cli("status", "--dir", str(directory), "--json").stdout)
        assert status["running"] is False and not any(status["daemons"].values())


def _leave_a_detached_job_process(directory: Path, env: dict) -> int:
    """Run a job whose process detaches (new session, empty environment, parent gone): Slurm's
    proctrack/linuxproc no longer finds it and 26.05 steps never had the slurmd's environment.
    Return its pid once it runs."""
    res = subprocess.run(["sbatch", "--parsable", "--output=/dev/null", "--chdir=/tmp", "--wrap",
                          "(setsid env -i sleep 4711 &); sleep 600"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for pid in dc.running_processes(directory):
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x004711\x00":
                    return pid
            except OSError:
                pass
        time.sleep(0.5)
    raise AssertionError("the job's detached sleep 4711 did not show up in the cluster")
