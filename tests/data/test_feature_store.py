"""FeatureStore: released-format files, missing rows, and refusal of anything but plain tensors."""

from __future__ import annotations

import contextlib
import io
import pickle
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from afme_lib.core.errors import DataFormatError
from afme_lib.data.feature_store import FeatureStore

N = 6


def _features(dim: int, seed: int) -> torch.Tensor:
    # strictly positive: no row is accidentally all-zero
    return torch.rand(N, dim, generator=torch.Generator().manual_seed(seed)) + 0.1


def _load(folder: Path, **kwargs) -> tuple[FeatureStore, list[str]]:
    """Load; return the store and what loading said: printed lines, then warning messages."""
    printed = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(printed):
        warnings.simplefilter("always")
        store = FeatureStore.load(folder, N, **kwargs)
    return store, printed.getvalue().splitlines() + [
        str(w.message)
        for w in caught
        if issubclass(w.category, UserWarning)
        and "weights_only" not in str(w.message)
        and "pickle protocol" not in str(w.message)
    ]


def _refused(folder: Path, path: Path, problem: str, **kwargs) -> None:
    with pytest.raises(DataFormatError) as info:
        FeatureStore.load(folder, N, **kwargs)
    assert str(info.value) == f"{path}: {problem}"


# ---------------------------------------------------------------- reading


def test_released_format(tmp_path):
    visual, textual = _features(4, 0), _features(3, 1)
    torch.save(visual, tmp_path / "MKG-W-visual.pth")
    torch.save(textual, tmp_path / "MKG-W-textual.pth")
    (tmp_path / "README.txt").write_text("not a feature file")
    store, messages = _load(tmp_path)
    assert messages == [
        f"features from {tmp_path}: MKG-W-textual.pth (text: {N} rows x 3 dims), "
        f"MKG-W-visual.pth (image: {N} rows x 4 dims)"
    ]  # one line, no warning
    assert sorted(store.modalities) == ["image", "text"]
    assert torch.equal(store.features["image"], visual) and torch.equal(store.features["text"], textual)
    assert store.features["image"].dtype == torch.float32
    assert all(bool(mask.all()) and mask.dtype == torch.bool for mask in store.masks.values())
    assert store.coverage()["text"] == {"dim": 3, "present": N, "missing": 0, "coverage": 1.0}


def test_npy_and_pt_named_by_modality(tmp_path):
    audio = np.asarray(_features(2, 2), dtype=np.float64)
    np.save(tmp_path / "audio.npy", audio)
    torch.save(_features(5, 3).half(), tmp_path / "numeric.pt")
    np.save(tmp_path / "graph.npy", np.arange(N, dtype=np.int64))  # 1-D: one column; ints -> float
    store, _ = _load(tmp_path)
    assert sorted(store.modalities) == ["audio", "graph", "numeric"]
    assert torch.allclose(store.features["audio"], torch.from_numpy(audio).float())
    assert store.features["numeric"].dtype == torch.float32 and store.features["numeric"].shape == (N, 5)
    assert store.features["graph"].tolist() == [[float(i)] for i in range(N)]
    assert store.masks["graph"].tolist() == [False] + [True] * (N - 1)  # row 0 is all-zero


def test_big_endian_npy(tmp_path):
    values = (np.arange(N * 2).reshape(N, 2) + 1).astype(">f4")
    assert values.dtype.byteorder == ">"
    np.save(tmp_path / "image.npy", values)
    store, _ = _load(tmp_path)
    assert store.features["image"].tolist() == values.astype("<f4").tolist()


def test_only_requested_modalities(tmp_path):
    torch.save(_features(4, 0), tmp_path / "DB15K-visual.pth")
    torch.save(_features(3, 1), tmp_path / "DB15K-textual.pth")
    store, _ = _load(tmp_path, modalities=["text"])
    assert store.modalities == ["text"]


def test_loaded_parameter_is_frozen(tmp_path):
    torch.save(torch.nn.Parameter(_features(3, 0)), tmp_path / "X-visual.pth")
    store, _ = _load(tmp_path)
    assert not store.features["image"].requires_grad


# ---------------------------------------------------------------- save / load


