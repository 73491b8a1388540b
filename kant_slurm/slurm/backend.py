"""Backends that read a live Slurm: the CLI one (default) and pyslurm when it matches Slurm.

Both answer the same five questions (nodes, partitions, topology, jobs, advance
reservations); the pure parsers of :mod:`kant_slurm.formats` turn answers into the model. Only
this module and the dev cluster run Slurm commands.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from ..errors import SlurmError, SlurmUnreachable
from ..model import Job, Partition, Reservation, Topology
from ..formats import slurm_jobs, slurm_nodes

log = logging.getLogger(__name__)

# Phrases with which Slurm commands say the controller does not answer.
_UNREACHABLE = re.compile(
    r"Unable to contact slurm controller|Connection refused|Socket timed out|"
    r"Zero Bytes were transmitted|Could not establish a configuration source|"
    r"Unable to establish controller|Communication connection failure|"
    r"Could not open .*slurm\.conf|Unable to process configuration file",
    re.I,
)


class SlurmReader(Protocol):
    """What a backend answers."""

    name: str

    def nodes(self) -> list[slurm_nodes.NodeRecord]: ...

    def partitions(self) -> list[Partition]: ...

    def topology(self, node_order: Sequence[str]) -> Topology: ...

    def jobs(self) -> list[Job]: ...

    def reservations(self) -> list[Reservation]: ...


def run_slurm(argv: Sequence[str], timeout: float = 30.0) -> str:
    """Run one Slurm command; stdout on success. Controller down -> SlurmUnreachable."""
    try:
        res = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        raise SlurmUnreachable(
            f"{argv[0]}: command not found; install slurm-client or run `kant-slurm devcluster up`"
        ) from None
    except subprocess.TimeoutExpired:
        raise SlurmUnreachable(
            f"`{' '.join(argv[:3])}` got no answer within {timeout:.0f}s"
        ) from None
    if res.returncode != 0:
        err = " ".join(res.stderr.strip().splitlines()[-2:]) or f"exit code {res.returncode}"
        conf = os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")
        if _UNREACHABLE.search(res.stderr):
            raise SlurmUnreachable(
                f"slurmctld does not answer `{' '.join(argv[:3])}` (SLURM_CONF={conf}): {err}"
            )
        raise SlurmError(f"`{' '.join(argv)}` failed: {err}")
    return res.stdout


_PING_UP = re.compile(r"\bis UP\b")
_PING_DOWN = re.compile(r"^Slurmctld\(\w+\) at \S+ is DOWN", re.M)


def check_controller(timeout: float = 30.0) -> None:
    """Raise SlurmUnreachable at once when no slurmctld answers ``scontrol ping``.

    sinfo, squeue and scontrol's reads retry a refused connection for MessageTimeout seconds
    (19 s on the dev cluster) before they say "Unable to contact slurm controller"; ``scontrol
    ping`` asks each controller once, so a stopped controller is known in milliseconds. A
    controller that takes the connection and does not answer still costs MessageTimeout, as
    with Slurm's own commands. Output in another form than "... is UP/DOWN" leaves the verdict
    to the reads that follow.
    """
    try:
        res = subprocess.run(
            ["scontrol", "ping"],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise SlurmUnreachable(
            "scontrol: command not found; install slurm-client or run `kant-slurm devcluster up`"
        ) from None
    except subprocess.TimeoutExpired:
        raise SlurmUnreachable(f"`scontrol ping` got no answer within {timeout:.0f}s") from None
    if _PING_UP.search(res.stdout):
        return
    conf = os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")
    down = _PING_DOWN.findall(res.stdout)
    if down:
        raise SlurmUnreachable(
            f"slurmctld does not answer `scontrol ping` (SLURM_CONF={conf}): Unable to contact "
            f"slurm controller ({'; '.join(down)})"
        )
    if res.returncode != 0 and _UNREACHABLE.search(res.stderr):
        err = " ".join(res.stderr.strip().splitlines()[-2:])
        raise SlurmUnreachable(
            f"slurmctld does not answer `scontrol ping` (SLURM_CONF={conf}): {err}"
        )


def _json(argv: Sequence[str]) -> dict:
    out = run_slurm(argv)
    try:
        data = json.loads(out)
    except ValueError as exc:
        raise SlurmError(f"`{' '.join(argv)}`: reply is not JSON ({exc})") from None
    errors = data.get("errors") or []
    if errors:
        raise SlurmError(f"`{' '.join(argv)}` reported: {errors[0]}")
    return data


class CliBackend:
    """Reads Slurm through its commands: JSON where 22.05 has it, one-line text elsewhere."""

    name = "slurm-cli"

    def nodes(self) -> list[slurm_nodes.NodeRecord]:
        # scontrol is one record per line and has every field on all versions; sinfo --json
        # changed its top-level shape after 22.05, so it is only the fallback.
        try:
            return slurm_nodes.parse_nodes_scontrol(
                run_slurm(["scontrol", "show", "node", "-o", "-d"])
            )
        except SlurmUnreachable:
            raise
        except SlurmError as exc:
            log.info("scontrol show node failed (%s); trying sinfo -N --json", exc)
            # -N: one record per node on 24.11+ (without it sinfo groups nodes and shows the
            # first node's features for the whole group); 22.05 lists every node either way.
            return slurm_nodes.parse_nodes_json(_json(["sinfo", "-N", "--json"]))

    def partitions(self) -> list[Partition]:
        return slurm_nodes.parse_partitions_scontrol(
            run_slurm(["scontrol", "show", "partition", "-o"])
        )

    def topology(self, node_order: Sequence[str]) -> Topology:
        try:
            text = run_slurm(["scontrol", "show", "topology"])
        except SlurmUnreachable:
            raise
        except SlurmError as exc:  # no topology plugin: a flat cluster
            log.info("no switch tree (%s)", exc)
            return Topology.empty()
        return slurm_nodes.parse_topology(text, node_order=node_order)

    def reservations(self) -> list[Reservation]:
        # 22.05 has no JSON for reservations; the one-line text has every field.
        return slurm_nodes.parse_reservations(run_slurm(["scontrol", "show", "reservation", "-o"]))

    def jobs(self) -> list[Job]:
        data = _json(["squeue", "--json"])
        shown = run_slurm(["scontrol", "show", "job", "-d", "-o"])
        return _add_sprio(
            slurm_jobs.parse_jobs_json(
                data, slurm_jobs.job_gpu_details(shown), exclusive=slurm_jobs.exclusive_jobs(shown)
            )
        )


def _add_sprio(jobs: list[Job]) -> list[Job]:
    """``jobs`` with sprio's SiteFactor and factor priority on the pending ones. Neither squeue's
    JSON (22.05) nor pyslurm has the SiteFactor; sprio shows it for pending jobs (not held
    ones, whose priority is 0: they keep what squeue said, and no ``factor_priority``), and
    the priority their factors give. The steering cycle takes both from here: one sprio call
    per read."""
    if not any(j.is_pending for j in jobs):
        return jobs
    rows = slurm_jobs.parse_sprio_priorities(run_slurm(["sprio", "-h", "-o", "%i %S %Y"]))
    return [
        _with_sprio(j, rows[j.job_id]) if j.is_pending and j.job_id in rows else j for j in jobs
    ]


def _with_sprio(job: Job, rows: list[tuple[int, int]]) -> Job:
    """``job`` with sprio's SiteFactor and factor priority; of a job's partitions, the line
    nearest the priority squeue shows (the partition it is being considered for)."""
    site, priority = min(rows, key=lambda r: abs(r[1] - job.priority))
    return replace(job, site_factor=site, factor_priority=priority)


def slurm_version() -> tuple[int, int] | None:
    """major.minor of the installed Slurm (``sinfo --version``), None when unknown."""
    try:
        out = subprocess.run(
            ["sinfo", "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


class PyslurmBackend(CliBackend):
    """pyslurm for jobs and nodes when it was built for this Slurm; the CLI for the rest.

    pyslurm's API moves with each Slurm release, and on Debian 12 (Slurm 22.05) there is no
    matching pyslurm on PyPI, so this stays a thin layer: anything it cannot read falls back to
    the CLI with a log line.
    """

    name = "pyslurm"

    def __init__(self, module) -> None:
        self._pyslurm = module

    def jobs(self) -> list[Job]:
        try:
            jobs = self._pyslurm.Jobs.load()
            data = {"jobs": [j.to_dict() for j in jobs.values()]}
            parsed = slurm_jobs.parse_jobs_json(data, None)
        except Exception as exc:  # any pyslurm API difference: the CLI is the reference
            log.warning("pyslurm could not read jobs (%s); using the CLI", exc)
            return CliBackend.jobs(self)
        return _add_sprio(parsed)


def select_backend(prefer: str | None = None) -> SlurmReader:
    """The pyslurm backend when pyslurm imports and matches Slurm's major.minor, else the CLI."""
    if prefer == "cli":
        return CliBackend()
    try:
        import pyslurm
    except ImportError:
        log.debug("pyslurm not installed; using the Slurm CLI")
        return CliBackend()
    version = getattr(pyslurm, "__version__", "")
    m = re.match(r"(\d+)\.(\d+)", version)
    slurm = slurm_version()
    if m and slurm and (int(m.group(1)), int(m.group(2))) == slurm:
        return PyslurmBackend(pyslurm)
    log.warning(
        "pyslurm %s does not match Slurm %s; using the Slurm CLI",
        version or "?",
        ".".join(map(str, slurm)) if slurm else "?",
    )
    return CliBackend()
