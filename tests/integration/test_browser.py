"""The workbench in a real browser: Debian's chromium driven headless by selenium.

- JupyterLab end to end: notebook 04 on the tiny preset runs in a JupyterLab served on
  127.0.0.1; changing the widget panel's relation redraws its weights chart for that relation.
- Report pages offline: every HTML figure under ``reports/`` and an exported notebook page draw
  their plotly figures with every host name unresolvable (no network).

Screenshots go to ``test-artifacts/browser/`` (git-ignored; ``$AFME_TEST_ARTIFACTS`` moves it).
Without /usr/bin/chromium and /usr/bin/chromedriver the tests skip, saying so, unless
``$AFME_REQUIRE_BROWSER=1`` (what .ci/run sets, after installing them): then they fail.
Every wait is on a DOM or HTTP condition, bounded by a timeout.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("AFME_TEST_ARTIFACTS") or ROOT / "test-artifacts") / "browser"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
    "--disable-dev-shm-usage",
]
NOTEBOOK = "04_modality_contributions.ipynb"

pytestmark = pytest.mark.browser


def _missing_browser() -> str | None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        return f"{' and '.join(missing)} not found: apt-get install chromium chromium-driver (.ci/run does)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="module", autouse=True)
def browser_available():
    reason = _missing_browser()
    if reason:
        if os.environ.get("AFME_REQUIRE_BROWSER") == "1":
            pytest.fail(f"AFME_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)


@pytest.fixture
def driver(tmp_path):
    """Headless chromium with a fresh profile; ``offline``-style host rules are set per test."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    def start(*extra: str):
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *extra]:
            options.add_argument(flag)
        browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        browser.set_page_load_timeout(60)
        # The page behaves as focused: JupyterLab's current widget follows focus, and headless
        # Chromium 150's window never had it (document.hasFocus() false, no current notebook).
        browser.execute_cdp_cmd("Emulation.setFocusEmulationEnabled", {"enabled": True})
        started.append(browser)
        return browser

    started: list = []
    yield start
    for browser in started:
        browser.quit()


