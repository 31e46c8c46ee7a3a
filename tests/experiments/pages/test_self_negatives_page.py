"""The self-negatives page: the default weight is chosen on validation only, and the default in
the code is the one the committed runs chose."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from afme_lib.core.config import TrainConfig
from afme_lib.experiments.grid.report import read_results
from afme_lib.experiments.pages.self_negatives import default_weight, mean_valid_mrr

REPORT = Path(__file__).resolve().parents[3] / "reports" / "self-negatives"


def rows(variant: str, weight: float, valid: list[float], test: float) -> list[dict]:
    return [
        {"variant": variant, "self_negatives": weight, "seed": seed, "status": "ok", "valid_mrr": v, "mrr": test}
        for seed, v in enumerate(valid)
    ]


def test_the_default_weight_is_the_best_mean_validation_mrr_over_the_models():
    results = pd.DataFrame(
        rows("a", 0.0, [0.50, 0.52], test=0.99)
        + rows("a", 1.0, [0.60, 0.62], test=0.10)
        + rows("b", 0.0, [0.70, 0.70], test=0.99)
        + rows("b", 1.0, [0.64, 0.66], test=0.10)
        + [{"variant": "b", "self_negatives": 2.0, "seed": 0, "status": "failed", "valid_mrr": 0.99, "mrr": 0.99}]
    )
    table = mean_valid_mrr(results, ["a", "b"])
    assert table.loc["a", 1.0] == pytest.approx(0.61) and table.loc["b", 0.0] == pytest.approx(0.70)
    assert 2.0 not in table.columns  # a failed run counts for nothing
    # a: +0.10 with weight 1, b: -0.05: the mean over the models picks 1, whatever test says
    assert default_weight(results, ["a", "b"]) == 1.0
    assert default_weight(results.iloc[:0], ["a", "b"]) is None


@pytest.mark.skipif(not (REPORT / "results.csv").is_file(), reason="the committed self-negatives page is absent")
def test_the_configs_default_is_the_weight_the_committed_runs_chose():
    results = read_results(REPORT)
    assert default_weight(results, list(dict.fromkeys(results["variant"]))) == TrainConfig().self_negatives
