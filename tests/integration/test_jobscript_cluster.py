"""The templates on the real dev cluster, submitted with ``kant-slurm submit``.

All slurmd processes share this host, so the jobs' processes run here as root: the tests read
the records the jobs write into tmp_path and may signal the job's own server by its pid.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import wait_for

from kant_slurm import hostlist
from kant_slurm.slurm import read_snapshot

pytestmark = pytest.mark.slurm

HOSTILE = ["it's", 'say "hi"', "a;b", "$(touch CANARY1)", "`touch CANARY2`", "x\ny",
           "/path with spaces/ckpt", "$HOME", "", "\\", "&& touch CANARY3"]


def kant(cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the kant-slurm CLI against the dev cluster."""
    res = subprocess.run([sys.executable, "-c", "from kant_slurm.cli import main; main()", *args],
                         env=cluster.env,
                         capture_output=True, text=True, timeout=120)
    if check and res.returncode != 0:
        raise AssertionError(f"kant-slurm {' '.join(args)}: {res.stderr}")
    return res


def _job_fields(cluster, job_id: str) -> dict[str, str]:
    out = cluster.run("scontrol", "show", "job", job_id, "-o").stdout
    return dict(f.split("=", 1) for f in out.split() if "=" in f)


def _sacct_states(cluster, job_id: str) -> list[str]:
    out = cluster.run("sacct", "-n", "-X", "-D", "-P", "-j", job_id, "-o", "State",
                      check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


RECORDER = textwrap.dedent("""\
    #!{python}
    import json, os, sys
    keys = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "WORLD_SIZE", "NNODES", "SLURMD_NODENAME",
            "SLURM_JOB_ID", "NCCL_DEBUG")
    with open(os.path.join({rec!r}, "node-%s.json" % os.environ["NODE_RANK"]), "w") as f:
        json.dump({{"argv": sys.argv[1:], "env": {{k: os.environ.get(k) for k in keys}}}}, f)
    """)


def test_training_two_nodes_rendezvous(slurm_clean, tmp_path):
    cluster = slurm_clean
    rec = tmp_path / "rec"
    rec.mkdir()
    stub = tmp_path / "torchrun-stub"
    stub.write_text(RECORDER.format(python=sys.executable, rec=str(rec)))
    stub.chmod(0o755)
    job = kant(cluster, "submit", "training", "--set", "nodes=2", "--set", "time=10",
               "--set", f"launcher_bin={stub}", "--set", f"workdir={tmp_path}",
               "--set", "program=" + shlex.join(HOSTILE),
               ).stdout.strip()
    assert job.isdigit()
    wait_for(f"job {job} completes", lambda: "COMPLETED" in _sacct_states(cluster, job) or None,
             90, every=0.5)
    nodes = hostlist.expand(_job_fields(cluster, job)["NodeList"])
    assert len(nodes) == 2
    port = 20000 + int(job) % 20000
    seen_nodes = set()
    for rank in (0, 1):
        r = json.loads((rec / f"node-{rank}.json").read_text())
        assert r["env"]["MASTER_ADDR"] == nodes[0]  # the first node of the allocation
        assert r["env"]["MASTER_PORT"] == str(port)
        assert (r["env"]["NODE_RANK"], r["env"]["WORLD_SIZE"], r["env"]["NNODES"]) == \
            (str(rank), "16", "2")
        assert r["env"]["SLURM_JOB_ID"] == job and r["env"]["NCCL_DEBUG"] == "WARN"
        assert r["argv"] == ["--nnodes=2", "--nproc-per-node=8", "--rdzv-backend=c10d",
                             f"--rdzv-endpoint={nodes[0]}:{port}", f"--rdzv-id={job}",
                             f"--node-rank={rank}", *HOSTILE]
        seen_nodes.add(r["env"]["SLURMD_NODENAME"])
    assert seen_nodes == set(nodes)  # one task per node
    assert not list(tmp_path.rglob("CANARY*"))
    log = (tmp_path / f"train-{job}.out").read_text()
    assert f"rendezvous {nodes[0]}:{port}, 2 node(s) x 8, world size 16" in log


def test_training_warning_signal_checkpoints_and_requeues(slurm_clean, tmp_path):
    """--signal=B:USR1@N: the step gets USR2 and saves, then the job requeues itself."""
    cluster = slurm_clean
    worker = tmp_path / "worker"
    worker.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import os, signal, sys, time
        def save(sig, frame):
            open(os.path.join({str(tmp_path)!r}, "saved-%s-%s" % (os.environ["SLURM_JOB_ID"],
                 os.environ["SLURM_RESTART_COUNT"] if "SLURM_RESTART_COUNT" in os.environ
                 else "0")), "w").close()
            sys.exit(0)
        signal.signal(signal.SIGUSR2, save)
        time.sleep(600)
        """))
    worker.chmod(0o755)
    # A 3-minute limit and a 110 s warning: due 70 s after the start, and Slurm may send it up
    # to 60 s early (sbatch(1), --signal), so not before the worker set its USR2 handler (with
    # a 2-minute limit it came 1 s after the start once, and the worker died of the USR2).
    job = kant(cluster, "submit", "training", "--set", "nodes=1", "--set", "gpus_per_node=1",
               "--set", "time=3", "--set", "warning_seconds=110", "--set", "launcher=command",
               "--set", f"program={worker}", "--set", "checkpoint_wait=20",
               "--set", f"workdir={tmp_path}").stdout.strip()
    wait_for(f"job {job} requeues", lambda: "REQUEUED" in _sacct_states(cluster, job) or None,
             150, every=0.5)
    assert (tmp_path / f"saved-{job}-0").exists()  # the checkpoint came before the requeue
    fields = _job_fields(cluster, job)
    assert fields["Restarts"] == "1"
    log = (tmp_path / f"train-{job}.out").read_text()
    assert "USR1: the time limit is near; checkpointing" in log and "requeueing" in log
    cluster.run("scancel", job)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_pid(port: int) -> int | None:
    """The pid of the job's toy server on ``port`` (all slurmds share this host)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kant_slurm.examples.toy_server" in argv and str(port).encode() in argv and \
                not argv[0].endswith(b"srun"):
            return int(proc.name)
    return None


def _toy_server(port: int, *args: str) -> str:
    """The bundled toy server's command line, as the README's example gives it (with this
    test's Python, which has kant_slurm; the job inherits PYTHONPATH)."""
    return shlex.join([sys.executable, "-m", "kant_slurm.examples.toy_server", "--port",
                       str(port), *args])


def test_inference_service_health_then_kill_requeues(slurm_clean, tmp_path):
    cluster = slurm_clean
    port = _free_port()
    job = kant(cluster, "submit", "inference-service", "--set", "service=web",
               "--set", f"port={port}", "--set", "health_interval=1",
               "--set", "health_failures=2", "--set", "startup_timeout=60", "--set", "time=30",
               "--set", f"command={_toy_server(port)}",
               "--set", f"workdir={tmp_path}", "--set", "est_runtime=2:00:00").stdout.strip()
    log = tmp_path / f"web-{job}.out"
    wait_for("the server is healthy", lambda: log.exists() and "healthy: " in log.read_text(),
             60, every=0.5)
    assert f"healthy: http://127.0.0.1:{port}/health" in log.read_text()  # the default path
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/generate?prompt=a+b", timeout=10) as r:
        assert json.loads(r.read())["completion"] == "b a"
    fields = _job_fields(cluster, job)
    assert fields["JobName"] == "web"
    assert fields["AdminComment"] == "kant:workload=inference;service=web;est=7200"
    snap_job = read_snapshot().job[job]
    assert (snap_job.job_class, snap_job.service, snap_job.est_runtime) == \
        ("inference", "web", 7200.0)

    pid = wait_for("find the server process", lambda: _server_pid(port), 10, every=0.5)
    os.kill(pid, signal.SIGKILL)
    wait_for(f"job {job} requeues", lambda: "REQUEUED" in _sacct_states(cluster, job) or None,
             60, every=0.5)
    fields = wait_for("requeued job pending",
                      lambda: (f := _job_fields(cluster, job)) and f["JobState"] == "PENDING"
                      and f, 30, every=0.5)
    assert fields["Restarts"] == "1"
    assert "web exited (status 137); requeueing (restart 1 of at most 10)" in log.read_text()
    assert cluster.run("squeue", "-h", "-j", job, "-o", "%T").stdout.strip() == "PENDING"
    cluster.run("scancel", job)


def test_inference_service_unhealthy_requeues(slurm_clean, tmp_path):
    """The server runs on but /health answers 503: after health_failures checks in a row the
    job stops it and requeues itself."""
    cluster = slurm_clean
    port = _free_port()
    job = kant(cluster, "submit", "inference-service", "--set", "service=sick",
               "--set", f"port={port}", "--set", "health_interval=1",
               "--set", "health_failures=2", "--set", "time=30",
               "--set", f"command={_toy_server(port, '--healthy-for', '3')}",
               "--set", f"workdir={tmp_path}").stdout.strip()
    log = tmp_path / f"sick-{job}.out"
    wait_for(f"job {job} requeues", lambda: "REQUEUED" in _sacct_states(cluster, job) or None,
             60, every=0.5)
    text = log.read_text()
    assert text.index(f"healthy: http://127.0.0.1:{port}/health") < \
        text.index("health check failed (1 of 2 in a row)") < \
        text.index("health check failed (2 of 2 in a row)") < \
        text.index("sick is unhealthy; requeueing (restart 1 of at most 10)")
    cluster.run("scancel", job)


def test_toy_training_checkpoints_and_resumes_after_requeue(slurm_clean, tmp_path):
    """The bundled training program on 2 nodes: the warning (USR1 to the batch shell, as the
    time limit and kant's preemption send it) makes it save and the job requeue; started again,
    it resumes from the step it saved and finishes."""
    cluster = slurm_clean
    steps = 150
    program = shlex.join([sys.executable, "-m", "kant_slurm.examples.toy_train", "--steps",
                          str(steps), "--step-seconds", "0.1", "--checkpoint-every", "10",
                          "--checkpoint-dir", "ckpt"])
    job = kant(cluster, "submit", "training", "--set", "nodes=2", "--set", "gpus_per_node=1",
               "--set", "time=10", "--set", "launcher=command", "--set", f"program={program}",
               "--set", f"workdir={tmp_path}").stdout.strip()
    ckpt = tmp_path / "ckpt" / "toy-train.json"
    wait_for("the first checkpoint",
             lambda: ckpt.exists() and json.loads(ckpt.read_text())["step"] >= 10, 60, every=0.5)
    cluster.run("scancel", "--signal=USR1", "--batch", job)
    wait_for(f"job {job} requeues", lambda: "REQUEUED" in _sacct_states(cluster, job) or None,
             60, every=0.5)
    log = tmp_path / f"train-{job}.out"
    saved = [line for line in log.read_text().splitlines() if "(signal)" in line]
    assert len(saved) == 1, log.read_text()
    step = int(saved[0].split("checkpoint at step ")[1].split()[0])
    assert 10 <= step < steps
    # Slurm holds a requeued job back (AuthInfo cred_expire, 120 s) because the nodes revoked
    # the first run's credential: a launch in the second of the requeue is refused (slurmd:
    # "Job N already killed, do not launch batch job", and the run fails at once; seen here).
    # Once the job is pending and a few seconds (whole-second timestamps) have passed, it may
    # start now.
    wait_for(f"job {job} pending", lambda: _job_fields(cluster, job)["JobState"] == "PENDING",
             30, every=0.5)
    time.sleep(3)
    cluster.run("scontrol", "update", f"JobId={job}", "StartTime=now")
    wait_for(f"job {job} completes",
             lambda: (_sacct_states(cluster, job) or [""])[-1] == "COMPLETED" or None, 90,
             every=0.5)
    text = log.read_text()
    for rank in (0, 1):
        assert f"toy_train[job {job} rank {rank}]: resumed from step {step} of {steps}" in text
    assert f"toy_train[job {job} rank 0]: done, {steps} steps" in text
    assert json.loads(ckpt.read_text())["step"] == steps


def test_singleton_keeps_one_instance_per_service(slurm_clean, tmp_path):
    cluster = slurm_clean
    args = ["submit", "inference-service", "--set", "service=solo", "--set", "port=1",
            "--set", "command=sleep 300", "--set", f"workdir={tmp_path}", "--set", "time=10",
            "--set", "startup_timeout=300"]
    first = kant(cluster, *args).stdout.strip()
    cluster.wait_running([first])
    second = kant(cluster, *args).stdout.strip()
    time.sleep(3)
    assert _job_fields(cluster, second)["Reason"] == "Dependency"
    assert _job_fields(cluster, second)["Dependency"].startswith("singleton")


def test_hostile_sbatch_values_stay_literal(slurm_clean, tmp_path):
    cluster = slurm_clean
    workdir = tmp_path / "odd dir" / "it's \"q\" $(x);`y` #z"
    workdir.mkdir(parents=True)
    out = str(tmp_path / "o #1 'x' $(y).out")
    job = kant(cluster, "submit", "training", "--set", "nodes=1", "--set", "gpus_per_node=0",
               "--set", "time=10", "--set", "launcher=command", "--set", "program=true",
               "--set", f"workdir={workdir}", "--set", f"output={out}",
               "--sbatch-arg=--hold").stdout.strip()
    fields = _job_fields(cluster, job)
    shown = cluster.run("scontrol", "show", "job", job).stdout
    assert f"WorkDir={workdir}\n" in shown
    assert f"StdOut={out}\n" in shown
    assert fields["Comment"] == "kant:workload=training"
