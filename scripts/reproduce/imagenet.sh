#!/usr/bin/env bash
# Reproduce 3DGP on ImageNet at 256^2 (imagenet_256_with_depth.zip, or the ILSVRC-2012 train folder):
# prep -> train --preset imagenet -> eval -> export. Rerunning resumes every step.
#
#   scripts/reproduce/imagenet.sh DATA OUT [GPUS] [NODES]
#
# See scripts/reproduce/common.sh for the environment (weights, multi-node rendezvous, smoke mode).
# KEEP_RATIO: per-class instance selection of a raw ImageNet folder (3DGP ref §7.2; the paper's ratio is not in
# the official repository: take it from the paper's appendix; default 1.0 = keep all). The FID reference is
# always the full, unfiltered set, prepped beside the training data.
set -euo pipefail
NAME=imagenet
PRESET=imagenet
RAW=imagenet
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
reproduce "$@"
