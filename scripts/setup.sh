#!/usr/bin/env bash
# Create .venv (once) and install the workbench with everything the notebooks and tests need.
# Idempotent: a second run only checks that the installed set is complete.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
if ! python -c "import afme_lib, torch, torchvision, papermill, nbval, hypothesis, selenium, plotly, umap, ipywidgets, pykeen, optuna, ruff" 2>/dev/null; then
    python -m pip install --quiet --upgrade pip
    # A torch/torchvision pair that imports together (PyPI's torchvision needs its own torch build).
    case "$(uname -m)" in
        x86_64) python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1" ;;
        *) python -m pip install --quiet "torch>=2.14" "torchvision>=0.29" ;;
    esac
    python -m pip install --quiet -e ".[notebooks,features,test,bench,tune]"
fi
