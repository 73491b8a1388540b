"""Newer Slurm releases for the dev cluster: a debootstrapped Debian root per release, cached.

Debian 12 ships Slurm 22.05; Debian 13 (trixie) ships 24.11 and sid ships 26.05. Their binaries
need their own glibc, so a newer release runs inside a minimal Debian root built once with
``debootstrap`` and kept under ``$KANT_SLURM_ROOTS`` (default ``/var/cache/kant-slurm/roots``),
one directory per Debian suite. Everything of that release (daemons, client commands, MariaDB)
comes from the root; shared/SLURM-LOCAL.md has the facts this relies on.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from ..errors import DevClusterError
from .packages import ensure_packages

log = logging.getLogger(__name__)

# Slurm release -> the Debian suite that ships it.
SUITES = {"22.05": "bookworm", "24.11": "trixie", "26.05": "sid"}
VERSIONS = tuple(SUITES)
DEFAULT_VERSION = "22.05"
ROOTS_ENV = "KANT_SLURM_ROOTS"
DEFAULT_ROOTS = Path("/var/cache/kant-slurm/roots")
DEFAULT_MIRROR = "http://deb.debian.org/debian"

# Written last when a root is complete; a root without it is rebuilt.
ROOT_MARKER = "etc/kant-slurm-root.json"
# Inside a root: Debian 12's MariaDB client library. slurmdbd of 24.11/26.05 dies at start on
# MariaDB 11.8's libmariadb.so.3 (`_check_mysql_concat_is_sane`, error 5027) and works with 10.11's.
COMPAT_LIBMARIADB_DIR = "/opt/kant-slurm/libmariadb-10.11"

ROOT_PACKAGES = (
    "slurm-wlm",
    "slurmctld",
    "slurmd",
    "slurm-client",
    "slurmdbd",
    "munge",
    "mariadb-server",
    "mariadb-client",
    "python3-venv",
    "python3-pip",
    "ca-certificates",
    # What the test suite needs inside the root: the SPANK plugin build and the job-script checks.
    "libslurm-dev",
    "gcc",
    "libc6-dev",
    "make",
    "shellcheck",
    "lua5.3",
    "util-linux",
    "procps",
)


def check_version(version: str) -> str:
    """``version`` when it is a supported Slurm release, else a one-line error naming them."""
    if version not in SUITES:
        raise DevClusterError(f"--slurm-version {version}: expected one of {', '.join(VERSIONS)}")
    return version


def roots_dir() -> Path:
    """``$KANT_SLURM_ROOTS`` or /var/cache/kant-slurm/roots."""
    return Path(os.environ.get(ROOTS_ENV) or DEFAULT_ROOTS)


def root_path(version: str, roots: Path | None = None) -> Path:
    """Where the root of ``version`` lives (built or not)."""
    return (roots or roots_dir()) / SUITES[check_version(version)]


def default_version() -> str:
    """The Slurm installed here when it is a supported release (24.11 inside its root), else
    22.05 (Debian 12's, which `devcluster up` installs)."""
    local = local_slurm_version()
    return local if local in SUITES else DEFAULT_VERSION


@functools.lru_cache(maxsize=1)
def local_slurm_version() -> str | None:
    """major.minor of the Slurm installed here (``22.05``), or None when there is none."""
    try:
        res = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status} ${Version}", "slurmctld"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        return None
    if "install ok installed" not in res.stdout:
        return None
    return parse_debian_version(res.stdout.split()[-1])


def parse_debian_version(text: str) -> str | None:
    """``22.05.8-4+deb12u3`` -> ``22.05``; ``26.05.5-1`` -> ``26.05``."""
    m = re.match(r"(?:\d+:)?(\d+)\.(\d+)", text.strip())
    return f"{int(m.group(1))}.{int(m.group(2)):02d}" if m else None


