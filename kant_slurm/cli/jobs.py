"""``kant-slurm templates``, ``render`` and ``submit``: job scripts from declared templates."""

from __future__ import annotations

import shlex

import click

from .. import jobscript
from .options import echo_json, json_option


def _layers(values_file: str | None, sets: tuple[str, ...]) -> list:
    layers = []
    if values_file:
        layers.append((f"--values {values_file}", jobscript.load_values_file(values_file)))
    if sets:
        layers.append(("--set", jobscript.parse_set(list(sets))))
    return layers


def _value_options(f):
    f = click.option(
        "--values",
        "values_file",
        type=click.Path(dir_okay=False),
        help="YAML file of parameter: value (--set wins over it).",
    )(f)
    f = click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="KEY=VALUE",
        help="One parameter; repeat. Mappings: --set env.NAME=value.",
    )(f)
    return f


@click.command("templates")
@click.argument("name", required=False)
@json_option
def templates_cmd(name: str | None, as_json: bool) -> None:
    """List the job-script templates and their parameters.

    \b
    Examples:
      kant-slurm templates
      kant-slurm templates training --json
    """
    found = [jobscript.find_template(name)] if name else jobscript.list_templates()
    if as_json:
        echo_json(
            [
                {
                    "name": t.name,
                    "description": t.spec.description,
                    "parameters": [
                        {
                            "name": p.name,
                            "type": p.type,
                            "required": p.required,
                            "default": p.describe_default(),
                            "help": p.help,
                            **({"choices": list(p.choices)} if p.choices else {}),
                            **({"pattern": p.pattern} if p.pattern else {}),
                            **({"min": p.min} if p.min is not None else {}),
                            **({"max": p.max} if p.max is not None else {}),
                        }
                        for p in t.spec.params
                    ],
                }
                for t in found
            ]
        )
        return
    for t in found:
        click.echo(f"{t.name}: {t.spec.description}")
        width = max(len(p.name) for p in t.spec.params)
        for p in t.spec.params:
            kind = p.type if not p.choices else "|".join(p.choices)
            click.echo(f"  {p.name:<{width}}  {kind:<10} {p.describe_default():<12} {p.help}")
        click.echo("")


@click.command("render")
@click.argument("template")
@_value_options
def render_cmd(template: str, values_file: str | None, sets: tuple[str, ...]) -> None:
    """Print the job script of TEMPLATE with the given values.

    \b
    Examples:
      kant-slurm render training --set time=1-00:00:00 --set 'program=train.py --lr 3e-4'
      kant-slurm render inference-service --values chat.yaml
    """
    click.echo(jobscript.render(template, _layers(values_file, sets)), nl=False)


@click.command("submit")
@click.argument("template")
@_value_options
@click.option(
    "--dry-run", is_flag=True, help="Print the sbatch command and the script; submit nothing."
)
@click.option(
    "--sbatch-arg",
    "sbatch_args",
    multiple=True,
    metavar="ARG",
    help="Extra argument for sbatch (e.g. --sbatch-arg=--hold); repeat.",
)
def submit_cmd(
    template: str,
    values_file: str | None,
    sets: tuple[str, ...],
    dry_run: bool,
    sbatch_args: tuple[str, ...],
) -> None:
    """Render TEMPLATE and submit it with sbatch; print the job id.

    \b
    Examples:
      kant-slurm submit inference-service --set service=chat --set port=8000 \\
          --set 'command=python3 -m kant_slurm.examples.toy_server'
      kant-slurm submit training --set nodes=2 --set time=30:00 --set launcher=command \\
          --set 'program=python3 -m kant_slurm.examples.toy_train --checkpoint-dir ckpt'
      kant-slurm submit training --values run.yaml --dry-run
    """
    script = jobscript.render(template, _layers(values_file, sets))
    if dry_run:
        click.echo("# " + shlex.join(jobscript.sbatch_command(sbatch_args)) + " < script")
        click.echo(script, nl=False)
        return
    click.echo(jobscript.submit(script, sbatch_args))


commands = [templates_cmd, render_cmd, submit_cmd]
