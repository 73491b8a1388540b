"""The README's commands that need a cluster run as written against the dev cluster, in README
order, in one shell (a command may use what an earlier one set, as ``$job``): each must exit 0
(tests/readme_commands.py says which commands these are; tests/unit/test_readme_commands.py
parses every command and runs the offline ones)."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from readme_commands import CLUSTER, how, kant_shim, readme_commands, work_dir

pytestmark = pytest.mark.slurm


def test_cluster_commands_run_as_written(slurm_clean, tmp_path):
    cluster = slurm_clean
    commands = [c for c in readme_commands() if how(c) and how(c)[0] == CLUSTER]
    assert commands
    env = kant_shim(tmp_path / "bin") | {"SLURM_CONF": str(cluster.conf_path)}
    # The README's `devcluster status` is this test's cluster (the directory and ports of the
    # test session come through the environment, as for every kant-slurm command).
    env["KANT_DEVCLUSTER_DIR"] = str(cluster.dir)
    script = ["set -euo pipefail"]
    for command in commands:
        script += [f"echo {shlex.quote('@@ ' + str(command))} >&2", command.text]
    try:
        res = subprocess.run(["bash", "-c", "\n".join(script)], cwd=work_dir(tmp_path / "work"),
                             env=env, capture_output=True, text=True, timeout=600)
    finally:
        cluster.run("scancel", "--full", "-u", "root", check=False)
    ran = [line[3:] for line in res.stderr.splitlines() if line.startswith("@@ ")]
    assert res.returncode == 0, (f"{ran[-1] if ran else '?'}: exit {res.returncode}:\n"
                                 f"{res.stderr[-3000:]}")
    assert ran == [str(c) for c in commands]
    assert "Traceback" not in res.stderr
