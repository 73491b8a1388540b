#!/usr/bin/env python
"""The quality table of issue 15, regenerated from runs: ``slurm``, ``kant-steered`` and
``kant`` on each load, over seeds of the time-limit model, each target marked MET or MISSED.

  python benchmarks/quality_tables.py                        # everything, Markdown on stdout
  python benchmarks/quality_tables.py --out benchmarks/results/quality-tables.md --json q.json
  python benchmarks/quality_tables.py --loads philly-64x8 --seeds 0   # a quick subset
  python benchmarks/quality_tables.py --slurm-release 26.05   # stock Slurm 26.05 modelled
  python benchmarks/quality_tables.py --from-json a.json --from-json b.json   # join seeds

Loads: Philly Sep-Oct (52,849 jobs) on 48 x 8, 64 x 8 and 96 x 8 GPUs (``philly-*.yaml``
beside this script), and the openb pods (Alibaba cluster-trace-gpu-v2023) replayed by arrival
on ``openb-6x8.yaml``. Traces: the bundled Philly Sep-Oct copy, or ``KANT_TRACES=DIR`` (its
``philly-2017-sep-oct.csv`` and ``openb_pod_list_default.csv``); ``--openb FILE`` names the
openb file directly. Each (load, seed) runs the three policies through the library's
``compare_policies``, ``--workers`` of them at once (at most 2).

Per load and policy the table gives the mean over the seeds and the spread (min-max) of: GFR,
stranded GPU share, mean wait, p99 wait, and p99 wait of the jobs of 9 or more GPUs. Targets
(issue 15), judged on the means over the seeds, with how many seeds meet each one alone:
``kant-steered`` against ``slurm``: GFR at most 0.6x, stranded share at most 0.7x, mean wait
not higher, p99 wait at most 1.05x, p99 wait of 9+ GPU jobs not higher; ``kant``: GFR at most
1% on every seed (64 x 8 only), no GPU-size bucket's p99 wait more than 5% above ``slurm``'s.
Each ``kant-steered`` ratio also gets its 95% interval from a paired bootstrap over the seeds
(:func:`ratio_interval`): where it holds 1.0, the seeds do not show ``kant-steered`` and
``slurm`` apart on that figure.

``--from-json`` makes the table from runs stored by earlier ``--json`` outputs instead of
running: repeated, it joins their seeds per load (e.g. seeds 0-2 of one run and 3-8 of
another), so that the means and targets cover every seed. The files must model the same Slurm
release with the same ``--config``, and no seed of a load may be in two of them. The options
that choose what runs (``--seeds``, ``--workers``, ``--openb``, ``--config``,
``--slurm-release``) are refused with it: the stored runs carry their own.

A run records its effective config (``kant_config`` in the JSON: the built-in defaults of the
commit with ``--config`` over them; ``$KANT_CONFIG`` counts as ``--config``), and the header
names kant-steered's levers from it, because a built-in default can change after a table is
made; ``--from-json`` refuses files whose recorded effective configs differ.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import provenance  # noqa: E402  (beside this script)

POLICIES = ("slurm", "kant-steered", "kant")
LOADS = {  # name -> (trace kind, cluster spec beside this script)
    "philly-48x8": ("philly", "philly-48x8.yaml"),
    "philly-64x8": ("philly", "philly-64x8.yaml"),
    "philly-96x8": ("philly", "philly-96x8.yaml"),
    "openb-6x8": ("openb", "openb-6x8.yaml"),
}
BIG_GPUS = 9  # "9+ GPU jobs": those spanning nodes of 8 GPUs
# (key, label, format) of the figures per policy.
FIGURES = (
    ("gfr", "GFR", "{:.3f}"),
    ("stranded", "stranded share", "{:.3f}"),
    ("wait_mean_s", "mean wait", "h"),
    ("wait_p99_s", "p99 wait", "h"),
    ("wait_p99_big_s", f"p99 wait, {BIG_GPUS}+ GPUs", "h"),
)
# kant-steered against slurm: (figure, the largest ratio that meets the target, wording).
STEERED_TARGETS = (
    ("gfr", 0.6, "GFR <= 0.6x slurm"),
    ("stranded", 0.7, "stranded share <= 0.7x slurm"),
    ("wait_mean_s", 1.0, "mean wait not higher than slurm"),
    ("wait_p99_s", 1.05, "p99 wait <= 1.05x slurm"),
    ("wait_p99_big_s", 1.0, f"p99 wait of {BIG_GPUS}+ GPU jobs not higher than slurm"),
)
KANT_GFR_MAX, KANT_GFR_LOAD = 0.01, "philly-64x8"
RUN_ONLY = ("--seeds", "--workers", "--openb", "--config", "--slurm-release")  # not --from-json
KANT_BUCKET_P99_MAX = 1.05
# The config keys that steer kant-steered's levers, named in the header so that a table says
# which defaults it ran (a default can change after a table is made); the JSON keeps the whole
# effective config as ``kant_config``.
LEVERS = (("actuator", "pin_jobs"), ("weights", "best_fit"), ("weights", "deep_queue"),
          ("placement", "single_node"))
BOOTSTRAP_DRAWS = 10_000  # resamples of the seeds for a ratio's interval


def openb_default() -> Path | None:
    d = os.environ.get("KANT_TRACES")
    return Path(d) / "openb_pod_list_default.csv" if d else None


def read_load_trace(kind: str, openb: Path | None):
    from kant_slurm.formats.traces import read_trace

    if kind == "philly":
        from sim_bench import PHILLY

        return read_trace(PHILLY, "philly")
    return read_trace(openb, "openb", openb_mode="arrival")


def figures_of(run) -> dict:
    """The table's figures of one policy's run (seconds for waits)."""
    from kant_slurm.metrics.jobs import wait_stats

    rec = run.result.records
    big = rec[rec["gpus"] >= BIG_GPUS]
    return {
        "gfr": float(run.headline["gfr_mean"]),
        "stranded": float(run.headline["stranded_gpu_share"]),
        "wait_mean_s": float(run.headline["wait_mean_s"]),
        "wait_p99_s": float(run.headline["wait_p99_s"]),
        "wait_p99_big_s": float(wait_stats(big)["p99"]) if len(big) else math.nan,
        "big_jobs": len(big),
        "p99_by_size": {str(r["size_bucket"]): float(r["p99"])
                        for r in run.detail["by_size"]},
        "sim_seconds": float(run.headline["sim_seconds"]),
    }


def run_load(name: str, seeds, workers: int, openb: Path | None, progress, config=None,
             release: str = "22.05", policies=POLICIES) -> dict:
    """{seed: {policy: figures}} of one load; ``release``: the Slurm the ``slurm`` model
    follows; ``policies``: those run (lever_trial.py runs two)."""
    from kant_slurm.sim.cluster import load_cluster_spec
    from kant_slurm.sim.run import compare_policies
    from kant_slurm.whatif.schedparams import PolicySetup

    kind, spec = LOADS[name]
    trace = read_load_trace(kind, openb)
    cluster = load_cluster_spec(HERE / spec)
    out = {}
    for seed in seeds:
        t0 = time.perf_counter()
        c = compare_policies(trace, cluster, list(policies), config=config, seed=seed,
                             workers=workers, policy_setup=PolicySetup({}, release=release))
        out[seed] = {p: figures_of(c.runs[p]) for p in policies}
        progress(f"{name} seed {seed}: {time.perf_counter() - t0:.0f} s (" + ", ".join(
            f"{p} {out[seed][p]['sim_seconds']:.0f} s" for p in policies) + ")")
    return out


def _mean(values):
    v = [x for x in values if not math.isnan(x)]
    return statistics.fmean(v) if v else math.nan


def summarize_load(runs: dict) -> dict:
    """Means and spreads over the seeds, and every target of the load judged."""
    seeds = sorted(runs)
    stats = {}
    for p in POLICIES:
        stats[p] = {}
        for key, _, _ in FIGURES:
            vals = [runs[s][p][key] for s in seeds]
            stats[p][key] = {"mean": _mean(vals), "min": min(vals), "max": max(vals)}
    return {"seeds": seeds, "stats": stats}


def ratio_interval(steered: list, stock: list) -> tuple[float, float] | None:
    """The 95% interval of mean(steered) / mean(stock) by a paired bootstrap over the seeds:
    seeds drawn with replacement, each seed's two figures kept together (they share the
    trace and the time-limit draw). None with fewer than two seeds. Why: at the deep-queue
    loads per-seed ratios run from 0.5x to 2x, so a mean ratio alone cannot tell a lever
    that is worse than stock from seed noise; an interval that holds 1.0 does not show a
    difference. The draws are seeded, so a table regenerates the same."""
    import numpy as np

    a, b = np.asarray(steered, dtype=float), np.asarray(stock, dtype=float)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    if a.size < 2:
        return None
    draws = np.random.default_rng(0).integers(0, a.size, size=(BOOTSTRAP_DRAWS, a.size))
    num, den = a[draws].mean(axis=1), b[draws].mean(axis=1)
    ratios = num[den > 0] / den[den > 0]
    if ratios.size == 0:
        return None
    lo, hi = np.quantile(ratios, [0.025, 0.975])
    return float(lo), float(hi)


def judge(name: str, runs: dict, stats: dict) -> list[dict]:
    """The issue-15 targets of one load: figure, limit, met (on the seed means), seeds met."""
    seeds = sorted(runs)
    out = []
    for key, limit, what in STEERED_TARGETS:
        a, b = stats["kant-steered"][key]["mean"], stats["slurm"][key]["mean"]
        if math.isnan(a) or math.isnan(b):
            out.append({"target": f"kant-steered: {what}", "status": "n/a",
                        "detail": "no such jobs in this trace"})
            continue
        per_seed = [runs[s]["kant-steered"][key] <= limit * runs[s]["slurm"][key]
                    for s in seeds]
        ratio = a / b if b else (math.inf if a > 0 else 1.0)
        interval = ratio_interval([runs[s]["kant-steered"][key] for s in seeds],
                                  [runs[s]["slurm"][key] for s in seeds])
        spread = "" if interval is None else f", 95% interval {interval[0]:.2f}-{interval[1]:.2f}x"
        out.append({"target": f"kant-steered: {what}", "status": _met(a <= limit * b),
                    "detail": f"{ratio:.2f}x{spread} ({_fmt(key, a)} vs {_fmt(key, b)}); "
                              f"{sum(per_seed)} of {len(seeds)} seeds",
                    "ratio": ratio, "interval": interval})
    if name == KANT_GFR_LOAD:
        gfrs = [runs[s]["kant"]["gfr"] for s in seeds]
        out.append({"target": f"kant: GFR <= {KANT_GFR_MAX:.0%} on every seed",
                    "status": _met(all(g <= KANT_GFR_MAX for g in gfrs)),
                    "detail": "seeds: " + ", ".join(f"{g:.3f}" for g in gfrs)})
    worst = None
    for bucket in runs[seeds[0]]["slurm"]["p99_by_size"]:
        k = _mean([runs[s]["kant"]["p99_by_size"].get(bucket, math.nan) for s in seeds])
        sl = _mean([runs[s]["slurm"]["p99_by_size"].get(bucket, math.nan) for s in seeds])
        if math.isnan(k) or math.isnan(sl):
            continue
        ratio = k / sl if sl else (math.inf if k > 0 else 1.0)
        if worst is None or ratio > worst[1]:
            worst = (bucket, ratio, k, sl)
    if worst is not None:
        bucket, ratio, k, sl = worst
        out.append({"target": f"kant: no GPU-size bucket's p99 wait > "
                              f"{KANT_BUCKET_P99_MAX - 1:.0%} above slurm's",
                    "status": _met(ratio <= KANT_BUCKET_P99_MAX),
                    "detail": f"worst bucket {bucket} GPUs: {ratio:.2f}x "
                              f"({_hours(k)} vs {_hours(sl)})"})
    return out


def _met(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def _hours(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds / 3600:.1f}h"


def _fmt(key: str, v: float) -> str:
    form = next(f for k, _, f in FIGURES if k == key)
    if math.isnan(v):
        return "-"
    return _hours(v) if form == "h" else form.format(v)


def header(args) -> list[str]:
    u = platform.uname()
    if args.from_json:
        ran = [("- runs: stored in " + ", ".join(f"`{f}`" for f in args.from_json)
                + " (their commits and machines are in their own tables' headers)")]
    else:
        ran = [f"- commit: {provenance.commit()}",
               (f"- machine: {u.system} {u.release} {u.machine}, {os.cpu_count()} CPUs; "
                f"{args.workers} {'policy' if args.workers == 1 else 'policies'} at a time")]
    return [
        "# Issue 15 quality table",
        "",
        (f"- generated: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by "
         f"`{' '.join(['python benchmarks/quality_tables.py', *args.argv])}`"),
        *ran,
        f"- seeds of the time-limit model (ladder): {', '.join(map(str, args.seeds))}",
        f"- Slurm release modelled by `slurm` and `kant-steered`: {args.slurm_release}",
        f"- kant config: {'built-in defaults' if args.config is None else f'`{args.config}`'}",
        levers_line(args.kant_config),
        "- figures: mean over the seeds (min-max); waits in hours",
        "",
    ]


def config_changes(old: dict, new: dict) -> list[tuple[str, object, object]]:
    """(section.key, old value, new value) of every key of ``new`` whose value ``old`` does not
    share: two effective configs (``kant_config``) compared."""
    return [(f"{sec}.{key}", old.get(sec, {}).get(key), value)
            for sec, keys in new.items() if isinstance(keys, dict)
            for key, value in keys.items() if old.get(sec, {}).get(key) != value]


def levers_line(kant_config: dict | None) -> str:
    if kant_config is None:
        return "- levers in force: not recorded (the stored runs predate `kant_config`)"
    return ("- levers in force: "
            + ", ".join(f"{sec}.{key}={kant_config[sec][key]}" for sec, key in LEVERS)
            + " (the whole config: `kant_config` in the JSON)")


def markdown(args, results: dict) -> str:
    lines = header(args)
    for name, res in results.items():
        stats, runs = res["summary"]["stats"], res["runs"]
        kind, spec = LOADS[name]
        lines += [f"## {name} ({kind}, `{spec}`)", "",
                  f"Seeds: {', '.join(map(str, sorted(runs)))}.", "",
                  "| figure | " + " | ".join(POLICIES) + " |",
                  "|---|" + "---|" * len(POLICIES)]
        for key, label, _ in FIGURES:
            cells = []
            for p in POLICIES:
                s = stats[p][key]
                cells.append("-" if math.isnan(s["mean"]) else
                             f"{_fmt(key, s['mean'])} ({_fmt(key, s['min'])}-"
                             f"{_fmt(key, s['max'])})")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        secs = {p: _mean([runs[s][p]["sim_seconds"] for s in runs]) for p in POLICIES}
        lines.append("| replay seconds (mean) | " + " | ".join(f"{secs[p]:.0f}"
                                                              for p in POLICIES) + " |")
        lines += ["", "| target | status | figures |", "|---|---|---|"]
        lines += [f"| {t['target']} | **{t['status']}** | {t['detail']} |"
                  for t in res["targets"]]
        lines.append("")
    return "\n".join(lines) + "\n"


def _plain(value):
    """JSON-ready: NaN (no such jobs) and an infinite ratio as null, seeds as keys in text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _unplain(value):
    """The stored figures back: null as NaN."""
    if isinstance(value, dict):
        return {k: _unplain(v) for k, v in value.items()}
    return math.nan if value is None else value


