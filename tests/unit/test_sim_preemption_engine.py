"""The simulator with the real preempting policies (engine/preempt/): an inference job on a
cluster full of training, end to end. Expected times worked out by hand from the simulator's
rules (sim/simulator.py) and the policies' documented triggers."""

import pandas as pd
import pytest

from kant_slurm.config import load_config
from kant_slurm.engine.classify import make_classifier
from kant_slurm.engine.registry import get_policy
from kant_slurm.sim.cluster import parse_cluster_spec
from kant_slurm.sim.simulator import Simulator
from kant_slurm.sim.workload import prepare_workload

CONFIG = ("inference: {sla: 60}\n"
          "preemption: {enabled: true, slurm: true, classes: [training], "
          "checkpoint_interval: 600, lead_seconds: 30}\n")


@pytest.fixture()
def setup(tmp_path):
    spec = parse_cluster_spec({"name": "t", "pools": [{
        "name": "gpu", "gpu_type": "v100", "nodes": 2, "gpus_per_node": 8, "cpus_per_node": 64,
        "leaf_size": 2}]})
    path = tmp_path / "kant.yaml"
    path.write_text(CONFIG)
    config = load_config(path)
    rows = [("T1", 0, 5000, 8, 7200, "training"), ("T2", 0, 5000, 8, 7200, "training"),
            ("I", 1000, 300, 1, 3600, "inference")]
    df = pd.DataFrame(rows, columns=["job_id", "submit_time", "duration", "gpus", "time_limit",
                                     "job_class"])
    for c, v in (("num_nodes", 0), ("user", ""), ("account", ""), ("partition", ""),
                 ("name", "")):
        df[c] = v
    df["line"] = range(2, 2 + len(df))
    return spec, config, prepare_workload(df, spec.inventory)


@pytest.mark.parametrize("policy, start, lost", [
    # slurm (preempt/qos, REQUEUE): at once, at the submit's cycle. T1 ran 1000 s with a
    # checkpoint at 600: 400 s x 8 GPUs lost.
    ("slurm", 1000, 3200),
    # kant: once the deadline (1060) is 30 s (lead) away, at the poll cycle at 1030: 430 s x 8
    ("kant", 1030, 3440),
])
def test_inference_preempts_training(setup, policy, start, lost):
    spec, config, workload = setup
    res = Simulator(spec.inventory, workload, get_policy(policy, config),
                    classifier=make_classifier(config)).run()
    rec = res.records.set_index("job_id")
    assert res.preemptions == 1
    assert rec.loc["I", "start_time"] == start and rec.loc["I", "sla"] == 60
    victim = rec.loc["T1"] if rec.loc["T1", "preemptions"] else rec.loc["T2"]
    assert victim["preempted_gpu_seconds"] == lost
    # 4,400 s left after the checkpoint at 600; the node is whole again when I ends (+300 s),
    # after the 121 s requeue delay
    assert victim["last_start_time"] == start + 300
    assert victim["end_time"] == start + 300 + 4400 and victim["state"] == "COMPLETED"
    assert victim["nodes"] == rec.loc["I", "nodes"]
