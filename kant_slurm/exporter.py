"""Prometheus metrics of the live cluster and of kant's last scheduling cycle.

Each scrape (or each textfile write) reads a fresh snapshot through
:func:`kant_slurm.slurm.read_snapshot` and the actuator's state file; nothing is cached between
scrapes, so a value is never older than the scrape. When Slurm does not answer, only
``kant_slurm_up 0``, the build info and the cycle figures are exported (a gauge that froze at
its last value would hide the outage).

Every metric is declared once in :data:`METRICS` (name as exposed, type, help, labels); the
names follow Prometheus conventions (``promtool check metrics`` passes on the output, a unit
test runs it): ratios end in ``_ratio``, the one counter in ``_total``, times in ``_seconds``.
The Grafana dashboard in ``site-config/grafana`` and the alert rules in
``site-config/prometheus`` use only these names.

The last cycle: the state file (``actuator.state_file``) holds ``cycle`` (cycles that applied
changes) and ``updated_at``; when it also holds a ``last_cycle`` object (``duration_s``,
``applied`` or ``changes`` — a count or a list —, ``failed``, ``at``), those are exported as the
last cycle's duration, applied and failed changes and end time. No state file is what a fresh
install looks like (kant has not steered yet): ``kant_slurm_state_file_ok`` stays 1 and the
cycle figures are left out. A state file that exists but cannot be read or parsed sets it to 0.
"""

from __future__ import annotations

import errno
import json
import logging
import platform
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from . import __version__
from .errors import InputError, SlurmError
from .metrics.instant import gar, gfr, stranded_gpu_share, stranded_gpu_share_leaf, whole_free_nodes
from .model import ClusterSnapshot
from .formats.tags import WORKLOADS

log = logging.getLogger(__name__)

