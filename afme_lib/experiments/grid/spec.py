"""Grid files: reading, validation and expansion into cells.

A grid file (YAML) names what a cell runs -- a notebook, or ``target: train`` (a training run,
:mod:`afme_lib.experiments.grid.target`) -- and the parameters to run it with::

    name: ablation-afme                 # report folder reports/<name>/
    notebook: notebooks/02_training.ipynb
    description: free text for the report (optional)
    spec: configs/runs/afme-default.yaml   # optional: a run spec file, under the parameters
    parameters: {dataset: "synth:default", model: afme, epochs: 30}   # the same in every cell
    grid: {seed: [0, 1, 2]}             # cartesian product over these lists
    variants:                           # optional named parameter sets, crossed with the grid
      full: {}
      w/o denoising: {denoising: false}
    metrics: [mrr, hits@1, hits@10]     # test metrics tabulated in the summary
    exclude: [{variant: w/o denoising, seed: 2}]   # optional: cells matching every key of an entry are left out
    run_dir: "{model}-s{seed}"          # optional run-folder name, below

The cells are ``variants x product(grid lists)``, less the excluded ones; a cell's parameters are
``spec file | parameters | grid values | variant overrides`` (a notebook cell also gets
``run_dir`` and ``progress``). Parameters are run-spec fields by their names
(:mod:`afme_lib.experiments.spec`; a notebook takes every one of them) and, for a notebook,
the names its parameters cell defines. With ``target: train`` (instead of ``notebook``) the
parameters are a run spec, and a text value may name other parameters in braces
(``features: "runs/features/{dataset}"``), filled in per cell.

**Run folders.** A cell's run folder is ``<runs>/<cell id>`` unless the grid gives a ``run_dir``
template: a Python format string over the cell's parameters and ``variant`` (each value in its
filesystem-safe :func:`slug`; ``dataset_name`` is the last path component of ``dataset``), e.g.
``"{dataset}-{model}-d{dim}-e{epochs}-s{seed}"``. The folder then keeps its name across runs of
grids that differ elsewhere, so run folders made by earlier grids (or by hand) with that naming
are found and reused; two cells that would share a folder are refused.

**Cell ids** read like ``variant=w-o-denoising__seed=0__1f3a9c2e``: the variant and every grid
key (sorted by name) with a filesystem-safe slug of the value, then 8 hex digits of a hash of
the variant name and the cell's full parameter set. The id therefore depends on what the cell
computes and on nothing else: reordering keys, list entries or variants keeps every id (resume
finds finished cells), while changing a parameter (``epochs: 30`` -> ``40``) gives new ids, so
a rerun never reports a result computed with other settings.

The loader is stricter than plain ``yaml.safe_load``: a key given twice in one mapping is an
error (PyYAML silently keeps the last one, which would drop a variant), and floats may be written
``1e-3`` as in YAML 1.2 (YAML 1.1 would read that as the string "1e-3").
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import keyword
import re
import string
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from afme_lib.core import ablations
from afme_lib.core.config import RUN_FIELDS
from afme_lib.core.errors import AfmeError, DataFormatError, OptionError
from afme_lib.core.metric_names import RANK_METRICS, TABLE_METRICS
from afme_lib.experiments.grid import target as train_target

TOP_LEVEL_KEYS = (
    "name",
    "notebook",
    "target",
    "description",
    "spec",
    "parameters",
    "grid",
    "variants",
    "exclude",
    "metrics",
    "run_dir",
)
NOTEBOOK = "notebook"  # Grid.target of a notebook grid
DEFAULT_METRICS = ("mrr", "hits@1", "hits@10")  # tabulated when a grid names none (any of TABLE_METRICS may be)
# Parameters the runner passes to every cell itself.
RUNNER_PARAMETERS = ("run_dir", "progress")
# results.csv columns that are not parameters; a parameter with one of these names would clash.
# The test split's random-ranking baseline (metrics.json test.random) beside each cell's metrics.
RANDOM_COLUMNS = tuple(f"random_{m}" for m in RANK_METRICS)
RESULT_COLUMNS = (
    "cell",
    "variant",
    "status",
    "error",
    "seconds",
    *TABLE_METRICS,
    "valid_mrr",
    "valid_self_answer",
    "epochs_run",
    "best_epoch",
    "train_seconds",
    "device_used",
    "notebook",
    "run_dir",
    *RANDOM_COLUMNS,
)
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_SLUG = 120  # readable part of a cell id; the hash keeps longer ids unique
TRAINING_NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "02_training.ipynb"


# --- YAML loading -----------------------------------------------------------------------------
class _LinedDict(dict):
    """A mapping read from YAML that remembers the line (1-based) of each key."""

    lines: dict


class _GridLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys, records key lines and reads ``1e-3`` as a float."""

    def construct_mapping(self, node, deep=False):
        mapping = _LinedDict()
        mapping.lines = {}
        self.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                hash(key)
            except TypeError:
                raise DataFormatError(self.name, f"unhashable mapping key {key!r}", line) from None
            if key in mapping:
                raise DataFormatError(
                    self.name,
                    f"key {key!r} is given twice in the same mapping (first on line {mapping.lines[key]})",
                    line,
                )
            mapping[key] = self.construct_object(value_node, deep=deep)
            mapping.lines[key] = line
        return mapping


_GridLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _GridLoader.construct_mapping)
# YAML 1.2 floats: a mantissa with or without a dot, and an optional signed exponent.
_GridLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9_]+)(?:[eE][-+]?[0-9]+)$"),
    list("-+0123456789."),
)


def _read_yaml(path: Path):
    try:
        text = path.read_text()
    except OSError as err:
        raise AfmeError(f"{path}: cannot read the grid file ({err.strerror or err})") from None
    loader = _GridLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        raise DataFormatError(path, f"not valid YAML: {err.problem}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as err:
        raise DataFormatError(path, f"not valid YAML: {err}") from None
    finally:
        loader.dispose()


def _plain(value):
    """Plain dicts and lists all the way down (drops the line bookkeeping)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _canonical(value) -> str:
    """One JSON text per value, independent of key order (what ids and duplicates compare)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


# --- the spec ---------------------------------------------------------------------------------
@dataclass
class Cell:
    """One execution: ``params`` are its parameters (a notebook's without run_dir/progress)."""

    id: str
    params: dict
    variant: str | None = None
    axes: dict = field(default_factory=dict)  # the grid values that define this cell


@dataclass
class Grid:
    """A validated grid file. ``notebook`` is absolute (None for ``target`` train); ``path`` is
    the YAML file (None if built in code); ``run_dir`` the run-folder template (None: cell ids)."""

    name: str
    notebook: Path | None
    parameters: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    variants: dict = field(default_factory=dict)
    metrics: list = field(default_factory=lambda: list(DEFAULT_METRICS))
    description: str = ""
    path: Path | None = None
    target: str = NOTEBOOK
    run_dir: str | None = None
    exclude: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """The grid as a YAML/JSON-ready mapping (notebook as given when read from a file)."""
        out = {"name": self.name}
        out.update({"notebook": str(self.notebook)} if self.target == NOTEBOOK else {"target": self.target})
        if self.description:
            out["description"] = self.description
        if self.run_dir:
            out["run_dir"] = self.run_dir
        out.update(parameters=self.parameters, grid=self.grid)
        if self.variants:
            out["variants"] = self.variants
        if self.exclude:
            out["exclude"] = self.exclude
        out["metrics"] = list(self.metrics)
        return out

    @property
    def runs_notebooks(self) -> bool:
        return self.target == NOTEBOOK

    def run_folder_name(self, cell: Cell) -> str:
        """The cell's run folder below the grid's runs folder: the ``run_dir`` template filled in,
        else the cell id."""
        return cell.id if self.run_dir is None else self.run_dir.format_map(template_values(cell))

    def cells(self) -> list[Cell]:
        return expand(self)


class _Checker:
    """Raises :class:`DataFormatError` naming the grid file, the key's line and the key path."""

    def __init__(self, source: Path):
        self.source = source

    def fail(self, where: str, problem: str, mapping=None, key=None):
        line = getattr(mapping, "lines", {}).get(key) if mapping is not None else None
        raise DataFormatError(self.source, f"{where}: {problem}" if where else problem, line)

    def mapping(self, data: dict, key: str, value) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(key, f"expected a mapping of name: value, got {type(value).__name__} {value!r}", data, key)
        return value

    def identifiers(self, where: str, mapping: dict, train: bool = False) -> None:
        for k in mapping:
            if not isinstance(k, str) or not k.isidentifier() or keyword.iskeyword(k):
                self.fail(where, f"{k!r} is not a valid notebook parameter name (a Python identifier)", mapping, k)
            if train and k not in train_target.PARAMETERS and k not in RUNNER_PARAMETERS:
                self.fail(
                    f"{where}.{k}",
                    f"{k!r} is not a parameter of the train target: dataset, features, data_dir, "
                    "model, or a ModelConfig / TrainConfig field",
                    mapping,
                    k,
                )
            if k in RUNNER_PARAMETERS:
                self.fail(f"{where}.{k}", f"{k!r} is set by the grid runner for every cell; remove it", mapping, k)
            if k in RESULT_COLUMNS:
                self.fail(f"{where}.{k}", f"{k!r} is also a results.csv column; rename the parameter", mapping, k)


def _resolve_relative(path: Path, grid_file: Path) -> Path:
    """``path`` relative to the grid file's folder or the first of its parents where it exists."""
    for folder in (grid_file.resolve().parent, *grid_file.resolve().parents):
        if (folder / path).is_file():
            return folder / path
    return path


def _read_spec(path: Path, chk) -> dict:
    """The flat mapping of a run spec file (afme_lib/experiments/spec.py) for a grid's parameters."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        chk.fail("spec", f"{path}: cannot read it ({err})")
    if not isinstance(data, dict):
        chk.fail("spec", f"{path}: a run spec is one mapping of field: value")
    unknown = [k for k in data if k not in RUN_FIELDS]
    if unknown:
        chk.fail("spec", f"{path}: {unknown[0]!r} is not a run-spec field")
    return data


def _resolve_notebook(value: str, grid_file: Path | None) -> Path | None:
    """The notebook path as given: relative to the working directory, else to the grid file's
    folder or one of its parents (so ``configs/x.yaml`` can say ``notebooks/02_training.ipynb``)."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path if path.is_file() else None
    if path.is_file():
        return path.resolve()
    if grid_file is not None:
        for folder in grid_file.resolve().parents:
            if (folder / path).is_file():
                return folder / path
    return None


def notebook_parameter_names(notebook: Path) -> set[str] | None:
    """Names assigned in the notebook's cell tagged ``parameters`` (None when it has none)."""
    try:
        nb = json.loads(Path(notebook).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise AfmeError(f"{notebook}: not a readable notebook ({err})") from None
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            source = "".join(cell.get("source", []))
            try:
                tree = ast.parse(source)
            except SyntaxError:
                return None  # not plain Python (e.g. IPython magics): papermill still copes
            names = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.Assign):
                    names.update(t.id for t in node.targets if isinstance(t, ast.Name))
                elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                    names.add(node.target.id)
            return names
    return None


def parse_grid(data, source: str | Path = "<grid>", grid_file: Path | None = None, check_notebook: bool = True) -> Grid:
    """Validate a grid mapping (as read from YAML) into a :class:`Grid`.

    ``check_notebook`` also requires the notebook to exist and, when it has a ``parameters``
    cell, every parameter of the grid (and run_dir / progress) to be defined there: papermill
    would otherwise only warn and the cell would silently run with the notebook's default.
    """
    chk = _Checker(Path(source))
    if not isinstance(data, dict):
        chk.fail(
            "", f"a grid file holds a mapping with the keys {', '.join(TOP_LEVEL_KEYS)}; got {type(data).__name__}"
        )
    unknown = [k for k in data if k not in TOP_LEVEL_KEYS]
    if unknown:
        chk.fail(str(unknown[0]), f"unknown top-level key; allowed keys: {', '.join(TOP_LEVEL_KEYS)}", data, unknown[0])
    if "name" not in data:
        chk.fail("", "missing required key 'name'")
    if "notebook" in data and "target" in data:
        chk.fail("target", "give either a notebook or a target, not both", data, "target")
    if "notebook" not in data and "target" not in data:
        chk.fail("", f"missing required key 'notebook' (or 'target: {train_target.TARGETS[0]}')")
    name = data["name"]
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        chk.fail(
            "name",
            f"{name!r} must be a folder name: letters, digits, '.', '_' or '-', starting with a letter or digit",
            data,
            "name",
        )
    description = data.get("description") or ""
    if not isinstance(description, str):
        chk.fail("description", "expected text", data, "description")

    target, notebook, nb_value = data.get("target", NOTEBOOK), None, data.get("notebook")
    if "target" in data and target not in train_target.TARGETS:
        chk.fail(
            "target",
            f"unknown target {target!r}; targets: {', '.join(train_target.TARGETS)} (or give a notebook instead)",
            data,
            "target",
        )
    train = target != NOTEBOOK
    if not train:
        if not isinstance(nb_value, str) or not nb_value.endswith(".ipynb"):
            chk.fail("notebook", f"expected the path of an .ipynb file, got {nb_value!r}", data, "notebook")
        notebook = _resolve_notebook(nb_value, grid_file)
        if notebook is None:
            if check_notebook:
                where = "the working directory" + (
                    f" or {grid_file.resolve().parent} and its parents" if grid_file else ""
                )
                chk.fail("notebook", f"{nb_value} not found (looked in {where})", data, "notebook")
            notebook = Path(nb_value)

    parameters = chk.mapping(data, "parameters", data.get("parameters"))
    if data.get("spec") is not None:  # a run spec file under the parameters, relative to the grid file's folder
        spec_file = Path(str(data["spec"])).expanduser()
        if not spec_file.is_absolute() and not spec_file.is_file() and grid_file is not None:
            spec_file = _resolve_relative(spec_file, grid_file)
        if not spec_file.is_file():
            chk.fail("spec", f"{data['spec']} not found", data, "spec")
        parameters = {**_read_spec(spec_file, chk), **parameters}
    chk.identifiers("parameters", parameters, train)

    grid = chk.mapping(data, "grid", data.get("grid"))
    chk.identifiers("grid", grid, train)
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            chk.fail(
                f"grid.{key}",
                f"expected a non-empty list of values, got {values!r} (write [{values!r}] "
                "for a single value, or move it to parameters)",
                grid,
                key,
            )
        seen = {}
        for v in values:
            c = _canonical(v)
            if c in seen:
                chk.fail(f"grid.{key}", f"lists the value {v!r} twice", grid, key)
            seen[c] = v
        if key in parameters:
            chk.fail(f"grid.{key}", f"{key!r} is also in parameters; keep it in one place", grid, key)

    variants = chk.mapping(data, "variants", data.get("variants"))
    clean_variants = {}
    for vname, overrides in variants.items():
        if not isinstance(vname, str) or not vname.strip():
            chk.fail("variants", f"variant names must be non-empty text, got {vname!r}", variants, vname)
        where = f"variants.{vname}"
        overrides = {} if overrides is None else overrides
        if not isinstance(overrides, dict):
            chk.fail(where, f"expected a mapping of parameter: value, got {overrides!r}", variants, vname)
        chk.identifiers(where, overrides, train)
        for k in overrides:
            if k in grid:
                chk.fail(f"{where}.{k}", f"{k!r} is a grid key; a variant may not override it", overrides, k)
        clean_variants[vname] = overrides
    slugs = {}
    for vname in clean_variants:  # ids use the slug: two names with one slug would read the same
        s = slug(vname)
        if s in slugs:
            chk.fail(
                "variants", f"{vname!r} and {slugs[s]!r} read the same in cell ids ({s}); rename one", variants, vname
            )
        slugs[s] = vname

    metrics = data.get("metrics", list(DEFAULT_METRICS))
    if not isinstance(metrics, list) or not metrics:
        chk.fail("metrics", f"expected a non-empty list out of {', '.join(TABLE_METRICS)}", data, "metrics")
    for m in metrics:
        if m not in TABLE_METRICS:
            chk.fail("metrics", f"unknown metric {m!r}; choose from {', '.join(TABLE_METRICS)}", data, "metrics")
    if len(set(metrics)) != len(metrics):
        chk.fail("metrics", "lists a metric twice", data, "metrics")

    exclude = data.get("exclude") or []
    if not isinstance(exclude, list) or not all(isinstance(e, dict) and e for e in exclude):
        chk.fail(
            "exclude", f"expected a list of non-empty mappings of parameter: value, got {exclude!r}", data, "exclude"
        )
    known = {"variant", *parameters, *grid, *(k for o in clean_variants.values() for k in o)}
    for entry in exclude:
        for k in entry:
            if k not in known:
                chk.fail(
                    "exclude",
                    f"{k!r} is no parameter of this grid; parameters: {', '.join(sorted(known))}",
                    data,
                    "exclude",
                )

    run_dir = data.get("run_dir")
    if run_dir is not None:
        if not isinstance(run_dir, str) or not run_dir.strip():
            chk.fail(
                "run_dir",
                f"expected a folder-name template such as '{{model}}-s{{seed}}', got {run_dir!r}",
                data,
                "run_dir",
            )
        names = _template_names(run_dir, chk, data)
        unknown = [n for n in names if n not in known | {"dataset_name"}]
        if unknown:
            chk.fail(
                "run_dir",
                f"{{{unknown[0]}}} is no parameter of this grid; parameters: {', '.join(sorted(known))}",
                data,
                "run_dir",
            )

    if check_notebook and not train:
        defined = notebook_parameter_names(notebook)
        if defined is not None:
            used = [("parameters", parameters), ("grid", grid)]
            used += [(f"variants.{v}", o) for v, o in clean_variants.items()]
            for where, mapping in used:
                for k in mapping:
                    if k not in defined and k not in RUN_FIELDS:
                        chk.fail(
                            f"{where}.{k}",
                            f"{nb_value}'s parameters cell does not define {k!r} and it is "
                            f"no run-spec field; the cell defines: {', '.join(sorted(defined))}",
                            mapping,
                            k,
                        )
            missing = [k for k in RUNNER_PARAMETERS if k not in defined]
            if missing:
                chk.fail(
                    "notebook",
                    f"{nb_value}'s parameters cell must define {' and '.join(missing)} (the runner "
                    "passes them to every cell)",
                    data,
                    "notebook",
                )

    spec = Grid(
        name=name,
        notebook=notebook,
        parameters=_plain(parameters),
        grid=_plain(grid),
        variants=_plain(clean_variants),
        metrics=list(metrics),
        description=description.strip(),
        path=grid_file,
        target=target,
        run_dir=run_dir,
        exclude=_plain(exclude),
    )
    try:
        cells = expand(spec)
    except DataFormatError as err:  # a parameter text naming no parameter
        chk.fail("parameters", err.problem, data, "parameters")
    if not cells:
        chk.fail("exclude", "leaves no cell to run", data, "exclude")
    if train:
        for cell in cells:
            if "dataset" not in cell.params:
                chk.fail(
                    "parameters", f"cell {cell.id} has no 'dataset' (the train target needs one)", data, "parameters"
                )
    if run_dir is not None:
        seen: dict[str, str] = {}
        for cell in cells:
            missing = [n for n in _template_names(run_dir, chk, data) if n not in template_values(cell)]
            if missing:
                chk.fail("run_dir", f"cell {cell.id} has no parameter {missing[0]!r}", data, "run_dir")
            folder = spec.run_folder_name(cell)
            if folder in seen:
                chk.fail(
                    "run_dir",
                    f"cells {seen[folder]} and {cell.id} would share the run folder {folder!r}; "
                    "name the parameter that tells them apart in the template",
                    data,
                    "run_dir",
                )
            seen[folder] = cell.id
    if check_notebook:
        check_cell_options(spec, chk.source)
    return spec


def _template_names(template: str, chk: _Checker, data: dict) -> list[str]:
    """The ``{names}`` of a format template (a bare name each: no index, attribute or format)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        chk.fail("run_dir", f"not a valid template ({err}): {template!r}", data, "run_dir")
    names = []
    for _text, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            chk.fail(
                "run_dir",
                f"write each field as a bare {{name}}, got {{{name}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}}",
                data,
                "run_dir",
            )
        names.append(name)
    return names


def template_values(cell: Cell) -> dict[str, str]:
    """What a ``run_dir`` template may name: the cell's parameters and ``variant`` (each as its
    :func:`slug`) and ``dataset_name``, the last path component of ``dataset``."""
    values = {k: slug(v) for k, v in cell.params.items()}
    if cell.variant is not None:
        values["variant"] = slug(cell.variant)
    if isinstance(cell.params.get("dataset"), str):
        values["dataset_name"] = slug(Path(cell.params["dataset"]).name)
    return values


def check_cell_options(grid: Grid, source: Path) -> None:
    """Build every cell's run spec (a notebook cell: from its run-spec fields, when it names a
    dataset) and check it, so a bad value fails before any cell runs: the error names the file,
    the cell with its parameters, and the option. What depends on the machine the cell will run
    on (device, GPU-only options, feature files) is checked there."""
    for cell in expand(grid):
        given = {k: v for k, v in cell.params.items() if k in RUN_FIELDS}
        if "dataset" not in given:
            continue
        try:
            train_target.cell_spec(given)
        except OptionError as err:
            shown = ", ".join(f"{k}={v!r}" for k, v in cell.params.items())
            raise DataFormatError(source, f"cell {cell.id} ({shown}): {err}") from None


def ablation_grid(
    name: str,
    parameters: dict,
    variants=ablations.NAMES,
    seeds=(0,),
    notebook: str | Path | None = None,
    metrics=DEFAULT_METRICS,
    description: str = "",
) -> Grid:
    """The grid of an AFME ablation study: the training notebook (``notebook``, default the
    project's ``notebooks/02_training.ipynb``) run with ``parameters`` for every named variant
    of :mod:`afme_lib.core.ablations` and every training seed. The cells train AFME alone
    (``compare_with: []``: no baselines beside it)."""
    notebook = Path(notebook) if notebook is not None else TRAINING_NOTEBOOK
    spec = {
        "name": name,
        "notebook": str(notebook),
        "description": description,
        "parameters": {"model": "afme", "compare_with": [], **parameters},
        "grid": {"seed": list(seeds)},
        "variants": ablations.variants(variants),
        "metrics": list(metrics),
    }
    return parse_grid(spec, source=f"<ablation grid {name}>")


def changed(
    grid: Grid, parameters: dict | None = None, axes: dict | None = None, variants=None, exclude: list | None = None
) -> Grid:
    """The grid with changes, validated again (what a benchmark's flags do to its grid file):
    ``parameters`` updated (a None value leaves the file's value), grid lists ``axes`` replaced,
    ``variants`` the names kept (in that order) or a mapping replacing them, ``exclude`` replaced.
    The copy has no file (its ``grid.yaml`` in the report is the changed spec)."""
    spec = grid.to_dict()
    spec["parameters"] = {**grid.parameters, **{k: v for k, v in (parameters or {}).items() if v is not None}}
    spec["grid"] = {**grid.grid, **(axes or {})}
    if variants is not None:
        if not isinstance(variants, dict):
            unknown = [v for v in variants if v not in grid.variants]
            if unknown:
                raise AfmeError(
                    f"{grid.path or grid.name}: no variant {unknown[0]!r}; variants: {', '.join(grid.variants)}"
                )
            variants = {v: grid.variants[v] for v in variants}
        spec["variants"] = variants
    if exclude is not None:
        spec["exclude"] = exclude
    if grid.notebook is not None:
        spec["notebook"] = str(grid.notebook)
    return parse_grid(spec, source=grid.path or f"<grid {grid.name}>")


def load_grid(path: str | Path, check_notebook: bool = True) -> Grid:
    """Read and validate a grid file; errors name the file, the line and the key."""
    path = Path(path)
    return parse_grid(_read_yaml(path), source=path, grid_file=path, check_notebook=check_notebook)


# --- expansion --------------------------------------------------------------------------------
def slug(value) -> str:
    """A filesystem-safe, readable rendering of a parameter value: ``w/o GAN`` -> ``w-o-GAN``."""
    if isinstance(value, bool) or value is None:
        text = str(value).lower()
    elif isinstance(value, (int, float, str)):
        text = str(value)
    else:
        text = _canonical(value)
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return text[:40] or "x"


def cell_id(variant: str | None, axes: dict, params: dict) -> str:
    """``variant=<slug>__<key>=<slug>...__<hash8>``; see the module docstring."""
    parts = [f"variant={slug(variant)}"] if variant is not None else []
    parts += [f"{k}={slug(axes[k])}" for k in sorted(axes)]
    digest = hashlib.sha1(_canonical({"variant": variant, "params": params}).encode()).hexdigest()[:8]
    readable = "__".join(parts)[:MAX_SLUG]
    return f"{readable}__{digest}" if readable else f"cell__{digest}"


def expand(grid: Grid) -> list[Cell]:
    """The cells in report order: variants (file order) outer, grid product (file order) inner."""
    keys = list(grid.grid)
    combos = list(itertools.product(*(grid.grid[k] for k in keys)))
    variants = list(grid.variants.items()) or [(None, {})]
    cells = []
    for vname, overrides in variants:
        for combo in combos:
            axes = dict(zip(keys, combo))
            params = {**grid.parameters, **axes, **overrides}
            if any(_matches(entry, vname, params) for entry in grid.exclude):
                continue
            if not grid.runs_notebooks:
                params = {k: _fill(v, params) for k, v in params.items()}
            cells.append(Cell(id=cell_id(vname, axes, params), params=params, variant=vname, axes=axes))
    return cells


def _matches(entry: dict, variant: str | None, params: dict) -> bool:
    """Whether a cell has every value of an ``exclude`` entry (``variant`` its variant's name)."""
    values = {**params, "variant": variant}
    return all(k in values and _canonical(values[k]) == _canonical(v) for k, v in entry.items())


def _fill(value, params: dict):
    """A train cell's text value with ``{name}`` replaced by the cell's parameter ``name``."""
    if not isinstance(value, str) or "{" not in value:
        return value
    try:
        return value.format_map({k: v for k, v in params.items() if not isinstance(v, str) or "{" not in v})
    except (KeyError, ValueError, IndexError) as err:
        raise DataFormatError("<grid>", f"cannot fill in {value!r} from the cell's parameters ({err})") from None