def inside_root() -> dict | None:
    """The marker of the kant root this process runs in, or None on a plain machine."""
    try:
        return json.loads((Path("/") / ROOT_MARKER).read_text())
    except (OSError, ValueError):
        return None


def needs_root(version: str) -> bool:
    """True when ``version`` must run from a root: the Slurm installed here is another release.

    On Debian 12 without Slurm yet, 22.05 runs natively (``up`` installs it with apt).
    """
    check_version(version)
    local = local_slurm_version()
    if local is not None:
        return local != version
    return version != DEFAULT_VERSION or inside_root() is not None


def root_ready(root: Path) -> bool:
    return (root / ROOT_MARKER).is_file()


def host_mirror() -> str:
    """The Debian mirror this machine's apt uses (so the root reaches the same one)."""
    for src in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            text = src.read_text()
        except OSError:
            continue
        for m in re.finditer(
            r"(?:^deb\s+(?:\[[^\]]*\]\s+)?|^URIs:\s*)(\S+/debian)/?\s", text, re.M
        ):
            return m.group(1)
    return DEFAULT_MIRROR


def _run_logged(argv: list[str], logf: Path, what: str, env: dict | None = None) -> None:
    with open(logf, "ab") as out:
        out.write(f"\n=== {' '.join(argv)}\n".encode())
        out.flush()
        res = subprocess.run(
            argv,
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            env=env or dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
        )
    if res.returncode != 0:
        raise DevClusterError(f"{what} failed (exit {res.returncode}); see its log {logf}")


def root_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default os.environ) for a process inside a root: without TMPDIR, which names a
    directory of the host that the root does not have (ca-certificates' postinst and mariadbd
    fail on it)."""
    out = dict(os.environ if env is None else env)
    out.pop("TMPDIR", None)
    return out


def in_root(root: Path, argv: list[str]) -> list[str]:
    """``argv`` to run inside ``root`` with /proc, /sys and /dev mounted in a private mount
    namespace, so nothing stays mounted on the host afterwards."""
    r = str(root)
    setup = (
        'mount --make-rprivate / && mount -t proc proc "$1/proc" && '
        'mount --rbind /sys "$1/sys" && mount --rbind /dev "$1/dev" && '
        'shift && exec chroot "$0" "$@"'
    )
    return ["unshare", "--mount", "--", "sh", "-c", setup, r, r, *argv]


def _copy_host_settings(root: Path) -> None:
    """apt proxy/CA/validity settings, CA certificates, pip config and /etc/hosts of the host."""
    conf_d = root / "etc/apt/apt.conf.d"
    conf_d.mkdir(parents=True, exist_ok=True)
    for src in sorted(Path("/etc/apt/apt.conf.d").glob("*")):
        try:
            text = src.read_text()
        except (OSError, UnicodeDecodeError):
            continue
        if re.search(r"Acquire::|Proxy|CaInfo", text, re.I):
            shutil.copyfile(src, conf_d / src.name)
    # sid's Release file may be past its Valid-Until on a mirror snapshot.
    (conf_d / "99kant-root").write_text(
        'Acquire::Check-Valid-Until "false";\nAPT::Install-Recommends "false";\n'
    )
    cas = Path("/usr/local/share/ca-certificates")
    if cas.is_dir():
        shutil.copytree(cas, root / "usr/local/share/ca-certificates", dirs_exist_ok=True)
    for name in ("etc/pip.conf", "etc/hosts"):
        if (Path("/") / name).is_file():
            shutil.copyfile(Path("/") / name, root / name)
    # Packages' postinst scripts must not start daemons on the default ports beside the host's.
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# kant-slurm: never start services while installing\nexit 101\n")
    os.chmod(policy, 0o755)


def _host_libmariadb() -> Path:
    """Debian 12's libmariadb.so.3 on this machine (installed with apt when missing)."""
    ensure_packages(["libmariadb3"])
    res = subprocess.run(["dpkg-query", "-L", "libmariadb3"], capture_output=True, text=True)
    for line in res.stdout.splitlines():
        if line.endswith("/libmariadb.so.3"):
            return Path(line).resolve()
    raise DevClusterError(
        "libmariadb3 lists no libmariadb.so.3: reinstall it "
        "(apt-get install --reinstall libmariadb3)"
    )


