"""Synthetic configurations that exist to test claims, beside the generator's own presets.

The main job's settings and AFME's defaults were chosen on the ``default`` preset
(reports/main/selection.md). A claim that holds only on the graph its settings were chosen on says
little, so the claims are judged again on a configuration no choice looked at: ``held-out`` differs
from ``default`` in the number of modalities, their noise and the share of missing rows. It lives
here, not in :data:`afme_lib.data.synthetic.PRESETS`, because it belongs to the evidence protocol,
not to the generator; :func:`afme_lib.experiments.spec.synthetic_folder` resolves both, so
``synth:held-out`` names it anywhere a dataset is named.

``noisy``, ``missing`` and ``two-modalities`` are ``default`` with one of ``held-out``'s
differences each: the informative modalities' noise at 0.5 instead of 0.3; a fifth of their rows
missing; held-out's two informative modalities instead of three. Where AFME's behaviour under one
such difference is studied, and any change for it chosen, on their validation split, so that no
such choice looks at ``held-out``.
"""

from __future__ import annotations

from dataclasses import replace

from afme_lib.data import synthetic
from afme_lib.data.synthetic import ModalitySpec, SynthConfig

HELD_OUT = "held-out"
NOISY = "noisy"
MISSING = "missing"
TWO_MODALITIES = "two-modalities"


def _informative_changed(name: str, **changes) -> SynthConfig:
    """`default` with ``changes`` made to every informative modality (one that encodes attributes)."""
    default = synthetic.PRESETS["default"]
    modalities = {m: replace(spec, **changes) if spec.attributes else spec for m, spec in default.modalities.items()}
    return replace(default, name=name, modalities=modalities)


EVIDENCE_PRESETS: dict[str, SynthConfig] = {
    # Against `default`: two informative modalities instead of three (text and image each encode
    # three attributes strongly and the other three weakly, so every attribute still has a second
    # source), noise 0.5 instead of 0.3, a fifth of the rows missing instead of about a tenth, and a
    # smaller graph (1000 items, 1200 triples per structural relation).
    HELD_OUT: replace(
        synthetic.PRESETS["default"],
        name="synth-held-out",
        num_items=1000,
        structural_triples=1200,
        modalities={
            "text": ModalitySpec((0, 1, 2), dim=64, noise=0.5, scale=1.0, corrupted=0.08, missing=0.20, weak=(3, 4, 5)),
            "image": ModalitySpec(
                (3, 4, 5), dim=64, noise=0.5, scale=10.0, corrupted=0.08, missing=0.20, weak=(0, 1, 2)
            ),
            "numeric": ModalitySpec((), dim=16, noise=1.0, scale=0.1),
        },
    ),
    # Against `default`: only the informative modalities' noise, 0.5 instead of 0.3.
    NOISY: _informative_changed("synth-noisy", noise=0.5),
    # Against `default`: only the informative modalities' missing share, 0.20 instead of 0.08-0.12.
    MISSING: _informative_changed("synth-missing", missing=0.20),
    # Against `default`: only the layout of the informative modalities, held-out's two (text and
    # image, three strong and three weak attributes each) at default's noise and missing shares.
    TWO_MODALITIES: replace(
        synthetic.PRESETS["default"],
        name="synth-two-modalities",
        modalities={
            "text": ModalitySpec((0, 1, 2), dim=64, noise=0.3, scale=1.0, corrupted=0.08, missing=0.08, weak=(3, 4, 5)),
            "image": ModalitySpec(
                (3, 4, 5), dim=64, noise=0.3, scale=10.0, corrupted=0.08, missing=0.12, weak=(0, 1, 2)
            ),
            "numeric": ModalitySpec((), dim=16, noise=1.0, scale=0.1),
        },
    ),
}


def all_presets() -> dict[str, SynthConfig]:
    """The generator's presets and :data:`EVIDENCE_PRESETS`, by name."""
    return {**synthetic.PRESETS, **EVIDENCE_PRESETS}