def test_save_load_round_trip(tmp_path):
    store = FeatureStore(N)
    image = _features(4, 0)
    image[2] = 0
    text = _features(3, 1)
    text[[1, 4]] = float("nan")
    store.add("image", image)
    store.add("text", text)
    store.add("layout", _features(2, 2), mask=torch.tensor([True, True, True, True, True, False]))
    written = store.save(tmp_path / "out", "MKG-Y")
    assert sorted(p.name for p in written) == ["MKG-Y-layout.pth", "MKG-Y-textual.pth", "MKG-Y-visual.pth"]
    loaded, messages = _load(tmp_path / "out")
    assert sorted(loaded.modalities) == ["image", "layout", "text"]
    for m in store.modalities:
        assert torch.equal(loaded.features[m], store.features[m]), m
        assert torch.equal(loaded.masks[m], store.masks[m]), m
    assert loaded.masks["text"].tolist() == [True, False, True, True, False, True]
    assert messages == [
        f"features from {tmp_path / 'out'}: MKG-Y-layout.pth (layout: {N} rows x 2 dims, 1 missing), "
        f"MKG-Y-textual.pth (text: {N} rows x 3 dims, 2 missing), "
        f"MKG-Y-visual.pth (image: {N} rows x 4 dims, 1 missing)"
    ]
    # a saved file is one plain tensor: readable by the released-format consumers
    plain = torch.load(tmp_path / "out" / "MKG-Y-visual.pth", weights_only=True)
    assert type(plain) is torch.Tensor and torch.equal(plain, store.features["image"])


def test_save_refuses_modality_that_would_load_back_renamed(tmp_path):
    store = FeatureStore(N)
    store.add("clip-image", _features(2, 0))
    expected = "modality 'clip-image' cannot be saved as X-clip-image.pth: it would load back as 'image'"
    with pytest.raises(ValueError, match=re.escape(expected)):
        store.save(tmp_path, "X")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- missing rows


def test_zero_and_non_finite_rows_are_missing_and_zeroed(tmp_path):
    values = _features(3, 0)
    values[1] = 0
    values[2, 0] = float("nan")
    values[3, 2] = float("inf")
    values[4, 1] = -float("inf")
    torch.save(values, tmp_path / "MKG-W-visual.pth")
    store, messages = _load(tmp_path)
    assert messages == [f"features from {tmp_path}: MKG-W-visual.pth (image: {N} rows x 3 dims, 4 missing)"]
    assert store.masks["image"].tolist() == [True, False, False, False, False, True]
    assert torch.isfinite(store.features["image"]).all()
    assert store.features["image"][1:5].abs().sum() == 0
    assert torch.equal(store.features["image"][[0, 5]], values[[0, 5]])
    assert store.coverage()["image"] == {"dim": 3, "present": 2, "missing": 4, "coverage": pytest.approx(2 / N)}
    _, quiet = _load(tmp_path, verbose=False)
    assert quiet == []


def test_add_returns_missing_count_and_applies_mask():
    store = FeatureStore(N)
    values = _features(2, 0)
    values[0] = float("nan")
    missing = store.add("video", values, mask=torch.tensor([1, 1, 0, 1, 1, 1]))
    assert missing == 2
    assert store.masks["video"].tolist() == [False, True, False, True, True, True]
    assert store.features["video"][[0, 2]].abs().sum() == 0
    with pytest.raises(ValueError, match=re.escape(f"mask of shape (5,) for {N} entities")):
        store.add("video", values, mask=torch.ones(5, dtype=torch.bool))


# ---------------------------------------------------------------- refusals


def test_row_count_differs_from_entity_count(tmp_path):
    torch.save(_features(3, 0)[:5], tmp_path / "MKG-W-textual.pth")
    _refused(tmp_path, tmp_path / "MKG-W-textual.pth", f"feature tensor has 5 rows but the dataset has {N} entities")


def test_three_dimensional_tensor_refused(tmp_path):
    torch.save(torch.ones(N, 2, 2), tmp_path / "X-visual.pth")
    _refused(tmp_path, tmp_path / "X-visual.pth", f"expected a 2-D tensor [entities, dim], got shape ({N}, 2, 2)")


