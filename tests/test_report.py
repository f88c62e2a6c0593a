"""Session reports: papermill + nbconvert on the real sessions, the template notebook, and failures that leave nothing behind."""
import json
import re
import shutil
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import nbformat
import numpy as np
import pytest

from clirun import f1twin  # the command in this process
from f1twin.circuit import SVG_MAX_POINTS
from f1twin.io import load_session
from f1twin.laps import lap_table
from f1twin.report import ReportError, load_template, make_report, templates_dir

ROOT = Path(__file__).resolve().parent.parent
F1TWIN = [sys.executable, '-c', 'import sys; from f1twin.cli import main; sys.exit(main())']
SESSIONS = {'telemetry_2025-09-12_19-00-17.csv': ['1:21.817', '1:21.186', '1:22.539', '1:22.165'],
            'telemetry_2025-09-13_16-18-26.csv': ['1:22.160', '1:21.790']}
PLOTLY = 'application/vnd.plotly.v1+json'
RAW_NAME = re.compile(r'^[a-z0-9]+(_[a-z0-9]+)+$|_(ms|kmh|pct|s)\b')


def laps_table_rows(page: str) -> list[str]:
    """The lap numbers of the lap table."""
    return [row[0] for row in table_with(page, 'Kind')[1:] if row and row[0].isdigit()]


class Tables(HTMLParser):
    """Every table of a page: a list of rows, each a list of (tag, text) cells."""
    def __init__(self, page: str):
        super().__init__()
        self.tables, self._cell = [], None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag == 'table': self.tables.append([])
        elif tag == 'tr' and self.tables: self.tables[-1].append([])
        elif tag in ('td', 'th') and self.tables: self._cell = [tag, '']

    def handle_data(self, data):
        if self._cell is not None: self._cell[1] += data

    def handle_endtag(self, tag):
        if tag in ('td', 'th') and self._cell is not None:
            self.tables[-1][-1].append((self._cell[0], self._cell[1].strip()))
            self._cell = None


def table_with(page: str, header: str) -> list[list[str]]:
    """The rows (cell texts) of the first table of the page with `header` in its first row."""
    for t in Tables(page).tables:
        if t and header in [text for _, text in t[0]]: return [[text for _, text in row] for row in t]
    raise AssertionError(f'no table with a column {header!r}')


def figures(notebook: Path) -> list[dict]:
    """The plotly figures of an executed report notebook, as plotly JSON."""
    nb = nbformat.read(notebook, as_version=4)
    return [o['data'][PLOTLY] for c in nb.cells for o in c.get('outputs', []) if PLOTLY in o.get('data', {})]


def trace_len(t: dict) -> int:
    x = t.get('x')
    return x['shape'][0] if isinstance(x, dict) and 'shape' in x else len(x) if x is not None else 0


def neutral_between_gears(y) -> list[int]:
    g = np.asarray(y, float)
    engaged = np.flatnonzero(g != 0)
    return [int(i) for i in np.flatnonzero(g == 0) if len(engaged) and engaged.min() < i < engaged.max()]


def decoded_y(t: dict) -> np.ndarray:
    y = t['y']
    if isinstance(y, dict):  # plotly's typed-array JSON: base64 of the binary values
        import base64
        return np.frombuffer(base64.b64decode(y['bdata']), dtype=np.dtype(y['dtype']))
    return np.asarray(y, float)


# The module's reports are made once for the tests that read them: those tests run on one xdist worker (each
# worker would otherwise make its own copy; `--dist loadgroup`, pyproject.toml), and the fixtures are session-scoped:
# a worker runs other modules' tests between these, and pytest makes a module-scoped fixture again after each break.
ONE_WORKER_REPORTS = pytest.mark.xdist_group('report-of-each-session')
ONE_WORKER_FULL_RATE = pytest.mark.xdist_group('report-at-full-rate')


@pytest.fixture(scope='session')
def report_all(tmp_path_factory):
    """`f1twin report --all` on a folder of both real sessions, one as a MoTeC log too, and a broken file, once: its
    outcome and its folder."""
    from f1twin.io import load_session, save_session
    from f1twin.motec import write_ld
    tmp = tmp_path_factory.mktemp('all')
    folder = tmp / 'sessions'
    folder.mkdir()
    for name in SESSIONS:  # each with its sidecar (the track, the car)
        for f in (name, name.replace('.csv', '.meta.json')): (folder / f).write_bytes((ROOT / 'data' / f).read_bytes())
    (folder / 'broken <b>.csv').write_text('not,a,session\n')
    write_ld(load_session(folder / list(SESSIONS)[1]), folder / 'motec.ld')  # (its .ldx beside it is no session of its own)
    save_session(load_session(folder / list(SESSIONS)[0]), folder / 'motec.parquet')  # another session of the same stem
    return f1twin('report', '--all', folder, '--out', tmp / 'out'), tmp / 'out'


