"""The live panel in a real JupyterLab, driven in Debian's Chromium by Playwright.

Opens nbs/22_live.ipynb (a copy, in a temporary folder), runs all cells from the Run menu, and checks what a user
sees in the first panel (the file replay), reading the page itself: it runs without a click; the track outline is
drawn; the delta is green for a gain and red for a loss (computed style); the steering axis is in degrees; the G
chart says the bundled CSV has no G channels; after Stop, the number row and the gauges show the same values.
Screenshots go to tests/artifacts/ (git-ignored). Needs /usr/bin/chromium (`make browser-deps` installs it); the
test fails, never skips, without it.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from f1twin.live import NO_G_TEXT
from f1twin.panel import GREEN, RED

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / 'tests' / 'artifacts'
CHROMIUM = '/usr/bin/chromium'
ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
        '--no-first-run', '--disable-sync', '--disable-quic']


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def rgb(hex_color: str) -> str:
    return 'rgb({}, {}, {})'.format(*(int(hex_color[i:i + 2], 16) for i in (1, 3, 5)))


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on a free port, serving a copy of the live notebook; stopped by its PID."""
    work = tmp_path / 'nbs'
    work.mkdir()
    shutil.copy(ROOT / 'nbs' / '22_live.ipynb', work / 'live.ipynb')
    env = {**os.environ, **{k: str(tmp_path / k.lower()) for k in ('JUPYTER_CONFIG_DIR', 'JUPYTER_RUNTIME_DIR')},
           'JUPYTER_DATA_DIR': str(tmp_path / 'data'), 'F1TWIN_LIVE_SPEED': '4'}
    labconfig = tmp_path / 'jupyter_config_dir' / 'labconfig'  # no news pop-up over the panel in screenshots
    labconfig.mkdir(parents=True)
    (labconfig / 'page_config.json').write_text(
        '{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}')
    port = free_port()
    log = open(tmp_path / 'jupyter.log', 'w')
    proc = subprocess.Popen([str(Path(sys.executable).parent / 'jupyter'), 'lab', '--no-browser', f'--port={port}',
                             "--ServerApp.token=''", "--ServerApp.password=''", '--ServerApp.ip=127.0.0.1', '--allow-root',
                             f'--ServerApp.root_dir={work}'], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}'
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f'{url}/api/status', timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f'JupyterLab did not start: {(tmp_path / "jupyter.log").read_text()[-2000:]}')
            time.sleep(0.5)
    yield url
    proc.terminate()
    try: proc.wait(timeout=20)
    except subprocess.TimeoutExpired: proc.kill()
    log.close()


# Everything read from the first panel (the file replay) in one evaluation, so it is one instant of the page.
READ = """() => {
  const p = document.querySelector('.f1twin-panel');
  if (!p) return null;
  const text = sel => { const e = p.querySelector(sel); return e ? e.textContent.trim() : null; };
  const value = name => { const e = p.querySelector('.f1twin-metric-' + name + ' .f1twin-metric-value');
                          return e ? e.firstChild.textContent.trim() : null; };
  const delta = p.querySelector('.f1twin-metric-delta .f1twin-metric-value');
  const map = p.querySelector('.f1twin-map.js-plotly-plot') || p.querySelector('.f1twin-map .js-plotly-plot');
  const series = p.querySelector('.f1twin-series');
  const all = (root, sel) => root ? [...root.querySelectorAll(sel)].map(e => e.textContent.trim()) : [];
  return {
    state: text('.f1twin-status-state'), status: text('.f1twin-status'),
    speed: value('speed'), rpm: value('rpm'), gear: value('gear'),
    delta: value('delta'), delta_color: delta ? getComputedStyle(delta).color : null,
    gauge_numbers: all(p.querySelector('.f1twin-gauges'), 'text.number'),
    gauge_gear: text('.f1twin-gauges .annotation[data-index="0"] .annotation-text'),
    outline_points: map && map.data ? map.data[0].x.length : 0,
    outline_path: (p.querySelector('.f1twin-map .scatterlayer .trace path.js-line') || {getAttribute: () => ''})
                    .getAttribute('d').length,
    axis_titles: all(series, '.g-ytitle, .g-y2title, .g-y3title, .g-y4title'),
    steering_ticks: all(series, '.yaxislayer-above .y3tick text'),
    annotations: all(series, '.annotation-text'), legend: all(series, '.legendtext'),
  };
}"""


