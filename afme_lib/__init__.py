"""afme-workbench: multi-modal knowledge graph completion (AFME and baselines)."""

__version__ = "0.1.0"
