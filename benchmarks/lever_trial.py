#!/usr/bin/env python
"""A lever trial: ``kant-steered`` under a changed config against a baseline, per seed.

  python benchmarks/lever_trial.py --config pin-none.yaml --slurm-release 26.05 \\
      --baseline benchmarks/results/quality-tables-slurm-26.05-seeds-0-8.json --json trial.json
  python benchmarks/lever_trial.py --from-json trial.json \\
      --baseline benchmarks/results/quality-tables-slurm-26.05-seeds-0-8.json

Each (load, seed) runs ``slurm`` and ``kant-steered`` with ``--config`` through the library's
``compare_policies``, one policy at a time (``--workers 2``: two at once). The baseline side is
not run again: it is read from ``--baseline``, a ``--json`` output of ``quality_tables.py``
for the same release run with the built-in defaults (no ``--config``) of the commit that ran
it, which must hold every seed asked for. A stored table keeps the defaults of its commit, so
after a default changes the old tables are the baseline of the trial that changed it (their
headers say which defaults they ran). Per load the table gives, for GFR, stranded share, mean
wait, p99 wait and p99 wait of 9+ GPU jobs, ``kant-steered`` / ``slurm`` as the mean over the
seeds of each figure, from the baseline and with the trial config (these runs), each with its
95% interval from a paired bootstrap over the seeds (``quality_tables.ratio_interval``), and
then the GFR ratio of each seed, baseline -> trial.

Caveat: the baseline's policies share one metrics window with ``kant`` (from the first submit
to the last start of any of them), the trial's only with ``slurm``, so a figure can move
between the two without any decision changing. On the nine-seed Philly runs of 2026-12-08
(the same decisions in both) the ``kant-steered`` / ``slurm`` ratios were equal to three
decimals but one, 0.771x against 0.774x; ``kant``'s own GFR moves more (README, "Six more
seeds").
``--from-json`` remakes the table from a stored ``--json`` output of this script.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import provenance  # noqa: E402  (beside this script)
import quality_tables as qt  # noqa: E402

POLICIES = ("slurm", "kant-steered")


def run_trial(loads, seeds, config, release: str, workers: int, progress) -> dict:
    """{load: {seed: {policy: figures}}} of ``slurm`` and ``kant-steered`` under ``config``."""
    return {name: qt.run_load(name, seeds, workers, qt.openb_default(), progress, config,
                              release, policies=POLICIES) for name in loads}


def _ratio_cell(runs: dict, seeds: list, key: str) -> str:
    steered = [runs[s]["kant-steered"][key] for s in seeds]
    stock = [runs[s]["slurm"][key] for s in seeds]
    mean_s, mean_b = qt._mean(steered), qt._mean(stock)
    if not mean_b or mean_b != mean_b:
        return "-"
    interval = qt.ratio_interval(steered, stock)
    spread = "" if interval is None else f" ({interval[0]:.2f}-{interval[1]:.2f})"
    return f"{mean_s / mean_b:.2f}x{spread}"


def _gfr_ratio(figs: dict) -> str:
    stock = figs["slurm"]["gfr"]
    return f"{figs['kant-steered']['gfr'] / stock:.2f}" if stock else "-"


def changed_line(base_config: dict | None, trial_config: dict | None) -> str:
    """The header line naming what the trial config changes against the baseline's runs."""
    if base_config is None or trial_config is None:
        return ("- changed against the baseline: not known (the baseline or the trial does not "
                "record its effective config, `kant_config`)")
    changed = [f"{key} {old!r} -> {new!r}"
               for key, old, new in qt.config_changes(base_config, trial_config)]
    return ("- changed against the baseline: "
            + ("; ".join(changed) if changed else "nothing (the same effective config)"))


