"""Session reports: papermill + nbconvert on the real sessions, and failures that leave nothing behind."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from f1twin.report import ReportError, make_report

ROOT = Path(__file__).resolve().parent.parent
F1TWIN = [sys.executable, '-c', 'import sys; from f1twin.cli import main; sys.exit(main())']
SESSIONS = {'telemetry_2025-09-12_19-00-17.csv': ['1:21.817', '1:21.186', '1:22.539', '1:22.165'],
            'telemetry_2025-09-13_16-18-26.csv': ['1:22.160', '1:21.790']}


def laps_table_rows(page: str) -> list[str]:
    table = page[page.index('f1twin-laps'):]
    table = table[:table.index('</table>')]
    return re.findall(r'<th>(\d+)</th>', table)


@pytest.mark.parametrize('name,times', SESSIONS.items())
def test_report_of_each_real_session(tmp_path, name, times):
    r = make_report(ROOT / 'data' / name, tmp_path)
    page = r.html.read_text()
    assert all(t in page for t in times), 'the game lap times'
    assert len(laps_table_rows(page)) == len(times) + 2, 'every lap: the timed ones, the out-lap, the last partial one'
    assert page.count('class="plotly-graph-div') == 8, 'sector chart, 3 maps, comparison, rpm, speed, evolution'
    assert 'Theoretical best' in page and 'Consistency' in page and 'monza' in page
    assert 'plotly.js v' in page and not re.search(r'<script[^>]+src="[^"]*plot', page), \
        'plotly.js inlined, not loaded from a CDN: the report opens offline'
    assert r.notebook.exists() and sorted(p.name for p in tmp_path.iterdir()) == sorted([r.html.name, r.notebook.name])


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
    r = subprocess.run([*F1TWIN, 'report', str(bad), '--out', str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and expected in r.stderr and 'Traceback' not in r.stderr
    assert not out.exists() or not any(out.iterdir())


def test_a_failing_notebook_leaves_nothing(tmp_path):
    out = tmp_path / 'out'
    with pytest.raises(ReportError, match='reference lap 7'):
        make_report(ROOT / 'data' / 'telemetry_2025-09-13_16-18-26.csv', out, ref_lap=7)
    assert not out.exists() or not any(out.iterdir())


def test_report_all_with_index(tmp_path):
    folder = tmp_path / 'sessions'
    folder.mkdir()
    for name in SESSIONS: (folder / name).write_bytes((ROOT / 'data' / name).read_bytes())
    (folder / 'broken.csv').write_text('not,a,session\n')
    r = subprocess.run([*F1TWIN, 'report', '--all', str(folder), '--out', str(tmp_path / 'out')],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, 'one session failed'
    assert '2 report(s), 1 failed' in r.stdout and 'broken.csv' in r.stderr
    index = (tmp_path / 'out' / 'index.html').read_text()
    assert all(f'href="{Path(n).stem}.html"' in index for n in SESSIONS) and 'failed: ' in index
    assert sorted(p.name for p in (tmp_path / 'out').glob('*.html')) == sorted(
        ['index.html'] + [f'{Path(n).stem}.html' for n in SESSIONS])


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
