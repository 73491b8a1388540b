"""`kant-slurm sweep --backend slurm` on the dev cluster, end to end: a 4-cell grid on the
bundled slice as one job array and a dependent merge job; one task killed mid-run (scancel)
shows up as a missing cell, a rerun submits only that cell, and the merged table is the same as
the local backend's."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

GRID = """name: ci-slice
policies: [slurm, kant]
seeds: [0]
traces: [bundled]
clusters: [bundled]
overrides:
  slurm.bf_window: [1440, 60]
"""
# Shell characters in the job name: it must reach Slurm as it is and run nothing.
JOB_NAME = "kant sweep;touch PWNED $(touch PWNED2)"


def _sweep(cluster, grid: Path, out: Path, *more: str, timeout: float = 240):
    return subprocess.Popen(
        [sys.executable, "-m", "kant_slurm", "sweep", str(grid), "--out", str(out), *more],
        env=cluster.env, cwd=grid.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def _kill_task_when_running(cluster, out: Path, task: int, killed: list, deadline_s: float):
    """scancel array task ``task`` as soon as squeue shows it running."""
    jobs_file = out / "slurm-jobs.json"
    t_end = time.monotonic() + deadline_s
    while time.monotonic() < t_end:
        if jobs_file.exists():
            import json

            array_id = json.loads(jobs_file.read_text())["array_id"]
            states = cluster.run("squeue", "-h", "-r", "-o", "%i %T", "-j", array_id,
                                 check=False).stdout
            if f"{array_id}_{task} RUNNING" in states:
                cluster.run("scancel", f"{array_id}_{task}")
                killed.append(f"{array_id}_{task}")
                return
        time.sleep(0.1)


def test_slurm_array_sweep_kill_resume_and_same_table_as_local(slurm_clean, tmp_path):
    cluster = slurm_clean
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID)
    out = tmp_path / "slurm-run"
    t0 = time.monotonic()
    killed: list[str] = []
    proc = _sweep(cluster, grid, out, "--backend", "slurm", "--job-name", JOB_NAME)
    killer = threading.Thread(target=_kill_task_when_running,
                              args=(cluster, out, 0, killed, 120))
    killer.start()
    stdout, stderr = proc.communicate(timeout=240)
    killer.join()
    first_s = time.monotonic() - t0
    assert killed, f"task 0 was never seen running:\n{stderr}"
    # One cell missing: the command says so and exits 1; the merge ran anyway (afterany).
    assert proc.returncode == 1, stderr
    assert "submitted array job" in stderr and "(4 cells)" in stderr
    assert "cells done" in stderr and "merge" in stderr  # progress from squeue/sacct
    assert "cell 0 (slurm slurm.bf_window=1440) missing" in stderr
    rows = {line.split()[0]: line for line in stdout.splitlines() if line[:1].isdigit()}
    assert "missing" in rows["0"] and all("done" in rows[i] for i in "123")
    assert not list(tmp_path.rglob("PWNED*"))
    name = cluster.run("sacct", "-n", "-X", "-P", "-o", "JobName", "-j",
                       killed[0].split("_")[0]).stdout.splitlines()[0]
    assert name == JOB_NAME
    done_before = {p: p.stat().st_mtime_ns for p in (out / "cells").rglob("seed-*.json")}
    assert len(done_before) == 3

    # Resume: the same command runs only the cancelled cell.
    t1 = time.monotonic()
    proc = _sweep(cluster, grid, out, "--backend", "slurm", "--job-name", JOB_NAME)
    _, stderr = proc.communicate(timeout=240)
    resume_s = time.monotonic() - t1
    assert proc.returncode == 0, stderr
    assert "(1 cells)" in stderr
    assert {p: p.stat().st_mtime_ns for p in done_before} == done_before
    assert len(list((out / "cells").rglob("seed-*.json"))) == 4

    # The same grid on the local backend: the same merged table.
    local = tmp_path / "local-run"
    proc = _sweep(cluster, grid, local, "--backend", "local", "--workers", "2")
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr
    assert (local / "table.txt").read_text() == (out / "table.txt").read_text()
    assert (local / "cells.csv").read_text() == (out / "cells.csv").read_text()
    print(f"\nslurm backend: first run (one task killed) {first_s:.0f}s, resume {resume_s:.0f}s")
