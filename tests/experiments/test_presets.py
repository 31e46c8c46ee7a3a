"""The configuration the claims are judged on besides the one their settings were chosen on."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from afme_lib.core.errors import AfmeError
from afme_lib.data import synthetic
from afme_lib.data.synthetic import read_metadata
from afme_lib.experiments import presets
from afme_lib.experiments.spec import STAMP_FILE, dataset_folder, synthetic_folder


def test_held_out_differs_from_default_in_modalities_noise_and_missing_share():
    default, held = synthetic.PRESETS["default"], presets.EVIDENCE_PRESETS[presets.HELD_OUT]
    held.validate()
    informative = {m for m, spec in held.modalities.items() if spec.attributes}
    assert len(held.modalities) != len(default.modalities)
    assert len(informative) < len({m for m, spec in default.modalities.items() if spec.attributes})
    assert {spec.noise for m, spec in held.modalities.items() if m in informative} != {
        spec.noise for spec in default.modalities.values() if spec.attributes
    }
    assert min(held.modalities[m].missing for m in informative) > max(s.missing for s in default.modalities.values())
    # every attribute keeps a second, weaker source, so a missing row can still be completed
    attributes = range(len(held.attribute_values))
    for a in attributes:
        assert sum(a in spec.attributes for spec in held.modalities.values()) == 1
        assert sum(a in spec.weak for spec in held.modalities.values()) == 1
    assert set(presets.all_presets()) == set(synthetic.PRESETS) | {
        presets.HELD_OUT,
        presets.NOISY,
        presets.MISSING,
        presets.TWO_MODALITIES,
    }


def test_noisy_is_default_with_only_the_informative_modalities_noise_raised():
    default, noisy = synthetic.PRESETS["default"], presets.EVIDENCE_PRESETS[presets.NOISY]
    noisy.validate()
    assert replace(noisy, name=default.name, modalities=default.modalities) == default
    assert set(noisy.modalities) == set(default.modalities)
    for name, spec in noisy.modalities.items():
        expected = replace(default.modalities[name], noise=0.5) if spec.attributes else default.modalities[name]
        assert spec == expected, name
    assert {spec.noise for spec in noisy.modalities.values() if spec.attributes} == {0.5}


def test_missing_is_default_with_only_the_informative_modalities_missing_share_raised():
    default, missing = synthetic.PRESETS["default"], presets.EVIDENCE_PRESETS[presets.MISSING]
    missing.validate()
    assert replace(missing, name=default.name, modalities=default.modalities) == default
    for name, spec in missing.modalities.items():
        expected = replace(default.modalities[name], missing=0.20) if spec.attributes else default.modalities[name]
        assert spec == expected, name


def test_two_modalities_is_default_with_held_outs_layout_at_defaults_noise_and_missing_share():
    default = synthetic.PRESETS["default"]
    two, held = presets.EVIDENCE_PRESETS[presets.TWO_MODALITIES], presets.EVIDENCE_PRESETS[presets.HELD_OUT]
    two.validate()
    assert replace(two, name=default.name, modalities=default.modalities) == default
    assert set(two.modalities) == set(held.modalities)
    for name, spec in two.modalities.items():
        layout = ("attributes", "weak", "dim", "scale", "corrupted")
        assert all(getattr(spec, f) == getattr(held.modalities[name], f) for f in layout), name
        assert (spec.noise, spec.missing) == (default.modalities[name].noise, default.modalities[name].missing), name


def test_held_out_resolves_by_name_and_regenerates_when_its_config_changes(tmp_path, monkeypatch):
    folder = dataset_folder(f"synth:{presets.HELD_OUT}:3", data_root=tmp_path)
    assert folder == synthetic_folder(presets.HELD_OUT, 3, tmp_path)
    meta = read_metadata(folder)
    assert meta["config"]["name"] == "synth-held-out" and set(meta["config"]["modalities"]) == {
        "text",
        "image",
        "numeric",
    }
    stamp = json.loads((folder / STAMP_FILE).read_text())
    assert stamp["preset"] == presets.HELD_OUT and "config_sha1" in stamp
    before = (folder / "train2id.txt").read_bytes()
    assert synthetic_folder(presets.HELD_OUT, 3, tmp_path) == folder  # reused
    assert (folder / "train2id.txt").read_bytes() == before

    changed = replace(presets.EVIDENCE_PRESETS[presets.HELD_OUT], num_items=600)
    monkeypatch.setitem(presets.EVIDENCE_PRESETS, presets.HELD_OUT, changed)
    synthetic_folder(presets.HELD_OUT, 3, tmp_path)
    assert read_metadata(folder)["config"]["num_items"] == 600  # an edited config is not served stale
    # the generator's own presets keep their stamp: folders written before are reused as they are
    assert "config_sha1" not in json.loads((synthetic_folder("tiny", 0, tmp_path) / STAMP_FILE).read_text())


def test_an_unknown_preset_names_the_known_ones(tmp_path):
    with pytest.raises(AfmeError, match="held-out"):
        synthetic_folder("held-ot", 0, tmp_path)
