"""Models: score functions, structural and multi-modal baselines, AFME, and the registry."""

from afme_lib.models.registry import MODEL_REGISTRY, create_model, register_model

__all__ = ["MODEL_REGISTRY", "create_model", "register_model"]
