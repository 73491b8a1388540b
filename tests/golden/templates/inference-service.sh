#!/bin/bash
# shellcheck disable=SC2016,SC1003  # quoted values hold $, ` and \ literally, on purpose
# Rendered by kant-slurm from the "inference-service" template. Every value below went through a
# quoting filter; edit the values (kant-slurm render inference-service --set ...), not this file.
#SBATCH --job-name=chat
#SBATCH --dependency=singleton
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --gres=gpu:h100:1
#SBATCH --time=7-00:00:00
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
#SBATCH --output=%x-%j.out
#SBATCH --open-mode=append
#SBATCH --partition=infer
#SBATCH --comment="kant:workload=inference;service=chat;est=259200;sla=60"

set -euo pipefail

log() { printf 'kant[%s]: %s\n' "${SLURM_JOB_ID:-?}" "$*" >&2; }

service=chat
server=(python -m vllm.entrypoints.openai.api_server --model /models/llama-8b --port 8000)
health_url=http://127.0.0.1:8000/health
health_interval=10
health_timeout=5
health_failures=3
startup_timeout=600
max_restarts=10
drain_command=(curl -fsS -X POST http://127.0.0.1:8000/drain)
drain_timeout=30
export PORT=8000 KANT_SERVICE="$service"
export HF_HOME=/models/cache

srun_flags=(--nodes=1 --ntasks=1 --kill-on-bad-exit=1)

# One health check: any 2xx answer within health_timeout seconds.
health_ok() {
  if command -v curl >/dev/null 2>&1; then
    curl --silent --fail --output /dev/null --max-time "$health_timeout" "$health_url"
  else
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2]))' \
      "$health_url" "$health_timeout" 2>/dev/null
  fi
}

server_pid=
server_running() { [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; }

# Ask the server to finish what it has and stop, then wait (at most drain_timeout seconds).
drain() {
  if ((${#drain_command[@]})); then
    "${drain_command[@]}" || log "drain command failed (status $?)"
  fi
  server_running && kill -TERM "$server_pid" 2>/dev/null
  local waited=0
  while server_running && ((waited < drain_timeout)); do
    sleep 1
    waited=$((waited + 1))
  done
  return 0
}

# The server failed: stop it and requeue this job (Slurm starts it again, singleton keeps one
# instance), unless it failed max_restarts times already.
fail_and_requeue() {
  local restarts=${SLURM_RESTART_COUNT:-0}
  server_running && kill -TERM "$server_pid" 2>/dev/null
  if ((restarts >= max_restarts)); then
    log "$1; restarted $restarts time(s) already (max_restarts=$max_restarts): giving up"
    exit 1
  fi
  log "$1; requeueing (restart $((restarts + 1)) of at most $max_restarts)"
  scontrol requeue "$SLURM_JOB_ID"
  exit 1
}

# shellcheck disable=SC2317  # only the traps call these
on_usr1() {
  trap - USR1
  log "USR1: the time limit is near; draining $service, then requeueing"
  drain
  scontrol requeue "$SLURM_JOB_ID"
  exit 0
}
# shellcheck disable=SC2317
on_term() {
  trap - TERM
  log "TERM: cancelled or preempted; draining $service"
  drain
  exit 143
}
trap on_usr1 USR1
trap on_term TERM

srun "${srun_flags[@]}" "${server[@]}" &
server_pid=$!
log "started $service (pid $server_pid); waiting for $health_url"

# Startup: the first healthy answer must come within startup_timeout seconds.
deadline=$((SECONDS + startup_timeout))
until health_ok; do
  server_running || fail_and_requeue "$service exited during startup"
  ((SECONDS < deadline)) || fail_and_requeue "no healthy answer from $health_url in ${startup_timeout}s"
  # sleep in the background: a trap runs at once instead of after the sleep.
  sleep 1 & wait $! || true
done
log "healthy: $health_url"

failures=0
while :; do
  sleep "$health_interval" & wait $! || true
  if ! server_running; then
    wait "$server_pid" && status=0 || status=$?
    fail_and_requeue "$service exited (status $status)"
  fi
  if health_ok; then
    failures=0
  else
    failures=$((failures + 1))
    log "health check failed ($failures of $health_failures in a row): $health_url"
    ((failures < health_failures)) || fail_and_requeue "$service is unhealthy"
  fi
done
