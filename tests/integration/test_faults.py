"""Faults that must not hurt (issue 5), caused on the real dev cluster: slurmctld stopped and
restarted mid-cycle, jobs cancelled between read and apply, a drained node, a partial
scontrol failure, a corrupt or missing state file, two daemons at once, SIGHUP and SIGTERM.

Each: no crash, a clear report or log line, nothing half-applied that the next cycle does not
complete or clean up, and the next cycle recovers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kant_slurm.errors import SlurmError
from kant_slurm.slurm import actuator as act
from kant_slurm import devcluster as dc
from kant_slurm.devcluster import daemons as dc_daemons
from kant_slurm.slurm.state import load_state, save_state
from kant_slurm.steer import SteerLock, LockHeld, reset, run_cycle

pytestmark = pytest.mark.slurm


def desired_in_force(cluster, config, state) -> None:
    """The next cycle recovers (a restarted slurmctld forgot kant's weights: it sets them
    again without failure), and the one after has nothing left to do."""
    first = run_cycle(config, state)
    assert first.ok and not first.failed, (first.error, first.failed)
    again = run_cycle(config, state)
    assert again.ok, again.error
    assert again.changes == [], [c.command() for c in again.changes]


def busy(cluster, nodes, gpus=3):
    ids = [cluster.sbatch(f"--nodelist={n}", f"--gres=gpu:{gpus}", "-t", "5", "--wrap",
                          "sleep 120") for n in nodes]
    cluster.wait_running(ids)
    return ids


def big_pending(cluster):
    return cluster.sbatch("-N", "16", "--gres=gpu:8", "-t", "5", "--wrap", "sleep 1")


def _slurmctld_pid(cluster) -> int:
    return int(cluster.paths.pid_file("slurmctld").read_text().split()[0])


def stop_slurmctld(cluster) -> None:
    pid = _slurmctld_pid(cluster)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            pong = cluster.run("scontrol", "ping", check=False, timeout=25).stdout
        except subprocess.TimeoutExpired:
            # A slurmctld still shutting down may take the connection and never answer (24.11
            # waits up to MessageTimeout, 20 s here): not stopped yet.
            continue
        if pong.count("DOWN"):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it when this process started it
            if not os.path.exists(f"/proc/{pid}") or \
                    Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return
        time.sleep(0.3)
    raise AssertionError("slurmctld did not stop")


def start_slurmctld(cluster) -> None:
    dc_daemons.start_slurmctld(cluster.paths, clear_state=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = dc.node_states(cluster.conf_path)
        if states and all(not s.endswith("*") for s in states.values()):
            return
        time.sleep(0.5)


def test_slurmctld_down_at_read_changes_nothing(steer_env):
    cluster, config, state = steer_env
    busy(cluster, ["gn01"])
    assert run_cycle(config, state).ok
    before = state.read_text()
    stop_slurmctld(cluster)
    try:
        report = run_cycle(config, state)
        assert not report.ok and report.error.startswith("read failed: slurmctld does not answer")
        assert "nothing changed" in report.summary()
        assert state.read_text() == before
    finally:
        start_slurmctld(cluster)
    desired_in_force(cluster, config, state)


def test_slurmctld_stopped_mid_cycle_then_restarted(steer_env):
    cluster, config, state = steer_env
    busy(cluster, ["gn01", "gn05"])
    big_pending(cluster)
    report = run_cycle(config, state, before_apply=lambda: stop_slurmctld(cluster))
    try:
        assert not report.ok and report.error.startswith("apply stopped")
        assert report.applied == [] and report.not_run
        # The write-ahead marks of the first command are there; their values are not in force.
        first = act.group_changes(report.not_run)[0]
        assert load_state(state).count() == len(first.changes)
    finally:
        start_slurmctld(cluster)
    # A restarted slurmctld re-reads slurm.conf: kant's values are gone; the next cycle puts
    # them back and records every one.
    after = run_cycle(config, state)
    assert after.ok and after.applied and not after.failed
    marks = load_state(state)
    assert marks.count() == len([c for c in after.applied]) >= len(report.not_run)
    desired_in_force(cluster, config, state)


def test_jobs_cancelled_between_read_and_apply(steer_env):
    cluster, config, state = steer_env
    busy(cluster, ["gn01"])
    jobs = [big_pending(cluster) for _ in range(3)]
    report = run_cycle(config, state,
                       before_apply=lambda: cluster.run("scancel", *jobs))
    assert report.ok
    failed = {c.target for c, _ in report.failed}
    assert failed == set(jobs), report.failed
    assert all("Invalid job id" in e or "already finished" in e or "not pending" in e.lower()
               for _, e in report.failed), report.failed
    assert load_state(state).marks["site_factor"] == {}
    desired_in_force(cluster, config, state)


def test_job_started_between_read_and_pin_is_not_resized(steer_env, read_released):
    # ReqNodeList on a running job would be a resize request to Slurm; kant pins with
    # ExcNodeList, which Slurm refuses cleanly on a running job.
    cluster, config, state = steer_env
    ids = [cluster.sbatch(f"--nodelist={n}", "--gres=gpu:8", "-t", "5", "--wrap", "sleep 120")
           for n in cluster.nodes[1:]]
    cluster.wait_running(ids)
    small = cluster.sbatch("--gres=gpu:2", "-t", "1", "--hold", "--wrap", "sleep 20")

    def start_it():
        cluster.run("scontrol", "release", small)
        cluster.wait_running([small])

    report = run_cycle(config, state, before_apply=start_it, read=read_released(config, small))
    assert report.ok
    assert [(c.kind, c.target) for c, _ in report.failed] == [("pin", small)]
    assert "no longer pending" in report.failed[0][1]
    assert "pin" not in {c.kind for c in report.applied}
    assert load_state(state).marks["pin"] == {}
    states = cluster.run("sacct", "-X", "-n", "-P", "-j", small, "-o", "State").stdout.split()
    assert "RESIZING" not in states, states


def test_drained_node(steer_env, read_released):
    cluster, config, state = steer_env
    busy(cluster, ["gn01"])
    assert run_cycle(config, state).ok
    cluster.run("scontrol", "update", "NodeName=gn02", "State=DRAIN", "Reason=kant-test")
    try:
        held = cluster.sbatch("--gres=gpu:2", "-t", "1", "--hold", "--wrap", "sleep 1")
        report = run_cycle(config, state, read=read_released(config, held))
        assert report.ok and not report.failed
        pins = [c for c in report.applied if c.kind == "pin"]
        assert [c.target for c in pins] == [held]
        chosen = set(cluster.nodes) - set(pins[0].value)
        assert chosen == {"gn01"}  # the partly used node (E-Binpack), never the drained gn02
        desired_in_force(cluster, config, state)
    finally:
        cluster.run("scontrol", "update", "NodeName=gn02", "State=RESUME")


def test_partial_scontrol_failure_next_cycle_completes(steer_env):
    cluster, config, state = steer_env
    busy(cluster, ["gn01", "gn09"])
    from kant_slurm.hostlist import expand

    def flaky(argv):
        # Any command touching gn03 or gn12 fails (grouped ones are retried node by node).
        if argv[2].startswith("NodeName=") and {"gn03", "gn12"} & set(expand(argv[2][9:])):
            raise SlurmError(f"`{' '.join(argv)}` failed: Unexpected message received")
        return act.run_scontrol(argv)

    report = run_cycle(config, state, runner=flaky)
    failed_targets = {c.target for c, _ in report.failed}
    # 16 nodes: gn01, gn09 partly used (best-fit weight 1 + 5 free = 6), the 14 others idle
    # (11); all 16 differ from slurm.conf's 1, gn03 and gn12 fail: 14 applied.
    assert report.ok and failed_targets == {"gn03", "gn12"} and len(report.applied) == 14
    assert not failed_targets & set(load_state(state).marks["weight"])
    nxt = run_cycle(config, state)
    assert nxt.ok and {c.target for c in nxt.applied} == failed_targets
    desired_in_force(cluster, config, state)


def test_corrupt_state_file_rebuilt_from_slurm(steer_env, caplog):
    cluster, config, state = steer_env
    busy(cluster, ["gn01"])
    big = big_pending(cluster)
    assert run_cycle(config, state).applied
    state.write_text('{"version": 1, "marks": {"weight": {"gn01": {"orig": "x"')
    with caplog.at_level("ERROR", logger="kant_slurm"):
        report = run_cycle(config, state)
    assert report.ok
    assert any("state file is corrupt" in r.message and "set aside as" in r.message
               for r in caplog.records)
    assert list(state.parent.glob("state.json.corrupt-*"))
    # The rebuilt marks know what kant set: nothing new to apply, and reset undoes it all.
    assert report.applied == []
    marks = load_state(state)
    assert big in marks.marks["site_factor"] and marks.marks["weight"]
    rep = reset(config, state)
    assert rep.clean
    assert cluster.node_weights() == act.config_weights(cluster.conf_path)
    assert cluster.site_factors()[big] == 0


def test_missing_state_file_reset_still_restores(steer_env):
    cluster, config, state = steer_env
    busy(cluster, ["gn01"])
    assert run_cycle(config, state).applied
    state.unlink()
    rep = reset(config, state)
    assert rep.clean and rep.applied
    assert any("no state file" in n for n in rep.notes)
    assert cluster.node_weights() == act.config_weights(cluster.conf_path)


def test_two_daemons_and_signals(steer_env, tmp_path):
    cluster, config, state = steer_env
    lock = tmp_path / "steer.lock"
    cfg = tmp_path / "kant.yaml"
    cfg.write_text("actuator:\n  max_changes: 50\n")
    argv = ["kant-slurm", "daemon", "--interval", "0.5", "--state-file", str(state),
            "--lock-file", str(lock), "--config", str(cfg)]
    first = subprocess.Popen(argv, env=cluster.env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
            assert time.monotonic() < deadline, "first daemon did not take the lock"
            time.sleep(0.1)
        second = subprocess.run(argv, env=cluster.env, capture_output=True, text=True,
                                timeout=30)
        assert second.returncode == 3
        assert f"another kant-slurm steering process (pid {first.pid}) holds the lock" in \
            second.stderr
        with pytest.raises(LockHeld):
            SteerLock(lock).acquire()
        cfg.write_text("actuator:\n  max_changes: 7\n")
        first.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert "SIGHUP: config reloaded" in err
    assert "signal SIGTERM: stopping after the current cycle" in err
    assert "daemon stopped after" in err
    assert "cycle " in err and " running, " in err  # per-cycle duration and counts
    # The lock is free again.
    SteerLock(lock).acquire().release()


def test_state_write_is_atomic_under_repeated_saves(tmp_path):
    # Not a Slurm test: a reader never sees a half-written file while saves go on.
    from kant_slurm.slurm.state import SteerState

    path = tmp_path / "s.json"
    st = SteerState()
    for i in range(200):
        st.put("weight", f"gn{i:03d}", 1, 11)
        save_state(st, path)
        assert load_state(path).count() == i + 1


_ = sys
