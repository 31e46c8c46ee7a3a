"""The page of a study folder (``DIR/README.md`` of ``afme tune``): the search, the best trial,
every trial, and Optuna's figures as offline HTML under ``DIR/figures/``."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

from afme_lib.analysis.figures import save_figures
from afme_lib.core.console import display_path
from afme_lib.experiments.pages.writer import write_page
from afme_lib.experiments.tuning import BEST_YAML, TuneSpec, best_trial, finished_count, trials_table

FIGURES = {
    "history": ("every trial's value and the best so far (pruned trials at their last validation)", None),
    "importances": ("parameter importances", "plot_param_importances"),
    "slices": ("objective against each parameter", "plot_slice"),
    "intermediate": ("validation during each trial (what the pruner saw)", "plot_intermediate_values"),
}


def study_figures(study) -> dict:
    """``{name: plotly figure}`` of Optuna's views that this study can draw (importances need two
    complete trials, intermediate values a reported validation)."""
    from optuna import visualization

    figures = {"history": history_figure(study)} if study.trials else {}
    for name, (_, function) in FIGURES.items():
        if function is None:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna's "experimental" notices
                fig = getattr(visualization, function)(study)
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue  # too few trials for this view yet
        # Optuna draws hairlines and small dots: thicker, so a short study reads at a glance
        fig.update_traces(selector={"type": "scatter"}, line_width=3, marker_size=10)
        figures[name] = fig
    return figures


def history_figure(study):
    """Each finished trial's objective by trial number, complete and pruned apart (Optuna's own
    history leaves pruned trials out, which hides what the pruner stopped), and the best so far."""
    import plotly.graph_objects as go

    maximize = study.direction.name == "MAXIMIZE"
    finished = [t for t in study.trials if t.value is not None and t.state.name in ("COMPLETE", "PRUNED")]
    fig = go.Figure()
    for state, symbol, color in (("COMPLETE", "circle", "#1f77b4"), ("PRUNED", "x", "#7f7f7f")):
        rows = [t for t in finished if t.state.name == state]
        fig.add_scatter(
            x=[t.number for t in rows],
            y=[t.value for t in rows],
            mode="markers",
            name=state.lower(),
            marker={"symbol": symbol, "size": 12, "color": color},
            text=[
                ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
                for t in rows
            ],
        )
    complete = sorted((t for t in finished if t.state.name == "COMPLETE"), key=lambda t: t.number)
    best, xs, ys = None, [], []
    for t in complete:
        if best is None or (t.value > best if maximize else t.value < best):
            best = t.value
        xs.append(t.number)
        ys.append(best)
    if xs and finished[-1].number > xs[-1]:  # the best holds to the last trial
        xs.append(finished[-1].number)
        ys.append(best)
    fig.add_scatter(x=xs, y=ys, mode="lines", name="best so far", line={"shape": "hv", "width": 3, "color": "#d62728"})
    objective = study.user_attrs.get("objective", "objective")
    fig.update_layout(
        title="Validation objective of every trial",
        xaxis_title="trial",
        yaxis_title=f"validation {objective}",
        height=420,
    )
    return fig


def importances(study) -> dict[str, float]:
    """fANOVA importance of each searched field ({} with fewer than two complete trials)."""
    from optuna.importance import get_param_importances

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dict(get_param_importances(study))
    except (ValueError, RuntimeError, ZeroDivisionError):
        return {}


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def study_page(study, tune: TuneSpec, out: Path, figures: bool = True) -> Path:
    """Write ``out/README.md`` (and the figures, unless ``figures`` is False)."""
    out = Path(out)
    written = save_figures(study_figures(study), out / "figures", png=False) if figures else []
    table = trials_table(study)
    states = table["state"].value_counts().to_dict() if len(table) else {}
    best = best_trial(study)
    base = tune.base
    lines = [
        f"# Study: {base.get('model', 'model')} on {base.get('dataset')}",
        "",
        f"Command: `{study.user_attrs.get('command', 'afme tune')}` (rerun it to continue the study).",
        "",
        f"Objective: validation {tune.objective.name}, {tune.direction}d over {finished_count(study)} finished "
        f"trials ({', '.join(f'{n} {s.lower()}' for s, n in sorted(states.items()))}); TPE sampler, seed "
        f"{tune.seed}; pruner: {tune.pruner}, fed by validation every {tune.trial_spec({}).train.eval_every} "
        f"epochs; {tune.epochs or tune.trial_spec({}).train.epochs} epochs per trial. Each trial's value is "
        "its run's validation at its best-valid checkpoint; test is not read.",
        "",
        "## Search space",
        "",
        "| field | range | importance |",
        "|---|---|---|",
    ]
    weight = importances(study)
    for dim in tune.space:
        share = weight.get(dim.name)
        lines.append(f"| {dim.name} | {dim.describe()} | {'' if share is None else f'{share:.2f}'} |")
    fixed = {k: v for k, v in base.items() if k not in {d.name for d in tune.space}}
    lines += ["", "Fixed: " + ", ".join(f"{k} {v}" for k, v in fixed.items()) + ".", "", "## Best trial", ""]
    if best is None:
        lines.append("No trial has finished yet.")
    else:
        lines += [
            f"Trial {best.number}: validation {tune.objective.name} **{best.value:.4f}** (best epoch "
            f"{best.user_attrs.get('best_epoch')}), with "
            + ", ".join(f"{k} = {_cell(v)}" for k, v in best.params.items())
            + f". Its complete run spec is [`{BEST_YAML}`]({BEST_YAML}): `afme train --config "
            f"{display_path(out / BEST_YAML)}` trains it again (same seed, same numbers on the same machine).",
        ]
    lines += ["", "## Trials", ""]
    params = [c for c in table.columns if c.startswith("params_")]
    header = ["trial", "state", "value", *(p[len("params_") :] for p in params), "epochs run", "best epoch", "seconds"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        cells = [
            row["number"],
            str(row["state"]).lower(),
            row["value"],
            *(row[p] for p in params),
            row.get("user_attrs_epochs_run"),
            row.get("user_attrs_best_epoch"),
            row.get("duration"),
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if written:
        lines += ["", "## Figures", ""]
        for path in written:
            title = FIGURES.get(path.stem, (path.stem,))[0]
            lines.append(f"- [{title}](figures/{path.name}) (plotly, opens offline)")
    return write_page(out / "README.md", lines)