PREFIX = "kant_slurm_"
DEFAULT_PORT = 9810
"""Port of ``kant-slurm exporter`` when neither --port nor --textfile is given."""
DEFAULT_ADDRESS = "127.0.0.1"
"""Loopback by default: the metrics name accounts and partitions, so exposing them on every
interface is the operator's explicit choice (``--address 0.0.0.0``)."""


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric family: its type, help text and label names."""

    kind: str  # "gauge" or "counter"
    help: str
    labels: tuple[str, ...] = ()


METRICS: dict[str, MetricSpec] = {
    # Family names without the prefix; a counter is exposed as <name>_total.
    "build_info": MetricSpec(
        "gauge",
        "always 1; the labels say which kant-slurm and Python serve the metrics",
        ("version", "python_version"),
    ),
    "up": MetricSpec("gauge", "1 when Slurm answered this scrape, else 0"),
    "gpus": MetricSpec("gauge", "GPUs on schedulable GPU nodes"),
    "gpus_allocated": MetricSpec("gauge", "GPUs allocated on schedulable GPU nodes"),
    "gpu_allocation_ratio": MetricSpec("gauge", "GAR: allocated / schedulable GPUs (0-1)"),
    "gpu_fragmentation_ratio": MetricSpec(
        "gauge", "GFR: share of schedulable GPU nodes that are partly allocated (0-1)"
    ),
    "stranded_gpu_ratio": MetricSpec(
        "gauge", "free GPUs on partly used nodes / all free GPUs (0-1)"
    ),
    "stranded_gpu_leaf_ratio": MetricSpec(
        "gauge", "free GPUs in partly used leaf groups / all free GPUs (0-1)"
    ),
    "stranded_gpus": MetricSpec("gauge", "free GPUs on partly used nodes"),
    "free_whole_nodes": MetricSpec("gauge", "schedulable GPU nodes with nothing allocated"),
    "leaf_free_whole_nodes": MetricSpec(
        "gauge", "whole free GPU nodes per leaf group", ("leaf_group",)
    ),
    "leaf_gpus": MetricSpec(
        "gauge", "GPUs on schedulable GPU nodes per leaf group", ("leaf_group",)
    ),
    "leaf_gpus_allocated": MetricSpec("gauge", "GPUs allocated per leaf group", ("leaf_group",)),
    "running_jobs": MetricSpec("gauge", "running jobs"),
    "pending_jobs": MetricSpec("gauge", "pending jobs by class", ("job_class",)),
    "pending_gpus": MetricSpec("gauge", "GPUs asked for by pending jobs, by class", ("job_class",)),
    "state_file_ok": MetricSpec(
        "gauge",
        "0 when kant's state file exists but cannot be read "
        "or parsed, else 1 (no file yet is fine: kant has not steered)",
    ),
    "steer_cycles": MetricSpec("counter", "scheduling cycles that applied changes (state file)"),
    "state_updated_timestamp_seconds": MetricSpec(
        "gauge", "when the state file was last written (Unix time)"
    ),
    "marks": MetricSpec("gauge", "values kant has set in Slurm, by kind", ("kind",)),
    "last_cycle_duration_seconds": MetricSpec("gauge", "duration of the last scheduling cycle"),
    "last_cycle_applied_changes": MetricSpec(
        "gauge", "Slurm changes the last scheduling cycle applied"
    ),
    "last_cycle_failed_changes": MetricSpec(
        "gauge",
        "Slurm changes the last scheduling cycle tried and failed (a partial apply when > 0)",
    ),
    "last_cycle_timestamp_seconds": MetricSpec(
        "gauge", "when the last scheduling cycle ended (Unix time)"
    ),
    "scrape_duration_seconds": MetricSpec("gauge", "time this scrape took"),
}

METRIC_NAMES = tuple(
    PREFIX + n + ("_total" if spec.kind == "counter" else "") for n, spec in METRICS.items()
)
"""Every metric name as it appears in the exposition (counters with their ``_total``)."""


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
        leaves[name] = {
            "free_whole_nodes": int(free_whole[mask].sum()),
            "gpus_total": int(total[mask].sum()),
            "gpus_allocated": int(alloc[mask].sum()),
        }
    if (leaf_idx < 0).any():
        mask = leaf_idx < 0
        leaves["(no switch)"] = {
            "free_whole_nodes": int(free_whole[mask].sum()),
            "gpus_total": int(total[mask].sum()),
            "gpus_allocated": int(alloc[mask].sum()),
        }
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
    """What the actuator's state file says about its cycles (pure apart from reading the file).

    Keys are :data:`METRICS` names without the prefix.
    """
    if state_path is None:
        return {"state_file_ok": None}
    p = Path(state_path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        # A fresh install: nothing is wrong, there is just nothing to report yet.
        log.info("no state file at %s: kant has not steered yet", p)
        return {"state_file_ok": 1}
    except (OSError, ValueError) as exc:
        log.warning("state file %s unreadable: %s", p, exc)
        return {"state_file_ok": 0}
    if not isinstance(data, dict):
        log.warning("state file %s: expected a JSON object", p)
        return {"state_file_ok": 0}
    out: dict[str, Any] = {"state_file_ok": 1}
    if isinstance(data.get("cycle"), int) and not isinstance(data["cycle"], bool):
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
        applied = _count(last.get("applied", last.get("changes")))
        if applied is not None:
            out["last_cycle_applied_changes"] = applied
        failed = _count(last.get("failed"))
        if failed is not None:
            out["last_cycle_failed_changes"] = failed
        at = last.get("at", last.get("finished_at"))
        if isinstance(at, (int, float)):
            out["last_cycle_timestamp_seconds"] = float(at)
    return out


_Family = CounterMetricFamily | GaugeMetricFamily


def _family(name: str, value: float | None = None) -> _Family:
    """An empty family of METRICS[name] (with ``value`` as its one unlabelled sample)."""
    spec = METRICS[name]
    fam: _Family
    if spec.kind == "counter":
        fam = CounterMetricFamily(PREFIX + name, spec.help, labels=list(spec.labels))
    else:
        fam = GaugeMetricFamily(PREFIX + name, spec.help, labels=list(spec.labels))
    if value is not None:
        fam.add_metric([], float(value))
    return fam


def _labelled(name: str, values: dict[str, float]) -> _Family:
    """A one-label family of METRICS[name], one sample per key (sorted, for stable output)."""
    fam = _family(name)
    for label in sorted(values):
        fam.add_metric([label], float(values[label]))
    return fam


class KantCollector(Collector):
    """Reads Slurm and the state file at every collect()."""

    def __init__(self, read: Callable[[], ClusterSnapshot], state_path: str | Path | None):
        self._read = read
        self._state_path = state_path

    def describe(self):
        # An empty description keeps registration from calling collect() (and Slurm).
        return []

    def collect(self) -> Iterator[Metric]:
        t0 = time.monotonic()
        build = _family("build_info")
        build.add_metric([__version__, platform.python_version()], 1.0)
        yield build
        try:
            live = snapshot_metrics(self._read())
            up = 1
        except SlurmError as exc:
            log.warning("Slurm read failed: %s", exc)
            live, up = None, 0
        yield _family("up", up)
        if live is not None:
            leaves = live["leaves"]
            yield _family("gpus", live["gpus_total"])
            yield _family("gpus_allocated", live["gpus_allocated"])
            yield _family("gpu_allocation_ratio", live["gar"])
            yield _family("gpu_fragmentation_ratio", live["gfr"])
            yield _family("stranded_gpu_ratio", live["stranded_gpu_share"])
            yield _family("stranded_gpu_leaf_ratio", live["stranded_gpu_share_leaf"])
            yield _family("stranded_gpus", live["stranded_gpus"])
            yield _family("free_whole_nodes", live["free_whole_nodes"])
            yield _labelled(
                "leaf_free_whole_nodes", {n: leaf["free_whole_nodes"] for n, leaf in leaves.items()}
            )
            yield _labelled("leaf_gpus", {n: leaf["gpus_total"] for n, leaf in leaves.items()})
            yield _labelled(
                "leaf_gpus_allocated", {n: leaf["gpus_allocated"] for n, leaf in leaves.items()}
            )
            yield _family("running_jobs", live["running_jobs"])
            yield _labelled("pending_jobs", live["pending_jobs"])
            yield _labelled("pending_gpus", live["pending_gpus"])
        cyc = cycle_metrics(self._state_path)
        if cyc.get("state_file_ok") is not None:
            yield _family("state_file_ok", cyc["state_file_ok"])
        for key in (
            "steer_cycles",
            "state_updated_timestamp_seconds",
            "last_cycle_duration_seconds",
            "last_cycle_applied_changes",
            "last_cycle_failed_changes",
            "last_cycle_timestamp_seconds",
        ):
            if key in cyc:
                yield _family(key, cyc[key])
        if "marks" in cyc:
            yield _labelled("marks", cyc["marks"])
        yield _family("scrape_duration_seconds", time.monotonic() - t0)


def make_registry(
    read: Callable[[], ClusterSnapshot], state_path: str | Path | None
) -> CollectorRegistry:
    """A registry holding only kant's collector (no process/platform collectors)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(KantCollector(read, state_path))
    return registry


