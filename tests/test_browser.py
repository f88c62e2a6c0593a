"""The live panel in a real JupyterLab, driven in Debian's Chromium by Playwright.

Opens nbs/21_live.ipynb (a copy, in a temporary folder), runs all cells from the Run menu, and takes two
screenshots a second apart: the panel must be rendered (metric row, circuit map) and its values must change.
Needs /usr/bin/chromium (`make browser-deps` installs it); the test fails, never skips, without it.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = '/usr/bin/chromium'
ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
        '--no-first-run', '--disable-sync', '--disable-quic']


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on a free port, serving a copy of the live notebook; stopped by its PID."""
    work = tmp_path / 'nbs'
    work.mkdir()
    shutil.copy(ROOT / 'nbs' / '21_live.ipynb', work / 'live.ipynb')
    env = {**os.environ, **{k: str(tmp_path / k.lower()) for k in ('JUPYTER_CONFIG_DIR', 'JUPYTER_RUNTIME_DIR')},
           'JUPYTER_DATA_DIR': str(tmp_path / 'data'), 'F1TWIN_LIVE_SPEED': '5'}
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


def metric_values(page) -> list[str]:
    return page.locator('.f1twin-metric .f1twin-metric-value').all_inner_texts()


def test_live_panel_renders_and_updates_in_jupyterlab(jupyterlab, tmp_path):
    from playwright.sync_api import sync_playwright
    assert Path(CHROMIUM).exists(), 'Debian chromium is needed: make browser-deps'
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={'width': 1400, 'height': 1000})
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
            page.wait_for_selector('.f1twin-metric .f1twin-metric-value', timeout=120_000)
            page.wait_for_selector('.f1twin-panel .js-plotly-plot .main-svg', timeout=60_000)
            panel = page.locator('.f1twin-panel').first
            panel.scroll_into_view_if_needed()
            time.sleep(2)
            first = metric_values(page)
            panel.screenshot(path=str(tmp_path / 'panel-1.png'))
            time.sleep(1.0)
            second = metric_values(page)
            panel.screenshot(path=str(tmp_path / 'panel-2.png'))
        finally:
            browser.close()
    shots = [(tmp_path / f'panel-{i}.png').read_bytes() for i in (1, 2)]
    assert all(len(s) > 10_000 for s in shots), 'the panel rendered'
    assert first != second, f'the values changed within a second: {first} -> {second}'
    assert shots[0] != shots[1]
    out = ROOT / 'tests' / 'artifacts'
    out.mkdir(exist_ok=True)
    for i, s in enumerate(shots, 1): (out / f'live-panel-{i}.png').write_bytes(s)
