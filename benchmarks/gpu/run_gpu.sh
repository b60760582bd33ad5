#!/usr/bin/env bash
# One device call: GPU kernel tests, the anemoi anchor, and squall's step on the same problem.
# Run from the repository root with .anchor-bench/ carried (see benchmarks/gpu/NOTES.md):
#   bash benchmarks/gpu/run_gpu.sh            (MATRIX=full: tests + anchor + squall A/B)
#   MATRIX=squall bash benchmarks/gpu/run_gpu.sh   (squall rows only)
#   MATRIX=gt bash benchmarks/gpu/run_gpu.sh       (tests, graph-transformer rows and their anchor)
#   REFERENCE=1 adds the plain-PyTorch path on the GPU; COMPILE=1 the torch.compile experiment
# RESULT/PEAK/PROFILE lines go to stdout and to $OUT/gpu_bench.log.
set -u
OUT=${OUT:-$(mktemp -d)}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
LOG="$OUT/gpu_bench.log"
GRAPH=.anchor-bench/squall_graph_1deg_l5.pt
MATRIX=${MATRIX:-full}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader | tee -a "$LOG"

squall() {  # squall TAG ARGS...
  echo "### squall $1" | tee -a "$LOG"
  local tag=$1; shift
  timeout "${PER_RUN_TIMEOUT:-150}" python3 benchmarks/gpu/step_bench.py --graph "$GRAPH" --tag "$tag" "$@" 2>&1 \
    | grep -v -E "^\s*$|Warning|warn\(" | tail -n 40 | tee -a "$LOG"
}

anchor_nockpt() {  # anchor_nockpt MODEL: the anchor without checkpointing (not in its headline)
  [ -n "${SITE:-}" ] || { SITE=$(mktemp -d); python3 -m pip install -q --no-index --no-deps \
      --no-compile --target "$SITE" .anchor-bench/whl/*.whl; }
  echo "### anchor $1-nockpt" | tee -a "$LOG"
  PYTHONPATH="$SITE" timeout 150 python3 .anchor-bench/anemoi_step.py --graph .anchor-bench/graphs/graph_1deg_l5.pt \
    --model "$1" --no-ckpt --warmup 5 --steps 30 --tag "$1-l5-nockpt" 2>&1 | grep -E "RESULT|Error" | tee -a "$LOG"
}

if [ "$MATRIX" = gt ]; then  # graph-transformer rows only, each beside the anchor's
  timeout 240 python3 -m pytest -q -m gpu tests/models/test_kernels.py -p no:cacheprovider 2>&1 | tail -n 25 | tee -a "$LOG"
  squall gt-ckpt --model gt --peak --profile 3
  squall gt-ckpt-chunks1 --model gt --num-chunks 1
  squall gt-nockpt-chunks1 --model gt --no-ckpt --num-chunks 1
  squall gt-mlp2-ckpt --model gt --mlp-hidden-layers 2
  SITE=$(mktemp -d)
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .anchor-bench/whl/*.whl
  echo "### anchor gt" | tee -a "$LOG"
  PYTHONPATH="$SITE" timeout 150 python3 .anchor-bench/anemoi_step.py --graph .anchor-bench/graphs/graph_1deg_l5.pt \
    --model gt --backend triton --warmup 5 --steps 30 --tag gt-l5-triton 2>&1 | grep -E "RESULT|Error" | tee -a "$LOG"
  anchor_nockpt gt
  echo "done" | tee -a "$LOG"
  exit 0
fi
if [ "$MATRIX" = full ]; then
  timeout 240 python3 -m pytest -q -m gpu tests/models/test_kernels.py -p no:cacheprovider 2>&1 | tail -n 25 | tee -a "$LOG"
fi
squall gt-ckpt --model gt --peak --profile 3
squall gnn-ckpt --model gnn
squall gnn-mlp2-ckpt --model gnn --mlp-hidden-layers 2 --profile 3
squall gt-mlp2-ckpt --model gt --mlp-hidden-layers 2
squall gt-nockpt --model gt --no-ckpt
squall gnn-mlp2-nockpt --model gnn --mlp-hidden-layers 2 --no-ckpt
if [ "${REFERENCE:-0}" = 1 ]; then  # the plain PyTorch path on the GPU, for A/B
  SQUALL_FUSED_KERNELS=0 squall gt-ckpt-reference --model gt
  SQUALL_FUSED_KERNELS=0 squall gnn-mlp2-ckpt-reference --model gnn --mlp-hidden-layers 2
fi
if [ "$MATRIX" = full ]; then
  MATRIX=headline OUT="$OUT" bash .anchor-bench/run_anchor_gpu.sh 2>&1 | grep -E "RESULT|###|Error|error" | tee -a "$LOG"
  anchor_nockpt gt
  anchor_nockpt gnn
fi
if [ "${COMPILE:-0}" = 1 ]; then  # experiment: torch.compile of each graph block
  PER_RUN_TIMEOUT=170 squall gt-ckpt-compile --model gt --compile
  PER_RUN_TIMEOUT=120 squall gnn-mlp2-ckpt-compile --model gnn --mlp-hidden-layers 2 --compile
fi
echo "done" | tee -a "$LOG"
