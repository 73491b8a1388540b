"""Backend choice (pyslurm only when it matches Slurm) and how command failures are reported."""

import subprocess
import sys
import types

import pytest

from kant_slurm.errors import SlurmError, SlurmUnreachable
from kant_slurm.slurm import backend


@pytest.mark.parametrize("pyslurm_version, slurm, chosen", [
    ("25.11.0", (22, 5), "slurm-cli"),
    ("22.5.1", (22, 5), "pyslurm"),
    ("", (22, 5), "slurm-cli"),
    ("22.5.1", None, "slurm-cli"),
])
def test_pyslurm_only_when_major_minor_match(monkeypatch, caplog, pyslurm_version, slurm, chosen):
    monkeypatch.setitem(sys.modules, "pyslurm", types.SimpleNamespace(__version__=pyslurm_version))
    monkeypatch.setattr(backend, "slurm_version", lambda: slurm)
    assert backend.select_backend().name == chosen
    if chosen == "slurm-cli":
        assert "using the Slurm CLI" in caplog.text


def test_no_pyslurm_means_cli(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyslurm", None)  # import raises ImportError
    assert backend.select_backend().name == "slurm-cli"


def _fake_run(returncode, stderr="", stdout=""):
    def run(argv, **kwargs):
        return subprocess.CompletedProcess(argv, returncode, stdout, stderr)
    return run


def test_controller_down_is_unreachable(monkeypatch):
    monkeypatch.setattr(backend.subprocess, "run", _fake_run(
        1, "slurm_load_node error: Unable to contact slurm controller (connect failure)\n"))
    with pytest.raises(SlurmUnreachable,
                       match="slurmctld does not answer `scontrol show node`") as err:
        backend.run_slurm(["scontrol", "show", "node"])
    assert err.value.exit_code == 3  # issue 19: 3 = Slurm not answering, 2 = usage


def test_other_failures_are_slurm_errors_naming_the_command(monkeypatch):
    monkeypatch.setattr(backend.subprocess, "run",
                        _fake_run(1, "scontrol: error: Invalid job id\n"))
    with pytest.raises(SlurmError, match="scontrol show job 99") as err:
        backend.run_slurm(["scontrol", "show", "job", "99"])
    assert not isinstance(err.value, SlurmUnreachable)


def test_json_errors_are_reported(monkeypatch):
    monkeypatch.setattr(backend.subprocess, "run",
                        _fake_run(0, stdout='{"errors": [{"error": "boom"}]}'))
    with pytest.raises(SlurmError, match="boom"):
        backend._json(["squeue", "--json"])
    monkeypatch.setattr(backend.subprocess, "run", _fake_run(0, stdout="not json"))
    with pytest.raises(SlurmError, match="not JSON"):
        backend._json(["squeue", "--json"])


PING_DOWN = ("Slurmctld(primary) at vm is DOWN\n*****************************************\n"
             "** RESTORE SLURMCTLD DAEMON TO SERVICE **\n"
             "*****************************************\n")


@pytest.mark.parametrize("returncode, stdout, stderr, raises", [
    (0, "Slurmctld(primary) at vm is UP\n", "", False),
    (0, "Slurmctld(primary) at a is DOWN\nSlurmctld(backup) at b is UP\n", "", False),
    (1, PING_DOWN, "", True),
    (1, "", "scontrol: error: Could not establish a configuration source\n", True),
    (0, "a reply in another form\n", "", False),  # the reads that follow decide
])
def test_ping_fails_fast_only_when_no_controller_is_up(monkeypatch, returncode, stdout, stderr,
                                                       raises):
    monkeypatch.setattr(backend.subprocess, "run", _fake_run(returncode, stderr, stdout))
    if not raises:
        backend.check_controller()
        return
    with pytest.raises(SlurmUnreachable, match="slurmctld does not answer `scontrol ping`") as err:
        backend.check_controller()
    assert err.value.exit_code == 3 and "\n" not in str(err.value)
    if stdout:
        assert str(err.value).endswith(
            "Unable to contact slurm controller (Slurmctld(primary) at vm is DOWN)")
