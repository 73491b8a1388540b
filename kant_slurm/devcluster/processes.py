"""The dev cluster's processes: its PID namespace, spawning a daemon into it, waiting for it,
and finding and reaping what is left (see :mod:`kant_slurm.devcluster.cluster` for the order).

A pid counts as the cluster's only when it is in the cluster's own PID namespace, so a recycled
pid is never killed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from ..errors import DevClusterError
from . import chroot
from .spec import DevClusterPaths, load_state

log = logging.getLogger(__name__)


def pid_alive(pid: int) -> bool:
    """True when ``pid`` runs (a zombie does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _pid_ns(pid: int) -> str | None:
    """The PID namespace of ``pid`` (``pid:[4026532...]``), None when it is gone."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def cluster_namespace(paths: DevClusterPaths) -> dict | None:
    """The cluster's live PID namespace: ``{"init": host pid, "pid_ns": id}``, else None.

    Live means its init still runs and is still in the recorded namespace (not a recycled pid).
    """
    try:
        ns = json.loads(paths.namespace_file.read_text())
        init, ident = int(ns["init"]), str(ns["pid_ns"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid_alive(init) and _pid_ns(init) == ident:
        return {"init": init, "pid_ns": ident}
    return None


def pid_is_ours(pid: int, paths: DevClusterPaths, ns: dict | None = None) -> bool:
    """True when ``pid`` runs in this cluster's PID namespace."""
    ns = ns if ns is not None else cluster_namespace(paths)
    return ns is not None and _pid_ns(pid) == ns["pid_ns"]


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _child_of(parent: int, timeout: float = 10) -> int | None:
    """The first child process of ``parent`` (nsenter's and unshare's forked child)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and _parent_of(int(entry.name)) == parent:
                return int(entry.name)
        if not pid_alive(parent):
            return None
        time.sleep(0.02)
    return None


def root_of(paths: DevClusterPaths) -> Path | None:
    """The Debian root the cluster's Slurm runs from, None for the machine's own Slurm."""
    root = (load_state(paths) or {}).get("root")
    return Path(root) if root else None


def start_namespace(paths: DevClusterPaths, root: Path | None) -> dict:
    """Start the cluster's PID namespace (its init is a reaping bash loop) and record it."""
    # Inside: a private mount namespace with its own /proc (proctrack/linuxproc walks /proc and
    # must see the namespace's pids); for a root, /proc, /sys, /dev and the cluster directory
    # mounted into it. These mounts go away with the namespace: nothing to unmount on the host.
    propagation = "private"
    setup = "mount --make-rprivate / && mount -t proc proc /proc"
    if chroot.inside_root() is not None:
        # Inside a root (the test suite of a newer release) "/" is no mount point: its
        # propagation cannot change (EINVAL); whoever entered the root made it private already.
        propagation = "unchanged"
        setup = "mount -t proc proc /proc"
    if root is not None:
        setup += (
            ' && mount -t proc proc "$1/proc" && mount --rbind /sys "$1/sys"'
            ' && mount --rbind /dev "$1/dev" && mkdir -p "$1$2" && mount --bind "$2" "$1$2"'
        )
    # The init must reap: slurmstepd and job processes that lose their parent are reparented to
    # it, and unreaped they stay as zombies that look alive to kill(pid, 0). bash reaps any
    # child in its SIGCHLD handler; as a namespace's init it ignores SIGTERM.
    setup += ' && exec bash -c "while :; do sleep 5 & wait; done"'
    logf = paths.log_file("namespace")
    with open(logf, "ab") as out:
        proc = subprocess.Popen(
            [
                "unshare",
                "--pid",
                "--fork",
                "--mount",
                f"--propagation={propagation}",
                "--",
                "sh",
                "-c",
                setup,
                "kant-namespace",
                str(root or ""),
                str(paths.dir),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            cwd=str(paths.dir),
        )
    _WRAPPERS.append(proc)
    init = _child_of(proc.pid)
    deadline = time.monotonic() + 10
    # Ready once init is sleep (the mounts are done) in a PID namespace other than ours.
    while init is not None and time.monotonic() < deadline:
        try:
            comm = Path(f"/proc/{init}/comm").read_text().strip()
        except OSError:
            comm = ""
        if comm == "bash" and _pid_ns(init) not in (None, _pid_ns(os.getpid())):
            ns = {"init": init, "pid_ns": _pid_ns(init)}
            paths.namespace_file.write_text(json.dumps(ns) + "\n")
            return ns
        if not pid_alive(init):
            break
        time.sleep(0.05)
    kill_pid(proc.pid)
    raise DevClusterError(
        f"could not start the cluster's PID namespace (unshare --pid); see {logf}"
    )


def kill_pid(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    reap_pids([pid])


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the daemons do: a port left in TIME_WAIT by a cluster just stopped is free to them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def daemon_env(paths: DevClusterPaths) -> dict[str, str]:
    env = chroot.root_env() if root_of(paths) is not None else dict(os.environ)
    env["SLURM_CONF"] = str(paths.slurm_conf)
    return env


def client_env(paths: DevClusterPaths) -> dict[str, str]:
    return daemon_env(paths)


def _nsenter(ns: dict, paths: DevClusterPaths) -> list[str]:
    """The command prefix that enters the cluster's PID and mount namespaces.

    Entering a mount namespace moves to its real root; --root keeps the namespace init's root
    instead (it differs when the cluster itself runs inside a Debian root, as the test suite of
    a newer release does) and --wd the cluster directory as working directory.
    """
    return [
        "nsenter",
        f"--target={ns['init']}",
        "--pid",
        "--mount",
        "--root",
        f"--wd={paths.dir}",
        "--",
    ]


def client_argv(paths: DevClusterPaths, argv: Sequence[str]) -> list[str]:
    """``argv`` as it must run to talk to this cluster: unchanged for the machine's own Slurm;
    for a cluster from a Debian root, inside that root (through the cluster's namespace, which
    has the root's mounts). Set SLURM_CONF in its environment as for any cluster."""
    root = root_of(paths)
    if root is None:
        return list(argv)
    ns = cluster_namespace(paths)
    if ns is None:
        raise DevClusterError(
            f"the dev cluster in {paths.dir} does not run: "
            "start it with `kant-slurm devcluster up` first"
        )
    return [*_nsenter(ns, paths), "chroot", str(root), *argv]


def run_command(
    argv: Sequence[str], env: dict | None = None, timeout: float = 60, input: str | None = None
):
    try:
        return subprocess.run(
            list(argv),
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise DevClusterError(
            f"{argv[0]}: command not found (is its Debian package installed?)"
        ) from None
    except subprocess.TimeoutExpired:
        raise DevClusterError(f"{' '.join(argv[:3])}: no answer within {timeout:.0f}s") from None


def crun(
    paths: DevClusterPaths, argv: Sequence[str], timeout: float = 60, input: str | None = None
) -> subprocess.CompletedProcess:
    """A client command against this cluster (inside its root when it has one)."""
    return run_command(
        client_argv(paths, argv), env=client_env(paths), timeout=timeout, input=input
    )


def find_binary(*candidates: str, root: Path | None = None) -> str:
    """The first candidate program that exists (in ``root`` when given; the path returned is
    the one inside it)."""
    for cand in candidates:
        if root is None:
            found = shutil.which(cand) or (
                cand if os.path.isabs(cand) and os.access(cand, os.X_OK) else None
            )
            if found:
                return found
            continue
        for path in (
            [cand]
            if os.path.isabs(cand)
            else [f"{d}/{cand}" for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin")]
        ):
            if os.access(str(root) + path, os.X_OK):
                return path
    where = f" in {root}" if root is not None else ""
    raise DevClusterError(
        f"{candidates[0]} not found{where}: install the Debian package that has it"
    )


def spawn(
    name: str,
    argv: list[str],
    paths: DevClusterPaths,
    executable: str | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Start one daemon in the foreground inside the cluster's namespace; record its pid.

    ``executable`` runs under the name ``argv[0]``: Slurm daemons decide what they are from their
    program name (``slurmctld-wlm`` is not ``slurmctld`` to them and crashes on accounting).
    """
    ns = cluster_namespace(paths)
    if ns is None:
        raise DevClusterError(
            f"{name}: the cluster's PID namespace is gone; see {paths.log_file('namespace')}"
        )
    if executable is not None:
        argv = ["bash", "-c", 'exec -a "$0" "$@"', argv[0], executable, *argv[1:]]
    wrapped = _nsenter(ns, paths)
    root = root_of(paths)
    if root is not None:
        wrapped += ["chroot", str(root)]
    logf = paths.log_file(name)
    with open(logf, "ab") as out:
        out.write(f"\n=== kant-slurm devcluster: starting {name}: {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            wrapped + argv,
            env=env or daemon_env(paths),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            cwd=str(paths.dir),
        )
    _WRAPPERS.append(proc)
    # nsenter forks the daemon into the namespace and waits for it: record the daemon itself.
    pid = _child_of(proc.pid)
    if pid is None:
        raise DevClusterError(f"{name} did not start; see its log {logf}")
    paths.pid_file(name).write_text(f"{pid}\n")
    log.info("started %s (pid %d), log %s", name, pid, logf)
    return pid


def wait_for(
    name: str, pid: int, ready, paths: DevClusterPaths, timeout: float, log_path: Path | None = None
) -> None:
    """Poll ``ready()`` until it is true; the daemon dying or the timeout is a one-line error."""
    deadline = time.monotonic() + timeout
    logp = log_path or paths.log_file(name)
    while True:
        if not pid_alive(pid):
            raise DevClusterError(f"{name} died on start; see its log {logp}")
        try:
            if ready():
                return
        except DevClusterError:
            pass
        if time.monotonic() > deadline:
            raise DevClusterError(
                f"{name} did not become ready within {timeout:.0f}s; see its log {logp}"
            )
        time.sleep(0.3)


def in_namespace(pid_ns: str) -> list[int]:
    """Live pids in the PID namespace ``pid_ns``."""
    out = []
    for entry in Path("/proc").iterdir():
        if (
            entry.name.isdigit()
            and _pid_ns(int(entry.name)) == pid_ns
            and pid_alive(int(entry.name))
        ):
            out.append(int(entry.name))
    return out


# The unshare and nsenter processes this process started: they exit with their daemon (or the
# namespace) and are reaped here so a long-lived caller (the test session) keeps no zombies.
_WRAPPERS: list[subprocess.Popen] = []


def reap_children() -> None:
    for proc in list(_WRAPPERS):
        if proc.poll() is not None:
            _WRAPPERS.remove(proc)


def reap_pids(pids) -> None:
    # Daemons started by this very process (the test fixture) are our children: reap them so
    # they do not linger as zombies.
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def running_processes(directory: Path) -> list[int]:
    """Pids of the live processes of this cluster: those in its PID namespace (``down`` leaves
    none)."""
    ns = cluster_namespace(DevClusterPaths(Path(directory).resolve()))
    return in_namespace(ns["pid_ns"]) if ns else []
