"""The sacct reader: parsing, arrays, requeued runs, het jobs, window clipping, chunking."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from kant_slurm.config import config_from_dict
from kant_slurm.engine.classify import make_classifier
from kant_slurm.errors import InputError
from kant_slurm.formats import sacct
from kant_slurm.slurm import accounting

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "slurm-22.05" / "sacct.txt"
HEADER = "|".join(sacct.SACCT_FIELDS)


def row(job_id, raw, submit, start, end, nodelist, gpus, *, state="COMPLETED", user="alice",
        account="ml", partition="gpu", qos="normal", limit_min="60", nnodes="1", admin="",
        elapsed=None, req=None):
    el = elapsed if elapsed is not None else (
        str(int(end) - int(start)) if start.isdigit() and end.isdigit() else "0")
    alloc = f"billing=1,cpu=1,gres/gpu={gpus},node={nnodes}" if start.isdigit() else ""
    reqt = f"billing=1,cpu=1,gres/gpu={req if req is not None else gpus},node={nnodes}"
    return "|".join([job_id, raw, "job", user, account, partition, qos, state, submit, start,
                     end, el, limit_min, nnodes, nodelist, alloc, reqt, admin])


def dump(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


# --------------------------------------------------------------------------------------------
# small pure pieces
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gpus, nodes, expected", [
    (16, 2, (8, 8)), (5, 2, (3, 2)), (3, 1, (3,)), (0, 2, (0, 0)), (7, 0, ()),
])
def test_split_gpus(gpus, nodes, expected):
    assert sacct.split_gpus(gpus, nodes) == expected


@pytest.mark.parametrize("expr, count", [
    ("4-10%2", 7), ("1,3,5-7", 5), ("0-99:3", 34), ("5", 1), ("1-3,8", 4),
])
def test_array_task_count(expr, count):
    assert sacct.array_task_count(expr) == count


def test_split_lines_keeps_pipes_in_the_last_field():
    cols = sacct.split_sacct_lines(dump(row("1", "1", "100", "110", "120", "gn01", 1,
                                           admin="kant:workload=batch|x|y")))
    assert cols["AdminComment"] == ["kant:workload=batch|x|y"]


def test_short_line_names_the_line():
    with pytest.raises(InputError, match=r"line 3: 3 '\|' fields"):
        sacct.split_sacct_lines(dump(row("1", "1", "100", "110", "120", "gn01", 1), "1|2|3"))


def test_header_without_required_field():
    with pytest.raises(InputError, match="header has no 'Submit'"):
        sacct.split_sacct_lines("JobID|Start\n1|2\n")


def test_bad_time_names_the_field():
    with pytest.raises(InputError, match="field Start = 'yesterday'"):
        sacct.parse_sacct_dump(dump(row("1", "1", "100", "yesterday", "120", "gn01", 1)))


# --------------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------------


def test_recorded_fixture_from_slurm_22_05():
    """tests/fixtures/slurm-22.05/sacct.txt: ISO times, Elapsed, Timelimit, kant tags."""
    f = sacct.parse_sacct_dump(FIXTURE.read_text())
    assert list(f["job_id"]) == ["1", "2", "3", "4", "5", "6", "8"]
    j4 = f.iloc[3]
    assert j4["nodes"] == ("gn03", "gn04") and j4["node_gpus"] == (8, 8) and j4["gpus"] == 16
    assert j4["job_class"] == "training" and j4["class_source"] == "tag"
    assert j4["time_limit"] == 4 * 3600 and j4["duration"] == 17
    assert j4["end_time"] - j4["start_time"] == 17
    # Job 5 never started: no nodes, GPUs from ReqTRES, cancelled -> keeps its end.
    j5 = f.iloc[4]
    assert j5["nodes"] == () and j5["gpus"] == 128 and math.isnan(j5["start_time"])
    assert j5["end_time"] - j5["submit_time"] == 14
    assert f.iloc[0]["est_runtime"] == 3600 and f.iloc[0]["job_class"] == "inference"
    assert f.iloc[6]["state"] == "COMPLETED" and f.iloc[0]["state"] == "CANCELLED"


def test_requeued_runs_each_count_once_and_chunk_repeats_drop():
    text = dump(
        row("7", "7", "1000", "1010", "1100", "gn01", 3, state="REQUEUED"),
        row("7", "7", "1100", "1200", "1300", "gn02", 3),
        row("7", "7", "1100", "1200", "1300", "gn02", 3),  # the same run again (two chunks)
    )
    f = sacct.parse_sacct_dump(text)
    assert len(f) == 2
    assert list(f["state"]) == ["REQUEUED", "COMPLETED"]
    assert list(f["nodes"]) == [("gn01",), ("gn02",)]
    assert ((f["end_time"] - f["start_time"]) * f["gpus"]).sum() == 3 * 90 + 3 * 100


def test_arrays_and_het_components():
    text = dump(
        row("20_1", "21", "1000", "1001", "1011", "gn01", 1),
        row("20_2", "20", "1000", "1001", "1021", "gn02", 1),
        row("20_[3-6%2]", "20", "1000", "None", "Unknown", "None assigned", 0, req=1,
            state="PENDING"),
        row("30+0", "30", "1000", "1005", "1015", "gn03", 8),
        row("30+1", "31", "1000", "1005", "1015", "gn[04-05]", 4, nnodes="2"),
    )
    f = sacct.parse_sacct_dump(text)
    assert list(f["job_id"]) == ["20_1", "20_2"] + ["20_[3-6%2]"] * 4 + ["30+0", "30+1"]
    pending = f[f["start_time"].isna()]
    assert len(pending) == 4 and (pending["gpus"] == 1).all()
    assert pending["key"].is_unique
    het = f[f["job_id"].str.startswith("30+")]
    assert list(het["nodes"]) == [("gn03",), ("gn04", "gn05")]
    assert list(het["node_gpus"]) == [(8,), (2, 2)]


def test_window_clipping():
    since, until = 1000.0, 2000.0
    text = dump(
        row("1", "1", "100", "200", "900", "gn01", 1),        # ended before the window: out
        row("2", "2", "2100", "None", "Unknown", "None assigned", 0, req=2, state="PENDING"),
        row("3", "3", "500", "600", "1500", "gn01", 2),       # started before: kept as is
        row("4", "4", "1500", "1800", "2500", "gn02", 4),     # runs past the end: no end
        row("5", "5", "1900", "2100", "2200", "gn03", 8),     # starts after the end: pending
        row("6", "6", "1200", "None", "1300", "None assigned", 0, req=1, state="CANCELLED"),
    )
    f = sacct.parse_sacct_dump(text, since=since, until=until).set_index("job_id")
    assert sorted(f.index) == ["3", "4", "5", "6"]
    assert f.loc["3", "start_time"] == 600 and f.loc["3", "end_time"] == 1500
    assert f.loc["4", "start_time"] == 1800 and math.isnan(f.loc["4", "end_time"])
    assert math.isnan(f.loc["4", "duration"])
    assert math.isnan(f.loc["5", "start_time"]) and f.loc["5", "nodes"] == ()
    assert f.loc["6", "end_time"] == 1300 and math.isnan(f.loc["6", "start_time"])


def test_class_from_tag_else_config_rules():
    config = config_from_dict({"classes": {"by_qos": {"serve": "inference"},
                                           "by_partition": {"train": "training"}}})
    text = dump(
        row("1", "1", "1", "2", "3", "gn01", 1, qos="serve"),
        row("2", "2", "1", "2", "3", "gn01", 1, partition="train"),
        row("3", "3", "1", "2", "3", "gn01", 1, partition="train",
            admin="kant:workload=batch"),
        row("4", "4", "1", "2", "3", "gn01", 1, admin="kant:workload=nonsense"),
    )
    f = sacct.parse_sacct_dump(text, classify=make_classifier(config))
    assert list(f["job_class"]) == ["inference", "training", "batch", "batch"]
    assert list(f["class_source"]) == ["qos", "partition", "tag", "default"]


def test_block_reading_equals_whole_text():
    rows = [row(str(i), str(i), str(1000 + i), str(1010 + i), str(1100 + i), "gn01", 1)
            for i in range(1, 26)]
    whole = sacct.parse_sacct_dump(dump(*rows))
    blocks = sacct.read_sacct_dump(dump(*rows).splitlines(keepends=True), block=4)
    assert list(blocks["key"]) == list(whole["key"])


# --------------------------------------------------------------------------------------------
# running sacct in chunks (a recording runner stands in for Slurm)
# --------------------------------------------------------------------------------------------


def test_chunks_cover_the_window():
    assert accounting.chunk_bounds(0, 250, 100) == [(0, 100), (100, 200), (200, 250)]
    with pytest.raises(InputError, match="must be after"):
        accounting.chunk_bounds(10, 10, 5)


def test_read_in_chunks_counts_a_spanning_job_once(monkeypatch):
    calls = []
    spanning = row("9", "9", "50", "90", "250", "gn01", 2).replace("|", "\x00")
    replies = {
        0: [row("1", "1", "10", "20", "60", "gn02", 1), spanning],
        1: [spanning, row("2", "2", "120", "130", "170", "gn02", 1)],
        2: [spanning],
    }

    def runner(argv, timeout):
        calls.append(argv)
        k = len(calls) - 1
        return "\n".join(r.replace("\x00", "|") for r in replies[k]) + "\n"

    kept = []
    real_concat = accounting.pd.concat

    def concat(frames, **kw):  # what each chunk kept, before the final safety de-duplication
        kept.extend(len(f) for f in frames)
        return real_concat(frames, **kw)

    monkeypatch.setattr(accounting.pd, "concat", concat)
    f = accounting.read_sacct_chunks(0, 300, chunk_s=100, runner=runner, partition="gpu; rm -rf /")
    monkeypatch.undo()
    assert kept == [2, 1, 0]  # the spanning job only from its first chunk
    assert len(calls) == 3
    assert calls[0][:6] == ["sacct", "-a", "-X", "-D", "-P", "-n"]
    assert calls[0][-2:] == ["-r", "gpu; rm -rf /"]  # an argument, never a shell word
    assert sorted(f["job_id"]) == ["1", "2", "9"]
    span = f.set_index("job_id").loc["9"]
    assert span["start_time"] == 90 and span["end_time"] == 250


@pytest.mark.parametrize("text, expected", [
    ("now", 1_000_000.0), ("now-2h", 1_000_000.0 - 7200), ("now-3d", 1_000_000.0 - 259200),
    ("1700000000", 1_700_000_000.0),
])
def test_parse_when(text, expected):
    assert accounting.parse_when(text, "--since", now=1_000_000.0) == expected


def test_parse_when_rejects_garbage():
    with pytest.raises(InputError, match="--since 'last tuesday': expected"):
        accounting.parse_when("last tuesday", "--since")
