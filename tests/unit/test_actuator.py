"""The actuator's pure parts: desired values, the diff, marks from Slurm, parsers, apply's
bookkeeping with a stand-in scontrol. Expected values are computed by hand in the comments."""

from __future__ import annotations

import dataclasses
import shlex

import pytest

from kant_slurm.engine.plan import Placement, Plan, QueueEntry
from kant_slurm.errors import InputError, SlurmError, SlurmUnreachable
from kant_slurm.model import ClusterSnapshot, Inventory, Job, Partition, Topology
from kant_slurm.formats.slurm_jobs import parse_sprio_priorities, parse_sprio_site
from kant_slurm.slurm import actuator as act
from kant_slurm.slurm import diff
from kant_slurm.slurm.state import PIN, SITE_FACTOR, WEIGHT, SteerState, load_state

S = diff.ActuatorSettings(tier_base=1, tier_step=10, site_factor_scale=1000, class_levels=4,
                         max_changes=0)


def view(weights=None, site=None, pins=None):
    return diff.SlurmView(weights=weights or {}, site_factors=site or {}, pins=pins or {})


# -- SiteFactor tiers ------------------------------------------------------------------------

@pytest.mark.parametrize("class_tier, quota_tier, expected", [
    (0, 0, 11000),  # levels = 4 * 3 = 12; key 0 -> 1000 * (12 - 1 - 0)
    (0, 1, 10000),  # key 1
    (1, 0, 8000),  # key 3 -> 1000 * 8
    (2, 2, 3000),  # key 8 -> 1000 * 3
    (3, 2, 0),  # key 11: the last tier gets 0 (Slurm's default)
    (9, 0, 2000),  # an unknown class beyond the levels counts as the last class: key 9
    (0, 7, 9000),  # quota tier capped at 2: key 2
])
def test_tier_site_factor(class_tier, quota_tier, expected):
    assert diff.tier_site_factor(class_tier, quota_tier, S) == expected


@pytest.mark.parametrize("value, kantish", [
    (0, False), (1000, True), (11000, True), (12000, False), (1500, False), (-1000, False)])
def test_is_kant_site_factor(value, kantish):
    assert S.is_kant_site_factor(value) is kantish


# -- desired values from a plan ---------------------------------------------------------------

def small_snapshot(jobs):
    names = ["gn01", "gn02", "gn03", "gn04"]
    topo = Topology.from_links({"leaf1": names[:2], "leaf2": names[2:]}, node_order=names)
    inv = Inventory.build(names, [8] * 4, [64] * 4,
                          partitions=[Partition("gpu", tuple(names), default=True)],
                          topology=topo, config_weight=[1, 1, 1, 1])
    return ClusterSnapshot.idle(inv, jobs)


def test_desired_from_plan_maps_tiers_weights_and_pins():
    jobs = [Job("1", "RUNNING", 1, 4, 0.0, nodes=("gn01",), node_gpus=(4,), start_time=1.0),
            Job("2", "PENDING", 1, 2, 5.0), Job("3", "PENDING", 1, 8, 6.0)]
    snap = small_snapshot(jobs)
    plan = Plan(policy="kant", now=10.0,
                order=(QueueEntry("2", 0, {"class_tier": 1, "quota_tier": 0}),
                       QueueEntry("3", 1, {"class_tier": 2, "quota_tier": 0})),
                starts=(Placement("2", ("gn01",), (2,)), Placement("1", ("gn01",), (4,))),
                node_tiers={"gn01": 0, "gn02": 1, "gn03": 2, "gn04": 2})
    d = diff.desired_from_plan(plan, snap, dataclasses.replace(S, best_fit=False, pin_jobs="all"))
    assert d.site_factors == {"2": 8000, "3": 5000}  # keys 3 and 6
    # Idle nodes of a used (gn02) and of an idle leaf (gn03-04) share one Weight: see
    # scoring.tier_weight.
    assert d.weights == {"gn01": 1, "gn02": 11, "gn03": 11, "gn04": 11}
    # Job 2 may only use gn01: every other node is excluded. Job 1 runs already: no pin.
    assert d.pins == {"2": ("gn02", "gn03", "gn04")} and d.pin_nodes == {"2": ("gn01",)}


