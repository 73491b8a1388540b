#!/usr/bin/env bash
# Regenerates the README's Quick start figures: runs the README's main command in a fresh clone
# of this repository (HEAD), in a new venv, and prints its wall time, peak RSS and output, with
# the date, commit and machine they were measured on. Nothing is asserted.
#
#   bash benchmarks/quickstart.sh            # the clone goes to a temporary directory
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/kant-quickstart.XXXXXX")
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/kant-slurm"
cd "$work/kant-slurm"
commit=$(git rev-parse --short HEAD)

# The README's command, split so the install and the simulation are timed apart.
t0=$(date +%s.%N)
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check ".[sim,plots]"
t1=$(date +%s.%N)
/usr/bin/time -f '%e %M' -o "$work/time" .venv/bin/kant-slurm simulate > "$work/out" 2>/dev/null
read -r wall rss_kib < "$work/time"

printf 'measured %s UTC, commit %s, %s (%s cores, %s GiB), load before the run: %s\n' \
    "$(date -u +%Y-%m-%dT%H:%M)" "$commit" "$(uname -m)" "$(nproc)" \
    "$(awk '/MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'install (venv + pip install .[sim,plots]): %.1f s\n' "$(python3 -c "print($t1 - $t0)")"
printf 'kant-slurm simulate: %.1f s wall, peak RSS %d MiB\n' "$wall" "$((rss_kib / 1024))"
echo
cat "$work/out"