def _screenshot(browser, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    browser.save_screenshot(str(path))
    return path


def _drawn_fraction(browser, element, name: str) -> float:
    """Share of the element's pixels that are not (near) white, from its screenshot (kept as
    ``<name>.png``)."""
    import numpy as np
    from PIL import Image

    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    png = element.screenshot_as_png
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{name}.png").write_bytes(png)
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    return float((pixels < 235).mean()) if pixels.size else 0.0


# --- report pages offline ------------------------------------------------------------------------
def _report_pages(tmp_path) -> list[Path]:
    """Every HTML page under reports/, plus an executed notebook exported with `afme html`."""
    from afme_lib.analysis.export import notebook_html

    pages = sorted(p for p in (ROOT / "reports").rglob("*.html"))
    executed = sorted((ROOT / "reports").rglob("notebooks/*.ipynb"))
    assert executed, "no executed notebook under reports/ to export"
    site = tmp_path / "reports" / "exported"  # a reports/ tree: the page gets reports/assets/plotly.min.js
    return pages + [notebook_html(executed[0], site / "training-notebook.html")]


def test_report_pages_draw_their_figures_offline(driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    pages = _report_pages(tmp_path)
    assert len(pages) >= 2
    browser = driver("--host-resolver-rules=MAP * ~NOTFOUND")  # no host name resolves: offline
    for page in pages:
        # The figures the file holds, counted in its text: counted in the DOM straight after
        # get(), a page sometimes showed none yet (1 page in ~25, more often on a busy machine).
        expected = page.read_text(errors="replace").count('class="plotly-graph-div"')
        assert expected >= 1, f"{page}: no plotly figure on the page"
        browser.get(page.as_uri())
        WebDriverWait(browser, 30).until(
            lambda b, expected=expected: (
                len(b.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")) >= expected
                and len(b.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .main-svg")) >= expected
            ),
            f"{page}: plotly did not draw its {expected} figure(s) offline",
        )
        name = "offline-" + "-".join(
            page.relative_to(tmp_path if page.is_relative_to(tmp_path) else ROOT).with_suffix("").parts
        )
        for i, plot in enumerate(browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")):
            drawn = _drawn_fraction(browser, plot, f"{name}-figure{i + 1}")
            assert drawn > 0.01, f"{page}: figure {i + 1} is blank ({drawn:.2%} non-white pixels)"
        failed = browser.execute_script(
            "return performance.getEntriesByType('resource').filter(e => !e.name.startsWith('file:')"
            " && !e.name.startsWith('data:')).map(e => e.name);"
        )
        assert failed == [], f"{page} asked the network for {failed}"


# --- JupyterLab end to end ---------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    """JupyterLab on 127.0.0.1 (a free port, a token), serving a copy of notebook 04, its kernel
    on the tiny preset (AFME_NB_QUICK=1); yields the notebook's URL."""
    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, root / NOTEBOOK)
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "AFME_NB_QUICK": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws"),
    }
    # Draw every cell, not only those in view (JupyterLab 4 windows long notebooks by default), and
    # no "fetch Jupyter news?" toast over the page.
    for plugin, setting in (
        ("notebook-extension/tracker", '{"windowingMode": "none"}'),
        ("apputils-extension/notification", '{"fetchNews": "false"}'),
    ):
        path = tmp_path / "settings" / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(setting)
    log = (tmp_path / "jupyterlab.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--allow-root",  # CI containers run as root
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # the server answers its status API once it listens
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "JupyterLab did not start: " + (tmp_path / "jupyterlab.log").read_text()[-2000:]
                    ) from None
                time.sleep(0.25)
        yield f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK}?token={token}"
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # the server and its kernel (its own process group)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        log.close()


# The panel's chart: the plotly figure in its VBox (drawn by the Output widget it holds).
CHART = ".widget-vbox .js-plotly-plot"
CHART_TITLE = """
const plots = document.querySelectorAll(arguments[0]);
const title = plots.length ? plots[plots.length - 1].querySelector('.gtitle') : null;
return title ? title.textContent : null;
"""


def test_notebook_04_panel_redraws_the_weights_for_another_relation(driver, jupyterlab):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser = driver("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
    browser.get(jupyterlab)
    wait = WebDriverWait(browser, 60)
    wait.until(
        lambda b: b.execute_script(
            "const app = window.jupyterapp; const w = app && app.shell.currentWidget;"
            "return !!(w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel"
            " && w.sessionContext.session.kernel.connectionStatus === 'connected');"
        ),
        "notebook 04's kernel never connected",
    )
    browser.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")
    # The whole notebook (training on the tiny preset included) until the panel shows its chart.
    WebDriverWait(browser, 240).until(
        lambda b: b.execute_script(CHART_TITLE, CHART), "the panel's weights chart never appeared"
    )
    errors = browser.find_elements(
        By.CSS_SELECTOR, ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] .ansi-red-fg"
    )
    assert not errors, "a cell raised: " + errors[0].text[:500]
    # JupyterLab draws every figure from its plotly JSON, with the plotly it ships (its HTML view,
    # which needs a page-wide Plotly, is not the one shown)
    WebDriverWait(browser, 30).until(
        lambda b: b.execute_script(
            "const plots = document.querySelectorAll('.jp-RenderedPlotly');"
            "return plots.length > 1 && Array.from(plots).every(p => p.querySelector('.main-svg'));"
        ),
        "the notebook's figures did not all draw in JupyterLab",
    )
    assert not browser.find_elements(By.CSS_SELECTOR, ".jp-RenderedHTML .plotly-graph-div")
    before = browser.execute_script(CHART_TITLE, CHART)
    _screenshot(browser, "jupyterlab-04-panel-before")

    relation = Select(browser.find_element(By.CSS_SELECTOR, ".widget-vbox .widget-dropdown select"))
    old = relation.first_selected_option.text
    new = next(o.text for o in relation.options if o.text != old)
    assert f", {old})" in before, before
    relation.select_by_visible_text(new)
    WebDriverWait(browser, 60).until(
        lambda b: f", {new})" in (b.execute_script(CHART_TITLE, CHART) or ""),
        f"the weights chart did not update to relation {new!r} (still {before!r})",
    )
    chart = browser.find_elements(By.CSS_SELECTOR, CHART)[-1]
    assert len(chart.find_elements(By.CSS_SELECTOR, ".main-svg")) >= 1
    assert _drawn_fraction(browser, chart, "jupyterlab-04-panel-chart-after") > 0.01, "the updated chart is blank"
    table = browser.find_element(By.CSS_SELECTOR, ".widget-vbox .widget-html-content").text
    assert f", {new}, ?)" in table  # the top-tails caption follows the relation too
    _screenshot(browser, "jupyterlab-04-panel-after")
