#!/usr/bin/env bash
# The GPU checks of issues 12 and 13 as one prepared run for a lent CUDA machine (H200 here):
#   bash ../shared/tools/device-prep        # once per checkout: wheels + CIFAR-10 into .device/
#   device tool: run "bash studies/gpu_checks.sh" with carry [".device"] and timeout_s ~590
# Every result lands in $OUT as it finishes (bench_train.json, stem_effect.json, verify_effnet.*,
# latency_cuda.json, run.log), so a run cut short still returns what it measured.
# Planned budget on an H200: setup ~45 s, bench_train ~60 s, stem effect ~45 s, efficientnet_b0
# verification with the CIFAR stem (3 models x 3 seeds x 8 epochs) <= 250 s, bench_latency ~90 s.
set -uo pipefail
exec > >(tee -a "$OUT/run.log") 2>&1
t0=$(date +%s)
stamp() { echo "=== $(( $(date +%s) - t0 ))s: $*"; }
stamp setup
bash .device/setup || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
export WIDTHSEARCH_CIFAR10=$PWD/.device/cifar10-train.tar.gz
DATA="cifar10:$WIDTHSEARCH_CIFAR10"

stamp "bench_train (issue 12 item 3)"
timeout 120 python3 benchmarks/bench_train.py --models resnet18,mobilenetv2_100 --input-size 32 \
  --batch-size 256 --steps 50 --repeats 3 --device cuda --json "$OUT/bench_train.json"

stamp "stem effect on CIFAR-10 (issue 12 item 2)"
timeout 100 python3 studies/stem_effect.py --data "$DATA" --models resnet18 \
  --epochs 10 --seeds 0 --batch-size 256 --device cuda --json "$OUT/stem_effect.json"

stamp "verify efficientnet_b0 --same-flops on CIFAR-10, CIFAR stem (issue 12)"
widthsearch reconfig efficientnet_b0 --same-flops -o "$OUT/effnet_same_flops.json" | tail -12
timeout 250 widthsearch verify "$OUT/effnet_same_flops.json" --data "$DATA" --input-size 32 \
  --stem cifar --epochs 8 --batch-size 256 --seeds 0,1,2 --device cuda \
  --out "$OUT/verify_effnet.csv" --json > "$OUT/verify_effnet.json"
python3 - <<'PY'
import json, os
from widthsearch.cli.verify import format_verify
try:
    print(format_verify(json.load(open(os.path.join(os.environ["OUT"], "verify_effnet.json")))))
except Exception as exc:
    print("no verify summary:", exc)
PY

stamp "bench_latency on CUDA (issue 13 item 6)"
timeout 90 python3 benchmarks/bench_latency.py --device cuda --batch-size 32 --quick \
  --json "$OUT/latency_cuda.json" | tail -20
stamp done
