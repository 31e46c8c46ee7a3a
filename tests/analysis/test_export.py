"""Figures offline: the notebook renderer, saved HTML figures and exported notebook pages load no
script from the network (the browser check that they also draw is tests/integration/test_browser.py)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("plotly")
pytest.importorskip("nbconvert")

from afme_lib.analysis import figures  # noqa: E402
from afme_lib.analysis.export import PLOTLY_MIME, WIDGET_NOTE, notebook_html  # noqa: E402
from afme_lib.interfaces.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# a <script src=...>, <link href=...> or ES-module import that reaches for a URL
REMOTE = re.compile(
    r"""<script[^>]*\bsrc\s*=\s*["']?(?:https?:)?//|<link[^>]*\bhref\s*=\s*["']?(?:https?:)?//"""
    r"""|import\s*\(?\s*["'](?:https?:)?//""",
    re.I,
)


def _script_sources(html: str) -> list[str]:
    return re.findall(r"""<script[^>]*\bsrc\s*=\s*["']([^"']*)["']""", html, re.I)


def _figure():
    import plotly.graph_objects as go

    return go.Figure(go.Bar(x=["structure", "text", "image"], y=[0.5, 0.3, 0.2]), layout={"title": "weights"})


def _plotly_bundle() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def test_a_saved_html_figure_loads_only_the_local_plotly_bundle(tmp_path):
    html = figures.save_figure(_figure(), tmp_path / "reports" / "grid" / "figures" / "weights", png=False)[0]
    text = html.read_text()
    assert not REMOTE.search(text) and "cdnjs" not in text  # no MathJax either
    assert _script_sources(text) == ["../../assets/plotly.min.js"]
    assert (tmp_path / "reports" / "assets" / "plotly.min.js").read_text() == _plotly_bundle()  # the package's own


def test_the_notebook_renderer_stores_json_and_html_without_network():
    import plotly.io as pio

    before = pio.renderers.default
    try:
        figures.use_notebook_renderer()
        bundle = pio.renderers._build_mime_bundle(_figure().to_dict())
    finally:
        pio.renderers.default = before
    assert set(bundle) == {PLOTLY_MIME, "text/html"}
    html = bundle["text/html"]
    assert _script_sources(html) == [] and not REMOTE.search(html) and "cdn" not in html.lower()
    assert "Plotly.newPlot" in html and "plotly-graph-div" in html


def _executed_notebook(path: Path, cells: list[str]) -> Path:
    """A notebook executed in a kernel the way the workbench notebooks start (setup_notebook)."""
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    nbformat.write(nb, str(path))
    return path


def test_an_exported_notebook_page_has_no_remote_script(tmp_path):
    notebook = _executed_notebook(
        tmp_path / "executed.ipynb",
        [
            "from afme_lib.interfaces import notebook\nnotebook.setup_notebook()",
            "import plotly.graph_objects as go\n"
            "go.Figure(go.Bar(x=['a', 'b'], y=[1, 2]), layout={'title': 'two bars'})",
            "import ipywidgets\nipywidgets.IntSlider(3)",
            "from IPython.display import Markdown\nMarkdown('inline math $x^2$')",
        ],
    )
    stored = notebook.read_text()
    assert "cdn.plot.ly" not in stored and "cdnjs" not in stored  # the executed notebook itself
    assert main(["html", str(notebook), "--out-dir", str(tmp_path / "pages")]) == 0
    page = (tmp_path / "pages" / "executed.html").read_text()
    assert not REMOTE.search(page), REMOTE.search(page)
    assert _script_sources(page) == ["plotly.min.js"]
    assert (tmp_path / "pages" / "plotly.min.js").read_text() == _plotly_bundle()
    assert page.count('class="plotly-graph-div"') == 1 and "two bars" in page
    assert WIDGET_NOTE in page and "application/vnd.jupyter.widget-view+json" not in page


def test_a_notebook_executed_with_the_cdn_renderer_is_exported_offline(tmp_path):
    """A notebook executed before the offline renderer (plotly's "notebook_connected"): its stored
    CDN scripts are dropped and each figure is redrawn from its JSON."""
    notebook = _executed_notebook(
        tmp_path / "old.ipynb",
        [
            "import plotly.io as pio\npio.renderers.default = 'plotly_mimetype+notebook_connected'",
            "import plotly.graph_objects as go\ngo.Figure(go.Scatter(y=[3, 1, 2]), layout={'title': 'connected'})",
        ],
    )
    assert "cdn.plot.ly" in notebook.read_text()
    page = notebook_html(notebook, tmp_path / "reports" / "x" / "old.html").read_text()
    assert not REMOTE.search(page) and "cdn.plot.ly" not in page
    assert _script_sources(page) == ["../assets/plotly.min.js"]  # the copy shared under reports/
    assert page.count('class="plotly-graph-div"') == 1 and "connected" in page
