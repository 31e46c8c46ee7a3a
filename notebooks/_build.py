"""Source of truth of the workbench notebooks: ``python notebooks/_build.py`` rewrites the .ipynb files.

Each notebook is a list of markdown and code cells written below as plain strings, so a review
reads Python, not JSON. The written notebooks carry no outputs, fixed cell ids (stable diffs)
and the ``python3`` kernelspec. ``python notebooks/_build.py --check`` exits 1 when a committed
notebook differs from what this script writes (tests/test_notebooks.py runs the same check).

Conventions of every notebook: a title cell saying which question it answers; one code cell
tagged ``parameters`` (papermill overrides its names; ``AFME_NB_QUICK=1`` picks settings that run
in seconds on the tiny synthetic preset); thin code cells calling ``afme_lib``; figures saved
under ``runs/figures/<notebook>/`` unless ``figures_dir`` says otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent


def md(text: str) -> tuple[str, str, tuple]:
    return ("markdown", text.strip("\n"), ())


def code(text: str, *tags: str) -> tuple[str, str, tuple]:
    return ("code", text.strip("\n"), tags)


def save_figures_cell(notebook: str) -> tuple[str, str, tuple]:
    """The closing cell of a notebook: its ``figs`` saved under ``figures_dir`` (else runs/figures/<notebook>)."""
    return code(f"""
out = workbench.figures_folder(figures_dir, "{notebook}")
for path in figures.save_figures(figs, out):
    print(path)
""")


QUICK_LINE = "from afme_lib.workbench import quick_mode\nQUICK = quick_mode()  # AFME_NB_QUICK set to 1 (CI): tiny data, a few epochs"

# --- 01 ------------------------------------------------------------------------------------------
DATA_EXPLORATION = [
    md("""
# 1 · Data exploration

**Question: what is in this knowledge graph, and how far can its modality features be trusted?**
Size and splits, how skewed the degrees and relation frequencies are, which relation patterns
(1-1, 1-N, N-1, N-N) occur, which entities lack which modality, and which feature rows look like
noise. AFME's claims (denoising, dynamic weighting, completing missing modalities) only matter
if features are missing or noisy; this notebook measures how much.

Run with other data: `papermill notebooks/01_data_exploration.ipynb out.ipynb -p dataset MKG-W`
(`dataset` is a registered benchmark, an OpenKE folder, or `synth:<preset>[:<seed>]`).
"""),
    code(f"""
{QUICK_LINE}
dataset = "synth:tiny" if QUICK else "synth:default"  # registered name, OpenKE folder, or synth:<preset>[:<seed>]
features = None  # feature folder; None: the dataset folder's own feature files
neighbours = 10  # k of the neighbour-agreement score
figures_dir = None  # None: runs/figures/01_data_exploration
""", "parameters"),
    code("""
from IPython.display import display

from afme_lib import workbench
from afme_lib.analysis import explore, figures, quality
from afme_lib.data.hygiene import hygiene_report
from afme_lib.data.summary import hygiene_verdict, relation_overlap_lines
from afme_lib.pipeline import load_inputs

workbench.setup_notebook()
data_path, feature_path = workbench.prepare_dataset(dataset, features)
kg, store = load_inputs(data_path, feature_path)
truth = workbench.read_ground_truth(data_path)  # the generator's metadata.json; None for real data
figs = {}
print(f"{kg.name}: {kg.num_entities} entities, {kg.num_relations} relations, "
      f"modalities: {', '.join(store.modalities) if store else 'none (structure only)'}")
"""),
    md("""
## Size and splits
Entities "unseen in train" in valid/test cannot be ranked from structure at all: only their
features could place them.
"""),
    code("""
explore.split_table(kg)
"""),
    md("""
## Split hygiene: what can be scored without generalising?
Duplicate rows, valid/test triples that are also training triples, test (head, tail) pairs
already linked in train (under another relation, or reversed), relations that share most of
their pairs, and the MRR of a rule that only recalls who co-occurred with the query entity in
train (`afme_lib/data/hygiene.py`). On a clean split that rule scores near zero; where it
scores high, test MRR measures memorisation (`afme data clean` writes a cleaned variant).
"""),
    code("""
hygiene = hygiene_report(kg)
print("\\n".join([hygiene_verdict(kg.name, hygiene), *relation_overlap_lines(hygiene)]))
explore.hygiene_frame(hygiene)
"""),
    md("""
