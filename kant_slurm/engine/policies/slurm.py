"""The ``slurm`` policy: a model of stock Slurm 22.05 with ``SchedulerType=sched/backfill``,
``SelectType=select/cons_tres``, ``TopologyPlugin=topology/tree`` and default parameters.
Each modelled behaviour and what it rests on (documents fetched with the ``search`` tool):

=========================  ===================================================  ================
Behaviour                  What the model does                                  Rests on
=========================  ===================================================  ================
Queue order                partition PriorityTier (high first), then job        [1] PriorityTier,
                           priority (high first), then submit time and job id.  [6] (priority/
                           The default PriorityType=priority/basic is FIFO; a   basic is FIFO by
                           live snapshot carries Slurm's computed priority,     default)
                           used as is.
Main scheduler             strict priority order; once a job of a partition is  [2] "once any job
                           left pending, later jobs start only through          ... is left
                           backfill                                             pending"
Backfill                   a later job starts only if it does not delay the     [2], [3]
                           expected start of any higher-priority job it tested
Reservations per job       every blocked job tested gets a planned start and    [3] node_space
                           nodes; later jobs may not use those nodes in that    map of node
                           window: whole nodes, not GPU counts                  bitmaps
Depth and window           ``bf_max_job_test`` = 500 jobs tested after the      [3] defaults
                           first blocked one; no reservation beyond             max_backfill_
                           ``bf_window`` = 1 day                                job_cnt=500,
                                                                                backfill_window=
                                                                                86400 s
Runtime                    the time limit only (no estimates); no limit: the    [1] MaxTime, [3]
                           partition's MaxTime, else estimator.unlimited_runtime
Node sufficiency           a node needs enough free GPUs of the asked type      [4] (GPUs only
                           (only checked, not ranked) and CPUs if asked         for sufficiency)
Node Weight                Weight groups lightest first until they hold the     [1] Weight: "the
                           job; with a tree, every usable node of the lighter   lowest weight
                           groups is taken whole and the tree chooses only      ... first"; [4]
                           within the heaviest group needed (so a lighter node  _eval_nodes_topo
                           in another leaf splits a gang)                       req2_nodes_bitmap
Switch choice              leaves of the lighter nodes first; then leaf by      [4] _topo_choose_
                           leaf: closest to the switches used, then tightest    best_switch,
                           fit (fewest usable nodes that hold the rest; none:   _topo_compare_
                           parents compared, then the biggest); a job never     switches; [5]
                           spans switch fabrics (select._tree_pick)
Node order                 with a tree: node order inside the leaf; without:    [4], [5] native
                           fewest free CPUs first (best fit), then node order   best fit
=========================  ===================================================  ================

[1] slurm.conf(5), 22.05: https://slurm.schedmd.com/archive/slurm-22.05-latest/slurm.conf.html
[2] Scheduling Configuration Guide: https://slurm.schedmd.com/sched_config.html
[3] src/plugins/sched/backfill/backfill.c (defaults seen in the compiled plugin's globals)
[4] src/plugins/select/cons_tres/job_test.c: _can_job_run_on_node, _eval_nodes,
    _eval_nodes_topo
[5] Topology Guide: https://slurm.schedmd.com/topology.html; topology.conf(5) 22.05.8
[6] Slurm priority (SLUG'19, SchedMD): priority/basic is FIFO and the default

Left out of the ``slurm`` model: fair-share and the other multifactor terms (the priority is read,
not computed), ``bf_resolution`` rounding (60 s), ``bf_continue``, ``bf_max_time`` and
``bf_yield_interval`` (cycle time limits), ``default_queue_depth`` and the timing of main and
backfill cycles, per-user/partition backfill limits, sockets and GRES binding,
``max_switch_wait`` and ``--switches``, licences, job arrays as a unit, heterogeneous jobs,
``OverSubscribe``. What a live cluster reads beyond that holds for every policy through the
job's pool (:mod:`..pools`): advance reservations, closed partitions (down, MaxTime),
``--constraint``, ``--exclusive`` and memory per node. Preemption is off as in a default
slurm.conf; ``preemption.slurm: true`` adds ``PreemptType=preempt/qos`` with
``PreemptMode=REQUEUE`` for inference jobs (modelled in :mod:`..preempt`).

The model follows 22.05, which 24.11 matches in every layout of the dev cluster's tests. With
``release`` 26.05 (``simulate --slurm-release 26.05``) a one-node job takes 26.05's new one-node
path instead: the lightest node Weight where it fits, then node order, with no leaf search
(``select.slurm_lightest_node``, checked against a real 26.05 by
tests/integration/test_weight_topology_cluster.py).
"""

