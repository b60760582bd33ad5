#!/usr/bin/env bash
# `squall train` on one GPU with training.cuda_graph off and on, same config otherwise: wall time
# of the training, its best validation loss and the profiler's median step time (its marks
# synchronise the GPU before and after backward in the eager run: an upper bound there). Run from the repository root on a GPU machine:
#   bash benchmarks/gpu/train_cuda_graph.sh BASE_RESOLVED.yaml [EPOCHS]
# BASE_RESOLVED.yaml: a resolved training config (e.g. results/storm/resolved.yaml) whose
# dataset, graph and statistics files exist here. Writes results/gpu_train/{eager,graph}/.
# MODEL_JSON='{"processor": "graphtransformer", ...}' overrides keys of its model section.
set -eu
BASE=$1
EPOCHS=${2:-10}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
for mode in eager graph; do
  root=results/gpu_train/$mode
  rm -rf "$root" && mkdir -p "$root"
  MODEL_JSON=${MODEL_JSON:-} python3 - "$BASE" "$root" "$mode" "$EPOCHS" <<'EOF'
import json, os, sys
import yaml
base, root, mode, epochs = sys.argv[1:]
config = yaml.safe_load(open(base))
config["model"].update(json.loads(os.environ["MODEL_JSON"] or "{}"))
config["system"]["hardware"].update(accelerator="gpu", devices=1, precision="bf16-mixed")
config["system"]["output"]["root"] = root
config["training"]["cuda_graph"] = mode == "graph"
config["training"]["max_epochs"] = int(epochs)
config["diagnostics"]["mlflow"]["enabled"] = False
config["diagnostics"]["profiler"] = True  # profile.json: median step time, samples/s
open(f"{root}/resolved.yaml", "w").write(yaml.safe_dump(config, sort_keys=False))
EOF
  start=$(date +%s.%N)
  python3 -m squall.cli train "$root/resolved.yaml" > "$root/train.log" 2>&1 || { tail -n 30 "$root/train.log"; exit 1; }
  end=$(date +%s.%N)
  python3 - "$root" "$start" "$end" "$mode" <<'EOF'
import json, sys
root, start, end, mode = sys.argv[1:]
summary = json.load(open(f"{root}/training_summary.json"))
profile = json.load(open(f"{root}/profile.json"))
print("TRAIN " + json.dumps({"mode": mode, "wall_s": round(float(end) - float(start), 1),
      "steps": summary["steps"], "best_val_loss": summary["best_val_loss"],
      "step_ms": profile["median_per_batch"]["step_ms"],
      "samples_per_s": profile["samples_per_second"], "peak_mib": profile["peak_memory_mib"]}))
EOF
done
