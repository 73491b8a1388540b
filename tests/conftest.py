"""Shared fixtures: a real local Slurm GPU cluster for tests marked ``slurm``.

``slurm_cluster`` (session) brings the dev cluster up once: directory ``$KANT_DEVCLUSTER_DIR``
(else a fresh temporary one), port base ``$KANT_DEVCLUSTER_PORT_BASE`` (else 16800). Two test
sessions with different directories and port bases run side by side. If the cluster cannot
start, the test FAILS: Slurm tests never skip. ``slurm_clean`` (function) cancels every job and
waits for idle nodes so each test starts from an empty cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kant_slurm import devcluster as dc
from kant_slurm.devcluster import chroot
from kant_slurm.errors import KantError


def wait_for(what: str, check, timeout: float, every: float = 1.0):
    """Poll ``check()`` until it returns something true (returned), for at most ``timeout``
    seconds; then fail naming ``what``. Tests import it (``from conftest import wait_for``):
    pytest puts this folder on sys.path for its root conftest."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:.0f}s")


@dataclass
class SlurmCluster:
    """A running dev cluster as tests see it."""

    dir: Path
    conf_path: Path
    spec: dc.DevClusterSpec
    started_here: bool
    paths: dc.DevClusterPaths = field(repr=False, default=None)  # type: ignore[assignment]

    @property
    def nodes(self) -> list[str]:
        return self.spec.node_names

    @property
    def port_base(self) -> int:
        return self.spec.port_base

    @property
    def env(self) -> dict[str, str]:
        """os.environ with SLURM_CONF pointing at this cluster (for subprocesses)."""
        return dict(os.environ, SLURM_CONF=str(self.conf_path))

    def run(self, *argv: str, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a Slurm command against this cluster."""
        res = subprocess.run(list(argv), env=self.env, capture_output=True, text=True,
                             timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({res.returncode}): "
                                 f"{res.stderr.strip()}")
        return res

    def sbatch(self, *args: str) -> str:
        """Submit a batch job; return its id."""
        out = self.run("sbatch", "--parsable", "--output=/dev/null", "--chdir=/tmp", *args).stdout
        return out.strip().split(";")[0]

    def node_weights(self) -> dict[str, int]:
        """Each node's current Weight, as sinfo shows it."""
        out = self.run("sinfo", "-h", "-N", "-o", "%N %w").stdout
        return {n: int(w) for n, w in (line.split() for line in out.splitlines())}

    def site_factors(self) -> dict[str, int]:
        """Each eligible pending job's SiteFactor, as sprio shows it."""
        from kant_slurm.formats.slurm_jobs import parse_sprio_site

        return parse_sprio_site(self.run("sprio", "-h", "-o", "%i %S").stdout)

    def cancel_all(self, timeout: float = 60) -> None:
        """Cancel every job and wait until none is left and every node is idle."""
        self.run("scancel", "--full", "-u", "root", check=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = self.run("squeue", "-h", "-o", "%i", check=False).stdout.split()
            states = dc.node_states(self.conf_path)
            if not left and states and all(s == "idle" for s in states.values()):
                return
            if left:
                self.run("scancel", "--full", *left, check=False)
            time.sleep(0.5)
        raise AssertionError(f"cluster in {self.dir} not idle {timeout:.0f}s after scancel")

    def wait_running(self, job_ids, timeout: float = 60) -> None:
        """Wait until every job in ``job_ids`` runs."""
        deadline = time.monotonic() + timeout
        want = set(job_ids)
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            out = self.run("squeue", "-h", "-o", "%i %T", check=False).stdout
            states = dict(line.split() for line in out.splitlines() if line.strip())
            if all(states.get(j) == "RUNNING" for j in want):
                return
            time.sleep(0.5)
        raise AssertionError(f"jobs not running after {timeout:.0f}s: {states}")


def _slurm_under_test() -> str:
    """The Slurm under test: $KANT_TEST_SLURM_VERSION, else the one installed here. The tests run
    Slurm's client commands themselves, so a newer release is tested from inside its root
    (`bash .ci/test.sh --slurm-version 24.11 -m slurm`), where it is the installed one."""
    version = (os.environ.get("KANT_TEST_SLURM_VERSION") or chroot.local_slurm_version()
               or chroot.DEFAULT_VERSION)
    try:
        if chroot.needs_root(version):
            pytest.fail(f"Slurm {version} is not the Slurm installed here: run the Slurm tests "
                        "inside its root with "
                        f"`bash .ci/test.sh --slurm-version {version} -m slurm`",
                        pytrace=False)
    except KantError as exc:
        pytest.fail(f"KANT_TEST_SLURM_VERSION: {exc}", pytrace=False)
    return version


@contextlib.contextmanager
def _slurm_conf(path: Path):
    """SLURM_CONF points at ``path`` inside the block, as before after it."""
    old_conf = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(path)
    try:
        yield
    finally:
        if old_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old_conf


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """The dev cluster, up once per session; torn down at the end if this session started it."""
    directory = Path(os.environ.get(dc.DIR_ENV) or tmp_path_factory.mktemp("devcluster")).resolve()
    spec = dc.DevClusterSpec(port_base=dc.default_port_base(), slurm_version=_slurm_under_test())
    before = dc.status(directory)
    try:
        dc.up(directory, spec)
    except KantError as exc:
        pytest.fail(f"the Slurm dev cluster did not start: {exc}", pytrace=False)
    paths = dc.DevClusterPaths(directory)
    state = dc.status(directory)
    running_spec = dc.DevClusterSpec(**state.spec) if state.spec else spec
    cluster = SlurmCluster(dir=directory, conf_path=paths.slurm_conf, spec=running_spec,
                           started_here=not before.running, paths=paths)
    try:
        with _slurm_conf(paths.slurm_conf):
            yield cluster
    finally:
        if cluster.started_here:
            dc.down(directory)


@pytest.fixture
def slurm_clean(slurm_cluster):
    """The dev cluster with no job and every node idle (before and after the test)."""
    slurm_cluster.cancel_all()
    yield slurm_cluster
    slurm_cluster.cancel_all()


# --- CI: count the Slurm tests that really ran (.ci/run fails when there were none) ---------

_slurm_tests_ran = 0


def pytest_runtest_logreport(report):
    global _slurm_tests_ran
    if report.when == "call" and "slurm" in report.keywords and not report.skipped:
        _slurm_tests_ran += 1


def pytest_sessionfinish(session, exitstatus):
    target = os.environ.get("KANT_SLURM_TESTS_REPORT")
    if target:
        Path(target).write_text(f"{_slurm_tests_ran}\n")


@pytest.fixture
def steer_env(slurm_clean, tmp_path):
    """A clean cluster, kant's config and state path; kant's changes reset at the end, whatever
    happened, and the node weights checked back at slurm.conf's."""
    from kant_slurm.config import load_config
    from kant_slurm.slurm.actuator import config_weights
    from kant_slurm.steer import reset

    config = load_config()
    # The steer tests check the pin mechanism, on single-node jobs too; the shipped default
    # pins no planned start (see slurm.diff.desired_from_plan).
    config = dataclasses.replace(config, actuator=dataclasses.replace(config.actuator,
                                                                      pin_jobs="all"))
    state = tmp_path / "state.json"
    yield slurm_clean, config, state
    reset(config, state)
    assert slurm_clean.node_weights() == config_weights(slurm_clean.conf_path)


@pytest.fixture
def read_released():
    """``read_released(config, *job_ids)``: see :func:`_read_released`."""
    return _read_released


def _read_released(config, *job_ids: str):
    """A ``run_cycle(read=...)`` that reads the real cluster and plans the named held jobs as
    if Slurm had released them.

    Tests of the pin mechanism need a job that stays pending whatever the nodes, and only a
    held one does; kant's own cycles never plan a held job (tests/integration/test_held_jobs.py).
    """
    from kant_slurm.engine.classify import make_classifier
    from kant_slurm.slurm import read_snapshot
    from kant_slurm.slurm.diff import site_factors_shown

    def read():
        snapshot = read_snapshot(classify=make_classifier(config)).released(job_ids)
        return snapshot, site_factors_shown(snapshot)

    return read


@pytest.fixture(scope="module")
def production_cluster(tmp_path_factory):
    """A second dev cluster shaped like a production site (16 nodes: 12 x 8 h100 and 4 x 8
    a100, leaves of 4), on ports 40 above the session cluster's; up for one test module."""
    directory = Path(tmp_path_factory.mktemp("production")).resolve()
    spec = dc.DevClusterSpec(port_base=dc.default_port_base() + 40, gpu_types="h100:12,a100:4",
                             cluster_name="kantprod", slurm_version=_slurm_under_test())
    try:
        dc.up(directory, spec)
    except KantError as exc:
        pytest.fail(f"the production-day dev cluster did not start: {exc}", pytrace=False)
    paths = dc.DevClusterPaths(directory)
    cluster = SlurmCluster(dir=directory, conf_path=paths.slurm_conf, spec=spec,
                           started_here=True, paths=paths)
    try:
        with _slurm_conf(paths.slurm_conf):
            yield cluster
    finally:
        dc.down(directory)
