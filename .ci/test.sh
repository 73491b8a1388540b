#!/usr/bin/env bash
# The test command of the README: installs what the tests need, then runs every test.
#
#   bash .ci/test.sh              # all tests (the Slurm ones start a real local cluster)
#   bash .ci/test.sh -k status    # extra arguments go to pytest
#
# As root on Debian 12 it first apt-installs the missing packages: Slurm 22.05 (slurmctld,
# slurmd, slurmdbd, client, libslurm-dev), munge, MariaDB, shellcheck, lua5.3, gcc, make.
# Environment: KANT_DEVCLUSTER_DIR / KANT_DEVCLUSTER_PORT_BASE choose the test cluster's state
# directory and ports; KANT_JUNIT=path writes a JUnit report; KANT_SLURM_TESTS_REPORT=path gets
# the number of Slurm-marked tests that ran.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

packages=(munge slurm-wlm slurmdbd slurm-client libslurm-dev mariadb-server shellcheck lua5.3 gcc make prometheus)
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

python=${PYTHON:-python3}
# Debian's system Python refuses pip installs (PEP 668) outside a virtualenv.
if [[ -z "${VIRTUAL_ENV:-}" ]]; then
    export PIP_BREAK_SYSTEM_PACKAGES=1
fi
"$python" -m pip install -q --disable-pip-version-check -e ".[test]"

args=()
if [[ -n "${KANT_JUNIT:-}" ]]; then
    args+=("--junitxml=$KANT_JUNIT")
fi
exec "$python" -m pytest "${args[@]}" "$@"
