"""The only code that runs Slurm commands or imports pyslurm (shared/DESIGN.md, "Layout").

``read_snapshot()`` reads the live cluster (SLURM_CONF decides which) into a frozen
:class:`kant_slurm.model.ClusterSnapshot`. The parsers are pure and live in
:mod:`kant_slurm.formats`; the backends run the commands (:mod:`.backend`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from ..errors import SlurmUnreachable
from ..model import ClusterSnapshot, Job
from .backend import CliBackend, SlurmReader, check_controller, select_backend
from ..formats.snapshot import build_snapshot

log = logging.getLogger(__name__)

__all__ = ["read_snapshot", "select_backend", "CliBackend", "SlurmReader"]


def read_snapshot(
    classify: Callable[[Job], Job] | None = None, backend: SlurmReader | None = None
) -> ClusterSnapshot:
    """Read nodes, partitions, switch tree, running/pending jobs and advance reservations into
    one snapshot.

    ``classify`` (Job -> Job) is applied to every job after the kant tag is read, so the
    engine's rules see Slurm's data. Raises SlurmUnreachable when slurmctld does not answer.
    """
    conf = os.environ.get("SLURM_CONF")
    if conf and not os.path.isfile(conf):
        # Slurm commands would hang on DNS lookups for a config server instead of failing.
        raise SlurmUnreachable(f"SLURM_CONF={conf} does not exist: no Slurm cluster to read")
    if backend is None:
        check_controller()  # a stopped slurmctld fails here at once, not after MessageTimeout
    reader = backend or select_backend()
    taken_at = time.time()
    nodes = reader.nodes()
    partitions = reader.partitions()
    topology = reader.topology([n.name for n in nodes])
    jobs = reader.jobs()
    reservations = reader.reservations()
    snap = build_snapshot(
        nodes,
        partitions,
        topology,
        jobs,
        taken_at=taken_at,
        source=reader.name,
        classify=classify,
        reservations=reservations,
    )
    log.debug("read %d nodes and %d jobs via %s", len(nodes), len(jobs), reader.name)
    return snap