from __future__ import annotations

from ...model import Job
from .. import scoring
from ..registry import register
from ..select import slurm_cons_tres, slurm_lightest_node, weight_places_one_node_jobs
from .base import QueuePolicy


def modelled_release(version: tuple[int, int] | None) -> str:
    """The release the model follows for a Slurm of ``version`` (major, minor): the newest
    modelled release not newer than it; 22.05 when the version is unknown or older."""
    if version is not None and version >= (26, 5):
        return "26.05"
    if version is not None and version >= (24, 11):
        return "24.11"
    return "22.05"


@register("slurm")
class SlurmPolicy(QueuePolicy):
    """Stock Slurm sched/backfill + select/cons_tres + topology/tree (module docstring)."""

    name = "slurm"
    whole_node_reservations = True
    limit_only = True
    BF_MAX_JOB_TEST = 500  # slurm.conf(5) SchedulerParameters bf_max_job_test default
    BF_WINDOW_S = 1440 * 60.0  # bf_window default: 1440 minutes
    RELEASES = ("22.05", "24.11", "26.05")
    release = "22.05"
    """The Slurm release modelled. 22.05 and 24.11 choose nodes alike here; 26.05 places a
    one-node job on the lightest node Weight where it fits, then in node order, with no leaf
    search (:func:`~kant_slurm.engine.select.slurm_lightest_node`)."""

    def order(self, pending, snapshot, now, ctx):
        inv = snapshot.inventory
        parts = inv.partition
        default = inv.default_partition

        def tier(job: Job) -> int:
            names = job.partitions or ((default,) if default else ())
            return max((parts[p].priority_tier for p in names if p in parts), default=1)

        keyed = []
        for j in pending:
            t = tier(j)
            keyed.append(
                (
                    scoring.slurm_order_key(t, j.priority, j.submit_time, j.job_id),
                    j,
                    {"partition_tier": t, "priority": j.priority, "submit_time": j.submit_time},
                )
            )
        keyed.sort(key=lambda x: x[0])
        return [(j, f) for _, j, f in keyed]

    def _tier(self, job: Job, inv) -> int:
        parts = inv.partition
        default = inv.default_partition
        names = job.partitions or ((default,) if default else ())
        return max((parts[p].priority_tier for p in names if p in parts), default=1)

    def static_keys(self, job, snapshot):
        # The same key as slurm_order_key, minus the job id (ties are broken by it).
        return (-self._tier(job, snapshot.inventory), -job.priority, job.submit_time)

    def factors_of(self, job, now, ctx):
        return {
            "partition_tier": self._tier(job, ctx["snapshot"].inventory),
            "priority": job.priority,
            "submit_time": job.submit_time,
        }

    def selector(self, job, ctx):
        if job.num_nodes == 1 and weight_places_one_node_jobs(self.release):
            return slurm_lightest_node
        return slurm_cons_tres

    def reservations_k(self) -> int:
        return self.BF_MAX_JOB_TEST

    def max_job_test(self) -> int:
        return self.BF_MAX_JOB_TEST

    def reservation_window(self) -> float | None:
        return self.BF_WINDOW_S

    def estimate(self, job: Job) -> tuple[float, str]:
        # Slurm has no runtime estimate: the time limit, or the partition's MaxTime.
        if job.time_limit is None or job.time_limit <= 0:
            inv_parts = self._parts
            for p in job.partitions:
                mt = inv_parts.get(p)
                if mt:
                    return float(mt), "partition_max_time"
        return super().estimate(job)

    @property
    def may_preempt(self) -> bool:  # the simulator polls while inference waits
        return self.config.preemption.slurm

    def plan(self, snapshot, now):
        self._parts = {p.name: p.max_time for p in snapshot.inventory.partitions}
        plan = super().plan(snapshot, now)
        if self.config.preemption.slurm:  # preempt/qos + REQUEUE model (engine/preempt/slurm.py)
            from ..preempt import slurm_preemptions

            plan = slurm_preemptions(snapshot, now, plan, self.config)
        return plan