@pytest.fixture(scope='module', params=list(SESSIONS))
def report(request, report_all):
    """Each real session's report (made by `report --all`): its name and its html and notebook paths."""
    run, out = report_all
    html, notebook = out / f'{Path(request.param).stem}.html', out / f'{Path(request.param).stem}.ipynb'
    assert html.exists() and notebook.exists(), f'no report of {request.param}: {run.stderr}'
    return request.param, SimpleNamespace(html=html, notebook=notebook)


@ONE_WORKER_REPORTS
def test_report_of_each_real_session(report):
    name, r = report
    times = SESSIONS[name]
    page = r.html.read_text()
    assert all(t in page for t in times), 'the game lap times'
    assert len(laps_table_rows(page)) == len(times) + 2, 'every lap: the timed ones, the out-lap, the last partial one'
    assert page.count('class="plotly-graph-div') == 9, 'delta map, sector chart, comparison, 3 maps, rpm, speed, evolution'
    assert 'Theoretical best' in page and 'Consistency' in page and 'monza' in page
    assert page.count('plotly.js v') == 1 and not re.search(r'<script[^>]+src=', page), \
        'plotly.js inlined once, no script loaded from anywhere: the report opens offline'
    assert not re.search(r'mathjax|require\.js|mermaid', page.replace(_plotly_js(), ''), re.I)
    assert 'The f1twin session report (template)' not in page, "the template's own notes (remove-cell) are left out"


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs
    return get_plotlyjs()


@ONE_WORKER_REPORTS
def test_tables_and_axes_show_labels_not_column_names(report):
    name, r = report
    page = r.html.read_text()
    headers = [text for t in Tables(page).tables for row in t for tag, text in row if tag == 'th' and text]
    assert 'Top speed (km/h)' in headers and 'S1 (s)' in headers and 'Standard deviation (s)' in headers
    assert not [h for h in headers if RAW_NAME.search(h)], 'a raw column name as a table header'
    for fig in figures(r.notebook):
        lay = fig['layout']
        titles = [v['title']['text'] for k, v in lay.items() if k.startswith(('xaxis', 'yaxis')) and 'title' in v]
        titles += [t['marker']['colorbar']['title']['text'] for t in fig['data'] if 'colorbar' in t.get('marker', {})]
        assert titles and all(x[:1].isupper() for x in titles), f'{lay["title"]["text"]}: {titles}'
        if lay.get('showlegend', True):
            titles += [t['name'] for t in fig['data'] if t.get('showlegend', True) and t.get('name')]
        assert not [x for x in titles if RAW_NAME.search(x)], f'{lay["title"]["text"]}: raw names in {titles}'


@ONE_WORKER_REPORTS
def test_times_are_in_the_unit_their_label_says(report):
    name, r = report
    lt = lap_table(load_session(ROOT / 'data' / name))
    rows = table_with(r.html.read_text(), 'S1 (s)')
    head = rows[0]
    laps = {int(row[0]): row for row in rows[1:] if row and row[0].isdigit()}
    for lap, row in laps.items():
        for k in (1, 2, 3):
            cell = row[head.index(f'S{k} (s)')]
            want = lt.loc[lap, f's{k}_ms']
            assert (cell == '' and not np.isfinite(want)) or float(cell) * 1000 == pytest.approx(want, abs=0.5)
    assert lt['s1_ms'].dropna().min() > 1000, 'a column named _ms holds milliseconds'
    spread = table_with(r.html.read_text(), 'Standard deviation (s)')
    lap_row = [row for row in spread if row[0] == 'Lap time'][0]
    timed = lt['lap_time_ms'][lt['lap_time_ms'].notna() & ~lt['partial']]
    assert float(lap_row[spread[0].index('Range (s)')]) == pytest.approx((timed.max() - timed.min()) / 1000, abs=1e-3)


