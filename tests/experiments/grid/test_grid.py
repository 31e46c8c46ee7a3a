"""The grid runner: spec validation, expansion and ids, summaries, and real papermill executions
(a 2x2 grid on two local workers with a failing cell and a resume, then through a local Dask
cluster, then the project's training notebook on a one-cell grid)."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import markdown_tables

from afme_lib.core import ablations
from afme_lib.core.errors import AfmeError, DataFormatError
from afme_lib.core.machine import usable_cores
from afme_lib.experiments.grid import ablation_grid, expand, load_grid, plan, read_results, run_grid, summarize
from afme_lib.experiments.grid.report import default_group_columns, markdown_table
from afme_lib.experiments.grid.spec import TOP_LEVEL_KEYS, cell_id

ROOT = Path(__file__).resolve().parents[3]
TRAINING_NOTEBOOK = ROOT / "notebooks" / "02_training.ipynb"
ID_PATTERN = re.compile(r"[A-Za-z0-9._=-]+")

# The test notebook: metrics derived from the parameters (so assertions are exact), one line per
# execution in <runs>/executions.log, the kernel's thread variable recorded, and a failure on
# demand through an environment variable (so a retry can succeed with the same parameters).
FAKE_BODY = """\
import json, os, pathlib
run = pathlib.Path(run_dir)
run.mkdir(parents=True, exist_ok=True)
with open(run.parent / "executions.log", "a") as fh:
    fh.write(run.name + "\\n")
if os.environ.get("GRID_TEST_FAIL_ON") == f"{x},{seed}":
    raise ValueError(f"cell x={x} seed={seed} fails on purpose")
mrr = (10 * x + seed) / 100
random = {"mrr": 0.01, "mr": 50.0, "hits@1": 0.001, "hits@3": 0.003, "hits@10": 0.01}
metrics = {"test": {"mrr": mrr, "mr": 1.0 + x, "hits@1": mrr / 2, "hits@3": mrr, "hits@10": 2 * mrr, "random": random},
           "valid": {"mrr": mrr + 0.01}, "epochs_run": seed + 1, "best_epoch": 1, "train_seconds": 0.5,
           "device": "cpu", "threads": os.environ.get("OMP_NUM_THREADS"), "progress": progress}
(run / "metrics.json").write_text(json.dumps(metrics))
"""


def write_notebook(path: Path, parameters: str, body: str) -> Path:
    import nbformat

    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


@pytest.fixture(scope="module")
def fake_notebook(tmp_path_factory) -> Path:
    pytest.importorskip("papermill")
    folder = tmp_path_factory.mktemp("nb")
    return write_notebook(folder / "fake.ipynb", "x = 0\nseed = 0\nrun_dir = ''\nprogress = True", FAKE_BODY)


def write_yaml(folder: Path, text: str, name: str = "grid.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


FAKE_GRID = """\
name: fake
notebook: {notebook}
grid: {{seed: [0, 1]}}
variants:
  a: {{x: 1}}
  w/o b: {{x: 2}}
