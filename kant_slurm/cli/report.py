"""``kant-slurm report`` (accounting metrics from sacct) and ``kant-slurm exporter``
(Prometheus)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path

import click

from ..errors import InputError, UsageError
from ..jsonready import json_ready
from .options import (
    NO_HELP_SHORTCUT,
    echo_json,
    format_table,
    table_options,
    wants_table,
    window_options,
)

log = logging.getLogger(__name__)


def _inventory(slurm_conf: str | None):
    """The node inventory: from slurm.conf + gres.conf + topology.conf, else the live cluster."""
    if slurm_conf:
        from ..formats.slurm_conf import read_slurm_conf

        return read_slurm_conf(slurm_conf)
    from ..slurm import read_snapshot

    return read_snapshot().inventory


REPORT_FIELDS = (
    "since",
    "until",
    "jobs",
    "runs_started",
    "gpus_total",
    "gpu_hours_allocated",
    "gpu_hours_capacity",
    "gar_mean",
    "sor",
    "gfr_mean",
    "stranded_gpu_share",
    "wait_p50_s",
    "wait_p90_s",
    "wait_p99_s",
)


def report_row(report: dict) -> dict:
    """The report's scalar figures as one table row (``-o``/``-P``/``-h``), window first."""
    # Times as sacct prints them (local ISO), not epoch floats.
    row = {"since": _when(report["window"]["since"]), "until": _when(report["window"]["until"])}
    row.update(
        {k: v for k, v in report.items() if k != "window" and not isinstance(v, (dict, list))}
    )
    return row


def resolve_window(
    since: str | None, until: str | None, now: float, span: tuple[float, float] | None
) -> tuple[float, float]:
    """The report's window: the options where given, else the dump's own span (``span``), else
    the last day up to now."""
    from .options import parse_slurm_time

    t0 = parse_slurm_time(since, now) if since else (span[0] if span else now - 86400.0)
    t1 = parse_slurm_time(until, now) if until else (span[1] if span else now)
    if not span and t1 > now:
        # The future holds no accounting; a window into it would dilute GAR with empty time.
        log.info("--endtime is in the future: the window ends now")
        t1 = now
    return t0, t1


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))


