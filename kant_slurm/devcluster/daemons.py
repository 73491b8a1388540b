"""The dev cluster's daemons, one start function each, in the order `up` calls them.

Each ``start_<daemon>`` spawns its daemon in the cluster's PID namespace (:mod:`.processes`) and
returns once it answers, or raises :class:`DevClusterError` naming its log: ``munged`` (own key
and socket), MariaDB (own datadir, the ``slurm`` database user), ``slurmdbd`` (the cluster,
account and root user in the database), ``slurmctld`` and one ``slurmd -N <node>`` per node.
:mod:`.cluster` puts them in order and stops them again (``up``, ``down``).
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess

from ..errors import DevClusterError
from . import chroot
from .processes import crun, daemon_env, find_binary, root_of, spawn, wait_for
from .spec import DevClusterPaths, DevClusterSpec


def start_munged(paths: DevClusterPaths) -> None:
    if not paths.munge_key.exists():
        paths.munge_key.write_bytes(secrets.token_bytes(1024))
    os.chmod(paths.munge_key, 0o600)
    munged = find_binary("munged", "/usr/sbin/munged", root=root_of(paths))
    pid = spawn(
        "munged",
        [
            munged,
            "-F",
            "--force",
            f"--socket={paths.munge_socket}",
            f"--key-file={paths.munge_key}",
            f"--pid-file={paths.run / 'munged.pid'}",
            f"--log-file={paths.log / 'munged-own.log'}",
            f"--seed-file={paths.munge_socket.parent / 'munged.seed'}",
            "--num-threads=2",
        ],
        paths,
    )

    def ready() -> bool:
        cred = crun(paths, ["munge", "-n", "-S", str(paths.munge_socket)], timeout=10)
        if cred.returncode != 0:
            return False
        return (
            crun(
                paths, ["unmunge", "-S", str(paths.munge_socket)], timeout=10, input=cred.stdout
            ).returncode
            == 0
        )

    wait_for("munged", pid, ready, paths, 20)


def _mysql(paths: DevClusterPaths, sql: str) -> subprocess.CompletedProcess:
    client = find_binary("mariadb", "mysql", root=root_of(paths))
    return crun(
        paths,
        [client, "--no-defaults", "-S", str(paths.mariadb_socket), "-u", "root", "-e", sql],
        timeout=30,
    )


def start_mariadb(paths: DevClusterPaths, spec: DevClusterSpec, db_password: str) -> None:
    if not (paths.mariadb_data / "mysql").is_dir():
        install = find_binary("mariadb-install-db", "mysql_install_db", root=root_of(paths))
        res = crun(
            paths,
            [
                install,
                "--no-defaults",
                "--user=root",
                f"--datadir={paths.mariadb_data}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            timeout=180,
        )
        if res.returncode != 0:
            paths.log_file("mariadb-install-db").write_text(res.stdout + res.stderr)
            raise DevClusterError(
                f"mariadb-install-db failed; see its log {paths.log_file('mariadb-install-db')}"
            )
    mariadbd = find_binary(
        "mariadbd", "/usr/sbin/mariadbd", "mysqld", "/usr/sbin/mysqld", root=root_of(paths)
    )
    extra = []
    if (_mariadb_major(paths) or 0) >= 11:
        # MariaDB 11.6+ (trixie, sid): slurmdbd asks for it; its queries expect the old isolation.
        extra.append("--innodb-snapshot-isolation=OFF")
    pid = spawn(
        "mariadbd",
        [
            mariadbd,
            "--no-defaults",
            "--user=root",
            f"--datadir={paths.mariadb_data}",
            f"--socket={paths.mariadb_socket}",
            f"--port={spec.ports['mariadb']}",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            f"--pid-file={paths.run / 'mariadbd.pid'}",
            # Small: several dev clusters may share a 2-core CI machine.
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=16M",
            "--max-connections=64",
            "--performance-schema=OFF",
            *extra,
        ],
        paths,
    )
    wait_for("mariadbd", pid, lambda: _mysql(paths, "select 1").returncode == 0, paths, 90)
    quoted = db_password.replace("\\", "\\\\").replace("'", "\\'")
    sql = (
        f"CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '{quoted}'; "
        f"ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{quoted}'; "
        "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
    )
    res = _mysql(paths, sql)
    if res.returncode != 0:
        raise DevClusterError(
            f"mariadbd: creating the slurm user failed ({res.stderr.strip()[:200]}); "
            f"see its log {paths.log_file('mariadbd')}"
        )


def _mariadb_major(paths: DevClusterPaths) -> int | None:
    """Major version of the cluster's MariaDB (``mariadbd --version``), None when unknown."""
    mariadbd = find_binary(
        "mariadbd", "/usr/sbin/mariadbd", "mysqld", "/usr/sbin/mysqld", root=root_of(paths)
    )
    out = crun(paths, [mariadbd, "--version"], timeout=30).stdout
    m = re.search(r"Ver\s+(\d+)\.", out)
    return int(m.group(1)) if m else None


