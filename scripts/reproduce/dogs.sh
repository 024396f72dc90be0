#!/usr/bin/env bash
# Reproduce 3DGP on SDIP Dogs (dogs_256_with_depth.zip, or a folder of images):
# prep -> train --preset dogs -> eval -> export. Rerunning resumes every step.
#
#   scripts/reproduce/dogs.sh DATA OUT [GPUS] [NODES]
#
# See scripts/reproduce/common.sh for the environment (weights, multi-node rendezvous, smoke mode).
set -euo pipefail
NAME=dogs
PRESET=dogs
RAW=folder
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
reproduce "$@"