@click.command("report", context_settings=NO_HELP_SHORTCUT)
@window_options
@click.option(
    "--partition",
    "-p",
    default=None,
    help="Only jobs of this partition (and the occupancy of its nodes).",
)
@click.option("--account", "-A", default=None, help="Only jobs of this account.")
@click.option(
    "--class",
    "job_class",
    type=click.Choice(["training", "inference", "batch"]),
    default=None,
    help="Only jobs of this class (kant tag, else config rules).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--csv",
    "csv_dir",
    type=click.Path(file_okay=False),
    default=None,
    metavar="DIR",
    help="Write the report's tables as CSV files into DIR.",
)
@click.option(
    "--html",
    "html_out",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="OUT.html",
    help="Write one self-contained HTML page with plots.",
)
@table_options
@click.option(
    "--input",
    "dump",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    metavar="DUMP",
    help="Read a saved `sacct -a -X -D -P` or `sacct -a -X --json` "
    "dump instead of calling sacct; the window defaults to the dump's own span.",
)
@click.option(
    "--slurm-conf",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    metavar="PATH",
    help="Node inventory from this slurm.conf (+ gres.conf, "
    "topology.conf beside it) instead of the live cluster.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="kant config (class rules by QOS/partition).",
)
@click.option(
    "--chunk-hours",
    type=click.FloatRange(min=0.01),
    default=24.0,
    show_default=True,
    help="sacct is read in chunks of this many hours.",
)
def report_cmd(
    since,
    until,
    partition,
    account,
    job_class,
    as_json,
    csv_dir,
    html_out,
    noheader,
    parsable,
    fields,
    dump,
    slurm_conf,
    config_path,
    chunk_hours,
):
    """GAR, SOR, GFR, stranded GPUs, waits by class and size, time-limit accuracy and top users
    of one accounting window.

    \b
    Examples:
      kant-slurm report -S 2026-11-01 -E 2026-11-08
      kant-slurm report -S now-7days -p gpu --json | jq .gar_mean
      kant-slurm report -S now-30days --html /tmp/gpu-report.html
      kant-slurm report -S now-1day -P -o since,until,jobs,gar_mean,gfr_mean
      kant-slurm report --input sacct-dump.txt --slurm-conf /etc/slurm/slurm.conf --csv out/
    A dump is `SLURM_TIME_FORMAT=%s sacct -a -X -D -P --format=<fields> -S .. -E ..`
    (fields: see kant_slurm.slurm.accounting.SACCT_FIELDS; ISO times work too) or
    `sacct -a -X --json -S .. -E ..`. -h is --noheader here, as in sacct.
    """
    from ..config import load_config
    from ..engine.classify import make_classifier
    from ..report.accounting import build_report, format_report, report_tables
    from ..report.sacct_input import dump_span, read_dump
    from ..slurm import accounting as acct

    table = wants_table(fields, parsable, noheader)
    if sum(bool(x) for x in (as_json, csv_dir, html_out, table)) > 1:
        raise UsageError("--json, --csv, --html and the field table (-o/-P/-h): choose one")
    if html_out and not Path(html_out).resolve().parent.is_dir():
        # Checked before sacct is read: a month of accounting is minutes of work.
        raise InputError(f"--html {html_out}: directory {Path(html_out).parent} does not exist")
    if html_out:
        from ..report.html import require_plotting

        require_plotting("--html")
    now = time.time()
    classify = make_classifier(load_config(config_path))
    if dump:
        span = None
        if since is None or until is None:
            # The dump's own span, read with the window open: a dump of last month is
            # reported over last month, not over an empty "last day".
            whole = read_dump(dump, since=None, until=None, classify=classify)
            span = dump_span(whole)
            if span is None:
                raise InputError(
                    f"{dump}: no job in the dump; expected a sacct -P dump with "
                    "its header line, or sacct --json"
                )
        t0, t1 = resolve_window(since, until, now, span)
        if t1 <= t0:
            raise UsageError(f"--endtime {_when(t1)} is not after --starttime {_when(t0)}")
        frame = (
            whole
            if since is None and until is None
            else read_dump(dump, since=t0, until=t1, classify=classify)
        )
        if not len(frame):
            full = span or dump_span(read_dump(dump, since=None, until=None, classify=classify))
            where = f"it spans {_when(full[0])} .. {_when(full[1])}" if full else "it holds no job"
            raise InputError(
                f"{dump}: no job in the window {_when(t0)} .. {_when(t1)} ({where}; "
                "omit -S/-E to report the whole dump)"
            )
        if partition:
            frame = frame[frame["partition"] == partition]
        if account:
            frame = frame[frame["account"] == account]
    else:
        t0, t1 = resolve_window(since, until, now, None)
        if t1 <= t0:
            raise UsageError(f"--endtime {_when(t1)} is not after --starttime {_when(t0)}")
        frame = acct.read_sacct_chunks(
            t0,
            t1,
            chunk_s=chunk_hours * 3600,
            partition=partition,
            account=account,
            classify=classify,
        )
    if job_class:
        frame = frame[frame["job_class"] == job_class]
    inventory = _inventory(slurm_conf)
    if partition:
        inventory = _pool_inventory(inventory, partition)
    records = acct.record_table(frame).reset_index(drop=True)
    report = build_report(
        records,
        inventory,
        (t0, t1),
        filters={"partition": partition, "account": account, "class": job_class, "input": dump},
    )
    if not len(records):
        # Capacity alone makes GAR 0% look like a finding; say that the window was empty.
        click.echo(
            f"note: no job in the window {_when(t0)} .. {_when(t1)} (after the "
            "filters): the figures below count capacity only",
            err=True,
        )
    if as_json:
        echo_json(report)
    elif table:
        click.echo(
            format_table(
                [report_row(report)], fields, REPORT_FIELDS, parsable=parsable, noheader=noheader
            )
        )
    elif csv_dir:
        out = Path(csv_dir)
        out.mkdir(parents=True, exist_ok=True)
        for stem, table_df in report_tables(report).items():
            table_df.to_csv(out / f"{stem}.csv", index=False)
        records.assign(
            nodes=records["nodes"].map(",".join),
            node_gpus=records["node_gpus"].map(lambda g: ",".join(map(str, g))),
        ).to_csv(out / "jobs.csv", index=False)
        click.echo(f"wrote {len(report_tables(report)) + 1} CSV files to {out}")
    elif html_out:
        from ..report.accounting_html import render_html

        Path(html_out).write_text(render_html(json_ready(report)), encoding="utf-8")
        click.echo(f"wrote {html_out}")
    else:
        click.echo(format_report(report))