def _slurmdbd_env(paths: DevClusterPaths) -> dict[str, str]:
    """slurmdbd's environment: on MariaDB 11's client library, Debian 12's library first.

    slurmdbd of 24.11/26.05 dies at start on MariaDB 11.8's libmariadb.so.3 (error 5027,
    `_check_mysql_concat_is_sane`) and works with 10.11's, which the root build puts in
    chroot.COMPAT_LIBMARIADB_DIR.
    """
    env = daemon_env(paths)
    if (_mariadb_major(paths) or 0) < 11:
        return env
    root = root_of(paths)
    compat = chroot.COMPAT_LIBMARIADB_DIR
    if not os.path.isfile(f"{root or ''}{compat}/libmariadb.so.3"):
        raise DevClusterError(
            "slurmdbd cannot use MariaDB 11's client library and "
            f"{root or ''}{compat}/libmariadb.so.3 "
            "is missing: rebuild the root with `kant-slurm devcluster root --rebuild`"
        )
    env["LD_LIBRARY_PATH"] = compat + (
        ":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else ""
    )
    return env


def start_slurmdbd(paths: DevClusterPaths, spec: DevClusterSpec) -> None:
    pid = spawn(
        "slurmdbd",
        [find_binary("slurmdbd", "/usr/sbin/slurmdbd", root=root_of(paths)), "-D"],
        paths,
        env=_slurmdbd_env(paths),
    )

    def ready() -> bool:
        return crun(paths, ["sacctmgr", "-n", "-P", "show", "cluster"], timeout=20).returncode == 0

    wait_for("slurmdbd", pid, ready, paths, 120, paths.log / "slurmdbd.log")
    listed = crun(
        paths, ["sacctmgr", "-n", "-P", "show", "cluster", "format=cluster"]
    ).stdout.split()
    if spec.cluster_name not in listed:
        res = crun(paths, ["sacctmgr", "-i", "add", "cluster", spec.cluster_name])
        if res.returncode != 0:
            raise DevClusterError(f"sacctmgr add cluster failed: {res.stderr.strip()[:200]}")
        crun(
            paths,
            [
                "sacctmgr",
                "-i",
                "add",
                "account",
                "kant",
                f"Cluster={spec.cluster_name}",
                "Description=kant-slurm dev cluster",
                "Organization=kant",
            ],
        )
        crun(
            paths,
            [
                "sacctmgr",
                "-i",
                "add",
                "user",
                "root",
                "Account=kant",
                f"Cluster={spec.cluster_name}",
            ],
        )


def start_slurmctld(paths: DevClusterPaths, clear_state: bool) -> None:
    # The -wlm build directly: the `slurmctld` alternative may point at slurm-wlm-emulator.
    binary = find_binary("/usr/sbin/slurmctld-wlm", "slurmctld", root=root_of(paths))
    argv = ["slurmctld", "-D", "-f", str(paths.slurm_conf)]
    if clear_state:
        argv.append("-c")  # the node layout changed: old job state would not fit it
    pid = spawn("slurmctld", argv, paths, executable=binary)

    def ready() -> bool:
        res = crun(paths, ["scontrol", "ping"], timeout=15)
        return res.returncode == 0 and "UP" in res.stdout

    wait_for("slurmctld", pid, ready, paths, 60, paths.log / "slurmctld.log")


def start_slurmds(paths: DevClusterPaths, spec: DevClusterSpec) -> dict[str, int]:
    slurmd = find_binary("/usr/sbin/slurmd-wlm", "slurmd", root=root_of(paths))
    pids = {}
    for name in spec.node_names:
        pids[name] = spawn(
            f"slurmd-{name}",
            ["slurmd", "-D", "-N", name, "-f", str(paths.slurm_conf)],
            paths,
            executable=slurmd,
        )
    return pids
