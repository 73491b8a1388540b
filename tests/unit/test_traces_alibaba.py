"""The Alibaba DLRM inference reader and the mixed training + inference workload (issue 8).

Expected values are read off the fixture rows by hand (tests/fixtures/alibaba-inference).
"""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kant_slurm.errors import InputError
from kant_slurm.sim.mixed import choose_apps, mix_workload, peak_concurrency, window_instances
from kant_slurm.formats.traces import Trace, guess_format, read_alibaba_inference, read_trace

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "alibaba-inference" / \
    "dlrm-inference-slice.csv"
INF = math.inf


def _jobs():
    return read_alibaba_inference(FIXTURE).jobs.set_index("job_id")


def test_reader_rows_times_and_caps():
    trace = read_alibaba_inference(FIXTURE)
    jobs = trace.jobs.set_index("job_id")
    assert len(jobs) == 12  # 14 rows, 2 CPU-only
    assert set(jobs["job_class"]) == {"inference"} and set(jobs["num_nodes"]) == {1}
    assert set(jobs["gpus"]) == {1}
    expect = {  # job: (submit, duration, cpus, service, cap)
        "instance_0": (0, INF, 12, "app_0", 8),  # running before and after the window
        "instance_2197": (0, INF, 8, "app_65", -1),
        "instance_2475": (0, 5227, 8, "app_23", 4),  # running before, deleted at 5227
        "instance_2488": (0, 16422, 12, "app_90", 2),
        "instance_7308": (4823, 16311.000000000002 - 4824, 8, "app_23", 4),  # from scheduled
        "instance_7503": (55612, INF, 8, "app_28", 2),  # created, never deleted
    }
    for jid, (sub, dur, cpus, app, cap) in expect.items():
        row = jobs.loc[jid]
        assert (row["submit_time"], row["duration"], row["cpus_per_node"], row["service"],
                row["max_per_node"]) == (sub, dur, cpus, app, cap), jid
    assert math.isnan(jobs.loc["instance_0", "time_limit"])
    assert list(trace.jobs["submit_time"]) == sorted(trace.jobs["submit_time"])
    assert trace.notes == [
        "dropped 2 CPU-only instances (role CN)",
        "6 instances were running when the trace window opened: they arrive at 0",
        "6 instances were still running when the window closed: they never end",
    ]


def test_format_guessed():
    assert guess_format(FIXTURE) == "alibaba-inference"
    assert len(read_trace(FIXTURE)) == 12


HEADER = FIXTURE.read_text().splitlines()[0]


@pytest.mark.parametrize("row, field", [
    ("i1,XN,app_1,8,8,1,1,25,25,40,40,100,100,2,,,", "'role'"),
    ("i1,HN,app_1,8,8,0,0,25,25,40,40,100,100,2,,,", "'gpu_request'"),
    ("i1,HN,app_1,eight,8,1,1,25,25,40,40,100,100,2,,,", "'cpu_request'"),
    ("i1,HN,app_1,8,8,1,1,25,25,40,40,100,100,0,,,", "'max_instance_per_node'"),
    ("i1,HN,,8,8,1,1,25,25,40,40,100,100,2,,,", "'app_name'"),
    ("i1,HN,app_1,8,8,1,1,25,25,40,40,100,100,2,10,5,20", "'scheduled_time'"),
    ("i1,HN,app_1,8,8,1,1,25,25,40,40,100,100,2,10,10,5", "'deletion_time'"),
    ("i1,HN,app_1,8,8,1,1,25,25,40,40,100,100,2,,10,20", "'creation_time'"),
    ("i1,HN,app_1,8,8,1,1,25,25,40,40,100,100,2,x,10,20", "'creation_time'"),
])
def test_malformed_rows_name_file_line_field(tmp_path, row, field):
    p = tmp_path / "bad trace.csv"
    p.write_text(f"{HEADER}\ni0,CN,app_1,8,8,0,0,1,1,40,40,100,100,-1,,,\n{row}\n")
    with pytest.raises(InputError) as exc:
        read_alibaba_inference(p)
    msg = str(exc.value)
    column = HEADER.split(",").index(field.strip("'")) + 1
    assert msg.startswith(f"{p}:3:{column}: field {field}"), msg


