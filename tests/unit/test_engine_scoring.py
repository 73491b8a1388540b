"""Table tests of the engine's scoring maths, with hand-computed exact values."""

from __future__ import annotations

import numpy as np
import pytest

from kant_slurm.engine import scoring as s
from kant_slurm.engine.estimate import HistoryEstimator, expected_end, runtime_estimate
from kant_slurm.model import Job

ORDER = ("inference", "training", "batch")


@pytest.mark.parametrize("cls, tier", [("inference", 0), ("training", 1), ("batch", 2),
                                       ("weird", 3)])
def test_class_tier(cls, tier):
    assert s.class_tier(cls, ORDER) == tier


ACCOUNTS = {"a": {"h100": 16, "*": 4}, "b": {"h100": 8}, "*": {"*": 2}}


@pytest.mark.parametrize("account, gtype, quota", [
    ("a", "h100", 16), ("a", "a100", 4), ("a", None, 4),
    ("b", "h100", 8), ("b", "a100", None), ("zz", "h100", 2), ("zz", None, 2),
])
def test_quota_for(account, gtype, quota):
    assert s.quota_for(ACCOUNTS, account, gtype) == quota


def test_quota_off():
    assert s.quota_for({}, "a", "h100") is None


@pytest.mark.parametrize("used, asked, quota, borrow, tier", [
    (0, 8, 16, 1.0, 0), (8, 8, 16, 1.0, 0),        # exactly at quota: within
    (8, 9, 16, 1.0, 1), (16, 16, 16, 1.0, 1),      # 32 = 16 x 2: still borrowing
    (16, 17, 16, 1.0, 2), (0, 5, 4, 0.0, 2),       # beyond the limit; no borrowing at all
    (3, 3, 4, 0.5, 1), (3, 4, 4, 0.5, 2),          # limit 6 = 4 x 1.5: 6 borrows, 7 waits
    (100, 100, None, 0.0, 0),                      # no quota
])
def test_quota_tier(used, asked, quota, borrow, tier):
    assert s.quota_tier(used, asked, quota, borrow) == tier


@pytest.mark.parametrize("now, submit, eligible, age", [
    (100.0, 40.0, None, 60.0), (100.0, 40.0, 90.0, 10.0), (100.0, 140.0, None, 0.0)])
def test_age(now, submit, eligible, age):
    assert s.age_seconds(now, submit, eligible) == age


def test_kant_order_key_sorts_class_quota_age_id():
    keys = {
        "old_batch": s.kant_order_key(2, 0, 500.0, "1"),
        "new_inference": s.kant_order_key(0, 0, 1.0, "9"),
        "borrowing_training": s.kant_order_key(1, 1, 900.0, "3"),
        "within_training": s.kant_order_key(1, 0, 10.0, "4"),
        "within_training_older": s.kant_order_key(1, 0, 20.0, "5"),
        "tie_10": s.kant_order_key(2, 0, 500.0, "10"),
    }
    got = sorted(keys, key=keys.get)
    assert got == ["new_inference", "within_training_older", "within_training",
                   "borrowing_training", "old_batch", "tie_10"]


def test_slurm_order_key():
    a = s.slurm_order_key(1, 100, 50.0, "7")
    b = s.slurm_order_key(1, 200, 60.0, "8")
    c = s.slurm_order_key(2, 0, 70.0, "9")
    d = s.slurm_order_key(1, 100, 40.0, "10")
    assert sorted([a, b, c, d]) == [c, b, d, a]


@pytest.mark.parametrize("free, total, score", [
    (32, 32, 0.0), (0, 32, 1.0), (28, 32, 0.125), (6, 16, 0.625), (5, 0, 0.0)])
def test_group_fill_score(free, total, score):
    assert s.group_fill_score(free, total) == score


def test_rank_groups_fullest_then_fewer_free_then_index():
    fits = np.array([True, True, True, False, True, True])
    free = np.array([16., 4., 8., 0., 2., 4.])
    total = np.array([32., 8., 16., 8., 8., 8.])
    # scores: 0.5, 0.5, 0.5, -, 0.75, 0.5 -> group 4; then the 0.5 ties by free: 1 (4), 5 (4),
    # 2 (8), 0 (16); 1 and 5 tie on free too -> lower index first.
    idx, score = s.rank_groups(fits, free, total)
    assert idx.tolist() == [4, 1, 5, 2, 0]
    assert score.tolist() == [0.75, 0.5, 0.5, 0.5, 0.5]
    idx, score = s.rank_groups(fits, free, total, top=2)
    assert idx.tolist() == [4, 1]
    assert s.best_group(fits, free, total) == 4
    assert s.best_group(np.zeros(6, bool), free, total) == -1


def test_pick_best_fit():
    cand = np.array([True, True, False, True, True])
    free = np.array([8, 3, 1, 2, 3])
    assert s.pick_best_fit(cand, free, 2, 1).tolist() == [3]      # 2 free: leftover 0
    assert s.pick_best_fit(cand, free, 2, 3).tolist() == [3, 1, 4]
    assert s.pick_best_fit(cand, free, 2, 5).tolist() == []       # not enough candidates
    assert s.node_leftover(free, 2).tolist() == [6, 1, -1, 0, 1]