## Relations: frequency and category
A relation is 1-N when its heads have on average at least 1.5 tails (N-1 the converse); the
"N" sides are where link prediction is hard, since several answers compete for rank 1.
"""),
    code("""
relations = explore.relation_table(kg)
relations
"""),
    code("""
figs["relation_frequency"] = explore.relation_frequency_figure(relations)
figs["relation_frequency"]
"""),
    code("""
figs["relation_categories"] = explore.category_figure(relations)
figs["relation_categories"]
"""),
    md("""
## Degrees
Low-degree entities have few training triples to learn a structural embedding from; they are
the ones that should profit most from features.
"""),
    code("""
entities = explore.entity_table(kg, store, truth)
entities[["degree", "out degree", "in degree"]].describe().round(2)
"""),
    code("""
figs["degree"] = explore.degree_figure(entities)
figs["degree"]
"""),
    md("""
## Modality coverage and missingness
Coverage is the share of entities with a feature row (all-zero or non-finite rows count as
missing). On synthetic data the table also shows how many present rows the generator degraded
to pure noise: those are present but useless, which coverage alone does not reveal.
"""),
    code("""
if store is None:
    print("This dataset has no feature files: every model sees structure only.")
else:
    coverage = explore.coverage_table(store, truth)
    figs["coverage"] = explore.coverage_figure(coverage)
    display(coverage)
    figs["coverage"].show()
"""),
    code("""
if store is not None:
    patterns = explore.missingness_patterns(store)
    figs["missingness_patterns"] = explore.missingness_figure(patterns)
    display(patterns)
    figs["missingness_patterns"].show()
"""),
    md("""
## Feature quality: which rows look like noise?
Two scores per present row: its norm (robust z-score within the modality) and its *neighbour
agreement*, the mean cosine similarity to its `neighbours` most similar rows. A row that
encodes something resembles the rows of entities sharing that property; a noise row resembles
nothing. The synthetic generator gives degraded rows the same spread as clean ones, so on that
data the norm cannot single them out while the agreement can: compare the `truth` groups below.
On real data there is no truth column; the low tail of the agreement histogram lists the rows
worth inspecting.
"""),
    code("""
if store is not None:
    rows = quality.feature_quality(store, neighbours, truth)
    display(quality.quality_summary(rows))
    figs["feature_norms"] = quality.quality_figure(rows, "norm z")
    figs["neighbour_agreement"] = quality.quality_figure(rows, "agreement")
    figs["feature_norms"].show()
    figs["neighbour_agreement"].show()
"""),
    md("""
## Saved figures
Interactive HTML (one shared copy of plotly.js, so they open offline), plus PNG when kaleido can export.
"""),
    save_figures_cell("01_data_exploration"),
]

# --- 02 ------------------------------------------------------------------------------------------
TRAINING = [
    md("""
# 2 · Training

**Question: how well does a model do on this graph, and where (which relation patterns, which
side of the triple) does it fail?** Pick a dataset, a model and its switches, train with a
progress bar, watch the learning curves, and read the final filtered metrics broken down by
relation category and prediction side.

The grid runner (`afme grid run configs/ablation-afme.yaml`) executes this notebook once per
cell with papermill, passing `run_dir` and `progress=False`; a finished run in `run_dir` is
reused and an interrupted one resumes.
"""),
    code(f"""
{QUICK_LINE}
dataset = "synth:tiny" if QUICK else "synth:default"  # registered name, OpenKE folder, or synth:<preset>[:<seed>]
features = None  # feature folder; None: the dataset folder's own feature files
model = "afme"  # afme, rotate, transe, distmult, complex, ikrl, mm-concat, ...
dim = 16 if QUICK else 64
epochs = 2 if QUICK else 30
batch_size = 1024 if QUICK else 512
negatives = 8 if QUICK else 16
lr = 5e-3
seed = 0
device = "auto"
eval_every = 1 if QUICK else 5
# AFME's ablation switches
denoising = True
dynamic_weights = True
gan = True
self_attention = True
model_options = {{"attention_layers": 1}}  # any other ModelConfig field
train_options = {{}}  # any other TrainConfig field
run_dir = None  # None: a cache folder under runs/notebooks/02_training/ named by the settings
progress = not QUICK
figures_dir = None  # None: <run_dir>/figures
""", "parameters"),
    code("""
