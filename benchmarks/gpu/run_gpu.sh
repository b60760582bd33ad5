#!/usr/bin/env bash
# One device call: GPU kernel tests, the anemoi anchor, and squall's step on the same problem.
# Run from the repository root with .anchor-bench/ carried (see benchmarks/gpu/NOTES.md):
#   bash benchmarks/gpu/run_gpu.sh            (MATRIX=full: tests + anchor + squall A/B)
#   MATRIX=squall bash benchmarks/gpu/run_gpu.sh   (squall rows only)
#   MATRIX=gt bash benchmarks/gpu/run_gpu.sh       (tests, graph-transformer rows and their anchor)
#   MATRIX=v4 bash benchmarks/gpu/run_gpu.sh       (tests, v4 rows of both models, the anchor's two)
#   MATRIX=v5 bash benchmarks/gpu/run_gpu.sh       (tests, eager and CUDA-graph rows, memory, anchor)
#   MATRIX=v5b bash benchmarks/gpu/run_gpu.sh      (CUDA-graph rows with expandable segments)
#   MATRIX=v6 bash benchmarks/gpu/run_gpu.sh       (tests, narrow edge latents vs C-wide, anchor)
#   MATRIX=final bash benchmarks/gpu/run_gpu.sh    (headline rows with the anchor's optimiser, anchor)
#   MATRIX=reserved bash benchmarks/gpu/run_gpu.sh (memory held: squall's reserved bytes and the
#                                                   anchor's, read from its process at exit)
#   MATRIX=v7 bash benchmarks/gpu/run_gpu.sh       (tests, fused GNN edge_hidden A/B, graphed
#                                                   training step, squall train with cuda_graph)
#   MATRIX=v8 bash benchmarks/gpu/run_gpu.sh       (tests, the GT's edge projection at the targets
#                                                   A/B, training's fused AdamW A/B, both anchors
#                                                   with the memory they reserve)
#   MATRIX=headline bash benchmarks/gpu/run_gpu.sh (the goal's rows: GT in 4 and 2 chunks, GNN,
#                                                   graphed; both anchors with their reserved memory)
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
    | grep -v -E "^\s*$|Warning|warn\(" | tail -n 60 | tee -a "$LOG"
}

