#!/usr/bin/env python
"""Simulator benchmarks of issue 4 (figures printed, nothing asserted).

  python benchmarks/sim_bench.py philly   # Philly Sep-Oct (52,849 jobs) on 64 x 8 GPUs
  python benchmarks/sim_bench.py philly96 # the same trace on 96 x 8 GPUs (queues at peaks)
  python benchmarks/sim_bench.py scale    # 100k jobs on 1,250 x 8 GPUs (10k GPUs)
  python benchmarks/sim_bench.py default  # the bundled slice (what `kant-slurm simulate` runs)

Each policy runs in its own child process so its wall time and peak memory (ru_maxrss) are its
own. Options: --policies fifo,slurm,kant  --interval 30  --seed 0  --profile (cProfile top 15).

The scale workload (documented in the README): the real Philly Sep-Oct trace twice (the second
copy's job ids suffixed ``b``, same submit times), every submit time divided by 10 (arrivals 20x
denser than Philly's, run times unchanged): 105,698 jobs over 5.7 days on 10,000 GPUs.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The Philly Sep-Oct trace bundled gzipped beside the benchmarks; KANT_TRACES=DIR reads
# DIR/philly-2017-sep-oct.csv instead.
PHILLY = (Path(os.environ["KANT_TRACES"]) / "philly-2017-sep-oct.csv"
          if os.environ.get("KANT_TRACES") else HERE / "traces" / "philly-2017-sep-oct.csv.gz")


def workload(kind: str):
    import pandas as pd

    from kant_slurm.sim.cluster import bundled_cluster_path, load_cluster_spec
    from kant_slurm.formats.traces import Trace, bundled_trace_path, read_trace

    if kind == "default":
        return read_trace(bundled_trace_path()), load_cluster_spec(bundled_cluster_path())
    trace = read_trace(PHILLY, "philly")
    if kind == "philly":
        return trace, load_cluster_spec(HERE / "philly-64x8.yaml")
    if kind == "philly96":
        return trace, load_cluster_spec(HERE / "philly-96x8.yaml")
    a = trace.jobs
    b = a.copy()
    b["job_id"] = b["job_id"] + "b"
    jobs = pd.concat([a, b], ignore_index=True)
    jobs["submit_time"] = jobs["submit_time"] / 10.0
    jobs = jobs.sort_values(["submit_time", "line"], kind="stable").reset_index(drop=True)
    scaled = Trace(jobs=jobs, source=f"{trace.source} x2, arrivals / 10", fmt="philly",
                   notes=list(trace.notes) + ["trace twice, submit times / 10"])
    return scaled, load_cluster_spec(HERE / "scale-1250x8.yaml")


def one(kind: str, policy: str, interval: float, seed: int, profile: bool, out) -> None:
    from kant_slurm.sim.run import compare_policies

    t0 = time.perf_counter()
    trace, cluster = workload(kind)
    load_s = time.perf_counter() - t0
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
    c = compare_policies(trace, cluster, [policy], seed=seed, interval=interval)
    if profile:
        prof.disable()
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(15)
    run = c.runs[policy]
    out.put({
        "policy": policy, "jobs": len(trace.jobs), "gpus": cluster.total_gpus,
        "load_s": load_s, "total_s": time.perf_counter() - t0,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cycles": run.detail["cycles"], "cycles_skipped": run.detail["cycles_skipped"],
        "plan_s": run.detail["plan_seconds"], "compiled_cycles": run.detail["compiled_cycles"],
        **run.headline,
        "stranded_gpu_share_leaf": run.detail["stranded_gpu_share_leaf"],
        "backfilled": run.detail["backfilled"],
        "by_size": run.detail["by_size"],
        "jtted": run.detail["jtted"],
        "classes": c.class_counts,
    })


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("kind", choices=["philly", "philly96", "scale", "default"])
    ap.add_argument("--policies", default="fifo,slurm,kant")
    ap.add_argument("--interval", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    ctx = mp.get_context("fork")
    rows = []
    for policy in args.policies.split(","):
        q = ctx.Queue()
        p = ctx.Process(target=one, args=(args.kind, policy, args.interval, args.seed,
                                          args.profile, q))
        p.start()
        rows.append(q.get())
        p.join()
        r = rows[-1]
        print(f"{policy:6} jobs={r['jobs']:,} gpus={r['gpus']:,} sim={r['sim_seconds']:.1f}s "
              f"(plan {r['plan_s']:.1f}s, {r['cycles']:,} cycles, {r['cycles_skipped']:,} "
              f"skipped, {r['compiled_cycles']:,} compiled) total={r['total_s']:.1f}s "
              f"peak_rss={r['peak_rss_mib']:.0f}MiB",
              flush=True)
        # The metrics right away too: a long run stopped later keeps the finished policies'.
        print(f"       GAR={r['gar_mean']:.3f} SOR={r['sor']:.3f} GFR={r['gfr_mean']:.3f} "
              f"stranded={r['stranded_gpu_share']:.3f} wait mean/p50/p90/p99="
              f"{r['wait_mean_s']:.0f}/{r['wait_p50_s']:.0f}/{r['wait_p90_s']:.0f}/"
              f"{r['wait_p99_s']:.0f}s JCT={r['jct_mean_s']:.0f}s backfilled={r['backfilled']:,}",
              flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1, default=float))
    from kant_slurm.report.tables import headline_table, wait_by_table

    print()
    print(headline_table({r["policy"]: r for r in rows},
                         extra=[("stranded_gpu_share_leaf", "leaf-str", lambda v: f"{v:.3f}"),
                                ("backfilled", "backfilled", lambda v: f"{v:,}")]))
    print()
    print("wait by GPU size bucket (p99/max):")
    print(wait_by_table({r["policy"]: r for r in rows}))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=float))


if __name__ == "__main__":
    main()
