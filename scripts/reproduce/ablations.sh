#!/usr/bin/env bash
# The paper's ablations on any prepped dataset: depth adaptor (none = P 0, P 0.5, P 1), knowledge distillation
# (off) and the camera adaptor (off), each against the baseline (the preset as the paper); then `3dgp eval` of each
# run's best snapshot and one comparison table (OUT/comparison.md: FID, NFS, geometry scores, kimg to reach the
# baseline's final FID).
#
#   scripts/reproduce/ablations.sh DATA OUT [PRESET] [GPUS]
#
# DATA is a dataset written by `3dgp prep`; PRESET defaults to dogs. Rerunning resumes every run and skips finished
# evaluations. KIMG=N shortens every run (same budget for all); TRAIN_METRICS sets the training curve's metric
# (default fid2k_full, the paper's); VARIANTS="baseline no_kd" runs only those (default: all six).
# DRY_RUN=1 writes each variant's resolved config to OUT/<variant>/config.dry-run.json and trains nothing.
# REPRO_SMOKE=1: seconds-long smoke mode (tests).
set -euo pipefail
DATA=${1:?usage: $0 DATA OUT [PRESET] [GPUS]}
OUT=${2:?usage: $0 DATA OUT [PRESET] [GPUS]}
PRESET=${3:-dogs}
GPUS=${4:-1}
CLI=${THREEDGP:-3dgp}
TRAIN_METRICS=${TRAIN_METRICS:-fid2k_full}
EVAL_METRICS="fid50k_full,nfs256,mvc,depth,camera"
LENGTH=()
[ -n "${KIMG:-}" ] && LENGTH=(--kimg "$KIMG")
if [ "${REPRO_SMOKE:-0}" = 1 ]; then
  PRESET=tiny TRAIN_METRICS=fid16 EVAL_METRICS="fid16,nfs8,mvc4,depth8,camera"
  LENGTH=(--kimg 0.016 --set run.tick_kimg=0.008 --set run.metrics_kimg=0.008)
fi
[ "$GPUS" -gt 1 ] && LENGTH+=(--gpus "$GPUS")

declare -A FLAGS=(
  [baseline]=""
  [depth_adaptor_none]="--depth-adaptor-p 0"
  [depth_adaptor_p0.5]="--depth-adaptor-p 0.5"
  [depth_adaptor_p1]="--depth-adaptor-p 1"
  [no_kd]="--kd-weight 0"
  [no_camera_adaptor]="--no-camera-adaptor"
)
VARIANTS=${VARIANTS:-baseline depth_adaptor_none depth_adaptor_p0.5 depth_adaptor_p1 no_kd no_camera_adaptor}
for variant in $VARIANTS; do
  [ -n "${FLAGS[$variant]+set}" ] || { echo "ablations.sh: unknown variant $variant (known: ${!FLAGS[*]})" >&2; exit 2; }
  printf '\n\033[1m== ablation %s (%s)\033[0m\n' "$variant" "${FLAGS[$variant]:-the preset}"
  dir="$OUT/$variant"
  mkdir -p "$dir"
  if [ "${DRY_RUN:-0}" = 1 ]; then
    # shellcheck disable=SC2086
    "$CLI" train --data "$DATA" --preset "$PRESET" --outdir "$dir/runs" --metrics "$TRAIN_METRICS" "${LENGTH[@]}" \
      ${FLAGS[$variant]} --dry-run > "$dir/config.dry-run.json"
    continue
  fi
  if ls "$dir"/runs/*/training-state-*.pt >/dev/null 2>&1; then
    "$CLI" train --resume --outdir "$dir/runs"
  else
    # shellcheck disable=SC2086
    "$CLI" train --data "$DATA" --preset "$PRESET" --outdir "$dir/runs" --metrics "$TRAIN_METRICS" "${LENGTH[@]}" \
      ${FLAGS[$variant]}
  fi
  run=$(ls -d "$dir"/runs/*/ | sort | tail -n 1)
  [ -f "$dir/metrics.json" ] || "$CLI" eval "${run%/}" --snapshots best --metrics "$EVAL_METRICS" --out "$dir/metrics.json"
done
[ "${DRY_RUN:-0}" = 1 ] && exit 0
printf '\n\033[1m== comparison (%s/comparison.md)\033[0m\n' "$OUT"
"$CLI" compare "$OUT"
