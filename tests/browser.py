"""What every browser test needs, once: Debian's Chromium launched by Playwright, a JupyterLab server serving copies
of notebooks, running all their cells from the Run menu, and reading every plotly figure of a page.

Facts this follows: reference/toolchain_facts.md (never `playwright install`; launch /usr/bin/chromium headless
without background networking; start JupyterLab with its own config/data/runtime folders and stop it by its PID).
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / 'tests' / 'artifacts'
# anywidget (0.11) gives a widget's model 2 s to load its code and then drops every update the kernel sends it: what
# the page says then (plotly's own FigureWidget, 5 MB of code, on a loaded machine); f1twin's figures never cause it
ANYWIDGET_GAVE_UP = '[anywidget] Failed to initialize model.'
CHROMIUM = '/usr/bin/chromium'
ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
        '--no-first-run', '--disable-sync', '--disable-quic']


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def launch(p):
    """Debian's Chromium through Playwright (a test fails, never skips, without it)."""
    assert Path(CHROMIUM).exists(), 'Debian chromium is needed: make browser-deps'
    return p.chromium.launch(executable_path=CHROMIUM, args=ARGS)


def new_page(browser, width: int, height: int):
    """A page of `browser` and the list its own errors and console errors go into (said when a test fails)."""
    page = browser.new_page(viewport={'width': width, 'height': height})
    errors = []
    page.on('pageerror', lambda e: errors.append(str(e)[:300]))
    page.on('console', lambda m: m.type == 'error' and errors.append(f'console: {m.text[:300]}'))
    return page, errors


# Loads of plotly's widget code (f1twin.figures' module keeps them in this map, one a page) held until the test
# releases them, and for 2.5 s at least (past anywidget's 2 s): what a loaded machine does, on every machine.
_HOLD = """() => {
  let release; const released = new Promise(r => { release = r; });
  window.__releasePlotly = release;
  globalThis.__f1twinPlotlyCode = new (class extends Map {
    set(id, load) {
      window.__plotlyHeld = (window.__plotlyHeld || 0) + 1;
      const waited = Promise.all([released, new Promise(r => setTimeout(r, 2500))]);
      return super.set(id, load.then(code => waited.then(() => code)));
    }
  })();
}"""
HANDED_OVER = "[f1twin] plotly's widget code loaded; "  # the start of what the module says in the console then


def hold_plotly(page) -> None:
    """Hold back the page's plotly widget code (f1twin's figures) until `release_plotly`, and 2.5 s at least."""
    page.evaluate(_HOLD)


def release_plotly(page) -> int:
    """Let the held plotly code go; how many loads of it were held."""
    return page.evaluate('() => { window.__releasePlotly(); return window.__plotlyHeld || 0; }')


def kept_changes(debug: list[str]) -> list[int]:
    """The changes each figure kept while plotly's code loaded, from the page's console debug messages."""
    return [int(m[len(HANDED_OVER):].split()[0]) for m in debug if m.startswith(HANDED_OVER)]


@contextmanager
def jupyterlab(tmp_path, notebooks: dict, env: dict | None = None):
    """A JupyterLab server on a free port serving copies of `notebooks` ({name in the server: path}); its URL.
    No news pop-up over screenshots; stopped by its PID at the end."""
    work = tmp_path / 'nbs'
    work.mkdir()
    for name, src in notebooks.items(): shutil.copy(src, work / name)
    env = {**os.environ, 'JUPYTER_CONFIG_DIR': str(tmp_path / 'config'), 'JUPYTER_DATA_DIR': str(tmp_path / 'data'),
           'JUPYTER_RUNTIME_DIR': str(tmp_path / 'runtime'), **(env or {})}
    news = tmp_path / 'config' / 'lab' / 'user-settings' / '@jupyterlab' / 'apputils-extension'
    news.mkdir(parents=True)
    (news / 'notification.jupyterlab-settings').write_text('{"fetchNews": "false"}')
    labconfig = tmp_path / 'config' / 'labconfig'
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
            time.sleep(0.5)  # polling the server's port; the deadline bounds it
    try:
        yield url
    finally:
        proc.terminate()
        try: proc.wait(timeout=20)
        except subprocess.TimeoutExpired: proc.kill()
        log.close()


def start_run_all(page) -> None:
    """Open-notebook page: wait for the kernel, then Run > Run All (retried: the click is sometimes lost while
    JupyterLab settles)."""
    page.wait_for_selector('.jp-NotebookPanel .jp-Cell', timeout=60_000)
    page.wait_for_selector('text=Python 3 (ipykernel) | Idle', timeout=60_000)
    for attempt in range(3):
        page.click("li.lm-MenuBar-item:has-text('Run')")
        page.click("li.lm-Menu-item[data-command='runmenu:run-all']")
        try:
            page.wait_for_function("""() => [...document.querySelectorAll('.jp-InputArea-prompt')]
                .some(e => /\\[(\\*|\\d+)\\]/.test(e.textContent))""", timeout=10_000)
            return
        except Exception:
            if attempt == 2: raise


def wait_all_done(page, timeout_ms: int = 300_000) -> None:
    """Every code cell has run (numbered prompt) and the kernel is idle."""
    page.wait_for_function("""() => {
        const p = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(e => e.textContent);
        return p.length && p.every(t => /\\[\\d+\\]/.test(t));
    }""", timeout=timeout_ms)
    page.wait_for_selector('text=Python 3 (ipykernel) | Idle', timeout=60_000)


def run_all(page) -> None:
    start_run_all(page)
    wait_all_done(page)
