"""The shell commands of README.md as its code blocks give them, for the tests that hold the
README's promise that every command in it runs as written (tests/unit/test_readme_commands.py,
tests/integration/test_readme_cluster.py).

A command block is an indented code block (four spaces, after a blank line, outside fences) or
a fenced block marked sh, bash, shell or console; a command is one of its lines, with the lines
a trailing backslash continues. Each command has one way it is tested beyond parsing (``HOW``):
run offline in a temporary directory, run against the dev cluster, or only parsed, with the
reason. A command no rule matches fails the unit test, so a new README command gets a rule.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

OFFLINE, CLUSTER, PARSE_ONLY = "offline", "cluster", "parse-only"


@dataclass(frozen=True)
class Command:
    line: int  # README line of its first line
    text: str  # as written; continued lines joined with the backslash-newline kept

    def __str__(self) -> str:
        return f"README.md:{self.line}: {self.text.splitlines()[0]}"

    @property
    def bare(self) -> str:
        """The command without its trailing ``# comments``, on one line."""
        return " ".join(re.sub(r"\s+# .*$", "", line).rstrip().rstrip("\\").strip()
                        for line in self.text.splitlines()).strip()


def readme_commands(text: str | None = None) -> list[Command]:
    """Every command of the README's command blocks, in order."""
    lines = (README.read_text(encoding="utf-8") if text is None else text).splitlines()
    commands: list[Command] = []
    fence: str | None = None  # the info string of the open fence, "" when unmarked
    in_block = False
    pending: list[str] = []
    start = 0

    def add(line_no: int, body: str) -> None:
        nonlocal pending, start
        if not pending:
            start = line_no
        pending.append(body)
        if not body.rstrip().endswith("\\"):
            text = "\n".join(pending)
            if text.strip() and not text.lstrip().startswith("#"):
                commands.append(Command(start, text))
            pending = []

    for no, line in enumerate(lines, 1):
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip().lower()
            in_block = False
            continue
        if fence is not None:
            if fence in ("sh", "bash", "shell", "console"):
                add(no, line[2:] if line.startswith("$ ") else line)
            continue
        if line.startswith("    ") and (in_block or no == 1 or not lines[no - 2].strip()):
            in_block = True
            add(no, line[4:])
        elif line.strip():
            in_block = False
    return commands


# How each README command is tested beyond parsing: (pattern on the command, how, why). The
# first rule that matches a command decides.
HOW: list[tuple[str, str, str]] = [
    (r"^python3 -m venv \.venv", PARSE_ONLY,
     "installs kant-slurm and runs the full simulation; benchmarks/quickstart.sh runs it from a "
     "fresh clone"),
    (r"^bash \.ci/test\.sh", PARSE_ONLY, "the test command itself: CI runs it"),
    (r"^kant-slurm simulate --trace tests/fixtures/", OFFLINE, ""),
    (r"^kant-slurm simulate", PARSE_ONLY,
     "simulations of seconds to minutes; tests/unit/test_sim_cli.py runs the simulator's CLI"),
    (r"^kant-slurm devcluster (up|down|root|exec)|^eval .*devcluster up", PARSE_ONLY,
     "starts, stops or builds a cluster; the test session's fixture runs `up` and `down`"),
    (r"^kant-slurm devcluster status", CLUSTER, ""),
    (r"^sbatch --gres=gpu:3", CLUSTER, ""),
    (r"^kant-slurm (status|plan)\b|^job=\$\(sbatch", CLUSTER, ""),
    (r"^kant-slurm schedule --dry-run$", CLUSTER, ""),
    (r"^kant-slurm (schedule|daemon|reset)\b", PARSE_ONLY,
     "changes the cluster and the site's own state file; tests/integration/test_actuator_"
     "cluster.py and test_faults.py run the same cycles with their own --state-file"),
    (r"^kant-slurm config ", OFFLINE, ""),
    (r"^kant-slurm replay", PARSE_ONLY,
     "submits 300 jobs over minutes; tests/integration/test_replay_cluster.py runs replay"),
    (r"^(sacctmgr|printf|for i in|sleep|sbatch --qos=inference|squeue)", PARSE_ONLY,
     "the preemption walk-through takes minutes; tests/integration/test_preemption_cluster.py "
     "runs its steps"),
    (r"^kant-slurm report --input", OFFLINE, ""),
    (r"^kant-slurm report -S", CLUSTER, ""),
    (r"^kant-slurm exporter( |$)|^promtool", PARSE_ONLY,
     "serves until stopped, or needs promtool; tests/unit/test_exporter.py runs the exporter "
     "and promtool on its output and on the rules"),
    (r"^kant-slurm (templates|render)\b|^kant-slurm submit .*--dry-run", OFFLINE, ""),
    (r"^kant-slurm submit ", CLUSTER, ""),
    (r"^kant-slurm bench plan", PARSE_ONLY,
     "synthetic planning benchmarks of seconds to minutes; tests/unit/test_engine_* plan the "
     "same shapes"),
    (r"^kant-slurm whatif --input tests/fixtures/", OFFLINE, ""),
    (r"^kant-slurm whatif\b", CLUSTER, ""),
    (r"^kant-slurm sweep ", PARSE_ONLY,
     "grids of 6 to 16 cells take minutes; tests/unit/test_sweep_run.py and tests/integration/"
     "test_sweep_cluster.py run both backends on small grids"),
    (r"^python benchmarks/", PARSE_ONLY,
     "benchmarks of minutes to hours; the script must exist (checked)"),
]