def test_zero_columns_and_bool_refused(tmp_path):
    store = FeatureStore(N)
    with pytest.raises(DataFormatError) as info:
        store.add("image", torch.ones(N, 0), source="a.pt")
    assert str(info.value) == f"a.pt: feature tensor has shape ({N}, 0): zero feature columns"
    with pytest.raises(DataFormatError) as info:
        store.add("image", torch.ones(N, 2, dtype=torch.bool), source="b.pt")
    assert str(info.value) == "b.pt: unsupported feature dtype torch.bool"


def test_container_of_tensors_refused(tmp_path):
    torch.save({"image": _features(2, 0)}, tmp_path / "X-visual.pth")
    _refused(tmp_path, tmp_path / "X-visual.pth", "expected one tensor with a row per entity, found dict")


_REFUSED = re.compile(
    r"(?P<path>.+): refused: holds pickled Python objects, which could run code when loaded"
    r"(?: \(it asks for (?P<wanted>[\w.]+)\))?; save the features with torch.save\(tensor\) or as a numeric \.npy"
)


def _refused_pickle(folder: Path, path: Path) -> str | None:
    with pytest.raises(DataFormatError) as info:
        FeatureStore.load(folder, N)
    match = _REFUSED.fullmatch(str(info.value))
    assert match and match["path"] == str(path), str(info.value)
    return match["wanted"]


def test_arbitrary_object_pickle_refused(tmp_path):
    torch.save({"a": object()}, tmp_path / "X-visual.pth")
    assert _refused_pickle(tmp_path, tmp_path / "X-visual.pth") in (None, "object", "builtins.object")


class _Malicious:
    """Unpickling this calls open(marker, "w"): the marker file appears if the pickle ever runs."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("how", ["torch.save", "pickle.dump"])
def test_malicious_pickle_does_not_run(tmp_path, how):
    marker = tmp_path / "marker"
    path = tmp_path / "feats" / "X-visual.pth"
    path.parent.mkdir()
    if how == "torch.save":
        torch.save(_Malicious(marker), path)
    else:
        with path.open("wb") as f:
            pickle.dump(_Malicious(marker), f, protocol=2)
    wanted = _refused_pickle(path.parent, path)
    assert not marker.exists()
    assert wanted in (None, "io.open", "builtins.open")


def test_npy_object_array_refused(tmp_path):
    np.save(tmp_path / "image.npy", np.array([{"a": 1}] * N, dtype=object), allow_pickle=True)
    assert _refused_pickle(tmp_path, tmp_path / "image.npy") is None


def test_npy_strings_refused(tmp_path):
    np.save(tmp_path / "text.npy", np.array(["cat"] * N))
    _refused(tmp_path, tmp_path / "text.npy", "unsupported .npy dtype <U3: expected numbers")


def test_not_a_npy_or_torch_file(tmp_path):
    (tmp_path / "text.npy").write_text("hello")
    _refused(tmp_path, tmp_path / "text.npy", "not a .npy file (no NUMPY header)")
    (tmp_path / "text.npy").unlink()
    (tmp_path / "X-textual.pth").write_bytes(b"")
    _refused(tmp_path, tmp_path / "X-textual.pth", "empty file")


def test_unknown_modality_lists_what_was_found(tmp_path):
    torch.save(_features(4, 0), tmp_path / "MKG-W-visual.pth")
    np.save(tmp_path / "text.npy", _features(3, 1).numpy())
    _refused(
        tmp_path,
        tmp_path,
        "no feature file for modalities ['audio', 'video']; found ['image', 'text']",
        modalities=["video", "text", "audio"],
    )


def test_two_files_for_one_modality_refused(tmp_path):
    torch.save(_features(4, 0), tmp_path / "MKG-W-visual.pth")
    np.save(tmp_path / "image.npy", _features(4, 0).numpy())
    _refused(tmp_path, tmp_path / "image.npy", "second file for modality 'image' (first: MKG-W-visual.pth)")


def test_missing_or_empty_folder(tmp_path):
    _refused(tmp_path / "absent", tmp_path / "absent", "feature folder not found")
    (tmp_path / "notes.txt").write_text("nothing here")
    _refused(tmp_path, tmp_path, "no feature files (*.pth, *.pt, *.npy) in this folder")
