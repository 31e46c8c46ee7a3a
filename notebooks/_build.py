"""Source of truth of the workbench notebooks: ``python notebooks/_build.py`` rewrites the .ipynb files.

Each notebook is a list of markdown and code cells written below as plain strings, so a review
reads Python, not JSON. The written notebooks carry no outputs, fixed cell ids (stable diffs)
and the ``python3`` kernelspec. ``python notebooks/_build.py --check`` exits 1 when a committed
notebook differs from what this script writes (tests/integration/test_notebooks.py runs the same check).

Conventions of every notebook: a title cell saying which question it answers; one code cell
tagged ``parameters`` whose defaults run in a few minutes on a 2-core CPU (papermill overrides its
names; ``AFME_NB_QUICK=1`` picks settings that run in seconds on the tiny synthetic preset, or for
00 on its packaged Nations example); code
cells of a call or two into ``afme_lib`` (``interfaces.notebook``, ``experiments.comparisons``,
``analysis``); the notebooks
that train (02-05) share their training parameters (:data:`TRAINING_PARAMETERS`), so they find
each other's runs in the run cache (00 trains with the same budget on the user's graph); the last cell saves the figures under
``runs/figures/<notebook>/`` unless ``figures_dir`` says otherwise.
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


QUICK_LINE = "from afme_lib.interfaces.notebook import quick_mode\nQUICK = quick_mode()  # AFME_NB_QUICK set to 1 (CI): tiny data, a few epochs"

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
    code(
        f"""
{QUICK_LINE}
dataset = "synth:tiny" if QUICK else "synth:default"  # registered name, OpenKE folder, or synth:<preset>[:<seed>]
features = None  # feature folder; None: the dataset folder's own feature files
neighbours = 10  # k of the neighbour-agreement score
figures_dir = None  # None: runs/figures/01_data_exploration
""",
        "parameters",
    ),
    code("""
from IPython.display import display

from afme_lib.analysis import explore, quality
from afme_lib.data.leakage import hygiene_report
from afme_lib.data.summary import hygiene_verdict, relation_overlap_lines
from afme_lib.data.synthetic import read_ground_truth
from afme_lib.experiments.spec import find_inputs, load_inputs
from afme_lib.interfaces import notebook
"""),
    code("""
notebook.setup_notebook()
kg, store = load_inputs(dataset, features)
truth = read_ground_truth(find_inputs(dataset)[0])  # the generator's metadata.json; None for real data
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
train (`afme_lib/data/leakage.py`). On a clean split that rule scores near zero; where it
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
    code("""
notebook.save_figures(figs, figures_dir, "01_data_exploration")
"""),
]

# --- the training settings notebooks 02-05 share -----------------------------------------------
# The same lines (and so the same defaults) in every notebook that trains: a run is cached by its
# spec, so AFME trained in 02 is the "full" variant of 03 and the run 04 and 05 inspect. Every
# name is a run-spec field (afme_lib/experiments/spec.py); any other field is a papermill
# parameter away (-p self_negatives 0), a whole spec file too (-f SPEC.yaml).
NOTEBOOK_EPOCHS = 30
TRAINING_PARAMETERS = f"""
dim = 16 if QUICK else 64
epochs = 2 if QUICK else {NOTEBOOK_EPOCHS}  # a few CPU-minutes; longer: papermill -p epochs 35 (the main job's setting)
batch_size = 1024 if QUICK else 512
negatives = 8 if QUICK else 16
lr = 1e-2
seed = 0
eval_every = 1 if QUICK else 5
runs_root = "runs/cache"  # runs are cached here by their spec and shared by notebooks 02-05 and afme train
""".strip("\n")
SYNTH_DATASET = (
    'dataset = "synth:tiny" if QUICK else "synth:default"  # registered name, OpenKE folder, or '
    "synth:<preset>[:<seed>]\nfeatures = None  # feature folder; None: the dataset folder's own feature files"
)

