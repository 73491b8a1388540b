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
and 26.05 run from a cached Debian root (:mod:`kant_slurm.devcluster.chroot`), the namespace holder
mounting /proc, /sys, /dev and the cluster directory (at the same path) into it, so paths and
SLURM_CONF read the same inside and out. Client commands of such a cluster must come from the
root too: :func:`client_argv` (``kant-slurm devcluster exec``) runs them there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
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
from .daemons import start_mariadb, start_munged, start_slurmctld, start_slurmdbd, start_slurmds
from .packages import ensure_packages
from .processes import (
    client_argv,
    client_env,
    cluster_namespace,
    crun,
    find_binary,
    in_namespace,
    kill_pid,
    pid_alive,
    pid_is_ours,
    port_free,
    read_pid,
    reap_children,
    reap_pids,
    root_of,
    run_command,
    start_namespace,
)
from .spec import (
    PORT_BASE_ENV,
    DevClusterPaths,
    DevClusterSpec,
    load_state,
    render_configs,
    site_job_submit_lua,
    template_dir,
)

log = logging.getLogger(__name__)


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
    return ["munged", "mariadbd", "slurmdbd", "slurmctld"] + [
        f"slurmd-{n}" for n in spec.node_names
    ]


def status(directory: Path) -> DevClusterStatus:
    """Which daemons of the cluster in ``directory`` run."""
    paths = DevClusterPaths(Path(directory).resolve())
    state = load_state(paths)
    spec = DevClusterSpec(**state["spec"]) if state else None
    daemons: dict[str, int | None] = {}
    names = (
        _daemon_names(spec)
        if spec
        else sorted(p.name[len("kant-") : -len(".pid")] for p in paths.run.glob("kant-*.pid"))
        if paths.run.is_dir()
        else []
    )
    for name in names:
        pid = read_pid(paths.pid_file(name))
        daemons[name] = pid if pid and pid_alive(pid) and pid_is_ours(pid, paths) else None
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
    for sub in (
        paths.dir,
        paths.etc,
        paths.log,
        paths.run,
        paths.dir / "state",
        paths.dir / "spool",
        paths.munge_socket.parent,
        paths.mariadb_socket.parent,
        paths.gpus,
    ):
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
    root = root_of(paths)
    if root is not None and (source / "Makefile").is_file():
        # Built inside the root, against that release's headers (a plugin built for another
        # release does not load): from a copy in the cluster directory, which the root sees.
        copy = paths.dir / "spank-src"
        shutil.copytree(source, copy, dirs_exist_ok=True)
        source = copy
    try:
        find_binary("make", root=root), find_binary("cc", root=root)
    except DevClusterError:
        log.info("SPANK plugin not built (no make/cc)")
        return
    if not (source / "Makefile").is_file():
        log.info("SPANK plugin not built (no spank/ sources)")
        return
    res = subprocess.run(
        client_argv(paths, ["make", "-s", "-C", str(source), f"OUT={paths.dir}", "all"]),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if res.returncode != 0:
        log.warning(
            "building the kant SPANK plugin into %s failed (the cluster runs without "
            "it, or with an earlier build): %s",
            paths.spank_plugin,
            (res.stderr.strip().splitlines() or ["?"])[-1],
        )


def write_plugstack(paths: DevClusterPaths) -> bool:
    """Write the cluster's plugstack.conf for the plugin as it is now: its line when
    ``paths.spank_plugin`` exists, none when it does not (sbatch would print a Dlopen error on
    every call). Slurm reads the file at each sbatch and job step, so no restart is needed.
    Returns whether the plugin is named."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    built = paths.spank_plugin.is_file()
    try:
        text = env.get_template("plugstack.conf.j2").render(
            spank_plugin=str(paths.spank_plugin) if built else ""
        )
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
    texts = render_configs(
        spec, paths, db_password, socket.gethostname().split(".")[0], job_submit_lua=lua is not None
    )
    old = paths.slurm_conf.read_text() if paths.slurm_conf.exists() else None
    for name, text in texts.items():
        target = paths.etc / name
        target.write_text(text)
        os.chmod(target, 0o600 if name == "slurmdbd.conf" else 0o644)
    return old is not None and old != texts["slurm.conf"]


# QOS of the dev cluster (site-config/PREEMPTION.md): name -> sacctmgr settings. `inference`
# gets a higher priority and may preempt `training` under Slurm's own preemption
# (PreemptType=preempt/qos); with kant's (the dev cluster's PreemptType=preempt/none) those
# preemption fields are inert and kant's engine picks the victims among `training` jobs.
DEV_QOS: dict[str, tuple[str, ...]] = {
    "training": (
        "Priority=0",
        "PreemptMode=requeue",
        "GraceTime=120",
        "Description=preemptible training (kant: preemption.qos)",
    ),
    "inference": (
        "Priority=100",
        "Preempt=training",
        "Description=inference services, may preempt training",
    ),
}


def ensure_qos(env: dict[str, str], prefix: Sequence[str] = ()) -> list[str]:
    """Create the dev cluster's QOS that are missing and let root use them; return those added.

    Idempotent: a cluster started before the QOS existed gets them on its next `up`. ``prefix``
    runs sacctmgr inside a cluster's root (see :func:`client_argv`).
    """
    prefix = list(prefix)
    res = run_command([*prefix, "sacctmgr", "-n", "-P", "show", "qos", "format=name"], env=env)
    if res.returncode != 0:
        raise DevClusterError(f"sacctmgr show qos failed: {res.stderr.strip()[:200]}")
    have = set(res.stdout.split())
    added = []
    for name, settings in DEV_QOS.items():  # training first: inference's Preempt= names it
        if name in have:
            continue
        res = run_command([*prefix, "sacctmgr", "-i", "add", "qos", name, *settings], env=env)
        if res.returncode != 0:
            raise DevClusterError(f"sacctmgr add qos {name} failed: {res.stderr.strip()[:200]}")
        added.append(name)
    if added:
        res = run_command(
            [
                *prefix,
                "sacctmgr",
                "-i",
                "modify",
                "user",
                "root",
                "set",
                f"QOS+={','.join(DEV_QOS)}",
            ],
            env=env,
        )
        if res.returncode != 0 and "Nothing modified" not in res.stdout + res.stderr:
            raise DevClusterError(
                f"sacctmgr modify user root set QOS failed: {res.stderr.strip()[:200]}"
            )
        log.info("QOS added: %s", ", ".join(added))
    return added


def node_states(slurm_conf: Path, prefix: Sequence[str] = ()) -> dict[str, str]:
    """node -> its state word from ``sinfo -N`` (e.g. ``idle``, ``mix``, ``down*``).

    ``prefix`` runs sinfo inside a cluster's root (see :func:`client_argv`)."""
    res = run_command(
        [*prefix, "sinfo", "-h", "-N", "-o", "%N %t"],
        env=dict(os.environ, SLURM_CONF=str(slurm_conf)),
        timeout=20,
    )
    if res.returncode != 0:
        raise DevClusterError(f"sinfo failed: {res.stderr.strip()[:200]}")
    out = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = parts[1]
    return out


def wait_idle(
    paths: DevClusterPaths,
    spec: DevClusterSpec,
    slurmd_pids: dict[str, int] | None,
    timeout: float = 120,
) -> None:
    """Wait until every node is idle; a slurmd that died is a one-line error naming its log."""
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        for name, pid in (slurmd_pids or {}).items():
            if not pid_alive(pid):
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
            crun(
                paths,
                ["scontrol", "update", f"nodename={compress(stuck)}", "state=resume"],
                timeout=20,
            )
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
    wanted = [
        ("mariadbd", spec.ports["mariadb"]),
        ("slurmdbd", spec.ports["slurmdbd"]),
        ("slurmctld", spec.ports["slurmctld"]),
    ]
    wanted += [(f"slurmd -N {n}", spec.node_port(i)) for i, n in enumerate(spec.node_names)]
    for who, port in wanted:
        if not port_free(port):
            raise DevClusterError(
                f"port {port} (for {who}) is in use: choose another --port-base "
                f"(or {PORT_BASE_ENV}); the cluster uses ports {spec.port_base}.."
                f"{spec.node_port(spec.nodes - 1)}"
            )


def up(
    directory: Path, spec: DevClusterSpec, install: bool = True, timeout: float = 180
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
        raise DevClusterError(
            f"--dir {paths.dir} is too long for a unix socket path; choose a "
            "shorter one (at most "
            f"{107 - len(step_socket) + len(str(paths.dir))} "
            "characters)"
        )
    current = status(paths.dir)
    if current.running:
        old = DevClusterSpec(**current.spec) if current.spec else None
        if old is not None and old != spec:
            log.warning(
                "a dev cluster already runs in %s with another shape (%s nodes, "
                "port base %s);"
                " run `kant-slurm devcluster down` first to change it",
                paths.dir,
                old.nodes,
                old.port_base,
            )
        log.info("dev cluster in %s already runs", paths.dir)
        return current
    if os.geteuid() != 0:
        raise DevClusterError(
            "devcluster up must run as root (it starts munged, MariaDB and Slurm daemons)"
        )
    root = _slurm_root(spec.slurm_version, install)
    # Leftovers of a half-started cluster go first, so the ports and pid files are ours again.
    if any(v is not None for v in current.daemons.values()) or cluster_namespace(paths) is not None:
        down(paths.dir)
    state = load_state(paths)
    db_password = (state or {}).get("db_password") or secrets.token_hex(16)
    spec_to_use = spec
    _check_ports(spec_to_use)
    _prepare_dirs(paths, spec_to_use)
    old_version = ((state or {}).get("spec") or {}).get("slurm_version", chroot.DEFAULT_VERSION)
    if state and old_version != spec.slurm_version:
        # Another release's database and controller state: MariaDB and Slurm read files of older
        # releases at best, never of newer ones. The cluster starts afresh.
        log.warning(
            "the cluster in %s ran Slurm %s before: clearing its job state and database "
            "for Slurm %s",
            paths.dir,
            old_version,
            spec.slurm_version,
        )
        for sub in (paths.mariadb_data, paths.dir / "state"):
            shutil.rmtree(sub, ignore_errors=True)
        _prepare_dirs(paths, spec_to_use)
    layout_changed = _write_configs(paths, spec_to_use, db_password)
    paths.state_file.write_text(
        json.dumps(
            {
                "spec": asdict(spec_to_use),
                "db_password": db_password,
                "root": str(root) if root else None,
            }
        )
    )
    os.chmod(paths.state_file, 0o600)
    try:
        start_namespace(paths, root)
        _build_spank_plugin(paths)
        write_plugstack(paths)
        start_munged(paths)
        start_mariadb(paths, spec_to_use, db_password)
        start_slurmdbd(paths, spec_to_use)
        # After slurmdbd: the QOS live in its database.
        ensure_qos(client_env(paths), prefix=client_argv(paths, []))
        start_slurmctld(paths, clear_state=layout_changed)
        pids = start_slurmds(paths, spec_to_use)
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
        raise DevClusterError(
            f"--slurm-version {version}: its root {root} is not built and "
            "--no-install was given; run `kant-slurm devcluster root "
            f"--slurm-version {version}` first"
        )
    return chroot.ensure_root(version)


def down(directory: Path, timeout: float = 30) -> list[str]:
    """Stop exactly the processes this cluster started; return the names stopped."""
    paths = DevClusterPaths(Path(directory).resolve())
    if not paths.run.is_dir():
        return []
    ns = cluster_namespace(paths)
    pids: dict[str, int] = {}
    for pid_file in paths.run.glob("kant-*.pid"):
        name = pid_file.name[len("kant-") : -len(".pid")]
        pid = read_pid(pid_file)
        if pid and ns and pid_alive(pid) and pid_is_ours(pid, paths, ns):
            pids[name] = pid
    # Jobs first, while slurmctld still answers, so their steps end cleanly.
    if "slurmctld" in pids:
        try:
            crun(paths, ["scancel", "--full", "-u", "root"], timeout=10)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                left = crun(paths, ["squeue", "-h", "-o", "%i"], timeout=10).stdout.split()
                if not left:
                    break
                time.sleep(0.5)
        except DevClusterError:
            pass
    # Reverse start order: slurmd, slurmctld, slurmdbd, then the database and munged; each gets
    # SIGTERM and time to save its state.
    stopped = []
    for group in (
        [n for n in sorted(pids) if n.startswith("slurmd-")],
        ["slurmctld"],
        ["slurmdbd"],
        ["mariadbd"],
        ["munged"],
    ):
        group = [n for n in group if n in pids]
        for name in group:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pids[name], signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(pid_alive(pids[n]) for n in group):
            reap_pids(pids[n] for n in group)
            time.sleep(0.1)
        for name in group:
            if pid_alive(pids[name]):
                log.warning("%s (pid %d) ignored SIGTERM; killing it", name, pids[name])
                kill_pid(pids[name])
        reap_pids(pids[n] for n in group)
        stopped.extend(group)
    # Whatever is left (job steps, their processes, clients run through `devcluster exec`) dies
    # with the namespace's init: the kernel kills every process of a PID namespace whose init
    # exits. Only this namespace: no name, path or environment is matched.
    if ns is not None:
        kill_pid(ns["init"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and in_namespace(ns["pid_ns"]):
            time.sleep(0.05)
        left = in_namespace(ns["pid_ns"])
        if left:
            raise DevClusterError(
                f"processes {left} of the cluster in {paths.dir} outlived its "
                "PID namespace; see `ps -o pid,stat,cmd -p ...`"
            )
        reap_children()
    for pid_file in paths.run.glob("kant-*.pid"):
        pid_file.unlink(missing_ok=True)
    paths.namespace_file.unlink(missing_ok=True)
    return stopped
