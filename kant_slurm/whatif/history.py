"""The inputs of ``kant-slurm whatif``: a cluster's job history and its shape.

History: the live cluster's ``sacct`` over a window (read in chunks, as ``kant-slurm report``
reads it, and saved as a ``sacct -P`` dump so the run can be repeated offline with
``--input``), or a saved dump. Shape: the live cluster's nodes, GRES, partitions and switch
tree (the snapshot reader) and ``scontrol show config``'s SchedulerParameters, or a site's
slurm.conf (+ gres.conf, topology.conf beside it) and its SchedulerParameters line.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from ..errors import InputError
from . import schedparams

log = logging.getLogger(__name__)


def dump_live_history(since: float, until: float, path: Path, chunk_s: float = 86_400.0) -> int:
    """Write sacct's allocations in [since, until) to ``path`` as a ``sacct -P`` dump with its
    header (epoch times); the number of lines written."""
    from ..slurm import accounting as acct
    from ..slurm.backend import run_slurm

    lines: list[str] = []
    with acct._epoch_times():
        for a, b in acct.chunk_bounds(since, until, chunk_s):
            text = run_slurm(acct.sacct_argv(a, b), timeout=600.0)
            lines += [line for line in text.splitlines() if line.strip()]
    # A run crossing a chunk edge is printed in both chunks: keep its first line.
    seen: set[tuple[str, str, str]] = set()
    unique = []
    fields = acct.SACCT_FIELDS
    i_raw, i_sub, i_start = (fields.index(f) for f in ("JobIDRaw", "Submit", "Start"))
    for line in lines:
        parts = line.split("|")
        key = (
            (parts[i_raw], parts[i_sub], parts[i_start])
            if len(parts) >= len(fields)
            else (line, "", "")
        )
        if key not in seen:
            seen.add(key)
            unique.append(line)
    path.write_text("|".join(fields) + "\n" + "".join(x + "\n" for x in unique), encoding="utf-8")
    return len(unique)


def read_history(path: str, since: float | None = None, until: float | None = None):
    """The trace of a sacct dump, restricted to jobs submitted in [since, until) when given."""
    from ..formats.traces import read_trace

    trace = read_trace(path, "sacct")
    if (since is not None or until is not None) and trace.epoch is not None:
        absolute = trace.epoch.timestamp() + trace.jobs["submit_time"].to_numpy(dtype=float)
        keep = np.ones(len(absolute), dtype=bool)
        if since is not None:
            keep &= absolute >= since
        if until is not None:
            keep &= absolute < until
        trace.jobs = trace.jobs[keep].reset_index(drop=True)
        if not len(trace.jobs):
            raise InputError(
                f"{path}: no job submitted in the window; expected a window "
                "(-S/-E) that holds jobs of the dump"
            )
    return trace


def scheduler_parameters_of_conf(path: str) -> schedparams.SchedulerParameters:
    """SchedulerParameters of a slurm.conf (the last line that sets it, as slurmctld reads)."""
    from ..formats.slurm_conf import conf_lines, conf_pairs

    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    value, where = "", path
    for no, line in conf_lines(text, path):
        for key, v in conf_pairs(line):
            if key == "schedulerparameters":
                value, where = v, f"{path}:{no}"
    try:
        return schedparams.parse_scheduler_parameters(value, where)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def scheduler_parameters_live() -> schedparams.SchedulerParameters:
    """SchedulerParameters as the running slurmctld has them (``scontrol show config``)."""
    from ..slurm.backend import run_slurm

    text = run_slurm(["scontrol", "show", "config"], timeout=30)
    m = re.search(r"^SchedulerParameters\s*=\s*(.*)$", text, re.MULTILINE)
    try:
        return schedparams.parse_scheduler_parameters(
            m.group(1) if m else "", "scontrol show config: SchedulerParameters"
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None


def cluster_shape(slurm_conf: str | None = None, cluster_yaml: str | None = None):
    """(cluster spec, SchedulerParameters, where they came from): a slurm.conf, a cluster
    spec YAML (Slurm's default SchedulerParameters), else the live cluster."""
    from ..sim.cluster import load_cluster_spec, spec_from_inventory

    if slurm_conf:
        from ..formats.slurm_conf import read_slurm_conf

        spec = spec_from_inventory(
            read_slurm_conf(slurm_conf), name=Path(slurm_conf).name, source=slurm_conf
        )
        return spec, scheduler_parameters_of_conf(slurm_conf), slurm_conf
    if cluster_yaml:
        return load_cluster_spec(cluster_yaml), schedparams.SchedulerParameters({}), cluster_yaml
    from ..slurm import read_snapshot

    snapshot = read_snapshot()
    spec = spec_from_inventory(snapshot.inventory, name="live cluster", source="live")
    return spec, scheduler_parameters_live(), "the live cluster (scontrol, sinfo)"
