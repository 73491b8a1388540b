"""The walk of a starts-only plan in compiled code (numba): the simulator's hot loop.

:meth:`~.policies.base.QueuePolicy.plan` walks the queue in Python over numpy arrays; a deep queue
costs it about 10 ms per cycle, most of it interpreter overhead around small array operations.
This module runs the same walk -- start tests, reservation searches, the node selectors
``binpack`` (E-Binpack) and ``slurm_cons_tres`` (the Slurm model), and the bookkeeping of free
GPUs and reservations' spare room -- as one compiled function over plain arrays. It is used
only for starts-only plans (what the simulator asks for) of policies that backfill (fifo's
strict walk stops at its first blocked job and is cheap in Python), and only when every queued
job is of a kind it handles (``_compiled_inputs`` in ``policies/compiled.py``); anything else
takes the Python walk, which stays the reference: ``tests/unit/test_engine_fastwalk.py`` holds
the two to the same starts, nodes and reservations on random queues and on real-trace cycles.

What it mirrors, and why its starts are the full plan's:

- **Start test** (:meth:`.cycle.Cycle.try_start`): free GPUs capped on each node by the spare
  room of every reservation starting before the job's expected end, -1 outside the job's
  usable nodes, then the policy's selector. A shape that failed with some end fails with any
  later end (availability only shrinks within a cycle): the same fail memo.
- **Reservation search** (:meth:`.cycle.Cycle._profile`): candidate times are the expected
  ends (running jobs and jobs started this cycle) and the reservations' ends, from the start
  bound of the shape's earlier searches on; at each, free GPUs after the releases up to it,
  reservations overlapping ``[start, start + runtime)`` held (whole nodes or their GPUs), -1
  outside usable nodes; the first time whose availability the selector accepts. The spare room
  recorded is that availability on every node, inside the pool or not. The memos (failed
  runtime per shape, latest start per shape and runtime) are the same, so the same searches
  run.
- **Deferred reservations**: a blocked job's reservation is worked out only when a later job
  fits what the reservations made so far leave; then the queued ones are made in rank order
  until it no longer fits (the Python walk does them in doubling batches; the outcome is the
  same because a start happens only once none is queued, so every search sees the state it
  would have seen at the job's turn).
"""

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np

from .jit import available
from .select import KIND_BINPACK, KIND_BINPACK_NODE, KIND_SLURM, KIND_SLURM_LIGHTEST
from .walk import walk

log = logging.getLogger(__name__)

__all__ = [
    "KIND_BINPACK",
    "KIND_BINPACK_NODE",
    "KIND_SLURM",
    "KIND_SLURM_LIGHTEST",
    "available",
    "mark_broken",
    "prepare",
    "ready",
    "run",
    "start_warm_up",
]

# ------------------------------------------------------------------------------ readiness
# Compiling the walk takes numba 30-60 s on a small machine; its on-disk cache makes every later
# process load it in under a second. A simulation does not wait for the first compile: it
# starts one in a child process (numba writes the cache) and walks in Python until the child
# is done, then loads the compiled walk. The two walks start the same jobs, so when the switch
# happens changes no decision.

_state: dict = {"proc": None, "ready": False, "broken": False}


