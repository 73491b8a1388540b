"""A real Slurm GPU cluster on one machine, in one private directory (`kant-slurm devcluster`).

What runs, all as root on loopback and all started by us (shared/SLURM-LOCAL.md has the facts):
its own ``munged`` (own key and socket), its own MariaDB (own datadir and socket, TCP on
127.0.0.1), ``slurmdbd``, ``slurmctld`` and one ``slurmd -N <node>`` per node. Every port is
derived from one port base, so several clusters with different directories and port bases run
side by side. Config files are rendered from the jinja2 templates in ``site-config/dev-cluster``
(shipped inside the package as ``kant_slurm/data/dev-cluster``).

Every process of a cluster lives in the cluster's own PID namespace (``unshare --pid``, with its
own /proc): `up` starts a holder there (the namespace's init) and each daemon enters it with
``nsenter``, in the foreground (``-D``/``-F``), its pid recorded in ``run/kant-<daemon>.pid``.
``down`` stops the daemons in order, then kills the namespace's init, upon which the kernel kills
everything left in the namespace: job steps included, whatever their environment or session
(26.05 starts steps without the slurmd's environment), and nothing of any other cluster. A pid
counts as the cluster's only when it is in that namespace, so a recycled pid is never killed.

Slurm releases (``--slurm-version``): 22.05 runs from Debian 12's packages on the machine; 24.11
and 26.05 run from a cached Debian root (:mod:`kant_slurm.slurm.chroot`), the namespace holder
mounting /proc, /sys, /dev and the cluster directory (at the same path) into it, so paths and
SLURM_CONF read the same inside and out. Client commands of such a cluster must come from the
root too: :func:`client_argv` (``kant-slurm devcluster exec``) runs them there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jinja2

from ..errors import DevClusterError
from ..hostlist import compress
from . import chroot

log = logging.getLogger(__name__)

DEFAULT_PORT_BASE = 16800
PORT_BASE_ENV = "KANT_DEVCLUSTER_PORT_BASE"
DIR_ENV = "KANT_DEVCLUSTER_DIR"

DEBIAN_PACKAGES = ("munge", "slurmctld", "slurmd", "slurmdbd", "slurm-client", "mariadb-server")

# Port layout relative to the port base; slurmd ports follow from base+10, one per node.
_MARIADB, _SLURMDBD, _SLURMCTLD, _SLURMD_FIRST = 0, 1, 2, 10
MAX_NODES = 256


@dataclass(frozen=True)
class DevClusterSpec:
    """The shape of a dev cluster: what `up` was asked for."""

    nodes: int = 16
    gpus_per_node: int = 8
    leaf_size: int = 4
    gpu_type: str = "h100"
    inference_nodes: int = 0
    port_base: int = DEFAULT_PORT_BASE
    cpus_per_node: int = 32
    memory_mb: int = 256000
    cluster_name: str = "kantdev"
    # Several GPU types, in node order: "h100:12,a100:4" = the first 12 nodes h100, the last 4
    # a100 (the counts add up to `nodes`). Empty: every node is `gpu_type`.
    gpu_types: str = ""
    # Default: the Slurm installed here (22.05 on Debian 12; 24.11 inside the 24.11 root).
    slurm_version: str = field(default_factory=chroot.default_version)

    def validate(self) -> None:
        """Raise DevClusterError naming the option that is out of range."""
        checks = [
            ("--nodes", self.nodes, 1, MAX_NODES),
            ("--gpus-per-node", self.gpus_per_node, 1, 64),
            ("--leaf-size", self.leaf_size, 1, MAX_NODES),
            ("--inference-nodes", self.inference_nodes, 0, self.nodes),
            ("--port-base", self.port_base, 1024, 65535 - _SLURMD_FIRST - self.nodes),
        ]
        for name, value, lo, hi in checks:
            if not lo <= value <= hi:
                raise DevClusterError(f"{name} {value} is out of range: expected {lo}..{hi}")
        chroot.check_version(self.slurm_version)
        if not self.gpu_type.replace("_", "").replace("-", "").isalnum():
            raise DevClusterError(
                f"--gpu-type {self.gpu_type!r}: expected letters, digits, '-' or '_' (e.g. h100)"
            )
        types = self.node_gpu_types
        if len(types) != self.nodes:
            raise DevClusterError(
                f"--gpu-types {self.gpu_types!r} names {len(types)} nodes; expected --nodes "
                f"{self.nodes}")

    @property
    def node_gpu_types(self) -> list[str]:
        """Each node's GPU type, in node order (``gpu_types``, else ``gpu_type`` everywhere)."""
        if not self.gpu_types:
            return [self.gpu_type] * self.nodes
        out: list[str] = []
        for item in self.gpu_types.split(","):
            typ, _, count = item.strip().partition(":")
            if (not typ.replace("_", "").replace("-", "").isalnum() or not count.isdigit()
                    or int(count) < 1):
                raise DevClusterError(
                    f"--gpu-types {self.gpu_types!r}: expected TYPE:NODES[,TYPE:NODES...] "
                    f"(e.g. h100:12,a100:4), got {item.strip()!r}")
            out += [typ] * int(count)
        return out

    @property
    def node_names(self) -> list[str]:
        width = max(2, len(str(self.nodes)))
        return [f"gn{i:0{width}d}" for i in range(1, self.nodes + 1)]

    @property
    def ports(self) -> dict[str, int]:
        b = self.port_base
        return {
            "mariadb": b + _MARIADB,
            "slurmdbd": b + _SLURMDBD,
            "slurmctld": b + _SLURMCTLD,
            "slurmd_first": b + _SLURMD_FIRST,
        }

    def node_port(self, i: int) -> int:
        return self.port_base + _SLURMD_FIRST + i

    @property
    def leaves(self) -> list[tuple[str, list[str]]]:
        names = self.node_names
        return [
            (f"leaf{k + 1}", names[i : i + self.leaf_size])
            for k, i in enumerate(range(0, len(names), self.leaf_size))
        ]