def _stored_setting(argv: list, flag: str, default: str | None) -> str | None:
    """The value of ``flag`` in a stored run's argv (``--flag V`` or ``--flag=V``)."""
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return default


def _check_stored_figures(f: Path, load: str, seed: str, figs) -> None:
    """ValueError naming the file, load, seed and policy when a stored run lacks a figure the
    table reads (a file edited by hand, or written by another script)."""
    for p in POLICIES:
        one = figs.get(p) if isinstance(figs, dict) else None
        if not isinstance(one, dict):
            raise ValueError(f"{f}: {load} seed {seed}: no figures of policy {p!r}")
        for key in [k for k, _, _ in FIGURES] + ["p99_by_size"]:
            value = one.get(key)
            ok = key in one and (isinstance(value, dict) if key == "p99_by_size"
                  else value is None or (isinstance(value, (int, float))
                                         and not isinstance(value, bool)))
            if not ok:
                raise ValueError(f"{f}: {load} seed {seed}, {p}: {key!r} is "
                                 f"{'missing' if key not in one else repr(value)}, expected "
                                 f"{'an object' if key == 'p99_by_size' else 'a number or null'}")


def stored_runs(files: list[Path]) -> tuple[dict, str, str | None, dict | None]:
    """{load: {seed: {policy: figures}}} joined from ``--json`` outputs of this script, the
    release and ``--config`` they model, and their effective config (``kant_config``; None if
    no file records one); ValueError names the file and what is wrong. Files whose recorded
    effective configs differ are refused: the same ``--config`` (or none) means other settings
    when a built-in default changed between their runs."""
    joined: dict = {}
    where: dict = {}
    settings = None
    kant_config: tuple[Path, dict] | None = None
    for f in files:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
            argv, results = data["argv"], data["results"]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{f}: not a --json output of this script ({exc})") from None
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise ValueError(f"{f}: 'argv' is not a list of strings")
        # A joined file's argv names only the files it joined: its own keys say what it models.
        mine = (data.get("slurm_release") or _stored_setting(argv, "--slurm-release", "22.05"),
                data.get("config") if "slurm_release" in data
                else _stored_setting(argv, "--config", None))
        if settings is None:
            settings = mine
        elif mine != settings:
            raise ValueError(f"{f}: models release {mine[0]} with config {mine[1]}, but "
                             f"{files[0]} models {settings[0]} with config {settings[1]}")
        effective = data.get("kant_config")
        if effective is not None:
            if kant_config is None:
                kant_config = (f, effective)
            elif effective != kant_config[1]:
                differ = sorted(key for key, _, _ in config_changes(kant_config[1], effective))
                raise ValueError(f"{f}: its runs' effective config differs from that of "
                                 f"{kant_config[0]} ({', '.join(differ) or 'its sections'})")
        if not isinstance(results, dict):
            raise ValueError(f"{f}: 'results' is not an object of loads")
        for load, res in results.items():
            if load not in LOADS:
                raise ValueError(f"{f}: unknown load {load!r}")
            runs = res.get("runs") if isinstance(res, dict) else None
            if not isinstance(runs, dict) or not runs:
                raise ValueError(f"{f}: {load} has no 'runs' object with a seed")
            for seed, figs in runs.items():
                if not seed.lstrip("-").isdigit():
                    raise ValueError(f"{f}: {load}: seed {seed!r} is not an integer")
                if (load, seed) in where:
                    raise ValueError(f"{f}: seed {seed} of {load} is also in "
                                     f"{where[load, seed]}")
                _check_stored_figures(f, load, seed, figs)
                where[load, seed] = f
                joined.setdefault(load, {})[int(seed)] = _unplain(figs)
    if settings is None:
        raise ValueError("--from-json: no file given")
    return joined, settings[0], settings[1], None if kant_config is None else kant_config[1]


