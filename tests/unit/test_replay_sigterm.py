"""replay cancels the jobs it submitted on SIGTERM as on Ctrl-C (a real SIGTERM to this process;
Slurm's commands replaced by recorders)."""

import os
import signal
import threading

import pandas as pd
import pytest

from kant_slurm.errors import KantError
from kant_slurm.devcluster import replay


@pytest.fixture()
def fake_slurm(monkeypatch):
    calls = {"submitted": [], "cancelled": []}

    def submit(argv):
        calls["submitted"].append(argv[-1])
        return str(1000 + len(calls["submitted"]))

    monkeypatch.setattr(replay, "sbatch_argv", lambda row, gres_type=None: ["sbatch",
                                                                             row["job_id"]])
    monkeypatch.setattr(replay, "_submit", submit)
    monkeypatch.setattr(replay, "_cancel", lambda ids: calls["cancelled"].extend(ids))
    monkeypatch.setattr(replay, "_alive", lambda ids: set(ids))  # nothing ever ends
    return calls


def _jobs(submit_times):
    table = pd.DataFrame({"job_id": [f"t{k}" for k in range(len(submit_times))],
                          "submit_time": submit_times})
    return replay.ReplayJobs(table=table, speedup=1.0, inventory=None)


def _kill_soon(sig, after=0.4):
    timer = threading.Timer(after, os.kill, (os.getpid(), sig))
    timer.start()
    return timer


@pytest.mark.parametrize("submit_times, submitted", [
    ([0.0, 0.0, 30.0], 2),   # SIGTERM while waiting to submit the third
    ([0.0, 0.0, 0.0], 3),    # SIGTERM while waiting for the jobs to end
])
def test_sigterm_cancels_every_submitted_job(fake_slurm, submit_times, submitted):
    before = signal.getsignal(signal.SIGTERM)
    _kill_soon(signal.SIGTERM)
    with pytest.raises(KantError, match=f"SIGTERM: cancelled the {submitted} jobs"):
        replay.replay_trace(_jobs(submit_times), poll=0.05)
    assert fake_slurm["cancelled"] == [str(1000 + k) for k in range(1, submitted + 1)]
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is put back


def test_ctrl_c_still_cancels_and_reraises(fake_slurm):
    _kill_soon(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        replay.replay_trace(_jobs([0.0, 30.0]), poll=0.05)
    assert fake_slurm["cancelled"] == ["1001"]


def test_a_second_sigterm_does_not_cut_the_cancel_short(fake_slurm, monkeypatch):
    done = []

    def slow_cancel(ids):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while scancel runs
        done.extend(ids)

    monkeypatch.setattr(replay, "_cancel", slow_cancel)
    _kill_soon(signal.SIGTERM)
    with pytest.raises(KantError, match="SIGTERM"):
        replay.replay_trace(_jobs([0.0, 30.0]), poll=0.05)
    assert done == ["1001"]
