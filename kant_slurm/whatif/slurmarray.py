"""``--backend slurm``: one ``sbatch --array`` job, one task per unfinished cell, and a merge
job that depends on it (``afterany``: it runs however the tasks end, and the merged table
shows any cell that did not finish).

The scripts are generated; every value in them (paths, interpreter) goes through
:func:`shlex.quote`, and the job name and other sbatch options go to sbatch as arguments, never
through a shell. The tasks run the same interpreter as the submitting process
(``sys.executable``) and find ``kant_slurm`` where it does (its directory first on
PYTHONPATH): a site's compute nodes see the same shared filesystem, and the dev cluster runs
on this machine.

Progress while waiting comes from the result files (the truth about what is done), ``squeue``
(tasks pending and running) and ``sacct`` (tasks that ended failed or cancelled).
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import kant_slurm

from ..errors import SlurmError
from ..slurm.backend import run_slurm
from .grid import Grid
from .runner import missing_seeds, write_json

JOBS_FILE = "slurm-jobs.json"
ACTIVE_STATES = (
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "REQUEUED",
    "RESIZING",
    "SUSPENDED",
)


def array_spec(indices: Sequence[int], limit: int | None = None) -> str:
    """``[0, 1, 2, 5]`` -> ``0-2,5`` (sbatch --array), with ``%limit`` tasks at once."""
    parts: list[str] = []
    xs = sorted(set(indices))
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
            j += 1
        parts.append(str(xs[i]) if i == j else f"{xs[i]}-{xs[j]}")
        i = j + 1
    return ",".join(parts) + (f"%{limit}" if limit else "")


def package_root() -> str:
    """The directory ``kant_slurm`` is imported from (put first on the tasks' PYTHONPATH)."""
    return str(Path(kant_slurm.__file__).resolve().parent.parent)


def task_script(out: Path, *, python: str, pythonpath: str, cwd: str, merge: bool) -> str:
    """The batch script of the array tasks (``merge`` False) or of the merge job."""
    tail = "--merge-only" if merge else '--cell "$SLURM_ARRAY_TASK_ID"'
    what = "merges the cells' results" if merge else "runs the cell of its array task index"
    return "\n".join(
        [
            "#!/bin/sh",
            f"# kant-slurm sweep: {what}. Generated; every value is quoted with shlex.quote.",
            f"cd {shlex.quote(cwd)} || exit 1",
            f"PYTHONPATH={shlex.quote(pythonpath)}",
            "export PYTHONPATH",
            f"exec {shlex.quote(python)} -m kant_slurm sweep --out {shlex.quote(str(out))} {tail}",
            "",
        ]
    )


def sbatch_argv(
    script: Path,
    *,
    job_name: str,
    output: str,
    extra: Sequence[str],
    array: str | None = None,
    dependency: str | None = None,
) -> list[str]:
    """sbatch's arguments (a list: no shell sees the job name or any other value)."""
    argv = ["sbatch", "--parsable", f"--job-name={job_name}", f"--output={output}"]
    if array:
        argv.append(f"--array={array}")
    if dependency:
        argv.append(f"--dependency={dependency}")
    return argv + list(extra) + [str(script)]


@dataclass
class Submitted:
    array_id: str | None  # None when every cell was already done (only the merge runs)
    merge_id: str
    cells: list[int]


def _job_id(stdout: str) -> str:
    return stdout.strip().split(";")[0]


def active_jobs(out: Path, runner=run_slurm) -> list[str]:
    """The jobs of an earlier submit of this sweep that are still in the queue."""
    import json

    try:
        ids = json.loads((out / JOBS_FILE).read_text())
    except (OSError, ValueError):
        return []
    wanted = [i for i in (ids.get("array_id"), ids.get("merge_id")) if i]
    if not wanted:
        return []
    text = runner(["squeue", "-h", "-o", "%i", "-j", ",".join(wanted)], timeout=30)
    return [x for x in text.split() if x]


def submit(
    out: Path,
    grid: Grid,
    *,
    job_name: str,
    extra: Sequence[str] = (),
    limit: int | None = None,
    runner=run_slurm,
) -> Submitted:
    """Submit the array of the unfinished cells and the merge job after it."""
    busy = active_jobs(out, runner)
    if busy:
        raise SlurmError(
            f"{out}: an earlier submit of this sweep is still in the queue "
            f"(jobs {', '.join(busy)}); wait for it or scancel it, then rerun"
        )
    todo = [c.index for c in grid.cells() if missing_seeds(out, grid, c)]
    pythonpath = os.pathsep.join(
        [package_root()] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    common = {"python": sys.executable, "pythonpath": pythonpath, "cwd": os.getcwd()}
    array_id = None
    if todo:
        script = out / "slurm-array.sh"
        script.write_text(task_script(out, merge=False, **common))
        argv = sbatch_argv(
            script,
            job_name=job_name,
            output=str(out / "logs" / "cell-%a.out"),
            extra=extra,
            array=array_spec(todo, limit),
        )
        array_id = _job_id(runner(argv, timeout=60))
        # Recorded at once: should the merge's sbatch fail, a rerun still sees the array.
        write_json(
            out / JOBS_FILE,
            {"array_id": array_id, "merge_id": None, "cells": todo, "submitted_at": time.time()},
        )
    script = out / "slurm-merge.sh"
    script.write_text(task_script(out, merge=True, **common))
    argv = sbatch_argv(
        script,
        job_name=f"{job_name}-merge",
        output=str(out / "logs" / "merge.out"),
        extra=extra,
        dependency=f"afterany:{array_id}" if array_id else None,
    )
    merge_id = _job_id(runner(argv, timeout=60))
    write_json(
        out / JOBS_FILE,
        {"array_id": array_id, "merge_id": merge_id, "cells": todo, "submitted_at": time.time()},
    )
    return Submitted(array_id, merge_id, todo)


def queue_states(job_ids: Sequence[str], runner=run_slurm) -> dict[str, str]:
    """squeue's state of each task/job still in the queue (array tasks one by one)."""
    text = runner(["squeue", "-h", "-r", "-o", "%i %T", "-j", ",".join(job_ids)], timeout=30)
    return dict(line.split(None, 1) for line in text.splitlines() if line.strip())


def ended_states(job_id: str, runner=run_slurm) -> dict[str, str]:
    """sacct's state of each task of ``job_id`` that left the queue."""
    text = runner(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", job_id], timeout=30)
    out = {}
    for line in text.splitlines():
        if "|" in line:
            jid, state = line.split("|", 1)
            out[jid.strip()] = state.split()[0] if state.strip() else ""
    return out


def wait(
    out: Path,
    grid: Grid,
    sub: Submitted,
    *,
    poll_s: float = 2.0,
    timeout_s: float | None = None,
    progress: Callable[[str], None] | None = None,
    runner=run_slurm,
) -> str:
    """Wait until the merge job has left the queue; its final state from sacct."""
    t0 = time.monotonic()
    ids = [i for i in (sub.array_id, sub.merge_id) if i]
    total = len(grid.cells())
    while True:
        queued = queue_states(ids, runner)
        done = sum(not missing_seeds(out, grid, c) for c in grid.cells())
        if progress:
            tasks = Counter(state for jid, state in queued.items() if jid != sub.merge_id)
            ended = ended_states(sub.array_id, runner) if sub.array_id else {}
            bad = Counter(
                s
                for jid, s in ended.items()
                if "_" in jid and s not in ACTIVE_STATES and s != "COMPLETED"
            )
            line = f"cells done {done}/{total}"
            if sub.array_id:
                line += f"; array {sub.array_id}: " + (
                    ", ".join(f"{n} {s.lower()}" for s, n in sorted(tasks.items()))
                    or "no task in the queue"
                )
            if bad:
                line += "; ended " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(bad.items()))
            merge_state = queued.get(sub.merge_id)
            line += f"; merge {sub.merge_id} {(merge_state or 'ended').lower()}"
            progress(f"{line}  {time.monotonic() - t0:.0f}s")
        if sub.merge_id not in queued:
            break
        if timeout_s is not None and time.monotonic() - t0 > timeout_s:
            raise SlurmError(
                f"sweep jobs {', '.join(ids)} still in the queue after "
                f"{timeout_s:.0f}s; they go on running: rerun with --no-wait "
                "or wait for them"
            )
        time.sleep(poll_s)
    # sacct may need a moment to record the end after squeue lets go of the job.
    for _ in range(10):
        state = ended_states(sub.merge_id, runner).get(sub.merge_id, "")
        if state and state not in ACTIVE_STATES:
            return state
        time.sleep(1)
    return state or "UNKNOWN"
