"""Executed notebooks as HTML pages that open offline (``afme html NOTEBOOK.ipynb``).

nbconvert's ``lab`` template loads require.js, MathJax, mermaid and the widget manager from CDNs,
and notebooks executed with plotly's "connected" renderers load plotly.js from one too. The page
written here loads one script, the installed plotly's ``plotly.min.js``, by a relative path (the
copy shared under ``reports/assets/`` for pages under a ``reports/`` tree, else one beside the page,
as :func:`~afme_lib.analysis.figures.save_figure` does), and:

- every plotly output is redrawn from its JSON (:func:`~afme_lib.analysis.figures.offline_html`),
  whatever HTML the kernel stored beside it; plotly's own loader outputs are dropped;
- MathJax and mermaid are off (a formula in a markdown cell shows as its TeX source);
- an ipywidgets view (the panel of notebook 04) becomes a note: its manager would come from a CDN,
  and the panel needs a kernel anyway (open the notebook in JupyterLab).
"""

from __future__ import annotations

from pathlib import Path

from afme_lib.analysis.figures import _shared_plotlyjs, offline_html

PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = (
    "<p><i>Interactive widget: open the notebook in JupyterLab with a running kernel to use it "
    "(an HTML page cannot run its callbacks).</i></p>"
)
TEMPLATE = "afme_offline.html.j2"
# The lab template without its network-loaded scripts; the page's one script is plotly.js.
TEMPLATE_TEXT = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}<script charset="utf-8" src="{{ resources.plotly_js_src }}"></script>{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _is_plotly_loader(html: str) -> bool:
    """Plotly's "notebook" renderers' first output: a script that only configures or loads plotly.js."""
    return "window.PlotlyConfig" in html and "plotly-graph-div" not in html


def offline_outputs(nb) -> int:
    """Rewrite ``nb``'s outputs in place as the module doc says; return how many changed."""
    changed = 0
    for cell in nb.cells:
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIME in data:
                data["text/html"] = offline_html(data[PLOTLY_MIME])
            elif WIDGET_MIME in data:
                output["data"] = {"text/html": WIDGET_NOTE, "text/plain": _text(data.get("text/plain", ""))}
            elif "text/html" in data and _is_plotly_loader(_text(data["text/html"])):
                changed += 1
                continue
            else:
                kept.append(output)
                continue
            changed += 1
            kept.append(output)
        if "outputs" in cell:
            cell["outputs"] = kept
    nb.metadata.pop("widgets", None)  # the saved widget state feeds only the (CDN) widget manager
    return changed


def notebook_html(notebook: str | Path, out: str | Path | None = None) -> Path:
    """Write ``notebook`` (an executed ``.ipynb``) as an HTML page that opens offline; returns
    its path (default: beside the notebook, ``.html`` suffix)."""
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    notebook = Path(notebook)
    out = Path(out) if out is not None else notebook.with_suffix(".html")
    out.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(notebook, as_version=4)
    offline_outputs(nb)
    exporter = HTMLExporter(
        template_name="lab", extra_loaders=[jinja2.DictLoader({TEMPLATE: TEMPLATE_TEXT})], template_file=TEMPLATE
    )
    body, _ = exporter.from_notebook_node(
        nb, resources={"plotly_js_src": _shared_plotlyjs(out.parent), "metadata": {"name": notebook.stem}}
    )
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(out)
    return out
