"""Create models by name: the CLI, notebooks and grids all go through :func:`create_model`.

Adding a model is one module plus one ``@register_model("name")`` line; the module is listed in
``_MODEL_MODULES`` so it is imported (and so registered) the first time a model is asked for.
"""

from __future__ import annotations

import importlib
from typing import Callable

from afme_lib.config import ModelConfig
from afme_lib.errors import did_you_mean

MODEL_REGISTRY: dict[str, Callable] = {}
_MODEL_MODULES = ("afme_lib.models.structural", "afme_lib.models.multimodal", "afme_lib.models.afme",
                  "afme_lib.models.mmkrl", "afme_lib.models.otkge", "afme_lib.models.native")


def register_model(name: str):
    def decorate(cls):
        if name in MODEL_REGISTRY:
            raise ValueError(f"model name {name!r} registered twice")
        MODEL_REGISTRY[name] = cls
        cls.registered_name = name
        return cls
    return decorate


def _import_models() -> None:
    for module in _MODEL_MODULES:
        importlib.import_module(module)


def model_names() -> list[str]:
    _import_models()
    return sorted(MODEL_REGISTRY)


def model_class(name: str):
    """The class registered as ``name``; ValueError (with the closest names) for an unknown one."""
    _import_models()
    if name not in MODEL_REGISTRY:
        raise ValueError(f"unknown model {name!r}{did_you_mean(name, MODEL_REGISTRY)}; registered: {sorted(MODEL_REGISTRY)}")
    return MODEL_REGISTRY[name]


def recommended_train_options(name: str) -> dict:
    """The TrainConfig overrides model ``name`` is meant to be trained with ({} for most models)."""
    return dict(model_class(name).recommended_train_options)


def create_model(config: ModelConfig, num_entities: int, num_relations: int, features=None):
    """Build the model ``config.name`` for a graph of this size (``features``: a FeatureStore)."""
    return model_class(config.name)(config, num_entities, num_relations, features)