@pytest.mark.parametrize("pin_jobs, best_fit, weights, pinned", [
    # best fit: gn01 (tier 0) has 8 - 4 = 4 free GPUs -> 1 + 4; idle nodes unchanged
    ("multi-node", True, {"gn01": 5, "gn02": 11, "gn03": 11, "gn04": 11}, {"5"}),
    ("all", True, {"gn01": 5, "gn02": 11, "gn03": 11, "gn04": 11}, {"2", "5"}),
    ("none", False, {"gn01": 1, "gn02": 11, "gn03": 11, "gn04": 11}, set()),
])
def test_desired_pin_modes_and_best_fit_weights(pin_jobs, best_fit, weights, pinned):
    jobs = [Job("1", "RUNNING", 1, 4, 0.0, nodes=("gn01",), node_gpus=(4,), start_time=1.0),
            Job("2", "PENDING", 1, 2, 5.0), Job("5", "PENDING", 2, 8, 6.0)]
    plan = Plan(policy="kant", now=10.0,
                starts=(Placement("2", ("gn01",), (2,)), Placement("5", ("gn03", "gn04"), (8, 8))),
                node_tiers={"gn01": 0, "gn02": 1, "gn03": 2, "gn04": 2})
    settings = dataclasses.replace(S, pin_jobs=pin_jobs, best_fit=best_fit)
    d = diff.desired_from_plan(plan, small_snapshot(jobs), settings)
    assert d.weights == weights
    assert set(d.pins) == pinned