def poll(page, condition, timeout=60.0, what='condition'):
    """Read the panel until `condition(reading)` holds; the last reading. Fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        r = page.evaluate(READ)
        if r is not None and condition(r): return r
        if time.monotonic() > deadline: pytest.fail(f'timed out waiting for {what}; last reading: {r}')
        page.wait_for_timeout(150)


def number(text: str) -> float:
    return float(text.replace('°', '').replace('\u2212', '-'))


def test_live_panel_in_jupyterlab(jupyterlab):
    from playwright.sync_api import sync_playwright
    assert Path(CHROMIUM).exists(), 'Debian chromium is needed: make browser-deps'
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={'width': 1400, 'height': 1100})
            page.goto(f'{jupyterlab}/lab/tree/live.ipynb')
            page.wait_for_selector('.jp-NotebookPanel .jp-Cell', timeout=60_000)
            page.wait_for_selector("text=Python 3 (ipykernel) | Idle", timeout=60_000)
            for attempt in range(3):  # the menu click is sometimes lost while JupyterLab settles
                page.click("li.lm-MenuBar-item:has-text('Run')")
                page.click("li.lm-Menu-item[data-command='runmenu:run-all']")
                try:
                    page.wait_for_function("""() => [...document.querySelectorAll('.jp-InputArea-prompt')]
                        .some(e => /\\[(\\*|\\d+)\\]/.test(e.textContent))""", timeout=10_000)
                    break
                except Exception:
                    if attempt == 2: raise
            page.wait_for_selector('.f1twin-panel .f1twin-metric .f1twin-metric-value', timeout=120_000)
            page.wait_for_selector('.f1twin-panel .js-plotly-plot .main-svg', timeout=60_000)
            page.locator('.f1twin-panel').first.scroll_into_view_if_needed()

            # While the replay runs, read the page until everything a user should see has been seen (each reading
            # is one instant of the page; a slow browser makes readings slow, so they are all checked together).
            seen = {'colours': {}}
            def everything(r):
                if r['state'] != 'running' or r['speed'] in (None, '-'): return False  # nobody clicked Start
                seen.setdefault('first_status', r['status'])
                seen['moving'] = seen.get('moving') or r['status'] != seen['first_status']
                # the track outline, drawn from the session at once
                seen['outline'] = seen.get('outline') or (r['outline_points'] > 500 and r['outline_path'] > 1000)
                # the G chart says the CSV has no G channels, and lists no empty G traces
                if any(NO_G_TEXT in a for a in r['annotations']): seen['no_g'] = r
                # steering in degrees: the axis title and its numbers
                if r['steering_ticks'] and max(abs(number(t)) for t in r['steering_ticks']) >= 5: seen['steer'] = r
                # the delta: green for a gain, red for a loss (the computed colour)
                if r['delta'] not in (None, '-'): seen['colours'].setdefault(r['delta'][0], (r['delta'], r['delta_color']))
                return all(k in seen for k in ('moving', 'outline', 'no_g', 'steer')) and seen['outline'] and \
                    {'-', '+'} <= set(seen['colours'])
            try: poll(page, everything, timeout=150, what='the panel running')
            finally: print(seen)
            page.locator('.f1twin-panel').first.screenshot(path=str(ARTIFACTS / 'live-panel-running.png'))
            assert not {'G lat', 'G lon'} & set(seen['no_g']['legend']) and 'steering' in seen['no_g']['legend']
            steer = seen['steer']
            assert 'steering (°)' in steer['axis_titles'] and all(t.endswith('°') for t in steer['steering_ticks'])
            assert not any('rad' in t for t in steer['axis_titles'])
            colours = seen['colours']
            assert colours['-'][1] == rgb(GREEN) and colours['+'][1] == rgb(RED), colours

            # Stop: the last frame stays; the number row and the gauges show the same instant
            page.locator('.f1twin-panel .f1twin-stop').first.click()
            poll(page, lambda r: r['state'].startswith('stopped'), timeout=20, what='stopped')
            prev = None
            def settled(r):
                nonlocal prev
                same, prev = r == prev, r
                return same
            final = poll(page, settled, timeout=20, what='the last frame to settle')
            assert final['state'] == 'stopped (press Start to replay)'
            assert final['gauge_numbers'] == [final['rpm'], final['speed']], final
            assert final['gauge_gear'] == final['gear'], final
            page.locator('.f1twin-panel').first.screenshot(path=str(ARTIFACTS / 'live-panel-stopped.png'))
            page.screenshot(path=str(ARTIFACTS / 'live-notebook.png'), full_page=False)

            # Start replays the file from the beginning
            page.locator('.f1twin-panel .f1twin-start').first.click()
            poll(page, lambda r: r['state'] == 'running', timeout=20, what='running again')
        finally:
            browser.close()
    shots = [ARTIFACTS / f'live-panel-{n}.png' for n in ('running', 'stopped')]
    assert all(s.stat().st_size > 10_000 for s in shots), 'the panel rendered'
