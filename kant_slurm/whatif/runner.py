"""A sweep's directory and running one cell into it (the I/O side of a sweep).

Layout of ``--out DIR``::

    sweep.json                  the grid as resolved (absolute paths) and its cells
    cells/KEY/seed-N.json       one seed's result: metrics, version, command, wall time
    cells/KEY/seed-N.error.json why that seed failed (removed when a rerun succeeds)
    logs/                       the Slurm tasks' output (--backend slurm)
    table.txt cells.json cells.csv report.html   the merged result

A cell's directory is named by the hash of what the cell is (policy, overrides, trace,
cluster), not by its index: a finished seed is found again after the grid is edited or
reordered, and only the seeds without a result file run (resume). A result is written to a
temporary name and renamed, so a task killed mid-write leaves no half file that would count as
done.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import KantError
from ..jsonready import json_ready
from . import schedparams, stats
from .grid import Cell, Grid, GridError, nest

SWEEP_FILE = "sweep.json"
OUTPUTS = ("table.txt", "cells.json", "cells.csv", "report.html")


def cell_dir(out: Path, cell: Cell) -> Path:
    return out / "cells" / cell.key


def result_path(out: Path, cell: Cell, seed: int) -> Path:
    return cell_dir(out, cell) / f"seed-{seed}.json"


def error_path(out: Path, cell: Cell, seed: int) -> Path:
    return cell_dir(out, cell) / f"seed-{seed}.error.json"


def prepare_out(out: str | Path, grid: Grid, command: str) -> Path:
    """Create ``out`` (its parent must exist) and write the resolved grid into it."""
    path = Path(out)
    if not path.resolve().parent.is_dir():
        raise GridError(
            f"--out {str(out)!r}: directory {str(path.resolve().parent)!r} does not "
            "exist; expected a directory to create the sweep's directory in"
        )
    if path.exists() and not path.is_dir():
        raise GridError(
            f"--out {str(out)!r}: exists and is not a directory; expected a "
            "directory (new or of an earlier run of this sweep)"
        )
    (path / "cells").mkdir(parents=True, exist_ok=True)
    (path / "logs").mkdir(exist_ok=True)
    doc = {
        "grid": grid.to_dict(),
        "command": command,
        "version": __version__,
        "cells": [
            c.spec() | {"index": c.index, "key": c.key, "label": c.label(grid)}
            for c in grid.cells()
        ],
    }
    write_json(path / SWEEP_FILE, doc)
    return path.resolve()


def load_out(out: str | Path) -> Grid:
    """The grid written into ``out`` by :func:`prepare_out`."""
    path = Path(out) / SWEEP_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GridError(
            f"{path}: no such file; expected the directory of a sweep "
            "(kant-slurm sweep GRID.yaml --out DIR writes it)"
        ) from None
    except (OSError, ValueError) as exc:
        raise GridError(f"{path}: cannot read the sweep ({exc})") from None
    return Grid.from_dict(doc["grid"])


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(json_ready(data), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def missing_seeds(out: Path, grid: Grid, cell: Cell) -> list[int]:
    return [s for s in grid.seeds if not result_path(out, cell, s).is_file()]


def cell_command(out: Path, cell: Cell) -> str:
    """The exact command that reruns one cell (the one the Slurm tasks run)."""
    return shlex.join(
        [sys.executable, "-m", "kant_slurm", "sweep", "--out", str(out), "--cell", str(cell.index)]
    )


# --------------------------------------------------------------------------------------------
# Running a cell
# --------------------------------------------------------------------------------------------


def split_overrides(overrides: Sequence[tuple[str, Any]]) -> tuple[dict, dict, dict]:
    """(kant config keys, SchedulerParameters, sim settings) of a cell's overrides."""
    config, sched, sim = {}, {}, {}
    for key, value in overrides:
        if key.startswith("slurm."):
            sched[key[len("slurm.") :]] = value
        elif key.startswith("sim."):
            sim[key[len("sim.") :]] = value
        else:
            config[key] = value
    return config, sched, sim


def cell_config(grid: Grid, config_keys: Mapping[str, Any]):
    """The kant config of a cell: the grid's config file (or the defaults) with its keys."""
    from ..config import config_from_dict, deep_merge, parse_config_file

    base, lines, where = {}, None, "grid overrides"
    if grid.config_path:
        parsed = parse_config_file(grid.config_path)
        base, lines, where = parsed.data, parsed.lines, grid.config_path
    return config_from_dict(deep_merge(base, nest(config_keys)), where, lines=lines)


def load_inputs(cell: Cell):
    """The cell's trace and cluster spec."""
    from ..sim.cluster import load_cluster_spec, spec_from_inventory
    from ..formats.traces import read_trace

    trace = read_trace(cell.trace.path, cell.trace.format)
    if cell.cluster.kind == "slurm_conf":
        from ..formats.slurm_conf import read_slurm_conf

        cluster = spec_from_inventory(
            read_slurm_conf(cell.cluster.path),
            name=Path(cell.cluster.path).name,
            source=cell.cluster.path,
        )
    else:
        cluster = load_cluster_spec(cell.cluster.path)
    return trace, cluster