def how(command: Command) -> tuple[str, str] | None:
    """(how, why) of the first rule matching ``command``; None when no rule does."""
    for pattern, kind, why in HOW:
        if re.search(pattern, command.bare):
            return kind, why
    return None


_SUBSTITUTE = {"$job": "1"}  # shell variables a command sets before it uses them


def kant_invocations(text: str) -> list[list[str]]:
    """The argument lists of every ``kant-slurm`` in a command line (also inside ``$(...)`` and
    after ``.venv/bin/``): the words after it up to the next shell operator, with ``~``
    expanded as the shell would and the README's shell variables given a value."""
    out: list[list[str]] = []
    lexer = shlex.shlex(text.replace("\\\n", " "), posix=True, punctuation_chars=";&|<>()")
    lexer.whitespace_split = True
    words = list(lexer)
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("$(") or "$(kant-slurm" in word:
            inner = word[word.index("$(") + 2:]
            out += kant_invocations(inner[:-1] if inner.endswith(")") else inner)
        if word == "kant-slurm" or word.endswith("/kant-slurm"):
            args = []
            i += 1
            while i < len(words) and not set(words[i]) <= set(";&|<>()"):
                w = words[i]
                for var, value in _SUBSTITUTE.items():
                    w = w.replace(var, value)
                args.append(os.path.expanduser(w) if w.startswith("~/") else w)
                i += 1
            out.append(args)
            continue
        i += 1
    return out


def parse_kant(args: list[str]) -> None:
    """Parse ``kant-slurm ARGS`` as the CLI would, down to the last subcommand, without running
    it: unknown options, bad values, missing arguments and missing input files raise
    click's UsageError/BadParameter."""
    import click

    from kant_slurm.cli import cli

    ctx = cli.make_context("kant-slurm", list(args))
    command: click.Command = cli
    while isinstance(command, click.Group):
        rest = [*(ctx.__dict__.get("_protected_args")
                  or ctx.__dict__.get("protected_args") or []), *ctx.args]
        if not rest:
            raise click.UsageError(f"kant-slurm {' '.join(args)}: no subcommand")
        name, sub, rest = command.resolve_command(ctx, rest)
        ctx = sub.make_context(name, rest, parent=ctx)
        command = sub


def kant_shim(bin_dir: Path) -> dict[str, str]:
    """A ``kant-slurm`` in ``bin_dir`` that runs this tree's code with this Python (so the
    commands test this checkout, whatever else is installed); returns os.environ with
    ``bin_dir`` first on PATH and the tree on PYTHONPATH."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "kant-slurm"
    shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m kant_slurm \"$@\"\n")
    shim.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def work_dir(path: Path) -> Path:
    """A directory to run README commands in: the repository's top-level entries linked in, so
    the README's relative paths resolve, and whatever the commands write lands here."""
    path.mkdir(parents=True, exist_ok=True)
    for entry in REPO.iterdir():
        if entry.name.startswith(".") and entry.name != ".ci":
            continue
        (path / entry.name).symlink_to(entry)
    return path
