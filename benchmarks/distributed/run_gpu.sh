#!/usr/bin/env bash
# One device call for issues 9 and 11 on a host with 2 GPUs (device kind nvidia-h100-x2): the
# carried wheels, the issue-10 graph built with squall.graphs, the 1-GPU overhead of the
# sharding machinery (issue 9), then the 1- and 2-GPU runs (issue 11). Results land in $OUT
# (default results/distributed). Extra arguments go to both benchmarks (problem.py's options).
# The NVLink multicast variables of the host (NCCL_NVLS_ENABLE=0, ...) are left as they are.
set -uo pipefail
OUT=${OUT:-results/distributed}
mkdir -p "$OUT"
WHEELS=${WHEELS:-.whl}  # squall's dependencies missing on the device, as cp312 wheels
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$WHEELS"/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD/src" PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nvidia-smi topo -m;
  python3 -c 'import torch; print("torch", torch.__version__, "nccl", torch.cuda.nccl.version())';
  env | grep -E 'NVLS|MULTICAST' ; } > "$OUT/device.txt" 2>&1
DEG=${DEG:-1} LEVEL=${LEVEL:-5}
GRAPH=/tmp/graph_${DEG}deg_l${LEVEL}.pt
rm -f "$GRAPH"
{ time python3 benchmarks/gpu/build_graph.py "$GRAPH" --deg "$DEG" --level "$LEVEL"; } 2>&1 \
    | tee "$OUT/log.txt"
CURVE=${CURVE_STEPS:-200}
[ "${OVERHEAD:-1}" = 1 ] && CUDA_VISIBLE_DEVICES=0 timeout 90 \
    python3 benchmarks/distributed/sharding_overhead.py \
    --graph "$GRAPH" --rounds 2 --warmup 3 --steps 10 "$@" 2>&1 | tee -a "$OUT/log.txt"
# Batch 1 per model replica with the loss curves, then a larger batch (timings only).
for batch in 1 ${LARGER_BATCH:-4}; do
    WORK=/tmp/multi_gpu_batch$batch  # the 1-GPU run's gradients are too large to bring back
    rm -rf "$WORK"
    [ "$batch" = 1 ] && steps=$CURVE || steps=0
    for gpus in ${GPU_COUNTS:-1 2}; do
        timeout 150 torchrun --standalone --nproc_per_node=$gpus \
            benchmarks/distributed/multi_gpu.py --graph "$GRAPH" --out "$WORK" --batch "$batch" \
            --warmup 3 --steps 10 --curve-steps "$steps" "$@" 2>&1 | tee -a "$OUT/log.txt"
    done
    mkdir -p "$OUT/batch$batch" && cp "$WORK"/*.json "$OUT/batch$batch/"
done
grep RESULT "$OUT/log.txt"