@dataclass(frozen=True)
class DevClusterPaths:
    """Where everything of one cluster lives."""

    dir: Path

    @property
    def etc(self) -> Path:
        return self.dir / "etc"

    @property
    def slurm_conf(self) -> Path:
        return self.etc / "slurm.conf"

    @property
    def slurmdbd_conf(self) -> Path:
        return self.etc / "slurmdbd.conf"

    @property
    def plugstack_conf(self) -> Path:
        return self.etc / "plugstack.conf"

    @property
    def spank_plugin(self) -> Path:
        return self.dir / "kant_spank.so"

    @property
    def log(self) -> Path:
        return self.dir / "log"

    @property
    def run(self) -> Path:
        return self.dir / "run"

    @property
    def munge_socket(self) -> Path:
        return self.dir / "munge" / "munge.socket"

    @property
    def munge_key(self) -> Path:
        return self.dir / "munge" / "munge.key"

    @property
    def mariadb_socket(self) -> Path:
        return self.dir / "mysql" / "mysqld.sock"

    @property
    def mariadb_data(self) -> Path:
        return self.dir / "mysql" / "data"

    @property
    def gpus(self) -> Path:
        return self.dir / "gpus"

    @property
    def state_file(self) -> Path:
        return self.dir / "cluster.json"

    @property
    def namespace_file(self) -> Path:
        return self.run / "kant-namespace.json"

    def pid_file(self, daemon: str) -> Path:
        return self.run / f"kant-{daemon}.pid"

    def log_file(self, daemon: str) -> Path:
        if daemon.startswith("slurmd-"):
            return self.log / f"{daemon}.log"
        return self.log / f"{daemon}.log"


def default_dir() -> Path:
    """``$KANT_DEVCLUSTER_DIR``, else ``$XDG_CACHE_HOME/kant-slurm/devcluster`` (~/.cache/...)."""
    if os.environ.get(DIR_ENV):
        return Path(os.environ[DIR_ENV])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "kant-slurm" / "devcluster"


def default_port_base() -> int:
    """``$KANT_DEVCLUSTER_PORT_BASE`` or 16800."""
    raw = os.environ.get(PORT_BASE_ENV)
    if not raw:
        return DEFAULT_PORT_BASE
    try:
        return int(raw)
    except ValueError:
        raise DevClusterError(f"{PORT_BASE_ENV}={raw!r}: expected a port number like "
                              "16800") from None


# --------------------------------------------------------------------------------------------
# Config rendering (pure apart from reading the templates)
# --------------------------------------------------------------------------------------------


def template_dir() -> Path:
    """The dev-cluster templates: package data, else the source tree's site-config."""
    packaged = Path(__file__).resolve().parent.parent / "data" / "dev-cluster"
    if (packaged / "slurm.conf.j2").is_file():
        return packaged
    source = Path(__file__).resolve().parents[2] / "site-config" / "dev-cluster"
    if (source / "slurm.conf.j2").is_file():
        return source
    raise DevClusterError(
        f"dev-cluster templates not found in {packaged} or {source}: reinstall kant-slurm"
    )


def site_job_submit_lua() -> Path | None:
    """site-config/job_submit.lua of the source tree (or package data), if there is one."""
    for cand in (
        Path(__file__).resolve().parents[2] / "site-config" / "job_submit.lua",
        Path(__file__).resolve().parent.parent / "data" / "job_submit.lua",
    ):
        if cand.is_file():
            return cand
    return None


def render_configs(
    spec: DevClusterSpec,
    paths: DevClusterPaths,
    db_password: str,
    ctld_host: str,
    job_submit_lua: bool = False,
) -> dict[str, str]:
    """File name -> text of every config file of the cluster."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    names = spec.node_names
    leaves = spec.leaves
    leaf_of = {n: leaf for leaf, members in leaves for n in members}
    types = spec.node_gpu_types
    type_groups: list[dict] = []  # runs of nodes of one GPU type (gres.conf lines)
    for n, typ in zip(names, types, strict=False):
        if type_groups and type_groups[-1]["type"] == typ:
            type_groups[-1]["names"].append(n)
        else:
            type_groups.append({"type": typ, "names": [n]})
    values = dict(
        dir=str(paths.dir),
        cluster_name=spec.cluster_name,
        ctld_host=ctld_host,
        ports=spec.ports,
        munge_socket=str(paths.munge_socket),
        nodes=[
            {"name": n, "port": spec.node_port(i), "leaf": leaf_of[n], "gpu_type": types[i]}
            for i, n in enumerate(names)
        ],
        gpu_groups=[{"type": g["type"], "nodes": compress(g["names"])} for g in type_groups],
        all_nodes=compress(names),
        inference_nodes=compress(names[len(names) - spec.inference_nodes :])
        if spec.inference_nodes
        else "",
        cpus_per_node=spec.cpus_per_node,
        memory_mb=spec.memory_mb,
        gpus_per_node=spec.gpus_per_node,
        gpu_type=spec.gpu_type,
        leaf_size=spec.leaf_size,
        leaves=[{"name": leaf, "nodes": compress(members)} for leaf, members in leaves],
        leaf_names=",".join(leaf for leaf, _ in leaves),
        db_user="slurm",
        db_password=db_password,
        job_submit_lua=job_submit_lua,
        # plugstack.conf names the plugin only when it is there (write_plugstack after a build).
        spank_plugin=str(paths.spank_plugin) if paths.spank_plugin.is_file() else "",
    )
    out = {}
    for name in ("slurm.conf", "gres.conf", "topology.conf", "slurmdbd.conf", "plugstack.conf"):
        try:
            out[name] = env.get_template(name + ".j2").render(**values)
        except jinja2.TemplateError as exc:
            raise DevClusterError(f"template {name}.j2: {exc}") from None
    return out


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
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


def _namespace(paths: DevClusterPaths) -> dict | None:
    """The cluster's live PID namespace: ``{"init": host pid, "pid_ns": id}``, else None.

    Live means its init still runs and is still in the recorded namespace (not a recycled pid).
    """
    try:
        ns = json.loads(paths.namespace_file.read_text())
        init, ident = int(ns["init"]), str(ns["pid_ns"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if _pid_alive(init) and _pid_ns(init) == ident:
        return {"init": init, "pid_ns": ident}
    return None


def _pid_is_ours(pid: int, paths: DevClusterPaths, ns: dict | None = None) -> bool:
    """True when ``pid`` runs in this cluster's PID namespace."""
    ns = ns if ns is not None else _namespace(paths)
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
        if not _pid_alive(parent):
            return None
        time.sleep(0.02)
    return None


