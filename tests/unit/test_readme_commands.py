"""Every command in README.md runs as written (issue 19): each ``kant-slurm`` invocation parses
with the real CLI (options, values, subcommands, input files), the commands that need neither
root nor a cluster run here in a temporary directory, and each command has a rule saying how it
is tested (tests/readme_commands.py; the cluster ones run in
tests/integration/test_readme_cluster.py)."""

from __future__ import annotations

import re
import subprocess

import click
import pytest

from readme_commands import (CLUSTER, HOW, OFFLINE, PARSE_ONLY, REPO, Command, how,
                             kant_invocations, kant_shim, parse_kant, readme_commands, work_dir)

COMMANDS = readme_commands()
INVOCATIONS = [(c, args) for c in COMMANDS for args in kant_invocations(c.text)]


def test_the_readme_has_commands_of_every_kind():
    kinds = {how(c)[0] for c in COMMANDS if how(c)}
    assert kinds == {OFFLINE, CLUSTER, PARSE_ONLY}
    # Every command that runs kant-slurm has its invocation found (and so parsed below).
    runs_kant = [c for c in COMMANDS if re.search(r"(^|[\s/(;&|])kant-slurm(\s|$)", c.bare)]
    assert runs_kant and all(kant_invocations(c.text) for c in runs_kant)


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_every_command_has_a_rule(command):
    rule = how(command)
    assert rule is not None, \
        f"{command}: no rule in tests/readme_commands.py HOW says how it is tested"
    kind, why = rule
    assert kind != PARSE_ONLY or why, f"{command}: a parse-only rule must say why"


def test_every_rule_matches_a_command():
    for pattern, _kind, _ in HOW:
        assert any(re.search(pattern, c.bare) for c in COMMANDS), f"stale rule {pattern!r}"


@pytest.mark.parametrize("command, args", INVOCATIONS,
                         ids=lambda x: str(x) if isinstance(x, Command) else "")
def test_every_kant_slurm_command_parses(command, args, monkeypatch, tmp_path):
    # From the repository root, where the README's relative paths point; files that an earlier
    # README command writes (the preemption walk-through's config) are written first.
    monkeypatch.chdir(REPO)
    if "/tmp/kant-preempt.yaml" in args:
        monkeypatch.setattr("readme_commands.os.path.expanduser", lambda p: p)
        config = tmp_path / "kant-preempt.yaml"
        config.write_text("inference: {sla: 60}\n")
        args = [str(config) if a == "/tmp/kant-preempt.yaml" else a for a in args]
    try:
        parse_kant(args)
    except click.ClickException as exc:
        pytest.fail(f"{command}: kant-slurm {' '.join(args)}: {exc.format_message()}")


@pytest.mark.parametrize("command",
                         [c for c in COMMANDS if c.bare.startswith("python benchmarks/")],
                         ids=str)
def test_benchmark_scripts_exist(command):
    assert (REPO / command.bare.split()[1]).is_file(), command


@pytest.mark.parametrize("command", [c for c in COMMANDS if how(c) and how(c)[0] == OFFLINE],
                         ids=str)
def test_offline_commands_run_as_written(command, tmp_path):
    env = kant_shim(tmp_path / "bin")
    work = work_dir(tmp_path / "work")
    before = set(work.iterdir())
    res = subprocess.run(["bash", "-euo", "pipefail", "-c", command.text], cwd=work, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"{command}: exit {res.returncode}: {res.stderr.strip()}"
    assert "Traceback" not in res.stderr, command
    written = [p for p in set(work.iterdir()) - before if p.stat().st_size]
    assert res.stdout.strip() or written, f"{command}: printed and wrote nothing"
