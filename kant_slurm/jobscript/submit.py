"""Hand a rendered script to sbatch (an argument list, never a shell) and read the job id."""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Sequence

from ..errors import SlurmError, SlurmUnreachable

log = logging.getLogger(__name__)

_UNREACHABLE = ("Unable to contact slurm controller", "Socket timed out", "Connection refused")


def sbatch_command(extra_args: Sequence[str] = ()) -> list[str]:
    """The sbatch argument list: ``--parsable`` (the id on stdout), extra args, script on stdin."""
    return ["sbatch", "--parsable", *extra_args]


def submit(script: str, extra_args: Sequence[str] = (), sbatch: str = "sbatch") -> str:
    """Submit ``script`` (fed on stdin) and return the job id.

    Raises :class:`SlurmUnreachable` when slurmctld does not answer and :class:`SlurmError` with
    sbatch's own message when it refuses the job (e.g. job_submit.lua rejecting a bad tag).
    """
    argv = [sbatch, *sbatch_command(extra_args)[1:]]
    log.info("running %s", argv)
    try:
        proc = subprocess.run(argv, input=script, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise SlurmError(f"{sbatch}: not found; install the Slurm client (slurm-client)") from None
    except subprocess.TimeoutExpired:
        raise SlurmUnreachable(f"{sbatch} did not answer within 120 s") from None
    if proc.returncode != 0:
        message = " ".join(proc.stderr.split()) or f"exit status {proc.returncode}"
        cls = SlurmUnreachable if any(s in proc.stderr for s in _UNREACHABLE) else SlurmError
        raise cls(f"sbatch refused the job: {message}")
    # --parsable prints "jobid" or "jobid;cluster".
    m = re.match(r"\s*(\d+)", proc.stdout)
    if m is None:
        raise SlurmError(f"sbatch printed no job id: {proc.stdout.strip()!r}")
    return m.group(1)
