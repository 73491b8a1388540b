"""slurm.conf + gres.conf + topology.conf -> Inventory."""

import pytest

from kant_slurm.errors import InputError
from kant_slurm.formats.slurm_conf import conf_lines, gpu_gres, inventory_from_conf, read_slurm_conf

SLURM_CONF = """\
ClusterName=site   # comment
NodeName=DEFAULT CPUs=64 RealMemory=512000
NodeName=gn[01-04] Gres=gpu:a100:8 Feature=a100,leaf1 \\
   Weight=10
NodeName=gn[05-06] Gres=gpu CPUs=32
NodeName=cpu01 CPUs=16
PartitionName=DEFAULT MaxTime=2-00:00:00
PartitionName=gpu Nodes=gn[01-06] Default=YES PriorityTier=2
PartitionName=all Nodes=ALL MaxTime=UNLIMITED State=DOWN
"""
GRES_CONF = """\
AutoDetect=off
NodeName=gn[05-06] Name=gpu Type=t4 File=/dev/nvidia[0-3]
"""
TOPOLOGY_CONF = """\
SwitchName=leaf1 Nodes=gn[01-04]
SwitchName=leaf2 Nodes=gn[05-06],cpu01
SwitchName=spine Switches=leaf[1-2]
"""


def test_three_files_to_inventory(tmp_path):
    d = tmp_path / "etc with space"
    d.mkdir()
    (d / "slurm.conf").write_text(SLURM_CONF)
    (d / "gres.conf").write_text(GRES_CONF)
    (d / "topology.conf").write_text(TOPOLOGY_CONF)
    inv = read_slurm_conf(d / "slurm.conf")
    assert inv.names == ("gn01", "gn02", "gn03", "gn04", "gn05", "gn06", "cpu01")
    assert inv.gpus_total.tolist() == [8, 8, 8, 8, 4, 4, 0]
    assert inv.gpu_type == ("a100",) * 4 + ("t4", "t4", None)
    assert inv.cpus_total.tolist() == [64] * 4 + [32, 32, 16]
    assert inv.config_weight.tolist() == [10] * 4 + [1] * 3
    assert inv.features[0] == ("a100", "leaf1")
    gpu, part_all = inv.partitions
    assert gpu.default and gpu.priority_tier == 2 and gpu.max_time == 172800
    assert part_all.nodes == inv.names and part_all.max_time is None and not part_all.up
    assert inv.leaf_names == ("leaf1", "leaf2")
    assert inv.topology.chain("gn05") == ("leaf2", "spine")


def test_gpu_gres_forms():
    assert gpu_gres("gpu:a100:8", "f", 1) == (8, "a100")
    assert gpu_gres("gpu:4(S:0-1)", "f", 1) == (4, None)
    assert gpu_gres("gpu:a100:4,gpu:v100:2,nic:1", "f", 1) == (6, "v100")
    assert gpu_gres("gpu", "f", 1) == (None, None)


def test_continuations_and_comments():
    assert conf_lines("a=1 \\\n b=2 # c\n\n# x\nc=3\n", "f") == [(1, "a=1   b=2"), (5, "c=3")]


def test_bad_value_names_file_line_key():
    with pytest.raises(InputError, match=r"slurm.conf:1: CPUs='lots'"):
        inventory_from_conf("NodeName=a CPUs=lots\n")


def test_partition_with_unknown_node():
    with pytest.raises(InputError, match=r"slurm.conf:2: partition 'p' names node 'zz'"):
        inventory_from_conf("NodeName=a Gres=gpu:2\nPartitionName=p Nodes=zz\n")


def test_topology_with_unknown_node():
    with pytest.raises(InputError, match=r"topology.conf:1: switch 's' names node 'b'"):
        inventory_from_conf("NodeName=a Gres=gpu:2\n", None, "SwitchName=s Nodes=a,b\n")


def test_dev_cluster_template_renders_and_parses(tmp_path):
    # The dev cluster's own templates, rendered as `devcluster up` would, must read back.
    import jinja2
    from pathlib import Path

    tdir = Path(__file__).resolve().parents[2] / "site-config" / "dev-cluster"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(tdir)),
                             undefined=jinja2.ChainableUndefined)
    nodes = [{"name": f"gn{i:02d}", "port": 7000 + i, "leaf": f"leaf{(i - 1) // 2 + 1}"}
             for i in range(1, 5)]
    values = dict(dir=str(tmp_path), cluster_name="kantdev", ctld_host="localhost",
                  ports={"slurmctld": 6817, "slurmd_first": 7001, "slurmdbd": 6819},
                  munge_socket="/tmp/m", nodes=nodes, cpus_per_node=8, memory_mb=1000,
                  gpu_type="h100", gpus_per_node=8, all_nodes="gn[01-04]", leaf_size=2,
                  leaves=[{"name": "leaf1", "nodes": "gn[01-02]"},
                          {"name": "leaf2", "nodes": "gn[03-04]"}],
                  leaf_names="leaf[1-2]", partitions=[], job_submit_lua=False)
    for name in ("slurm.conf", "gres.conf", "topology.conf"):
        (tmp_path / name).write_text(env.get_template(name + ".j2").render(**values))
    inv = read_slurm_conf(tmp_path / "slurm.conf")
    assert inv.names[:4] == ("gn01", "gn02", "gn03", "gn04")
    assert inv.gpus_total.tolist()[:4] == [8, 8, 8, 8]
    assert inv.leaf_names == ("leaf1", "leaf2")
