"""The main job's claims on constructed studies: each claim met where its numbers pass its
threshold and not met where they do not, and the rule that judges a claim over seeds."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from afme_lib.analysis import slices
from afme_lib.core import ablations
from afme_lib.experiments import main_job
from afme_lib.experiments.main_job import Claim, Study, claims, judge

COLD = ablations.COLD_ATTRIBUTE
HOLDING = {"afme": 76.0, "rotate": 13.0, "mm-concat": 20.0, slices.RULE: 100.0, slices.FEATURES: 84.0}


def study(cold: dict | None = None, auc: float = 0.95, changes: dict | None = None) -> Study:
    """A study whose cold/attribute MRRs, weight-truth AUC and ablation changes are as given
    (defaults: every claim met)."""
    cold = {**HOLDING, **(cold or {})}
    table = pd.DataFrame({COLD: cold})
    table.loc["queries", COLD] = 400
    changes = {name: -5.0 for name in ablations.ABLATIONS} | (changes or {})
    ablation = pd.DataFrame(
        {
            "slice": [ablations.ABLATIONS[n].slice for n in changes],
            "MRR %": [cold["afme"] + c for c in changes.values()],
            "full MRR %": [cold["afme"]] * len(changes),
            "change (points)": list(changes.values()),
        },
        index=list(changes),
    )
    return Study(
        runs={}, table=table, ablation=ablation, agreement=None, score={"auc": auc, "relations_scored": 6}, weights=None
    )


def by_text(found: list[Claim]) -> dict[str, Claim]:
    return {c.text.split(" on ")[0].split(" MRR")[0]: c for c in found}


def test_every_claim_is_met_on_a_study_that_passes_each_threshold():
    found = claims(study())
    assert len(found) == 4 + len(ablations.ABLATIONS)
    assert all(c.met for c in found), [c.text for c in found if not c.met]


@pytest.mark.parametrize(
    "case, failing",
    [
        ({"cold": {"afme": 69.0, "mm-concat": 20.0}}, "AFME ≥ 0.7 × the rule oracle's"),
        ({"cold": {"rotate": 50.0}}, "AFME ≥ RotatE + 30 points of"),
        ({"cold": {"mm-concat": 80.0}}, "AFME beats the best feature-reading baseline"),
        ({"auc": 0.85}, "weight–truth AUC ≥ 0.9"),
        ({"changes": {"w/o GAN": 0.0}}, "w/o GAN lowers"),
        ({"changes": {"w/o denoising": 1.5}}, "w/o denoising lowers"),
    ],
)
def test_each_claim_fails_alone_where_its_numbers_miss_its_threshold(case, failing):
    found = claims(study(**case))
    missed = [c.text for c in found if not c.met]
    assert len(missed) == 1 and missed[0].startswith(failing), missed


def test_a_threshold_is_met_at_equality_and_a_comparison_only_above_it():
    at_threshold = claims(study({"afme": 70.0, "rotate": 40.0, "mm-concat": 70.0}, auc=0.9))
    met = {c.text: c.met for c in at_threshold}
    assert met["AFME ≥ 0.7 × the rule oracle's MRR on cold/attribute"]
    assert met["AFME ≥ RotatE + 30 points of MRR on cold/attribute"]
    assert met["weight–truth AUC ≥ 0.9"]
    assert not met["AFME beats the best feature-reading baseline on cold/attribute"]


def test_the_margin_is_the_distance_past_the_threshold():
    found = {c.text: c for c in claims(study({"afme": 80.0, "rotate": 20.0}, auc=0.97, changes={"w/o GAN": -3.0}))}
    assert found["AFME ≥ 0.7 × the rule oracle's MRR on cold/attribute"].margin == pytest.approx(0.1)
    assert found["AFME ≥ RotatE + 30 points of MRR on cold/attribute"].margin == pytest.approx(30.0)
    assert found["AFME beats the best feature-reading baseline on cold/attribute"].margin == pytest.approx(60.0)
    assert found["weight–truth AUC ≥ 0.9"].margin == pytest.approx(0.07)
    assert found[f"w/o GAN lowers MRR on {COLD}/missing"].margin == pytest.approx(3.0)


def one_claim(margins: list[float]) -> main_job.Verdict:
    found = {seed: [Claim("c", "", m, strict=True)] for seed, m in enumerate(margins)}
    (verdict,) = judge(found)
    return verdict


def test_a_claim_holds_over_seeds_on_four_of_five_with_a_mean_past_two_standard_errors():
    assert one_claim([3.0, 4.0, 5.0, 4.5, 3.5]).holds
    assert one_claim([3.0, 4.0, 5.0, 4.5, -0.5]).holds  # one seed missed, the mean still clear
    verdict = one_claim([3.0, 4.0, -1.0, 4.5, -0.5])  # two seeds missed
    assert verdict.met_on == 3 and not verdict.holds


def test_a_claim_met_on_every_seed_fails_when_its_mean_is_within_two_standard_errors():
    verdict = one_claim([0.1, 0.1, 0.1, 0.1, 9.0])
    se = verdict.standard_error
    assert verdict.met_on == 5 and verdict.mean < 2 * se and not verdict.holds
    assert se == pytest.approx(pd.Series([0.1, 0.1, 0.1, 0.1, 9.0]).std(ddof=1) / math.sqrt(5))


def test_one_seed_cannot_make_a_claim_hold():
    verdict = one_claim([10.0])
    assert math.isnan(verdict.standard_error) and not verdict.holds


def test_judge_pairs_each_claim_with_the_same_claim_of_every_seed():
    seeds = {seed: claims(study({"afme": 76.0 + seed})) for seed in range(5)}
    seeds[3] = claims(study(changes={"w/o GAN": 2.0}))
    verdicts = {v.text: v for v in judge(seeds)}
    gan = verdicts[f"w/o GAN lowers MRR on {COLD}/missing"]
    assert gan.met_on == 4 and gan.margins[3] == -2.0
    assert verdicts["AFME ≥ RotatE + 30 points of MRR on cold/attribute"].margins == pytest.approx(
        [33.0, 34.0, 35.0, 33.0, 37.0]
    )
