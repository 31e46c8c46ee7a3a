#!/usr/bin/env bash
# The README's main job: set up, then run the workbench on the embedded synthetic dataset.
# No download; a few minutes on a laptop CPU; the result lands in reports/main/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
afme main-job "$@"
