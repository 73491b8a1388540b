"""``kant-slurm devcluster up|down|status``: a real local Slurm GPU cluster for trying things
out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from ..errors import DevClusterError
from ..devcluster import chroot
from .. import devcluster as dc
from .options import echo_json, json_option


def _slurm_version_option(f):
    return click.option(
        "--slurm-version",
        default=None,
        metavar="|".join(chroot.VERSIONS),
        help="Slurm release: 22.05 from this machine's Debian 12 packages; 24.11 (Debian 13) "
        "and 26.05 (Debian sid) from a cached Debian root. Default: the Slurm installed "
        "here, else 22.05.",
    )(f)


def _dir_option(f):
    return click.option(
        "--dir",
        "directory",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="State directory of the cluster (default $KANT_DEVCLUSTER_DIR, else "
        "~/.cache/kant-slurm/devcluster).",
    )(f)


@click.group("devcluster")
def devcluster() -> None:
    """A real Slurm GPU cluster on this machine, in one private directory.

    \b
    Examples:
      kant-slurm devcluster up                         # 16 nodes x 8 h100 GPUs, 4 leaf switches
      eval "$(kant-slurm devcluster up | grep ^export)"  # then squeue/sbatch talk to it
      kant-slurm devcluster up --nodes 8 --inference-nodes 2 --port-base 17000 --dir /tmp/c2
      kant-slurm devcluster status --json
      kant-slurm devcluster down
      kant-slurm devcluster up --slurm-version 24.11 --dir /tmp/c24 --port-base 18800
      kant-slurm devcluster exec --dir /tmp/c24 -- sinfo   # 24.11's sinfo, from its root
      kant-slurm devcluster down --dir /tmp/c24
    """


@devcluster.command("up")
@_dir_option
@click.option("--nodes", default=16, show_default=True, help="Number of GPU nodes.")
@click.option("--gpus-per-node", default=8, show_default=True, help="GPUs declared per node.")
@click.option("--leaf-size", default=4, show_default=True, help="Nodes per leaf switch.")
@click.option("--gpu-type", default="h100", show_default=True, help="GRES type (gpu:<type>:<n>).")
@click.option(
    "--gpu-types",
    default="",
    metavar="TYPE:NODES,...",
    help="Several GPU types in node order, e.g. h100:12,a100:4 (default: --gpu-type "
    "on every node).",
)
@click.option(
    "--inference-nodes",
    default=0,
    show_default=True,
    help="The last K nodes are also in partition 'infer'.",
)
@click.option(
    "--port-base",
    type=int,
    default=None,
    help="First port used (default $KANT_DEVCLUSTER_PORT_BASE, else 16800).",
)
@_slurm_version_option
@click.option(
    "--no-install",
    is_flag=True,
    help="Do not apt-get install missing packages nor build a missing root.",
)
@click.option("--timeout", default=180, show_default=True, help="Seconds to wait for idle nodes.")
def up(
    directory,
    nodes,
    gpus_per_node,
    leaf_size,
    gpu_type,
    gpu_types,
    inference_nodes,
    port_base,
    slurm_version,
    no_install,
    timeout,
) -> None:
    """Install missing Debian packages, start the cluster, wait until every node is idle.

    \b
    Slurm versions (CI runs the Slurm test suite on 22.05 and 24.11, and on 26.05 with
    KANT_CI_SLURM_VERSIONS="24.11 26.05"):
      22.05  Debian 12's packages on this machine (apt-get installs them when missing).
      24.11  Debian 13 (trixie), 26.05  Debian sid: run from a Debian root built once with
             debootstrap (about 1.5 to 2 minutes, 1.2 GB) and cached in $KANT_SLURM_ROOTS
             (default /var/cache/kant-slurm/roots/<suite>). Everything runs from the root;
             run its client commands with `devcluster exec`.

    \b
    Examples:
      kant-slurm devcluster up --nodes 16 --gpus-per-node 8 --leaf-size 4
      kant-slurm devcluster up --slurm-version 24.11 --dir /tmp/c24 --port-base 18800
      kant-slurm devcluster exec --dir /tmp/c24 -- squeue
    """
    spec = dc.DevClusterSpec(
        nodes=nodes,
        gpus_per_node=gpus_per_node,
        leaf_size=leaf_size,
        gpu_type=gpu_type,
        gpu_types=gpu_types,
        inference_nodes=inference_nodes,
        port_base=port_base if port_base is not None else dc.default_port_base(),
        slurm_version=slurm_version or chroot.default_version(),
    )
    target = directory or dc.default_dir()
    before = dc.status(target)
    st = dc.up(target, spec, install=not no_install, timeout=timeout)
    shape = st.spec or {}
    verb = "already running" if before.running else "up"
    click.echo(
        f"dev cluster {verb}: {shape.get('nodes')} nodes x {shape.get('gpus_per_node')} "
        f"{shape.get('gpu_type')} GPUs, leaf size {shape.get('leaf_size')}, "
        f"port base {shape.get('port_base')}, Slurm {shape.get('slurm_version')}, dir {st.dir}"
    )
    click.echo(f"export SLURM_CONF={st.slurm_conf}")
    if st.root:
        click.echo(
            f"# Slurm {shape.get('slurm_version')} runs from {st.root}: run its commands "
            f"with `kant-slurm devcluster exec --dir {st.dir} -- <command>`"
        )


@devcluster.command("down")
@_dir_option
def down(directory) -> None:
    """Stop every process the cluster started (by pid). Example: kant-slurm devcluster down"""
    target = directory or dc.default_dir()
    stopped = dc.down(target)
    click.echo(f"stopped {len(stopped)} processes of the dev cluster in {Path(target).resolve()}")


@devcluster.command("status")
@_dir_option
@json_option
def status(directory, as_json) -> None:
    """Say which daemons of the cluster run. Example: kant-slurm devcluster status --json"""
    st = dc.status(directory or dc.default_dir())
    if as_json:
        echo_json(st.as_dict())
        return
    if not st.daemons:
        click.echo(f"no dev cluster in {st.dir}")
        return
    up_count = sum(1 for p in st.daemons.values() if p)
    word = "running" if st.running else ("stopped" if up_count == 0 else "partly running")
    click.echo(f"dev cluster in {st.dir}: {word} ({up_count}/{len(st.daemons)} daemons)")
    for name, pid in st.daemons.items():
        click.echo(f"  {name:<16} {'pid ' + str(pid) if pid else 'stopped'}")
    if st.running:
        click.echo(f"export SLURM_CONF={st.slurm_conf}")


@devcluster.command("exec", context_settings={"ignore_unknown_options": True})
@_dir_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(directory, command) -> None:
    """Run a command against the cluster: SLURM_CONF set, and inside the cluster's Debian root
    when its Slurm comes from one (24.11, 26.05). Its exit status is the command's.

    Example: kant-slurm devcluster exec --dir /tmp/c24 -- sbatch --gres=gpu:1 --wrap 'sleep 60'
    """
    target = directory or dc.default_dir()
    st = dc.status(target)
    if not st.running:
        raise DevClusterError(
            f"no running dev cluster in {st.dir}: start it with `kant-slurm devcluster up` first"
        )
    argv = dc.client_argv(dc.DevClusterPaths(Path(st.dir)), list(command))
    env = chroot.root_env() if st.root else dict(os.environ)
    env["SLURM_CONF"] = st.slurm_conf
    try:
        res = subprocess.run(argv, env=env)
    except FileNotFoundError:
        raise DevClusterError(f"{command[0]}: command not found") from None
    sys.exit(res.returncode)


@devcluster.command("root")
@_slurm_version_option
@click.option("--rebuild", is_flag=True, help="Build the root again from scratch.")
def root(slurm_version, rebuild) -> None:
    """Build (once) the Debian root of a Slurm release and print its path.

    The root lives in $KANT_SLURM_ROOTS/<suite> (default /var/cache/kant-slurm/roots); `up`
    builds it when missing. Example: kant-slurm devcluster root --slurm-version 24.11
    """
    slurm_version = chroot.check_version(slurm_version or chroot.default_version())
    if slurm_version == chroot.DEFAULT_VERSION:
        raise DevClusterError(
            "--slurm-version 22.05 runs from this machine's Debian 12 packages: it has no root"
        )
    path = chroot.root_path(slurm_version)
    if rebuild and path.exists():
        chroot.remove_root(path)
    click.echo(chroot.ensure_root(slurm_version))


commands = [devcluster]