# --- 00 ------------------------------------------------------------------------------------------
YOUR_OWN_KG = [
    md("""
# 0 · Your own knowledge graph

**Question: what do the models make of my graph, and what do its modalities add?** Import a graph
given as named triples, with entity texts, images or numeric attributes (any of them); check its
split for leaks; see which entities have which modality; train RotatE (structure only) and AFME
(structure and every modality) at a small budget; compare them; and see how much weight AFME
gives each modality, relation by relation.

With no parameters it runs on a real graph that ships inside the installed PyKEEN: Nations
(14 countries, 55 relations, 1,992 triples in PyKEEN's split) with the area and population of 13
of the countries as numeric attributes. Your own graph is a parameter away:
`papermill notebooks/00_your_own_kg.ipynb out.ipynb -p triples kg.tsv -p numeric literals.csv`
(also `-p texts texts.tsv`, `-p images DIR`, `-p valid ... -p test ...`). The command line does the
import alone: `afme data import --triples kg.tsv --numeric literals.csv --out data/my-kg`, then
`afme train --dataset data/my-kg --model afme`.
"""),
    code(
        f"""
{QUICK_LINE}
# Your graph; triples None: PyKEEN's Nations with its numeric literals, from the installed package
triples = None  # named triples, head<TAB>relation<TAB>tail per line (all of them, or train with valid/test)
valid = None  # validation triples, with test; None: the triples are split (whole entity pairs held out)
test = None
split = "0.8/0.1/0.1"  # train/valid/test shares when valid and test are None
texts = None  # entity<TAB>text per line -> the text modality (the packaged MiniLM, offline)
images = None  # a folder with an image file or sub-folder per entity -> the image modality
numeric = None  # entity<TAB>attribute<TAB>value rows (.csv: commas) -> the numeric modality
image_weights = "imagenet"  # image encoder weights: imagenet (downloaded once) | FILE (a state dict) | none
name = None  # dataset name; None: the triples file's name ("nations" for the example)
out = None  # the dataset folder; None: runs/data/imports/<hash of the inputs>/<name>
model = "afme"  # the model whose modality weights are shown
compare_with = ["rotate"]  # trained beside it with the same settings
{TRAINING_PARAMETERS}
workers = 1  # runs trained at once
progress = not QUICK
figures_dir = None  # None: runs/figures/00_your_own_kg
""",
        "parameters",
    ),
    code("""
from IPython.display import display

from afme_lib.analysis import explore, modality_weights, tables
from afme_lib.analysis.panel import modality_panel
from afme_lib.data.dataset import load_dataset
from afme_lib.data.examples import pykeen_nations
from afme_lib.data.feature_store import FeatureStore
from afme_lib.data.leakage import hygiene_report
from afme_lib.data.summary import hygiene_verdict, relation_overlap_lines
from afme_lib.experiments import comparisons
from afme_lib.experiments.spec import resolve_path
from afme_lib.extraction.kg_import import import_kg, import_summary
from afme_lib.interfaces import notebook

notebook.setup_notebook()
figs = {}
"""),
    md("""
## Import
Entity and relation ids (sorted by name) in the OpenKE format, the split, and one feature file per
modality: texts through the packaged MiniLM, images through a torchvision backbone, numeric
attributes one standardised column each (mean and std of the training entities; an entity with no
attribute has a *missing* row, not a row of zeros that would read as "average"). Texts, images and
attributes of entities the graph lacks are skipped and counted. The folder is named after a hash
of the inputs, so a second run, or notebook 01 pointed at the folder, reuses it.
"""),
    code("""
if triples is None:  # the real example, read from the installed PyKEEN (nothing is downloaded)
    example = pykeen_nations()
    triples, valid, test, name = example["triples"], example["valid"], example["test"], name or "nations"
    numeric = numeric or example["numeric"]
imported = import_kg(
    triples, resolve_path(out) if out else None, root=resolve_path("runs/data/imports"), name=name,
    valid=valid, test=test, split=split, texts=texts, images=images, numeric=numeric,
    image_weights=image_weights, progress=progress,
)
kg = load_dataset(imported.path)
print(f"{imported.path}{' (imported earlier: reused)' if imported.reused else ''}")
print("\\n".join(import_summary(imported.info)))
"""),
    md("""
## Split hygiene: what can be scored without generalising?
Valid/test triples that are training triples, test (head, tail) pairs already linked in train
(under another relation, or reversed), relations that share most of their pairs, and the MRR of
a rule that only recalls who co-occurred with the query entity in train
(`afme_lib/data/leakage.py`). Nations is dense (14 countries): in PyKEEN's split every test pair is
linked in train, so the test measures which relations link a pair, not which pairs link. A split
made by the import (`valid = test = None`) holds whole entity pairs out instead.
"""),
    code("""
hygiene = hygiene_report(kg)
print("\\n".join([hygiene_verdict(kg.name, hygiene), *relation_overlap_lines(hygiene)]))
explore.hygiene_frame(hygiene)
"""),
    md("""
## Modality coverage
Coverage is the share of entities with a feature row; the patterns count which combinations of
modalities entities have. Models treat a missing row as absent (AFME's GAN completes it from the
entity's other modalities), never as a row of zeros.
"""),
    code("""
store = FeatureStore.load(kg.path, kg.num_entities, verbose=False) if imported.info["modalities"] else None
if store is None:
    print("No texts, images or numeric attributes were given: only structure-only models can train.")
else:
    coverage = explore.coverage_table(store)
    figs["coverage"] = explore.coverage_figure(coverage)
    display(coverage, explore.missingness_patterns(store))
    figs["coverage"].show()
"""),
    md("""
## Train RotatE and AFME
The same budget and settings for both (the parameters above; `afme train --help` lists every
other field, any of them a papermill parameter). Runs are cached by their settings and dataset
folder: running the notebook again opens them.
"""),
    code("""
spec = notebook.spec_from(globals(), dataset=str(kg.path))
runs = comparisons.model_runs(spec, compare_with, runs_root=runs_root, workers=workers)
for key, run in runs.items():
    print(f"{key}: {run.metrics['epochs_run']} epochs (best {run.metrics['best_epoch']}), "
          f"{run.metrics['train_seconds']:.1f} s on {run.metrics['device']}: {run.path}")
"""),
    md("""
## Compare
Filtered test metrics (%; MR is a rank), head and tail queries pooled, beside the expected metrics
of a random ranking of the same queries. With 14 entities a random ranking is already strong: read
the margins over it, not the numbers alone.
"""),
    code("""
table = tables.models_table({key: run.metrics for key, run in runs.items()})
figs["models"] = tables.models_figure(table, f"Test metrics on {kg.name}")
display(table)
figs["models"].show()
"""),
    md("""
## Which modality does AFME weigh, per relation?
The mean fusion weight of the structural embedding and of each modality (convex shares, each row
sums to 1) over the heads and tails of each relation's training triples, then an interactive panel:
pick a relation and type an entity to see that pair's weights and top predicted tails (needs a live
kernel; a saved notebook shows the last view).
"""),
    code("""
afme = runs[model]
profile = modality_weights.relation_profile(afme.model, kg, "train", ["head", "tail"])
figs["modality_weights"] = modality_weights.weight_heatmap(profile)
print("mean weight over relations:", profile.weights.mean().round(3).to_dict())
figs["modality_weights"]
"""),
    code("""
modality_panel(afme.model, kg, profile)
"""),
    code("""
notebook.save_figures(figs, figures_dir, "00_your_own_kg")
"""),
]

