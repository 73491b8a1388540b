"""``kant-slurm config show|check``: the merged config, and validating a config file."""

from __future__ import annotations

import sys

import click
import yaml

from ..config import describe_schema, inference_advice, load_config
from ..errors import ConfigError
from .options import echo_json, json_option


@click.group("config")
def config_group():
    """Show the effective kant config or check a config file.

    \b
    Examples:
      kant-slurm config show                     # the shipped defaults
      kant-slurm config show --config kant.yaml  # a site file merged over them
      kant-slurm config check site-config/kant.yaml   # every error, with file and line
    """


@config_group.command("show")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="KANT_CONFIG",
    default=None,
    help="kant config merged over the defaults [env KANT_CONFIG].",
)
@click.option("--schema", is_flag=True, help="List every key with its type, bounds and meaning.")
@json_option
def show_cmd(config_path, schema, as_json):
    """Print the merged config (defaults + FILE) as YAML, or JSON with --json.

    \b
    Example:
      kant-slurm config show --config /etc/kant-slurm/kant.yaml
    """
    if schema:
        rows = describe_schema()
        if as_json:
            echo_json([{"key": k, "type": t, "help": h} for k, t, h in rows])
        else:
            for k, t, h in rows:
                click.echo(f"{k}\n    {t}\n    {h}")
        return
    data = load_config(config_path).to_dict()
    if as_json:
        echo_json(data)
    else:
        click.echo(yaml.safe_dump(data, sort_keys=False).rstrip())


@config_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--simulation",
    is_flag=True,
    help="FILE is for the simulator only: skip the rules of live steering "
    "(preemption.lead_seconds > grace_seconds; the simulator models no grace).",
)
def check_cmd(file, simulation):
    """Validate FILE (YAML or TOML): unknown and duplicate keys, wrong types, out-of-range
    values and broken rules between keys are errors naming file, line, key and what is
    allowed. Every error is printed, one per line; exit 0 when valid, 1 when not.

    \b
    Examples:
      kant-slurm config check site-config/kant.yaml
      kant-slurm config check --simulation benchmarks/mixed-kant.yaml
    """
    try:
        config = load_config(file, steering=not simulation)
    except ConfigError as exc:
        # One "error:" line per problem, all of them, so one run shows what to fix.
        for line in str(exc).splitlines():
            click.echo(f"error: {line}", err=True)
        sys.exit(exc.exit_code)
    for line in inference_advice(config):
        click.echo(f"warning: {file}: {line}", err=True)
    click.echo(f"{file}: ok")


commands = [config_group]
