"""Grid files of `kant-slurm sweep`: what they expand to, and every mistake as a one-line error
naming file:line and what is expected, with exit code 2."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kant_slurm.cli import cli
from kant_slurm.whatif.grid import GridError, load_grid

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep_helpers import TINY_CLUSTER, tiny_philly  # noqa: E402


def test_cells_are_the_cross_product_in_a_fixed_order(tmp_path):
    trace = tiny_philly(tmp_path / "t.csv")
    g = tmp_path / "g.yaml"
    g.write_text(f"policies: [slurm, kant]\nseeds: [0, 1, 2]\ntraces: [t.csv, bundled]\n"
                 f"clusters: [{TINY_CLUSTER}]\noverrides:\n  backfill.reservations: [1, 8]\n"
                 "  slurm.bf_window: [60]\n  sim.time_limit_model: [ladder, exact]\n")
    grid = load_grid(g)
    cells = grid.cells()
    assert len(cells) == 2 * 2 * 1 * 2 * 2  # policies x reservations x window x tlm x traces
    assert [c.index for c in cells] == list(range(len(cells)))
    assert cells[0].trace.path == str(trace.resolve())
    assert dict(cells[0].overrides) == {"backfill.reservations": 1, "slurm.bf_window": 60,
                                        "sim.time_limit_model": "ladder"}
    # Keys are unique per cell and do not depend on the index (resume after an edit).
    assert len({c.key for c in cells}) == len(cells)
    # A dimension with one value is not in the label; those with several are.
    assert cells[1].label(grid) == "kant backfill.reservations=1 sim.time_limit_model=ladder " \
                                   "trace=t.csv"
    # The grid written to sweep.json gives the same cells back.
    from kant_slurm.whatif.grid import Grid

    assert [c.key for c in Grid.from_dict(grid.to_dict()).cells()] == [c.key for c in cells]


def test_reordering_the_grid_keeps_each_cells_key(tmp_path):
    tiny_philly(tmp_path / "t.csv")
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("policies: [slurm, kant]\ntraces: [t.csv]\n")
    b.write_text("policies: [kant, slurm]\ntraces: [t.csv]\n")
    keys = lambda p: {c.policy: c.key for c in load_grid(p).cells()}  # noqa: E731
    assert keys(a) == keys(b)


# (grid file text, expected line, words the message must hold)
BAD_GRIDS = [
    ("policies: [slurm]\npolices: [kant]\n", 2, ["unknown key 'polices'", "expected one of"]),
    ("policies: [slurm]\nseeds: [0]\nseeds: [1]\n", 3, ["duplicate key 'seeds'",
                                                        "first at line 2"]),
    ("policies: [slurm]\nseeds: [a, 1]\n", 2, ["seeds", "expected whole numbers >= 0"]),
    ("policies: [slurm]\nseeds: 3\n", 2, ["seeds", "expected a non-empty list"]),
    ("policies: [slurm, nope]\n", 1, ["unknown policy 'nope'", "kant-steered"]),
    ("policies: [slurm, slurm]\n", 1, ["listed twice"]),
    ("seeds: [0]\n", None, ["policies: missing", "expected a list of policies"]),
    ("policies: [slurm]\noverrides:\n  backfill.nope: [1]\n", 3,
     ["unknown key overrides.'backfill.nope'", "expected a kant config key"]),
    ("policies: [slurm]\noverrides:\n  backfill.reservations: [4, x]\n", 3,
     ["backfill.reservations = 'x'", "expected an integer"]),
    ("policies: [slurm]\noverrides:\n  backfill.reservations: [4, 4]\n", 3, ["listed twice"]),
    ("policies: [slurm]\noverrides:\n  slurm.bf_window: [0]\n", 3,
     ["overrides.slurm.bf_window = 0", "expected a whole number >= 1"]),
    ("policies: [slurm]\noverrides:\n  slurm.bf_continue: [1]\n", 3,
     ["modelled SchedulerParameters", "bf_max_job_test"]),
    ("policies: [slurm]\noverrides:\n  sim.steer_interval: [fast]\n", 3,
     ["sim.steer_interval = 'fast'", "expected a number of seconds"]),
    ("policies: [slurm]\noverrides:\n  sim.time_limit_model: [guess]\n", 3,
     ["time_limit_model = 'guess'", "expected a time-limit model"]),
    ("policies: [slurm]\noverrides:\n  sim.speed: [1]\n", 3, ["unknown key overrides.'sim.speed'"]),
    ("policies: [slurm]\ntraces: [no-such-dir/t.csv]\n", 2,
     ["trace 'no-such-dir/t.csv'", "does not exist", "expected an existing file"]),
    ("policies: [slurm]\ntraces: [missing.csv]\n", 2, ["no such file"]),
    ("policies: [slurm]\ntraces: [{path: t.csv, format: csv}]\n", 2,
     ["format 'csv'", "expected one of"]),
    ("policies: [slurm]\nclusters: [{nodes: 4}]\n", 2, ["expected a cluster spec path"]),
    ("policies: [slurm]\noverrides: [1, 2]\n", 2, ["expected a mapping of key: [values]"]),
    ("- slurm\n", None, ["expected a mapping with the keys"]),
    ("policies: [slurm\n", 2, ["not valid YAML"]),
    (b"policies: [slurm]\nname: caf\xe9\n", 2, ["not UTF-8", "expected a UTF-8 grid YAML"]),
]


@pytest.mark.parametrize("text,line,words", BAD_GRIDS,
                         ids=[f"{i}" for i in range(len(BAD_GRIDS))])
def test_bad_grid_is_one_line_with_place_and_exit_2(tmp_path, text, line, words):
    tiny_philly(tmp_path / "t.csv")
    g = tmp_path / "g.yaml"
    g.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(GridError) as err:
        load_grid(g)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{g}:{line}:" if line else f"{g}"), msg
    for w in words:
        assert w in msg, msg
    r = CliRunner().invoke(cli, ["sweep", str(g), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2, r.output
    assert r.output.strip() == f"error: {msg}"
    assert not (tmp_path / "o").exists()  # nothing was run or written


def test_missing_grid_and_missing_out_parent_are_usage_errors(tmp_path):
    r = CliRunner().invoke(cli, ["sweep", str(tmp_path / "nodir" / "g.yaml")])
    assert r.exit_code == 2 and "does not exist; expected a grid YAML file" in r.output
    g = tmp_path / "g.yaml"
    g.write_text("policies: [slurm]\n")
    r = CliRunner().invoke(cli, ["sweep", str(g), "--out", str(tmp_path / "a" / "b")])
    assert r.exit_code == 2
    assert "does not exist; expected a directory to create the sweep's directory in" in r.output


def test_example_grids_load_and_have_four_cells_or_more():
    root = Path(__file__).resolve().parents[2] / "benchmarks"
    sweeps = sorted(root.glob("*sweep*.yaml"))
    assert sweeps
    for path in sweeps:
        assert len(load_grid(path).cells()) >= 4, path
    levers = load_grid(root / "sweep-kant-levers.yaml")
    assert {k for k, _ in levers.overrides} >= {"backfill.reservations"}