from pathlib import Path

from afme_lib import workbench
from afme_lib.analysis import curves, figures, metrics as metric_tables

workbench.setup_notebook()
data_path, feature_path = workbench.prepare_dataset(dataset, features)
model_cfg, train_cfg = workbench.build_configs(
    model=model, dim=dim, epochs=epochs, batch_size=batch_size, negatives=negatives, lr=lr, seed=seed,
    device=device, eval_every=eval_every, denoising=denoising, dynamic_weights=dynamic_weights, gan=gan,
    self_attention=self_attention, progress=progress, model_options=model_options, train_options=train_options)
if run_dir is None:
    run_dir = workbench.auto_run_dir("02_training", data_path, feature_path, model_cfg, train_cfg)
run_dir = workbench.resolve_path(run_dir)
print(f"dataset {data_path}\\nfeatures {feature_path}\\nrun folder {run_dir}")
"""),
    md("""
## Train
Filtered evaluation on the validation split every `eval_every` epochs; the test metrics come from
the best-validation checkpoint.
"""),
    code("""
metrics = workbench.train_or_reuse(data_path, feature_path, model_cfg, train_cfg, run_dir)
print(f"{metrics['epochs_run']} epochs, best epoch {metrics['best_epoch']}, "
      f"{metrics['train_seconds']:.1f} s training on {metrics['device']}")
"""),
    md("""
