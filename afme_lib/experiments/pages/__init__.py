"""The benchmark pages of ``reports/``, written from a grid's ``results.csv``.

Each former benchmark script is a grid file in ``configs/`` (``target: train``, see
:mod:`afme_lib.experiments.grid.target`) plus a page function here; ``benchmarks/*.py`` only parse their flags,
run the grid (:func:`afme_lib.experiments.grid.run_grid`, resumable: finished runs are read, not retrained)
and call the page function, which reads nothing but the results table (and, for the hygiene page,
the finished run folders it scores again).

- :mod:`~afme_lib.experiments.pages.writer`: writing a page while keeping its hand-written ``## Reading``;
- :mod:`~afme_lib.experiments.pages.text_features`: what entity-name text adds (``configs/text-features.yaml``);
- :mod:`~afme_lib.experiments.pages.reproduction`: the structure-only baselines against the literature and the
  tuning sweep (``configs/reproduction.yaml``, ``configs/tuning.yaml``);
- :mod:`~afme_lib.experiments.pages.hygiene`: split hygiene and a benchmark trained on its original and cleaned
  split (``configs/hygiene.yaml``).
"""
