#!/usr/bin/env bash
# Set up and run the main job on the embedded SpatiaLite default: generate the Tongling demo data,
# import its plan layers, build and publish the blueprint, screen the demo parcels, then serve the
# API and the viewer on 127.0.0.1 (Ctrl-C stops the server).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export BLUEPRINT_DATA_DIR=${BLUEPRINT_DATA_DIR:-var/demo}
export BLUEPRINT_DEV_MODE=${BLUEPRINT_DEV_MODE:-true}
exec .venv/bin/python -m cli.demo "$@"
