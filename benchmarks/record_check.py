#!/usr/bin/env python
"""Save a policy's job records on a benchmark workload, or compare them with saved ones.

A speed-up must not change a decision: the job records (start, end, nodes, GPUs of every job)
before and after are identical. Run this once on the old code with ``--save`` and once on the
new code with ``--against``:

  python benchmarks/record_check.py default --policy kant-steered --save /tmp/before.csv.gz
  python benchmarks/record_check.py default --policy kant-steered --against /tmp/before.csv.gz

Workloads are sim_bench.py's (``default``, ``philly``, ``philly96``, ``scale``) plus
``philly48`` (philly-48x8.yaml). ``--jobs N`` keeps the trace's first N jobs (a shorter check).
Exit status 1 when the records differ, with the first differing jobs printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# What a decision changes: when and where each job ran (and how often it was requeued).
COLUMNS = ("job_id", "submit_time", "start_time", "end_time", "nodes", "node_gpus", "gpus",
           "backfilled", "preemptions", "last_start_time")


def workload(kind: str):
    from sim_bench import PHILLY
    from sim_bench import workload as bench_workload

    from kant_slurm.sim.cluster import load_cluster_spec

    if kind == "philly48":
        from kant_slurm.formats.traces import read_trace

        return read_trace(PHILLY, "philly"), load_cluster_spec(HERE / "philly-48x8.yaml")
    return bench_workload(kind)


def records(kind: str, policy: str, seed: int, jobs: int | None):
    import dataclasses

    from kant_slurm.sim.run import compare_policies

    trace, cluster = workload(kind)
    if jobs:
        trace = dataclasses.replace(trace, jobs=trace.jobs.head(jobs).reset_index(drop=True))
    t0 = time.perf_counter()
    c = compare_policies(trace, cluster, [policy], seed=seed)
    print(f"{policy} on {kind} ({len(trace.jobs):,} jobs): {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
    rec = c.runs[policy].result.records
    cols = [col for col in COLUMNS if col in rec.columns]
    out = rec[cols].copy()
    for col in ("nodes", "node_gpus"):
        out[col] = out[col].map(lambda v: ",".join(map(str, v)) if isinstance(v, (list, tuple))
                                else str(v))
    return out.sort_values(["job_id", "start_time"], kind="stable").reset_index(drop=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["default", "philly", "philly48", "philly96", "scale"])
    ap.add_argument("--policy", default="kant-steered")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, help="keep only the trace's first N jobs")
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--save", help="write the records to this CSV file")
    what.add_argument("--against", help="compare the records with this saved CSV file")
    args = ap.parse_args()
    if args.jobs is not None and args.jobs < 1:
        ap.error(f"--jobs must be at least 1, got {args.jobs}")
    import pandas as pd

    rec = records(args.kind, args.policy, args.seed, args.jobs)
    if args.save:
        rec.to_csv(args.save, index=False)
        print(f"{len(rec):,} records written to {args.save}")
        return 0
    # Through CSV both ways, so that floats and types compare as the saved file holds them.
    import io

    now = pd.read_csv(io.StringIO(rec.to_csv(index=False)), dtype=str, keep_default_na=False)
    saved = pd.read_csv(args.against, dtype=str, keep_default_na=False)
    if list(now.columns) != list(saved.columns) or len(now) != len(saved):
        print(f"records differ in shape: {now.shape} {list(now.columns)} against "
              f"{saved.shape} {list(saved.columns)}")
        return 1
    differ = (now != saved).any(axis=1)
    if differ.any():
        print(f"{int(differ.sum()):,} of {len(now):,} records differ; the first:")
        print(pd.concat({"now": now[differ].head(5), "saved": saved[differ].head(5)}, axis=1)
              .to_string())
        return 1
    print(f"all {len(now):,} records identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
