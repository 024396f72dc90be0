#!/usr/bin/env bash
# `make demo`: the whole chain on our toy 3D scenes, sized for a laptop CPU (20-36 minutes on 2 quiet cores with the
# install, 25-47 beside a busy program, depending on the host; RESULTS.md "make demo" §27, §28, §33; a GPU is used
# automatically when present):
#   prep toy --scenes simple -> train --preset demo (DEMO_KIMG) -> eval init and final -> export -> summary.
# Rerunning continues where it stopped: a finished step is skipped, an interrupted training run resumes.
#
#   scripts/demo.sh [OUT]            OUT defaults to out/demo
#   DEMO_KIMG=40                     training length in kimg: a length, not a time budget, so that a busy or slow
#                                    machine shows the same model later (the ETA says when) instead of a worse one
#                                    sooner. The verdict's criteria hold from ~40 kimg on; past ~50 the preset's
#                                    fading density noise lets the geometry flatten (benchmarks/RESULTS.md,
#                                    "make demo" §14, §16)
#   DEMO_MINUTES=N                   optional: stop training after N minutes ...
#   DEMO_MIN_KIMG=M                  ... but never before M kimg (default: DEMO_KIMG, i.e. the minutes never cut it)
#   DEMO_NUM=1000                    toy scenes
#   DEMO_TRAIN_THREADS=1             training's CPU threads (1: the same model on a quiet or a busy machine; auto)
#   THREEDGP=.venv/bin/3dgp          the CLI to use
#   DEMO_SMOKE=1                     seconds-long smoke mode (tests): a few kimg, small metrics and exports
set -euo pipefail
OUT=${1:-out/demo}
MINUTES=${DEMO_MINUTES:-}
KIMG=${DEMO_KIMG:-40}
MIN_KIMG=${DEMO_MIN_KIMG:-$KIMG}
METRICS=fid1k,nfs256,mvc,depth,camera
SEEDS=0-7 FRAMES=48 MESH_RES=96 GIF_SEEDS=0-3 GIF_FRAMES=24
if [ "${DEMO_SMOKE:-0}" = 1 ]; then
  KIMG=0.016 MIN_KIMG=0.008 METRICS=fid16,nfs16,mvc4,depth16,camera SEEDS=0-1 FRAMES=4 MESH_RES=32 GIF_SEEDS=0-1 GIF_FRAMES=4
fi
MIN_KIMG=$(awk -v a="$MIN_KIMG" -v b="$KIMG" 'BEGIN { print (a < b) ? a : b }')  # never past the length cap
NUM=${DEMO_NUM:-1000}
CLI=${THREEDGP:-.venv/bin/3dgp}
# One thread per core that other programs leave free: beside a busy program, one thread per core is several times
# slower (benchmarks/RESULTS.md, "make demo" §8).
export THREEDGP_THREADS=${THREEDGP_THREADS:-auto}
# Training itself runs one thread whatever the load, so that a quiet and a busy machine make the same model, bit for
# bit (the thread count changes the order of the arithmetic: with auto, one commit's demo ended at FID 155.3 quiet and
# 151.5 beside a busy program, "make demo" §33). DEMO_TRAIN_THREADS=auto trains faster on a quiet machine with more
# cores, with a model that then depends on the load.
TRAIN_THREADS=${DEMO_TRAIN_THREADS:-1}
mkdir -p "$OUT"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1/5 prep: $NUM simple toy scenes at 32x32 with ground-truth depth -> $OUT/toy"
"$CLI" prep toy "$OUT/toy" --scenes simple --num "$NUM" --resolution 32 --seed 0 --preview "$OUT/toy_preview.png"

LENGTH=(--kimg "$KIMG" --threads "$TRAIN_THREADS")
WHAT="$KIMG kimg"
if [ -n "$MINUTES" ]; then
  LENGTH+=(--minutes "$MINUTES" --min-kimg "$MIN_KIMG")
  WHAT="$KIMG kimg or $MINUTES minutes, whichever comes first (but at least $MIN_KIMG kimg)"
fi
say "2/5 train: the demo preset, $WHAT -> $OUT/runs"
if [ ! -f "$OUT/.trained" ]; then
  if ls -d "$OUT"/runs/*/training-state-* >/dev/null 2>&1; then
    "$CLI" train --resume --outdir "$OUT/runs" "${LENGTH[@]}" --force-override
  else
    "$CLI" train --data "$OUT/toy" --preset demo --outdir "$OUT/runs" "${LENGTH[@]}"
  fi
  touch "$OUT/.trained"
fi
RUN=$(ls -d "$OUT"/runs/*/ | sort | tail -n 1)
RUN=${RUN%/}
INIT="$RUN/snapshot-000000.000.pt"
FINAL=$(ls "$RUN"/snapshot-*.pt | sort | tail -n 1)

say "3/5 eval: image quality (FID against the toy set), non-flatness, multi-view consistency, depth realism and camera spread, at init and at the end"
mkdir -p "$OUT/eval"
for which in init final; do
  snap=$([ "$which" = init ] && echo "$INIT" || echo "$FINAL")
  [ -f "$OUT/eval/$which.json" ] || "$CLI" eval "$snap" --metrics "$METRICS" --out "$OUT/eval/$which.json"
done

say "4/5 export: turntable videos, depth grid, meshes and an HTML report of the final model"
if [ ! -f "$OUT/export/report.html" ]; then
  "$CLI" export "$FINAL" --outdir "$OUT/export" --seeds "$SEEDS" --video --trajectory orbit --frames "$FRAMES" \
    --resolution 64 --grid --mesh glb --mesh-res "$MESH_RES" --report
fi
if [ ! -f "$OUT/readme/grid.png" ]; then
  "$CLI" export "$FINAL" --outdir "$OUT/readme" --seeds "$GIF_SEEDS" --video --trajectory orbit --frames "$GIF_FRAMES" \
    --fps 12 --format gif --resolution 64 --grid --grid-views 4
fi

say "5/5 summary"
"$CLI" demo summary "$OUT" --init "$OUT/eval/init.json" --final "$OUT/eval/final.json"
cat <<DONE

Everything is in $OUT:
  toy_preview.png           the training data (images, ground-truth depth, estimated depth)
  $RUN/   the training run (log.txt, stats.jsonl, fakes*.png, snapshots)
  eval/init.json, eval/final.json   metric cards
  export/report.html        open in a browser: samples, turntables, 3D meshes, curves, metrics
  export/videos/, export/meshes/, export/grid.png
  summary.md                the 3D criteria, init vs final
DONE