def _pool_inventory(inventory, partition: str):
    """Only the nodes of ``partition`` (the occupancy of a partition's report)."""
    if partition not in inventory.partition:
        raise InputError(
            f"--partition {partition!r}: no such partition; the cluster has "
            f"{', '.join(p.name for p in inventory.partitions) or 'none'}"
        )
    from ..model import Inventory

    keep = [i for i, m in enumerate(inventory.partition_mask[partition]) if m]
    names = [inventory.names[i] for i in keep]
    return Inventory.build(
        names=names,
        gpus_total=inventory.gpus_total[keep],
        cpus_total=inventory.cpus_total[keep],
        memory_mb=inventory.memory_mb[keep],
        gpu_type=[inventory.gpu_type[i] for i in keep],
        features=[inventory.features[i] for i in keep],
        partitions=[inventory.partition[partition]],
        topology=inventory.topology,
    )


@click.command("exporter")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Serve /metrics over HTTP on this port  [default: 9810 unless --textfile].",
)
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help="Address the HTTP endpoint listens on (0.0.0.0 or :: = every interface).",
)
@click.option(
    "--textfile",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="PATH",
    help="Write the metrics once to PATH (node_exporter textfile collector; *.prom).",
)
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="kant's state file (default: actuator.state_file of the config).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="kant config (class rules, state file).",
)
@click.option(
    "--max-seconds",
    type=click.FloatRange(min=0),
    default=None,
    hidden=True,
    help="Stop the HTTP server after this many seconds (tests).",
)
def exporter_cmd(port, address, textfile, state_file, config_path, max_seconds):
    """Prometheus metrics of the live cluster: GAR, GFR, stranded GPUs, whole free nodes per
    leaf group, pending jobs and GPUs by class, and the last scheduling cycle.

    \b
    Examples:
      kant-slurm exporter                          # http://127.0.0.1:9810/metrics
      kant-slurm exporter --address 0.0.0.0 --port 9810   # scraped from another host
      kant-slurm exporter --textfile /var/lib/prometheus/node-exporter/kant.prom   # from cron
    Each scrape reads Slurm afresh; kant_slurm_up is 0 when it does not answer. Alert rules:
    site-config/prometheus/kant-slurm-rules.yml; dashboard: site-config/grafana/.
    """
    from ..config import load_config
    from ..engine.classify import make_classifier
    from ..exporter import DEFAULT_PORT, make_registry, serve, write_textfile
    from ..slurm import read_snapshot

    if port is not None and textfile is not None:
        raise InputError("exporter: --port and --textfile exclude each other; give one")
    config = load_config(config_path)
    classify = make_classifier(config)
    state_path = state_file or config.actuator.state_file
    registry = make_registry(lambda: read_snapshot(classify=classify), state_path)
    if textfile:
        write_textfile(textfile, registry)
        click.echo(f"wrote {textfile}")
        return
    port = DEFAULT_PORT if port is None else port
    server, thread = serve(port, registry, address)
    host = f"[{address}]" if ":" in address else address
    click.echo(f"serving metrics on http://{host}:{port}/metrics", err=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait(max_seconds)
    server.shutdown()
    thread.join(timeout=10)


commands = [report_cmd, exporter_cmd]
