#!/usr/bin/env bash
# Train the shipped learned priors together on one GPU, each for MINUTES of wall time, and pack
# what they produce into OUT (one tar per model, plus the logs). Every trainer is resumable from
# its checkpoint folder under RUNS and stops on its own budget (training.common.Budget), so the
# same command continues a run on a later lease. Usage:
#
#   MINUTES=6.5 OUT=/tmp/out bash training/gpu_train.sh      # DEVICE=cpu POOL=200: a smoke test
#
# The run behind the shipped weights is recorded in each model's training.json / training_info.json.
set -u
MINUTES=${MINUTES:-6}
DEVICE=${DEVICE:-cuda}
POOL=${POOL:-20000}
OUT=${OUT:-runs/out}
RUNS=${RUNS:-runs}
mkdir -p "$OUT" "$RUNS"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true

python3 -m training.train_lpn --device "$DEVICE" --out "$RUNS/lpn-gray" --checkpoint "$RUNS/ck-lpn" \
    --hidden 64 --layers 6 --patch 64 --batch 32 --pool "$POOL" \
    --l1-steps 1100000 --pm-steps 225000 --save-every 1000 --minutes "$MINUTES" \
    > "$OUT/lpn.log" 2>&1 &
python3 -m training.train_denoiser --device "$DEVICE" --out "$RUNS/denoiser-gray" --checkpoint "$RUNS/ck-denoiser" \
    --depth 17 --features 64 --patch 64 --batch 64 --pool "$POOL" --sigma-max 1.0 --low-sigma 0.2 \
    --steps 10000000 --checkpoint-every 2000 --snapshot-every 0 --minutes "$MINUTES" --no-card \
    > "$OUT/denoiser.log" 2>&1 &
python3 -m training.train_diffusion --device "$DEVICE" --out "$RUNS/diffusion-gray-cond" --ckpt "$RUNS/ck-gray-cond" \
    --conditional --channels 1 --block-channels 32 64 128 --patch 64 --batch 128 --pool-size "$POOL" \
    --lr 3e-4 --steps 10000000 --ckpt-minutes 2 --minutes "$MINUTES" \
    > "$OUT/diffusion-gray-cond.log" 2>&1 &
python3 -m training.train_diffusion --device "$DEVICE" --out "$RUNS/diffusion-rgb" --ckpt "$RUNS/ck-rgb" \
    --channels 3 --block-channels 32 64 128 --patch 64 --batch 128 --pool-size "$POOL" \
    --lr 3e-4 --steps 10000000 --ckpt-minutes 2 --minutes "$MINUTES" \
    > "$OUT/diffusion-rgb.log" 2>&1 &
wait
nvidia-smi --query-gpu=memory.used --format=csv,noheader || true
for m in lpn-gray denoiser-gray diffusion-gray-cond diffusion-rgb; do
    tar -C "$RUNS" -czf "$OUT/$m.tgz" "$m" && echo "packed $m"
done