metrics: [mrr, hits@10]
"""


# --- validation --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, line, problem",
    [
        (
            "name: g\nnotebook: {nb}\nmetric: [mrr]\n",
            3,
            f"metric: unknown top-level key; allowed keys: {', '.join(TOP_LEVEL_KEYS)}",
        ),
        (
            "name: g\nnotebook: {nb}\ngrid:\n  seed: 3\n",
            4,
            "grid.seed: expected a non-empty list of values, got 3 (write [3] for a single value, or move it to parameters)",
        ),
        (
            "name: g\nnotebook: {nb}\ngrid:\n  seed: []\n",
            4,
            "grid.seed: expected a non-empty list of values, got [] (write [[]] for a single value, or move it to parameters)",
        ),
        ("name: g\nnotebook: {nb}\ngrid:\n  seed: [0, 1, 0]\n", 4, "grid.seed: lists the value 0 twice"),
        (
            "name: g\nnotebook: {nb}\nvariants:\n  full: {{}}\n  full: {{x: 1}}\n",
            5,
            "key 'full' is given twice in the same mapping (first on line 4)",
        ),
        (
            "name: g\nnotebook: {nb}\nvariants:\n  w/o gan: {{}}\n  w-o gan: {{x: 1}}\n",
            5,
            "variants: 'w-o gan' and 'w/o gan' read the same in cell ids (w-o-gan); rename one",
        ),
        (
            "name: g\nnotebook: {nb}\ngrid: {{x: [1, 2]}}\nvariants:\n  big: {{x: 3}}\n",
            5,
            "variants.big.x: 'x' is a grid key; a variant may not override it",
        ),
        (
            "name: g\nnotebook: {nb}\nparameters: {{seed: 0}}\ngrid:\n  seed: [0, 1]\n",
            5,
            "grid.seed: 'seed' is also in parameters; keep it in one place",
        ),
        (
            "name: g\nnotebook: {nb}\nparameters:\n  run_dir: here\n",
            4,
            "parameters.run_dir: 'run_dir' is set by the grid runner for every cell; remove it",
        ),
        (
            "name: g\nnotebook: {nb}\nparameters:\n  epochz: 3\n",
            4,
            "parameters.epochz: {nbname}'s parameters cell does not define 'epochz' and it is no run-spec field; the cell "
            "defines: progress, run_dir, seed, x",
        ),
        (
            "name: g\nnotebook: {nb}\nmetrics: [mrr, auc]\n",
            3,
            "metrics: unknown metric 'auc'; choose from mrr, mr, hits@1, hits@3, hits@10, self_answer",
        ),
        (
            "name: my grid\nnotebook: {nb}\n",
            1,
            "name: 'my grid' must be a folder name: letters, digits, '.', '_' or '-', starting with a letter or digit",
        ),
        (
            "name: g\nnotebook: missing.ipynb\n",
            2,
            "notebook: missing.ipynb not found (looked in the working directory or {dir} and its parents)",
        ),
        ("notebook: {nb}\n", None, "missing required key 'name'"),
    ],
)
def test_grid_file_errors_name_the_file_line_and_key(tmp_path, fake_notebook, text, line, problem):
    path = write_yaml(tmp_path, text.format(nb=fake_notebook))
    with pytest.raises(DataFormatError) as err:
        load_grid(path)
    where = f"{path}:{line}" if line else str(path)
    assert str(err.value) == f"{where}: " + problem.format(nbname=fake_notebook, dir=tmp_path.resolve())


def test_invalid_yaml_and_non_mapping(tmp_path):
    path = write_yaml(tmp_path, "name: g\ngrid: {seed: [0, 1}\n")
    with pytest.raises(DataFormatError, match=rf"^{re.escape(str(path))}:2: not valid YAML: "):
        load_grid(path)
    path = write_yaml(tmp_path, "- a\n- b\n")
    with pytest.raises(DataFormatError) as err:
        load_grid(path)
    assert str(err.value) == (
        f"{path}: a grid file holds a mapping with the keys {', '.join(TOP_LEVEL_KEYS)}; got list"
    )


def test_notebook_found_relative_to_the_grid_files_parents(tmp_path, fake_notebook, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "n.ipynb").write_text(fake_notebook.read_text())
    (tmp_path / "configs").mkdir()
    path = write_yaml(tmp_path / "configs", "name: g\nnotebook: notebooks/n.ipynb\n")
    monkeypatch.chdir(tmp_path / "configs")  # not where the path is relative to
    assert load_grid(path).notebook == (tmp_path / "notebooks" / "n.ipynb").resolve()


# --- expansion ---------------------------------------------------------------------------------
SPEC = """\
name: g
notebook: {nb}
parameters: {{lr: 1e-3, x: 5}}
grid:
  x2: [a, b]
  seed: [0, 1, 2]
variants:
  full: {{}}
  w/o gan: {{x: 7}}
"""
SPEC_REORDERED = """\
name: g
notebook: {nb}
variants:
  w/o gan: {{x: 7}}
  full: {{}}
