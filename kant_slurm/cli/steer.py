"""``kant-slurm schedule|daemon|reset|replay``: steer a live Slurm, undo it, replay a trace."""

from __future__ import annotations

import logging
import sys

import click

from ..config import load_config
from ..errors import InputError, KantError
from ..steer import DAEMON_INTERVAL_S
from .options import echo_json, json_option
from .plan import config_option


def _paths_options(f):
    f = click.option(
        "--lock-file",
        default=None,
        type=click.Path(dir_okay=False),
        help="Lock file (default: the config's actuator.lock_file).",
    )(f)
    f = click.option(
        "--state-file",
        default=None,
        type=click.Path(dir_okay=False),
        help="kant's state file (default: the config's actuator.state_file).",
    )(f)
    return f


def _policy_option(f):
    return click.option(
        "--policy",
        type=click.Choice(["kant", "slurm", "fifo"]),
        default=None,
        help="Policy to plan with (default: the config's `policy`).",
    )(f)


def _ensure_logging() -> None:
    # The group configures WARNING by default; steering prints its cycle lines at INFO.
    logger = logging.getLogger("kant_slurm")
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)


def _print_cycle(report, as_json: bool) -> None:
    if as_json:
        echo_json(report.to_dict())
        return
    for note in report.notes:
        click.echo(f"# {note}")
    from ..slurm.actuator import group_changes

    for step in report.preemptions if report.dry_run else report.preempted:
        click.echo(f"{step.command()}  # {step.reason}")
    for step, err in report.preempt_failed:
        click.echo(f"# FAILED {step.command()}: {err}")
    for step in report.preempt_not_run:
        click.echo(f"# NOT RUN {step.command()}")
    shown = report.changes if report.dry_run else report.applied
    for cmd in group_changes(shown):
        click.echo(f"{cmd.command()}  # {cmd.reason}")
    for ch, err in report.failed:
        click.echo(f"# FAILED {ch.command()}: {err}")
    for ch in report.not_run:
        click.echo(f"# NOT RUN {ch.command()}")
    if report.preempt_deferred:
        click.echo(
            f"# {len(report.preempt_deferred)} more victims deferred to the next cycle "
            f"(actuator.max_preemptions)"
        )
    if report.deferred:
        click.echo(
            f"# {len(report.deferred)} more changes deferred to the next cycle "
            f"(actuator.max_changes)"
        )
    click.echo(f"# {report.summary()}")


def schedule_exit_code(report, read_error: Exception | None) -> int:
    """The exit code of one ``schedule`` cycle: 3 when Slurm did not answer (reading, or
    mid-apply), 1 when reading failed otherwise, 4 when some changes failed, else 0."""
    from ..errors import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, EXIT_UNREACHABLE, SlurmUnreachable

    if not report.ok:
        if read_error is not None and not isinstance(read_error, SlurmUnreachable):
            return EXIT_ERROR
        return EXIT_UNREACHABLE
    if report.failed or report.preempt_failed:
        return EXIT_PARTIAL
    return EXIT_OK


@click.command("schedule")
@click.option(
    "--once",
    is_flag=True,
    help="One read-plan-apply cycle and exit (the default; kept for cron lines that name it).",
)
@click.option("--dry-run", is_flag=True, help="Print the exact scontrol commands and apply none.")
@_policy_option
@_paths_options
@config_option
@json_option
def schedule_cmd(once, dry_run, policy, state_file, lock_file, config_path, as_json):
    """One read-plan-apply cycle: read Slurm, plan, change what differs from what kant set
    last time, print what it changed and why. Exit 3 when Slurm did not answer (nothing more
    was changed) or another instance holds the lock, 4 when some scontrol changes failed (the
    others were applied). `daemon` runs cycles in a loop.

    \b
    Examples:
      kant-slurm schedule --dry-run            # the scontrol commands it would run
      kant-slurm schedule --json               # apply, report as JSON
    """
    from ..engine.classify import make_classifier
    from ..slurm import read_snapshot
    from ..slurm.diff import site_factors_shown
    from ..steer import SteerLock, run_cycle

    config = load_config(config_path)
    state_path = state_file or config.actuator.state_file
    read_error: list[Exception] = []

    def read():
        # run_cycle's own read, but keeping the error: the report holds only its text, and
        # "Slurm not answering" (exit 3) must be told from "Slurm answered nonsense" (exit 1).
        try:
            snapshot = read_snapshot(classify=make_classifier(config))
            return snapshot, site_factors_shown(snapshot)
        except Exception as exc:
            read_error.append(exc)
            raise

    if dry_run:
        report = run_cycle(config, state_path, dry_run=True, policy=policy, read=read)
    else:
        with SteerLock(lock_file or config.actuator.lock_file):
            report = run_cycle(config, state_path, dry_run=False, policy=policy, read=read)
    _print_cycle(report, as_json)
    code = schedule_exit_code(report, read_error[0] if read_error else None)
    if code:
        sys.exit(code)


