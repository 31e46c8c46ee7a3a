"""The rule oracle against a brute-force loop that builds each query's candidate set explicitly."""

import numpy as np
import pytest

from afme_lib.data.dataset import load_dataset
from afme_lib.data.synthetic import read_metadata
from afme_lib.data.synthetic_oracle import oracle_mrr_by_kind, oracle_ranks


def _brute_force(ds, meta, split):
    comm = np.array(meta["entity_communities"])
    attrs = np.array(meta["entity_attributes"]).T
    types = np.array(meta["entity_types"])
    known = {}
    for h, r, t in ds.all_true.tolist():
        known.setdefault(("tail", h, r), set()).add(t)
        known.setdefault(("head", t, r), set()).add(h)
    out = {"tail": [], "head": []}
    for h, r, t in ds.split(split).tolist():
        rel = meta["relations"][r]
        for side, query, answer in (("tail", h, t), ("head", t, h)):
            c_map = list(rel["community_map"])
            want_comm = c_map[comm[query]] if side == "tail" else c_map.index(comm[query])
            cand = comm == want_comm
            if rel["kind"] == "attribute":
                a, v_map = rel["attribute"], list(rel["value_map"])
                want = v_map[attrs[query, a]] if side == "tail" else v_map.index(attrs[query, a])
                cand &= attrs[:, a] == want
            else:
                cand &= np.isin(types, rel["tail_types"] if side == "tail" else rel["head_types"])
            assert cand[answer], "the ground truth must hold for every triple"
            others = known[(side, query, r)] - {answer}
            cand[list(others)] = False
            n = int(cand.sum())  # the answer ties with the n - 1 other candidates left
            out[side].append((1 + n) / 2)
    return {s: np.array(v) for s, v in out.items()}


@pytest.mark.parametrize("split", ["valid", "test"])
def test_oracle_ranks_match_brute_force(tiny_synth, split):
    ds, meta = load_dataset(tiny_synth), read_metadata(tiny_synth)
    got, want = oracle_ranks(ds, meta, split), _brute_force(ds, meta, split)
    for side in ("tail", "head"):
        np.testing.assert_allclose(got[side], want[side])


def test_oracle_mrr_by_kind_pools_both_sides(tiny_synth):
    ds, meta = load_dataset(tiny_synth), read_metadata(tiny_synth)
    ranks = oracle_ranks(ds, meta)
    mrr = oracle_mrr_by_kind(ds, meta)
    assert mrr["all"] == pytest.approx(np.mean(1 / np.concatenate([ranks["tail"], ranks["head"]])))
    # features narrow attribute relations K-fold, so the oracle ranks them much better
    assert mrr["attribute"] > 2 * mrr["structural"] > 0
