"""Traces with bad rows: infinite/NaN numbers (named by file, line and column), empty traces,
and SWF's status field (cancelled jobs that never ran are dropped and counted)."""

import pytest
from click.testing import CliRunner

from kant_slurm.cli import cli
from kant_slurm.errors import InputError
from kant_slurm.formats.traces import read_swf, read_trace

PHILLY_HEADER = "timestamp,duration,num_gpus,gpu_time,cluster"
OPENB_HEADER = ("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,"
                "creation_time,deletion_time,scheduled_time")
ALIBABA_HEADER = ("instance_sn,role,app_name,cpu_request,cpu_limit,gpu_request,gpu_limit,"
                  "memory_request,memory_limit,disk_request,disk_limit,rdma_request,rdma_limit,"
                  "max_instance_per_node,creation_time,scheduled_time,deletion_time")
SWF_OK = "1 0 5 100 4 -1 -1 4 200 -1 1 3 7 -1 1 -1 -1 -1"


def swf_line(**fields):
    """An SWF line from SWF_OK with some of its 18 fields replaced (by 1-based position)."""
    parts = SWF_OK.split()
    for pos, value in fields.items():
        parts[int(pos[1:]) - 1] = str(value)
    return " ".join(parts)


@pytest.mark.parametrize("name, fmt, text, where", [
    ("p.csv", "philly", f"{PHILLY_HEADER}\n2017-10-01 00:00:00,inf,1,1,a\n",
     "p.csv:2:2: field 'duration': expected a finite number, got 'inf'"),
    ("p.csv", "philly", f"{PHILLY_HEADER}\n2017-10-01 00:00:00,nan,1,1,a\n",
     "p.csv:2:2: field 'duration': expected a finite number, got 'nan'"),
    ("p.csv", "philly", f"{PHILLY_HEADER}\n2017-10-01 00:00:00,5,Infinity,1,a\n",
     "p.csv:2:3: field 'num_gpus': expected a finite number, got 'Infinity'"),
    ("w.swf", "swf", swf_line(f2="inf") + "\n",
     "w.swf:1:2: field 'submit_time': expected a finite number, got 'inf'"),
    ("w.swf", "swf", SWF_OK + "\n" + swf_line(f1=2, f4="NaN") + "\n",
     "w.swf:2:4: field 'run_time': expected a finite number, got 'NaN'"),
    ("w.swf", "swf", swf_line(f2="1e400") + "\n",
     "w.swf:1:2: field 'submit_time': expected a finite number, got '1e400'"),
    ("o.csv", "openb", f"{OPENB_HEADER}\np0,1000,100,1,1000,,LS,Running,inf,100,10\n",
     "o.csv:2:9: field 'creation_time': expected a finite number, got 'inf'"),
    ("o.csv", "openb", f"{OPENB_HEADER}\np0,1000,100,1,1000,,LS,Running,0,-inf,10\n",
     "o.csv:2:10: field 'deletion_time': expected a finite number, got '-inf'"),
    ("a.csv", "alibaba-inference",
     f"{ALIBABA_HEADER}\ni1,HN,app,8,8,1,1,25,25,40,40,100,100,2,nan,10,20\n",
     "a.csv:2:15: field 'creation_time': expected a finite number, got 'nan'"),
])
def test_infinite_or_nan_is_refused_with_file_line_column(tmp_path, name, fmt, text, where):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError) as exc:
        read_trace(path, fmt)
    assert str(exc.value) == f"{tmp_path}/{where}"


@pytest.mark.parametrize("name, fmt, text, expected", [
    ("p.csv", "philly", PHILLY_HEADER + "\n", "no job in the philly trace"),
    ("o.csv", "openb", OPENB_HEADER + "\n", "no job in the openb trace"),
    ("a.csv", "alibaba-inference", ALIBABA_HEADER + "\n", "no job in the alibaba-inference trace"),
    ("w.swf", "swf", "; Version: 2.2\n; Computer: none\n", "no job in the swf trace"),
    ("s.txt", "sacct", "JobID|JobIDRaw|Submit|Start|End|NodeList|AllocTRES|State\n",
     "no job in the sacct trace"),
    # Every job dropped: the message says why.
    ("w.swf", "swf", swf_line(f11=5, f4=0) + "\n",
     "no job in the swf trace (dropped 1 jobs cancelled before they ran"),
    ("o.csv", "openb", f"{OPENB_HEADER}\np1,1000,100,0,0,,BE,Running,5,50,5\n",
     "(dropped 1 CPU-only pods)"),
])
def test_empty_trace_is_an_error(tmp_path, name, fmt, text, expected):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError, match=r"expected at least one job") as exc:
        read_trace(path, fmt)
    assert expected in str(exc.value)


@pytest.mark.parametrize("status, run_time, kept", [
    (1, 100, True),    # completed
    (0, 100, True),    # failed after running: it held its processors
    (5, 100, True),    # cancelled while running: it held them too
    (5, 0, False),     # cancelled before it ran
    (5, -1, False),    # cancelled, run time unknown: never ran
    (1, -1, False),    # unknown run time: dropped as before, counted apart
])
def test_swf_status(tmp_path, status, run_time, kept):
    path = tmp_path / "w.swf"
    path.write_text(swf_line(f1=9) + "\n"  # job 9 is always kept: the trace is never empty
                    + swf_line(f11=status, f4=run_time) + "\n")
    trace = read_swf(path)
    assert ("1" in set(trace.jobs["job_id"])) is kept
    cancelled = [n for n in trace.notes if "cancelled before they ran" in n]
    unknown = [n for n in trace.notes if "unknown run time" in n]
    assert bool(cancelled) == (status == 5 and run_time <= 0)
    assert bool(unknown) == (status != 5 and run_time < 0)


def test_swf_counts_cancelled_jobs(tmp_path):
    path = tmp_path / "w.swf"
    lines = [swf_line(f1=k, f11=5, f4=0) for k in range(1, 4)] + [swf_line(f1=9)]
    path.write_text("\n".join(lines) + "\n")
    trace = read_swf(path)
    assert list(trace.jobs["job_id"]) == ["9"]
    assert "dropped 3 jobs cancelled before they ran (SWF status 5, run time <= 0)" in trace.notes


def test_simulate_names_the_bad_cell_in_one_line(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(f"{PHILLY_HEADER}\n2017-10-01 00:00:00,inf,1,1,a\n")
    res = CliRunner().invoke(cli, ["simulate", "--trace", str(path), "--trace-format", "philly"])
    assert res.exit_code == 1
    assert res.output == (f"error: {path}:2:2: field 'duration': expected a finite number, "
                          "got 'inf'\n")
