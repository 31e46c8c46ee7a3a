"""Analysis and plotting for the notebooks: each module does one job and returns plain tables
(pandas DataFrames) and plotly figures, so the notebooks stay thin and everything is testable.

- :mod:`~afme_lib.analysis.figures`: notebook renderer, :func:`save_figure` (HTML, PNG when possible)
- :mod:`~afme_lib.analysis.explore`: dataset tables (splits, relations, entities, coverage) and figures
- :mod:`~afme_lib.analysis.quality`: per-row feature norms and neighbour agreement (noisy rows)
- :mod:`~afme_lib.analysis.curves`: learning curves from a run's ``log.jsonl``
- :mod:`~afme_lib.analysis.tables`: metric tables in %, mean ± std over seeds, bar charts
- :mod:`~afme_lib.analysis.modality_weights`: AFME's gates and modality weights per relation, vs ground truth
- :mod:`~afme_lib.analysis.embeddings`: entity representations per modality and fused, UMAP maps
- :mod:`~afme_lib.analysis.corruption`: noisy / missing copies of a feature store; a trained model
  on another store
- :mod:`~afme_lib.analysis.robustness`: MRR as noise and missingness rise, at test and train time
- :mod:`~afme_lib.analysis.predictions`: top-k predictions of a query
- :mod:`~afme_lib.analysis.panel`: the ipywidgets panel (relation / entity -> weights, predictions)
"""
