"""``kant-slurm sweep GRID.yaml``: many simulations, on this machine or as a Slurm job array."""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from pathlib import Path

import click

from ..errors import EXIT_ERROR
from .options import echo_json, json_option


def invoked_command() -> str:
    """The command line of this process as one shell-quoted string (``python -m kant_slurm``
    written out with its interpreter, so that it reruns as it ran)."""
    argv = list(sys.argv)
    if argv and argv[0].endswith("__main__.py"):
        argv = [sys.executable, "-m", "kant_slurm"] + argv[1:]
    return shlex.join(argv)


class Progress:
    """Progress on stderr: one line rewritten on a terminal, a new line per change otherwise
    (a log file then reads as a history)."""

    def __init__(self, every_s: float = 2.0) -> None:
        self.tty = sys.stderr.isatty()
        self.last = ""
        self.every_s = every_s  # not a terminal: at most one line this often (unless forced)
        self.printed_at = -float("inf")

    def __call__(self, text: str, force: bool = False) -> None:
        if text == self.last:
            return
        now = time.monotonic()
        if not self.tty and not force and now - self.printed_at < self.every_s:
            return
        self.last = text
        self.printed_at = now
        if self.tty:
            click.echo(f"\r{text}\033[K", err=True, nl=False)
        else:
            click.echo(text, err=True)

    def close(self) -> None:
        if self.tty and self.last:
            click.echo("", err=True)


def _outcome(out: Path, grid, as_json: bool, quiet_paths: bool = False) -> None:
    """Merge, write the outputs, print the table (or JSON); exit 1 if a cell is unfinished."""
    from ..whatif.runner import collect, merged_document, write_outputs

    cells = collect(out, grid)
    paths = write_outputs(out, grid, cells)
    if as_json:
        echo_json(merged_document(grid, cells))
    else:
        click.echo(paths["table.txt"].read_text().rstrip())
        if not quiet_paths:
            click.echo(f"\nwritten: {', '.join(str(p) for p in paths.values())}")
    unfinished = [c for c in cells if c["status"] != "done"]
    if unfinished:
        for c in unfinished:
            why = (
                "; ".join(f"seed {s}: {e}" for s, e in c["seeds_failed"].items())
                or "no result (task cancelled or not run)"
            )
            click.echo(f"cell {c['index']} ({c['label']}) {c['status']}: {why}", err=True)
        click.echo(
            f"error: {len(unfinished)} of {len(cells)} cells did not finish; rerun the "
            "same command to run only those",
            err=True,
        )
        sys.exit(EXIT_ERROR)


