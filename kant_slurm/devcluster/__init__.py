"""The dev cluster: a real Slurm GPU cluster on one machine (``kant-slurm devcluster``), and the
replay of a trace on a live cluster (``kant-slurm replay``).

These are tools around Slurm, not part of the path from Slurm's state to kant's changes
(:mod:`kant_slurm.slurm`), so they live apart from it:

- :mod:`.spec`: the cluster's shape (:class:`DevClusterSpec`), directory
  (:class:`DevClusterPaths`) and rendered config files
- :mod:`.cluster`: ``up``, ``down`` and ``status``: the daemons in order
- :mod:`.daemons`: starting each daemon (munged, MariaDB, slurmdbd, slurmctld, slurmds)
- :mod:`.processes`: the cluster's PID namespace, spawning and reaping its processes
- :mod:`.packages`: the Debian packages 22.05 runs from on this machine
- :mod:`.chroot`: the cached Debian roots 24.11 and 26.05 run from
- :mod:`.replay`: a trace as ``sleep`` jobs on the live cluster, read back from sacct

The names below are the dev cluster's API (what the CLI and the tests call).
"""

from __future__ import annotations

from .cluster import (
    DEV_QOS,
    DevClusterStatus,
    down,
    ensure_qos,
    node_states,
    status,
    up,
    write_plugstack,
)
from .packages import DEBIAN_PACKAGES, ensure_packages, missing_packages
from .processes import client_argv, running_processes
from .spec import (
    DEFAULT_PORT_BASE,
    DIR_ENV,
    PORT_BASE_ENV,
    DevClusterPaths,
    DevClusterSpec,
    default_dir,
    default_port_base,
    render_configs,
)

__all__ = [
    "DEBIAN_PACKAGES",
    "DEFAULT_PORT_BASE",
    "DEV_QOS",
    "DIR_ENV",
    "PORT_BASE_ENV",
    "DevClusterPaths",
    "DevClusterSpec",
    "DevClusterStatus",
    "client_argv",
    "default_dir",
    "default_port_base",
    "down",
    "ensure_packages",
    "ensure_qos",
    "missing_packages",
    "node_states",
    "render_configs",
    "running_processes",
    "status",
    "up",
    "write_plugstack",
]