def _root_of(paths: DevClusterPaths) -> Path | None:
    """The Debian root the cluster's Slurm runs from, None for the machine's own Slurm."""
    root = (_load_state(paths) or {}).get("root")
    return Path(root) if root else None


def _start_namespace(paths: DevClusterPaths, root: Path | None) -> dict:
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
        setup += (' && mount -t proc proc "$1/proc" && mount --rbind /sys "$1/sys"'
                  ' && mount --rbind /dev "$1/dev" && mkdir -p "$1$2" && mount --bind "$2" "$1$2"')
    # The init must reap: slurmstepd and job processes that lose their parent are reparented to
    # it, and unreaped they stay as zombies that look alive to kill(pid, 0). bash reaps any
    # child in its SIGCHLD handler; as a namespace's init it ignores SIGTERM.
    setup += ' && exec bash -c "while :; do sleep 5 & wait; done"'
    logf = paths.log_file("namespace")
    with open(logf, "ab") as out:
        proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount", f"--propagation={propagation}", "--",
             "sh", "-c", setup, "kant-namespace",
             str(root or ""), str(paths.dir)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
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
        if not _pid_alive(init):
            break
        time.sleep(0.05)
    _kill_pid(proc.pid)
    raise DevClusterError("could not start the cluster's PID namespace (unshare --pid); "
                          f"see {logf}")