def write_textfile(path: str | Path, registry: CollectorRegistry) -> None:
    """Write the metrics for node_exporter's textfile collector (atomically: temp + rename).

    A directory that does not exist or cannot be written is an :class:`InputError` naming it.
    """
    from prometheus_client import write_to_textfile

    p = Path(path)
    parent = p.parent
    # Checked before reading Slurm: a typo in a cron line should not cost a cluster read.
    if not parent.is_dir():
        raise InputError(
            f"--textfile {p}: directory {parent} does not exist; expected an "
            "existing directory (node_exporter's --collector.textfile.directory)"
        )
    if p.is_dir():
        raise InputError(
            f"--textfile {p}: is a directory; expected a file name, e.g. {p / 'kant.prom'}"
        )
    try:
        write_to_textfile(str(p), registry)
    except OSError as exc:
        raise InputError(
            f"--textfile {p}: cannot write: {exc.strerror or exc}; expected a "
            f"file in a directory this user may write"
        ) from None


def _bind_error(address: str, port: int, exc: OSError) -> InputError:
    """The one-line error for an HTTP endpoint that could not be opened."""
    where = f"{address}:{port}" if ":" not in address else f"[{address}]:{port}"
    if isinstance(exc, socket.gaierror):
        return InputError(
            f"--address {address!r}: not an IP address or a host name that "
            "resolves; expected e.g. 127.0.0.1, 0.0.0.0, ::1 or this host's name"
        )
    if exc.errno == errno.EADDRINUSE:
        return InputError(
            f"cannot listen on {where}: port {port} is already in use (another "
            "exporter?); stop it or choose another --port"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return InputError(
            f"--address {address!r}: not an address of this machine; expected "
            "one of its interfaces' addresses, 127.0.0.1 or 0.0.0.0"
        )
    if exc.errno == errno.EACCES:
        return InputError(
            f"cannot listen on {where}: permission denied; ports below 1024 "
            "need root, expected a --port of 1024 or more"
        )
    return InputError(f"cannot listen on {where}: {exc.strerror or exc}")


def serve(port: int, registry: CollectorRegistry, addr: str = DEFAULT_ADDRESS):
    """Start the HTTP endpoint in a thread; returns (server, thread) (``server.shutdown()``).

    An address that does not resolve or is not this machine's, and a port in use, are an
    :class:`InputError` naming them.
    """
    from prometheus_client import start_http_server

    try:
        return start_http_server(port, addr=addr, registry=registry)
    except OSError as exc:  # socket.gaierror is an OSError too
        raise _bind_error(addr, port, exc) from None