@pytest.mark.parametrize("alloc, total, leaf_used, zone, tier", [
    (3, 8, True, False, 0), (8, 8, True, False, 0), (0, 8, True, False, 1),
    (0, 8, False, False, 2), (0, 8, False, True, 3), (5, 8, True, True, 3),
    (0, 0, False, False, 0)])
def test_node_tier(alloc, total, leaf_used, zone, tier):
    assert s.node_tier(alloc, total, leaf_used, zone) == tier


def test_node_tiers_vectorised():
    alloc = np.array([2, 0, 0, 0, 0, 0, 4])
    total = np.array([8, 8, 8, 8, 8, 8, 8])
    leaf = np.array([0, 0, 1, 1, -1, 2, 2])
    zone = np.array([False, False, False, False, False, False, True])
    # node 0 used; node 1 idle in used leaf 0; leaf 1 idle; node 4 under no switch, idle;
    # leaf 2 is used (node 6) but node 6 is in the zone; node 5 idle in used leaf 2.
    assert s.node_tiers(alloc, total, leaf, zone).tolist() == [0, 1, 2, 2, 2, 1, 3]


# Idle in a used leaf (1) and idle leaf (2) share a Weight: Slurm takes lighter nodes whole.
@pytest.mark.parametrize("tier, weight", [(0, 1), (1, 11), (2, 11), (3, 31)])
def test_tier_weight(tier, weight):
    assert s.tier_weight(tier, 1, 10) == weight


def _job(**kw):
    base = dict(job_id="1", state="PENDING", num_nodes=1, gpus_per_node=1, submit_time=0.0)
    base.update(kw)
    return Job(**base)


@pytest.mark.parametrize("kw, opts, expected", [
    ({"time_limit": 3600.0}, {}, (3600.0, "time_limit")),
    ({"time_limit": 3600.0, "est_runtime": 600.0}, {}, (600.0, "user")),
    ({"time_limit": 3600.0, "est_runtime": 7200.0}, {}, (3600.0, "user")),   # capped
    ({"time_limit": 3600.0, "est_runtime": 600.0}, {"use_user": False}, (3600.0, "time_limit")),
    ({"time_limit": 3600.0, "est_runtime": 600.0}, {"limit_only": True}, (3600.0, "time_limit")),
    ({}, {"unlimited": 1000.0}, (1000.0, "default")),
    ({"time_limit": 0.0}, {"unlimited": 5.0}, (5.0, "default")),
])
def test_runtime_estimate(kw, opts, expected):
    assert runtime_estimate(_job(**kw), **opts) == expected


def test_history_estimator_quantile_margin_and_cap():
    recs = [{"user": "u", "account": "a", "name": "train", "runtime": r}
            for r in (100, 200, 300, 400, 500)]
    recs.append({"user": "u", "account": "a", "name": "other", "elapsed": 50})
    recs.append({"user": "u", "account": "a", "name": "train", "runtime": None})
    h = HistoryEstimator.from_records(recs, min_samples=3, quantile=0.5, margin=1.1)
    # median of 100..500 = 300, x 1.1 = 330; "other" has 1 sample < 3: no estimate.
    assert h.estimates == {("u", "a", "train"): pytest.approx(330.0)}
    j = _job(user="u", account="a", name="train", time_limit=3600.0)
    assert runtime_estimate(j, history=h) == (pytest.approx(330.0), "history")
    j2 = _job(user="u", account="a", name="train", time_limit=200.0)
    assert runtime_estimate(j2, history=h) == (200.0, "history")
    j3 = _job(user="u", account="a", name="other", time_limit=3600.0)
    assert runtime_estimate(j3, history=h) == (3600.0, "time_limit")


@pytest.mark.parametrize("start, est, limit, now, end", [
    (0.0, 100.0, 200.0, 50.0, 100.0),     # within its estimate
    (0.0, 100.0, 200.0, 150.0, 200.0),    # outlived the estimate: runs to its limit
    (0.0, 100.0, 200.0, 250.0, 251.0),    # past its limit too: ends at once
    (None, 100.0, None, 10.0, 110.0),     # no start time: from now
])
def test_expected_end(start, est, limit, now, end):
    j = _job(state="RUNNING", start_time=start)
    assert expected_end(j, now, est, limit) == end


def test_history_from_a_record_table_without_names():
    import pandas as pd

    table = pd.DataFrame({"user": ["u", "u", "u", "v"], "account": ["a"] * 4,
                          "duration": [100.0, 200.0, 300.0, 50.0]})
    h = HistoryEstimator.from_table(table, min_samples=3, quantile=1.0, margin=1.0)
    assert h.estimates == {("u", "a", ""): 300.0}
    # a named job falls back to its user and account when the records carry no names
    assert h.get(_job(user="u", account="a", name="train")) == 300.0
    assert h.get(_job(user="v", account="a")) is None
