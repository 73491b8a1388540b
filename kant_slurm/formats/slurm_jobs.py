"""Jobs from Slurm's output (``squeue --json``, ``scontrol show job -d -o``, ``sprio``),
with the kant tag of their admin comment applied. Pure: no command is run here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..errors import SlurmError
from ..hostlist import expand
from ..model import PENDING, RUNNING, Job
from .slurm_values import (
    integer,
    number,
    parse_gpu_gres,
    scontrol_pairs,
    scontrol_records,
    slurm_text,
    state_words,
    tres_count,
)
from .tags import parse_kant_tag

log = logging.getLogger(__name__)


# Jobs
# --------------------------------------------------------------------------------------------


def exclusive_jobs(text: str) -> set[str]:
    """``scontrol show job -o`` -> ids of the jobs with ``--exclusive`` (``Exclusive=NODE``,
    ``USER``, ``MCS`` or ``TOPO``). Slurm 26.05's squeue JSON no longer says so (``shared`` is
    empty for such a job); its scontrol does. Releases that print no ``Exclusive=`` add none."""
    out = set()
    for rec in scontrol_records(text):
        if rec.get("Exclusive", "NO").upper() not in ("NO", "") and rec.get("JobId"):
            out.add(rec["JobId"])
    return out


def job_gpu_details(text: str) -> dict[str, list[tuple[str, int, tuple[int, ...]]]]:
    """``scontrol show job -d -o`` -> job id -> [(node, gpus, indices)] for running jobs."""
    out: dict[str, list[tuple[str, int, tuple[int, ...]]]] = {}
    for line in text.splitlines():
        pairs = scontrol_pairs(line)
        if not pairs or pairs[0][0] != "JobId":
            continue
        job_id = pairs[0][1]
        rows: list[tuple[str, int, tuple[int, ...]]] = []
        group: list[str] = []
        for key, value in pairs:
            if key == "Nodes":
                group = expand(slurm_text(value))
            elif key == "GRES" and group:
                count, _, idx = parse_gpu_gres(slurm_text(value))
                for node in group:
                    rows.append((node, count, idx or ()))
                group = []
        if rows:
            out[job_id] = rows
    return out


def _job_state(value) -> str:
    words = state_words(value)
    return words[0] if words else ""


def _gpus_requested(job: Mapping, num_nodes: int) -> tuple[int, str | None]:
    """GPUs per node a job asks for, from tres_per_node, else tres_per_job / tres_req_str."""
    per_node, gtype, _ = parse_gpu_gres(job.get("tres_per_node"))
    if per_node:
        return per_node, gtype
    per_job, gtype, _ = parse_gpu_gres(job.get("tres_per_job"))
    if not per_job:
        per_job = tres_count(job.get("tres_req_str"), "gres/gpu") or 0
    if per_job and num_nodes:
        return -(-per_job // num_nodes), gtype
    return 0, gtype


# Pending reasons under which Slurm starts a job as soon as room and priority allow ("None":
# not looked at yet). Every other reason means Slurm would not start the job now: held
# (JobHeldUser/Admin), Dependency, BeginTime, association and QOS limits (AssocGrp*, AssocMax*,
# QOSGrp*, QOSMax*), PartitionDown/Inactive, ReqNodeNotAvail, Reservation, Licenses,
# JobArrayTaskLimit, ... A reason this list does not know counts as such too: kant would
# rather leave a startable job to Slurm than pin or lift one that Slurm will not start.
STARTABLE_REASONS = frozenset({"None", "Priority", "Resources"})


def slurm_block(reason: str | None, held: bool, eligible_time: float | None) -> str | None:
    """Why Slurm will not start a pending job now (its own reason), or None when only room and
    priority stand in its way. Pure.

    ``eligible_time`` is what Slurm printed: 0 means "not known yet" (a dependency or throttle
    has not been resolved), never "eligible now".
    """
    reason = (reason or "None").strip() or "None"
    if held:
        return reason if reason.startswith("JobHeld") else "JobHeldUser"
    if reason not in STARTABLE_REASONS:
        return reason
    if not eligible_time:
        return "EligibleTimeUnknown"
    return None


def array_tasks(text: str) -> list[int] | None:
    """A pending array's ``array_task_string`` -> its task ids: ``1-3``, ``1-5%1``, ``4,6,8-10``,
    ``0-9:3``. None when the text has another form (the caller keeps the array out of
    steering rather than guess)."""
    text = text.split("%", 1)[0].strip()
    out: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part.strip())
        if not m:
            return None
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        step = int(m.group(3)) if m.group(3) else 1
        if hi < lo or step < 1:
            return None
        out.extend(range(lo, hi + 1, step))
    return out or None


def _array_running(jobs: Sequence[Mapping]) -> dict[int, int]:
    """Array job id -> tasks of it running now (what its ``%`` throttle counts)."""
    out: dict[int, int] = {}
    for job in jobs:
        array_id = integer(job.get("array_job_id"), "array_job_id")
        if array_id and _job_state(job.get("job_state")) == RUNNING:
            out[array_id] = out.get(array_id, 0) + 1
    return out


def parse_jobs_json(
    data: Mapping, details: Mapping[str, list] | None = None, exclusive: Collection[str] = ()
) -> list[Job]:
    """``squeue --json`` -> running and pending Jobs (others are left out).

    ``details`` (from :func:`job_gpu_details`) gives exact per-node GPUs and indices; without
    it they come from the JSON's ``gres_detail``, else an even split. ``exclusive`` (from
    :func:`exclusive_jobs`) names raw job ids run with ``--exclusive`` besides those the JSON's
    ``shared`` says. Each pending job carries
    :attr:`Job.slurm_blocked` from its state reason, hold flag and eligible time; a pending
    array record becomes one Job per task (``8_1``, ``8_2``, ...), and the tasks beyond its
    ``%`` throttle are blocked with ``JobArrayTaskLimit``.
    """
    jobs = data.get("jobs")
    if not isinstance(jobs, list):
        raise SlurmError("squeue --json: no 'jobs' list in the reply")
    out = []
    array_running = _array_running(jobs)
    for i, job in enumerate(jobs):
        state = _job_state(job.get("job_state"))
        if state not in (RUNNING, PENDING):
            continue
        where = f"squeue --json jobs[{i}]"
        job_id = str(integer(job.get("job_id"), f"{where}.job_id"))
        array_task = number(job.get("array_task_id"), f"{where}.array_task_id")
        if array_task is not None and integer(job.get("array_job_id"), "array_job_id"):
            job_id = f"{integer(job.get('array_job_id'), 'array_job_id')}_{int(array_task)}"
        num_nodes = integer(job.get("node_count"), f"{where}.node_count", 1) or 1
        gpn, gtype = _gpus_requested(job, num_nodes)
        nodes: tuple[str, ...] = ()
        node_gpus: tuple[int, ...] = ()
        node_idx: tuple[tuple[int, ...], ...] = ()
        if state == RUNNING:
            nodes = tuple(expand(job.get("nodes") or ""))
            num_nodes = len(nodes) or num_nodes
            rows = (details or {}).get(str(integer(job.get("job_id"), "job_id")))
            if rows:
                per = {n: (c, idx) for n, c, idx in rows}
                node_gpus = tuple(per.get(n, (0, ()))[0] for n in nodes)
                node_idx = tuple(tuple(per.get(n, (0, ()))[1]) for n in nodes)
            elif job.get("gres_detail") and len(job["gres_detail"]) == len(nodes):
                parsed = [parse_gpu_gres(g) for g in job["gres_detail"]]
                node_gpus = tuple(p[0] for p in parsed)
                node_idx = tuple(tuple(p[2] or ()) for p in parsed)
            elif gpn:
                node_gpus = (gpn,) * len(nodes)
            if node_gpus and not gpn:
                gpn = max(node_gpus)
        limit = number(job.get("time_limit"), f"{where}.time_limit")  # minutes
        start = number(job.get("start_time"), f"{where}.start_time")
        admin = job.get("admin_comment") or ""
        eligible = number(job.get("eligible_time"), f"{where}.eligible_time")
        blocked = None
        if state == PENDING:
            held = bool(job.get("hold")) or str(job.get("state_reason") or "").startswith("JobHeld")
            blocked = slurm_block(job.get("state_reason"), held, eligible)
        fields: dict[str, Any] = dict(
            job_id=job_id,
            state=state,
            num_nodes=num_nodes,
            gpus_per_node=gpn,
            submit_time=number(job.get("submit_time"), f"{where}.submit_time") or 0.0,
            name=job.get("name") or "",
            user=job.get("user_name") or str(job.get("user_id") or ""),
            account=job.get("account") or "",
            partitions=tuple(p for p in (job.get("partition") or "").split(",") if p),
            qos=job.get("qos") or "",
            gpu_type=gtype,
            cpus_per_node=(
                (integer(job.get("cpus"), f"{where}.cpus") // num_nodes) if num_nodes else 0
            ),
            time_limit=limit * 60 if limit is not None else None,
            start_time=start if state == RUNNING and start else None,
            eligible_time=eligible or None,
            nodes=nodes,
            node_gpus=node_gpus,
            priority=integer(job.get("priority"), f"{where}.priority"),
            nice=integer(job.get("nice"), f"{where}.nice"),
            required_nodes=tuple(expand(job.get("required_nodes") or "")),
            excluded_nodes=tuple(expand(job.get("excluded_nodes") or "")),
            comment=job.get("comment") or "",
            admin_comment=admin,
            exclusive=_exclusive(job.get("shared"))
            or str(integer(job.get("job_id"), f"{where}.job_id")) in exclusive,
            features=job.get("features") or None,
            reservation=job.get("resv_name") or None,
            mem_per_node_mb=_memory_per_node(job, num_nodes, where),
            node_gpu_indices=node_idx,
            slurm_blocked=blocked,
        )
        task_text = job.get("array_task_string") or ""
        if state == PENDING and task_text:
            out.extend(_array_task_jobs(fields, task_text, job, array_running, where))
        else:
            out.append(apply_tag(Job(**fields)))
    return out


def _array_task_jobs(
    fields: dict, task_text: str, job: Mapping, array_running: Mapping[int, int], where: str
) -> list[Job]:
    """A pending array record -> one Job per task; tasks past the throttle are blocked."""
    array_id = integer(job.get("array_job_id"), f"{where}.array_job_id") or int(fields["job_id"])
    tasks = array_tasks(task_text)
    if tasks is None:
        log.warning(
            "job %s: array tasks %r not understood; leaving it to Slurm",
            fields["job_id"],
            task_text,
        )
        return [apply_tag(Job(**(fields | {"slurm_blocked": f"ArrayTasks={task_text}"})))]
    throttle = integer(job.get("array_max_tasks"), f"{where}.array_max_tasks")
    free = max(throttle - array_running.get(array_id, 0), 0) if throttle else len(tasks)
    out = []
    for n, task in enumerate(tasks):
        blocked = fields["slurm_blocked"] or (None if n < free else "JobArrayTaskLimit")
        out.append(
            apply_tag(Job(**(fields | {"job_id": f"{array_id}_{task}", "slurm_blocked": blocked})))
        )
    return out


def _memory_per_node(job: Mapping, num_nodes: int, where: str) -> int:
    """MB per node the job asked for (--mem, or --mem-per-cpu x its CPUs per node); 0 = none.

    The TRES request (``mem=250G``) is not used: with DefMemPerNode=UNLIMITED it shows every
    job asking for whole nodes' memory, which says nothing about what the job needs.
    """
    # v0.0.38 names (22.05) first, then the v0.0.40+ ones.
    per_node = number(job.get("memory_per_node"), f"{where}.memory_per_node") or number(
        job.get("minimum_memory_per_node"), f"{where}.minimum_memory_per_node"
    )
    if per_node:
        return int(per_node)
    per_cpu = number(job.get("memory_per_cpu"), f"{where}.memory_per_cpu") or number(
        job.get("minimum_memory_per_cpu"), f"{where}.minimum_memory_per_cpu"
    )
    if per_cpu and num_nodes:
        cpus = integer(job.get("cpus"), f"{where}.cpus")
        return int(per_cpu) * max(1, -(-cpus // num_nodes))
    return 0


def _exclusive(shared) -> bool:
    # v0.0.38 prints "none" for --exclusive; v0.0.40+ a list such as ["exclusive"].
    words = [shared] if isinstance(shared, str) else list(shared or [])
    return any(str(w).lower() in ("none", "exclusive") for w in words)


def apply_tag(job: Job) -> Job:
    """Fill class, service, estimate, SLA and checkpoint interval from the kant tag in the
    admin comment.

    A malformed tag is logged and ignored: one bad job must not stop the whole read.
    """
    try:
        tag = parse_kant_tag(job.admin_comment)
    except Exception as exc:  # InputError
        log.warning("job %s: %s (ignored)", job.job_id, exc)
        return job
    if not tag:
        return job
    return replace(
        job,
        job_class=tag["workload"],
        class_source="tag",
        service=tag.get("service", job.service),
        est_runtime=float(tag["est"]) if "est" in tag else job.est_runtime,
        sla=float(tag["sla"]) if "sla" in tag else job.sla,
        checkpoint_interval=float(tag["ckpt"]) if "ckpt" in tag else job.checkpoint_interval,
    )


def parse_sprio_priorities(text: str) -> dict[str, list[tuple[int, int]]]:
    """``sprio -h -o '%i %S %Y'`` -> {job id: [(SiteFactor, priority), ...]}. Pure.

    A job pending in several partitions has one line, and one priority, per partition."""
    out: dict[str, list[tuple[int, int]]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or not all(re.fullmatch(r"-?\d+", p) for p in parts[1:]):
            raise SlurmError(f"sprio line {n}: expected 'JOBID SITE PRIORITY', got {line!r}")
        out.setdefault(parts[0], []).append((int(parts[1]), int(parts[2])))
    return out


def parse_sprio_site(text: str) -> dict[str, int]:
    """``sprio -h -o '%i %S'`` -> {job id: SiteFactor}. Pure."""
    out: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not re.fullmatch(r"-?\d+", parts[1]):
            raise SlurmError(f"sprio line {n}: expected 'JOBID SITE', got {line!r}")
        out[parts[0]] = int(parts[1])
    return out
