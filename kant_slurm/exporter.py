"""Prometheus metrics of the live cluster and of kant's last scheduling cycle.

Each scrape (or each textfile write) reads a fresh snapshot through
:func:`kant_slurm.slurm.read_snapshot` and the actuator's state file; nothing is cached between
scrapes, so a value is never older than the scrape. When Slurm does not answer, only
``kant_slurm_up 0`` and the cycle figures are exported (a gauge that froze at its last value
would hide the outage).

Metric names (every one is a gauge; the Grafana dashboard in ``site-config/grafana`` uses them):
:data:`METRIC_NAMES`.

The last cycle: the state file (``actuator.state_file``) holds ``cycle`` (cycles that applied
changes) and ``updated_at``; when it also holds a ``last_cycle`` object (``duration_s``,
``applied`` or ``changes`` — a count or a list —, ``at``), those are exported as the last
cycle's duration and changes. A state file that is missing or unreadable leaves those metrics
out and sets ``kant_slurm_state_file_ok 0``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from .errors import SlurmError
from .metrics.instant import gar, gfr, stranded_gpu_share, stranded_gpu_share_leaf, whole_free_nodes
from .model import ClusterSnapshot
from .slurm.tags import WORKLOADS

log = logging.getLogger(__name__)

PREFIX = "kant_slurm_"
METRIC_NAMES = tuple(PREFIX + n for n in (
    "up", "scrape_duration_seconds", "gpus_total", "gpus_allocated", "gar", "gfr",
    "stranded_gpu_share", "stranded_gpu_share_leaf", "stranded_gpus", "free_whole_nodes",
    "leaf_free_whole_nodes", "leaf_gpus_total", "leaf_gpus_allocated", "running_jobs",
    "pending_jobs", "pending_gpus", "state_file_ok", "steer_cycles", "state_updated_timestamp_seconds",
    "marks", "last_cycle_duration_seconds", "last_cycle_changes", "last_cycle_timestamp_seconds",
))


def snapshot_metrics(snap: ClusterSnapshot) -> dict[str, Any]:
    """The live figures of one snapshot as plain numbers (pure; the collector wraps them)."""
    inv = snap.inventory
    total = np.asarray(inv.gpus_total)
    alloc = np.asarray(snap.gpus_alloc)
    sched = np.asarray(snap.schedulable)
    gpu_node = sched & (total > 0)
    free_whole = whole_free_nodes(alloc, total, sched)
    leaf_idx = np.asarray(inv.leaf_index)
    leaves = {}
    names = list(inv.leaf_names)
    for g, name in enumerate(names):
        mask = leaf_idx == g
        leaves[name] = {"free_whole_nodes": int(free_whole[mask].sum()),
                        "gpus_total": int(total[mask].sum()),
                        "gpus_allocated": int(alloc[mask].sum())}
    if (leaf_idx < 0).any():
        mask = leaf_idx < 0
        leaves["(no switch)"] = {"free_whole_nodes": int(free_whole[mask].sum()),
                                 "gpus_total": int(total[mask].sum()),
                                 "gpus_allocated": int(alloc[mask].sum())}
    partly = gpu_node & (alloc > 0) & (alloc < total)
    pending_jobs = {c: 0 for c in WORKLOADS}
    pending_gpus = {c: 0 for c in WORKLOADS}
    for job in snap.queued:
        pending_jobs[job.job_class] = pending_jobs.get(job.job_class, 0) + 1
        pending_gpus[job.job_class] = pending_gpus.get(job.job_class, 0) + job.gpus
    return {
        "gpus_total": int(total[gpu_node].sum()),
        "gpus_allocated": int(alloc[gpu_node].sum()),
        "gar": gar(alloc, total, sched),
        "gfr": gfr(alloc, total, sched),
        "stranded_gpu_share": stranded_gpu_share(alloc, total, sched),
        "stranded_gpu_share_leaf": stranded_gpu_share_leaf(alloc, total, leaf_idx, sched),
        "stranded_gpus": int((total - alloc)[partly].sum()),
        "free_whole_nodes": int(free_whole.sum()),
        "leaves": leaves,
        "running_jobs": len(snap.running),
        "pending_jobs": pending_jobs,
        "pending_gpus": pending_gpus,
    }


def _count(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return float(len(value))
    return None


def cycle_metrics(state_path: str | Path | None) -> dict[str, Any]:
    """What the actuator's state file says about its cycles (pure apart from reading the file)."""
    if state_path is None:
        return {"state_file_ok": None}
    p = Path(state_path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        log.info("no state file at %s: kant has not steered yet", p)
        return {"state_file_ok": 0}
    except (OSError, ValueError) as exc:
        log.warning("state file %s unreadable: %s", p, exc)
        return {"state_file_ok": 0}
    if not isinstance(data, dict):
        return {"state_file_ok": 0}
    out: dict[str, Any] = {"state_file_ok": 1}
    if isinstance(data.get("cycle"), int):
        out["steer_cycles"] = data["cycle"]
    if isinstance(data.get("updated_at"), (int, float)):
        out["state_updated_timestamp_seconds"] = float(data["updated_at"])
    marks = data.get("marks")
    if isinstance(marks, dict):
        out["marks"] = {k: len(v) for k, v in marks.items() if isinstance(v, dict)}
    last = data.get("last_cycle")
    if isinstance(last, dict):
        if isinstance(last.get("duration_s"), (int, float)):
            out["last_cycle_duration_seconds"] = float(last["duration_s"])
        changes = _count(last.get("applied", last.get("changes")))
        if changes is not None:
            out["last_cycle_changes"] = changes
        at = last.get("at", last.get("finished_at"))
        if isinstance(at, (int, float)):
            out["last_cycle_timestamp_seconds"] = float(at)
    return out


class KantCollector(Collector):
    """Reads Slurm and the state file at every collect()."""

    def __init__(self, read: Callable[[], ClusterSnapshot], state_path: str | Path | None):
        self._read = read
        self._state_path = state_path

    def describe(self):
        # An empty description keeps registration from calling collect() (and Slurm).
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        t0 = time.monotonic()
        try:
            live = snapshot_metrics(self._read())
            up = 1
        except SlurmError as exc:
            log.warning("Slurm read failed: %s", exc)
            live, up = None, 0

        def gauge(name: str, doc: str, value=None, labels=()):
            g = GaugeMetricFamily(PREFIX + name, doc, labels=list(labels))
            if value is not None:
                g.add_metric([], float(value))
            return g

        yield gauge("up", "1 when Slurm answered this scrape, else 0", up)
        if live is not None:
            yield gauge("gpus_total", "GPUs on schedulable GPU nodes", live["gpus_total"])
            yield gauge("gpus_allocated", "GPUs allocated on schedulable GPU nodes",
                        live["gpus_allocated"])
            yield gauge("gar", "GPU allocation ratio: allocated / schedulable GPUs", live["gar"])
            yield gauge("gfr", "GPU node fragmentation ratio: share of schedulable GPU nodes "
                               "partly allocated", live["gfr"])
            yield gauge("stranded_gpu_share", "free GPUs on partly used nodes / all free GPUs",
                        live["stranded_gpu_share"])
            yield gauge("stranded_gpu_share_leaf", "free GPUs in partly used leaf groups / all "
                        "free GPUs", live["stranded_gpu_share_leaf"])
            yield gauge("stranded_gpus", "free GPUs on partly used nodes", live["stranded_gpus"])
            yield gauge("free_whole_nodes", "schedulable GPU nodes with nothing allocated",
                        live["free_whole_nodes"])
            fw = GaugeMetricFamily(PREFIX + "leaf_free_whole_nodes",
                                   "whole free GPU nodes per leaf group", labels=["leaf_group"])
            gt = GaugeMetricFamily(PREFIX + "leaf_gpus_total", "GPUs per leaf group",
                                   labels=["leaf_group"])
            ga = GaugeMetricFamily(PREFIX + "leaf_gpus_allocated",
                                   "GPUs allocated per leaf group", labels=["leaf_group"])
            for name, leaf in live["leaves"].items():
                fw.add_metric([name], leaf["free_whole_nodes"])
                gt.add_metric([name], leaf["gpus_total"])
                ga.add_metric([name], leaf["gpus_allocated"])
            yield fw
            yield gt
            yield ga
            yield gauge("running_jobs", "running jobs", live["running_jobs"])
            pj = GaugeMetricFamily(PREFIX + "pending_jobs", "pending jobs by class",
                                   labels=["job_class"])
            pg = GaugeMetricFamily(PREFIX + "pending_gpus", "GPUs asked for by pending jobs, "
                                   "by class", labels=["job_class"])
            for cls in sorted(live["pending_jobs"]):
                pj.add_metric([cls], live["pending_jobs"][cls])
                pg.add_metric([cls], live["pending_gpus"][cls])
            yield pj
            yield pg
        cyc = cycle_metrics(self._state_path)
        if cyc.get("state_file_ok") is not None:
            yield gauge("state_file_ok", "1 when kant's state file was read, else 0",
                        cyc["state_file_ok"])
        for key, doc in (
            ("steer_cycles", "scheduling cycles that applied changes (state file)"),
            ("state_updated_timestamp_seconds", "when the state file was last written"),
            ("last_cycle_duration_seconds", "duration of the last scheduling cycle"),
            ("last_cycle_changes", "Slurm changes applied by the last scheduling cycle"),
            ("last_cycle_timestamp_seconds", "when the last scheduling cycle ended"),
        ):
            if key in cyc:
                yield gauge(key, doc, cyc[key])
        if "marks" in cyc:
            m = GaugeMetricFamily(PREFIX + "marks", "values kant has set in Slurm, by kind",
                                  labels=["kind"])
            for kind, n in sorted(cyc["marks"].items()):
                m.add_metric([kind], n)
            yield m
        yield gauge("scrape_duration_seconds", "time this scrape took",
                    time.monotonic() - t0)


def make_registry(read: Callable[[], ClusterSnapshot],
                  state_path: str | Path | None) -> CollectorRegistry:
    """A registry holding only kant's collector (no process/platform collectors)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(KantCollector(read, state_path))
    return registry


def write_textfile(path: str | Path, registry: CollectorRegistry) -> None:
    """Write the metrics for node_exporter's textfile collector (atomically: temp + rename)."""
    from prometheus_client import write_to_textfile

    write_to_textfile(str(path), registry)


def serve(port: int, registry: CollectorRegistry, addr: str = "0.0.0.0"):
    """Start the HTTP endpoint in a thread; returns (server, thread) (``server.shutdown()``)."""
    from prometheus_client import start_http_server

    return start_http_server(port, addr=addr, registry=registry)