@click.command("daemon")
@click.option(
    "--interval",
    type=click.FloatRange(0.1),
    default=DAEMON_INTERVAL_S,
    show_default=True,
    help="Seconds between the starts of two cycles.",
)
@click.option("--dry-run", is_flag=True, help="Plan and log, apply nothing.")
@click.option("--syslog", is_flag=True, help="Log to syslog (/dev/log) as well as stderr.")
@click.option(
    "--max-cycles",
    type=click.IntRange(1),
    default=None,
    help="Stop after this many cycles (tests, benchmarks).",
)
@_policy_option
@_paths_options
@config_option
def daemon_cmd(interval, dry_run, syslog, max_cycles, policy, state_file, lock_file, config_path):
    """Steer Slurm in a loop, in the foreground. SIGTERM stops it after the current cycle,
    SIGHUP reloads the config; a lock file keeps a second instance out. Each cycle logs one
    line to stderr (and syslog with --syslog): its duration and counts.

    \b
    Examples:
      kant-slurm daemon --interval 30
      kant-slurm daemon --interval 10 --syslog --config /etc/kant-slurm/kant.yaml
    """
    from ..steer import Daemon, add_syslog

    _ensure_logging()
    if syslog:
        try:
            add_syslog()
        except OSError as exc:
            raise InputError(f"--syslog: cannot reach syslog: {exc}") from None
    Daemon(
        config_path,
        interval,
        state_path=state_file,
        lock_path=lock_file,
        dry_run=dry_run,
        max_cycles=max_cycles,
        policy=policy,
    ).run()


@click.command("reset")
@click.option("--dry-run", is_flag=True, help="Print the scontrol commands, apply none.")
@_paths_options
@config_option
@json_option
def reset_cmd(dry_run, state_file, lock_file, config_path, as_json):
    """Remove every change kant made: node weights back to slurm.conf's, SiteFactors back,
    pins cleared (from kant's state file), then check Slurm shows no kant change left.
    Exit 1 when something is left.

    \b
    Examples:
      kant-slurm reset --dry-run
      kant-slurm reset --state-file /var/lib/kant-slurm/state.json
    """
    from ..steer import SteerLock, reset

    config = load_config(config_path)
    state_path = state_file or config.actuator.state_file
    if dry_run:
        report = reset(config, state_path, dry_run=True)
    else:
        with SteerLock(lock_file or config.actuator.lock_file):
            report = reset(config, state_path)
    if as_json:
        echo_json(report.to_dict())
    else:
        for note in report.notes:
            click.echo(f"# {note}")
        from ..slurm.actuator import group_changes

        for cmd in group_changes(report.changes if dry_run else report.applied):
            click.echo(f"{cmd.command()}  # restore")
        for ch, err in report.failed:
            click.echo(f"# FAILED {ch.command()}: {err}")
        for line in report.left:
            click.echo(f"# LEFT {line}")
        if not dry_run:
            click.echo(
                "# Slurm shows no kant change"
                if report.clean
                else "# kant changes are left (see above)"
            )
    if not dry_run and not report.clean:
        raise KantError(
            "reset incomplete: " + "; ".join(report.left[:3] or [e for _, e in report.failed[:3]])
        )


@click.command("replay")
@click.option(
    "--trace",
    "trace_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Trace file (philly, swf, openb, sacct).",
)
@click.option(
    "--trace-format",
    type=click.Choice(["philly", "swf", "openb", "sacct"]),
    default=None,
    help="Trace format (default: guessed from the file).",
)
@click.option(
    "--speedup",
    type=click.FloatRange(min=1.0),
    default=60.0,
    show_default=True,
    help="Divide arrival gaps, run times and time limits by this.",
)
@click.option(
    "--arrival-speedup",
    type=click.FloatRange(min=1.0),
    default=None,
    help="Divide arrival gaps by this instead (more load on a small cluster).",
)
@click.option(
    "--max-runtime",
    type=click.FloatRange(min=1.0),
    default=None,
    help="Cut jobs to this many trace seconds, like a partition MaxTime.",
)
@click.option("--limit", type=click.IntRange(1), default=None, help="First N jobs only.")
@click.option("--skip", type=click.IntRange(0), default=0, help="Skip the first N jobs.")
@click.option(
    "--time-limits",
    "time_limit_model",
    default="ladder",
    show_default=True,
    help="Time-limit model for traces without limits (see simulate).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the time-limit model."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1.0),
    default=None,
    help="Give up waiting after this many seconds (cancels what is left).",
)
@json_option
def replay_cmd(
    trace_path,
    trace_format,
    speedup,
    arrival_speedup,
    max_runtime,
    limit,
    skip,
    time_limit_model,
    seed,
    timeout,
    as_json,
):
    """Submit a trace to the live cluster as `sleep` jobs (its GPUs, nodes and time limits,
    arrival gaps and durations divided by --speedup), wait for them, read sacct, print the
    metrics. Ctrl-C or SIGTERM cancels every job it submitted (then exit 1 after SIGTERM).
    A replay lasts the trace's span divided by --speedup, plus the longest job: --limit 300 of
    the Philly trace at --speedup 60 takes about 2 hours.

    \b
    Examples:
      kant-slurm replay --trace philly.csv --limit 300 --speedup 60
      kant-slurm replay --trace jobs.swf --trace-format swf --json
    """
    from ..devcluster.replay import prepare_replay, replay_trace

    _ensure_logging()
    jobs = prepare_replay(
        trace_path,
        trace_format,
        speedup=speedup,
        limit=limit,
        skip=skip,
        time_limit_model=time_limit_model,
        seed=seed,
        arrival_speedup=arrival_speedup,
        max_runtime=max_runtime,
    )
    result = replay_trace(jobs, speedup=speedup, timeout=timeout)
    if as_json:
        echo_json(result.to_dict())
    else:
        click.echo(result.format())


commands = [schedule_cmd, daemon_cmd, reset_cmd, replay_cmd]