def test_missing_column(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("instance_sn,role,app_name\ni1,HN,a\n")
    with pytest.raises(InputError, match=r"t.csv:1: header lacks column 'cpu_request'"):
        read_alibaba_inference(p)


def test_window_alignment_by_hand():
    jobs = read_alibaba_inference(FIXTURE).jobs
    w = window_instances(jobs, offset=4000, span=1000).set_index("job_id")
    # alive at 4000 -> submit 0 with what is left; created in (4000, 5000] -> shifted by 4000
    assert w.loc["instance_7300", ["submit_time", "duration"]].tolist() == pytest.approx(
        [0, 3973.0000000000005 + (5647 - 3973.0000000000005) - 4000])
    assert w.loc["instance_2475", ["submit_time", "duration"]].tolist() == [0, 1227]
    assert w.loc["instance_7302", ["submit_time", "duration"]].tolist() == pytest.approx(
        [12.0000000000005, 5965 - 4012.0000000000005])
    assert w.loc["instance_7308", ["submit_time", "duration"]].tolist() == pytest.approx(
        [823, 11487])
    assert w.loc["instance_0", "duration"] == INF
    assert "instance_7503" not in w.index  # created at 55612, after the window


def test_peak_concurrency():
    grid = np.array([0.0, 10, 20, 30])
    held = peak_concurrency(np.array([0.0, 10, 25]), np.array([20.0, INF, 5]),
                            np.array([1.0, 2, 4]), grid)
    # t=0: a; 10: a+b; 20: b (a ended at 20); 30: b (c ended at 30)
    assert held.tolist() == [1, 3, 2, 2]


def _apps_frame():
    rows = [("a1", "A", 0, INF), ("a2", "A", 0, INF),  # 2 GPUs all the time, no arrival
            ("b1", "B", 10, 5),  # 1 GPU over [10, 15)
            ("c1", "C", 20, 100), ("c2", "C", 20, 100), ("c3", "C", 30, 100)]  # 3 from 30
    return pd.DataFrame({"job_id": [r[0] for r in rows], "service": [r[1] for r in rows],
                         "submit_time": [float(r[2]) for r in rows],
                         "duration": [float(r[3]) for r in rows], "gpus": [1] * len(rows)})


@pytest.mark.parametrize("budget, apps, peak", [
    (2, {"B"}, 1),  # C (3) never fits; A would make 3 with B
    (4, {"B", "C"}, 3),  # B and C never overlap; A would make 5
    (5, {"A", "B", "C"}, 5),
])
def test_choose_apps_by_budget(budget, apps, peak):
    chosen, got = choose_apps(_apps_frame(), budget, seed=0, span=200)
    assert set(chosen) == apps and got == peak


def test_choose_apps_seeded_and_arrivals_first():
    first, _ = choose_apps(_apps_frame(), 100, seed=1, span=200)
    assert first[-1] == "A"  # the app without arrivals comes last
    assert choose_apps(_apps_frame(), 100, seed=1, span=200)[0] == first


def _training(n=3, span=5000.0):
    df = pd.DataFrame({
        "job_id": [str(i + 1) for i in range(n)],
        "submit_time": np.linspace(0, span, n), "duration": [100.0] * n, "gpus": [8] * n,
        "num_nodes": [0] * n, "time_limit": [np.nan] * n, "job_class": ["training"] * n,
        "user": [""] * n, "account": ["vc"] * n, "partition": [""] * n, "name": [""] * n,
        "line": list(range(2, n + 2)),
    })
    return Trace(jobs=df, source="philly.csv", fmt="philly", notes=["training note"])


def test_mix_workload_columns_and_notes():
    inf = read_alibaba_inference(FIXTURE)
    mixed = mix_workload(_training(), inf, cluster_gpus=100, share=1.0, seed=0, offset=0)
    jobs = mixed.jobs
    # window [0, 5000]: the 6 instances running at 0 and 7300, 7301, 7302, 7308 created in it
    # (apps app_0, app_65, app_23, app_90; all 10 alive at 4823)
    assert (jobs["job_class"] == "inference").sum() == 10
    assert (jobs["job_class"] == "training").sum() == 3
    assert list(jobs["submit_time"]) == sorted(jobs["submit_time"])
    train = jobs[jobs["job_class"] == "training"]
    assert set(train["service"]) == {""} and set(train["max_per_node"]) == {-1}
    assert set(train["cpus_per_node"]) == {0}
    assert mixed.notes[0] == "training note"
    assert mixed.notes[-1].startswith("inference: 4 of 4 apps in the window (seed 0")
    assert "10 instances (6 serving when the window opens, 4 arriving), peak 10 GPUs" \
        in mixed.notes[-1]


def test_mix_workload_bad_options():
    inf = read_alibaba_inference(FIXTURE)
    with pytest.raises(InputError, match="--inference-share"):
        mix_workload(_training(), inf, 100, share=0)
    with pytest.raises(InputError, match="--inference-offset"):
        mix_workload(_training(), inf, 100, offset=-1)
    with pytest.raises(InputError, match="not an inference-service trace"):
        mix_workload(_training(), _training(), 100)


def test_gzipped_trace_reads_the_same_and_a_truncated_one_is_named(tmp_path):
    import gzip

    gz = tmp_path / "slice.csv.gz"
    gz.write_bytes(gzip.compress(FIXTURE.read_bytes()))
    plain = read_alibaba_inference(FIXTURE).jobs
    pd.testing.assert_frame_equal(read_alibaba_inference(gz).jobs, plain)
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(gz.read_bytes()[:40])
    with pytest.raises(InputError, match=r"cut\.csv\.gz: cannot read trace \(not a complete gzip"):
        read_alibaba_inference(cut)


def test_bundled_trace_is_the_shared_one():
    # The package ships the whole Alibaba trace gzipped, so the README's mixed run works from a
    # fresh clone: 23,871 instances, 7,386 of them GPU instances (shared/traces/README.md).
    bundled = Path(__file__).resolve().parents[2] / "kant_slurm" / "data" / "traces" / \
        "alibaba-dlrm-inference-2025.csv.gz"
    jobs = read_alibaba_inference(bundled).jobs
    assert len(jobs) == 7386 and jobs["service"].nunique() > 100