def start_warm_up() -> None:
    """Compile (or find in numba's cache) the walk in a child process, without waiting. The
    child is left to finish even if this process ends first, so that the cache is written."""
    if not available() or _state["ready"] or _state["broken"] or _state["proc"] is not None:
        return
    try:
        # The child imports these very files (numba's cache is per source file), wherever
        # this process found them.
        root = str(Path(__file__).resolve().parents[3])
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); "
            "from kant_slurm.engine import fastwalk; fastwalk._warm_up()"
        )
        _state["proc"] = subprocess.Popen(
            [sys.executable, "-c", code, root],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    except OSError as e:  # no child processes here: compile on first use instead
        log.warning(
            "cannot start the compile of the walk in a child process (%s); compiling here", e
        )
        prepare()


def prepare() -> bool:
    """Compile or load the walk in this process now (waits); True when it is usable."""
    if _state["ready"]:
        return True
    if not available() or _state["broken"]:
        return False
    try:
        _warm_up()
    except Exception as e:  # a numba that cannot compile here: the Python walk stays
        _state["broken"] = True
        log.warning("the compiled walk is not usable here (%s); the Python walk is used", e)
        return False
    # Any later call with other argument types would compile again for a minute: refuse it
    # (TypeError, then the Python walk) instead.
    walk.disable_compile()
    _state["ready"] = True
    return True


def ready() -> bool:
    """Whether a plan may use the compiled walk now: it was prepared in this process, or the
    child started by :func:`start_warm_up` has finished (then it is loaded from the cache)."""
    if _state["ready"]:
        return True
    proc = _state["proc"]
    if proc is None or _state["broken"] or proc.poll() is None:
        return False
    if proc.returncode != 0:
        err = (
            proc.stderr.read().decode(errors="replace").strip().splitlines() if proc.stderr else []
        )
        _state["broken"] = True
        log.warning(
            "compiling the walk failed (%s); the Python walk is used",
            err[-1] if err else f"exit {proc.returncode}",
        )
        return False
    return prepare()


def mark_broken(reason: str) -> None:
    """Stop using the compiled walk in this process (a call it refused)."""
    if not _state["broken"]:
        log.warning("the compiled walk refused a call (%s); the Python walk is used", reason)
    _state["broken"] = True
    _state["ready"] = False


def _as(a, dtype):
    """``a`` as a writable C-contiguous array of ``dtype`` (copied only if it is not one)."""
    a = np.asarray(a)
    if a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable:
        return a
    return np.require(a, dtype=dtype, requirements=("C", "W"))


def _i64(a):
    return _as(a, np.int64)


def _f64(a):
    return _as(a, np.float64)


def _b1(a):
    return _as(a, np.bool_)


def run(
    now,
    free,
    total,
    weight,
    cpus_free,
    has_cpus,
    levels,
    n_groups,
    masks,
    shape_nn,
    shape_g,
    shape_mask,
    shape_kind,
    est,
    elig,
    shape,
    run_rows,
    run_off,
    run_len,
    pool_idx,
    pool_g,
    k_max,
    depth,
    strict,
    whole,
    window_end,
):
    """:func:`walk` with every argument in the one type it is compiled for (``free`` must
    already be a writable int64 array: the starts are taken from it in place)."""
    if free.dtype != np.int64 or not free.flags.c_contiguous or not free.flags.writeable:
        raise TypeError("free must be a writable, contiguous int64 array")
    return walk(
        float(now),
        free,
        _i64(total),
        _i64(weight),
        _i64(cpus_free),
        _b1(has_cpus),
        _i64(levels),
        _i64(n_groups),
        _b1(masks),
        _i64(shape_nn),
        _i64(shape_g),
        _i64(shape_mask),
        _i64(shape_kind),
        _f64(est),
        _f64(elig),
        _i64(shape),
        _f64(run_rows[0]),
        _f64(run_rows[1]),
        _f64(run_rows[2]),
        _i64(run_off),
        _i64(run_len),
        _i64(pool_idx),
        _i64(pool_g),
        int(k_max),
        int(depth),
        bool(strict),
        bool(whole),
        float(window_end),
    )


def _warm_up() -> None:
    """One tiny cycle through :func:`run`: compiles the walk, or loads it from the cache."""
    n = 2
    ones = np.ones(n, dtype=np.int64)
    run(
        0.0,
        np.full(n, 4, dtype=np.int64),
        ones * 4,
        ones,
        ones,
        np.ones(n, dtype=bool),
        np.zeros((1, n), dtype=np.int64),
        np.ones(1, dtype=np.int64),
        np.ones((1, n), dtype=bool),
        np.ones(1),
        np.ones(1),
        np.zeros(1),
        np.ones(1),
        np.array([60.0, 60.0]),
        np.array([np.nan, np.nan]),
        np.zeros(2),
        np.array([[0.0], [30.0], [np.nan], [0.0], [1.0]]),
        np.zeros(1),
        np.ones(1),
        np.zeros(1),
        np.array([4]),
        8,
        0,
        False,
        True,
        np.inf,
    )
