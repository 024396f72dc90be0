#!/usr/bin/env bash
# Reproduce 3DGP on SDIP Elephants (elephant_256_with_depth.zip, or a folder of images):
# prep -> train --preset elephants -> eval -> export. Rerunning resumes every step.
#
#   scripts/reproduce/elephants.sh DATA OUT [GPUS] [NODES]
#
# See scripts/reproduce/common.sh for the environment (weights, multi-node rendezvous, smoke mode).
set -euo pipefail
NAME=elephants
PRESET=elephants
RAW=folder
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
reproduce "$@"
