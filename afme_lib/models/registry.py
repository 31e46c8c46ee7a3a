"""Create models by name: the CLI, notebooks and grids all go through :func:`create_model`.

Adding a model is one module in ``afme_lib/models/`` holding a :class:`~afme_lib.models.base.KGModel`
subclass under ``@register_model("name")``: the first time a model is asked for, the registry
imports every module of the package (``pkgutil`` over ``afme_lib.models.__path__``), and the
decorators register what they find. A module kept elsewhere joins the same way once its folder is
on that path (``afme_lib.models.__path__.append(folder)``; the tests add a throw-away model so).
"""

from __future__ import annotations

import importlib
import pkgutil

from afme_lib.core.config import ModelConfig
from afme_lib.core.errors import did_you_mean
from afme_lib.data.feature_store import FeatureStore
from afme_lib.models.base import KGModel

MODEL_REGISTRY: dict[str, type[KGModel]] = {}
PACKAGE = "afme_lib.models"


def register_model(name: str):
    def decorate(cls):
        if name in MODEL_REGISTRY:
            raise ValueError(f"model name {name!r} registered twice")
        MODEL_REGISTRY[name] = cls
        cls.registered_name = name
        return cls

    return decorate


def _import_models() -> None:
    """Import every module of the models package (cached by Python after the first time)."""
    package = importlib.import_module(PACKAGE)
    for module in pkgutil.iter_modules(package.__path__, PACKAGE + "."):
        importlib.import_module(module.name)


def model_names() -> list[str]:
    _import_models()
    return sorted(MODEL_REGISTRY)


def model_class(name: str) -> type[KGModel]:
    """The class registered as ``name``; ValueError (with the closest names) for an unknown one."""
    _import_models()
    if name not in MODEL_REGISTRY:
        raise ValueError(
            f"unknown model {name!r}{did_you_mean(name, MODEL_REGISTRY)}; registered: {sorted(MODEL_REGISTRY)}"
        )
    return MODEL_REGISTRY[name]


def recommended_train_options(name: str) -> dict:
    """The TrainConfig overrides model ``name`` is meant to be trained with ({} for most models)."""
    return dict(model_class(name).recommended_train_options)


def create_model(
    config: ModelConfig, num_entities: int, num_relations: int, features: FeatureStore | None = None
) -> KGModel:
    """Build the model ``config.name`` for a graph of this size, reading ``features`` where the
    model uses modality features."""
    return model_class(config.name)(config, num_entities, num_relations, features)