@ONE_WORKER_REPORTS
def test_no_webgl_for_small_traces_and_gears_held_at_shifts(report):
    name, r = report
    figs = figures(r.notebook)
    assert len(figs) == 9
    for fig in figs:
        for t in fig['data']:
            if t['type'] == 'scattergl': assert trace_len(t) > SVG_MAX_POINTS, f"{fig['layout']['title']['text']}: WebGL"
    assert not [t for fig in figs for t in fig['data'] if t['type'] == 'scattergl'], 'a 10 Hz session: all SVG'
    (cmp,) = [f for f in figs if 'yaxis4' in f['layout']]  # the lap comparison's gear row
    gears = [t for t in cmp['data'] if t.get('yaxis') == 'y4']
    assert len(gears) == 2 and cmp['layout']['yaxis4']['title']['text'] == 'Gear'
    for t in gears:
        y = decoded_y(t)
        assert y.min() >= 1 and not neutral_between_gears(y), 'neutral shown at a shift'


def test_reference_lap_parameter(tmp_path):
    r = make_report(ROOT / 'data' / 'telemetry_2025-09-12_19-00-17.csv', tmp_path, ref_lap=4)
    assert 'against lap 4' in r.html.read_text()


@pytest.mark.parametrize('text,expected', [
    ('', 'empty file'),
    ('Timestamp,Speed_kmh\n1,2\n', 'missing column'),
    (None, 'no complete timed lap'),
])
def test_a_session_that_cannot_be_reported_leaves_nothing(tmp_path, text, expected):
    bad = tmp_path / 'bad.csv'
    lines = (ROOT / 'data' / 'telemetry_2025-09-12_19-00-17.csv').read_text().splitlines()
    bad.write_text(text if text is not None else '\n'.join(lines[:500]))
    out = tmp_path / 'out'
    with pytest.raises(ReportError, match=re.escape(expected)):
        make_report(bad, out)
    assert not out.exists() or not any(out.iterdir())


def test_the_cli_says_why_a_session_cannot_be_reported_in_one_line(tmp_path):
    bad, out = tmp_path / 'bad.csv', tmp_path / 'out'
    bad.write_text('Timestamp,Speed_kmh\n1,2\n')
    r = f1twin('report', bad, '--out', out)
    assert r.returncode == 2 and 'missing column' in r.stderr and 'Traceback' not in r.stderr
    assert r.stderr.count('\n') == 1 and r.stderr.startswith('f1twin: error: ')
    assert not out.exists() or not any(out.iterdir())


def test_a_failing_notebook_leaves_nothing(tmp_path):
    out = tmp_path / 'out'
    with pytest.raises(ReportError, match='lap 7 of this session is not a complete timed lap'):
        make_report(ROOT / 'data' / 'telemetry_2025-09-13_16-18-26.csv', out, ref_lap=7)
    assert not out.exists() or not any(out.iterdir())


FLAKY_KERNEL = """import os, sys
count = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'starts')
n = int(open(count).read()) if os.path.exists(count) else 0
open(count, 'w').write(str(n + 1))
if n < int(os.environ.get('F1TWIN_TEST_KERNEL_DIES', '0')):
    sys.exit('zmq.error.ZMQError: Address already in use')  # what a port taken by another kernel looks like
os.execv(sys.executable, [sys.executable, '-m', 'ipykernel_launcher'] + sys.argv[1:])
"""


def flaky_kernel(tmp_path, monkeypatch, dies: int) -> Path:
    """A `python3` kernelspec (first on JUPYTER_PATH) whose kernel exits at start `dies` times, then starts; its folder."""
    spec = tmp_path / 'jupyter' / 'kernels' / 'python3'
    spec.mkdir(parents=True)
    (spec / 'flaky.py').write_text(FLAKY_KERNEL)
    (spec / 'kernel.json').write_text(json.dumps({'argv': [sys.executable, str(spec / 'flaky.py'), '-f', '{connection_file}'],
                                                  'display_name': 'flaky', 'language': 'python'}))
    monkeypatch.setenv('JUPYTER_PATH', str(tmp_path / 'jupyter'))
    monkeypatch.setenv('F1TWIN_TEST_KERNEL_DIES', str(dies))
    return spec


