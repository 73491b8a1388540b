"""A production day on the real dev cluster (issue 16): kant's daemon steers a cluster with
three partitions, two GPU types, a QOS limit, a maintenance reservation and a drained node, and
a queue of held, dependent, throttled, limit-blocked, reservation-bound, exclusive and
constrained jobs beside ordinary ones.

It holds that kant pins and lifts no job Slurm would not start; that no pin sends a job to a
reserved or drained node (unless the job is bound to that reservation); that no job field
other than kant's levers (SiteFactor, ExcNodeList) changes; and that ``reset`` leaves nothing
of kant's behind.

The cluster (a fixture of its own): gn01-12 h100 and gn13-16 a100, leaves of 4 nodes.
Partitions beside the default ``gpu``: ``training`` gn01-12, ``inference`` gn13-16, ``debug``
every node with MaxTime 10 minutes. QOS ``kant-limited`` allows 8 GPUs at once.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time

import pytest

from kant_slurm.hostlist import expand
from kant_slurm.slurm import actuator as act
from kant_slurm.formats.slurm_jobs import array_tasks, parse_sprio_site
from kant_slurm.formats.slurm_values import scontrol_records

pytestmark = pytest.mark.slurm

MAINT = "kant-prod-maint"
PARTITIONS = ("training", "inference", "debug")
QOS = "kant-limited"
# What a job asked for: none of it is kant's to change.
REQUEST = ("Partition", "QOS", "TimeLimit", "NumNodes", "TresPerNode", "Features",
           "Reservation", "ReqNodeList", "Dependency", "Nice", "Comment", "AdminComment",
           "OverSubscribe", "Account", "MinMemoryNode", "ArrayTaskThrottle")
# Besides, for a job Slurm holds back: nothing of kant's may reach it.
BLOCKED_TOO = ("Priority", "ExcNodeList")


def _kant(cluster, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    res = subprocess.run(["kant-slurm", *args], env=cluster.env, capture_output=True, text=True,
                         timeout=timeout)
    assert res.returncode == 0, res.stderr
    return res


def _records(cluster) -> dict[str, dict[str, str]]:
    """Every job record scontrol shows, by its id (array tasks as 8_1, ...)."""
    out = {}
    for rec in scontrol_records(cluster.run("scontrol", "show", "job", "-o").stdout):
        task = rec.get("ArrayTaskId")
        if not task or "ArrayJobId" not in rec:
            out[rec["JobId"]] = rec
            continue
        # A pending array's record stands for its tasks (ArrayTaskId=1-3%1).
        for t in array_tasks(task) or ():
            out[f"{rec['ArrayJobId']}_{t}"] = rec
    return out


def _setup(cluster) -> dict[str, list[str]]:
    nodes = cluster.nodes
    run = cluster.run
    run("scontrol", "create", "PartitionName=training", f"Nodes={','.join(nodes[:12])}",
        "State=UP")
    run("scontrol", "create", "PartitionName=inference", f"Nodes={','.join(nodes[12:])}",
        "State=UP", "PriorityTier=2")
    run("scontrol", "create", "PartitionName=debug", f"Nodes={','.join(nodes)}", "MaxTime=10",
        "State=UP")
    run("sacctmgr", "-i", "add", "qos", QOS, "GrpTRES=gres/gpu=8")
    run("sacctmgr", "-i", "modify", "user", "root", "set", f"QOS+={QOS}")
    maint = nodes[4:6]  # gn05-06, in the second leaf
    run("scontrol", "create", "reservation", f"ReservationName={MAINT}", "StartTime=now",
        "Duration=120", f"Nodes={','.join(maint)}", "Flags=MAINT", "Users=root")
    drained = [nodes[8]]  # gn09
    run("scontrol", "update", f"NodeName={drained[0]}", "State=DRAIN", "Reason=kant-prod-test")
    return {"maint": maint, "drained": drained}


def _teardown(cluster) -> list[str]:
    run = cluster.run
    left = []
    run("scancel", "--full", "-u", "root", check=False)
    deadline = time.monotonic() + 60
    while run("squeue", "-h", "-o", "%i", check=False).stdout.split():
        if time.monotonic() > deadline:
            left.append("jobs")
            break
        time.sleep(0.5)
    run("scontrol", "delete", f"ReservationName={MAINT}", check=False)
    for p in PARTITIONS:
        run("scontrol", "delete", f"PartitionName={p}", check=False)
    run("sacctmgr", "-i", "modify", "user", "root", "set", f"QOS-={QOS}", check=False)
    run("sacctmgr", "-i", "delete", "qos", QOS, check=False)
    run("scontrol", "update", f"NodeName={cluster.nodes[8]}", "State=RESUME", check=False)
    return left


def _submit(cluster) -> tuple[dict[str, str], list[str], str]:
    """The day's queue; returns (blocked job -> the reason Slurm must give, every job id, the
    job kant must pin)."""
    sub = cluster.sbatch
    nodes = cluster.nodes
    ids = []
    # Running work: gn01-04 (leaf 1) full, gn07 3 GPUs, gn13 one a100 job of the limited QOS.
    running = [sub("-p", "training", f"--nodelist={n}", "--gres=gpu:8", "-t", "30", "--wrap",
                   "sleep 900") for n in nodes[:4]]
    running.append(sub("-p", "training", f"--nodelist={nodes[6]}", "--gres=gpu:3", "-t", "30",
                       "--wrap", "sleep 900"))
    running.append(sub("-p", "inference", f"--qos={QOS}", "--gres=gpu:a100:8", "-t", "30",
                       "--wrap", "sleep 900"))
    cluster.wait_running(running)
    ids += running
    blocked = {}
    two = ("--gres=gpu:2", "-t", "5", "--wrap", "sleep 900")
    blocked[sub("-p", "training", "--hold", "--job-name=held", *two)] = "JobHeldUser"
    blocked[sub("-p", "training", f"--dependency=afterok:{running[0]}", "--job-name=dep",
                *two)] = "Dependency"
    blocked[sub("-p", "inference", f"--qos={QOS}", "--job-name=limited", "--gres=gpu:a100:1",
                "-t", "5", "--wrap", "sleep 900")] = "QOSGrpGRES"
    blocked[sub("-p", "debug", "--begin=now+1hour", "--job-name=later", *two)] = "BeginTime"
    array = sub("-p", "training", "--array=0-3%1", "--job-name=throttled", *two)
    cluster.wait_running([f"{array}_0"])
    for task in (1, 2, 3):
        blocked[f"{array}_{task}"] = "JobArrayTaskLimit"
    ids += list(blocked)
    # Ordinary and special startable work. `big` wants all 9 usable training nodes, so Slurm
    # reserves them all and backfills only what ends before gn01-04 do; `urgent` (60 min)
    # cannot backfill, but kant serves inference first: it plans `urgent` now, pins and
    # lifts it. The others fit and start on Slurm's own.
    big = sub("-p", "training", "-N", "9", "--gres=gpu:8", "-t", "60", "--job-name=big",
              "--wrap", "sleep 900")
    urgent = sub("-p", "training", "--gres=gpu:8", "-t", "60", "--job-name=urgent", "--wrap",
                 "sleep 900")
    cluster.run("scontrol", "update", f"JobId={urgent}",
                "AdminComment=kant:workload=inference;service=chat")
    ids += [big, urgent]
    ids += [
        sub("-p", "training", "--exclusive", "--gres=gpu:1", "-t", "10", "--job-name=excl",
            "--wrap", "sleep 900"),
        sub("-p", "training", "--constraint=leaf3", "--gres=gpu:4", "-t", "10",
            "--job-name=constrained", "--wrap", "sleep 900"),
        sub("-p", "training", f"--reservation={MAINT}", "--gres=gpu:8", "-t", "10",
            "--job-name=maint-work", "--wrap", "sleep 900"),
        sub("-p", "debug", "--gres=gpu:1", "-t", "5", "--job-name=debug", "--wrap", "sleep 900"),
    ]
    return blocked, ids, urgent


def _applied(log: str) -> tuple[dict[str, list[list[str]]], set[str]]:
    """From the daemon's log, the pins (job -> each ExcNodeList set) and the jobs whose
    SiteFactor it set: each applied command is logged as the shell-quoted command."""
    pins: dict[str, list[list[str]]] = {}
    lifted: set[str] = set()
    for line in log.splitlines():
        # An applied command: "... INFO kant_slurm.slurm.actuator: <command>  # <why>" (a
        # refused one is a WARNING naming the command and Slurm's error).
        head, sep, command = line.partition(" INFO kant_slurm.slurm.actuator: scontrol update ")
        if not sep or "  # " not in command:
            continue
        argv = shlex.split("scontrol update " + command.split("  # ", 1)[0])
        fields = dict(a.split("=", 1) for a in argv[2:] if "=" in a)
        jobs = fields.get("JobId", "").split(",")
        if "ExcNodeList" in fields:
            for job in jobs:
                pins.setdefault(job, []).append(expand(fields["ExcNodeList"])
                                                if fields["ExcNodeList"] else [])
        if "SiteFactor" in fields and int(fields["SiteFactor"]):
            lifted.update(jobs)
    return pins, lifted


def test_a_production_day_under_the_daemon(production_cluster, tmp_path):
    cluster = production_cluster
    nodes = cluster.nodes
    assert cluster.spec.node_gpu_types == ["h100"] * 12 + ["a100"] * 4
    config = tmp_path / "kant.yaml"
    config.write_text("actuator:\n  pin_jobs: all\n")
    paths = ["--config", str(config), "--state-file", str(tmp_path / "state.json"),
             "--lock-file", str(tmp_path / "lock")]
    try:
        closed = _setup(cluster)
        blocked, ids, urgent = _submit(cluster)
        time.sleep(2)  # a main scheduler pass: what fits has started
        before = _records(cluster)
        reasons = {j: before[j].get("Reason") for j in blocked}
        assert reasons == blocked, reasons  # Slurm's own word, as the scenario means it

        plan = json.loads(_kant(cluster, "plan", "--json").stdout)
        assert {j: plan["held"].get(j) for j in blocked} == blocked
        planned = {s["job_id"] for s in plan["starts"]} | \
            {r["job_id"] for r in plan["reservations"]} | {e["job_id"] for e in plan["order"]}
        assert not planned & set(blocked)

        daemon = _kant(cluster, "daemon", "--interval", "2", "--max-cycles", "4", *paths)
        log = daemon.stderr
        assert log.count("held by Slurm") == 4, log
        pins, lifted = _applied(log)
        # The scenario works as meant: kant pinned and lifted the job it serves first.
        assert urgent in lifted and pins.get(urgent), log
        base = {j.split("_")[0] for j in blocked}
        touched = (set(pins) | lifted) & (set(blocked) | base)
        assert not touched, f"kant touched jobs Slurm holds back: {touched}\n{log}"
        for jid, excls in pins.items():
            for excl in excls:
                if not excl:  # a pin taken back
                    continue
                chosen = set(nodes) - set(excl)
                bad = chosen & set(closed["drained"])
                if before.get(jid, {}).get("Reservation") != MAINT:
                    bad |= chosen & set(closed["maint"])
                assert not bad, f"job {jid} pinned to {sorted(chosen)}: {sorted(bad)} closed"

        after = _records(cluster)
        for jid, rec in after.items():
            if jid not in before or rec.get("JobState") != "PENDING":
                continue
            keys = REQUEST + (BLOCKED_TOO if jid in blocked else ())
            changed = {k: (before[jid].get(k), rec.get(k)) for k in keys
                       if before[jid].get(k) != rec.get(k)}
            assert not changed, f"job {jid}: {changed}"
    finally:
        reset = subprocess.run(["kant-slurm", "reset", *paths], env=cluster.env,
                               capture_output=True, text=True, timeout=120)
        # What reset left: node weights, SiteFactors and pins of the jobs still pending.
        weights = cluster.node_weights()
        site = parse_sprio_site(cluster.run("sprio", "-h", "-o", "%i %S").stdout)
        now = _records(cluster)
        left = _teardown(cluster)
    assert reset.returncode == 0, reset.stderr
    assert weights == act.config_weights(cluster.conf_path)
    assert {j: v for j, v in site.items() if v} == {}
    assert {j: r.get("ExcNodeList") for j, r in now.items() if r.get("JobState") == "PENDING"
            and r.get("ExcNodeList") != before.get(j, {}).get("ExcNodeList")} == {}
    assert not left, left
