"""Real-cluster comparison: the same Philly slice replayed on a live Slurm, plain vs steered.

On a dev cluster of 32 nodes x 8 GPUs with leaf switches of 4 nodes, the slice is replayed twice
as `sleep` jobs (kant_slurm.devcluster.replay): once on plain Slurm, once while `kant-slurm daemon`
steers it. Prints GAR, GFR, stranded shares and waits by size bucket side by side, plus the
daemon's cycle times, and writes everything (records included) to --out for sim_fidelity.py.

    python benchmarks/real_cluster_compare.py --out /tmp/kant-real-compare.json

Defaults: Philly jobs 50551..50950 of benchmarks/traces/philly-2017-sep-oct.csv.gz (400 jobs, 16 of
them multi-node), run times and limits / 30, arrivals / 120, jobs cut at 6 h (a partition
MaxTime), ladder time limits (seed 0); each run takes about 15 minutes.

Measured 2026-11-21 on the 2-core dev machine (trace seconds; load 2-4 from other work), with
--arrival-speedup 900, best-fit node weights and multi-node pins (README has the full table):
                          plain Slurm (2 runs)       kant daemon 2 s   kant daemon 5 s
    GFR mean              0.200 / 0.268              0.131             0.191
    wait mean             614 / 618                  739               600
    8+ GPUs mean / max    440 / 3120, 446 / 3600     451 / 2340        452 / 3270
    not started           0                          0                 0
    daemon cycles p95     -                          0.63 s            0.73 s
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TRACE = (Path(os.environ["KANT_TRACES"]) / "philly-2017-sep-oct.csv"
                 if os.environ.get("KANT_TRACES")
                 else ROOT / "benchmarks" / "traces" / "philly-2017-sep-oct.csv.gz")


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def cancel_all(env) -> None:
    subprocess.run(["scancel", "--full", "-u", "root"], env=env, capture_output=True)
    for _ in range(120):
        left = subprocess.run(["squeue", "-h", "-o", "%i"], env=env, capture_output=True,
                              text=True).stdout.split()
        if not left:
            return
        time.sleep(1)


def run_once(label: str, args, env, steer: bool) -> dict:
    from kant_slurm.devcluster.replay import prepare_replay, replay_trace

    jobs = prepare_replay(args.trace, "philly", speedup=args.speedup, limit=args.limit,
                          skip=args.skip, arrival_speedup=args.arrival_speedup,
                          max_runtime=args.max_runtime, seed=args.seed)
    daemon = None
    daemon_log = Path(args.workdir) / f"daemon-{label}.log"
    state = Path(args.workdir) / "state.json"
    lock = Path(args.workdir) / "steer.lock"
    if steer:
        state.unlink(missing_ok=True)
        with open(daemon_log, "w") as fh:  # the daemon keeps its own copy of the descriptor
            daemon = subprocess.Popen(
                ["kant-slurm", "-v", "daemon", "--interval",
                 str(args.interval), "--state-file", str(state), "--lock-file", str(lock)],
                env=env, stdout=fh, stderr=subprocess.STDOUT)
        time.sleep(2)
    log(f"{label}: replaying {len(jobs.table)} jobs")
    try:
        res = replay_trace(jobs, timeout=args.timeout,
                           on_progress=lambda m: log(f"{label}: {m}"))
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()
            subprocess.run(["kant-slurm", "reset", "--state-file",
                            str(state), "--lock-file", str(lock)], env=env)
    out = {"label": label, "headline": res.headline, "detail": res.detail,
           "wall_s": res.wall_s, "notes": res.notes, "submitted": res.submitted,
           "failed_submits": res.failed_submits,
           "records": json.loads(res.records.to_json(orient="records")),
           "inventory_nodes": list(jobs.inventory.names),
           "speedup": args.speedup, "arrival_speedup": args.arrival_speedup}
    if steer:
        durs = [float(m.group(1)) for m in re.finditer(r"cycle (\d+\.\d+)s \(read",
                                                        daemon_log.read_text())]
        out["daemon_cycles"] = len(durs)
        if durs:
            out["cycle_p50_s"] = float(np.percentile(durs, 50))
            out["cycle_p95_s"] = float(np.percentile(durs, 95))
            out["cycle_max_s"] = float(max(durs))
        out["changes"] = len(re.findall(r"scontrol update", daemon_log.read_text()))
    return out


def fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def print_table(runs: list[dict]) -> None:
    keys = ["jobs", "gar_mean", "gfr_mean", "stranded_gpu_share", "wait_mean_s", "wait_p50_s",
            "wait_p90_s", "wait_p99_s", "jct_mean_s", "makespan_s"]
    dkeys = ["stranded_gpu_share_leaf", "gfr_p50", "wait_max_s", "not_started", "backfilled"]
    print(f"{'metric':<26}" + "".join(f"{r['label']:>16}" for r in runs))
    for k in keys:
        print(f"{k:<26}" + "".join(f"{fmt(r['headline'].get(k)):>16}" for r in runs))
    for k in dkeys:
        print(f"{k:<26}" + "".join(f"{fmt(r['detail'].get(k)):>16}" for r in runs))
    print("waits by size bucket (trace seconds): mean / p90 / max")
    buckets = sorted({b["size_bucket"] for r in runs for b in r["detail"].get("by_size", [])})
    for b in buckets:
        cells = []
        for r in runs:
            row = next((x for x in r["detail"].get("by_size", []) if x["size_bucket"] == b), None)
            cells.append("-" if row is None else
                         f"n={row['jobs']} {fmt(row['mean'])}/{fmt(row['p90'])}/{fmt(row['max'])}")
        print(f"  {b:<24}" + "".join(f"{c:>34}" for c in cells))
    for r in runs:
        if "daemon_cycles" in r:
            print(f"daemon ({r['label']}): {r['daemon_cycles']} cycles, p50 "
                  f"{fmt(r.get('cycle_p50_s'))}s, p95 {fmt(r.get('cycle_p95_s'))}s, max "
                  f"{fmt(r.get('cycle_max_s'))}s, {r.get('changes')} scontrol changes")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trace", default=str(DEFAULT_TRACE))
    ap.add_argument("--skip", type=int, default=50550)
    ap.add_argument("--limit", type=int, default=400)
    ap.add_argument("--speedup", type=float, default=30.0)
    ap.add_argument("--arrival-speedup", type=float, default=120.0)
    ap.add_argument("--max-runtime", type=float, default=6 * 3600.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--interval", type=float, default=2.0, help="daemon interval, seconds")
    ap.add_argument("--timeout", type=float, default=2400.0, help="per run, seconds")
    ap.add_argument("--nodes", type=int, default=32)
    ap.add_argument("--leaf-size", type=int, default=4)
    ap.add_argument("--dir", default=os.environ.get("KANT_DEVCLUSTER_DIR", "/tmp/kant-dc-bench"))
    ap.add_argument("--port-base", type=int,
                    default=int(os.environ.get("KANT_DEVCLUSTER_PORT_BASE", "19500")))
    ap.add_argument("--workdir", default="/tmp/kant-real-compare")
    ap.add_argument("--out", default="/tmp/kant-real-compare.json")
    ap.add_argument("--only", choices=["slurm", "kant"], default=None)
    args = ap.parse_args()

    from kant_slurm import devcluster as dc

    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    spec = dc.DevClusterSpec(nodes=args.nodes, leaf_size=args.leaf_size, port_base=args.port_base)
    log(f"dev cluster {args.nodes} x 8 GPUs, leaf {args.leaf_size}, in {args.dir}")
    dc.up(Path(args.dir), spec)
    conf = dc.DevClusterPaths(Path(args.dir).resolve()).slurm_conf
    os.environ["SLURM_CONF"] = str(conf)
    env = dict(os.environ)
    runs = []
    for label, steer in (("slurm", False), ("kant", True)):
        if args.only and label != args.only:
            continue
        cancel_all(env)
        t = time.monotonic()
        runs.append(run_once(label, args, env, steer))
        log(f"{label}: done in {time.monotonic() - t:.0f}s")
        Path(args.out).write_text(json.dumps({"args": vars(args), "runs": runs}, default=str))
    print_table(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