def test_a_kernel_that_dies_at_start_is_started_again(tmp_path, monkeypatch):
    """Two reports at once can give their kernels the same free port: the one that loses exits before it answers.
    The report starts its kernel again (KERNEL_START_TRIES times in all) instead of failing."""
    from f1twin.report import KERNEL_START_TRIES
    spec = flaky_kernel(tmp_path, monkeypatch, dies=KERNEL_START_TRIES - 1)
    with pytest.warns(UserWarning, match="the report's kernel did not start .*starting it again") as caught:
        r = make_report(ROOT / 'data' / 'telemetry_2025-09-13_16-18-26.csv', tmp_path / 'out', template=small_template(tmp_path))
    assert (spec / 'starts').read_text() == str(KERNEL_START_TRIES)
    assert sum("kernel did not start" in str(w.message) for w in caught) == KERNEL_START_TRIES - 1
    assert r.html.exists() and 'ran on telemetry_2025-09-13_16-18-26.csv' in r.html.read_text(encoding='utf-8')


def small_template(tmp_path) -> Path:
    """A template of the report's parameters cell and one cell that prints the session's name: a kernel, quickly."""
    nb = load_template()
    nb.cells = [nb.cells[next(i for i, c in enumerate(nb.cells) if 'parameters' in c.metadata.get('tags', []))],
                nbformat.v4.new_code_cell("from pathlib import Path\nprint('ran on', Path(session).name)")]
    nbformat.write(nb, tmp_path / 'small.ipynb')
    return tmp_path / 'small.ipynb'


def test_a_kernel_that_never_starts_is_one_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    from f1twin.report import KERNEL_START_TRIES
    spec = flaky_kernel(tmp_path, monkeypatch, dies=99)
    out = tmp_path / 'out'
    with pytest.warns(UserWarning), pytest.raises(ReportError, match=rf"telemetry_2025-09-13_16-18-26.csv: the report's kernel did not "
                                                 rf"start \({KERNEL_START_TRIES} tries; the last: Kernel died before replying"):
        make_report(ROOT / 'data' / 'telemetry_2025-09-13_16-18-26.csv', out, template=small_template(tmp_path))
    assert (spec / 'starts').read_text() == str(KERNEL_START_TRIES)
    assert not out.exists() or not any(out.iterdir())


@ONE_WORKER_REPORTS
def test_report_all_with_index(report_all):
    r, out = report_all
    assert r.returncode == 2, 'one session failed'
    assert '4 report(s), 1 failed' in r.stdout and 'broken <b>.csv' in r.stderr
    index = (out / 'index.html').read_text()
    assert all(f'href="{Path(n).stem}.html"' in index for n in SESSIONS) and 'failed: ' in index
    assert 'broken &lt;b&gt;.csv' in index and '<b>' not in index, 'names from files are escaped'
    names = [Path(n).stem for n in SESSIONS] + ['motec_ld', 'motec_parquet']  # one stem, two files: two reports
    assert sorted(p.name for p in out.iterdir()) == sorted(['index.html'] + [f'{n}.{ext}' for n in names for ext in ('html', 'ipynb')]), \
        'an html page and its notebook per session, the index, nothing else'
    assert all(t in (out / 'motec_ld.html').read_text() for t in SESSIONS['telemetry_2025-09-13_16-18-26.csv']), 'the .ld too'
    assert all(t in (out / 'motec_parquet.html').read_text() for t in SESSIONS['telemetry_2025-09-12_19-00-17.csv'])
    assert 'href="motec_ld.html"' in index and 'href="motec_parquet.html"' in index


# --- the template notebook ------------------------------------------------------------------------------------

def test_template_is_a_clean_notebook_with_a_parameters_cell():
    path = templates_dir() / 'report.ipynb'
    assert path == ROOT / 'f1twin' / 'templates' / 'report.ipynb'
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == 'code']
    assert not [c for c in code if c.outputs or c.execution_count], 'the template is kept without outputs'
    (params,) = [c for c in code if 'parameters' in c.metadata.get('tags', [])]
    assert code[0] is params and re.search(r'^session = None', params.source, re.M)
    first = nb.cells[0]
    assert first.cell_type == 'markdown' and 'edited by hand' in first.source and 'remove-cell' in first.metadata.tags
    assert load_template().cells[1].source == params.source


