"""The named AFME ablations: the one list that notebooks 03 and 05, the grid files in
``configs/``, the main job and the tests read.

Each ablation switches one AFME component off (a boolean :class:`~afme_lib.core.config.ModelConfig`
field) and names the query slice built to need that component (the slice labels of
:mod:`afme_lib.analysis.slices`): removing the component should cost MRR there first. A switch
changes only the code paths and parameters of its component
(``tests/models/test_ablation_components.py``); where one part serves two components (MoIEn's
generator completes missing rows and makes the cross-check's completions), ``component`` says so.

============================  ====================  ===============================================
ablation                      switch                slice it is judged on
============================  ====================  ===============================================
w/o denoising                 ``denoising``         cold attribute queries whose item has a
                                                    corrupted row in the informative modality
w/o dynamic weighting         ``dynamic_weights``   all cold attribute queries
w/o GAN                       ``gan``               cold attribute queries whose item misses the
                                                    informative modality's row
w/o relation context          ``relation_context``  all cold attribute queries
w/o self-attention            ``self_attention``    all cold attribute queries
============================  ====================  ===============================================

``"full"`` is AFME with every component on (no override).
"""

from __future__ import annotations

from dataclasses import dataclass

FULL = "full"
COLD_ATTRIBUTE = "cold/attribute"


@dataclass(frozen=True)
class Ablation:
    """One component switched off: ``switch`` is the ModelConfig field set to False, ``slice`` the
    query slice (of either split) where its loss should show, ``component`` what the switch removes (for reports)."""

    switch: str
    slice: str
    component: str

    @property
    def overrides(self) -> dict:
        return {self.switch: False}


ABLATIONS: dict[str, Ablation] = {
    "w/o denoising": Ablation(
        "denoising",
        f"{COLD_ATTRIBUTE}/corrupted",
        "MoIFu's relation-driven denoising gates (and the energy ratio the weights read from them) and the "
        "cross-check of each measured row against MoIEn's completion",
    ),
    "w/o dynamic weighting": Ablation("dynamic_weights", COLD_ATTRIBUTE, "MoIFu's dynamic modality weights"),
    "w/o GAN": Ablation(
        "gan",
        f"{COLD_ATTRIBUTE}/missing",
        "MoIEn's completion of missing modalities and its critic (the row cross-check keeps the generator, "
        "trained by reconstruction alone)",
    ),
    "w/o relation context": Ablation("relation_context", COLD_ATTRIBUTE, "the relation in the gates and weights"),
    "w/o self-attention": Ablation(
        "self_attention",
        COLD_ATTRIBUTE,
        "self-attention in MoIEn's generator, which makes both the completions of missing rows and the "
        "cross-check's completions",
    ),
}
NAMES = (FULL, *ABLATIONS)


def check_names(names) -> list[str]:
    """``names`` as a list, each ``"full"`` or a key of :data:`ABLATIONS`; a ValueError names any other."""
    names = list(names)
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise ValueError(f"unknown ablation {unknown[0]!r}; the named ones are: {', '.join(NAMES)}")
    return names


def overrides(name: str) -> dict:
    """The ModelConfig fields that make AFME the variant ``name`` ({} for ``"full"``)."""
    check_names([name])
    return {} if name == FULL else ABLATIONS[name].overrides


def variants(names=NAMES) -> dict[str, dict]:
    """``{name: ModelConfig overrides}`` for ``names`` (default: the full model and every ablation),
    in the order given: the ``variants`` mapping of a grid file."""
    return {name: overrides(name) for name in check_names(names)}


def judged_slice(name: str) -> str:
    """The slice an ablation is judged on (:data:`COLD_ATTRIBUTE` for ``"full"``)."""
    check_names([name])
    return COLD_ATTRIBUTE if name == FULL else ABLATIONS[name].slice
