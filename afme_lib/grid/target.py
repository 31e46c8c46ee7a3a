"""The ``train`` target: a grid cell that is one training run, with no notebook around it.

A cell of a grid file with ``target: train`` is a flat mapping of

- ``dataset`` (registered name or folder, required), ``features`` (feature folder, default
  none: a model that reads features then uses the dataset folder's own), ``data_dir`` (where
  registered datasets live);
- ``model`` (the registered model name, :class:`~afme_lib.config.ModelConfig`'s ``name``) and
  any other ``ModelConfig`` field (``dim``, ``scorer``, ``modalities``, ``gan`` ...);
- any :class:`~afme_lib.config.TrainConfig` field (``epochs``, ``lr``, ``loss``, ``seed`` ...).

The two dataclasses share no field name, so a flat key says which config it sets; every key is
checked against them before anything runs. The training configuration of a cell is, from the
weakest to the strongest::

    TrainConfig defaults  <  the model's recommended_train_options  <  the cell's parameters

so a model's recipe (DistMult's logistic loss with N3, NATIVE's lambdas; declared on the model
class, :mod:`afme_lib.models.registry`) holds wherever a grid does not say otherwise, and
``progress`` is off (the runner prints a line per cell). The cell runs
:func:`afme_lib.pipeline.run_or_resume` into its run folder: a finished run is read, an
interrupted one resumed, a missing one trained.
"""

from __future__ import annotations

import time
from dataclasses import fields
from pathlib import Path

from afme_lib.config import ModelConfig, TrainConfig
from afme_lib.errors import OptionError
from afme_lib.grid.execute import describe_error

TARGETS = ("train",)
INPUTS = ("dataset", "features", "data_dir")
MODEL_FIELDS = tuple(f.name for f in fields(ModelConfig) if f.name != "name")
TRAIN_FIELDS = tuple(f.name for f in fields(TrainConfig))
PARAMETERS = (*INPUTS, "model", *MODEL_FIELDS, *TRAIN_FIELDS)


def split_parameters(params: dict) -> tuple[dict, dict, dict]:
    """``(inputs, ModelConfig fields, TrainConfig fields)`` of a cell's flat parameters
    (``model`` becomes ``name``); an OptionError names a key that is none of them."""
    inputs, model, train = {}, {}, {}
    for key, value in params.items():
        if key in INPUTS:
            inputs[key] = value
        elif key == "model":
            model["name"] = value
        elif key in MODEL_FIELDS:
            model[key] = value
        elif key in TRAIN_FIELDS:
            train[key] = value
        else:
            raise OptionError(key, "is not a parameter of the train target (dataset, features, data_dir, model, "
                              "or a ModelConfig / TrainConfig field)")
    return inputs, model, train


def cell_configs(params: dict) -> tuple[dict, ModelConfig, TrainConfig]:
    """The inputs, ModelConfig and TrainConfig of a train cell (see the module docstring), with
    every option and combination checked (:mod:`afme_lib.combinations`); OptionError otherwise."""
    from afme_lib.combinations import check_configs  # here: it loads the model registry (torch), reading a grid needs not
    from afme_lib.models.registry import recommended_train_options  # same reason

    inputs, model, train = split_parameters(params)
    if "dataset" not in inputs:
        raise OptionError("dataset", "is required by the train target (a registered name or a folder)")
    model_cfg = ModelConfig.from_dict(model)
    try:
        recipe = recommended_train_options(model_cfg.name)
    except ValueError as err:
        raise OptionError("model", str(err)) from None
    train_cfg = TrainConfig.from_dict({**recipe, "progress": False, **train})
    check_configs(model_cfg, train_cfg)
    return inputs, model_cfg, train_cfg


def run_train_cell(run_dir: str, params: dict, threads: int | None = None) -> dict:
    """Train (or read, or resume) the run of one cell into ``run_dir``.

    Never raises for a failing cell: returns ``{"status": "ok"|"failed", "error", "seconds",
    "metrics"}`` as :func:`afme_lib.grid.execute.run_cell` does for a notebook. ``threads``:
    torch threads of this process (a worker process of a parallel grid)."""
    from afme_lib.pipeline import run_or_resume  # here: the engine loads torch, which reading a grid needs not

    if threads:
        import torch  # a worker's own thread budget

        torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        inputs, model_cfg, train_cfg = cell_configs(params)
        metrics = run_or_resume(inputs["dataset"], model_cfg, train_cfg, Path(run_dir), features=inputs.get("features"),
                                data_dir=inputs.get("data_dir"))
    except Exception as err:  # noqa: BLE001 -- every failure becomes the cell's error, the grid goes on
        return {"status": "failed", "error": describe_error(err), "seconds": round(time.perf_counter() - start, 3),
                "metrics": None}
    return {"status": "ok", "error": None, "seconds": round(time.perf_counter() - start, 3), "metrics": metrics}