grid:
  seed: [2, 0, 1]
  x2: [b, a]
parameters: {{x: 5, lr: 0.001}}
"""


def test_expand_is_the_cartesian_product_times_variants(tmp_path):
    nb = write_notebook(tmp_path / "n.ipynb", "x = 0\nx2 = ''\nseed = 0\nlr = 0.1\nrun_dir = ''\nprogress = True", "")
    grid = load_grid(write_yaml(tmp_path, SPEC.format(nb=nb)))
    assert grid.parameters == {"lr": 0.001, "x": 5} and isinstance(grid.parameters["lr"], float)  # YAML 1.2 float
    cells = expand(grid)
    expected = [
        (v, {"lr": 0.001, "x": 7 if v == "w/o gan" else 5, "x2": x2, "seed": s})
        for v in ("full", "w/o gan")
        for x2 in ("a", "b")
        for s in (0, 1, 2)
    ]
    assert [(c.variant, c.params) for c in cells] == expected
    assert [c.axes for c in cells[:2]] == [{"x2": "a", "seed": 0}, {"x2": "a", "seed": 1}]
    ids = [c.id for c in cells]
    assert len(set(ids)) == 12 and all(ID_PATTERN.fullmatch(i) for i in ids)
    assert re.fullmatch(r"variant=w-o-gan__seed=1__x2=b__[0-9a-f]{8}", cells[10].id)

    # Reordering keys, list entries and variants keeps every cell's id (resume finds them) ...
    same = {c.id: c.params for c in expand(load_grid(write_yaml(tmp_path, SPEC_REORDERED.format(nb=nb), "r.yaml")))}
    assert same == {c.id: c.params for c in cells}
    # ... while changing what the cells compute gives new ids (the readable part stays).
    changed = expand(load_grid(write_yaml(tmp_path, SPEC.format(nb=nb).replace("x: 5", "x: 6"), "c.yaml")))
    full_ids = [c.id for c in changed if c.variant == "full"]
    assert not set(full_ids) & set(ids)
    assert [i.rsplit("__", 1)[0] for i in full_ids] == [i.rsplit("__", 1)[0] for i in ids[:6]]
    # the variant overrides x, so its cells did not change
    assert [c.id for c in changed if c.variant == "w/o gan"] == ids[6:]


def test_single_cell_and_id_slugs():
    assert re.fullmatch(r"cell__[0-9a-f]{8}", cell_id(None, {}, {"a": 1}))
    cid = cell_id("w/o dynamic weighting", {"dataset": "synth:default", "flag": True, "opt": {"b": 1}}, {})
    assert cid.startswith("variant=w-o-dynamic-weighting__dataset=synth-default__flag=true__opt=b-1__")
    # key order never matters; values do
    assert cell_id("v", {"a": 1, "b": 2}, {"a": 1, "b": 2, "c": {"d": 1, "e": 2}}) == cell_id(
        "v", {"b": 2, "a": 1}, {"c": {"e": 2, "d": 1}, "b": 2, "a": 1}
    )
    assert cell_id("v", {"a": 1}, {"a": 1}) != cell_id("v", {"a": 1}, {"a": 1.5})


@pytest.mark.parametrize(
    "name, cells, variants",
    [
        ("ablation-afme", 18, list(ablations.NAMES)),
        ("ablation-afme-quick", 12, list(ablations.NAMES)),
        ("ablation-tiny", 4, ["full", "w/o GAN"]),
        (
            "baselines",
            30,
            ["transe", "distmult", "complex", "rotate", "ikrl", "mm-concat", "mmkrl", "otkge", "native", "afme"],
        ),
        ("baselines-benchmarks", 24, ["transe", "distmult", "complex", "rotate"]),
    ],
)
def test_shipped_configs(name, cells, variants):
    path = ROOT / "configs" / f"{name}.yaml"
    # With the training notebook present, every parameter must be one its parameters cell defines.
    grid = load_grid(path, check_notebook=TRAINING_NOTEBOOK.is_file())
    assert grid.name == name and grid.notebook.name == "02_training.ipynb"
    expanded = expand(grid)
    assert len(expanded) == cells and list(grid.variants) == variants
    assert sorted({c.params["seed"] for c in expanded}) == (
        [0, 1] if name in ("ablation-tiny", "ablation-afme-quick") else [0, 1, 2]
    )
    if name.startswith("ablation"):
        # the variants are the registry's (afme_lib/core/ablations.py), not a copy that could drift
        assert grid.variants == ablations.variants(list(grid.variants))
        assert grid.parameters["compare_with"] == []  # no baselines trained in every cell
        switches = [a.switch for a in ablations.ABLATIONS.values()]
        for c in expanded:  # each variant turns exactly its own switch off
            off = [k for k in switches if c.params.get(k, True) is False]
            assert off == list(grid.variants[c.variant])
    else:
        assert [c.params["model"] for c in expanded[:: len(expanded) // len(variants)]] == variants


def test_ablation_grid_builds_the_study_from_the_registry():
    names = ["full", "w/o GAN", "w/o relation context"]
    grid = ablation_grid("abl", {"dataset": "synth:tiny", "epochs": 2}, names, [0, 1])
    assert grid.notebook == TRAINING_NOTEBOOK and grid.variants == ablations.variants(names)
    assert grid.parameters == {"model": "afme", "compare_with": [], "dataset": "synth:tiny", "epochs": 2}
    cells = expand(grid)
    assert [(c.variant, c.params["seed"]) for c in cells] == [
        ("full", 0),
        ("full", 1),
        ("w/o GAN", 0),
        ("w/o GAN", 1),
        ("w/o relation context", 0),
        ("w/o relation context", 1),
    ]
    assert cells[4].params["relation_context"] is False and "gan" not in cells[4].params
    with pytest.raises(ValueError, match="unknown ablation 'w/o gates'; the named ones are: full, w/o denoising"):
        ablation_grid("abl", {}, ["w/o gates"])


# --- summaries ---------------------------------------------------------------------------------
def test_summarize_mean_and_sample_std_over_seeds_of_finished_cells():
    rng = np.random.default_rng(0)
    rows = []
    for variant, model in (("transe", "transe"), ("rotate", "rotate")):
        for seed in range(3):
            mrr, h10 = rng.random(2)
            rows.append(
                {
                    "cell": f"{variant}{seed}",
                    "variant": variant,
                    "model": model,
                    "seed": seed,
                    "status": "failed" if (variant, seed) == ("rotate", 2) else "ok",
                    "mrr": mrr,
                    "hits@10": h10,
                }
            )
    results = pd.DataFrame(rows)
    results.loc[results.status == "failed", ["mrr", "hits@10"]] = math.nan
    # model is fixed by the variant and seed is the replicate axis: only variant groups
    assert default_group_columns(results) == ["variant"]
    summary = summarize(results, metrics=["mrr", "hits@10"])
    assert list(summary.index) == ["transe", "rotate"]  # grid order, not sorted
    for variant in ("transe", "rotate"):
        ok = results[(results.variant == variant) & (results.status == "ok")]
        for m in ("mrr", "hits@10"):
            assert summary.loc[variant, f"{m}_mean"] == pytest.approx(np.mean(ok[m]))
            assert summary.loc[variant, f"{m}_std"] == pytest.approx(np.std(ok[m], ddof=1))
    assert summary["n"].tolist() == [3, 2] and summary["cells"].tolist() == [3, 3]
    by_seed = summarize(results, by=["seed"], metrics=["mrr"])
    assert by_seed.loc[2, "n"] == 1 and math.isnan(by_seed.loc[2, "mrr_std"])
    everything = summarize(results[results.variant == "transe"], metrics=["mrr"])
    assert list(everything.index) == ["all"] and everything.loc["all", "n"] == 3
    with pytest.raises(ValueError, match=r"results have no column \['auc'\]"):
        summarize(results, metrics=["auc"])


def test_the_random_baseline_row_per_split():
    """One row when every group ranks the same test split; one per group when they differ
    (a grid over datasets); none when the runs did not record it."""
    results = pd.DataFrame(
        [
            {
                "cell": f"{d}{seed}",
                "variant": "",
                "dataset": d,
                "seed": seed,
                "status": "ok",
                "mrr": 0.1 + seed / 100,
                "mr": 9.0,
                "random_mrr": {"a": 0.02, "b": 0.005}[d],
                "random_mr": {"a": 50.0, "b": 400.0}[d],
            }
            for d in ("a", "b")
            for seed in (0, 1)
        ]
    )
    (rows,) = markdown_tables("\n".join(markdown_table(summarize(results, metrics=["mrr", "mr"]), ["mrr", "mr"])))
    assert list(rows[0]) == ["dataset", "seeds", "MRR (%)", "MR"]
    assert [(r["dataset"], float(r["MRR (%)"]), float(r["MR"])) for r in rows[-2:]] == [
        ("random ranking (a)", 2.0, 50.0),
        ("random ranking (b)", 0.5, 400.0),
    ]
    same = results[results.dataset == "a"]
    (rows,) = markdown_tables("\n".join(markdown_table(summarize(same, metrics=["mrr"]), ["mrr"])))
    assert (rows[-1]["group"], float(rows[-1]["MRR (%)"])) == ("random ranking", 2.0)
    older = results.drop(columns=["random_mrr", "random_mr"])
    (rows,) = markdown_tables("\n".join(markdown_table(summarize(older, metrics=["mrr"]), ["mrr"])))
    assert [r["dataset"] for r in rows] == ["a", "b"]  # no random ranking recorded, none shown


def mean_std(cell: str) -> tuple[float, float]:
    """A "mean ± std" cell as two numbers."""
    mean, std = cell.split(" ± ")
    return float(mean), float(std)


# --- execution ---------------------------------------------------------------------------------
def test_two_workers_record_a_failure_then_resume_retries_only_it(tmp_path, fake_notebook, monkeypatch, capsys):
    from afme_lib.interfaces.cli import main

    spec = write_yaml(tmp_path, FAKE_GRID.format(notebook=fake_notebook))
    reports, runs = tmp_path / "reports", tmp_path / "runs"
    monkeypatch.setenv("GRID_TEST_FAIL_ON", "2,1")
    results = run_grid(spec, reports_root=reports, runs_root=runs, workers=2, progress=False)

    report = reports / "fake"
    cells = {(c.variant, c.axes["seed"]): c.id for c in expand(load_grid(spec))}
    assert results["cell"].tolist() == list(cells.values())
    assert results["status"].tolist() == ["ok", "ok", "ok", "failed"]
    failed = results.iloc[3]
    assert failed["error"] == "ValueError: cell x=2 seed=1 fails on purpose"
    assert math.isnan(failed["mrr"])
    ok = results.iloc[:3]
    assert ok["mrr"].tolist() == [0.10, 0.11, 0.20] and ok["hits@10"].tolist() == [0.20, 0.22, 0.40]
    assert ok["mr"].tolist() == [2.0, 2.0, 3.0] and ok["valid_mrr"].tolist() == pytest.approx([0.11, 0.12, 0.21])
    assert ok["epochs_run"].tolist() == [1, 2, 1] and ok["x"].tolist() == [1, 1, 2]
    assert (results["seconds"] > 0).all()
    assert read_results(report).equals(results)
    for (variant, seed), cid in cells.items():
        assert (report / "notebooks" / f"{cid}.ipynb").is_file()
        if (variant, seed) != ("w/o b", 1):
            metrics = json.loads((runs / "fake" / cid / "metrics.json").read_text())
            assert metrics["progress"] is False  # the runner's progress=False reached the notebook
            assert metrics["threads"] == str(max(1, usable_cores() // 2))  # cores shared by 2 kernels
    readme = (report / "README.md").read_text()
    summary = next(t for t in markdown_tables(readme) if "MRR (%)" in t[0])
    assert [list(summary[0])] == [["variant", "seeds", "MRR (%)", "Hits@10 (%)"]]
    assert [(r["variant"], r["seeds"]) for r in summary] == [("a", "2"), ("w/o b", "1/2"), ("random ranking", "–")]
    assert mean_std(summary[0]["MRR (%)"]) == pytest.approx((10.5, 0.71), abs=0.006)
    assert mean_std(summary[0]["Hits@10 (%)"]) == pytest.approx((21.0, 1.41), abs=0.006)
    assert float(summary[1]["MRR (%)"]) == 20.0  # the failed seed is not averaged in
    assert float(summary[2]["MRR (%)"]) == 1.0  # the random ranking beside them
    assert ok["random_mr"].tolist() == [50.0] * 3 and math.isnan(failed["random_mrr"])
    failures = next(t for t in markdown_tables(readme) if "error" in t[0])
    assert [(r["cell"], r["error"]) for r in failures] == [
        (f"`{cells['w/o b', 1]}`", "ValueError: cell x=2 seed=1 fails on purpose")
    ]
    html = report / "figures" / "test-metrics.html"
    # one plotly.js for every report under reports/, linked relatively (opens offline)
    assert html.is_file() and (reports / "assets" / "plotly.min.js").is_file()
    assert not (report / "figures" / "plotly.min.js").exists()
    assert 'src="../../assets/plotly.min.js"' in html.read_text() and html.stat().st_size < 100_000

    # Resume through the CLI: the failed cell is retried (and now passes), the others are skipped.
    monkeypatch.delenv("GRID_TEST_FAIL_ON")
    assert main(["grid", "run", str(spec), "--reports", str(reports), "--runs", str(runs), "--dry-run"]) == 0
    assert "1 retry: failed" in capsys.readouterr().out
    before = {cid: (report / "notebooks" / f"{cid}.ipynb").stat().st_mtime_ns for cid in cells.values()}
    assert main(["grid", "run", str(spec), "--reports", str(reports), "--runs", str(runs), "--no-progress"]) == 0
    executed = (runs / "fake" / "executions.log").read_text().split()
    assert sorted(executed[:4]) == sorted(cells.values()) and executed[4:] == [cells["w/o b", 1]]
    after = {cid: (report / "notebooks" / f"{cid}.ipynb").stat().st_mtime_ns for cid in cells.values()}
    assert [cid for cid in cells.values() if after[cid] != before[cid]] == [cells["w/o b", 1]]
    results = read_results(report)
    assert results["status"].tolist() == ["ok"] * 4 and results["mrr"].tolist() == [0.10, 0.11, 0.20, 0.21]
    assert results["seconds"].notna().all()  # kept from the first run for the skipped cells
    retried = json.loads((runs / "fake" / cells["w/o b", 1] / "metrics.json").read_text())
    assert retried["threads"] == str(usable_cores())  # one cell left: it gets every core
    summary = next(t for t in markdown_tables((report / "README.md").read_text()) if "MRR (%)" in t[0])
    assert summary[1]["seeds"] == "2" and mean_std(summary[1]["MRR (%)"]) == pytest.approx((20.5, 0.71), abs=0.006)
    assert "Made by `afme grid run" in (report / "README.md").read_text()
    capsys.readouterr()
    assert main(["grid", "summary", str(report), "--metrics", "mrr"]) == 0
    printed = markdown_tables(capsys.readouterr().out)[0]
    assert printed[0]["variant"] == "a" and mean_std(printed[0]["MRR (%)"]) == pytest.approx((10.5, 0.71), abs=0.006)
    assert plan(spec, reports, runs)["action"].tolist() == ["skip: finished"] * 4


def test_local_dask_cluster_runs_the_grid(tmp_path, fake_notebook):
    distributed = pytest.importorskip("distributed")
    spec = write_yaml(tmp_path, FAKE_GRID.format(notebook=fake_notebook))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        results = run_grid(
            spec,
            reports_root=tmp_path / "reports",
            runs_root=tmp_path / "runs",
            scheduler=cluster.scheduler_address,
            progress=False,
        )
    assert results["status"].tolist() == ["ok"] * 4
    assert results["mrr"].tolist() == [0.10, 0.11, 0.20, 0.21]
    for cid in results["cell"]:
        metrics = json.loads((tmp_path / "runs" / "fake" / cid / "metrics.json").read_text())
        assert metrics["threads"] == str(usable_cores())  # cores // one thread per worker
    assert sorted((tmp_path / "runs" / "fake" / "executions.log").read_text().split()) == sorted(results["cell"])


def test_missing_kernel_and_concurrent_driver_are_refused(tmp_path, fake_notebook):
    spec = write_yaml(tmp_path, FAKE_GRID.format(notebook=fake_notebook))
    with pytest.raises(
        AfmeError, match=r"^Jupyter kernel 'no-such-kernel' \(from --kernel\) is not installed; installed: "
    ):
        run_grid(
            spec, reports_root=tmp_path / "r", runs_root=tmp_path / "runs", kernel_name="no-such-kernel", progress=False
        )
    assert read_results(tmp_path / "r" / "fake")["status"].tolist() == ["pending"] * 4
    lock = tmp_path / "r" / "fake" / ".grid.lock"
    lock.write_text(str(os.getpid()))  # a live driver holds the grid
    with pytest.raises(AfmeError, match=r"grid already running in process \d+"):
        run_grid(spec, reports_root=tmp_path / "r", runs_root=tmp_path / "runs", progress=False)
    with pytest.raises(AfmeError, match=r"^--only 'nope' matches no cell of this grid; cell ids: variant=a__seed=0__"):
        plan(spec, tmp_path / "r", tmp_path / "runs", only=["nope"])
    assert plan(spec, tmp_path / "r", tmp_path / "runs", only=["variant=a__*"])["action"].tolist() == [
        "run",
        "run",
        "not selected",
        "not selected",
    ]


def test_training_notebook_runs_as_a_one_cell_grid(tmp_path, monkeypatch):
    pytest.importorskip("papermill")
    monkeypatch.setenv("AFME_NB_QUICK", "1")
    spec = write_yaml(
        tmp_path,
        f"""\