def _kill_pid(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    _reap([pid])


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the daemons do: a port left in TIME_WAIT by a cluster just stopped is free to them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _daemon_env(paths: DevClusterPaths) -> dict[str, str]:
    env = chroot.root_env() if _root_of(paths) is not None else dict(os.environ)
    env["SLURM_CONF"] = str(paths.slurm_conf)
    return env


def _client_env(paths: DevClusterPaths) -> dict[str, str]:
    return _daemon_env(paths)


def _nsenter(ns: dict, paths: DevClusterPaths) -> list[str]:
    """The command prefix that enters the cluster's PID and mount namespaces.

    Entering a mount namespace moves to its real root; --root keeps the namespace init's root
    instead (it differs when the cluster itself runs inside a Debian root, as the test suite of
    a newer release does) and --wd the cluster directory as working directory.
    """
    return ["nsenter", f"--target={ns['init']}", "--pid", "--mount", "--root", f"--wd={paths.dir}",
            "--"]


def client_argv(paths: DevClusterPaths, argv: Sequence[str]) -> list[str]:
    """``argv`` as it must run to talk to this cluster: unchanged for the machine's own Slurm;
    for a cluster from a Debian root, inside that root (through the cluster's namespace, which
    has the root's mounts). Set SLURM_CONF in its environment as for any cluster."""
    root = _root_of(paths)
    if root is None:
        return list(argv)
    ns = _namespace(paths)
    if ns is None:
        raise DevClusterError(f"the dev cluster in {paths.dir} does not run: "
                              "start it with `kant-slurm devcluster up` first")
    return [*_nsenter(ns, paths), "chroot", str(root), *argv]


def _run(argv: Sequence[str], env: dict | None = None, timeout: float = 60,
         input: str | None = None):
    try:
        return subprocess.run(
            list(argv), env=env, capture_output=True, text=True, timeout=timeout, input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise DevClusterError(f"{argv[0]}: command not found (is its Debian package "
                              "installed?)") from None
    except subprocess.TimeoutExpired:
        raise DevClusterError(f"{' '.join(argv[:3])}: no answer within {timeout:.0f}s") from None


def _crun(paths: DevClusterPaths, argv: Sequence[str], timeout: float = 60,
          input: str | None = None) -> subprocess.CompletedProcess:
    """A client command against this cluster (inside its root when it has one)."""
    return _run(client_argv(paths, argv), env=_client_env(paths), timeout=timeout, input=input)


def _binary(*candidates: str, root: Path | None = None) -> str:
    """The first candidate program that exists (in ``root`` when given; the path returned is
    the one inside it)."""
    for cand in candidates:
        if root is None:
            found = shutil.which(cand) or (cand if os.path.isabs(cand)
                                           and os.access(cand, os.X_OK) else None)
            if found:
                return found
            continue
        for path in ([cand] if os.path.isabs(cand) else
                     [f"{d}/{cand}" for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin")]):
            if os.access(str(root) + path, os.X_OK):
                return path
    where = f" in {root}" if root is not None else ""
    raise DevClusterError(f"{candidates[0]} not found{where}: install the Debian package "
                          "that has it")


def _spawn(name: str, argv: list[str], paths: DevClusterPaths, executable: str | None = None,
           env: dict[str, str] | None = None) -> int:
    """Start one daemon in the foreground inside the cluster's namespace; record its pid.

    ``executable`` runs under the name ``argv[0]``: Slurm daemons decide what they are from their
    program name (``slurmctld-wlm`` is not ``slurmctld`` to them and crashes on accounting).
    """
    ns = _namespace(paths)
    if ns is None:
        raise DevClusterError(f"{name}: the cluster's PID namespace is gone; see "
                              f"{paths.log_file('namespace')}")
    if executable is not None:
        argv = ["bash", "-c", 'exec -a "$0" "$@"', argv[0], executable, *argv[1:]]
    wrapped = _nsenter(ns, paths)
    root = _root_of(paths)
    if root is not None:
        wrapped += ["chroot", str(root)]
    logf = paths.log_file(name)
    with open(logf, "ab") as out:
        out.write(f"\n=== kant-slurm devcluster: starting {name}: {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            wrapped + argv, env=env or _daemon_env(paths), stdin=subprocess.DEVNULL, stdout=out,
            stderr=out, start_new_session=True, cwd=str(paths.dir),
        )
    _WRAPPERS.append(proc)
    # nsenter forks the daemon into the namespace and waits for it: record the daemon itself.
    pid = _child_of(proc.pid)
    if pid is None:
        raise DevClusterError(f"{name} did not start; see its log {logf}")
    paths.pid_file(name).write_text(f"{pid}\n")
    log.info("started %s (pid %d), log %s", name, pid, logf)
    return pid


def _wait_for(name: str, pid: int, ready, paths: DevClusterPaths, timeout: float,
              log_path: Path | None = None) -> None:
    """Poll ``ready()`` until it is true; the daemon dying or the timeout is a one-line error."""
    deadline = time.monotonic() + timeout
    logp = log_path or paths.log_file(name)
    while True:
        if not _pid_alive(pid):
            raise DevClusterError(f"{name} died on start; see its log {logp}")
        try:
            if ready():
                return
        except DevClusterError:
            pass
        if time.monotonic() > deadline:
            raise DevClusterError(f"{name} did not become ready within {timeout:.0f}s; "
                                  f"see its log {logp}")
        time.sleep(0.3)


# --------------------------------------------------------------------------------------------
# Packages
# --------------------------------------------------------------------------------------------


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
        raise DevClusterError(f"Debian packages missing ({' '.join(missing)}): run as root "
                              "to install them")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log.warning("installing Debian packages: %s", " ".join(missing))
    for argv in (["apt-get", "update"],
                 ["apt-get", "install", "-y", "--no-install-recommends", *missing]):
        res = subprocess.run(argv, env=env, capture_output=True, text=True,
                             stdin=subprocess.DEVNULL)
        if res.returncode != 0:
            tail = (res.stderr.strip().splitlines() or ["?"])[-1]
            raise DevClusterError(f"{' '.join(argv[:2])} failed: {tail}")
    return missing


# --------------------------------------------------------------------------------------------
# The cluster
# --------------------------------------------------------------------------------------------


@dataclass
class DevClusterStatus:
    """What runs of one dev cluster (``devcluster status --json``)."""

    dir: str
    running: bool
    daemons: dict[str, int | None] = field(default_factory=dict)  # name -> pid (None = not running)
    spec: dict | None = None
    slurm_conf: str = ""
    paths: dict[str, str] = field(default_factory=dict)
    root: str | None = None  # the Debian root its Slurm runs from; None: this machine's Slurm

    def as_dict(self) -> dict:
        return asdict(self)


def _daemon_names(spec: DevClusterSpec) -> list[str]:
    return (["munged", "mariadbd", "slurmdbd", "slurmctld"]
            + [f"slurmd-{n}" for n in spec.node_names])


def _load_state(paths: DevClusterPaths) -> dict | None:
    try:
        return json.loads(paths.state_file.read_text())
    except (OSError, ValueError):
        return None


def status(directory: Path) -> DevClusterStatus:
    """Which daemons of the cluster in ``directory`` run."""
    paths = DevClusterPaths(Path(directory).resolve())
    state = _load_state(paths)
    spec = DevClusterSpec(**state["spec"]) if state else None
    daemons: dict[str, int | None] = {}
    names = _daemon_names(spec) if spec else sorted(
        p.name[len("kant-"):-len(".pid")] for p in paths.run.glob("kant-*.pid")
    ) if paths.run.is_dir() else []
    for name in names:
        pid = _read_pid(paths.pid_file(name))
        daemons[name] = pid if pid and _pid_alive(pid) and _pid_is_ours(pid, paths) else None
    running = bool(daemons) and all(v is not None for v in daemons.values())
    return DevClusterStatus(
        dir=str(paths.dir),
        running=running,
        daemons=daemons,
        spec=asdict(spec) if spec else None,
        slurm_conf=str(paths.slurm_conf),
        root=(state or {}).get("root"),
        paths={
            "dir": str(paths.dir),
            "slurm_conf": str(paths.slurm_conf),
            "etc": str(paths.etc),
            "log": str(paths.log),
            "plugstack_conf": str(paths.plugstack_conf),
            "spank_plugin": str(paths.spank_plugin),
            "munge_socket": str(paths.munge_socket),
            "mariadb_socket": str(paths.mariadb_socket),
            "gpus": str(paths.gpus),
        },
    )


def _prepare_dirs(paths: DevClusterPaths, spec: DevClusterSpec) -> None:
    for sub in (paths.dir, paths.etc, paths.log, paths.run, paths.dir / "state",
                paths.dir / "spool", paths.munge_socket.parent, paths.mariadb_socket.parent,
                paths.gpus):
        sub.mkdir(parents=True, exist_ok=True)
    # munged refuses directories that others can write to.
    for sub in (paths.dir, paths.munge_socket.parent, paths.etc):
        os.chmod(sub, 0o700)
    for i in range(spec.gpus_per_node):
        (paths.gpus / f"nvidia{i}").touch()
    for name in spec.node_names:
        (paths.dir / "spool" / f"slurmd-{name}").mkdir(exist_ok=True)


def _build_spank_plugin(paths: DevClusterPaths) -> None:
    """Compile spank/kant_spank.c into the path plugstack.conf names, when we can.

    Best effort: without it the cluster works, and plugstack.conf names no plugin
    (:func:`write_plugstack`). Only a source checkout has spank/.
    """
    source = Path(__file__).resolve().parents[2] / "spank"
    root = _root_of(paths)
    if root is not None and (source / "Makefile").is_file():
        # Built inside the root, against that release's headers (a plugin built for another
        # release does not load): from a copy in the cluster directory, which the root sees.
        copy = paths.dir / "spank-src"
        shutil.copytree(source, copy, dirs_exist_ok=True)
        source = copy
    try:
        _binary("make", root=root), _binary("cc", root=root)
    except DevClusterError:
        log.info("SPANK plugin not built (no make/cc)")
        return
    if not (source / "Makefile").is_file():
        log.info("SPANK plugin not built (no spank/ sources)")
        return
    res = subprocess.run(client_argv(paths, ["make", "-s", "-C", str(source), f"OUT={paths.dir}",
                                             "all"]),
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        log.warning("building the kant SPANK plugin into %s failed (the cluster runs without "
                    "it, or with an earlier build): %s",
                    paths.spank_plugin, (res.stderr.strip().splitlines() or ["?"])[-1])


def write_plugstack(paths: DevClusterPaths) -> bool:
    """Write the cluster's plugstack.conf for the plugin as it is now: its line when
    ``paths.spank_plugin`` exists, none when it does not (sbatch would print a Dlopen error on
    every call). Slurm reads the file at each sbatch and job step, so no restart is needed.
    Returns whether the plugin is named."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template_dir())),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    built = paths.spank_plugin.is_file()
    try:
        text = env.get_template("plugstack.conf.j2").render(
            spank_plugin=str(paths.spank_plugin) if built else "")
    except jinja2.TemplateError as exc:
        raise DevClusterError(f"template plugstack.conf.j2: {exc}") from None
    paths.plugstack_conf.write_text(text)
    os.chmod(paths.plugstack_conf, 0o644)
    return built


def _write_configs(paths: DevClusterPaths, spec: DevClusterSpec, db_password: str) -> bool:
    """Render and write the config files; True when slurm.conf's node layout changed."""
    lua = site_job_submit_lua()
    if lua is not None:
        shutil.copyfile(lua, paths.etc / "job_submit.lua")
    elif (paths.etc / "job_submit.lua").exists():
        (paths.etc / "job_submit.lua").unlink()
    texts = render_configs(spec, paths, db_password, socket.gethostname().split(".")[0],
                           job_submit_lua=lua is not None)
    old = paths.slurm_conf.read_text() if paths.slurm_conf.exists() else None
    for name, text in texts.items():
        target = paths.etc / name
        target.write_text(text)
        os.chmod(target, 0o600 if name == "slurmdbd.conf" else 0o644)
    return old is not None and old != texts["slurm.conf"]


def _start_munged(paths: DevClusterPaths) -> None:
    if not paths.munge_key.exists():
        paths.munge_key.write_bytes(secrets.token_bytes(1024))
    os.chmod(paths.munge_key, 0o600)
    munged = _binary("munged", "/usr/sbin/munged", root=_root_of(paths))
    pid = _spawn("munged", [
        munged, "-F", "--force",
        f"--socket={paths.munge_socket}", f"--key-file={paths.munge_key}",
        f"--pid-file={paths.run / 'munged.pid'}", f"--log-file={paths.log / 'munged-own.log'}",
        f"--seed-file={paths.munge_socket.parent / 'munged.seed'}", "--num-threads=2",
    ], paths)

    def ready() -> bool:
        cred = _crun(paths, ["munge", "-n", "-S", str(paths.munge_socket)], timeout=10)
        if cred.returncode != 0:
            return False
        return _crun(paths, ["unmunge", "-S", str(paths.munge_socket)], timeout=10,
                     input=cred.stdout).returncode == 0

    _wait_for("munged", pid, ready, paths, 20)


def _mysql(paths: DevClusterPaths, sql: str) -> subprocess.CompletedProcess:
    client = _binary("mariadb", "mysql", root=_root_of(paths))
    return _crun(paths, [client, "--no-defaults", "-S", str(paths.mariadb_socket), "-u", "root",
                 "-e", sql], timeout=30)


def _start_mariadb(paths: DevClusterPaths, spec: DevClusterSpec, db_password: str) -> None:
    if not (paths.mariadb_data / "mysql").is_dir():
        install = _binary("mariadb-install-db", "mysql_install_db", root=_root_of(paths))
        res = _crun(paths, [install, "--no-defaults", "--user=root",
                            f"--datadir={paths.mariadb_data}",
                            "--auth-root-authentication-method=socket", "--skip-test-db"],
                    timeout=180)
        if res.returncode != 0:
            paths.log_file("mariadb-install-db").write_text(res.stdout + res.stderr)
            raise DevClusterError(
                f"mariadb-install-db failed; see its log {paths.log_file('mariadb-install-db')}"
            )
    mariadbd = _binary("mariadbd", "/usr/sbin/mariadbd", "mysqld", "/usr/sbin/mysqld",
                       root=_root_of(paths))
    extra = []
    if (_mariadb_major(paths) or 0) >= 11:
        # MariaDB 11.6+ (trixie, sid): slurmdbd asks for it; its queries expect the old isolation.
        extra.append("--innodb-snapshot-isolation=OFF")
    pid = _spawn("mariadbd", [
        mariadbd, "--no-defaults", "--user=root", f"--datadir={paths.mariadb_data}",
        f"--socket={paths.mariadb_socket}", f"--port={spec.ports['mariadb']}",
        "--bind-address=127.0.0.1", "--skip-name-resolve",
        f"--pid-file={paths.run / 'mariadbd.pid'}",
        # Small: several dev clusters may share a 2-core CI machine.
        "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M", "--max-connections=64",
        "--performance-schema=OFF", *extra,
    ], paths)
    _wait_for("mariadbd", pid, lambda: _mysql(paths, "select 1").returncode == 0, paths, 90)
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
    mariadbd = _binary("mariadbd", "/usr/sbin/mariadbd", "mysqld", "/usr/sbin/mysqld",
                       root=_root_of(paths))
    out = _crun(paths, [mariadbd, "--version"], timeout=30).stdout
    m = re.search(r"Ver\s+(\d+)\.", out)
    return int(m.group(1)) if m else None


def _slurmdbd_env(paths: DevClusterPaths) -> dict[str, str]:
    """slurmdbd's environment: on MariaDB 11's client library, Debian 12's library first.

    slurmdbd of 24.11/26.05 dies at start on MariaDB 11.8's libmariadb.so.3 (error 5027,
    `_check_mysql_concat_is_sane`) and works with 10.11's, which the root build puts in
    chroot.COMPAT_LIBMARIADB_DIR.
    """
    env = _daemon_env(paths)
    if (_mariadb_major(paths) or 0) < 11:
        return env
    root = _root_of(paths)
    compat = chroot.COMPAT_LIBMARIADB_DIR
    if not os.path.isfile(f"{root or ''}{compat}/libmariadb.so.3"):
        raise DevClusterError(
            "slurmdbd cannot use MariaDB 11's client library and "
            f"{root or ''}{compat}/libmariadb.so.3 "
            "is missing: rebuild the root with `kant-slurm devcluster root --rebuild`"
        )
    env["LD_LIBRARY_PATH"] = compat + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH")
                                       else "")
    return env


def _start_slurmdbd(paths: DevClusterPaths, spec: DevClusterSpec) -> None:
    pid = _spawn("slurmdbd",
                 [_binary("slurmdbd", "/usr/sbin/slurmdbd", root=_root_of(paths)), "-D"],
                 paths, env=_slurmdbd_env(paths))

    def ready() -> bool:
        return _crun(paths, ["sacctmgr", "-n", "-P", "show", "cluster"], timeout=20).returncode == 0

    _wait_for("slurmdbd", pid, ready, paths, 120, paths.log / "slurmdbd.log")
    listed = _crun(paths, ["sacctmgr", "-n", "-P", "show", "cluster",
                           "format=cluster"]).stdout.split()
    if spec.cluster_name not in listed:
        res = _crun(paths, ["sacctmgr", "-i", "add", "cluster", spec.cluster_name])
        if res.returncode != 0:
            raise DevClusterError(f"sacctmgr add cluster failed: {res.stderr.strip()[:200]}")
        _crun(paths, ["sacctmgr", "-i", "add", "account", "kant", f"Cluster={spec.cluster_name}",
                      "Description=kant-slurm dev cluster", "Organization=kant"])
        _crun(paths, ["sacctmgr", "-i", "add", "user", "root", "Account=kant",
                      f"Cluster={spec.cluster_name}"])
    ensure_qos(_client_env(paths), prefix=client_argv(paths, []))


# QOS of the dev cluster (site-config/PREEMPTION.md): name -> sacctmgr settings. `inference`
# gets a higher priority and may preempt `training` under Slurm's own preemption
# (PreemptType=preempt/qos); with kant's (the dev cluster's PreemptType=preempt/none) those
# preemption fields are inert and kant's engine picks the victims among `training` jobs.
DEV_QOS: dict[str, tuple[str, ...]] = {
    "training": ("Priority=0", "PreemptMode=requeue", "GraceTime=120",
                 "Description=preemptible training (kant: preemption.qos)"),
    "inference": ("Priority=100", "Preempt=training",
                  "Description=inference services, may preempt training"),
}


def ensure_qos(env: dict[str, str], prefix: Sequence[str] = ()) -> list[str]:
    """Create the dev cluster's QOS that are missing and let root use them; return those added.

    Idempotent: a cluster started before the QOS existed gets them on its next `up`. ``prefix``
    runs sacctmgr inside a cluster's root (see :func:`client_argv`).
    """
    prefix = list(prefix)
    res = _run([*prefix, "sacctmgr", "-n", "-P", "show", "qos", "format=name"], env=env)
    if res.returncode != 0:
        raise DevClusterError(f"sacctmgr show qos failed: {res.stderr.strip()[:200]}")
    have = set(res.stdout.split())
    added = []
    for name, settings in DEV_QOS.items():  # training first: inference's Preempt= names it
        if name in have:
            continue
        res = _run([*prefix, "sacctmgr", "-i", "add", "qos", name, *settings], env=env)
        if res.returncode != 0:
            raise DevClusterError(f"sacctmgr add qos {name} failed: {res.stderr.strip()[:200]}")
        added.append(name)
    if added:
        res = _run([*prefix, "sacctmgr", "-i", "modify", "user", "root", "set",
                    f"QOS+={','.join(DEV_QOS)}"], env=env)
        if res.returncode != 0 and "Nothing modified" not in res.stdout + res.stderr:
            raise DevClusterError(f"sacctmgr modify user root set QOS failed: "
                                  f"{res.stderr.strip()[:200]}")
        log.info("QOS added: %s", ", ".join(added))
    return added


def _start_slurmctld(paths: DevClusterPaths, clear_state: bool) -> None:
    # The -wlm build directly: the `slurmctld` alternative may point at slurm-wlm-emulator.
    binary = _binary("/usr/sbin/slurmctld-wlm", "slurmctld", root=_root_of(paths))
    argv = ["slurmctld", "-D", "-f", str(paths.slurm_conf)]
    if clear_state:
        argv.append("-c")  # the node layout changed: old job state would not fit it
    pid = _spawn("slurmctld", argv, paths, executable=binary)

    def ready() -> bool:
        res = _crun(paths, ["scontrol", "ping"], timeout=15)
        return res.returncode == 0 and "UP" in res.stdout

    _wait_for("slurmctld", pid, ready, paths, 60, paths.log / "slurmctld.log")


def _start_slurmds(paths: DevClusterPaths, spec: DevClusterSpec) -> dict[str, int]:
    slurmd = _binary("/usr/sbin/slurmd-wlm", "slurmd", root=_root_of(paths))
    pids = {}
    for name in spec.node_names:
        pids[name] = _spawn(f"slurmd-{name}",
                            ["slurmd", "-D", "-N", name, "-f", str(paths.slurm_conf)],
                            paths, executable=slurmd)
    return pids


def node_states(slurm_conf: Path, prefix: Sequence[str] = ()) -> dict[str, str]:
    """node -> its state word from ``sinfo -N`` (e.g. ``idle``, ``mix``, ``down*``).

    ``prefix`` runs sinfo inside a cluster's root (see :func:`client_argv`)."""
    res = _run([*prefix, "sinfo", "-h", "-N", "-o", "%N %t"],
               env=dict(os.environ, SLURM_CONF=str(slurm_conf)), timeout=20)
    if res.returncode != 0:
        raise DevClusterError(f"sinfo failed: {res.stderr.strip()[:200]}")
    out = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = parts[1]
    return out


def wait_idle(paths: DevClusterPaths, spec: DevClusterSpec, slurmd_pids: dict[str, int] | None,
              timeout: float = 120) -> None:
    """Wait until every node is idle; a slurmd that died is a one-line error naming its log."""
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        for name, pid in (slurmd_pids or {}).items():
            if not _pid_alive(pid):
                raise DevClusterError(
                    f"slurmd -N {name} died on start; see its log "
                    f"{paths.log / f'slurmd-{name}.log'}"
                )
        try:
            states = node_states(paths.slurm_conf, client_argv(paths, []))
        except DevClusterError:
            states = {}
        if len(states) == spec.nodes and all(s == "idle" for s in states.values()):
            return
        # Nodes marked down from an earlier run come back on registration (ReturnToService=2);
        # resume the rest explicitly.
        stuck = [n for n, s in states.items() if s.startswith(("down", "drain", "inval"))]
        if stuck:
            _crun(paths, ["scontrol", "update", f"nodename={compress(stuck)}", "state=resume"],
                  timeout=20)
        time.sleep(1)
    bad = {n: s for n, s in states.items() if s != "idle"}
    first = next(iter(bad), spec.node_names[0])
    raise DevClusterError(
        f"nodes not idle after {timeout:.0f}s ({compress(bad) or 'none listed'}: "
        f"{', '.join(sorted(set(bad.values()))) or 'no answer'}); see "
        f"{paths.log / f'slurmd-{first}.log'}"
        f" and {paths.log / 'slurmctld.log'}"
    )


def _check_ports(spec: DevClusterSpec) -> None:
    wanted = [("mariadbd", spec.ports["mariadb"]), ("slurmdbd", spec.ports["slurmdbd"]),
              ("slurmctld", spec.ports["slurmctld"])]
    wanted += [(f"slurmd -N {n}", spec.node_port(i)) for i, n in enumerate(spec.node_names)]
    for who, port in wanted:
        if not _port_free(port):
            raise DevClusterError(
                f"port {port} (for {who}) is in use: choose another --port-base "
                f"(or {PORT_BASE_ENV}); the cluster uses ports {spec.port_base}.."
                f"{spec.node_port(spec.nodes - 1)}"
            )


def up(directory: Path, spec: DevClusterSpec, install: bool = True, timeout: float = 180
       ) -> DevClusterStatus:
    """Start the cluster (or report the running one); return its status once all nodes are idle."""
    spec.validate()
    paths = DevClusterPaths(Path(directory).resolve())
    if any(ch.isspace() or ch in "\"'#=" for ch in str(paths.dir)):
        raise DevClusterError(
            f"--dir {str(paths.dir)!r}: choose a path without spaces, quotes, '#' or '=' "
            "(slurm.conf and mariadb-install-db cannot take them)"
        )
    # slurmstepd's socket is <spool>/slurmd-<node>/<node>_<job id>.<step id>: the batch step's
    # id has 10 digits, a dev cluster's job ids up to 6. A unix socket path has at most 107
    # characters: longer, and every job fails to launch ("Unix socket path ... is too long")
    # while the cluster itself comes up idle.
    node = spec.node_names[-1]
    step_socket = f"{paths.dir}/spool/slurmd-{node}/{node}_{'9' * 6}.{'9' * 10}"
    if len(str(paths.munge_socket)) > 100 or len(step_socket) > 107:
        raise DevClusterError(f"--dir {paths.dir} is too long for a unix socket path; choose a "
                              "shorter one (at most "
                              f"{107 - len(step_socket) + len(str(paths.dir))} "
                              "characters)")
    current = status(paths.dir)
    if current.running:
        old = DevClusterSpec(**current.spec) if current.spec else None
        if old is not None and old != spec:
            log.warning("a dev cluster already runs in %s with another shape (%s nodes, "
                        "port base %s);"
                        " run `kant-slurm devcluster down` first to change it",
                        paths.dir, old.nodes, old.port_base)
        log.info("dev cluster in %s already runs", paths.dir)
        return current
    if os.geteuid() != 0:
        raise DevClusterError("devcluster up must run as root (it starts munged, MariaDB and "
                              "Slurm daemons)")
    root = _slurm_root(spec.slurm_version, install)
    # Leftovers of a half-started cluster go first, so the ports and pid files are ours again.
    if any(v is not None for v in current.daemons.values()) or _namespace(paths) is not None:
        down(paths.dir)
    state = _load_state(paths)
    db_password = (state or {}).get("db_password") or secrets.token_hex(16)
    spec_to_use = spec
    _check_ports(spec_to_use)
    _prepare_dirs(paths, spec_to_use)
    old_version = ((state or {}).get("spec") or {}).get("slurm_version", chroot.DEFAULT_VERSION)
    if state and old_version != spec.slurm_version:
        # Another release's database and controller state: MariaDB and Slurm read files of older
        # releases at best, never of newer ones. The cluster starts afresh.
        log.warning("the cluster in %s ran Slurm %s before: clearing its job state and database "
                    "for Slurm %s", paths.dir, old_version, spec.slurm_version)
        for sub in (paths.mariadb_data, paths.dir / "state"):
            shutil.rmtree(sub, ignore_errors=True)
        _prepare_dirs(paths, spec_to_use)
    layout_changed = _write_configs(paths, spec_to_use, db_password)
    paths.state_file.write_text(json.dumps({"spec": asdict(spec_to_use), "db_password": db_password,
                                            "root": str(root) if root else None}))
    os.chmod(paths.state_file, 0o600)
    try:
        _start_namespace(paths, root)
        _build_spank_plugin(paths)
        write_plugstack(paths)
        _start_munged(paths)
        _start_mariadb(paths, spec_to_use, db_password)
        _start_slurmdbd(paths, spec_to_use)
        _start_slurmctld(paths, clear_state=layout_changed)
        pids = _start_slurmds(paths, spec_to_use)
        wait_idle(paths, spec_to_use, pids, timeout=timeout)
    except BaseException:
        # Nothing half-started stays behind.
        down(paths.dir)
        raise
    return status(paths.dir)


def _slurm_root(version: str, install: bool) -> Path | None:
    """None when ``version`` is the machine's own Slurm (its packages installed first when
    ``install``), else the Debian root with that release (built first when missing)."""
    if not chroot.needs_root(version):
        if install:
            ensure_packages()
        return None
    inside = chroot.inside_root()
    if inside is not None:
        raise DevClusterError(
            f"--slurm-version {version}: this is the Slurm {inside.get('slurm_version')} root; "
            f"run `kant-slurm devcluster up --slurm-version {version}` on the host instead"
        )
    root = chroot.root_path(version)
    if not chroot.root_ready(root) and not install:
        raise DevClusterError(f"--slurm-version {version}: its root {root} is not built and "
                              "--no-install was given; run `kant-slurm devcluster root "
                              f"--slurm-version {version}` first")
    return chroot.ensure_root(version)


def down(directory: Path, timeout: float = 30) -> list[str]:
    """Stop exactly the processes this cluster started; return the names stopped."""
    paths = DevClusterPaths(Path(directory).resolve())
    if not paths.run.is_dir():
        return []
    ns = _namespace(paths)
    pids: dict[str, int] = {}
    for pid_file in paths.run.glob("kant-*.pid"):
        name = pid_file.name[len("kant-"):-len(".pid")]
        pid = _read_pid(pid_file)
        if pid and ns and _pid_alive(pid) and _pid_is_ours(pid, paths, ns):
            pids[name] = pid
    # Jobs first, while slurmctld still answers, so their steps end cleanly.
    if "slurmctld" in pids:
        try:
            _crun(paths, ["scancel", "--full", "-u", "root"], timeout=10)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                left = _crun(paths, ["squeue", "-h", "-o", "%i"], timeout=10).stdout.split()
                if not left:
                    break
                time.sleep(0.5)
        except DevClusterError:
            pass
    # Reverse start order: slurmd, slurmctld, slurmdbd, then the database and munged; each gets
    # SIGTERM and time to save its state.
    stopped = []
    for group in ([n for n in sorted(pids) if n.startswith("slurmd-")], ["slurmctld"], ["slurmdbd"],
                  ["mariadbd"], ["munged"]):
        group = [n for n in group if n in pids]
        for name in group:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pids[name], signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_pid_alive(pids[n]) for n in group):
            _reap(pids[n] for n in group)
            time.sleep(0.1)
        for name in group:
            if _pid_alive(pids[name]):
                log.warning("%s (pid %d) ignored SIGTERM; killing it", name, pids[name])
                _kill_pid(pids[name])
        _reap(pids[n] for n in group)
        stopped.extend(group)
    # Whatever is left (job steps, their processes, clients run through `devcluster exec`) dies
    # with the namespace's init: the kernel kills every process of a PID namespace whose init
    # exits. Only this namespace: no name, path or environment is matched.
    if ns is not None:
        _kill_pid(ns["init"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _in_namespace(ns["pid_ns"]):
            time.sleep(0.05)
        left = _in_namespace(ns["pid_ns"])
        if left:
            raise DevClusterError(f"processes {left} of the cluster in {paths.dir} outlived its "
                                  "PID namespace; see `ps -o pid,stat,cmd -p ...`")
        _reap_children()
    for pid_file in paths.run.glob("kant-*.pid"):
        pid_file.unlink(missing_ok=True)
    paths.namespace_file.unlink(missing_ok=True)
    return stopped


def _in_namespace(pid_ns: str) -> list[int]:
    """Live pids in the PID namespace ``pid_ns``."""
    out = []
    for entry in Path("/proc").iterdir():
        if (entry.name.isdigit() and _pid_ns(int(entry.name)) == pid_ns
                and _pid_alive(int(entry.name))):
            out.append(int(entry.name))
    return out


# The unshare and nsenter processes this process started: they exit with their daemon (or the
# namespace) and are reaped here so a long-lived caller (the test session) keeps no zombies.
_WRAPPERS: list[subprocess.Popen] = []


def _reap_children() -> None:
    for proc in list(_WRAPPERS):
        if proc.poll() is not None:
            _WRAPPERS.remove(proc)


def _reap(pids) -> None:
    # Daemons started by this very process (the test fixture) are our children: reap them so
    # they do not linger as zombies.
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def running_processes(directory: Path) -> list[int]:
    """Pids of the live processes of this cluster: those in its PID namespace (``down`` leaves
    none)."""
    ns = _namespace(DevClusterPaths(Path(directory).resolve()))
    return _in_namespace(ns["pid_ns"]) if ns else []