def run_seed(
    cell: Cell,
    grid: Grid,
    seed: int,
    inputs=None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Replay the cell's trace under its policy with ``seed``; the metrics (pure of files)."""
    from ..sim.run import compare_policies
    from ..steer import DAEMON_INTERVAL_S

    trace, cluster = inputs or load_inputs(cell)
    config_keys, sched, sim = split_overrides(cell.overrides)
    config = cell_config(grid, config_keys)
    t0 = time.monotonic()
    comparison = compare_policies(
        trace,
        cluster,
        [cell.policy],
        config=config,
        seed=seed,
        time_limit_model=sim.get("time_limit_model", "ladder"),
        interval=schedparams.interval_of(sched, 30.0),
        steer_interval=float(sim.get("steer_interval", DAEMON_INTERVAL_S)),
        policy_setup=schedparams.PolicySetup(sched) if sched else None,
        progress=(lambda _name, d, t: progress(d, t)) if progress else None,
    )
    run = comparison.runs[cell.policy]
    metrics = {k: v for k, v in run.headline.items() if k != "sim_seconds"}
    return {
        "metrics": json_ready(metrics),
        "sim_seconds": run.headline["sim_seconds"],
        "wall_seconds": time.monotonic() - t0,
        "notes": list(comparison.notes),
    }


def run_cell(
    out: Path,
    grid: Grid,
    cell: Cell,
    command: str,
    progress: Callable[[int, int, int], None] | None = None,
) -> dict[int, str]:
    """Run every seed of ``cell`` that has no result yet; each seed's result or error goes to
    its file. Returns seed -> error text of the seeds that failed (empty when all ran)."""
    todo = missing_seeds(out, grid, cell)
    errors: dict[int, str] = {}
    if not todo:
        return errors
    cell_dir(out, cell).mkdir(parents=True, exist_ok=True)
    inputs = None
    for seed in todo:
        try:
            inputs = inputs or load_inputs(cell)
            report = (lambda d, t, _s=seed: progress(_s, d, t)) if progress else None
            result = run_seed(cell, grid, seed, inputs, report)
        except Exception as exc:  # noqa: BLE001 - one failed seed must not lose the others
            text = str(exc) if isinstance(exc, KantError) else f"{type(exc).__name__}: {exc}"
            errors[seed] = text
            write_json(
                error_path(out, cell, seed),
                {
                    "key": cell.key,
                    "index": cell.index,
                    "seed": seed,
                    "error": text,
                    "traceback": traceback.format_exc(),
                    "version": __version__,
                    "command": command,
                    "cell_command": cell_command(out, cell),
                },
            )
            continue
        write_json(
            result_path(out, cell, seed),
            {
                "key": cell.key,
                "index": cell.index,
                "spec": cell.spec(),
                "seed": seed,
                **result,
                "version": __version__,
                "command": command,
                "cell_command": cell_command(out, cell),
                "host": socket.gethostname(),
                "finished_at": time.time(),
            },
        )
        error_path(out, cell, seed).unlink(missing_ok=True)
    return errors


# --------------------------------------------------------------------------------------------
# Merging
# --------------------------------------------------------------------------------------------


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def collect(out: Path, grid: Grid) -> list[dict[str, Any]]:
    """Every cell's merged entry, in grid order (whatever order the files were written in)."""
    merged = []
    for cell in grid.cells():
        results, errors = {}, {}
        for seed in grid.seeds:
            res = _read(result_path(out, cell, seed))
            if res is not None and res.get("key") == cell.key:
                results[seed] = res
                continue
            err = _read(error_path(out, cell, seed))
            if err is not None:
                errors[seed] = err.get("error", "failed")
        ident = {
            "index": cell.index,
            "key": cell.key,
            "label": cell.label(grid),
            "spec": cell.spec(),
        }
        merged.append(stats.merge_cell(ident, grid.seeds, results, errors))
    return merged


def merged_document(grid: Grid, cells: list[dict[str, Any]]) -> dict[str, Any]:
    """The --json document: the grid and one entry per cell."""
    counts = {
        s: sum(c["status"] == s for c in cells) for s in ("done", "partial", "failed", "missing")
    }
    return {
        "grid": grid.to_dict(),
        "version": __version__,
        "cell_counts": counts,
        "metrics": [
            {"key": k, "label": label, "unit": kind, "better": better}
            for k, label, kind, better in stats.METRICS
        ],
        "cells": cells,
    }


def write_outputs(out: Path, grid: Grid, cells: list[dict[str, Any]]) -> dict[str, Path]:
    """table.txt, cells.json, cells.csv and report.html in ``out``."""
    from .html import sweep_html

    paths = {name: out / name for name in OUTPUTS}
    paths["table.txt"].write_text(stats.cells_table(cells) + "\n", encoding="utf-8")
    write_json(paths["cells.json"], merged_document(grid, cells))
    paths["cells.csv"].write_text(stats.cells_csv(cells), encoding="utf-8")
    paths["report.html"].write_text(sweep_html(grid, cells), encoding="utf-8")
    return paths