# --- 02 ------------------------------------------------------------------------------------------
TRAINING = [
    md("""
# 2 · Training

**Question: how well does a model do on this graph, and where does it fail?** Train a model
(AFME by default, with its switches) and the baselines beside it, watch the learning curves, read
the filtered test metrics by relation category and side and, on a synthetic graph, by *slice*:
warm / cold / zero-shot items × attribute / structural relations, and the cold attribute queries
by the state of the item's row in the informative modality (clean, corrupted, missing), beside the
rule oracle (knows the generator), the feature oracle (reads the features perfectly) and a random
ranking.

Defaults: the synthetic `default` preset, a few CPU-minutes. A longer study is a papermill
parameter away (`papermill notebooks/02_training.ipynb out.ipynb -p epochs 50`); the grid runner
(`afme grid run configs/ablation-afme.yaml`) executes this notebook once per cell, passing
`run_dir`; a finished run is reused and an interrupted one resumes.
"""),
    code(
        f"""
{QUICK_LINE}
{SYNTH_DATASET}
model = "afme"  # afme, rotate, transe, distmult, complex, ikrl, mm-concat, ...
compare_with = ["rotate", "mm-concat"]  # trained beside it with the same settings; {{name: {{field: value}}}}: with its own
{TRAINING_PARAMETERS}
workers = 2  # runs trained at once (processes of cores // workers threads each)
device = "auto"
# AFME's ablation switches (afme_lib/core/ablations.py names the variants)
denoising = True
dynamic_weights = True
gan = True
self_attention = True
relation_context = True
run_dir = None  # None: the cache folder under runs_root named by the settings
progress = not QUICK
figures_dir = None  # None: runs/figures/02_training
""",
        "parameters",
    ),
    code("""
from afme_lib.analysis import curves, slices, tables
from afme_lib.engine import evaluation
from afme_lib.experiments import comparisons
from afme_lib.interfaces import notebook

notebook.setup_notebook()
spec = notebook.spec_from(globals())  # the run spec these parameters spell
"""),
    md("""
## Train
The model and the baselines of `compare_with`, `workers` at a time (on a CPU, small models use one
core each better than two together). Filtered evaluation on the validation split every
`eval_every` epochs; the test metrics come from the best-validation checkpoint.
"""),
    code("""
runs = comparisons.model_runs(spec, compare_with, run_dir, runs_root, workers)
run = runs[model]
print(f"{run.path}: {run.metrics['epochs_run']} epochs, best epoch {run.metrics['best_epoch']}, "
      f"{run.metrics['train_seconds']:.1f} s training on {run.metrics['device']}")
"""),
    md("""
## Learning curves
Left, every loss term per epoch (`kgc` is the link-prediction loss; AFME adds the generator
term and its critic's Wasserstein loss); right, validation MRR and Hits@10. A validation curve
still rising at the last epoch says the budget, not the model, set the final number.
"""),
    code("""
figs = {"learning_curves": curves.learning_curve_figure(curves.learning_curves(run.path), f"{model} on {dataset}")}
figs["learning_curves"]
"""),
    md("""
## Final metrics (filtered, %; MR is a rank)
`all` pools head and tail queries; `side` splits them (tail = predict the tail of (h, r, ?));
`category` groups test triples by their relation's pattern. `self-answers` is the share of
queries whose top-ranked candidate is the entity the query asks about (h for (h, r, ?)): a model
that never learnt that (h, r, h) is false answers so, and the relations where it does are named
below (self-negatives, `TrainConfig.self_negatives`, on by default, train it away).
"""),
    code("""
print(evaluation.self_answer_warning(run.metrics["test"], "test", run.train_cfg.self_negatives)
      or "no relation is answered with the asked entity")
tables.metrics_table(run.metrics, "test")
"""),
    md("""
## Test MRR by slice, beside the oracles and the baselines
Only a synthetic graph knows its slices (its `metadata.json`). Cold items have every attribute
triple held out, so only their features can answer `cold/attribute`; `cold/attribute/corrupted`
and `.../missing` are the queries whose item has a corrupted or no row in the informative
modality: the slices denoising and the GAN exist for. `queries` counts both sides of each triple.
"""),
    code("""
table = comparisons.slice_table(runs) if run.truth else None
table if table is not None else print("no ground truth (not a synthetic dataset): see the metrics above")
"""),
    code("""
if table is not None:
    figs["slices"] = slices.slice_figure(table, f"Test MRR by slice: {model} and the baselines, against the oracles")
    print("\\n".join(slices.comparison_lines(table, model)))
    figs["slices"].show()
"""),
    md("""
The lines above are read off this run's table: the share of the oracles that the model reaches on
cold attribute queries, and its margin over every baseline and the random ranking.
"""),
    code("""
notebook.save_figures(figs, figures_dir, "02_training")
"""),
]

