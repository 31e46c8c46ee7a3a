"""An ipywidgets panel: pick a relation and an entity, see AFME's modality weights and its top
predicted tails update.

Controls: a Dropdown of relations and a Combobox of entity names. With an entity, the bar chart
shows that (entity, relation) pair's fusion weights and gates and the table lists the top-k
tails of (entity, relation, ?); with the entity box empty, the chart shows the relation's mean
weights (:func:`~afme_lib.analysis.modality_weights.relation_profile`) and the table is empty.

The chart is a plotly figure displayed in an ``ipywidgets.Output`` (plotly's FigureWidget needs
the anywidget package, which the workbench does not depend on); the table and messages are an
``ipywidgets.HTML``. Both are widget state, so an executed notebook saved with its widget state
shows the panel's last view without a kernel.
"""

from __future__ import annotations

import html
import json

import pandas as pd

from afme_lib.analysis.modality_weights import ModalityProfile, entity_weights
from afme_lib.analysis.predictions import top_predictions


def weights_figure(frame: pd.DataFrame, title: str):
    """Bars: the fusion weight of each token and, beside it, the gate of each modality."""
    import plotly.graph_objects as go

    # plain lists: a few numbers, stored readable in the widget state (not as base64 arrays)
    fig = go.Figure(
        go.Bar(
            name="fusion weight",
            x=list(frame.index),
            y=frame["weight"].tolist(),
            text=frame["weight"].round(3).tolist(),
            textposition="outside",
        )
    )
    if "gate" in frame:
        gates = frame["gate"]
        fig.add_trace(
            go.Bar(
                name="mean gate",
                x=list(frame.index),
                y=gates.tolist(),
                text=gates.round(3).tolist(),
                textposition="outside",
            )
        )
    fig.update_layout(title=title, barmode="group", yaxis={"range": [0, 1.1]}, height=360, margin={"t": 60})
    return fig


class ModalityPanel:
    """Build with a trained AFME and its dataset; show ``panel.widget`` (or just ``panel``)."""

    def __init__(
        self,
        model,
        dataset,
        profile: ModalityProfile | None = None,
        k: int = 10,
        relation: int | None = None,
        entity: int | None = None,
    ):
        import ipywidgets as w

        self.model, self.dataset, self.profile, self.k = model, dataset, profile, k
        self._ids = {name: i for i, name in enumerate(dataset.entity_names)}
        if relation is None:  # the most frequent training relation: it has the most to show
            relation = int(dataset.train[:, 1].bincount(minlength=dataset.num_relations).argmax())
        if entity is None:  # one of its training heads, so the first view has predictions
            entity = int(dataset.train[dataset.train[:, 1] == relation][0, 0])
        self.relation = w.Dropdown(
            options=[(name, i) for i, name in enumerate(dataset.relation_names)],
            value=int(relation),
            description="relation",
            layout=w.Layout(width="420px"),
        )
        self.entity = w.Combobox(
            options=list(dataset.entity_names),
            value=dataset.entity_names[entity],
            placeholder="entity name (empty: the relation's mean weights)",
            description="entity",
            ensure_option=False,
            layout=w.Layout(width="420px"),
        )
        self.chart = w.Output()
        self.table = w.HTML()
        self.widget = w.VBox([w.HBox([self.relation, self.entity]), self.chart, self.table])
        self.relation.observe(self._changed, names="value")
        self.entity.observe(self._changed, names="value")
        self.update()

    def _changed(self, _change) -> None:
        self.update()

    def update(self) -> None:
        """Redraw the chart and the table for the current relation and entity."""
        rel = int(self.relation.value)
        rel_name = self.dataset.relation_names[rel]
        name = (self.entity.value or "").strip()
        if not name:
            if self.profile is None:
                self._show(None, f"<p>Type an entity name to see its weights for <b>{html.escape(rel_name)}</b>.</p>")
                return
            row = self.profile.weights.loc[rel_name]
            frame = pd.DataFrame({"weight": row, "gate": self.profile.gates.loc[rel_name].reindex(row.index)})
            self._show(
                weights_figure(frame, f"{rel_name}: mean over its occurrences"),
                "<p>Mean weights of the relation; pick an entity to see its top predicted tails.</p>",
            )
            return
        if name not in self._ids:
            self._show(None, f"<p>No entity named <code>{html.escape(name)}</code>.</p>")
            return
        ent = self._ids[name]
        frame = entity_weights(self.model, ent, rel)
        top = top_predictions(self.model, self.dataset, ent, rel, "tail", self.k)
        caption = (
            f"<p><b>Top {len(top)} tails</b> of ({html.escape(name)}, {html.escape(rel_name)}, ?) "
            "&mdash; <i>known</i> names the split holding the true triple.</p>"
        )
        self._show(
            weights_figure(frame, f"({name}, {rel_name}): fusion weights and gates"),
            caption + top.to_html(classes="afme-top", border=0),
        )

    def _show(self, fig, table_html: str) -> None:
        # The output is set as a plotly JSON bundle directly (not `with self.chart: display(fig)`):
        # it then does not depend on the renderer in use, and updates work outside a kernel too.
        self.chart.outputs = (
            ()
            if fig is None
            else (
                {
                    "output_type": "display_data",
                    "metadata": {},
                    "data": {
                        "application/vnd.plotly.v1+json": {**json.loads(fig.to_json()), "config": {}},
                        "text/plain": f"<figure: {fig.layout.title.text}>",
                    },
                },
            )
        )
        self.table.value = table_html

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def modality_panel(
    model,
    dataset,
    profile: ModalityProfile | None = None,
    k: int = 10,
    relation: int | None = None,
    entity: int | None = None,
) -> ModalityPanel:
    """The panel of the module docstring (display the returned object in a notebook)."""
    return ModalityPanel(model, dataset, profile, k, relation, entity)
