#!/usr/bin/env bash
# The README's test command: set up, then lint (ruff, settings in pyproject.toml) and run the whole
# suite (unit tests and notebooks).
# Arguments go to the unit-test run. The notebook stage executes every notebook top to bottom
# under nbval on the tiny synthetic preset (AFME_NB_QUICK=1; their runs and figures go to the
# git-ignored runs/), the headless check of notebook 04's widget panel, the main job on the tiny
# preset (its five notebooks executed into a temporary folder), and the real-browser
# tests (headless chromium: notebook 04 in JupyterLab, report pages offline; they skip, saying
# why, without /usr/bin/chromium; screenshots in test-artifacts/browser/); skip the stage with
# AFME_SKIP_NOTEBOOKS=1.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python -m ruff check . && python -m ruff format --check .
python -m pytest -q -m "not browser" "$@"
if [ "${AFME_SKIP_NOTEBOOKS:-0}" != "1" ]; then
    AFME_NB_QUICK=1 python -m pytest -q --nbval-lax notebooks/ \
        tests/integration/test_notebooks.py::test_modality_panel_widget_state_is_saved \
        tests/integration/test_notebooks.py::test_one_spec_file_gives_one_run_from_the_cli_a_grid_and_a_notebook \
        tests/integration/test_browser.py \
        tests/experiments/test_main_job.py::test_main_job_executes_the_notebooks_once
fi
