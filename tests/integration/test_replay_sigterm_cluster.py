"""`kant-slurm replay` on the dev cluster: SIGTERM cancels every job it submitted, as Ctrl-C
does (issue 19: a SIGTERM used to leave 65 jobs queued)."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

pytestmark = pytest.mark.slurm

# Three jobs at once, each sleeping 10 minutes of wall time at --speedup 60.
TRACE = """timestamp,duration,num_gpus,gpu_time,cluster
2017-10-16 00:00:00,36000,1,36000,vc
2017-10-16 00:00:00,36000,2,72000,vc
2017-10-16 00:00:01,36000,8,288000,vc
"""


def test_sigterm_cancels_the_replayed_jobs(slurm_clean, tmp_path):
    cluster = slurm_clean
    trace = tmp_path / "t.csv"
    trace.write_text(TRACE)
    proc = subprocess.Popen(
        ["kant-slurm", "replay", "--trace", str(trace), "--trace-format", "philly",
         "--speedup", "60", "--time-limits", "exact", "--timeout", "120"],
        env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            names = cluster.run("squeue", "-h", "-o", "%j").stdout.split()
            if len([n for n in names if n.startswith("kr-")]) == 3:
                break
            time.sleep(0.5)
        else:
            pytest.fail("the replay did not submit its 3 jobs within 60 s")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert "error: replay stopped by SIGTERM: cancelled the 3 jobs it had submitted" in err
    assert "Traceback" not in err
    left = cluster.run("squeue", "-h", "-o", "%j").stdout.split()
    assert [n for n in left if n.startswith("kr-")] == []
