"""Rendered job scripts: golden files, bash -n and shellcheck, and hostile values run for real.

The scripts are executed by bash here with small stand-ins for srun, scontrol and scancel on
PATH (they run the command once per node, and record requeues and signals), so the quoting is
checked by what the program actually receives, not by string matching. The same scripts run
under the real Slurm in tests/integration/test_jobscript_cluster.py.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from kant_slurm.cli import cli
from kant_slurm.errors import TemplateError
from kant_slurm.jobscript import list_templates, render

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "templates"
REGEN = "KANT_REGEN_GOLDEN=1 python -m pytest -q tests/unit/test_jobscript_render.py -k golden"

# Words that would do something if a shell ever read them as code.
HOSTILE = [
    "it's", 'say "hi"', "a;b", "$(touch CANARY1)", "`touch CANARY2`", "x\ny",
    "/path with spaces/ckpt", "$HOME", "${IFS}", "*", "", "\\", "'\"'", "\ttab", "&& touch CANARY3",
    "|", ">CANARY4", "--lr=1e-4",
]


def _values(name: str) -> dict:
    return yaml.safe_load((GOLDEN / f"{name}.values.yaml").read_text())


@pytest.mark.parametrize("name", ["training", "inference-service"])
def test_golden(name):
    """Each template has one golden file; a change shows the diff and how to regenerate."""
    rendered = render(name, [("golden values", _values(name))])
    golden = GOLDEN / f"{name}.sh"
    if os.environ.get("KANT_REGEN_GOLDEN") == "1":
        golden.write_text(rendered)
    expected = golden.read_text() if golden.exists() else ""
    if rendered != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), rendered.splitlines(True),
                                            str(golden), "rendered"))
        pytest.fail(f"{name} renders differently from its golden file:\n{diff}\n"
                    f"If the change is intended, regenerate with:\n  {REGEN}")


def test_every_template_has_a_golden_file():
    names = {t.name for t in list_templates()}
    assert names == {"training", "inference-service"}
    for name in names:
        assert (GOLDEN / f"{name}.sh").is_file() and (GOLDEN / f"{name}.values.yaml").is_file()


TRAINING_MIN = {"program": ["train.py"], "time": "60"}
INFER_MIN = {"service": "chat", "command": ["serve"], "port": 8000}

VARIANTS = [
    ("training", TRAINING_MIN),
    ("training", {**TRAINING_MIN, "launcher": "deepspeed", "tag": "spank", "est_runtime": "30",
                  "requeue": False, "checkpoint_signal": "none", "rdzv_port": 29500}),
    ("training", {**TRAINING_MIN, "launcher": "command", "tag": "none", "gpus_per_node": 0,
                  "program": HOSTILE, "env": {f"V{i}": h for i, h in enumerate(HOSTILE)},
                  "checkpoint_command": HOSTILE, "workdir": "/tmp/a dir/it's \"q\"",
                  "output": "/logs/a b/%x-%j.out", "container_image": "img:1;rm -rf /",
                  "container_mounts": "/a b:/c,$(x):/y", "container_workdir": "`w`"}),
    ("training", "golden"),
    ("inference-service", INFER_MIN),
    ("inference-service", {**INFER_MIN, "tag": "spank", "time": "UNLIMITED",
                           "command": HOSTILE, "drain_command": HOSTILE,
                           "env": {f"V{i}": h for i, h in enumerate(HOSTILE)},
                           "container_image": "a b", "workdir": "/x y"}),
    ("inference-service", "golden"),
]


@pytest.mark.parametrize("name,values", VARIANTS)
def test_bash_n_and_shellcheck_accept(name, values, tmp_path):
    values = _values(name) if values == "golden" else values
    script = tmp_path / "job.sh"
    script.write_text(render(name, [("test", values)]))
    subprocess.run(["bash", "-n", str(script)], check=True)
    proc = subprocess.run(["shellcheck", "--shell=bash", str(script)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_sbatch_lines_quote_or_refuse():
    text = render("training", [("t", {**TRAINING_MIN, "output": 'o "q" \\ #x/%j.out'})])
    assert '#SBATCH --output="o \\"q\\" \\\\ #x/%j.out"' in text
    with pytest.raises(TemplateError, match="sbatch reads one directive per line"):
        render("training", [("t", {**TRAINING_MIN, "workdir": "/a\n#SBATCH --uid=0"})])
    with pytest.raises(TemplateError, match="packjob"):
        render("training", [("t", {**TRAINING_MIN, "output": "packjob.out"})])


# ---------------------------------------------------------------------------------------------
# Running the rendered scripts with stand-in Slurm commands
# ---------------------------------------------------------------------------------------------

RECORDER = textwrap.dedent("""\
    #!{python}
    # Records its argv and the rendezvous environment into $RECORD_DIR/node-$NODE_RANK.json.
    import json, os, sys
    keys = [k for k in os.environ if k.startswith(("MASTER_", "NODE_RANK", "WORLD_SIZE", "NNODES",
            "NPROC_PER_NODE", "GPUS_PER_NODE", "NCCL_", "V", "PORT", "KANT_"))]
    path = os.path.join(os.environ["RECORD_DIR"], "node-%s.json" % os.environ.get("NODE_RANK", "x"))
    with open(path, "w") as f:
        json.dump({{"argv": sys.argv[1:], "env": {{k: os.environ[k] for k in keys}}}}, f)
    """)

SRUN = textwrap.dedent("""\
    #!/bin/bash
    # Stand-in srun: skip srun's own options, run the command once per node (SLURM_NODEID).
    while [[ $# -gt 0 && $1 == --* ]]; do shift; done
    echo "$$" > "$RECORD_DIR/srun.pid"
    # One node: become the task, so signals sent to "srun" reach it (the real srun forwards them).
    if [[ ${SLURM_JOB_NUM_NODES:-1} == 1 ]]; then SLURM_NODEID=0 exec "$@"; fi
    status=0
    for ((node = 0; node < ${SLURM_JOB_NUM_NODES:-1}; node++)); do
      SLURM_NODEID=$node "$@" || status=$?
    done
    exit $status
    """)

SCONTROL = textwrap.dedent("""\
    #!/bin/bash
    # Stand-in scontrol: node names of the allocation; record requeues.
    if [[ $1 == show && $2 == hostnames ]]; then printf 'gn01\\ngn02\\n'; exit 0; fi
    echo "$*" >> "$RECORD_DIR/scontrol.log"
    """)

SCANCEL = textwrap.dedent("""\
    #!/bin/bash
    # Stand-in scancel --signal=SIG JOB: signal the children of the stand-in srun.
    echo "$*" >> "$RECORD_DIR/scancel.log"
    sig=${1#--signal=}
    pid=$(cat "$RECORD_DIR/srun.pid")
    kill -"$sig" "$pid" 2>/dev/null || pkill -"$sig" -P "$pid"
    """)


@pytest.fixture
def stubs(tmp_path):
    """A bin dir with stand-in srun/scontrol/scancel/recorder and the job's environment."""
    bin_dir = tmp_path / "bin"
    rec = tmp_path / "rec"
    bin_dir.mkdir()
    rec.mkdir()
    for name, text in [("srun", SRUN), ("scontrol", SCONTROL), ("scancel", SCANCEL),
                       ("recorder", RECORDER.format(python=sys.executable))]:
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "RECORD_DIR": str(rec),
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NODELIST": "gn[01-02]",
        "SLURM_JOB_NUM_NODES": "2",
        "HOME": str(tmp_path / "home"),
    }
    return {"bin": bin_dir, "rec": rec, "env": env, "cwd": tmp_path}


def _no_canaries(where: Path):
    assert not list(where.rglob("CANARY*")), "a hostile value was executed"


def test_training_runs_with_hostile_values_literal(stubs):
    script = stubs["cwd"] / "train.sh"
    script.write_text(render("training", [("t", {
        **TRAINING_MIN, "launcher_bin": str(stubs["bin"] / "recorder"), "program": HOSTILE,
        "env": {f"V{i}": h for i, h in enumerate(HOSTILE)}, "job_name": "t"})]))
    proc = subprocess.run(["bash", str(script)], env=stubs["env"], cwd=stubs["cwd"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for rank in (0, 1):
        rec = json.loads((stubs["rec"] / f"node-{rank}.json").read_text())
        assert rec["argv"] == [
            "--nnodes=2", "--nproc-per-node=8", "--rdzv-backend=c10d",
            "--rdzv-endpoint=gn01:24242",  # 20000 + 4242 % 20000
            "--rdzv-id=4242", f"--node-rank={rank}", *HOSTILE]
        env = rec["env"]
        assert (env["MASTER_ADDR"], env["MASTER_PORT"], env["NODE_RANK"], env["WORLD_SIZE"]) == \
            ("gn01", "24242", str(rank), "16")
        assert [env[f"V{i}"] for i in range(len(HOSTILE))] == HOSTILE
    _no_canaries(stubs["cwd"])


def test_training_usr1_checkpoints_then_requeues(stubs):
    """USR1 (the time-limit warning): signal the step, run the checkpoint command, requeue."""
    worker = stubs["bin"] / "worker"
    worker.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import os, signal, sys, time
        def save(sig, frame):
            open(os.path.join(os.environ["RECORD_DIR"], "saved-%s" % os.environ["NODE_RANK"]),
                 "w").close()
            sys.exit(0)
        signal.signal(signal.SIGUSR2, save)
        open(os.path.join(os.environ["RECORD_DIR"], "ready"), "w").close()
        time.sleep(60)
        """))
    worker.chmod(0o755)
    script = stubs["cwd"] / "train.sh"
    script.write_text(render("training", [("t", {
        **TRAINING_MIN, "launcher": "command", "program": [str(worker)],
        "checkpoint_command": [str(stubs["bin"] / "recorder"), "ckpt;$(touch CANARY5)"],
        "checkpoint_wait": 10})]))
    env = {**stubs["env"], "SLURM_JOB_NUM_NODES": "1", "NODE_RANK": "ckpt"}
    job = subprocess.Popen(["bash", str(script)], env=env, cwd=stubs["cwd"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: (stubs["rec"] / "ready").exists(), 20)
    job.send_signal(signal.SIGUSR1)
    out, err = job.communicate(timeout=30)
    assert (stubs["rec"] / "saved-0").exists(), err  # the step got USR2 and saved
    assert json.loads((stubs["rec"] / "node-ckpt.json").read_text())["argv"] == \
        ["ckpt;$(touch CANARY5)"]
    assert (stubs["rec"] / "scancel.log").read_text().split() == ["--signal=USR2", "4242"]
    assert (stubs["rec"] / "scontrol.log").read_text().split() == ["requeue", "4242"]
    _no_canaries(stubs["cwd"])


def _wait_for(predicate, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {seconds}s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SERVER = textwrap.dedent("""\
    #!{python}
    # A tiny health server that records its argv, environment and pid.
    import http.server, json, os, sys
    with open(os.path.join(os.environ["RECORD_DIR"], "server.json"), "w") as f:
        json.dump({{"argv": sys.argv[1:], "pid": os.getpid(),
                    "env": {{k: v for k, v in os.environ.items()
                             if k[:1] == "V" or k == "PORT"}}}}, f)
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
        def log_message(self, *a):
            pass
    http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
    """)


def _inference(stubs, **values):
    server = stubs["bin"] / "server"
    server.write_text(SERVER.format(python=sys.executable))
    server.chmod(0o755)
    script = stubs["cwd"] / "serve.sh"
    script.write_text(render("inference-service", [("t", {
        "service": "chat", "command": [str(server), *HOSTILE], "port": _free_port(),
        "health_interval": 1, "health_failures": 2, "startup_timeout": 20,
        "env": {f"V{i}": h for i, h in enumerate(HOSTILE)}, **values})]))
    env = {**stubs["env"], "SLURM_JOB_NUM_NODES": "1"}
    return subprocess.Popen(["bash", str(script)], env=env, cwd=stubs["cwd"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_inference_healthy_then_server_killed_requeues(stubs):
    job = _inference(stubs)
    record = stubs["rec"] / "server.json"
    _wait_for(record.exists, 20)
    time.sleep(2.5)  # a few health checks pass
    assert job.poll() is None, job.stderr.read()
    rec = json.loads(record.read_text())
    assert rec["argv"] == HOSTILE
    assert [rec["env"][f"V{i}"] for i in range(len(HOSTILE))] == HOSTILE
    os.kill(rec["pid"], signal.SIGKILL)
    out, err = job.communicate(timeout=30)
    assert job.returncode == 1
    assert "healthy: http://127.0.0.1:" in err
    assert "chat exited (status 137); requeueing (restart 1 of at most 10)" in err
    assert (stubs["rec"] / "scontrol.log").read_text().split() == ["requeue", "4242"]
    _no_canaries(stubs["cwd"])


def test_inference_gives_up_after_max_restarts(stubs):
    stubs["env"]["SLURM_RESTART_COUNT"] = "2"
    job = _inference(stubs, max_restarts=2, health_path="/nothing-here", startup_timeout=3)
    out, err = job.communicate(timeout=60)
    assert job.returncode == 1
    assert "chat is unhealthy" in err or "no healthy answer" in err
    assert "giving up" in err
    assert not (stubs["rec"] / "scontrol.log").exists()


def test_inference_term_drains_and_exits(stubs):
    job = _inference(stubs, drain_command=[str(stubs["bin"] / "recorder"), "drain $(x)"])
    _wait_for((stubs["rec"] / "server.json").exists, 20)
    time.sleep(1.5)
    job.send_signal(signal.SIGTERM)
    out, err = job.communicate(timeout=30)
    assert job.returncode == 143, err
    assert json.loads((stubs["rec"] / "node-x.json").read_text())["argv"] == ["drain $(x)"]
    pid = json.loads((stubs["rec"] / "server.json").read_text())["pid"]
    _wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10)  # the server got TERM and left
    assert not (stubs["rec"] / "scontrol.log").exists()  # cancel/preempt: Slurm decides


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def test_cli_templates_lists_parameters():
    res = CliRunner().invoke(cli, ["templates", "--json"])
    assert res.exit_code == 0, res.output
    data = {t["name"]: t for t in json.loads(res.output)}
    train = {p["name"]: p for p in data["training"]["parameters"]}
    assert train["nodes"]["default"] == "2" and train["time"]["required"] is True
    assert train["launcher"]["choices"] == ["torchrun", "deepspeed", "command"]
    res = CliRunner().invoke(cli, ["templates"])
    assert "inference-service:" in res.output and "health_path" in res.output


def test_cli_render_error_is_one_line_with_keys():
    res = CliRunner().invoke(cli, ["render", "training", "--set", "nodez=2"])
    assert res.exit_code == 1
    assert "unknown parameter 'nodez'" in res.output and "gpus_per_node=8" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["render", "nope"])
    assert "unknown template 'nope'; known templates: inference-service, training" in res.output


def test_cli_render_and_submit_dry_run(tmp_path):
    values = tmp_path / "v.yaml"
    values.write_text("service: chat\nport: 8000\ncommand: [serve, --port, '8000']\n")
    res = CliRunner().invoke(cli, ["render", "inference-service", "--values", str(values),
                                   "--set", "gpus=2"])
    assert res.exit_code == 0, res.output
    assert "#SBATCH --gres=gpu:2" in res.output and "server=(serve --port 8000)" in res.output
    res = CliRunner().invoke(cli, ["submit", "inference-service", "--values", str(values),
                                   "--dry-run", "--sbatch-arg=--hold"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("# sbatch --parsable --hold < script\n#!/bin/bash\n")


def test_no_shellcheck_means_failure_not_skip():
    assert shutil.which("shellcheck"), "shellcheck is required (Debian package shellcheck)"