# --- 03 ------------------------------------------------------------------------------------------
ABLATIONS = [
    md("""
# 3 · Ablations

**Question: does each of AFME's components earn its place?** AFME against itself with one
component switched off: relation-driven denoising, dynamic modality weighting, the GAN completion,
the relation context of the gates and weights, self-attention (the named variants of
`afme_lib/core/ablations.py`). Each ablation is judged on the slice of test queries built to need its
component: denoising on cold attribute queries whose informative row is **corrupted**, the GAN on
those whose informative row is **missing**, the others on all **cold attribute** queries; mean ±
std over the training seeds.

Defaults: one seed, a few CPU-minutes (two runs at a time). More seeds are a parameter
(`-p seeds "[0, 1, 2]"`) or a grid away: run the shipped grid from a shell and point
`grid_report` at its report folder:

    afme grid run configs/ablation-afme.yaml --workers 2        # -> reports/ablation-afme/
    papermill notebooks/03_ablations.ipynb out.ipynb -p grid_report reports/ablation-afme
"""),
    code(
        f"""
{QUICK_LINE}
grid_report = None  # a finished ablation grid's report folder (holds results.csv); None: train here
{SYNTH_DATASET}
variants = (["full", "w/o GAN"] if QUICK else
            ["full", "w/o denoising", "w/o dynamic weighting", "w/o GAN", "w/o relation context", "w/o self-attention"])
seeds = [0]  # training seeds; a spread: -p seeds "[0, 1, 2]", or the grid (see above)
{TRAINING_PARAMETERS}
workers = 2  # runs trained at once (processes of cores // workers threads each)
figures_dir = None  # None: runs/figures/03_ablations
""",
        "parameters",
    ),
    code("""
from afme_lib.analysis import slices
from afme_lib.experiments import comparisons, grid
from afme_lib.experiments.spec import resolve_path
from afme_lib.interfaces import notebook

notebook.setup_notebook()
spec = notebook.spec_from(globals(), model="afme")
"""),
    md("""
## The runs
Every run trains the same AFME on the same data with the same budget; only one switch and the
training seed change. Runs are cached by their settings (the full model is notebook 02's AFME).
"""),
    code("""
if grid_report is None:
    runs = comparisons.ablation_runs(spec, variants, seeds, runs_root, workers)
else:
    runs = comparisons.grid_runs(grid.read_results(resolve_path(grid_report)))
results = comparisons.slice_results(runs)
(results.set_index(["variant", "seed"]) * 100).round(2)
"""),
    md("""
## Mean ± std over seeds: test MRR (%) by slice
The std is the sample standard deviation over seeds; a difference smaller than about two of
them is not a finding at this number of seeds.
"""),
    code("""
slices.mean_std_table(results)
"""),
    md("""
## Each ablation on the slice built to need it
"""),
    code("""
summary = comparisons.ablation_summary(results)
figs = {"ablation": slices.ablation_figure(summary)}
print("\\n".join(slices.ablation_lines(summary)))
summary.round(2)
"""),
    code("""
figs["ablation"]
"""),
    md("""
**Reading.** A component earns its place when removing it lowers MRR on its slice by clearly more
than the seeds' spread; the lines above say, per ablation, what this study measured. On the tiny
preset with a couple of epochs (the CI setting) they only show that the pipeline works.
"""),
    code("""
notebook.save_figures(figs, figures_dir, "03_ablations")
"""),
]

