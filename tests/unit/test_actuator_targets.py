"""``slurm.diff.diff`` limited to some targets (what ``kant-steered`` runs each cycle) gives what
the whole diff gives, whenever every other target is where an earlier diff left it: its wanted
value, Slurm's value and kant's mark unchanged, and that diff did nothing with it.

Random states: a first whole diff, applied as the daemon applies it (marks edited, the changes
made in Slurm, the deferred ones not); then random targets move (wanted values, Slurm's values,
marks, jobs that join or leave); then the diff of the moved targets plus the first diff's
targets is compared with the whole diff."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from kant_slurm.slurm import actuator as act
from kant_slurm.slurm import diff
from kant_slurm.slurm.state import KINDS, PIN, SITE_FACTOR, WEIGHT, SteerState

NODES = [f"gn0{i}" for i in range(1, 7)]
JOBS = [str(i) for i in range(1, 13)] + ["7_1", "7_2"]


def _value(rng: random.Random, kind: str, shown: bool = False):
    if kind == WEIGHT:
        return rng.choice([1, 5, 11, 12, 21])
    if kind == SITE_FACTOR:
        return rng.choice([0, 1000, 2000] + ([None] if shown else []))
    return tuple(sorted(rng.sample(NODES, rng.randint(0, 4))))


def _random_state(rng: random.Random):
    want = {kind: {} for kind in KINDS}
    shown = {kind: {} for kind in KINDS}
    targets = {WEIGHT: NODES, SITE_FACTOR: JOBS, PIN: JOBS}
    pending = [j for j in JOBS if rng.random() < 0.7]
    for kind in KINDS:
        for t in targets[kind]:
            if rng.random() < 0.6:
                want[kind][t] = _value(rng, kind)
        for t in (NODES if kind == WEIGHT else pending):
            shown[kind][t] = _value(rng, kind, shown=True)
    state = SteerState()
    for kind in KINDS:
        for t in targets[kind]:
            if rng.random() < 0.3:
                state.put(kind, t, _value(rng, kind), _value(rng, kind), at=0.0)
    return want, shown, state


def _diff(want, shown, state, max_changes, targets=None):
    desired = diff.Desired(weights=want[WEIGHT], site_factors=want[SITE_FACTOR], pins=want[PIN],
                          pin_nodes={j: tuple(n for n in NODES if n not in p)
                                     for j, p in want[PIN].items()})
    view = diff.SlurmView(weights=shown[WEIGHT], site_factors=shown[SITE_FACTOR],
                         pins=shown[PIN])
    return diff.diff(desired, view, state, max_changes, targets)


def _outcome(d: diff.Diff):
    return d.changes, d.deferred, d.forget, d.adopt


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), max_changes=st.sampled_from([0, 1, 3, 8]))
def test_the_diff_of_the_moved_targets_is_the_whole_diff(seed, max_changes):
    rng = random.Random(seed)
    want, shown, state = _random_state(rng)
    first = _diff(want, shown, state, max_changes)
    act.edit_marks(state, first)
    for c in first.changes:
        act.mark_applied(state, c, at=1.0)
        shown[c.kind][c.target] = c.value
    asked = {kind: set() for kind in KINDS}
    for c in (*first.changes, *first.deferred):
        asked[c.kind].add(c.target)
    for kind, target, *_ in (*first.forget, *first.adopt):
        asked[kind].add(target)
    # Some targets move; only they (and the first diff's) are asked.
    for _ in range(rng.randint(0, 6)):
        kind = rng.choice(KINDS)
        target = rng.choice(NODES if kind == WEIGHT else JOBS)
        asked[kind].add(target)
        move = rng.choice(["want", "unwant", "shown", "leave", "mark"])
        if move == "want":
            want[kind][target] = _value(rng, kind)
        elif move == "unwant":
            want[kind].pop(target, None)
        elif move == "shown":
            shown[kind][target] = _value(rng, kind, shown=True)
        elif move == "leave" and kind != WEIGHT:
            shown[kind].pop(target, None)
        else:
            state.put(kind, target, _value(rng, kind), _value(rng, kind), at=2.0)
    whole = _diff(want, shown, state, max_changes)
    some = _diff(want, shown, state, max_changes, targets=asked)
    assert _outcome(some) == _outcome(whole)


def test_an_unmoved_target_is_left_out_of_the_limited_diff():
    """The limit is real: a target that needs a change but is not asked gets none."""
    want = {WEIGHT: {"gn01": 11, "gn02": 21}, SITE_FACTOR: {}, PIN: {}}
    shown = {WEIGHT: {"gn01": 1, "gn02": 1}, SITE_FACTOR: {}, PIN: {}}
    d = _diff(want, shown, SteerState(), 0, targets={WEIGHT: {"gn02"}})
    assert [(c.target, c.value) for c in d.changes] == [("gn02", 21)]
    assert len(_diff(want, shown, SteerState(), 0).changes) == 2
