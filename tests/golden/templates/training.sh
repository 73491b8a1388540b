#!/bin/bash
# shellcheck disable=SC2016,SC1003  # quoted values hold $, ` and \ literally, on purpose
# Rendered by kant-slurm from the "training" template. Every value below went through a quoting
# filter; edit the values (kant-slurm render training --set ...), not this file.
#SBATCH --job-name=llama-8b
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:h100:8
#SBATCH --cpus-per-task=96
#SBATCH --mem=0
#SBATCH --time=2-00:00:00
#SBATCH --time-min=1-00:00:00
#SBATCH --signal=B:USR1@600
#SBATCH --requeue
#SBATCH --output="/logs/train runs/%x-%j.out"
#SBATCH --open-mode=append
#SBATCH --partition=gpu
#SBATCH --account=ml-research
#SBATCH --comment="kant:workload=training;est=129600;ckpt=1800"

set -euo pipefail

log() { printf 'kant[%s]: %s\n' "${SLURM_JOB_ID:-?}" "$*" >&2; }

# ---- the rendezvous: the first node of the allocation is the master -------------------------
# (No `| head -n 1`: with pipefail, scontrol's SIGPIPE would fail the job.)
mapfile -t job_nodes < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
MASTER_ADDR=${job_nodes[0]}
# Port from the job id, so two jobs sharing a first node do not collide.
MASTER_PORT=$((20000 + SLURM_JOB_ID % 20000))
NNODES=$SLURM_JOB_NUM_NODES
GPUS_PER_NODE=8
NPROC_PER_NODE=8
WORLD_SIZE=$((NNODES * NPROC_PER_NODE))
export MASTER_ADDR MASTER_PORT NNODES GPUS_PER_NODE NPROC_PER_NODE WORLD_SIZE
export NCCL_DEBUG=WARN
export TORCH_NCCL_ASYNC_ERROR_HANDLING=1
export NCCL_IB_HCA=mlx5
export WANDB_PROJECT=llama
# The program checkpoints this often (seconds); the scheduler counts the work since the last one
# as lost when it preempts the job.
export KANT_CHECKPOINT_INTERVAL=1800

# ---- what runs on each node --------------------------------------------------------------
launcher=(torchrun --nnodes="$NNODES" --nproc-per-node="$NPROC_PER_NODE"
  --rdzv-backend=c10d --rdzv-endpoint="$MASTER_ADDR:$MASTER_PORT" --rdzv-id="$SLURM_JOB_ID")
node_rank_option=--node-rank
program=(train.py --config 'configs/llama 8b.yaml' --lr 3e-4)
checkpoint_command=(python save_ckpt.py --dir '/ckpt/llama 8b')

# srun starts this once per node. Only there is the node's rank known (SLURM_NODEID): it is
# exported as NODE_RANK and given to the launcher. Arguments: the launcher's node-rank option,
# the number of launcher words, the launcher words, then the program words.
node_task='export NODE_RANK="$SLURM_NODEID"
option=$1 n=$2
shift 2
if [ "$n" -gt 0 ]; then
  exec "${@:1:n}" "$option=$NODE_RANK" "${@:n+1}"
fi
exec "$@"'

srun_flags=(--nodes="$NNODES" --ntasks-per-node=1 --kill-on-bad-exit=1)
srun_flags+=(--container-image='nvcr.io#nvidia/pytorch:24.01-py3')
srun_flags+=(--container-mounts='/data:/data,/ckpt:/ckpt')

# ---- the warning: checkpoint, then requeue -------------------------------------------------
# USR1 comes before the time limit (--signal=B:USR1@N) or when the scheduler preempts the job
# for an inference service (kant: scancel --signal=USR1 --batch); both mean the same here.
step_pid=
# shellcheck disable=SC2317  # only the trap calls it
on_warning() {
  # A second USR1 (a repeated preemption signal) is ignored, not fatal: the default action of
  # USR1 would end this shell before the requeue.
  trap '' USR1
  log "USR1: the time limit is near; checkpointing (or the job is preempted: the same steps)"
  # Every task of the training step gets the signal; the program saves and exits.
  scancel --signal=USR2 "$SLURM_JOB_ID" || log "could not signal the step"
  if ((${#checkpoint_command[@]})); then
    "${checkpoint_command[@]}" || log "checkpoint command failed (status $?)"
  fi
  local waited=0
  while [ -n "$step_pid" ] && kill -0 "$step_pid" 2>/dev/null && ((waited < 120)); do
    sleep 1
    waited=$((waited + 1))
  done
  log "requeueing"
  scontrol requeue "$SLURM_JOB_ID" || log "scontrol requeue failed"
}
trap on_warning USR1

log "rendezvous $MASTER_ADDR:$MASTER_PORT, $NNODES node(s) x $NPROC_PER_NODE, world size $WORLD_SIZE"
srun "${srun_flags[@]}" bash -c "$node_task" kant-node "$node_rank_option" "${#launcher[@]}" \
  "${launcher[@]}" "${program[@]}" &
step_pid=$!
# wait returns early when a trapped signal arrives; keep waiting while the step runs.
while :; do
  wait "$step_pid" && status=0 || status=$?
  kill -0 "$step_pid" 2>/dev/null || break
done
# A trapped signal ends wait early with 128 + its number; if the step ended meanwhile, one more
# wait gives its own status (127: it was already collected, and $status is its own).
if ((status > 128)); then
  if wait "$step_pid" 2>/dev/null; then
    status=0
  else
    own=$?
    ((own == 127)) || status=$own
  fi
fi
log "training step ended with status $status"
exit "$status"
