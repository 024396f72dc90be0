#!/usr/bin/env bash
# One prepared GPU check (issue 12 §2): run it in ONE call on a fresh GPU machine with no internet.
#
#   bash benchmarks/gpu_check.sh OUTDIR [--quick] [--dry-run]
#
# Writes OUTDIR/summary.md (one section per step: exit code, seconds, the log's tail) and OUTDIR/<step>.log /
# OUTDIR/*.json (raw). Every step has its own time limit and a failing step does not stop the others, so one call
# always brings back everything it could measure. Budget: about 9 minutes (--quick: about 5).
#   install    the machine's own torch (a venv with --system-site-packages); this project with --no-deps; the
#              packages it lacks from wheels/gpu (made beforehand by scripts/gpu_wheels.sh); no network
#   doctor     3dgp doctor --build-ops --json: builds the CUDA ops and runs their parity self-checks
#   gpu-tests  pytest -m gpu (CUDA kernels vs reference, forward and backward)
#   train-step benchmarks/train_step.py: imagenet and dogs presets, sec/kimg with reference vs CUDA ops and at each
#              precision (fp32, tf32, bf16), peak memory, achieved TFLOP/s vs the matmul rate measured alongside
#   render     benchmarks/render_throughput.py --device cuda: reference vs fused compositor
#   ddp        benchmarks/ddp_rehearsal.py: two processes on the one GPU (gloo carrying CUDA tensors), a few ticks
#              of the imagenet preset at 64x64 with metrics in the middle, a resume with one process, eval with 2
#              and 1 process(es) (equal cards); every collective of training and eval recorded per rank
#   toy64      a short toy64 training run on the GPU: finite losses, FID at start and end (fid1k)
#   fid        benchmarks/fid_throughput.py on the GPU (needs the packaged Inception)
# --dry-run prints the commands instead of running them (tested on CPU: tests/benchmarks/test_gpu_check.py).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: benchmarks/gpu_check.sh OUTDIR [--quick] [--dry-run]}
shift
QUICK=0
DRY=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    --dry-run) DRY=1 ;;
    *) echo "gpu_check.sh: unknown option $arg (expected --quick or --dry-run)" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SUMMARY="$OUT/summary.md"
PY=${PYTHON:-python3}
VENV=${GPU_VENV:-.gpuvenv}
WHEELS=${GPU_WHEELS:-wheels/gpu}
TOY_KIMG=$([ "$QUICK" = 1 ] && echo 2 || echo 6)
PRESETS=$([ "$QUICK" = 1 ] && echo imagenet || echo imagenet,dogs)
DDP_KIMG=$([ "$QUICK" = 1 ] && echo 0.256 || echo 0.512)
{ echo "# 3dgp GPU check"; echo; echo "date: $(date -u +%FT%TZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo -)"
  echo "quick: $QUICK  dry-run: $DRY"; echo; } > "$SUMMARY"

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "## $name" >> "$SUMMARY"
  if [ "$DRY" = 1 ]; then
    echo "DRY $name (limit ${limit}s): $*" | tee -a "$SUMMARY"
    echo >> "$SUMMARY"
    return 0
  fi
  local start rc
  start=$(date +%s)
  timeout "$limit" bash -c "$*" > "$OUT/$name.log" 2>&1
  rc=$?
  { echo "exit $rc after $(( $(date +%s) - start )) s (limit ${limit}s)"; echo '```'; tail -n 25 "$OUT/$name.log"
    echo '```'; echo; } >> "$SUMMARY"
  echo "gpu_check: $name exit $rc"
  return 0
}

B="$VENV/bin"
step install 120 "
  set -e
  [ -x $B/python ] || $PY -m venv --system-site-packages $VENV
  $B/python -c 'import torch; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, torch.cuda.is_available())'
  $B/python -m pip install -q --no-index --no-deps -e .
  if [ -d $WHEELS ]; then $B/python -m pip install -q --no-index --find-links $WHEELS $WHEELS/*.whl || true; fi
  $B/python -m pip check || true
  $B/3dgp --version"
step doctor 240 "$B/3dgp doctor --build-ops --json > '$OUT/doctor.json'; cat '$OUT/doctor.json' | tail -n 40"
step gpu-tests 150 "$B/python -m pytest -q -p no:cacheprovider -m gpu tests/ops"
step train-step 240 "$B/python benchmarks/train_step.py --skip-small --skip-tiny --device cuda --presets $PRESETS \
  --precisions fp32,tf32,bf16 --json '$OUT/train_step.json'"
step render 60 "$B/python benchmarks/render_throughput.py --device cuda"
step ddp 200 "$B/python benchmarks/ddp_rehearsal.py '$OUT/ddp' --device cuda:0 --preset imagenet --resolution 64 \
  --kimg $DDP_KIMG"
step toy64 240 "
  set -e
  export THREEDGP_CACHE_DIR='$OUT/cache' THREEDGP_NO_PROGRESS=1
  $B/3dgp prep toy '$OUT/toy' --num 1000 --resolution 64 --seed 0
  $B/3dgp train --data '$OUT/toy' --preset toy64 --kimg $TOY_KIMG --outdir '$OUT/runs' --metrics fid1k \
      --set run.metrics_kimg=$TOY_KIMG --set run.snapshot_kimg=0
  $B/python - '$OUT/runs' <<'PYEOF'
import json, math, sys, pathlib
run = sorted(pathlib.Path(sys.argv[1]).iterdir())[-1]
stats = [json.loads(l) for l in open(run / 'stats.jsonl')]
metrics = [json.loads(l) for l in open(run / 'metrics.jsonl')]
finite = all(math.isfinite(v) for r in stats for k, v in r.items() if k.startswith('Loss/') and isinstance(v, float))
print('losses finite:', finite, '| fid1k:', [round(m['fid1k'], 2) for m in metrics],
      '| sec/kimg:', [round(r['Timing/sec_per_kimg'], 1) for r in stats])
sys.exit(0 if finite and len(metrics) >= 2 and metrics[-1]['fid1k'] < metrics[0]['fid1k'] else 1)
PYEOF"
step fid 90 "$B/python benchmarks/fid_throughput.py --num 256"
echo "summary: $SUMMARY"
