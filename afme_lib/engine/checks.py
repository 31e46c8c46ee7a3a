"""Option combinations that cannot work, refused before any data is loaded.

Each field of :class:`~afme_lib.core.config.ModelConfig` and :class:`~afme_lib.core.config.TrainConfig` is
checked on its own by the config itself; what needs the model registry, the scorers or this
machine is checked here, and raises :class:`~afme_lib.core.errors.OptionError` the same way:

- :func:`check_configs` (anywhere, e.g. a grid planned on a laptop for a GPU cluster): the model
  is registered, it takes the loss (1vsall cannot carry the adversarial terms some models add on
  sampled negatives), and its scorer takes ``dim`` (complex scorers store dim/2 complex numbers).
- :func:`check_run` (where the run happens): the device exists on this machine, a GPU-only
  option is not asked of a CPU run, and a model that reads modality features is given some
  (:func:`check_features`), unless structure only was asked for explicitly (``modalities=[]``).

A batch larger than the training set is allowed (one full-batch step per epoch), so it is not
refused; nor are more negatives than entities (they are drawn with replacement).
"""

from __future__ import annotations

import torch

from afme_lib.core.config import SAMPLED_LOSSES, ModelConfig, TrainConfig
from afme_lib.core.errors import OptionError, did_you_mean, literal
from afme_lib.models.registry import model_class, model_names
from afme_lib.models.scorers import make_scorer


def check_configs(model_cfg: ModelConfig, train_cfg: TrainConfig) -> None:
    """Raise OptionError when the two configs (each checked on its own when built) cannot train
    together on any machine."""
    name = model_cfg.name
    names = model_names()
    if name not in names:
        raise OptionError(
            "name", f"must be a registered model: {', '.join(names)} (got {literal(name)}){did_you_mean(name, names)}"
        )
    cls = model_class(name)
    if train_cfg.loss == "1vsall" and cls.sampled_loss_only:
        raise OptionError(
            "loss",
            f"1vsall cannot train model {name!r}: it adds adversarial terms on sampled "
            f"negatives; use one of {', '.join(SAMPLED_LOSSES)}",
        )
    scorer = cls.scorer_name or model_cfg.scorer
    try:
        make_scorer(scorer, p_norm=model_cfg.p_norm).entity_dim(model_cfg.dim)
    except ValueError:
        via = f"{{scorer}} {scorer}" if not cls.scorer_name else f"its scorer {scorer}"
        raise OptionError(
            "dim",
            f"must be even for model {name!r} with {via}, which stores dim/2 complex numbers (got {model_cfg.dim})",
        ) from None


def check_run(
    model_cfg: ModelConfig, train_cfg: TrainConfig, features=None, needs_features: bool = True, looked_in=None
) -> None:
    """What this machine and the inputs allow (the configs themselves are checked where they are
    built, :func:`check_configs`).

    ``features`` is the feature folder (None: none; ``looked_in``: the dataset folder searched for
    feature files in vain); ``needs_features=False`` skips the feature check (a resumed run keeps
    the inputs it started with).
    """
    device = train_cfg.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise OptionError("device", f"{device} needs a CUDA device and torch sees none; use auto or cpu")
    if device == "mps" and not torch.backends.mps.is_available():
        raise OptionError("device", "mps needs Apple's Metal device and torch sees none; use auto or cpu")
    on_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if train_cfg.amp != "none" and not on_cuda:
        raise OptionError(
            "amp",
            f"{train_cfg.amp} is for CUDA devices and this run is not on one ({{device}} {device}); use {{amp}} none",
        )
    if needs_features:
        check_features(model_cfg, features, looked_in)


def wants_features(model_cfg: ModelConfig) -> bool:
    """Whether the model reads modality features and structure only was not asked for."""
    return model_cfg.modalities != [] and model_class(model_cfg.name).reads_features


def check_features(model_cfg: ModelConfig, features=None, looked_in=None) -> None:
    """Refuse a model that reads modality features when there are none (``features`` None);
    ``looked_in``: the dataset folder that was searched for feature files in vain."""
    if features is None and wants_features(model_cfg):
        folder = str(looked_in).replace("{", "{{").replace("}", "}}")  # the problem text is a format string
        searched = f" and the dataset folder {folder} holds no feature files" if looked_in else ""
        raise OptionError(
            "features",
            f"are needed by model {model_cfg.name!r} (it fuses modality features), none "
            f"were given{searched}: pass {{features}} FOLDER (released <DATASET>-visual.pth ... or "
            "<modality>.npy files), or ask for structure only: --modalities none (modalities=[] from "
            "Python)",
        )
