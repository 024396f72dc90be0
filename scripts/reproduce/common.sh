# Shared body of the paper reproduction scripts (scripts/reproduce/{dogs,elephants,horses,imagenet}.sh).
# Each script sets NAME, PRESET and RAW (its raw layout: folder, lsun, imagenet) and calls: reproduce DATA OUT [GPUS] [NODES]
#
#   prep -> train (paper preset, paper global batch 64) -> eval (fid50k_full, kid50k_full, nfs256, geometry
#   scores; is50k when IS_WEIGHTS is given) -> export (videos, grid, meshes, report). Every step is idempotent:
#   rerunning skips what is complete and resumes what was interrupted.
#
# Environment:
#   THREEDGP=3dgp              the CLI
#   DEPTH_WEIGHTS=res50.pth    raw images only: LeReS weights for the depth (the official *_with_depth.zip already
#                              carry <name>_depth.png and need none)
#   EMBEDDER_WEIGHTS=r50.pth   timm resnet50 weights for the distillation embeddings (the paper's); without it the
#                              packaged tf_efficientnet_lite0 is used (a documented deviation)
#   IS_WEIGHTS=inception.pt    NVIDIA's inception-2015-12-05.pt for is50k
#   MASTER_ADDR, MASTER_PORT   with NODES > 1: the rendezvous of torchrun (run the script on every node, OUT on a
#                              shared filesystem)
#   NODE_RANK=0                with NODES > 1: this node's rank; only node 0 preps, evaluates and exports (the
#                              others wait for the prepped data, then train)
#   REPRO_SMOKE=1              seconds-long smoke mode on tiny inputs (CPU; the tests use it)
set -euo pipefail

CLI=${THREEDGP:-3dgp}
say() { printf '\n\033[1m== %s: %s\033[0m\n' "$NAME" "$*"; }

# The prep source for DATA: a zip or folder of images (the official releases), else the dataset's raw layout.
prep_source() {
  local data=$1 raw=$2
  if [ -f "$data" ] && [[ "$data" == *.zip ]]; then echo zip
  elif [ -d "$data" ] && [ "$raw" = lsun ] && [ -f "$data/data.mdb" ]; then echo lsun
  elif [ -d "$data" ] && [ "$raw" = imagenet ] && [ -n "$(find "$data" -maxdepth 1 -type d -name 'n*' | head -n 1)" ]; then
    echo imagenet
  else echo folder
  fi
}

prep_options() {  # prep_options SOURCE
  local opts=(--resolution "$RES")
  [ "$1" = lsun ] && opts+=(--max-images "${MAX_IMAGES:-40000}")
  [ "$1" = imagenet ] && opts+=(--keep-ratio "${KEEP_RATIO:-1.0}")
  [ -n "${DEPTH_WEIGHTS:-}" ] && opts+=(--depth-model leres --depth-weights "$DEPTH_WEIGHTS")
  [ -n "${EMBEDDER_WEIGHTS:-}" ] && opts+=(--embedder resnet50 --embedder-weights "$EMBEDDER_WEIGHTS")
  echo "${opts[@]}"
}

latest_run() { ls -d "$1"/*/ 2>/dev/null | sort | tail -n 1 | sed 's:/$::'; }

reproduce() {
  local data=${1:?usage: $0 DATA OUT [GPUS] [NODES]} out=${2:?usage: $0 DATA OUT [GPUS] [NODES]}
  local gpus=${3:-1} nodes=${4:-1}
  RES=256
  local train=(--preset "$PRESET") images="fid50k_full,kid50k_full" geometry="nfs256,mvc,depth,camera"
  local export_opts=(--seeds 0-15 --video --grid --mesh glb --report)
  if [ "${REPRO_SMOKE:-0}" = 1 ]; then
    RES=32
    train=(--preset tiny --kimg 0.016 --set run.tick_kimg=0.008 --set run.snapshot_kimg=0.016 --metrics none)
    images="fid16,kid16" geometry="nfs8,mvc4,depth8,camera"
    export_opts=(--seeds 0-1 --grid --mesh obj --mesh-res 32 --report)  # videos: tests/export
  fi
  [ -n "${IS_WEIGHTS:-}" ] && images="$images,is50k"
  mkdir -p "$out"

  local node_rank=${NODE_RANK:-0} source reference="$out/data"
  [ "$NAME" = imagenet ] && reference="$out/reference"  # FID against the full, unfiltered ImageNet (as the paper)
  say "1/4 prep $data -> $out/data"
  source=$(prep_source "$data" "$RAW")
  if [ "$node_rank" != 0 ]; then  # node 0 preps; a dataset folder appears only once complete (atomic rename)
    until [ -d "$out/data" ] && [ -d "$reference" ]; do sleep 30; done
  else
    # shellcheck disable=SC2046
    "$CLI" prep "$source" "$data" "$out/data" $(prep_options "$source")
    if [ "$reference" != "$out/data" ]; then
      local ref_opts=(--resolution "$RES" --depth-model none --embedder none)
      [ "$source" = imagenet ] && ref_opts+=(--keep-ratio 1.0)
      "$CLI" prep "$source" "$data" "$reference" "${ref_opts[@]}"
    fi
  fi

  say "2/4 train ($gpus GPU(s) x $nodes node(s), global batch as the preset) -> $out/runs"
  local cmd=("$CLI" train)
  if [ "$nodes" -gt 1 ]; then
    cmd=(torchrun --nnodes "$nodes" --nproc-per-node "$gpus" --rdzv-backend c10d
         --rdzv-endpoint "${MASTER_ADDR:?set MASTER_ADDR for NODES > 1}:${MASTER_PORT:-29500}" -m threedgp_cli train)
  elif [ "$gpus" -gt 1 ]; then
    train+=(--gpus "$gpus")
  fi
  if ls "$out"/runs/*/training-state-*.pt >/dev/null 2>&1; then
    "${cmd[@]}" --resume --outdir "$out/runs"
  else
    "${cmd[@]}" --data "$out/data" --outdir "$out/runs" "${train[@]}"
  fi
  [ "$node_rank" = 0 ] || return 0  # evaluation and export run once, on node 0
  local run
  run=$(latest_run "$out/runs")

  say "3/4 eval $run"
  local eval_opts=(--snapshots best)
  [ -n "${IS_WEIGHTS:-}" ] && eval_opts+=(--is-weights "$IS_WEIGHTS")
  if [ "$reference" = "$out/data" ]; then
    [ -f "$out/metrics.json" ] || "$CLI" eval "$run" "${eval_opts[@]}" --metrics "$images,$geometry" \
      --out "$out/metrics.json"
  else  # image metrics against the full reference; geometry (depth realism needs depth) against the training data
    [ -f "$out/metrics.json" ] || "$CLI" eval "$run" "${eval_opts[@]}" --metrics "$images" --data "$reference" \
      --out "$out/metrics.json"
    [ -f "$out/geometry.json" ] || "$CLI" eval "$run" --snapshots best --metrics "$geometry" --out "$out/geometry.json"
  fi

  say "4/4 export -> $out/export"
  [ -f "$out/export/report.html" ] || "$CLI" export "$run" --outdir "$out/export" "${export_opts[@]}"
  say "done: metrics card $out/metrics.json, report $out/export/report.html"
}
