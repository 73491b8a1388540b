"""The bundled example programs of the job-script templates (kant_slurm/examples), run as the
templates run them: as ``python3 -m kant_slurm.examples.NAME`` processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kant_slurm.examples import toy_train

REPO = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NODE_RANK", "KANT_CHECKPOINT_INTERVAL", "KANT_CHECKPOINT_DIR", "PORT")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env | extra


def train(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kant_slurm.examples.toy_train", *args],
                          env=env or _env(), capture_output=True, text=True, timeout=60, **kw)


def checkpoint(directory: Path) -> dict:
    return json.loads((directory / toy_train.CHECKPOINT).read_text())


def test_train_runs_to_the_end_and_learns(tmp_path):
    ckpt = tmp_path / "ckpt"
    res = train("--steps", "2000", "--step-seconds", "0", "--checkpoint-dir", str(ckpt))
    assert res.returncode == 0, res.stderr
    state = checkpoint(ckpt)
    assert state["step"] == 2000
    # The fit finds the line the data were drawn from (noise sd 0.1, so within a few tenths).
    assert abs(state["a"] - toy_train.TRUE_A) < 0.3 and abs(state["b"] - toy_train.TRUE_B) < 0.3
    assert "starting at step 0 of 2000" in res.stdout and "done, 2000 steps" in res.stdout


def test_train_resumes_from_its_checkpoint(tmp_path):
    ckpt = tmp_path / "ckpt"
    whole = train("--steps", "120", "--step-seconds", "0", "--checkpoint-dir", str(tmp_path / "w"))
    first = train("--steps", "50", "--step-seconds", "0", "--checkpoint-dir", str(ckpt))
    assert first.returncode == 0 and checkpoint(ckpt)["step"] == 50
    second = train("--steps", "120", "--step-seconds", "0", "--checkpoint-dir", str(ckpt))
    assert second.returncode == 0, second.stderr
    assert "resumed from step 50 of 120" in second.stdout
    # Resuming gives the very weights of an uninterrupted run: the work was not redone or lost.
    assert checkpoint(ckpt) == checkpoint(tmp_path / "w") and whole.returncode == 0


@pytest.mark.parametrize("signum, code", [(signal.SIGUSR2, 0), (signal.SIGTERM, 143)])
def test_train_saves_on_the_checkpoint_signal_and_exits(tmp_path, signum, code):
    ckpt = tmp_path / "ckpt"
    proc = subprocess.Popen([sys.executable, "-m", "kant_slurm.examples.toy_train", "--steps",
                             "100000", "--step-seconds", "0.01", "--checkpoint-every", "100000",
                             "--checkpoint-dir", str(ckpt)], env=_env(), stdout=subprocess.PIPE,
                            text=True)
    assert "starting at step 0" in proc.stdout.readline()
    time.sleep(0.5)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == code
    step = checkpoint(ckpt)["step"]
    assert 0 < step < 100000 and f"checkpoint at step {step} (signal)" in out


def test_only_rank_0_writes_the_checkpoint(tmp_path):
    res = train("--steps", "10", "--step-seconds", "0", "--checkpoint-dir", str(tmp_path),
                env=_env(NODE_RANK="1"))
    assert res.returncode == 0 and not (tmp_path / toy_train.CHECKPOINT).exists()


def test_checkpoint_interval_from_the_template(tmp_path):
    # KANT_CHECKPOINT_INTERVAL (seconds, exported by the template) over --step-seconds steps.
    res = train("--steps", "10", "--step-seconds", "0.01", "--checkpoint-dir", str(tmp_path),
                env=_env(KANT_CHECKPOINT_INTERVAL="0.04"))
    saved = [line for line in res.stdout.splitlines() if "every 4 steps" in line]
    assert [line.split("checkpoint at step ")[1].split()[0] for line in saved] == ["4", "8"]


def test_unreadable_checkpoint_is_one_line(tmp_path):
    (tmp_path / toy_train.CHECKPOINT).write_text("{not json")
    res = train("--steps", "10", "--checkpoint-dir", str(tmp_path))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip().startswith(f"toy_train: checkpoint {tmp_path / toy_train.CHECKPOINT}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture()
def server():
    """Start the toy server with the given arguments; yields (process, base URL)."""
    procs = []

    def start(*args: str):
        port = _free_port()
        proc = subprocess.Popen([sys.executable, "-m", "kant_slurm.examples.toy_server", "--port",
                                 str(port), *args], env=_env(), stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        assert "listening on" in proc.stderr.readline()
        return proc, f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_server_health_and_generate(server):
    proc, url = server()
    assert _get(url + "/health") == (200, {"status": "ok"})
    assert _get(url + "/generate?prompt=one+two+three")[1]["completion"] == "three two one"
    req = urllib.request.Request(url + "/generate", data=b"a b", method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert json.loads(r.read())["completion"] == "b a"
    assert _get(url + "/nothing")[0] == 404


def test_server_turns_unhealthy_after_healthy_for(server):
    proc, url = server("--healthy-for", "0.5")
    assert _get(url + "/health")[0] == 200
    time.sleep(0.7)
    status, body = _get(url + "/health")
    assert status == 503 and body["status"] == "unhealthy"


def test_server_exits_0_on_term(server):
    proc, url = server()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def test_server_on_a_busy_port_is_one_line():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = subprocess.run([sys.executable, "-m", "kant_slurm.examples.toy_server", "--port",
                              str(port)], env=_env(), capture_output=True, text=True, timeout=30)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip().startswith(f"toy_server: cannot listen on 127.0.0.1:{port}")