@click.command("sweep")
@click.argument("grid_path", metavar="GRID.yaml", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory of the sweep's results (default: sweep-GRIDNAME here). Rerunning "
    "with the same directory runs only the cells not done yet.",
)
@click.option(
    "--backend",
    type=click.Choice(["local", "slurm"]),
    default="local",
    show_default=True,
    help="local: a process pool here; slurm: one sbatch --array job, one task per "
    "cell, and a merge job after it.",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=None,
    help="local: cells run at once (default: the CPU count); slurm: array tasks "
    "running at once (sbatch --array=...%N; default: no limit).",
)
@click.option(
    "--job-name",
    default=None,
    help="slurm: the array's job name (default: kant-sweep-GRIDNAME); the merge job "
    "gets -merge added.",
)
@click.option(
    "--sbatch-arg",
    "sbatch_args",
    multiple=True,
    metavar="ARG",
    help="slurm: one more sbatch argument, e.g. --sbatch-arg=--partition=cpu "
    "(repeatable; given to sbatch as is, not through a shell).",
)
@click.option(
    "--no-wait",
    is_flag=True,
    help="slurm: submit and return; rerun the same command later to see the table.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0, min_open=True),
    default=None,
    help="slurm: seconds to wait for the jobs at most (they go on after it).",
)
@click.option(
    "--cell",
    "cell_index",
    type=click.IntRange(0),
    default=None,
    hidden=True,
    help="Run one cell of the sweep in --out (what each array task does).",
)
@click.option(
    "--merge-only",
    is_flag=True,
    hidden=True,
    help="Merge the results in --out (what the merge job does).",
)
@json_option
def sweep_cmd(
    grid_path,
    out_dir,
    backend,
    workers,
    job_name,
    sbatch_args,
    no_wait,
    timeout,
    cell_index,
    merge_only,
    as_json,
):
    """Run a grid of simulations: the cross product of policies, kant config keys, the slurm
    model's SchedulerParameters, seeds, traces and cluster shapes (see the example grids in
    benchmarks/). Each cell (everything but the seed) runs every seed; its figures are the
    mean and a 95% interval over them. Results go to --out: table.txt, cells.json, cells.csv
    and report.html. A rerun with the same --out runs only the cells without a result (after a
    failure or a scancel); the merged table is the same whatever the backend or the order in
    which cells finished. Each result records the kant-slurm version and the command.

    \b
    Examples:
      kant-slurm sweep benchmarks/sweep-bundled-slice.yaml            # 2 processes here
      kant-slurm sweep benchmarks/sweep-bundled-slice.yaml --backend slurm --out /shared/sw1
      kant-slurm sweep benchmarks/sweep-kant-levers.yaml --workers 2 --json > levers.json
      kant-slurm sweep grid.yaml --backend slurm --sbatch-arg=--partition=cpu --no-wait
    """
    from ..whatif.grid import GridError, load_grid
    from ..whatif.runner import load_out, prepare_out, run_cell

    if cell_index is not None or merge_only:
        if not out_dir:
            raise GridError("--cell/--merge-only: give --out, the sweep's directory")
        out = Path(out_dir).resolve()
        grid = load_out(out)
        if merge_only:
            _outcome(out, grid, as_json, quiet_paths=True)
            return
        cells = grid.cells()
        if cell_index >= len(cells):
            raise GridError(
                f"--cell {cell_index}: the sweep in {out} has cells 0..{len(cells) - 1}"
            )
        errors = run_cell(out, grid, cells[cell_index], invoked_command())
        for seed, text in errors.items():
            click.echo(f"error: cell {cell_index} seed {seed}: {text}", err=True)
        sys.exit(EXIT_ERROR if errors else 0)
    if not grid_path:
        raise click.UsageError("give the grid file: kant-slurm sweep GRID.yaml")
    grid = load_grid(grid_path)
    # The grid's name is free text; as a directory name it keeps only safe characters.
    default_out = "sweep-" + re.sub(r"[^A-Za-z0-9._-]+", "_", grid.name)
    out = prepare_out(out_dir or default_out, grid, invoked_command())
    progress = Progress()
    if backend == "local":
        from ..whatif.local import run_local

        def show(done, failed, total, elapsed):
            progress(
                f"cells {done}/{total} done"
                + (f", {failed} failed" if failed else "")
                + f"  {elapsed:.0f}s",
                force=done == total,
            )

        run_local(out, grid, invoked_command(), workers or os.cpu_count() or 1, show)
        progress.close()
        _outcome(out, grid, as_json)
        return
    from ..whatif import slurmarray

    name = job_name or f"kant-sweep-{grid.name}"
    sub = slurmarray.submit(out, grid, job_name=name, extra=sbatch_args, limit=workers)
    if sub.array_id:
        click.echo(
            f"submitted array job {sub.array_id} ({len(sub.cells)} cells); merge job "
            f"{sub.merge_id}",
            err=True,
        )
    else:
        click.echo(f"no cell left to run; submitted merge job {sub.merge_id}", err=True)
    if no_wait:
        click.echo(f"results will be in {out}; rerun the same command to see them", err=True)
        return
    t0 = time.monotonic()
    state = slurmarray.wait(out, grid, sub, timeout_s=timeout, progress=progress)
    progress.close()
    if state != "COMPLETED":
        click.echo(
            f"merge job {sub.merge_id} ended {state} after "
            f"{time.monotonic() - t0:.0f}s; see {out / 'logs' / 'merge.out'}",
            err=True,
        )
    _outcome(out, grid, as_json)


commands = [sweep_cmd]