## Learning curves
Left, every loss term per epoch (`kgc` is the link-prediction loss; AFME adds the generator
term and its critic's Wasserstein loss); right, validation MRR and Hits@10. A validation curve
still rising at the last epoch says the budget, not the model, set the final number.
"""),
    code("""
history = curves.learning_curves(run_dir)
figs = {"learning_curves": curves.learning_curve_figure(history, f"{model} on {Path(data_path).name}")}
figs["learning_curves"]
"""),
    md("""
## Final metrics (filtered, %; MR is a rank)
`all` pools head and tail queries; `side` splits them (tail = predict the tail of (h, r, ?));
`category` groups test triples by their relation's pattern. Compare the N sides: predicting the
"N" side of a 1-N relation (its tails) is the hard direction.
"""),
    code("""
metric_tables.metrics_table(metrics, "test")
"""),
    code("""
metric_tables.metrics_table(metrics, "valid")
"""),
    code("""
out = workbench.resolve_path(figures_dir) if figures_dir else run_dir / "figures"
for path in figures.save_figures(figs, out):
    print(path)
"""),
]

# --- 03 ------------------------------------------------------------------------------------------
ABLATIONS = [
    md("""
# 3 · Ablations

**Question: does each of AFME's components earn its place?** The full model against AFME
without relation-driven denoising, without dynamic modality weighting, without the GAN
completion, and without self-attention, each over several training seeds: a table of
mean ± std and a bar chart.

With `grid_report = None` this notebook runs the grid itself (through `afme_lib.grid.run_grid`,
one execution of `02_training.ipynb` per cell; keep it small). For the real study run the
shipped grid from a shell and point `grid_report` at its report folder:

    afme grid run configs/ablation-afme.yaml --workers 2        # -> reports/ablation-afme/
    papermill notebooks/03_ablations.ipynb out.ipynb -p grid_report reports/ablation-afme
"""),
    code(f"""
{QUICK_LINE}
grid_report = None  # a finished grid's report folder (holds results.csv); None: run the grid below
name = "ablation-notebook"  # the grid run here: its report and runs go under runs/notebooks/03_ablations/
dataset = "synth:tiny" if QUICK else "synth:default"
epochs = 2 if QUICK else 30
dim = 16 if QUICK else 64
batch_size = 1024 if QUICK else 512
negatives = 8 if QUICK else 16
seeds = [0] if QUICK else [0, 1, 2]  # quick: one seed (std n/a), each cell is a kernel start plus a training
variants = ({{"full": {{}}, "w/o GAN": {{"gan": False}}}} if QUICK else {{
    "full": {{}},
    "w/o denoising": {{"denoising": False}},
    "w/o dynamic weighting": {{"dynamic_weights": False}},
    "w/o GAN": {{"gan": False}},
    "w/o self-attention": {{"self_attention": False}},
}})
metrics = ["mrr", "hits@1", "hits@10"]
workers = 2  # cells executed at once
figures_dir = None  # None: runs/figures/03_ablations
""", "parameters"),
    code("""
import yaml

from afme_lib import grid, workbench
from afme_lib.analysis import figures, metrics as metric_tables

workbench.setup_notebook()
"""),
    md("""
## The grid
Every cell trains the same AFME on the same data with the same budget; only one switch and the
training seed change. Finished cells are skipped when the notebook is run again.
"""),
    code("""
if grid_report is None:
    root = workbench.resolve_path("runs/notebooks/03_ablations")
    spec = {
        "name": name,
        "notebook": str(workbench.resolve_path("notebooks/02_training.ipynb")),
        "parameters": {"dataset": dataset, "model": "afme", "dim": dim, "epochs": epochs, "batch_size": batch_size,
                       "negatives": negatives, "lr": 5e-3, "eval_every": 1 if QUICK else 5,
                       "model_options": {"attention_layers": 1}},
        "grid": {"seed": list(seeds)},
        "variants": variants,
        "metrics": list(metrics),
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    results = grid.run_grid(root / f"{name}.yaml", reports_root=root / "reports", runs_root=root / "runs",
                            workers=workers, progress=not QUICK)
else:
    results = grid.read_results(workbench.resolve_path(grid_report))
results[["cell", "variant", "seed", "status", *metrics]]
"""),
    md("""
## Mean ± std over seeds (test split, filtered, %)
The std is the sample standard deviation over seeds; a difference smaller than about two of
them is not a finding at this number of seeds.
"""),
    code("""
failed = results[results["status"] != "ok"]
if len(failed) == len(results):
    raise RuntimeError("no cell of the grid finished; the errors are in results.csv and its README.md")
for _, row in failed.iterrows():
    print(f"left out, {row['status']}: {row['cell']} {row['error']}")
summary = grid.summarize(results, by=("variant",), metrics=list(metrics))
metric_tables.format_mean_std(summary, metrics)
"""),
    code("""
title = "AFME ablations: test metrics, mean ± std over seeds"
figs = {"ablation": metric_tables.mean_std_figure(summary, metrics, title=title)}
figs["ablation"]
"""),
    code("""
full = summary.loc["full"] if "full" in summary.index else None
if full is not None:
    for variant, row in summary.iterrows():
        if variant != "full":
            delta = 100 * (row["mrr_mean"] - full["mrr_mean"])
            print(f"{variant:>24}: MRR {100 * row['mrr_mean']:.2f}%  ({delta:+.2f} points vs full)")
"""),
    md("""
**Reading.** A component helps when removing it lowers MRR by clearly more than the seeds'
spread. On the tiny preset with a couple of epochs and one seed (the CI setting) the numbers only
show that the pipeline works; use the shipped `configs/ablation-afme.yaml` grid for conclusions.
"""),
    save_figures_cell("03_ablations"),
]

# --- 04 ------------------------------------------------------------------------------------------
MODALITY = [
    md("""
# 4 · Modality contributions

**Question: which modality does AFME rely on for each relation, and is it the right one?**
Per relation, the mean fusion weight of the structural embedding and of each modality, and how
much of each modality the relation-driven gates let through. On the synthetic data the
generator knows which modalities inform which relation (`metadata.json`), so the learned
weights are scored against that truth. UMAP maps show how entities arrange per modality and
fused, and an interactive panel shows the weights and top predictions of any (entity, relation).

A finished AFME run can be inspected with `-p run_dir runs/...`; otherwise a small one is trained
here (and cached under `runs/notebooks/04_modality_contributions/`).
"""),
    code(f"""
{QUICK_LINE}
run_dir = None  # a finished AFME run folder; None: train one on `dataset` here
dataset = "synth:tiny" if QUICK else "synth:default"  # used when run_dir is None
features = None
dim = 16 if QUICK else 64
epochs = 2 if QUICK else 30
batch_size = 1024 if QUICK else 512
negatives = 8 if QUICK else 16
lr = 5e-3
seed = 0
model_options = {{"attention_layers": 1}}
split = "train"  # the triples whose heads and tails the per-relation means run over
relation = None  # relation name for the fused UMAP view; None: the most frequent one
color_by = ["type", "degree", "missing modalities"]  # entity columns to colour the UMAP maps by
umap_neighbors = 10 if QUICK else 15
max_points = 3000  # entities mapped (a random subset, the same in every view)
top_k = 10
figures_dir = None  # None: runs/figures/04_modality_contributions
""", "parameters"),
    code("""
from IPython.display import display

from afme_lib import workbench
from afme_lib.analysis import embeddings, explore, figures, modality
from afme_lib.analysis.panel import modality_panel
from afme_lib.pipeline import load_inputs, load_run

workbench.setup_notebook()
if run_dir is None:
    data_path, feature_path = workbench.prepare_dataset(dataset, features)
    model_cfg, train_cfg = workbench.build_configs(
        model="afme", dim=dim, epochs=epochs, batch_size=batch_size, negatives=negatives, lr=lr, seed=seed,
        eval_every=epochs, progress=not QUICK, model_options=model_options)
    run_dir = workbench.auto_run_dir("04_modality_contributions", data_path, feature_path, model_cfg, train_cfg)
    workbench.train_or_reuse(data_path, feature_path, model_cfg, train_cfg, run_dir)
run_dir = workbench.resolve_path(run_dir)
data_path, feature_path = workbench.run_inputs(run_dir)
trainer = load_run(run_dir)
model, kg = trainer.model, trainer.dataset
store = load_inputs(data_path, feature_path)[1]
truth = workbench.read_ground_truth(data_path)
figs = {}
print(f"run {run_dir}\\nmodel tokens: {model.token_names}")
"""),
    md("""
## Which modality does each relation weigh?
Fusion weights are a softmax over the structural embedding and the present modalities (each
row sums to 1; a missing modality gets 0 unless the GAN fills it). Means run over the heads and
tails of the relation's `split` triples. Red squares mark, on synthetic data, the modalities
that truly inform the relation.
"""),
    code("""
profile = modality.relation_profile(model, kg, split)
truth_table = modality.truth_matrix(truth, kg.relation_names, model.token_names[1:]) if truth else None
figs["modality_weights"] = modality.weight_heatmap(profile, truth_table)
figs["modality_weights"]
"""),
    md("""
Gates: the share of each modality's feature that the relation lets through (1 = untouched),
averaged over rows where the modality was measured.
"""),
    code("""
figs["gates"] = modality.gate_heatmap(profile, truth_table)
figs["gates"]
"""),
    md("""
## Learned weights against the ground truth
Per relation with both informative and uninformative modalities: **AUC** = probability that an
informative modality outweighs an uninformative one (1 = always, 0.5 = no preference, 0 =
reversed), **gap** = mean informative minus mean uninformative weight, **top1** = whether the
heaviest modality is an informative one. Structural relations (no informative modality) are not
scored; their structure weight is shown instead.
"""),
    code("""
if truth_table is None:
    print("No ground truth for this dataset (it is not a synthetic folder): nothing to score against.")
else:
    agreement, score = modality.truth_agreement(profile.weights, truth_table)
    display(agreement.round(3))
    print(f"over {score['relations_scored']} scored relations: mean AUC {score['auc']:.2f}, "
          f"mean gap {score['gap']:+.3f}, top-1 informative {score['top1']:.0%}; structure weight "
          f"{score['structure_weight_scored']:.2f} on scored vs {score['structure_weight_unscored']:.2f} "
          "on structural relations")
    figs["weights_vs_truth"] = modality.truth_figure(profile.weights, truth_table)
    figs["weights_vs_truth"].show()
"""),
    md("""
**Reading.** An AUC near 1 with a positive gap means the weighting found the informative
modalities; near 0.5 it weighs modalities without regard to what they encode (then the gain of
AFME over an ungated fusion, if any, comes from elsewhere). The printed line above is computed
from this run, whatever it learned.

## Entity representations (UMAP)
Each panel maps one view: the structural embedding, each modality's projected feature token
(only entities that have it) and the fused representation the scorer sees for one relation.
Colours are entity properties; on synthetic data `type` is the latent type, which no modality
encodes (only the graph does).
"""),
    code("""
entities = explore.entity_table(kg, store, truth)
rel_id = kg.relation_names.index(relation) if relation else int(kg.train[:, 1].bincount(minlength=kg.num_relations).argmax())
views = embeddings.representation_views(model, relation=rel_id)
mapped, messages = embeddings.embedding_frame(views, entities, n_neighbors=umap_neighbors, max_points=max_points, seed=seed)
print(f"fused view for relation {kg.relation_names[rel_id]}")
for line in messages:
    print(line)
"""),
    code("""
for column in color_by:
    if column in mapped:
        figs[f"umap_{column.replace(' ', '_')}"] = embeddings.embedding_figure(mapped, column)
        figs[f"umap_{column.replace(' ', '_')}"].show()
    else:
        print(f"no entity column {column!r} to colour by (available: {', '.join(entities.columns)})")
"""),
    md("""
## Interactive panel
Pick a relation and type an entity name: the bars show that pair's fusion weights and gates, the
table its top predicted tails (`known` names the split holding a true triple). Clear the entity
box to see the relation's mean weights. Needs a live kernel; a saved notebook shows the last view.
"""),
    code("""
panel = modality_panel(model, kg, profile, k=top_k, relation=rel_id)
panel
"""),
    save_figures_cell("04_modality_contributions"),
]

# --- 05 ------------------------------------------------------------------------------------------
ROBUSTNESS = [
    md("""
# 5 · Robustness

**Question: does AFME degrade gracefully as its modalities get noisier or go missing, and do
its components (denoising gates, dynamic weights, GAN completion) make the difference the
article claims?** Filtered test MRR as the corruption level rises, for AFME and its ablations:

- **test time**: models trained on clean features, evaluated with corrupted ones (a shift they
  never saw; weights untouched);
- **train time**: features corrupted before training and kept so for evaluation (can the model
  learn to discount a degraded modality?).

Levels: `noise` adds Gaussian noise of that many feature standard deviations to every present
row; `missing` drops that share of the measured rows. Level 0 is the clean data.
"""),
    code(f"""
{QUICK_LINE}
dataset = "synth:tiny" if QUICK else "synth:default"
features = None
variants = ({{"full": {{}}, "w/o denoising": {{"denoising": False}}}} if QUICK else {{
    "full": {{}},
    "w/o denoising": {{"denoising": False}},
    "w/o dynamic weighting": {{"dynamic_weights": False}},
    "w/o GAN": {{"gan": False}},
    "w/o self-attention": {{"self_attention": False}},
}})
noise_levels = [0.0, 2.0] if QUICK else [0.0, 0.5, 1.0, 2.0, 4.0]
missing_levels = [0.0, 0.5] if QUICK else [0.0, 0.25, 0.5, 0.75, 1.0]
corrupt_modalities = None  # modalities to corrupt; None: all
corruption_seeds = [0] if QUICK else [0, 1, 2]  # test-time draws of the corruption
train_time = True  # also retrain at every level (one run per variant, kind and level)
run_dirs = {{}}  # {{variant: finished AFME run folder on this dataset}} to use instead of training that variant
dim = 16 if QUICK else 64
epochs = 2 if QUICK else 30
batch_size = 1024 if QUICK else 512
negatives = 8 if QUICK else 16
lr = 5e-3
seed = 0
model_options = {{"attention_layers": 1}}
figures_dir = None  # None: runs/figures/05_robustness
""", "parameters"),
    code("""
import pandas as pd

from afme_lib import workbench
from afme_lib.analysis import figures, robustness
from afme_lib.pipeline import load_inputs, load_run

workbench.setup_notebook()
data_path, feature_path = workbench.prepare_dataset(dataset, features)
kg, store = load_inputs(data_path, feature_path)
if store is None:
    raise ValueError(f"{data_path} has no modality features: there is nothing to corrupt")
levels = {"noise": noise_levels, "missing": missing_levels}
print(f"{kg.name}: modalities {store.modalities}; corrupting {corrupt_modalities or 'all of them'}")
"""),
    md("""
## Clean runs, one per variant
Cached under `runs/notebooks/05_robustness/`: rerunning the notebook with the same settings
reuses them.
"""),
    code("""
runs = {}
for variant, overrides in variants.items():
    if variant in run_dirs:  # trained elsewhere: it must be a run on this very data
        runs[variant] = workbench.read_finished_run(run_dirs[variant])
        if (runs[variant]["dataset"], runs[variant]["features"]) != (data_path, feature_path):
            raise ValueError(f"run_dirs[{variant!r}] was trained on {runs[variant]['dataset']}, not {data_path}")
    else:
        model_cfg, train_cfg = workbench.build_configs(
            model="afme", dim=dim, epochs=epochs, batch_size=batch_size, negatives=negatives, lr=lr, seed=seed,
            eval_every=epochs, progress=not QUICK, model_options={**model_options, **overrides})
        run_dir = workbench.auto_run_dir("05_robustness", data_path, feature_path, model_cfg, train_cfg)
        clean = workbench.train_or_reuse(data_path, feature_path, model_cfg, train_cfg, run_dir)
        runs[variant] = {"run_dir": run_dir, "model_cfg": model_cfg, "train_cfg": train_cfg, "metrics": clean}
    print(f"{variant:>24}: clean test MRR {100 * runs[variant]['metrics']['test']['mrr']:.2f}%   "
          f"({runs[variant]['run_dir']})")
"""),
    md("""
## Test-time corruption
Each trained model is evaluated again with a corrupted copy of the features (its weights are
loaded into a model built on that copy).
"""),
    code("""
parts = []
for variant, run in runs.items():
    trainer = load_run(run["run_dir"])
    for kind, kind_levels in levels.items():
        curve = robustness.curve_test_time(trainer.model, trainer.dataset, store, kind, kind_levels,
                                           corrupt_modalities, corruption_seeds, filter_index=trainer.filter_index)
        parts.append(curve.assign(variant=variant, phase="test time"))
test_time = pd.concat(parts, ignore_index=True)
"""),
    md("""
## Train-time corruption
One training per variant, kind and level > 0 (level 0 is the clean run above).
"""),
    code("""
parts = []
if train_time:
    for variant, run in runs.items():
        for kind, kind_levels in levels.items():
            # retrained runs live in this notebook's cache, also for a clean run trained elsewhere
            out_root = workbench.auto_run_dir("05_robustness", data_path, feature_path, run["model_cfg"], run["train_cfg"])
            curve = workbench.curve_train_time(
                data_path, feature_path, run["model_cfg"], run["train_cfg"], kind, kind_levels,
                out_root / "train-time", corrupt_modalities, clean_metrics=run["metrics"])
            parts.append(curve.assign(variant=variant, phase="train time"))
curves = pd.concat([test_time, *parts], ignore_index=True)
"""),
    md("""
## MRR as the features degrade
Solid lines: test-time corruption; dashed: train-time. Error bars: std over the test-time
corruption draws (`corruption_seeds`).
"""),
    code("""
figs = {"robustness": robustness.robustness_figure(curves)}
figs["robustness"]
"""),
    code("""
table = robustness.summarize_curves(curves)
table = table.assign(**{"MRR %": (100 * table["mrr"]).round(2)}).pivot_table(
    index=["phase", "kind", "level"], columns="variant", values="MRR %", sort=False)
table
"""),
    code("""
robustness.degradation(curves).round(2)
"""),
    md("""
**Reading.** A model that uses its features loses MRR as they degrade; one that ignores them
stays flat (check the clean MRR against a structure-only model before calling flat "robust").
The article's claims predict that the full AFME loses least, that removing the denoising gates
hurts most under noise, and that removing the GAN hurts most when rows go missing. The table of
changes above is this run's answer; on the tiny preset with a couple of epochs (the CI setting)
it is noise, use the default preset and the full settings for conclusions.
"""),
    save_figures_cell("05_robustness"),
]

NOTEBOOKS = {
    "01_data_exploration.ipynb": DATA_EXPLORATION,
    "02_training.ipynb": TRAINING,
    "03_ablations.ipynb": ABLATIONS,
    "04_modality_contributions.ipynb": MODALITY,
    "05_robustness.ipynb": ROBUSTNESS,
}


def build(cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
        "language_info": {"name": "python"},
    }
    for i, (kind, source, tags) in enumerate(cells):
        cell = nbformat.v4.new_markdown_cell(source) if kind == "markdown" else nbformat.v4.new_code_cell(source)
        cell.id = f"cell-{i:02d}"
        if tags:
            cell.metadata["tags"] = list(tags)
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def render(cells) -> str:
    return nbformat.writes(build(cells)) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name, cells in NOTEBOOKS.items():
        path = HERE / name
        text = render(cells)
        if check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(f"out of date (run python notebooks/_build.py): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
