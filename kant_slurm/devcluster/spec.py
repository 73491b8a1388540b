"""The dev cluster's shape and files: :class:`DevClusterSpec` (nodes, GPUs, ports, Slurm
release), :class:`DevClusterPaths` (its private directory) and the config files rendered from
the jinja2 templates in ``site-config/dev-cluster`` (shipped inside the package as
``kant_slurm/data/dev-cluster``). Pure apart from reading the templates and the environment.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from ..errors import DevClusterError
from ..hostlist import compress
from . import chroot

log = logging.getLogger(__name__)


DEFAULT_PORT_BASE = 16800
PORT_BASE_ENV = "KANT_DEVCLUSTER_PORT_BASE"
DIR_ENV = "KANT_DEVCLUSTER_DIR"

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
                f"{self.nodes}"
            )

    @property
    def node_gpu_types(self) -> list[str]:
        """Each node's GPU type, in node order (``gpu_types``, else ``gpu_type`` everywhere)."""
        if not self.gpu_types:
            return [self.gpu_type] * self.nodes
        out: list[str] = []
        for item in self.gpu_types.split(","):
            typ, _, count = item.strip().partition(":")
            if (
                not typ.replace("_", "").replace("-", "").isalnum()
                or not count.isdigit()
                or int(count) < 1
            ):
                raise DevClusterError(
                    f"--gpu-types {self.gpu_types!r}: expected TYPE:NODES[,TYPE:NODES...] "
                    f"(e.g. h100:12,a100:4), got {item.strip()!r}"
                )
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
        raise DevClusterError(
            f"{PORT_BASE_ENV}={raw!r}: expected a port number like 16800"
        ) from None


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


def load_state(paths: DevClusterPaths) -> dict | None:
    """What ``up`` recorded of the running cluster (its spec, root, namespace), None if nothing."""
    try:
        return json.loads(paths.state_file.read_text())
    except (OSError, ValueError):
        return None