# --- 04 ------------------------------------------------------------------------------------------
MODALITY = [
    md("""
# 4 · Modality contributions

**Question: which modality does AFME rely on for each relation, and is it the right one?**
Per relation, the mean fusion weight of the structural embedding and of each modality (the convex
shares AFME gives them), and how much of each modality the relation-driven gates let through. On
the synthetic data the generator knows which modalities inform which relation (`metadata.json`),
so the learned weights are scored against that truth. UMAP maps show how entities arrange per
modality and fused, and an interactive panel shows the weights and top predictions of any
(entity, relation).

Inspect any finished AFME run with `-p run_dir runs/...`; otherwise the run of the settings below
is used (the one notebook 02 trains with the same settings, trained here if missing).
"""),
    code(
        f"""
{QUICK_LINE}
run_dir = None  # a finished AFME run folder; None: the run of the settings below
{SYNTH_DATASET}
{TRAINING_PARAMETERS}
split = "train"  # the triples whose occurrences the per-relation means run over
positions = ["head"]  # which end of those triples: the item of an attribute relation is its head
relation = None  # relation name for the fused UMAP view; None: the most frequent one
color_by = ["type", "degree", "missing modalities"]  # entity columns to colour the UMAP maps by
umap_neighbors = 10 if QUICK else 15
max_points = 3000  # entities mapped (a random subset, the same in every view)
top_k = 10
figures_dir = None  # None: runs/figures/04_modality_contributions
""",
        "parameters",
    ),
    code("""
from IPython.display import display

from afme_lib.analysis import embeddings, explore, modality_weights
from afme_lib.analysis.panel import modality_panel
from afme_lib.experiments import comparisons
from afme_lib.experiments.run import open_run
from afme_lib.interfaces import notebook
"""),
    code("""
notebook.setup_notebook()
spec = notebook.spec_from(globals(), model="afme")
run = open_run(run_dir) if run_dir else comparisons.model_runs(spec, runs_root=runs_root)["afme"]
model, kg, store, truth = run.model, run.trainer.dataset, run.store, run.truth
figs = {}
print(f"run {run.path}\\nmodel tokens: {model.token_names}")
"""),
    md("""
## Which modality does each relation weigh?
Fusion weights are convex shares over the structural embedding and the modalities (each row sums
to 1). Means run over the `positions` of the relation's `split` triples. Red squares mark, on
synthetic data, the modalities that truly inform the relation.
"""),
    code("""
profile = modality_weights.relation_profile(model, kg, split, positions)
truth_table = modality_weights.truth_matrix(truth, kg.relation_names, model.token_names[1:]) if truth else None
figs["modality_weights"] = modality_weights.weight_heatmap(profile, truth_table)
figs["modality_weights"]
"""),
    md("""
Gates: the share of each modality's feature that the relation lets through (1 = untouched),
averaged over rows where the modality was measured.
"""),
    code("""
figs["gates"] = modality_weights.gate_heatmap(profile, truth_table)
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
    agreement, score = modality_weights.truth_agreement(profile.weights, truth_table)
    display(agreement.round(3))
    print(modality_weights.agreement_line(score))
    figs["weights_vs_truth"] = modality_weights.truth_figure(profile.weights, truth_table)
    figs["weights_vs_truth"].show()
"""),
    md("""
**Reading.** An AUC near 1 with a positive gap means the weighting found the informative
modalities; near 0.5 it weighs modalities without regard to what they encode. The line above is
computed from this run, whatever it learned.

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
print("\\n".join([f"fused view for relation {kg.relation_names[rel_id]}", *messages]))
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
    code("""
notebook.save_figures(figs, figures_dir, "04_modality_contributions")
"""),
]

# --- 05 ------------------------------------------------------------------------------------------
ROBUSTNESS = [
    md("""
# 5 · Robustness

**Question: does AFME degrade gracefully as its modalities get noisier or go missing, and do
its components (denoising gates, GAN completion, ...) make the difference the article claims?**
Filtered test MRR as the corruption level rises, for AFME and its ablations:

- **test time**: models trained on clean features, evaluated with corrupted ones (a shift they
  never saw; weights untouched);
- **train time** (`train_time = True`, one training per variant, kind and level): features
  corrupted before training and kept so for evaluation (can the model learn to discount a
  degraded modality?).

Levels: `noise` adds Gaussian noise of that many feature standard deviations to every present
row; `missing` drops that share of the measured rows. Level 0 is the clean data. The runs are the
ones notebooks 02 and 03 train with the same settings (trained here if missing).
"""),
    code(
        f"""
{QUICK_LINE}
{SYNTH_DATASET}
variants = ["full", "w/o denoising"] if QUICK else ["full", "w/o denoising", "w/o GAN"]  # afme_lib/core/ablations.py
noise_levels = [0.0, 2.0] if QUICK else [0.0, 1.0, 2.0, 4.0]
missing_levels = [0.0, 0.5] if QUICK else [0.0, 0.25, 0.5, 0.75, 1.0]
corrupt_modalities = None  # modalities to corrupt; None: all
corruption_seeds = [0]  # test-time draws of the corruption; error bars: -p corruption_seeds "[0, 1, 2]"
train_time = False  # also retrain at every level (one run per variant, kind and level > 0: slow)
run_dirs = {{}}  # {{variant: finished AFME run folder on this dataset}} to use instead of training that variant
{TRAINING_PARAMETERS}
workers = 2  # runs trained at once
figures_dir = None  # None: runs/figures/05_robustness
""",
        "parameters",
    ),
    code("""
from afme_lib.analysis import robustness
from afme_lib.experiments import comparisons
from afme_lib.interfaces import notebook

notebook.setup_notebook()
spec = notebook.spec_from(globals(), model="afme")
runs = comparisons.variant_runs(spec, variants, run_dirs, runs_root, workers)
for variant, run in runs.items():
    print(f"{variant:>22}: clean test MRR {100 * run.metrics['test']['mrr']:.2f}%   ({run.path})")
"""),
    md("""
## MRR as the features degrade
Solid lines: test-time corruption; dashed: train-time. Error bars: std over the test-time
corruption draws (`corruption_seeds`).
"""),
    code("""
levels = {"noise": noise_levels, "missing": missing_levels}
curves = comparisons.robustness_curves(runs, levels, corrupt_modalities, corruption_seeds, train_time)
figs = {"robustness": robustness.robustness_figure(curves)}
figs["robustness"]
"""),
    code("""
robustness.mrr_table(curves)
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
it is noise.
"""),
    code("""
notebook.save_figures(figs, figures_dir, "05_robustness")
"""),
]

# --- 06 ------------------------------------------------------------------------------------------
TUNING = [
    md("""
# 6 · Hyper-parameter search

**Question: which settings does this model want on this dataset, chosen on validation only?**
`afme tune` searches the fields a tune spec names (a run spec with a `search:` block, see
`configs/tune/`) with Optuna: TPE sampling, trials pruned when their periodic validation trails
the others. This notebook runs or continues a study and shows it: every trial, the best one and
its complete run spec, which fields mattered, and what the pruner saw. Test is never read.

The same study from a shell: `afme tune configs/tune/tiny.yaml --trials 6 --out runs/tune/tiny`;
rerunning either continues it. To look at a finished study without running a trial (a recipe's,
say): `papermill 06_tuning.ipynb out.ipynb -p study_dir runs/tune/MKG-Y/afme -y "{tune_spec: null, trials: null}"`.
"""),
    code(
        f"""
{QUICK_LINE}
study_dir = "runs/tune/tiny"  # the study folder (study.db, trials.csv, best.yaml), relative to the checkout
tune_spec = "configs/tune/tiny.yaml"  # the spec to search; None: the one the study folder records
trials = 3 if QUICK else 6  # finished trials the study should hold (a rerun adds only the missing ones); None: only open it
workers = 1  # trials at once on this machine
figures_dir = None  # None: runs/figures/06_tuning
""",
        "parameters",
    ),
    code("""
from afme_lib.experiments import tuning
from afme_lib.experiments.pages.tuning import importances, study_figures
from afme_lib.interfaces import notebook

notebook.setup_notebook()
result = tuning.open_or_tune(study_dir, tune_spec, trials, workers)
study = result.study
"""),
    md("""
## Every trial
`value` is the trial's validation objective at its best-valid checkpoint; a pruned trial's is its
last validation before it was stopped.
"""),
    code("""
tuning.trials_table(study)
"""),
    md("""
## The best trial
Its complete run spec (`best.yaml`): `afme train --config <study_dir>/best.yaml` trains it again
to the same validation number.
"""),
    code("""
print(result.best_yaml.read_text())
"""),
    md("""
## What mattered
fANOVA importance of each searched field (it needs a few complete trials to mean much), the
search's history, the objective against each field, and the validation curves the pruner judged.
"""),
    code("""
importances(study)
"""),
    code("""
figs = study_figures(study)
figs["history"]
"""),
    code("""
figs.get("slices")
"""),
    code("""
figs.get("intermediate")
"""),
    code("""
notebook.save_figures(figs, figures_dir, "06_tuning")
"""),
]

NOTEBOOKS = {
    "00_your_own_kg.ipynb": YOUR_OWN_KG,
    "01_data_exploration.ipynb": DATA_EXPLORATION,
    "02_training.ipynb": TRAINING,
    "03_ablations.ipynb": ABLATIONS,
    "04_modality_contributions.ipynb": MODALITY,
    "05_robustness.ipynb": ROBUSTNESS,
    "06_tuning.ipynb": TUNING,
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
