#!/usr/bin/env bash
# Reproduce 3DGP on LSUN Horses (lsun_horses_256_40k_with_depth.zip, or the raw LSUN horse LMDB):
# prep -> train --preset horses -> eval -> export. Rerunning resumes every step.
#
#   scripts/reproduce/horses.sh DATA OUT [GPUS] [NODES]
#
# See scripts/reproduce/common.sh for the environment (weights, multi-node rendezvous, smoke mode).
# MAX_IMAGES: with the raw LSUN LMDB, use its first N images (the paper's 40k subset; default 40000).
set -euo pipefail
NAME=horses
PRESET=horses
RAW=lsun
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
reproduce "$@"