name: nb
notebook: {TRAINING_NOTEBOOK}
parameters: {{dataset: "synth:tiny", model: transe, dim: 16, epochs: 1, batch_size: 512, negatives: 4,
              eval_every: 1, seed: 0, device: cpu}}
metrics: [mrr, hits@10]
""",
    )
    results = run_grid(
        spec, reports_root=tmp_path / "reports", runs_root=tmp_path / "runs", progress=False, timeout=300
    )
    row = results.iloc[0]
    assert row["status"] == "ok", row["error"]
    assert row["epochs_run"] == 1 and 0 < row["mrr"] <= 1 and 0 <= row["hits@10"] <= 1
    metrics = json.loads((tmp_path / "runs" / "nb" / row["cell"] / "metrics.json").read_text())
    assert metrics["test"]["mrr"] == row["mrr"]


def test_baselines_grid_trains_each_model_with_its_recommended_options():
    """The grid's MMKRL / NATIVE rows carry the lambdas the models declare (the benchmark scripts
    read them from the model), so both ways of running a baseline train the same thing."""
    from afme_lib.models.registry import model_names, recommended_train_options

    grid = load_grid(ROOT / "configs" / "baselines.yaml", check_notebook=False)
    assert recommended_train_options("mmkrl") == {"lambda_adv": 1.0}
    assert recommended_train_options("native") == {"lambda_adv": 1e-4, "lambda_gp": 0.1}
    for variant, params in grid.variants.items():
        wanted = recommended_train_options(params["model"])
        assert {k: params[k] for k in wanted} == wanted, variant
    bilinear = {"loss": "softplus", "regularization": 1e-3}  # the recipe of reproduce_baselines' SETTINGS
    assert recommended_train_options("distmult") == recommended_train_options("complex") == bilinear
    assert all(
        recommended_train_options(m) == {} for m in model_names() if m not in ("mmkrl", "native", "distmult", "complex")
    )
