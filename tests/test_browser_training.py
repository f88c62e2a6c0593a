"""The training panel in a real JupyterLab, in Debian's Chromium: its notebook (22a_training) runs a short training
in one process and the panel shows the loss and ingest chart, the buffer fill, each worker's model version and an
alert. Screenshot in tests/artifacts/ (git-ignored)."""
import pytest

from browser import ANYWIDGET_GAVE_UP, ARTIFACTS, ROOT, jupyterlab as lab_server, launch, new_page, run_all


@pytest.fixture
def jupyterlab(tmp_path):
    with lab_server(tmp_path, {'training.ipynb': ROOT / 'nbs' / '22a_training.ipynb'}) as url: yield url


READ = """() => {
  const p = document.querySelector('.f1twin-training');
  if (!p) return null;
  const chart = p.querySelector('.js-plotly-plot');
  const traces = chart ? [...chart.querySelectorAll('.scatterlayer .trace path.js-line')]
                           .map(e => (e.getAttribute('d') || '').length) : [];
  return {header: p.textContent, workers: [...p.querySelectorAll('.f1twin-workers tr')].slice(1).map(r => r.textContent),
          lines: traces, alerts: p.textContent};
}"""


def test_training_panel_draws_in_jupyterlab(jupyterlab):
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page, said = new_page(browser, 1300, 1000)
            page.goto(f'{jupyterlab}/lab/tree/training.ipynb')
            run_all(page)
            errors = page.locator('.jp-OutputArea-output:has-text("Traceback")').all_inner_texts()
            assert not errors, errors
            page.wait_for_selector('.f1twin-training .js-plotly-plot .main-svg', timeout=60_000)
            try:
                page.wait_for_function(f'() => {{ const r = ({READ})(); return r && r.lines.length == 2 && r.lines.every(n => n > 5); }}',
                                       timeout=60_000)
            except Exception:  # what the page showed, for the failure's message and a screenshot
                page.screenshot(path=str(ARTIFACTS / 'training-panel-failed.png'), full_page=True)
                pytest.fail(f'the chart never drew its two lines: {page.evaluate(READ)}; page errors: {said[:20]}')
            # the chart's model was ready at once (figures.figure_widget: plotly's code loads behind it)
            assert not any(ANYWIDGET_GAVE_UP in e for e in said), said
            r = page.evaluate(READ)
            panel = page.locator('.f1twin-training').first
            panel.scroll_into_view_if_needed()
            panel.screenshot(path=str(ARTIFACTS / 'training-panel.png'))
        finally:
            browser.close()
    assert 'model v' in r['header'] and 'validation error' in r['header']
    assert [w[:2] for w in r['workers']] == ['w1', 'w2'] and all(w.endswith(('v0', 'v1', 'v2', 'v3', 'v4', 'v5', 'v6', 'v7', 'v8', 'v9')) or 'v' in w[2:] for w in r['workers'])
    assert 'buffer ' in r['header'], 'the buffer fill bar and its label'
    assert 'model drift' in r['alerts'] and 'warning' in r['alerts']
    assert (ARTIFACTS / 'training-panel.png').stat().st_size > 10_000