def ensure_root(version: str, roots: Path | None = None) -> Path:
    """The root of ``version``, built first when missing (a few minutes, about 1 GB)."""
    root = root_path(version, roots)
    if root_ready(root):
        return root
    if os.geteuid() != 0:
        raise DevClusterError(
            f"the Slurm {version} root {root} is missing: run as root to build it"
        )
    if os.uname().machine != "x86_64":
        raise DevClusterError(
            f"Slurm {version} roots are built for x86_64, not {os.uname().machine}"
        )
    ensure_packages(["debootstrap"])
    libmariadb = _host_libmariadb()
    suite = SUITES[version]
    partial = root.with_name(root.name + ".partial")
    partial.parent.mkdir(parents=True, exist_ok=True)
    logf = partial.parent / f"{suite}-build.log"
    started = time.monotonic()
    log.warning("building the Slurm %s root (Debian %s) in %s; log %s", version, suite, root, logf)
    # debootstrap removes ROOT/debootstrap when it finished; a partial root without it is reused.
    if not (partial / "usr/bin/apt-get").exists() or (partial / "debootstrap").exists():
        shutil.rmtree(partial, ignore_errors=True)
        _run_logged(
            ["debootstrap", "--variant=minbase", suite, str(partial), host_mirror()],
            logf,
            f"debootstrap {suite}",
        )
    _copy_host_settings(partial)
    env = dict(root_env(), DEBIAN_FRONTEND="noninteractive", LC_ALL="C.UTF-8")
    _run_logged(
        in_root(partial, ["apt-get", "update", "-q"]), logf, f"apt-get update in {partial}", env
    )
    # A build cut short may have left packages unconfigured; apt-get install would stop on them.
    _run_logged(
        in_root(partial, ["dpkg", "--configure", "-a"]),
        logf,
        f"dpkg --configure -a in {partial}",
        env,
    )
    _run_logged(
        in_root(
            partial, ["apt-get", "install", "-y", "-q", "--no-install-recommends", *ROOT_PACKAGES]
        ),
        logf,
        f"apt-get install in {partial}",
        env,
    )
    _run_logged(in_root(partial, ["update-ca-certificates"]), logf, "update-ca-certificates", env)
    compat = partial / COMPAT_LIBMARIADB_DIR.lstrip("/")
    compat.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(libmariadb, compat / "libmariadb.so.3")
    res = subprocess.run(
        in_root(partial, ["dpkg-query", "-W", "-f=${Version}", "slurmctld"]),
        capture_output=True,
        text=True,
    )
    slurm = res.stdout.strip()
    if parse_debian_version(slurm) != version:
        raise DevClusterError(
            f"Debian {suite} now ships Slurm {slurm or '?'}, not {version}: "
            f"this kant-slurm does not know that release"
        )
    (partial / ROOT_MARKER).write_text(
        json.dumps(
            {
                "slurm_version": version,
                "suite": suite,
                "slurm_package": slurm,
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "build_seconds": round(time.monotonic() - started),
            }
        )
        + "\n"
    )
    partial.rename(root)
    log.warning("Slurm %s root ready in %s (%.0f s)", version, root, time.monotonic() - started)
    return root


def remove_root(root: Path) -> None:
    """Delete a root (``devcluster root --rebuild``); only a directory this module built."""
    if not (root / ROOT_MARKER).is_file() and not (root / "debootstrap").exists():
        raise DevClusterError(
            f"{root} is not a kant-slurm root (no {ROOT_MARKER}): not deleting it"
        )
    shutil.rmtree(root)
