#!/usr/bin/env bash
# The test command of the README: installs what the tests need, then runs every test.
#
#   bash .ci/test.sh                                # all tests, Slurm ones on Debian 12's 22.05
#   bash .ci/test.sh -k status                      # extra arguments go to pytest
#   bash .ci/test.sh --slurm-version 24.11 -m slurm # the Slurm tests on 24.11 (or 26.05)
#
# As root on Debian 12 it first apt-installs the missing packages: Slurm 22.05 (slurmctld,
# slurmd, slurmdbd, client, libslurm-dev), munge, MariaDB, shellcheck, lua5.3, gcc, make.
# With --slurm-version 24.11|26.05 the tests run INSIDE that release's Debian root (built once
# and cached by `kant-slurm devcluster root`), so the Slurm commands the tests run are the ones
# of that release: the repository is bind-mounted at /mnt/kant-src, and this script runs again
# in there with the root's own test virtualenv (/opt/kant-venv, kept).
# Python: the tests run in a virtualenv of their own, .venv-test in the repository (or
# $KANT_TEST_VENV), made with $PYTHON (default python3) and given `pip install -e .[test,sim,plots]`; the
# caller's Python, virtualenv and kant-slurm install are not touched.
# Environment: KANT_DEVCLUSTER_DIR / KANT_DEVCLUSTER_PORT_BASE choose the test cluster's state
# directory and ports; KANT_JUNIT=path writes a JUnit report; KANT_SLURM_TESTS_REPORT=path gets
# the number of Slurm-marked tests that ran; KANT_SLURM_ROOTS where the roots are cached.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

version=""
if [[ ${1:-} == --slurm-version ]]; then
    version=${2:?--slurm-version: expected one of 22.05, 24.11, 26.05}
    shift 2
fi

packages=(munge slurm-wlm slurmdbd slurm-client libslurm-dev mariadb-server shellcheck lua5.3 gcc make)
# promtool (Debian's prometheus) checks the exporter in the unit tests; the run inside a newer
# release's root runs the Slurm tests only and does without its 200 MB.
[[ -n ${KANT_TEST_SLURM_VERSION:-} ]] || packages+=(prometheus)
missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
        echo "test.sh: missing Debian packages: ${missing[*]} (run as root on Debian 12 to install them)" >&2
        exit 1
    fi
    echo "test.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
fi
# slurm-wlm-emulator would turn slurmctld/slurmd into the emulator builds; the dev cluster runs
# the -wlm binaries directly, but say so if the alternatives point elsewhere.
if readlink -f /usr/sbin/slurmctld 2>/dev/null | grep -q emulator; then
    echo "test.sh: warning: /usr/sbin/slurmctld is the emulator build (slurm-wlm-emulator)" >&2
fi

# The tests run from a virtualenv of their own ($KANT_TEST_VENV, default .venv-test in the
# repository), made with $PYTHON (default python3) when missing: whatever Python or virtualenv
# the caller has, with kant-slurm installed in it or not, is left as it was.
venv=${KANT_TEST_VENV:-$repo/.venv-test}
if [[ ! -x $venv/bin/python ]]; then
    if ! "${PYTHON:-python3}" -m venv "$venv" && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        # Debian's python3 makes virtualenvs only with python3-venv (ensurepip) installed.
        echo "test.sh: installing python3-venv" >&2
        rm -rf "$venv"
        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv </dev/null
        "${PYTHON:-python3}" -m venv "$venv" || true
    fi
    if [[ ! -x $venv/bin/python ]]; then
        echo "test.sh: cannot make the test virtualenv $venv with ${PYTHON:-python3} (on Debian: apt-get install python3-venv)" >&2
        exit 1
    fi
fi
python=$venv/bin/python
"$python" -m pip install -q --disable-pip-version-check -e ".[test,sim,plots]"
# The tests run `kant-slurm` and `python` as the user would: the test virtualenv's.
export VIRTUAL_ENV=$venv PATH=$venv/bin:$PATH

if [[ -n $version && $version != 22.05 ]]; then
    # Build (or find) the root with the product's own code, then run this script inside it.
    root=$("$python" -c 'import sys; from kant_slurm.cli import main; sys.argv[0] = "kant-slurm"; main()' \
        devcluster root --slurm-version "$version" | tail -n 1)
    [[ -f $root/etc/kant-slurm-root.json ]] || { echo "test.sh: no Slurm $version root ($root)" >&2; exit 1; }
    # Reports are written inside the root and copied out afterwards.
    results=$(mktemp -d "$root/tmp/kant-ci-results.XXXXXX")
    inner_results=${results#"$root"}
    inner_env=(PIP_FIND_LINKS= KANT_TEST_SLURM_VERSION="$version")
    [[ -z ${KANT_JUNIT:-} ]] || inner_env+=(KANT_JUNIT="$inner_results/junit.xml")
    [[ -z ${KANT_SLURM_TESTS_REPORT:-} ]] || inner_env+=(KANT_SLURM_TESTS_REPORT="$inner_results/slurm-tests-ran")
    status=0
    # A private mount namespace: /proc, /sys, /dev and the repository are mounted into the root
    # for this run only and vanish with it, whatever happens. The host's TMPDIR is not in the
    # root: the run inside uses the root's /tmp. (The scripts are single-quoted on purpose: they
    # take their values as arguments.)
    # shellcheck disable=SC2016
    unshare --mount -- bash -c '
        set -e
        root=$1 repo=$2; shift 2
        mount --make-rprivate /
        mount -t proc proc "$root/proc"
        mount --rbind /sys "$root/sys"
        mount --rbind /dev "$root/dev"
        mkdir -p "$root/mnt/kant-src"
        mount --bind "$repo" "$root/mnt/kant-src"
        exec chroot "$root" "$@"' kant-test-root "$root" "$repo" \
        env -u TMPDIR -u VIRTUAL_ENV -u PYTHON "${inner_env[@]}" KANT_TEST_VENV=/opt/kant-venv \
        bash -c 'cd /mnt/kant-src && exec bash .ci/test.sh "$@"' kant-test "$@" || status=$?
    [[ -z ${KANT_JUNIT:-} ]] || cp "$results/junit.xml" "$KANT_JUNIT" 2>/dev/null || true
    [[ -z ${KANT_SLURM_TESTS_REPORT:-} ]] || cp "$results/slurm-tests-ran" "$KANT_SLURM_TESTS_REPORT" 2>/dev/null || true
    rm -rf "$results"
    exit "$status"
fi

# Lint, format check and type check first (settings in pyproject.toml): a finding fails the
# run. The lint covers the benchmark scripts and the tests too; the format check and mypy cover
# the package. Inside a newer release's root only the Slurm tests run, so the code is checked once,
# outside.
if [[ -z ${KANT_TEST_SLURM_VERSION:-} ]]; then
    "$python" -m ruff check kant_slurm benchmarks tests
    "$python" -m ruff format --check kant_slurm
    "$python" -m mypy kant_slurm
fi

args=()
if [[ -n "${KANT_JUNIT:-}" ]]; then
    args+=("--junitxml=$KANT_JUNIT")
fi
exec "$python" -m pytest "${args[@]}" "$@"
