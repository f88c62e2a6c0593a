"""Every figure drawn, in a real browser: 15_circuit run in JupyterLab, and the session report opened from a file.

Debian's Chromium (/usr/bin/chromium) driven by Playwright; the tests fail, never skip, without it. A figure counts as
drawn when each of its SVG traces has a non-empty shape in the page and, for a WebGL trace, its canvas has pixels
painted (a browser keeps a handful of WebGL contexts per page and blanks the oldest ones: a lost figure is blank).
Screenshots go to tests/artifacts/ (ignored by git).
"""
import json
import shutil
import time

import pytest

from f1twin.report import make_report
from browser import ARTIFACTS, ROOT, jupyterlab as lab_server, launch, run_all

pytestmark = pytest.mark.browser

SESSION = ROOT / 'data' / 'telemetry_2025-09-12_19-00-17.csv'

# For each plotly figure in the page: its traces, how many of its SVG traces have a drawn shape, and for WebGL
# traces the number of painted pixels of the figure's WebGL canvas (read through a 2D copy: no new context made).
FIGURES_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => {
    const traces = (gd._fullData || []).filter(t => t.visible === true);
    const svg = traces.filter(t => !t.type.endsWith('gl'));
    const drawn = [...gd.querySelectorAll('.main-svg .trace')].filter(tr =>
        [...tr.querySelectorAll('path')].some(p => (p.getAttribute('d') || '').length > 4)).length;
    let glPixels = 0;
    const c = gd.querySelector('canvas.gl-canvas-context');
    if (c && c.width && c.height) {
        const copy = document.createElement('canvas');
        copy.width = c.width; copy.height = c.height;
        const ctx = copy.getContext('2d');
        ctx.drawImage(c, 0, 0);
        const px = ctx.getImageData(0, 0, c.width, c.height).data;
        for (let k = 3; k < px.length; k += 4) if (px[k]) glPixels++;
    }
    const title = gd._fullLayout && gd._fullLayout.title ? String(gd._fullLayout.title.text || '') : '';
    return {title: title, types: traces.map(t => t.type), svgTraces: svg.length, svgDrawn: drawn,
            glTraces: traces.length - svg.length, glPixels: glPixels, width: gd.clientWidth, height: gd.clientHeight};
})"""


def undrawn(figures: list[dict]) -> list[dict]:
    """The figures of FIGURES_JS that are not fully drawn."""
    return [f for f in figures if f['width'] < 50 or f['height'] < 50 or f['svgDrawn'] < f['svgTraces']
            or (f['glTraces'] and f['glPixels'] < 1000)]


def check_every_figure(page, expected: int, shots: str) -> list[dict]:
    """Scroll to each figure as a reader would, then assert every one of the `expected` figures is drawn."""
    figs = page.locator('.js-plotly-plot')
    deadline = time.monotonic() + 60
    while figs.count() < expected and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    assert figs.count() == expected, f'{figs.count()} plotly figures in the page, expected {expected}'
    for i in range(expected):
        figs.nth(i).scroll_into_view_if_needed()
        figs.nth(i).screenshot(path=str(ARTIFACTS / f'{shots}-{i + 1:02d}.png'))
    deadline = time.monotonic() + 30
    while True:  # a figure may still be drawing: poll until all are, or the deadline
        found = page.evaluate(FIGURES_JS)
        if not undrawn(found) or time.monotonic() > deadline: break
        page.wait_for_timeout(250)
    assert len(found) == expected
    assert not undrawn(found), f'figures not drawn: {json.dumps(undrawn(found), indent=1)}'
    return found


# --- the report, opened from a file with the network blocked -------------------------------------------------

@pytest.fixture(scope='module')
def report(tmp_path_factory):
    return make_report(SESSION, tmp_path_factory.mktemp('report'))


def test_report_opens_offline_with_every_figure_drawn(report):
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(exist_ok=True)
    asked = []
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={'width': 1300, 'height': 900})
            page.on('request', lambda r: asked.append(r.url))
            page.route(lambda url: not url.startswith('file://'), lambda route: route.abort())
            page.goto(report.html.as_uri(), wait_until='load')
            figures = check_every_figure(page, 9, 'report-figure')
        finally:
            browser.close()
    left = [u for u in asked if not u.startswith(('file://', 'data:'))]
    assert not left, f'the report asked the network for: {left}'
    assert asked[0] == report.html.as_uri()
    assert not any(f['glTraces'] for f in figures), 'small figures are SVG: no WebGL context to lose'


def test_report_of_a_hostile_meta_json_runs_nothing_and_shows_the_text(tmp_path):
    from playwright.sync_api import sync_playwright
    track, driver = '<script>window.PWNED=1</script>', '<img src=x onerror="window.PWNED=2">'
    shutil.copy(SESSION, tmp_path / 'hostile.csv')
    (tmp_path / 'hostile.meta.json').write_text(json.dumps({'track': track, 'driver': driver, 'car': 'a & b'}))
    r = make_report(tmp_path / 'hostile.csv', tmp_path / 'out')
    page_html = r.html.read_text()
    assert track not in page_html and driver not in page_html, 'the metadata is escaped in the HTML'
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={'width': 1300, 'height': 900})
            page.route(lambda url: not url.startswith('file://'), lambda route: route.abort())
            page.goto(r.html.as_uri(), wait_until='load')
            check_every_figure(page, 9, 'hostile-figure')
            assert page.evaluate('typeof window.PWNED') == 'undefined', 'script from the metadata ran'
            assert page.locator('img[src="x"]').count() == 0
            text = page.inner_text('body')
            titles = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot .gtitle')].map(e => e.textContent)")
            page.locator('div.f1twin-summary').screenshot(path=str(ARTIFACTS / 'hostile-summary.png'))
        finally:
            browser.close()
    assert track in text and driver in text and 'a & b' in text, 'the metadata is shown as text'
    assert any(track in t for t in titles), f'figure titles show the track as text: {titles}'


def test_a_map_too_big_for_svg_draws_in_webgl(tmp_path):
    from playwright.sync_api import sync_playwright
    from f1twin.circuit import SVG_MAX_POINTS, circuit_map
    from f1twin.fakeac import resample_session
    from f1twin.io import load_session
    fig = circuit_map(resample_session(load_session(SESSION), 333), max_points=30_000)  # the whole session at 333 Hz
    assert fig.data[1].type == 'scattergl' and len(fig.data[1].x) > SVG_MAX_POINTS
    page_file = tmp_path / 'map.html'
    fig.write_html(page_file, include_plotlyjs=True, include_mathjax=False)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={'width': 1300, 'height': 900})
            page.goto(page_file.as_uri(), wait_until='load')
            (found,) = check_every_figure(page, 1, 'webgl-map')
        finally:
            browser.close()
    assert found['glTraces'] == 2 and found['glPixels'] > 10_000


# --- 15_circuit in a real JupyterLab --------------------------------------------------------------------------

@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server serving a copy of 15_circuit."""
    with lab_server(tmp_path, {'circuit.ipynb': ROOT / 'nbs' / '15_circuit.ipynb'}) as url: yield url


def test_circuit_notebook_draws_every_figure_in_jupyterlab(jupyterlab):
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={'width': 1400, 'height': 1000})
            page.goto(f'{jupyterlab}/lab/tree/circuit.ipynb')
            run_all(page)
            errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').all_inner_texts()
            assert not page.locator('.jp-OutputArea-output .ansi-red-fg, .jp-OutputArea-output:has-text("Traceback")').count(), errors
            # every figure the notebook's cells output (the committed notebook keeps none: they are counted here)
            # (JupyterLab's plotly renderer leaves data-mime-type unset: its outputs are the .jp-RenderedPlotly ones)
            expected = page.locator('.jp-OutputArea-output.jp-RenderedPlotly').count()
            assert expected >= 7, f'{expected} figure outputs: the notebook displays at least 7 maps and charts'
            check_every_figure(page, expected, 'circuit-figure')
        finally:
            browser.close()
