"""Raw data -> cached modality features, once, in the released ``<DATASET>-<suffix>.pth`` format.

- :func:`~afme_lib.extraction.text.extract_text_features`: entity texts (names or a texts file)
  through a Hugging Face transformers encoder -> ``<DATASET>-textual.pth``.
- :func:`~afme_lib.extraction.image.extract_image_features`: a folder of images per entity through a
  torchvision backbone -> ``<DATASET>-visual.pth``.

Both write finished chunks under ``<out>/.partial/<modality>/`` and skip them when restarted
(:mod:`afme_lib.extraction.writer`), and leave a JSON sidecar beside the feature file saying how it
was made. The heavy libraries (transformers, torchvision, PIL) are imported only by the module
that needs them, so importing this package is cheap.
"""

__all__ = [
    "ExtractionResult",
    "clean_entity_name",
    "dataset_entities",
    "looks_like_id",
    "extract_text_features",
    "extract_image_features",
]

_HOMES = {
    "ExtractionResult": "writer",
    "clean_entity_name": "names",
    "dataset_entities": "names",
    "looks_like_id": "names",
    "extract_text_features": "text",
    "extract_image_features": "image",
}


def __getattr__(name):  # lazy, so that `afme --help` does not pay for torch / transformers imports
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