anchor() {  # anchor TAG ARGS...: one anchor row (anemoi_step.py) outside its headline matrix
  [ -n "${SITE:-}" ] || { SITE=$(mktemp -d); python3 -m pip install -q --no-index --no-deps \
      --no-compile --target "$SITE" .anchor-bench/whl/*.whl; }
  echo "### anchor $1" | tee -a "$LOG"
  local tag=$1; shift
  PYTHONPATH="$SITE" timeout 150 python3 .anchor-bench/anemoi_step.py --graph .anchor-bench/graphs/graph_1deg_l5.pt \
    --warmup 5 --steps 30 --tag "$tag" "$@" 2>&1 | grep -E "RESULT|Error" | tee -a "$LOG"
}

anchor_nockpt() {  # anchor_nockpt MODEL: the anchor without checkpointing (not in its headline)
  anchor "$1-l5-nockpt" --model "$1" --no-ckpt
}

if [ "$MATRIX" = gt ]; then  # graph-transformer rows only, each beside the anchor's
  timeout 240 python3 -m pytest -q -m gpu tests/models/test_kernels.py -p no:cacheprovider 2>&1 | tail -n 25 | tee -a "$LOG"
  squall gt-ckpt --model gt --peak --profile 3
  squall gt-ckpt-chunks1 --model gt --num-chunks 1
  squall gt-nockpt-chunks1 --model gt --no-ckpt --num-chunks 1
  squall gt-mlp2-ckpt --model gt --mlp-hidden-layers 2
  anchor gt-l5-triton --model gt --backend triton
  anchor_nockpt gt
  echo "done" | tee -a "$LOG"
  exit 0
fi
if [ "$MATRIX" = v4 ]; then  # default routes, parameter-matched widths, both anchors
  timeout 300 python3 -m pytest -q -m gpu tests/models/test_kernels.py \
    tests/models/test_models_processors.py -p no:cacheprovider 2>&1 | tail -n 25 | tee -a "$LOG"
  squall gt-ckpt --model gt --peak --profile 3
  squall gt-ckpt-chunks1 --model gt --num-chunks 1
  squall gt-ckpt-ratio3.25 --model gt --mlp-hidden-ratio 3.25
  squall gnn-ckpt --model gnn
  squall gnn-ckpt-ratio1.3 --model gnn --mlp-hidden-ratio 1.3
  MATRIX=headline OUT="$OUT" bash .anchor-bench/run_anchor_gpu.sh 2>&1 | grep -E "RESULT|###|Error|error" | tee -a "$LOG"
  echo "done" | tee -a "$LOG"
  exit 0
fi
if [ "$MATRIX" = v5 ]; then  # each row eager and captured as one CUDA graph; both anchors
  timeout 300 python3 -m pytest -q -m gpu tests/models/test_kernels.py \
    tests/models/test_models_processors.py -p no:cacheprovider 2>&1 | tail -n 25 | tee -a "$LOG"
  timeout 120 python3 -m pytest -q -k cuda tests/models/test_network.py -p no:cacheprovider \
    2>&1 | tail -n 5 | tee -a "$LOG"
  squall gt-ckpt --model gt --peak --memory-phases
  squall gt-ckpt-graph --model gt --cuda-graph --profile 3
  squall gt-ckpt-ratio3.25 --model gt --mlp-hidden-ratio 3.25
  squall gt-ckpt-ratio3.25-graph --model gt --mlp-hidden-ratio 3.25 --cuda-graph
  squall gt-ckpt-chunks1 --model gt --num-chunks 1
  squall gt-ckpt-chunks1-graph --model gt --num-chunks 1 --cuda-graph
  squall gnn-ckpt --model gnn --memory-phases
  squall gnn-ckpt-graph --model gnn --cuda-graph
  squall gnn-ckpt-ratio1.3 --model gnn --mlp-hidden-ratio 1.3
  squall gnn-ckpt-ratio1.3-graph --model gnn --mlp-hidden-ratio 1.3 --cuda-graph
  MATRIX=headline OUT="$OUT" bash .anchor-bench/run_anchor_gpu.sh 2>&1 | grep -E "RESULT|###|Error|error" | tee -a "$LOG"
  echo "done" | tee -a "$LOG"
  exit 0
fi
if [ "$MATRIX" = v5b ]; then  # a graph's private pool fragments less with expandable segments
  squall gt-ckpt-graph --model gt --cuda-graph
  export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
  squall gt-ckpt-expandable --model gt
  squall gt-ckpt-graph-expandable --model gt --cuda-graph
  squall gnn-ckpt-expandable --model gnn
  squall gnn-ckpt-graph-expandable --model gnn --cuda-graph
  squall gt-ckpt-chunks1-graph-expandable --model gt --num-chunks 1 --cuda-graph
  echo "done" | tee -a "$LOG"
  exit 0
fi
if [ "$MATRIX" = v6 ]; then  # narrow edge latents (model.edge_latent_channels), both anchors
  timeout 300 python3 -m pytest -q -m gpu tests/models/test_kernels.py \
    tests/models/test_models_processors.py -p no:cacheprovider 2>&1 | tail -n 25 | tee -a "$LOG"
  export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
  squall gt-ckpt --model gt --peak
  squall gt-ckpt-ratio3.25 --model gt --mlp-hidden-ratio 3.25
  squall gt-ckpt-e64-ratio4.3 --model gt --edge-latent-channels 64 --mlp-hidden-ratio 4.3 --profile 3
  squall gt-ckpt-e64-ratio4.3-graph --model gt --edge-latent-channels 64 --mlp-hidden-ratio 4.3 --cuda-graph
  squall gt-ckpt-e64 --model gt --edge-latent-channels 64
  squall gt-ckpt-e16-ratio4.4 --model gt --edge-latent-channels 16 --mlp-hidden-ratio 4.4
  squall gnn-ckpt --model gnn
  squall gnn-ckpt-ratio1.3 --model gnn --mlp-hidden-ratio 1.3 --profile 3
  squall gnn-ckpt-e128-ratio3.25 --model gnn --edge-latent-channels 128 --mlp-hidden-ratio 3.25
  squall gnn-ckpt-e128-ratio3.25-graph --model gnn --edge-latent-channels 128 --mlp-hidden-ratio 3.25 --cuda-graph
  squall gnn-ckpt-e256-ratio2.35 --model gnn --edge-latent-channels 256 --mlp-hidden-ratio 2.35
  unset PYTORCH_CUDA_ALLOC_CONF
  MATRIX=headline OUT="$OUT" bash .anchor-bench/run_anchor_gpu.sh 2>&1 | grep -E "RESULT|###|Error|error" | tee -a "$LOG"
  echo "done" | tee -a "$LOG"
  exit 0
fi
if [ "$MATRIX" = final ]; then  # the headline rows, AdamW as the anchor's (default, no clipping)
  export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
  squall gt-e64-ratio4.3-graph --model gt --edge-latent-channels 64 --mlp-hidden-ratio 4.3 --cuda-graph
  squall gt-e64-ratio4.3-chunks1-graph --model gt --edge-latent-channels 64 --mlp-hidden-ratio 4.3 --num-chunks 1 --cuda-graph
  squall gnn-e128-ratio3.25-graph --model gnn --edge-latent-channels 128 --mlp-hidden-ratio 3.25 --cuda-graph
  squall gt-ratio3.25-graph --model gt --mlp-hidden-ratio 3.25 --cuda-graph
  squall gnn-ratio1.3-graph --model gnn --mlp-hidden-ratio 1.3 --cuda-graph
  unset PYTORCH_CUDA_ALLOC_CONF
  MATRIX=headline OUT="$OUT" bash .anchor-bench/run_anchor_gpu.sh 2>&1 | grep -E "RESULT|###|Error|error" | tee -a "$LOG"
  echo "done" | tee -a "$LOG"
  exit 0
fi
anchors_reserved() {  # both anchors' headline rows, with the memory their process reserved
  [ -n "${SITE:-}" ] || { SITE=$(mktemp -d); python3 -m pip install -q --no-index --no-deps \
      --no-compile --target "$SITE" .anchor-bench/whl/*.whl; }
  local models=("gt --backend triton" gnn)  # ANCHORS="gt --backend triton": that one only
  [ -n "${ANCHORS:-}" ] && models=("$ANCHORS")
  for model in "${models[@]}"; do  # the anchor's script, unchanged, run by runpy
    PYTHONPATH="$SITE" timeout 200 python3 -c "
import atexit, runpy, sys, torch
atexit.register(lambda: print('ANCHOR_RESERVED', '$model', round(torch.cuda.max_memory_reserved() / 2**30, 3), flush=True))
sys.argv = ['anemoi_step.py', '--graph', '.anchor-bench/graphs/graph_1deg_l5.pt', '--warmup', '5', '--steps', '30', '--model'] + '$model'.split()
runpy.run_path('.anchor-bench/anemoi_step.py', run_name='__main__')
" 2>&1 | grep -E "ANCHOR_RESERVED|RESULT" | tee -a "$LOG"
  done
}

if [ "$MATRIX" = reserved ]; then  # like for like: reserved bytes on both sides
  export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
  squall gt-e64-ratio4.3-graph --model gt --edge-latent-channels 64 --mlp-hidden-ratio 4.3 --cuda-graph
  squall gt-e64-ratio4.3-chunks1-graph --model gt --edge-latent-channels 64 --mlp-hidden-ratio 4.3 --num-chunks 1 --cuda-graph
  squall gnn-e128-ratio3.25-graph --model gnn --edge-latent-channels 128 --mlp-hidden-ratio 3.25 --cuda-graph
  unset PYTORCH_CUDA_ALLOC_CONF
  anchors_reserved
  echo "done" | tee -a "$LOG"
  exit 0
fi
if [ "$MATRIX" = headline ]; then  # the goal's rows as squall train steps them, both anchors
  export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
  GT="--model gt --edge-latent-channels 64 --mlp-hidden-ratio 4.3 --cuda-graph"
  squall gt-e64-ratio4.3-chunks4-graph $GT --num-chunks 4
  squall gt-e64-ratio4.3-chunks2-graph $GT --num-chunks 2
  squall gnn-e128-ratio3.25-graph --model gnn --edge-latent-channels 128 --mlp-hidden-ratio 3.25 --cuda-graph
  unset PYTORCH_CUDA_ALLOC_CONF
  anchors_reserved
  echo "done" | tee -a "$LOG"
  exit 0
fi
if [ "$MATRIX" = v8c ]; then  # v8c: the GT's chunk counts with every v8 change, GT anchor
  timeout 300 python3 -m pytest -q -m gpu tests/models/test_kernels.py -p no:cacheprovider 2>&1 | tail -n 5 | tee -a "$LOG"
  export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
  GT="--model gt --edge-latent-channels 64 --mlp-hidden-ratio 4.3 --cuda-graph"
  for chunks in 4 2 1; do squall gt-e64-ratio4.3-chunks$chunks-graph $GT --num-chunks $chunks; done
  unset PYTORCH_CUDA_ALLOC_CONF
  ANCHORS="gt --backend triton" anchors_reserved
  echo "done" | tee -a "$LOG"
  exit 0
fi
if [ "$MATRIX" = v8 ]; then  # the GT's edge projection at the targets; training's fused AdamW
  timeout 300 python3 -m pytest -q -m gpu tests/models/test_kernels.py tests/models/test_kernels_edge_hidden.py \
    tests/models/test_cuda_graph_training.py tests/distributed/test_cuda_graph_forecaster.py \
    -p no:cacheprovider 2>&1 | tail -n 25 | tee -a "$LOG"
  export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
  GT="--model gt --edge-latent-channels 64 --mlp-hidden-ratio 4.3"
  squall gt-e64-ratio4.3-edges2c-foreach-graph $GT --edges-x-2c --foreach-adamw --cuda-graph
  squall gt-e64-ratio4.3-foreach-graph $GT --foreach-adamw --cuda-graph
  squall gt-e64-ratio4.3-graph $GT --cuda-graph
  squall gt-e64-ratio4.3-chunks2-graph $GT --num-chunks 2 --cuda-graph
  squall gt-e64-ratio4.3-chunks1-graph $GT --num-chunks 1 --cuda-graph
  squall gt-e64-ratio4.3-eager $GT --profile 3
  squall gnn-e128-ratio3.25-foreach-graph --model gnn --edge-latent-channels 128 --mlp-hidden-ratio 3.25 --foreach-adamw --cuda-graph
  squall gnn-e128-ratio3.25-graph --model gnn --edge-latent-channels 128 --mlp-hidden-ratio 3.25 --cuda-graph
  unset PYTORCH_CUDA_ALLOC_CONF
  anchors_reserved
  if [ -f "${TRAIN_BASE:-}" ]; then  # squall train, eager and graphed, a GT on the projected route
    MODEL_JSON='{"processor": "graphtransformer", "mapper": "graphtransformer", "hidden_channels": 256, "num_heads": 8, "edge_latent_channels": 64, "mlp_hidden_ratio": 4.3, "num_chunks": 2, "gradient_checkpointing": true}' \
      timeout 240 bash benchmarks/gpu/train_cuda_graph.sh "$TRAIN_BASE" "${TRAIN_EPOCHS:-10}" 2>&1 | tail -n 40 | tee -a "$LOG"
  fi
  echo "done" | tee -a "$LOG"
  exit 0
fi
if [ "$MATRIX" = v7 ]; then
  timeout 300 python3 -m pytest -q -m gpu tests/models/test_kernels.py tests/models/test_kernels_edge_hidden.py \
    tests/models/test_models_processors.py tests/models/test_cuda_graph_training.py \
    -p no:cacheprovider 2>&1 | tail -n 25 | tee -a "$LOG"
  export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
  squall gnn-ckpt-unfused --model gnn --unfused-edge-hidden
  squall gnn-ckpt --model gnn --profile 3
  squall gnn-ckpt-graph --model gnn --cuda-graph
  squall gnn-ckpt-ratio1.3-graph --model gnn --mlp-hidden-ratio 1.3 --cuda-graph
  squall gnn-ckpt-e128-ratio3.25-unfused --model gnn --edge-latent-channels 128 --mlp-hidden-ratio 3.25 --unfused-edge-hidden
  squall gnn-ckpt-e128-ratio3.25 --model gnn --edge-latent-channels 128 --mlp-hidden-ratio 3.25
  squall gnn-ckpt-e128-ratio3.25-graph --model gnn --edge-latent-channels 128 --mlp-hidden-ratio 3.25 --cuda-graph
  squall gt-ckpt-graph --model gt --cuda-graph
  squall gt-ckpt-ratio3.25-graph --model gt --mlp-hidden-ratio 3.25 --cuda-graph
  squall gt-ckpt-e64-ratio4.3 --model gt --edge-latent-channels 64 --mlp-hidden-ratio 4.3 --profile 3
  squall gt-ckpt-e64-ratio4.3-graph --model gt --edge-latent-channels 64 --mlp-hidden-ratio 4.3 --cuda-graph
  unset PYTORCH_CUDA_ALLOC_CONF
  MATRIX=headline OUT="$OUT" bash .anchor-bench/run_anchor_gpu.sh 2>&1 | grep -E "RESULT|###|Error|error" | tee -a "$LOG"
  if [ -f "${TRAIN_BASE:-}" ]; then
    timeout 200 bash benchmarks/gpu/train_cuda_graph.sh "$TRAIN_BASE" "${TRAIN_EPOCHS:-10}" 2>&1 | tail -n 60 | tee -a "$LOG"
  fi
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
