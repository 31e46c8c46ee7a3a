"""Showing and saving plotly figures, every one drawable with no network.

Renderer. Plotly's default in a kernel embeds the 3.5 MB plotly.js bundle into the notebook, and
its "connected" renderers load plotly.js and MathJax from CDNs (empty figure boxes offline).
The notebooks use :data:`NOTEBOOK_RENDERER` = ``"plotly_mimetype+afme_offline"`` instead: each
figure is stored as its JSON (``application/vnd.plotly.v1+json``, which JupyterLab and VS Code
draw with the plotly they ship) plus an HTML view (:func:`offline_html`) that draws it with the
page's own ``Plotly`` and loads nothing: :mod:`afme_lib.analysis.export` writes pages that
provide it. No output carries the bundle.

Files. :func:`save_figure` writes interactive HTML that references one ``plotly.min.js`` by a
relative path: under a ``reports/`` tree the single copy in ``reports/assets/``, elsewhere a copy
in the figure's folder (:func:`_shared_plotlyjs`), so figures work offline and the bundle is
stored once. The copy is the installed plotly package's own bundle. A PNG is written too when
kaleido is importable and its export works; otherwise the PNG is skipped with one warning per
process, never an error.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

from afme_lib.core import atomic

OFFLINE_RENDERER = "afme_offline"
NOTEBOOK_RENDERER = f"plotly_mimetype+{OFFLINE_RENDERER}"
_png_state: dict[str, str | None] = {"error": None}  # set once a PNG export failed in this process


def offline_html(fig) -> str:
    """A figure (object or its JSON dict) as an HTML fragment: its div and the script that draws
    it with the page's global ``Plotly``; no ``<script src>``, no MathJax."""
    import plotly.io as pio

    return pio.to_html(
        fig,
        include_plotlyjs=False,
        include_mathjax=False,
        full_html=False,
        default_width="100%",
        default_height=525,
        validate=False,
    )


def use_notebook_renderer(renderer: str = NOTEBOOK_RENDERER) -> None:
    """Make ``renderer`` plotly's default, registering ``afme_offline`` (:func:`offline_html`) first."""
    import plotly.io as pio
    from plotly.io._base_renderers import MimetypeRenderer

    class OfflineHtml(MimetypeRenderer):
        def to_mimebundle(self, fig_dict):
            return {"text/html": offline_html(fig_dict)}

    if OFFLINE_RENDERER not in pio.renderers:
        pio.renderers[OFFLINE_RENDERER] = OfflineHtml()
    pio.renderers.default = renderer


def _kaleido_installed() -> bool:
    return importlib.util.find_spec("kaleido") is not None


def png_available() -> bool:
    """Whether a static export can be tried: kaleido importable and no earlier failure."""
    return _png_state["error"] is None and _kaleido_installed()


PLOTLY_JS = "plotly.min.js"


def _shared_plotlyjs(folder: Path) -> str:
    """Relative src of one plotly.js copy shared by every figure under the same ``reports/`` tree.

    The bundle is 4.7 MB: one copy per figure folder would dominate a repository's reports. It
    goes to ``<nearest ancestor named reports>/assets/`` (else into ``folder`` itself), written
    once, so every HTML figure opens offline.
    """
    import os

    from plotly.offline import get_plotlyjs

    folder = folder.resolve()
    root = next((p for p in (folder, *folder.parents) if p.name == "reports"), None)
    target_dir = root / "assets" if root is not None else folder
    target = target_dir / PLOTLY_JS
    if not target.is_file():
        target_dir.mkdir(parents=True, exist_ok=True)
        atomic.write_text(target, get_plotlyjs())  # parallel grid cells may write it at once
    return os.path.relpath(target, folder).replace(os.sep, "/")


def save_figure(fig, path: str | Path, png: bool = True) -> list[Path]:
    """Write ``<path>.html`` (and ``<path>.png`` when possible); return the files written.

    ``path`` may carry a suffix (it is replaced). Parent folders are created.
    """
    base = Path(path)
    base = base.with_suffix("") if base.suffix in (".html", ".png") else base
    base.parent.mkdir(parents=True, exist_ok=True)
    html = base.parent / f"{base.name}.html"
    fig.write_html(str(html), include_plotlyjs=_shared_plotlyjs(base.parent), full_html=True)
    written = [html]
    if png and png_available():
        target = base.parent / f"{base.name}.png"
        try:
            fig.write_image(str(target))
            written.append(target)
        except Exception as err:  # noqa: BLE001 -- no browser, old kaleido ...: PNG is optional
            first_line = (str(err).strip().splitlines() or [""])[0][:200]
            _png_state["error"] = f"{type(err).__name__}: {first_line}"
            warnings.warn(
                f"PNG export skipped for this session ({_png_state['error']}); the HTML figures are written",
                RuntimeWarning,
                stacklevel=2,
            )
    return written


def save_figures(figures: dict, folder: str | Path, png: bool = True) -> list[Path]:
    """:func:`save_figure` for each ``{name: figure}`` into ``folder``."""
    written = []
    for name, fig in figures.items():
        written += save_figure(fig, Path(folder) / name, png=png)
    return written