def load_table(name: str, runs: dict) -> dict:
    """One load's runs, their means and spreads, and its targets judged."""
    summary = summarize_load(runs)
    return {"runs": runs, "summary": summary, "targets": judge(name, runs, summary["stats"])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loads", default=",".join(LOADS),
                    help=f"comma-separated, of: {', '.join(LOADS)} (default: all)")
    ap.add_argument("--seeds", default="0,1,2", help="time-limit model seeds (default: 0,1,2)")
    ap.add_argument("--workers", type=int, default=2,
                    help="policies replayed at once, one process each: 1 or 2 (default: 2)")
    ap.add_argument("--openb", type=Path, default=openb_default(),
                    help="openb_pod_list_default.csv (default: in $KANT_TRACES)")
    ap.add_argument("--config", type=Path,
                    help="kant config for every policy, as `simulate --config` (default: the "
                         "built-in defaults); e.g. benchmarks/kant-node-first.yaml")
    ap.add_argument("--slurm-release", choices=("22.05", "24.11", "26.05"), default="22.05",
                    help="the Slurm that `slurm` and `kant-steered` model, as `simulate "
                         "--slurm-release` (default: 22.05)")
    ap.add_argument("--out", type=Path, help="write the Markdown table here (default: stdout)")
    ap.add_argument("--json", type=Path, help="also write every figure as JSON here")
    ap.add_argument("--from-json", type=Path, action="append", default=[], metavar="FILE",
                    help="make the table from the runs stored in FILE (a --json output of "
                         "this script) instead of running; repeat to join their seeds")
    argv = sys.argv[1:]
    args = ap.parse_args(argv)
    args.argv = argv
    loads = [x.strip() for x in args.loads.split(",") if x.strip()]
    unknown = [x for x in loads if x not in LOADS]
    if unknown or not loads:
        ap.error(f"--loads: unknown load {unknown[0] if unknown else '(none)'!r}; "
                 f"choose from {', '.join(LOADS)}")
    try:
        args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--seeds: expected comma-separated integers, got {args.seeds!r}")
    if not args.seeds:
        ap.error("--seeds: give at least one seed")
    if args.workers not in (1, 2):
        ap.error(f"--workers: 1 or 2 (the machine is shared), got {args.workers}")
    no_openb = args.openb is None or not args.openb.is_file()
    if "openb-6x8" in loads and not args.from_json and no_openb:
        ap.error(f"openb-6x8: openb trace {str(args.openb) if args.openb else '(none)'} not "
                 f"found; pass --openb FILE, set KANT_TRACES, or leave the load out")

    if args.from_json:
        # These choose what runs; stored runs carry their own, so a value here would be ignored.
        given = sorted({a.split("=", 1)[0] for a in argv} & set(RUN_ONLY))
        if given:
            ap.error(f"--from-json: {', '.join(given)} chooses what runs; stored runs carry "
                     f"their own (leave it out)")

    def progress(msg: str) -> None:
        print(f"[{dt.datetime.now(dt.UTC):%H:%M:%S}] {msg}", file=sys.stderr,
              flush=True)

    if args.from_json:
        try:
            stored, args.slurm_release, args.config, args.kant_config = stored_runs(
                args.from_json)
        except ValueError as exc:
            ap.error(f"--from-json: {exc}")
        results = {name: load_table(name, stored[name]) for name in loads if name in stored}
        args.seeds = sorted({s for runs in stored.values() for s in runs})
        write(args, results, progress, final=True)
        return 0
    from kant_slurm.config import CONFIG_ENV, load_config
    from kant_slurm.errors import KantError

    if args.config is None and os.environ.get(CONFIG_ENV):
        # load_config reads it anyway; named as --config, the table says so.
        args.config = Path(os.environ[CONFIG_ENV])
        progress(f"--config {args.config} (from ${CONFIG_ENV})")
    try:
        config = load_config(args.config)  # the one config the runs use and the JSON records
    except KantError as exc:
        ap.error(f"--config: {exc}")
    args.kant_config = config.to_dict()
    provenance.commit()  # the code measured is HEAD as the run begins
    results = {}
    for name in loads:
        runs = run_load(name, args.seeds, args.workers, args.openb, progress, config,
                        args.slurm_release)
        results[name] = load_table(name, runs)
        # The files after each load: a long run stopped later keeps the loads done.
        write(args, results, progress, final=name == loads[-1])
    return 0


def write(args, results: dict, progress, final: bool) -> None:
    text = markdown(args, results)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        progress(f"table of {', '.join(results)} written to {args.out}")
    elif final:
        sys.stdout.write(text)
    if args.json:
        made = ({"from_json": [str(f) for f in args.from_json]} if args.from_json
                else {"commit": provenance.commit()})
        models = {"slurm_release": args.slurm_release,
                  "config": None if args.config is None else str(args.config),
                  "kant_config": args.kant_config}
        args.json.write_text(json.dumps(_plain({"argv": args.argv, **made, **models,
                                                "results": results}), indent=1))


if __name__ == "__main__":
    sys.exit(main())
