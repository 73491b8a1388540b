"""``kant-slurm devcluster up|down|status``: a real local Slurm GPU cluster for trying things out."""

from __future__ import annotations

from pathlib import Path

import click

from ..slurm import devcluster as dc
from .options import echo_json, json_option


def _dir_option(f):
    return click.option(
        "--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
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
    """


@devcluster.command("up")
@_dir_option
@click.option("--nodes", default=16, show_default=True, help="Number of GPU nodes.")
@click.option("--gpus-per-node", default=8, show_default=True, help="GPUs declared per node.")
@click.option("--leaf-size", default=4, show_default=True, help="Nodes per leaf switch.")
@click.option("--gpu-type", default="h100", show_default=True, help="GRES type (gpu:<type>:<n>).")
@click.option("--gpu-types", default="", metavar="TYPE:NODES,...",
              help="Several GPU types in node order, e.g. h100:12,a100:4 (default: --gpu-type "
                   "on every node).")
@click.option("--inference-nodes", default=0, show_default=True,
              help="The last K nodes are also in partition 'infer'.")
@click.option("--port-base", type=int, default=None,
              help="First port used (default $KANT_DEVCLUSTER_PORT_BASE, else 16800).")
@click.option("--no-install", is_flag=True, help="Do not apt-get install missing packages.")
@click.option("--timeout", default=180, show_default=True, help="Seconds to wait for idle nodes.")
def up(directory, nodes, gpus_per_node, leaf_size, gpu_type, gpu_types, inference_nodes,
       port_base, no_install, timeout) -> None:
    """Install missing Debian packages, start the cluster, wait until every node is idle.

    Example: kant-slurm devcluster up --nodes 16 --gpus-per-node 8 --leaf-size 4
    """
    spec = dc.DevClusterSpec(
        nodes=nodes, gpus_per_node=gpus_per_node, leaf_size=leaf_size, gpu_type=gpu_type,
        gpu_types=gpu_types, inference_nodes=inference_nodes,
        port_base=port_base if port_base is not None else dc.default_port_base(),
    )
    target = directory or dc.default_dir()
    before = dc.status(target)
    st = dc.up(target, spec, install=not no_install, timeout=timeout)
    shape = st.spec or {}
    verb = "already running" if before.running else "up"
    click.echo(
        f"dev cluster {verb}: {shape.get('nodes')} nodes x {shape.get('gpus_per_node')} "
        f"{shape.get('gpu_type')} GPUs, leaf size {shape.get('leaf_size')}, "
        f"port base {shape.get('port_base')}, dir {st.dir}"
    )
    click.echo(f"export SLURM_CONF={st.slurm_conf}")


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


commands = [devcluster]