def test_template_runs_as_is_on_the_bundled_session(tmp_path):
    """The template as a user runs it in Jupyter: no parameter given, it reports on the bundled session. (Without
    papermill's save after each cell, and with the kernel going without jsonschema's IRI grammars, as make_report's
    does: half the CPU, the same template and kernel.)"""
    import papermill as pm
    out = tmp_path / 'as-is.ipynb'
    pm.execute_notebook(str(templates_dir() / 'report.ipynb'), str(out), cwd=str(tmp_path), progress_bar=False,
                        request_save_on_cell_execute=False,
                        extra_arguments=["--IPKernelApp.exec_lines=__import__('sys').modules.setdefault('rfc3987_syntax', None)"])
    nb = nbformat.read(out, as_version=4)
    text = json.dumps([o for c in nb.cells for o in c.get('outputs', [])])
    assert '1:21.186' in text and len(figures(out)) == 9


def test_template_is_shipped_in_the_wheel(tmp_path):
    src = tmp_path / 'src'
    shutil.copytree(ROOT / 'f1twin', src / 'f1twin', ignore=shutil.ignore_patterns('__pycache__'))
    for f in ('setup.py', 'settings.ini', 'pyproject.toml', 'README.md', 'MANIFEST.in'):
        shutil.copy(ROOT / f, src / f)
    r = subprocess.run([sys.executable, '-m', 'pip', 'wheel', str(src), '-w', str(tmp_path / 'whl'), '--no-deps',
                        '--no-build-isolation', '-q'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = (tmp_path / 'whl').glob('f1twin-*.whl')
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f'f1twin/templates/{p.relative_to(templates_dir())}' for p in templates_dir().rglob('*')
               if p.is_file() and '.ipynb_checkpoints' not in p.parts}
    assert {'f1twin/templates/report.ipynb', 'f1twin/templates/index.html.j2',
            'f1twin/templates/f1twin_report/index.html.j2'} <= shipped
    assert shipped <= names, f'missing from the wheel: {shipped - names}'


def test_own_template_with_the_same_parameters_in_a_kernel_that_loads_no_kafka(tmp_path):
    """A user's template (f1twin's with a section added) gets the same parameters; and the report's kernel, from a
    file, loads no Kafka client, nor jsonschema's 2 s of IRI grammars (rfc3987_syntax, built with lark) that
    plotly's fig.show() would cost at each kernel start."""
    nb = load_template()
    nb.cells.append(nbformat.v4.new_markdown_cell('## My own section'))
    nb.cells.append(nbformat.v4.new_code_cell("print(f'my best: {laps.format_lap_time(st.lap_time_ms.min())} in lap {ref}')"))
    nb.cells.append(nbformat.v4.new_code_cell(
        "import sys\nprint(sorted(m for m in ('kafka', 'lark', 'rfc3987_syntax', 'plotly', 'nbformat') if sys.modules.get(m)))"))
    mine = tmp_path / 'mine.ipynb'
    nbformat.write(nb, mine)
    out = tmp_path / 'out'
    r = f1twin('report', ROOT / 'data' / 'telemetry_2025-09-13_16-18-26.csv', '--out', out, '--template', mine, '--ref-lap', 1)
    assert r.returncode == 0, r.stderr
    page = (out / 'telemetry_2025-09-13_16-18-26.html').read_text()
    assert 'My own section' in page and 'my best: 1:21.790 in lap 1' in page and 'against lap 1' in page
    loaded = nbformat.read(out / 'telemetry_2025-09-13_16-18-26.ipynb', as_version=4).cells[-1].outputs
    assert loaded[0]['text'].strip() == "['nbformat', 'plotly']", 'figures shown, and nothing more loaded for them'


@pytest.mark.parametrize('kind,expected', [
    ('missing', 'no such template notebook'),
    ('text', 'not a Jupyter notebook'),
    ('json', 'not a Jupyter notebook'),
    ('no-parameters', 'no cell tagged "parameters"'),
])
def test_a_template_that_is_not_one_is_a_clear_error(tmp_path, kind, expected):
    path = tmp_path / 'mine.ipynb'
    if kind == 'text': path.write_text('print("a script, not a notebook")\n')
    if kind == 'json': path.write_text('{"cells": 3}')
    if kind == 'no-parameters':
        nb = load_template()
        for c in nb.cells: c.metadata.pop('tags', None)
        nbformat.write(nb, path)
    out = tmp_path / 'out'
    with pytest.raises(ReportError, match=re.escape(expected)) as e:
        make_report(ROOT / 'data' / 'telemetry_2025-09-12_19-00-17.csv', out, template=path)
    assert 'expected a Jupyter notebook (.ipynb) with a code cell tagged "parameters"' in str(e.value)
    r = f1twin('report', ROOT / 'data' / 'telemetry_2025-09-12_19-00-17.csv', '--out', out, '--template', path)
    assert r.returncode == 2 and 'Traceback' not in r.stderr
    assert r.stderr.count('\n') == 1 and r.stderr.startswith('f1twin: error: ') and expected in r.stderr
    assert not out.exists()


def test_a_template_failing_in_a_cell_leaves_the_older_report_as_it_was(tmp_path):
    session = ROOT / 'data' / 'telemetry_2025-09-13_16-18-26.csv'
    out = tmp_path / 'out'
    nb = load_template()
    params = next(i for i, c in enumerate(nb.cells) if 'parameters' in c.metadata.get('tags', []))
    small = nbformat.v4.new_notebook(cells=[nb.cells[params], nbformat.v4.new_markdown_cell('## the older report')])
    nbformat.write(small, tmp_path / 'small.ipynb')
    first = make_report(session, out, template=tmp_path / 'small.ipynb')  # an older report of this session
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    nb.cells.insert(params + 1, nbformat.v4.new_code_cell("raise RuntimeError('my template is wrong')"))
    bad = tmp_path / 'bad.ipynb'
    nbformat.write(nb, bad)
    with pytest.raises(ReportError, match='my template is wrong'):
        make_report(session, out, template=bad)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before, 'no half-written file, the old report intact'
    assert first.html.exists()


def test_report_of_a_session_read_back_from_kafka(tmp_path, kafka_bootstrap):
    import uuid
    from datetime import datetime, timezone
    car = f'rep-{uuid.uuid4().hex[:8]}'
    since = datetime.now(timezone.utc).isoformat()
    r = subprocess.run([*F1TWIN, 'replay', str(ROOT / 'data' / 'telemetry_2025-09-13_16-18-26.csv'), '--kafka',
                        kafka_bootstrap, '--speed', '200', '--car', car], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    by_id = make_report(None, tmp_path / 'a', kafka=kafka_bootstrap, session_id='2025-09-13_16-18-26', car_id=car)
    by_time = make_report(None, tmp_path / 'b', kafka=kafka_bootstrap, car_id=car, since=since)
    for rep in (by_id, by_time):
        page = rep.html.read_text()
        assert '1:22.160' in page and '1:21.790' in page and f'kafka:{kafka_bootstrap}' in page


@ONE_WORKER_REPORTS
def test_report_opens_with_what_a_driver_reads_first(report):
    name, r = report
    page = r.html.read_text()
    order = [page.index(h) for h in ('Best lap', 'Theoretical best', 'Where the time goes', 'Where the most time goes',
                                     'id="Corners"', 'id="Laps"', 'id="Sectors"', 'id="The-circuit"')]
    assert order == sorted(order), 'best lap, theoretical best, the three worst corners, the corner table, then the rest'
    worst = re.search(r'<div class="f1twin-worst">(.*?)</div>', page, re.S).group(1)
    assert worst.count('<li>') == 3
    table = re.search(r'<table[^>]*f1twin-corners.*?</table>', page, re.S).group(0)
    for label in ('Braking point (m)', 'Minimum speed (km/h)', 'Time lost, average (s)', 'Braking point spread (m)'):
        assert label in table
    assert all(c in table for c in ('T1/Rettifilo', 'Roggia', 'Lesmo 1', 'Lesmo 2', 'Ascari', 'Parabolica'))


def test_compare_and_reference_of_another_session(tmp_path):
    a, b = ROOT / 'data' / 'telemetry_2025-09-12_19-00-17.csv', ROOT / 'data' / 'telemetry_2025-09-13_16-18-26.csv'
    r = f1twin('report', a, '--out', tmp_path, '--compare', '3,1')
    assert r.returncode == 0, r.stderr
    page = (tmp_path / f'{a.stem}.html').read_text()
    assert 'Lap 1 is <strong>-0.722 s</strong> against lap 3 (1:22.539)' in page
    r = make_report(b, tmp_path / 'ref', ref=f'{a}:2', compare='2')
    page = r.html.read_text()
    assert 'against lap 2 of telemetry_2025-09-12_19-00-17.csv (1:21.186)' in page
    assert 'Lap 2 is <strong>+0.604 s</strong>' in page
    with pytest.raises(ReportError, match='expected lap numbers separated by commas'):
        make_report(a, tmp_path / 'bad', compare='3;7')
    assert not (tmp_path / 'bad').exists() or not any((tmp_path / 'bad').iterdir())


def test_the_library_best_is_the_reference_when_asked(tmp_path):
    lib = tmp_path / 'lib'
    lib.mkdir()
    for ext in ('.csv', '.meta.json'):
        (lib / f'telemetry_2025-09-12_19-00-17{ext}').write_bytes((ROOT / 'data' / f'telemetry_2025-09-12_19-00-17{ext}').read_bytes())
    r = make_report(ROOT / 'data' / 'telemetry_2025-09-13_16-18-26.csv', tmp_path / 'out', library=lib)
    assert 'against the all-time best, lap 2 of 2025-09-12_19-00-17 (1:21.186)' in r.html.read_text()


# --- a full-rate session: light figures, the same content (issue 12; the speed is measured in bench/report_bench.py) ---

def decoded(a) -> np.ndarray:
    """An array of plotly JSON (a typed array: base64 of the binary values, or a list) as numpy, and its dtype."""
    if isinstance(a, dict):
        import base64
        v = np.frombuffer(base64.b64decode(a['bdata']), dtype=np.dtype(a['dtype']))
        return v.reshape(a['shape']) if isinstance(a.get('shape'), list) or ',' in str(a.get('shape', '')) else v
    return np.asarray(a)


@pytest.fixture(scope='session')
def full_rate(tmp_path_factory):
    """The real session of 12 September replayed at 333 Hz (27 000 samples a lap), and its report."""
    from f1twin.fakeac import resample_session
    from f1twin.io import save_session
    d = tmp_path_factory.mktemp('full-rate')
    s = resample_session(load_session(ROOT / 'data' / 'telemetry_2025-09-12_19-00-17.csv'), 333)
    path = save_session(s, d / 'monza_333hz.parquet')
    return s, make_report(path, d / 'out')


@ONE_WORKER_FULL_RATE
def test_a_full_rate_report_keeps_its_content_and_stays_under_6_mb(full_rate):
    s, r = full_rate
    page = r.html.read_text()
    assert all(t in page for t in SESSIONS['telemetry_2025-09-12_19-00-17.csv']), 'the game lap times'
    assert r.html_bytes < 6e6 and page.count('plotly.js v') == 1 and not re.search(r'<script[^>]+src=', page)
    corners = table_with(page, 'Braking point (m)')
    assert [row[0] for row in corners[1:] if row[0] != 'Corner'] == ['T1/Rettifilo', 'Roggia', 'Lesmo 1', 'Lesmo 2', 'Ascari', 'Parabolica']
    figs = figures(r.notebook)
    assert len(figs) == 9 and not [t for f in figs for t in f['data'] if t['type'] == 'scattergl']


@ONE_WORKER_FULL_RATE
def test_full_rate_maps_are_thinned_to_what_the_eye_sees(full_rate):
    s, r = full_rate
    maps = [f for f in figures(r.notebook) if f['layout'].get('meta', {}).get('f1twin', {}).get('lap') is not None]
    assert [m['layout']['meta']['f1twin']['channel'] for m in maps] == ['speed_kmh', 'throttle_brake', 'gear']
    lap = maps[0]['layout']['meta']['f1twin']['lap']
    samples = int((lap_table(s).loc[lap, 'samples']))
    for m in maps:
        outline, points = m['data'][0], m['data'][1]
        x, y = decoded(points['x']), decoded(points['y'])
        assert 2500 < len(x) <= 3000 < samples, 'a lap of 27 000 samples drawn at about 3 000 points (one every 2 m)'
        ox, oy = decoded(outline['x']), decoded(outline['y'])
        step = np.hypot(np.diff(ox), np.diff(oy))
        assert len(ox) < len(x) / 2 and np.nanmedian(step) >= 4.5, 'the grey band under the points: one every 5 m'
        dist = decoded(points['customdata'])
        assert dist.ndim == 1 and 0 <= dist.min() < 10 and dist.max() > 5700, 'one lap: its distances, its number once'
        assert f'lap {lap},' in points['hovertemplate']
    gear = decoded(maps[2]['data'][1]['marker']['color'])
    assert gear.dtype == np.int8 and set(np.unique(gear)) <= set(range(1, 9)) and 0 not in gear, 'gears as bytes, held through the shifts'
