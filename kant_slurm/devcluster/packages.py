"""The Debian packages a 22.05 dev cluster runs from on this machine, installed when missing."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Sequence

from ..errors import DevClusterError

log = logging.getLogger(__name__)

DEBIAN_PACKAGES = ("munge", "slurmctld", "slurmd", "slurmdbd", "slurm-client", "mariadb-server")


def missing_packages(packages: Sequence[str] = DEBIAN_PACKAGES) -> list[str]:
    """The Debian packages of ``packages`` that dpkg does not list as installed."""
    if shutil.which("dpkg-query") is None:
        return list(packages)
    missing = []
    for pkg in packages:
        res = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True
        )
        if res.returncode != 0 or "install ok installed" not in res.stdout:
            missing.append(pkg)
    return missing


def ensure_packages(packages: Sequence[str] = DEBIAN_PACKAGES) -> list[str]:
    """Install the missing ones with apt-get (as root); return what was installed."""
    missing = missing_packages(packages)
    if not missing:
        return []
    if shutil.which("apt-get") is None:
        raise DevClusterError(
            f"Debian packages missing ({' '.join(missing)}) and no apt-get here: "
            "this needs Debian 12 or the packages installed by hand"
        )
    if os.geteuid() != 0:
        raise DevClusterError(
            f"Debian packages missing ({' '.join(missing)}): run as root to install them"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log.warning("installing Debian packages: %s", " ".join(missing))
    for argv in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", *missing],
    ):
        res = subprocess.run(
            argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
        if res.returncode != 0:
            tail = (res.stderr.strip().splitlines() or ["?"])[-1]
            raise DevClusterError(f"{' '.join(argv[:2])} failed: {tail}")
    return missing
