"""kant's state file: round trip, atomic write, corrupt files named precisely."""

from __future__ import annotations

import json
import os

import pytest

from kant_slurm.slurm.state import (FOREIGN, IN_FORCE, NOT_IN_FORCE, PIN, SITE_FACTOR, WEIGHT,
                                    Mark, StateCorrupt, SteerState, classify_value, load_state,
                                    save_state, set_aside)


def test_round_trip(tmp_path):
    st = SteerState(cycle=4)
    st.put(WEIGHT, "gn01", 1, 11, at=5.0)
    st.put(SITE_FACTOR, "42", 0, 8000, at=6.0)
    st.put(PIN, "42", [], ["gn01", "gn02"], at=7.0)
    path = tmp_path / "dir with space" / "state.json"
    save_state(st, path)
    back = load_state(path)
    assert back.cycle == 4
    assert back.get(PIN, "42") == Mark(orig=(), set=("gn01", "gn02"), at=7.0)
    assert back.get(WEIGHT, "gn01") == Mark(orig=1, set=11, at=5.0)
    assert back.count() == 3
    assert back.last_cycle is None


def test_last_cycle_round_trip(tmp_path):
    st = SteerState(last_cycle={"duration_s": 0.25, "applied": 3, "failed": 0, "at": 99.0})
    save_state(st, tmp_path / "s.json")
    assert load_state(tmp_path / "s.json").last_cycle == {
        "duration_s": 0.25, "applied": 3.0, "failed": 0.0, "at": 99.0}


def test_missing_file_is_empty_state(tmp_path):
    assert load_state(tmp_path / "none.json").is_empty()


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "s.json"
    for i in range(3):
        st = SteerState()
        st.put(WEIGHT, "gn01", 1, i)
        save_state(st, path)
    assert os.listdir(tmp_path) == ["s.json"]


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ("[]", "expected a JSON object"),
    ('{"version": 9, "marks": {}}', "version 9, expected 1"),
    ('{"version": 1}', "'marks' must be an object"),
    ('{"version": 1, "marks": {"priority": {}}}', "marks.priority: unknown kind"),
    ('{"version": 1, "marks": {"weight": {"gn01": {"orig": 1}}}}',
     r"marks.weight.gn01: expected \{orig, set, at\}"),
    ('{"version": 1, "marks": {"weight": {"gn01": {"orig": "1", "set": 11}}}}',
     r"marks.weight.gn01.orig = '1': expected an integer"),
    ('{"version": 1, "marks": {"pin": {"5": {"orig": [], "set": "gn01"}}}}',
     r"marks.pin.5.set = 'gn01': expected a list of node names"),
    ('{"version": 1, "marks": {}, "last_cycle": {"applied": "3"}}',
     "last_cycle must be an object of numbers"),
])
def test_corrupt_files_are_named(tmp_path, text, message):
    path = tmp_path / "s.json"
    path.write_text(text)
    with pytest.raises(StateCorrupt, match=message) as info:
        load_state(path)
    assert str(path) in str(info.value)


def test_set_aside(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("garbage")
    moved = set_aside(path)
    assert not path.exists() and moved.read_text() == "garbage"
    assert moved.name.startswith("s.json.corrupt-")
    assert set_aside(path) is None


@pytest.mark.parametrize("shown, expected", [(11, IN_FORCE), (1, NOT_IN_FORCE), (50, FOREIGN)])
def test_classify_value(shown, expected):
    assert classify_value(Mark(orig=1, set=11), shown) == expected


def test_file_is_plain_sorted_json(tmp_path):
    st = SteerState()
    st.put(WEIGHT, "gn02", 1, 21, at=1.0)
    st.put(WEIGHT, "gn01", 1, 11, at=1.0)
    save_state(st, tmp_path / "s.json")
    data = json.loads((tmp_path / "s.json").read_text())
    assert list(data["marks"]["weight"]) == ["gn01", "gn02"]
    assert data["version"] == 1


@pytest.mark.parametrize("bad", [-1, "3", True, 1.5])
def test_bad_reapplied_count_names_the_field(tmp_path, bad):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"version": 1, "marks": {"site_factor": {
        "7": {"orig": 0, "set": 500000, "at": 0, "reapplied": bad}}}}))
    with pytest.raises(StateCorrupt, match=r"marks\.site_factor\.7\.reapplied"):
        load_state(path)
