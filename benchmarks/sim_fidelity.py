"""Simulator fidelity: the plain-Slurm replay of real_cluster_compare.py vs the simulator's
``slurm`` policy on the same slice, same cluster, same compression.

Both sides see the same jobs: the compressed, shaped table of
:func:`kant_slurm.slurm.replay.prepare_replay` (read on the same live inventory). Compares per
job the start times (seconds after the replay began, on the wall clock of the replay) and
whether the job landed on the same leaf group(s).

    python benchmarks/real_cluster_compare.py --only slurm --out /tmp/kant-real-compare.json
    python benchmarks/sim_fidelity.py --real /tmp/kant-real-compare.json

Measured 2026-11-21 (400 Philly jobs, 32 x 8 GPUs, leaf 4, run times / 30, arrivals / 900):
start real - sim (wall s) p10 -0.6, p50 +1.6, p90 +4.7, |diff| p90 5.6, 99% within 10 s;
mean wait real 20.5 s vs sim 18.2 s; same leaf group 34% (multi-node jobs 69%), same nodes
24%. With arrivals / 120 (no queueing): |diff| p90 1.5 s, same leaf group 41% (multi-node 81%).
Why placements differ: the simulator allocates no CPUs, so the `slurm` model's best fit by free
CPUs has nothing to go on, while real cons_tres (1 CPU per task here) packs 1-GPU jobs onto the
node with the most jobs; and real starts lag ~1-2 s (launch latency) that the model lacks.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--real", default="/tmp/kant-real-compare.json",
                    help="output of real_cluster_compare.py (its 'slurm' run is used)")
    ap.add_argument("--interval", type=float, default=1.0,
                    help="simulator cycle interval in replay (wall) seconds")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()

    from kant_slurm.config import load_config
    from kant_slurm.engine.registry import get_policy
    from kant_slurm.sim.simulator import SimSettings, Simulator, prepare_workload
    from kant_slurm.slurm import read_snapshot
    from kant_slurm.slurm.replay import prepare_replay

    data = json.loads(Path(args.real).read_text())
    a = data["args"]
    run = next(r for r in data["runs"] if r["label"] == "slurm")
    if not os.environ.get("SLURM_CONF"):
        os.environ["SLURM_CONF"] = str(Path(a["dir"]) / "etc" / "slurm.conf")
    inventory = read_snapshot().inventory
    # The simulator's node weights are slurm.conf's (a steered run may be changing them now).
    from kant_slurm.slurm.actuator import config_weights

    conf = config_weights()
    inventory = dataclasses.replace(
        inventory, config_weight=np.array([conf.get(n, 1) for n in inventory.names],
                                          dtype=np.int64))
    jobs = prepare_replay(a["trace"], "philly", speedup=a["speedup"], limit=a["limit"],
                          skip=a["skip"], arrival_speedup=a["arrival_speedup"],
                          max_runtime=a["max_runtime"], seed=a["seed"], inventory=inventory)
    workload = prepare_workload(jobs.table, inventory)
    config = load_config()
    sim = Simulator(inventory, workload, get_policy("slurm", config),
                    settings=SimSettings(interval=args.interval)).run()
    s = sim.records.set_index("job_id")
    real = pd.DataFrame(run["records"]).set_index("job_id")
    speed = float(a["speedup"])
    # Real times are on the trace clock (x speedup) from the replay's start: back to wall seconds.
    r_start = real["start_time"] / speed
    r_sub = real["submit_time"] / speed
    common = s.index.intersection(real.index)
    started = [j for j in common if math.isfinite(s.at[j, "start_time"])
               and math.isfinite(r_start[j])]
    diff = np.array([r_start[j] - s.at[j, "start_time"] for j in started])
    wait_real = np.array([r_start[j] - r_sub[j] for j in started])
    wait_sim = np.array([s.at[j, "start_time"] - s.at[j, "submit_time"] for j in started])
    leaf = inventory.topology.leaf_of

    def leaves(nodes) -> frozenset:
        return frozenset(leaf.get(n, n) for n in nodes)

    same_leaf = [leaves(s.at[j, "nodes"]) == leaves(tuple(real.at[j, "nodes"])) for j in started]
    same_node = [set(s.at[j, "nodes"]) == set(real.at[j, "nodes"]) for j in started]
    multi = [j for j in started if len(real.at[j, "nodes"]) > 1]
    same_leaf_multi = [leaves(s.at[j, "nodes"]) == leaves(tuple(real.at[j, "nodes"]))
                       for j in multi]
    q = lambda x, p: float(np.percentile(x, p)) if len(x) else float("nan")  # noqa: E731
    out = {
        "jobs_compared": len(started),
        "start_diff_s": {"mean": float(diff.mean()), "p10": q(diff, 10), "p50": q(diff, 50),
                         "p90": q(diff, 90), "abs_p50": q(np.abs(diff), 50),
                         "abs_p90": q(np.abs(diff), 90), "abs_max": float(np.abs(diff).max())},
        "share_abs_diff_le_2s": float(np.mean(np.abs(diff) <= 2.0)),
        "share_abs_diff_le_10s": float(np.mean(np.abs(diff) <= 10.0)),
        "wait_mean_s": {"real": float(wait_real.mean()), "sim": float(wait_sim.mean())},
        "same_leaf_group_share": float(np.mean(same_leaf)),
        "same_nodes_share": float(np.mean(same_node)),
        "same_leaf_group_share_multinode": float(np.mean(same_leaf_multi)) if multi else None,
        "multinode_jobs": len(multi),
        "sim_interval_s": args.interval,
        "units": "wall seconds of the replay (x speedup for trace seconds)",
    }
    print(json.dumps(out, indent=2))
    # The worst disagreements, to see why the model diverges.
    order = np.argsort(-np.abs(diff))[:10]
    print("largest start-time differences (real - sim, wall s): job gpus nodes_real nodes_sim")
    for i in order:
        j = started[i]
        print(f"  {j:>6} {diff[i]:+8.1f}s gpus={real.at[j, 'gpus']:<3} real={','.join(real.at[j, 'nodes'])}"
              f" sim={','.join(s.at[j, 'nodes'])}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