@pytest.mark.parametrize("release, deep_queue, pending_gpus, gn01_weight", [
    # the cluster has 4 x 8 = 32 GPUs; gn01 has 8 - 4 = 4 free GPUs: 1 + 4 with best fit
    ("22.05", 1.0, [16, 16, 8], 5),  # before 26.05 best fit never pauses
    ("24.11", 1.0, [16, 16, 8], 5),
    ("26.05", 1.0, [16, 8], 5),  # 24 GPUs pending < 1.0 x 32: best fit
    ("26.05", 1.0, [16, 8, 8], 1),  # 32 >= 32: paused, gn01 takes its tier's Weight
    ("26.05", 0.5, [16], 1),  # 16 >= 0.5 x 32
    ("26.05", 0.0, [16, 16, 8], 5),  # 0: never paused
])
def test_best_fit_pauses_under_a_deep_queue_on_26_05(release, deep_queue, pending_gpus,
                                                      gn01_weight):
    jobs = [Job("1", "RUNNING", 1, 4, 0.0, nodes=("gn01",), node_gpus=(4,), start_time=1.0)]
    jobs += [Job(f"p{i}", "PENDING", 1, g, 5.0) if g <= 8 else
             Job(f"p{i}", "PENDING", g // 8, 8, 5.0) for i, g in enumerate(pending_gpus)]
    plan = Plan(policy="kant", now=10.0, node_tiers={"gn01": 0, "gn02": 1, "gn03": 2, "gn04": 2})
    settings = dataclasses.replace(S, slurm_release=release, deep_queue=deep_queue)
    d = diff.desired_from_plan(plan, small_snapshot(jobs), settings)
    assert d.weights == {"gn01": gn01_weight, "gn02": 11, "gn03": 11, "gn04": 11}


def test_actuator_settings_carry_deep_queue_and_release():
    from kant_slurm.config import load_config

    config = load_config(None)
    settings = diff.ActuatorSettings.from_config(config, slurm_release="26.05")
    assert (settings.deep_queue, settings.slurm_release) == (1.0, "26.05")
    assert diff.ActuatorSettings.from_config(config).slurm_release == "22.05"


def test_best_fit_weight_capped_below_the_next_tier():
    # 16 free GPUs on a partly used node with tier_step 10: + 9 at most, still below tier 1
    names = ["gn01", "gn02"]
    inv = Inventory.build(names, [20, 20], [64, 64],
                          partitions=[Partition("gpu", tuple(names), default=True)],
                          config_weight=[1, 1])
    snap = ClusterSnapshot.idle(inv, [Job("1", "RUNNING", 1, 4, 0.0, nodes=("gn01",),
                                          node_gpus=(4,), start_time=1.0)])
    plan = Plan(policy="kant", now=1.0, node_tiers={"gn01": 0, "gn02": 1})
    assert diff.desired_from_plan(plan, snap, S).weights == {"gn01": 10, "gn02": 11}
    assert 10 in S.kant_weights() and 11 in S.kant_weights()


def test_no_pin_for_a_job_with_its_own_reqnodelist():
    jobs = [Job("2", "PENDING", 1, 2, 5.0, required_nodes=("gn01",))]
    plan = Plan(policy="kant", now=10.0, starts=(Placement("2", ("gn01",), (2,)),))
    assert diff.desired_from_plan(plan, small_snapshot(jobs), S).pins == {}


def test_baseline_plan_sets_no_order():
    snap = small_snapshot([Job("2", "PENDING", 1, 2, 5.0)])
    plan = Plan(policy="slurm", now=1.0, order=(QueueEntry("2", 0, {"priority": 5}),))
    assert diff.desired_from_plan(plan, snap, S).site_factors == {}


# -- the diff ---------------------------------------------------------------------------------

def test_nothing_new_changes_nothing():
    st = SteerState()
    st.put(WEIGHT, "gn01", 1, 11)
    st.put(SITE_FACTOR, "7", 0, 8000)
    st.put(PIN, "8", (), ("gn02",))
    want = diff.Desired(weights={"gn01": 11}, site_factors={"7": 8000}, pins={"8": ("gn02",)})
    shown = view({"gn01": 11}, {"7": 8000, "8": 0}, {"7": (), "8": ("gn02",)})
    d = diff.diff(want, shown, st)
    assert d.changes == [] and d.forget == [] and d.adopt == []


def test_first_cycle_sets_values_with_slurm_values_as_orig():
    want = diff.Desired(weights={"gn01": 11, "gn02": 1}, site_factors={"7": 8000},
                       pins={"7": ("gn03", "gn04")}, pin_nodes={"7": ("gn01", "gn02")})
    shown = view({"gn01": 1, "gn02": 1}, {"7": 0}, {"7": ()})
    d = diff.diff(want, shown, SteerState())
    got = [(c.kind, c.target, c.value, c.orig, c.action) for c in d.changes]
    # Order: pins, then SiteFactors, then weights; gn02 already shows 1: no change.
    assert got == [(PIN, "7", ("gn03", "gn04"), (), "set"),
                   (SITE_FACTOR, "7", 8000, 0, "set"),
                   (WEIGHT, "gn01", 11, 1, "set")]
    assert [c.command() for c in d.changes] == [
        "scontrol update JobId=7 'ExcNodeList=gn[03-04]'",  # brackets quoted for the shell
        "scontrol update JobId=7 SiteFactor=8000",
        "scontrol update NodeName=gn01 Weight=11",
    ]


def test_stale_pin_cleared_and_gone_jobs_forgotten():
    st = SteerState()
    st.put(PIN, "8", (), ("gn02",))  # still pending, plan no longer starts it
    st.put(PIN, "9", (), ("gn03",))  # started since: not in the view
    st.put(SITE_FACTOR, "9", 0, 8000)
    d = diff.diff(diff.Desired(), view({}, {"8": 0}, {"8": ("gn02",)}), st)
    assert [(c.kind, c.target, c.value, c.action) for c in d.changes] == [
        (PIN, "8", (), "restore")]
    assert d.changes[0].command() == "scontrol update JobId=8 ExcNodeList="
    assert sorted(d.forget) == [(PIN, "9"), (SITE_FACTOR, "9")]


def test_weight_back_to_orig_when_untiered_and_mark_dropped_when_already_back():
    st = SteerState()
    st.put(WEIGHT, "gn01", 5, 21)
    st.put(WEIGHT, "gn02", 5, 21)
    d = diff.diff(diff.Desired(), view({"gn01": 21, "gn02": 5}), st)
    assert [(c.target, c.value, c.before) for c in d.changes] == [("gn01", 5, 21)]
    assert d.forget == [(WEIGHT, "gn02")]  # slurmctld restart already brought it back


def test_foreign_value_is_adopted_as_orig():
    st = SteerState()
    st.put(WEIGHT, "gn01", 1, 11)
    d = diff.diff(diff.Desired(weights={"gn01": 11}), view({"gn01": 50}), st)
    assert d.adopt == [(WEIGHT, "gn01", 50)]
    assert [(c.value, c.orig) for c in d.changes] == [(11, 50)]
    assert "someone else set it" in d.notes[0]


def test_user_exclusions_are_kept():
    # The user excludes gn04; kant's choice gn01 excludes gn02-04: pinned, and reset gives
    # the user's gn04 back.
    want = diff.Desired(pins={"7": ("gn02", "gn03", "gn04")}, pin_nodes={"7": ("gn01",)})
    d = diff.diff(want, view({}, {"7": 0}, {"7": ("gn04",)}), SteerState())
    assert [(c.value, c.orig) for c in d.changes] == [(("gn02", "gn03", "gn04"), ("gn04",))]
    # The user excludes gn01 itself: no pin.
    d = diff.diff(want, view({}, {"7": 0}, {"7": ("gn01",)}), SteerState())
    assert d.changes == [] and "excludes gn01 itself" in d.notes[0]


def test_restarted_slurmctld_shows_orig_again_and_diff_reapplies():
    st = SteerState()
    st.put(WEIGHT, "gn01", 1, 11)
    d = diff.diff(diff.Desired(weights={"gn01": 11}), view({"gn01": 1}), st)
    assert [(c.value, c.orig) for c in d.changes] == [(11, 1)] and not d.adopt


def test_bound_keeps_pins_first_and_defers_the_rest():
    want = diff.Desired(weights={f"gn0{i}": 11 for i in range(1, 5)}, site_factors={"7": 8000},
                       pins={"7": ("gn01",)})
    shown = view({f"gn0{i}": 1 for i in range(1, 5)}, {"7": 0}, {"7": ()})
    d = diff.diff(want, shown, SteerState(), max_changes=3)
    assert [(c.kind, c.target) for c in d.changes] == [
        (PIN, "7"), (SITE_FACTOR, "7"), (WEIGHT, "gn01")]
    assert [c.target for c in d.deferred] == ["gn02", "gn03", "gn04"]


def test_job_ids_sort_numerically():
    want = diff.Desired(site_factors={"10": 1000, "9": 1000, "9_2": 1000})
    d = diff.diff(want, view({}, {"10": 0, "9": 0, "9_2": 0}, {}), SteerState())
    assert [c.target for c in d.changes] == ["9", "9_2", "10"]


def test_hostile_target_is_one_argument_and_quoted():
    ch = diff.Change(WEIGHT, "gn01 ; rm -rf /", 11, 1, 1, "set")
    assert ch.argv()[2] == "NodeName=gn01 ; rm -rf /"
    assert shlex.split(ch.command()) == ch.argv()


# -- marks rebuilt from Slurm; leftovers ------------------------------------------------------

def test_marks_from_slurm():
    shown = view({"gn01": 11, "gn02": 1, "gn03": 7}, {"5": 8000, "6": 1500, "7": 0})
    st = diff.marks_from_slurm(shown, {"gn01": 1, "gn02": 1, "gn03": 7}, S)
    assert {k: (m.orig, m.set) for k, m in st.marks[WEIGHT].items()} == {"gn01": (1, 11)}
    assert {k: (m.orig, m.set) for k, m in st.marks[SITE_FACTOR].items()} == {"5": (0, 8000)}
    assert st.marks[PIN] == {}


def test_leftovers():
    st = SteerState()
    st.put(WEIGHT, "gn01", 1, 11)
    st.put(WEIGHT, "gn02", 1, 11)
    st.put(SITE_FACTOR, "5", 0, 8000)
    left = diff.leftovers(st, view({"gn01": 1, "gn02": 11}, {}, {}))
    assert left == ["weight of gn02 is 11, expected 1"]


# -- parsers -----------------------------------------------------------------------------------

def test_parse_sprio_site():
    assert parse_sprio_site("     12      500\n 13_4 0\n\n") == {"12": 500, "13_4": 0}
    with pytest.raises(SlurmError, match="sprio line 1"):
        parse_sprio_site("12 abc\n")


def test_parse_config_weights():
    text = ("# comment Weight=9\nNodeName=DEFAULT Weight=3\n"
            "NodeName=gn[01-02] NodeHostname=localhost Port=[1-2] Gres=gpu:8\n"
            "nodename=gn03 weight=7 # fast\nPartitionName=gpu Nodes=ALL\n")
    assert act.parse_config_weights(text) == {"gn01": 3, "gn02": 3, "gn03": 7}
    assert act.parse_config_weights("NodeName=a1 CPUs=4\n") == {"a1": 1}
    with pytest.raises(InputError, match=r"slurm.conf:1: Weight='x'"):
        act.parse_config_weights("NodeName=a1 Weight=x\n")


# -- apply with a stand-in scontrol ------------------------------------------------------------

def changes_for(n=3, same=False):
    """gn01..: weights 11, 21, 31 (one command each) or all 11 (one grouped command)."""
    want = diff.Desired(weights={f"gn0{i}": 11 if same else 10 * i + 1 for i in range(1, n + 1)})
    return diff.diff(want, view({f"gn0{i}": 1 for i in range(1, n + 1)}), SteerState()).changes


def test_apply_records_each_change(tmp_path):
    ran = []
    st = SteerState()
    res = act.apply_changes(changes_for(), st, tmp_path / "s.json", runner=ran.append)
    assert len(ran) == 3 and len(res.applied) == 3
    assert {k: (m.orig, m.set) for k, m in load_state(tmp_path / "s.json").marks[WEIGHT].items()} \
        == {"gn01": (1, 11), "gn02": (1, 21), "gn03": (1, 31)}


def test_apply_refused_change_takes_its_mark_back(tmp_path):
    def runner(argv):
        if "NodeName=gn02" in argv:
            raise SlurmError("Invalid node name specified")
        return ""
    st = SteerState()
    res = act.apply_changes(changes_for(), st, tmp_path / "s.json", runner=runner)
    assert [c.target for c in res.applied] == ["gn01", "gn03"]
    assert [c.target for c, _ in res.failed] == ["gn02"]
    assert sorted(load_state(tmp_path / "s.json").marks[WEIGHT]) == ["gn01", "gn03"]


def test_apply_stops_when_slurmctld_goes_and_keeps_write_ahead_mark(tmp_path):
    calls = []

    def runner(argv):
        calls.append(argv)
        if len(calls) == 2:
            raise SlurmUnreachable("slurmctld does not answer")
        return ""
    st = SteerState()
    res = act.apply_changes(changes_for(), st, tmp_path / "s.json", runner=runner)
    assert [c.target for c in res.applied] == ["gn01"]
    assert [c.target for c in res.not_run] == ["gn02", "gn03"] and res.unreachable
    # gn02's mark stays (written ahead); next cycle sees Slurm's 1 == orig: not in force.
    marks = load_state(tmp_path / "s.json").marks[WEIGHT]
    assert sorted(marks) == ["gn01", "gn02"]
    d = diff.diff(diff.Desired(weights={"gn01": 11, "gn02": 21, "gn03": 31}),
                 view({"gn01": 11, "gn02": 1, "gn03": 1}), load_state(tmp_path / "s.json"))
    assert [c.target for c in d.changes] == ["gn02", "gn03"]


def test_restore_drops_the_mark(tmp_path):
    st = SteerState()
    st.put(WEIGHT, "gn01", 1, 11)
    d = diff.diff(diff.Desired(), view({"gn01": 11}), st)
    act.apply_changes(d.changes, st, tmp_path / "s.json", runner=lambda a: "")
    assert load_state(tmp_path / "s.json").is_empty()


def test_held_job_site_factor_unknown_is_left_alone():
    # sprio does not list held jobs: value None -> no change, mark kept for later.
    st = SteerState()
    st.put(SITE_FACTOR, "7", 0, 8000)
    d = diff.diff(diff.Desired(site_factors={"7": 8000, "8": 8000}),
                 view({}, {"7": None, "8": None}, {}), st)
    assert d.changes == [] and d.forget == []
    snap = small_snapshot([Job("7", "PENDING", 1, 1, 0.0), Job("8", "PENDING", 1, 1, 0.0)])
    assert diff.view_from_snapshot(snap, {"7": 5}).site_factors == {"7": 5, "8": None}


def test_equal_weights_share_one_command(tmp_path):
    changes = changes_for(4, same=True)
    cmds = act.group_changes(changes)
    assert [c.command() for c in cmds] == ["scontrol update 'NodeName=gn[01-04]' Weight=11"]
    ran = []
    res = act.apply_changes(changes, SteerState(), tmp_path / "s.json", runner=ran.append)
    assert ran == [["scontrol", "update", "NodeName=gn[01-04]", "Weight=11"]]
    assert len(res.applied) == 4


def test_refused_group_is_retried_node_by_node(tmp_path):
    ran = []

    def runner(argv):
        ran.append(argv[2])
        if "gn03" in argv[2] or "[" in argv[2]:
            raise SlurmError("Invalid node name specified")
        return ""
    res = act.apply_changes(changes_for(4, same=True), SteerState(), tmp_path / "s.json",
                            runner=runner)
    assert ran == ["NodeName=gn[01-04]", "NodeName=gn01", "NodeName=gn02", "NodeName=gn03",
                   "NodeName=gn04"]
    assert [c.target for c in res.applied] == ["gn01", "gn02", "gn04"]
    assert [c.target for c, _ in res.failed] == ["gn03"]
    assert sorted(load_state(tmp_path / "s.json").marks[WEIGHT]) == ["gn01", "gn02", "gn04"]


# -- a priority that lags its SiteFactor (Slurm's backfill put back an older one) -------------

@pytest.mark.parametrize("priority, factor_priority, lagging", [
    (8_100, 8_100, False),  # Slurm orders by what the factors give
    (100, 8_100, True),  # the lift of 8000 was undone: 8000 >= tolerance 500
    (8_100, 100, True),  # the other way: an older, higher value came back
    (8_100, 7_700, False),  # 400 below the tolerance (age grew between two calculations)
    (100, None, False),  # sprio not read: nothing known
])
def test_view_marks_jobs_whose_priority_lags_their_factors(priority, factor_priority, lagging):
    snap = small_snapshot([Job("7", "PENDING", 1, 1, 0.0, priority=priority,
                               factor_priority=factor_priority)])
    assert (diff.view_from_snapshot(snap, {"7": 8000}, lag_tolerance=500).lagging
            == ({"7"} if lagging else set()))
    assert diff.view_from_snapshot(snap, {"7": 8000}).lagging == frozenset()  # not asked


@pytest.mark.parametrize("wanted, shown, reapplied, expected", [
    (8000, 8000, 0, [("set", 8000, True)]),  # in force but lagging: sent again
    (8000, 8000, diff.MAX_REAPPLY - 1, [("set", 8000, True)]),
    (8000, 8000, diff.MAX_REAPPLY, []),  # enough: left to Slurm's next calculation
    (9000, 8000, diff.MAX_REAPPLY, [("set", 9000, False)]),  # a new value is an ordinary set
])
def test_lagging_site_factor_is_sent_again_up_to_the_cap(wanted, shown, reapplied, expected):
    st = SteerState()
    st.put(SITE_FACTOR, "7", 0, 8000, reapplied=reapplied)
    lagging = diff.SlurmView(weights={}, site_factors={"7": shown, "8": 8000}, pins={},
                            lagging=frozenset({"7"}))
    d = diff.diff(diff.Desired(site_factors={"7": wanted, "8": 8000}), lagging, st)
    assert [(c.action, c.value, c.again) for c in d.changes] == expected
    assert all(c.target == "7" for c in d.changes)  # job 8 does not lag: no command
    assert bool(d.notes) == (not expected)  # the cap is said, once per cycle


def test_reapplies_are_counted_in_the_state_file_and_reset_by_a_new_value(tmp_path):
    st = SteerState()
    st.put(SITE_FACTOR, "7", 0, 8000)
    lagging = diff.SlurmView(weights={}, site_factors={"7": 8000}, pins={},
                            lagging=frozenset({"7"}))
    for n in (1, 2):
        d = diff.diff(diff.Desired(site_factors={"7": 8000}), lagging, st)
        act.apply_changes(d.changes, st, tmp_path / "s.json", runner=lambda a: "")
        mark = load_state(tmp_path / "s.json").get(SITE_FACTOR, "7")
        assert (mark.orig, mark.set, mark.reapplied) == (0, 8000, n)
    d = diff.diff(diff.Desired(site_factors={"7": 9000}), lagging, st)
    act.apply_changes(d.changes, st, tmp_path / "s.json", runner=lambda a: "")
    assert load_state(tmp_path / "s.json").get(SITE_FACTOR, "7").reapplied == 0


def test_parse_sprio_priorities():
    text = "     12   500   1500\n 13_4 0 7\n 13_4 0 9\n\n"
    assert parse_sprio_priorities(text) == {"12": [(500, 1500)], "13_4": [(0, 7), (0, 9)]}
    with pytest.raises(SlurmError, match="line 1"):
        parse_sprio_priorities("12 500\n")