def table(trial: dict, baseline: dict, header: list[str]) -> list[str]:
    lines = [*header, ""]
    for name, runs in trial.items():
        base = baseline.get(name, {})
        seeds = sorted(runs)
        missing = [s for s in seeds if s not in base]
        if missing:
            raise ValueError(f"--baseline has no seed {missing[0]} of {name}")
        lines += [f"## {name}", "", f"Seeds: {', '.join(map(str, seeds))}.", "",
                  "| kant-steered / slurm | baseline | trial config |", "|---|---|---|"]
        for key, label, _ in qt.FIGURES:
            lines.append(f"| {label} | {_ratio_cell(base, seeds, key)} | "
                         f"{_ratio_cell(runs, seeds, key)} |")
        per_seed = ", ".join(
            f"{s}: {_gfr_ratio(base[s])} -> {_gfr_ratio(runs[s])}" for s in seeds)
        lines += ["", f"GFR ratio per seed, baseline -> trial: {per_seed}.", ""]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, help="the trial's kant config (YAML or TOML)")
    ap.add_argument("--baseline", type=Path, required=True,
                    help="a quality_tables.py --json output run without --config")
    ap.add_argument("--loads", default="philly-48x8,philly-64x8,philly-96x8",
                    help="comma-separated (default: the three Philly loads)")
    ap.add_argument("--seeds", default="0,1,2,3,4,5,6,7,8", help="default: 0-8")
    ap.add_argument("--slurm-release", choices=("22.05", "24.11", "26.05"), default="22.05")
    ap.add_argument("--workers", type=int, choices=(1, 2), default=1)
    ap.add_argument("--json", type=Path, help="write the trial's runs here")
    ap.add_argument("--from-json", type=Path, metavar="FILE",
                    help="remake the table from a stored --json output of this script")
    args = ap.parse_args()

    def progress(msg: str) -> None:
        print(f"[{dt.datetime.now(dt.UTC):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)

    try:
        baseline, base_release, base_config, base_effective = qt.stored_runs([args.baseline])
        if base_config is not None:
            raise ValueError(f"--baseline {args.baseline} ran with --config {base_config}, "
                             "not the default config")
        if args.from_json:
            stored = json.loads(args.from_json.read_text(encoding="utf-8"))
            argv, commit = stored["argv"], stored["commit"]
            made_by = stored.get("made_by")  # runs made otherwise than by this script's argv
            trial_effective = stored.get("kant_config")
            trial = {load: {int(s): qt._unplain(figs) for s, figs in runs.items()}
                     for load, runs in stored["runs"].items()}
            release = qt._stored_setting(argv, "--slurm-release", "22.05")
        else:
            if args.config is None:
                ap.error("--config: give the trial's config (or --from-json)")
            loads = [x for x in args.loads.split(",") if x]
            unknown = [x for x in loads if x not in qt.LOADS]
            if unknown or not loads:
                ap.error(f"--loads: unknown load {unknown[0] if unknown else '(none)'!r}")
            try:
                seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
            except ValueError:
                ap.error(f"--seeds: expected comma-separated integers, got {args.seeds!r}")
            argv, commit, release = sys.argv[1:], provenance.commit(), args.slurm_release
            made_by = None
            # Everything that can refuse the run is checked before hours of replay.
            if release != base_release:
                ap.error(f"--slurm-release {release}: --baseline models {base_release}")
            lacking = [(n, s) for n in loads for s in seeds if s not in baseline.get(n, {})]
            if lacking:
                ap.error(f"--baseline: no seed {lacking[0][1]} of {lacking[0][0]} in "
                         f"{args.baseline}")
            from kant_slurm.config.load import load_config
            from kant_slurm.errors import KantError

            try:
                config = load_config(args.config)
            except KantError as exc:
                ap.error(f"--config: {exc}")
            trial_effective = config.to_dict()
            trial = run_trial(loads, seeds, config, release, args.workers, progress)
            if args.json:
                args.json.write_text(json.dumps(qt._plain(
                    {"argv": argv, "commit": commit, "kant_config": trial_effective,
                     "runs": trial}), indent=1))
        if release != base_release:
            raise ValueError(f"the trial models Slurm {release}, --baseline {base_release}")
        header = ["# Lever trial: kant-steered with a config against a baseline",
                  "",
                  f"- generated: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; runs at commit "
                  f"{commit} as `python benchmarks/lever_trial.py {' '.join(argv)}` makes them",
                  *([f"- made by: {made_by}"] if made_by else []),
                  f"- baseline: `{args.baseline}`, the built-in defaults of the commit that ran "
                  f"its runs (see its header); Slurm release modelled: {release}",
                  changed_line(base_effective, trial_effective),
                  "- figures: kant-steered / slurm, mean over the seeds (95% interval)"]
        print("\n".join(table(trial, baseline, header)))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"lever_trial.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
