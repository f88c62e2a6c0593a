"""Broken inputs a robustness sweep of the CLI found (each made from the real sessions): every one is a one-line
`f1twin: error:` naming the file and what was expected (exit 2), or is handled and said, never an "unexpected error"."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clirun import f1twin
from f1twin.io import SessionFileError, load_session, save_session
from f1twin.laprules import format_lap_time

ROOT = Path(__file__).resolve().parent.parent
A = ROOT / 'data' / 'telemetry_2025-09-12_19-00-17.csv'


def one_line_error(r, *expected):
    assert r.returncode == 2 and r.stderr.startswith('f1twin: error: ') and r.stderr.count('\n') == 1, r.stderr
    assert all(e in r.stderr for e in expected), r.stderr


def with_sidecar(tmp_path, name, sidecar):
    csv = tmp_path / f'{name}.csv'
    shutil.copy(A, csv)
    side = csv.with_suffix('.meta.json')
    if sidecar == 'a folder': side.mkdir()
    else: side.write_text(sidecar)
    return csv


@pytest.mark.parametrize('sidecar,expected', [
    ('[1, 2]', 'expected a JSON object of metadata fields, got list'),
    ('"monza"', 'expected a JSON object of metadata fields, got str'),
    ('a folder', "cannot be read as the session's metadata"),
    ('{"sample_rate_hz": "fast"}', "field sample_rate_hz: expected a positive number (or null), got 'fast'"),
    ('{"sample_rate_hz": -5}', 'field sample_rate_hz: expected a positive number (or null), got -5'),
    ('{"track": 7}', 'field track: expected text, got 7'),
    ('{"sector_count": 0}', 'field sector_count: expected a whole number from 1 to 64 (or null), got 0'),
    ('{"sector_count": 2.5}', 'field sector_count: expected a whole number from 1 to 64 (or null), got 2.5'),
])
def test_a_sidecar_of_the_wrong_shape_is_named(tmp_path, sidecar, expected):
    csv = with_sidecar(tmp_path, 's', sidecar)
    one_line_error(f1twin('laps', csv), 's.meta.json', expected)


@pytest.mark.parametrize('stored,expected', [
    (b'{not json', 'damaged f1twin metadata (not JSON'),
    (b'[1, 2, 3]', 'expected a JSON object of fields, got list'),
    (b'{"sample_rate_hz": "fast"}', 'field sample_rate_hz'),
])
def test_parquet_metadata_of_the_wrong_shape_is_named(tmp_path, stored, expected):
    import pyarrow.parquet as pq
    path = save_session(load_session(A), tmp_path / 'a.parquet')
    t = pq.read_table(path)
    pq.write_table(t.replace_schema_metadata({**t.schema.metadata, b'f1twin': stored}), path)
    with pytest.raises(SessionFileError, match='a.parquet: '):
        load_session(path)
    one_line_error(f1twin('laps', path), 'a.parquet', expected)


def test_metadata_that_is_merely_loose_is_read():
    """null text and whole numbers where floats are kept: what a hand-written sidecar holds."""
    from f1twin.schema import SessionMeta
    assert SessionMeta.from_dict({'driver': None, 'sample_rate_hz': 10}) == SessionMeta(sample_rate_hz=10.0)
    assert SessionMeta.from_dict({'sector_count': None}) == SessionMeta() and SessionMeta().sector_count is None


@pytest.mark.parametrize('lap', [0, 5, 99])
def test_corners_of_a_lap_that_is_not_complete(lap):
    one_line_error(f1twin('corners', A, '--lap', lap), f'lap {lap} is not a complete timed lap', '[1, 2, 3, 4]')


def test_convert_rate_out_of_range(tmp_path):
    for rate in (-1, 0, 70_000):
        one_line_error(f1twin('convert', '--rate', rate, A, tmp_path / 'x.ld'), f'rate {rate}: expected 1 to 1000')
    assert not list(tmp_path.iterdir()), 'nothing written'


def test_a_log_with_an_absurd_decimal_shift_is_a_damaged_log(tmp_path):
    from f1twin.motec import write_ld
    from f1twin.motec_ld import LD_CHANNEL, LD_HEADER
    from f1twin.laps import prepare_session
    path = write_ld(prepare_session(load_session(A)), tmp_path / 'a.ld')
    buf = bytearray(path.read_bytes())
    first = int(np.frombuffer(buf, LD_HEADER, count=1)[0]['channel_meta'])
    at = first + LD_CHANNEL.fields['dec'][1]
    buf[at:at + 2] = np.int16(-3328).tobytes()
    path.write_bytes(bytes(buf))
    one_line_error(f1twin('laps', path), 'a.ld', 'shifts its decimal point by -3328 places: damaged log')


def test_recover_parts_of_two_recordings_names_the_odd_part(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    parts = tmp_path / 's.parquet.parts'
    parts.mkdir()
    t = pq.read_table(save_session(load_session(A), tmp_path / 'whole.parquet'))
    pq.write_table(t.slice(0, 1000), parts / 'part-000001.parquet')
    odd = t.slice(1000, 1000)
    odd = odd.set_column(odd.schema.get_field_index('rpm'), 'rpm', odd['rpm'].cast(pa.float64()))
    pq.write_table(odd, parts / 'part-000002.parquet')
    pq.write_table(t.slice(2000, 1000), parts / 'part-000003.parquet')
    one_line_error(f1twin('recover', parts), 'part part-000002.parquet does not have the columns of part-000001.parquet',
                   'rpm (double)')
    assert len(list(parts.iterdir())) == 3, 'the parts are kept'


def test_library_with_an_aborted_session_a_damaged_log_and_a_damaged_index(tmp_path):
    lib = tmp_path / 'lib'
    lib.mkdir()
    for ext in ('.csv', '.meta.json'): shutil.copy(A.with_suffix(ext), lib / f'a{ext}')
    lines = A.read_text().splitlines()
    (lib / 'aborted.csv').write_text('\n'.join(lines[:300]) + '\n')  # the out-lap only: no timed lap
    (lib / 'damaged.ld').write_bytes(b'\x40\x00\x00\x00' + bytes(3000))
    r = f1twin('library', lib)
    assert r.returncode == 0, r.stderr
    assert 'best 1:21.186' in r.stdout and 'aborted.csv' in r.stdout and 'damaged.ld' in r.stderr
    db = lib / '.f1twin-library.duckdb'
    data = db.read_bytes()
    db.write_bytes(data[:len(data) * 2 // 3])  # cut short, as by a full disk or a crash
    # a process of its own: how the warning prints (one line) is the CLI's, not pytest's warning capture
    r = subprocess.run([str(Path(sys.executable).parent / 'f1twin'), 'library', str(lib)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and 'best 1:21.186' in r.stdout, r.stderr
    [line] = [l for l in r.stderr.splitlines() if 'damaged index' in l]
    assert line.startswith(f'f1twin: warning: {db}: damaged index') and line.endswith('indexing again')
    assert 'UserWarning' not in r.stderr and 'with LapLibrary' not in r.stderr, 'no Python warning form, no source line'
    assert (lib / '.f1twin-library.duckdb.damaged').exists()


def test_missing_lap_times_format_as_blank():
    assert format_lap_time(pd.NA) == '' and format_lap_time(pd.Series([1, None], dtype='Int64')[1]) == ''


def test_cli_warnings_are_one_line(tmp_path):
    csv = tmp_path / 'extra.csv'
    df = pd.read_csv(A)
    df['Mystery'] = 1
    df.to_csv(csv, index=False)
    r = f1twin('laps', csv)
    assert r.returncode == 0
    warning = [l for l in r.stderr.splitlines() if 'Mystery' in l]
    assert warning == [f'f1twin: warning: {csv}: column(s) Mystery are not part of the recording format; ignored'], r.stderr
    assert 'UserWarning' not in r.stderr


def counter_file(tmp_path, name, change):
    df = pd.read_csv(A)
    change(df)
    csv = tmp_path / f'{name}.csv'
    df.to_csv(csv, index=False)
    shutil.copy(A.with_suffix('.meta.json'), csv.with_suffix('.meta.json'))
    return csv


def lap_row(df, n, i):
    return df.index[df['CompletedLaps'] == n][i]


@pytest.mark.parametrize('name,change', [
    ('spike', lambda df: df.__setitem__('CompletedLaps', df['CompletedLaps'].where(df.index != lap_row(df, 3, 400), 99))),
    ('zeros', lambda df: df.loc.__setitem__((slice(lap_row(df, 3, 400), lap_row(df, 3, 405)), 'CompletedLaps'), 0)),
])
def test_a_glitching_lap_counter_is_mended_and_said(tmp_path, name, change):
    """Was: a restart in mid-lap, lap 3 listed twice, and `anomalies` crashed on the duplicate lap number."""
    csv = counter_file(tmp_path, name, change)
    for cmd in ('laps', 'anomalies', 'corners'):
        r = f1twin(cmd, csv)
        assert r.returncode == 0 and 'unexpected error' not in r.stderr, (cmd, r.stderr)
        assert 'f1twin: warning: the lap counter (completed_laps) leaves its value' in r.stderr, (cmd, r.stderr)
    assert 'restarted' not in f1twin('info', csv).stdout
    laps = f1twin('laps', csv).stdout
    rows = [l.split()[:2] for l in laps.splitlines()[2:8]]
    assert rows == [['0', '-'], ['1', '1:21.817'], ['2*', '1:21.186'], ['3', '1:22.539'], ['4', '1:22.165'], ['5', '-']], laps


def test_a_lap_counter_that_jumps_numbers_each_lap_once(tmp_path):
    """The counter jumps 2 -> 7 at a line (laps missing from the file): lap 3 is untimed, the next is the game's lap 8."""
    csv = counter_file(tmp_path, 'jump', lambda df: df.__setitem__('CompletedLaps', df['CompletedLaps'] + 4 * (df['CompletedLaps'] >= 3)))
    from f1twin.laps import lap_table, prepare_session
    t = lap_table(prepare_session(load_session(csv)))
    assert t.index.is_unique and t.index.tolist() == [0, 1, 2, 3, 8, 9]
    assert pd.isna(t.loc[3, 'lap_time_ms']) and t.loc[3, 'kind'] == 'flying' and t.loc[8, 'lap_time'] == '1:22.165'
    r = f1twin('anomalies', csv)
    assert r.returncode == 0 and 'unexpected error' not in r.stderr, r.stderr


def test_a_lap_clock_reset_without_a_count_in_mid_session(tmp_path):
    """As on a return to the pits: the lap clock resets in lap 3 and the counter does not move. The game's numbers
    would give two laps the number 2; the laps are numbered in order (said), every game time kept."""
    from f1twin.laps import lap_table, prepare_session
    df = load_session(A)
    rows = np.flatnonzero(df['completed_laps'].to_numpy() == 2)
    clock = df['current_lap_time_ms'].to_numpy().copy()
    clock[rows[400]:rows[-1] + 1] -= clock[rows[400]] - 10
    with pytest.warns(UserWarning, match='more than one lap the number 2.*numbered in order from 0'):
        t = lap_table(prepare_session(df.assign(current_lap_time_ms=clock)))
    assert t.index.tolist() == list(range(7)) and t['lap_time'].tolist()[1:6] == ['1:21.817', '1:21.186', '', '1:22.539', '1:22.165']
    assert t.loc[3, 'kind'] == 'out'


def test_output_paths_the_system_refuses_are_one_line(tmp_path):
    """An output folder that is a file: each command says which path and why (was NotADirectoryError, 'unexpected')."""
    (tmp_path / 'a-file').write_text('')
    one_line_error(f1twin('report', A, '--out', tmp_path / 'a-file' / 'reports'), 'a-file', 'is not a folder')
    shutil.copy(A, tmp_path / 's.csv')
    one_line_error(f1twin('library', tmp_path, '--track', 'monza', '--chart', tmp_path / 'a-file' / 'p.html'), 'a-file',
                   'cannot write the chart there')  # (before indexing the folder)
    one_line_error(f1twin('convert', A, tmp_path / 'a-file' / 's.parquet'), 'a-file')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a-file', 's.csv']


def test_convert_onto_its_own_session_file_is_refused(tmp_path):
    csv = tmp_path / 's.csv'
    shutil.copy(A, csv)
    before = csv.read_bytes()
    one_line_error(f1twin('convert', csv, tmp_path / '.' / 's.csv'), 'the session file itself')
    assert csv.read_bytes() == before


def test_convert_to_csv_keeps_the_track_and_car(tmp_path):
    """Was: a Parquet session converted to CSV lost its track and car (the CSV's columns cannot hold them)."""
    from f1twin.io import session_meta
    pq_path = save_session(load_session(A), tmp_path / 'a.parquet')
    assert f1twin('convert', pq_path, tmp_path / 'b.csv').returncode == 0
    meta = session_meta(load_session(tmp_path / 'b.csv'))
    assert meta.track == 'monza' and meta.car == session_meta(load_session(A)).car != ''


def test_library_chart_of_a_track_it_does_not_hold(tmp_path):
    """Was: an empty chart written for a track the library has no lap of."""
    shutil.copy(A, tmp_path / 's.csv')
    shutil.copy(A.with_suffix('.meta.json'), tmp_path / 's.meta.json')
    r = f1twin('library', tmp_path, '--track', 'nowhere', '--chart', tmp_path / 'p.html')
    assert r.returncode == 2 and r.stderr.splitlines()[-1].startswith("f1twin: error: no timed lap of track 'nowhere'"), r.stderr
    assert not (tmp_path / 'p.html').exists()
    r = f1twin('library', tmp_path, '--track', 'monza', '--chart', tmp_path / 'p.html')
    assert r.returncode == 0 and '1:21.186' in (tmp_path / 'p.html').read_text(), r.stderr


def test_csv_with_old_mac_line_ends_is_read(tmp_path):
    """Was: 'has a header but no data rows' for a file whose lines end in CR alone."""
    cr = tmp_path / 'cr.csv'
    cr.write_bytes(A.read_bytes().replace(b'\r\n', b'\n').replace(b'\n', b'\r'))
    assert len(load_session(cr)) == len(load_session(A))


def test_a_row_cut_short_is_named_as_such(tmp_path):
    """Was: 'line 101, column iLastTime_ms: empty, expected a whole number' for a row of 10 fields out of 24."""
    lines = A.read_text().split('\n')
    lines[100] = ','.join(lines[100].split(',')[:10])
    short = tmp_path / 'short.csv'
    short.write_text('\n'.join(lines))
    one_line_error(f1twin('laps', short), 'short.csv, line 101: only its first 10 of 24 fields have a value',
                   'columns from iLastTime_ms on are empty')


def test_negative_game_times_are_said(tmp_path):
    """Was: lap times silently derived from the lap clock when the file's last-lap times were negative."""
    df = pd.read_csv(A)
    df.loc[df['iLastTime_ms'] > 0, 'iLastTime_ms'] = -5
    neg = tmp_path / 'neg.csv'
    df.to_csv(neg, index=False)
    r = f1twin('laps', neg)
    assert r.returncode == 0 and "f1twin: warning: last_lap_time_ms is negative at 2444 sample(s), first at row 967 " \
        "(line 969 of the CSV file)" in r.stderr, r.stderr


@pytest.mark.parametrize('argv,said', [
    (['fake-ac', A, '--loops', '0'], 'argument --loops: 0: expected a whole number above 0'),  # was: a replay of nothing
    (['fake-ac', A, '--speed', 'nan'], 'argument --speed: nan: expected a number above 0'),  # was: a crash
    (['fake-ac', A, '--pause-at', '1', '--pause-s', '-1'], 'argument --pause-s: -1: expected a number of 0 or more'),
    (['collect', '--duration', '-1'], 'argument --duration: -1: expected a number above 0'),  # was: a collector for ever
    (['agents-demo', '--publish-every', '0'], 'argument --publish-every: 0: expected a number above 0'),
])
def test_numbers_on_the_command_line_are_checked(argv, said):
    r = f1twin(*argv)
    assert r.returncode == 2 and r.stderr.splitlines()[-1].endswith(said), r.stderr


def test_recover_with_a_stray_file_and_a_damaged_last_part(tmp_path):
    """Was: the session written, then 'Directory not empty' (exit 2) for a note left in the folder; and the damaged last
    part deleted with the others. Now the session is written and the folder kept, with what it still holds."""
    import pyarrow.parquet as pq
    parts = tmp_path / 's.parquet.parts'
    parts.mkdir()
    t = pq.read_table(save_session(load_session(A), tmp_path / 'whole.parquet'))
    for i in range(3): pq.write_table(t.slice(1000 * i, 1000), parts / f'part-{i + 1:06d}.parquet')
    (parts / 'part-000004.parquet').write_bytes(b'PAR1 cut short')
    (parts / 'notes.txt').write_text('lap 3: the rig froze')
    r = f1twin('recover', parts)
    assert r.returncode == 0 and len(load_session(tmp_path / 's.parquet')) == 3000, r.stderr
    assert f'{parts}: kept, for what is not in s.parquet: notes.txt, part-000004.parquet' in r.stderr, r.stderr
    assert sorted(p.name for p in parts.iterdir()) == ['notes.txt', 'part-000004.parquet']


def test_ldx_beacons_outside_the_log_are_said_and_ignored(tmp_path):
    """Was: beacons after the end of the log silently turned five timed laps into one partial lap."""
    import re
    from f1twin.motec import write_ld
    ld = write_ld(load_session(A), tmp_path / 'a.ld')
    ldx = ld.with_suffix('.ldx')
    ldx.write_text(re.sub(r'Time="[^"]*"', 'Time="9.99e+12"', ldx.read_text()))
    with pytest.warns(UserWarning) as caught:
        df = load_session(ld)
    said = [str(w.message) for w in caught]
    assert any('5 of 5 beacon(s) outside the log' in s for s in said) and any('taken from the Lap Time channel' in s for s in said), said
    from f1twin.laps import lap_table
    assert lap_table(df)['lap_time'].tolist()[1:5] == ['1:21.817', '1:21.186', '1:22.539', '1:22.165']


def test_corners_without_car_positions_name_the_file(tmp_path):
    """Was: '0 corners' and an empty table for a session whose car_x/car_z are all missing."""
    df = load_session(A)
    path = save_session(df.assign(car_x=np.nan, car_z=np.nan), tmp_path / 'nopos.parquet')
    one_line_error(f1twin('corners', path), 'nopos.parquet: no car positions in these laps (car_x, car_z missing')


def test_a_negative_lap_counter_is_an_error_without_numpy_reprs(tmp_path):
    """Was: laps numbered -10 to -5 (and MoTeC logs written from them); and values shown as np.int64(-10)."""
    df = pd.read_csv(A)
    df['CompletedLaps'] -= 10
    neg = tmp_path / 'neg.csv'
    df.to_csv(neg, index=False)
    r = f1twin('laps', neg)
    one_line_error(r, 'neg.csv, line 2, column CompletedLaps: expected a count of 0 or more, got -10')
    assert 'np.' not in r.stderr
    one_line_error(f1twin('convert', neg, tmp_path / 'neg.ld'), 'CompletedLaps')
    assert not (tmp_path / 'neg.ld').exists()


@pytest.mark.parametrize('since', ['yesterday', '2026-12-02T05:00:00'])
def test_report_since_a_time_that_is_not_one(since):
    """Was: a kernel started, then 'None: the report failed in its cell 4: ValueError: Invalid isoformat string'."""
    one_line_error(f1twin('report', '--kafka', '127.0.0.1:1', '--since', since),
                   f"since '{since}': expected a time in ISO 8601 with its time zone")


def test_fake_ac_replays_a_recording_without_a_whole_lap(tmp_path):
    """Was: SchemaError 'track_length_m: expected a positive number (or null), got nan' (resample_session measured
    no lap length and stored NaN), so bench/collector_bench.py and `f1twin fake-ac` of a short recording crashed."""
    short = tmp_path / 'short.csv'
    pd.read_csv(A).iloc[:50].to_csv(short, index=False)
    r = f1twin('fake-ac', short, '--dir', tmp_path / 'pages', '--speed', '50', '--hz', '20')
    assert r.returncode == 0 and 'fake AC: 100 packets at 20 Hz' in r.stderr and '1 loop(s)' in r.stderr, r.stderr  # (a loaded
    # machine skips some of them: the game's clock is kept, not every packet)


def test_a_settings_file_given_to_any_command_is_checked(tmp_path):
    """Was: `f1twin laps S --config missing.toml` (or a file with a typo) silently ignored: laps uses no setting."""
    one_line_error(f1twin('laps', A, '--config', tmp_path / 'missing.toml'), 'missing.toml: no such settings file')
    (tmp_path / 'typo.toml').write_text('record_hs = 100\n')
    one_line_error(f1twin('--config', tmp_path / 'typo.toml', 'info', A), "typo.toml: unknown setting 'record_hs'")
    r = f1twin('config', '--config', tmp_path / 'typo.toml')
    assert r.returncode == 2 and r.stdout == '', 'no header printed before the error'


def api_cases():
    """Calls a notebook user makes with plausible mistakes (a helper's sweep of the API): (call, error, its message)."""
    import f1twin.circuit as CI
    import f1twin.corners as C
    import f1twin.laps as L
    from f1twin.circuit import CircuitError
    from f1twin.laps import LapError
    s = load_session(A)
    empty = s[s['completed_laps'] == 9]
    return {
        # was: a normal-looking table, every lap 'losing' 40 s against the out-lap
        'corners against the out-lap': (lambda: C.corner_table(s, ref=0), LapError, 'reference: lap 0 is not a complete timed lap'),
        'corners against the last, partial lap': (lambda: C.corner_table(s, ref=5), LapError, 'reference: lap 5 is not'),
        'a filter that matched nothing': (lambda: L.lap_table(empty), LapError, 'empty session: no samples'),  # was IndexError
        'corners of nothing': (lambda: C.corner_table(empty), LapError, 'empty session: no samples'),
        'shuffled samples': (lambda: L.lap_table(s.sample(frac=1, random_state=0)), LapError,
                             'out of order'),  # was '1704 runs in one frame' (restarts)
        'a lap number as text': (lambda: L.compare_laps((s, 1), (s, '2')), LapError, "lap must be a whole lap number, got '2'"),
        'a lap number as text, map': (lambda: CI.circuit_map(s, lap='2'), CircuitError, 'lap must be a whole lap number'),
        'a step of 0': (lambda: L.compare_laps((s, 1), (s, 2), step=0), LapError, 'step must be metres above 0'),  # was ValueError
        'a negative step': (lambda: L.distance_grid(s, step=-5), LapError, 'step must be metres above 0'),  # was an empty grid
        'the out-lap on the grid': (lambda: L.distance_grid(s, laps=[0]), LapError, 'lap 0 is not a complete timed lap'),
        'no positions to compare': (lambda: L.compare_laps((s.drop(columns=['car_x', 'car_z']), 1), (s, 2)), LapError,
                                    'no column car_x, car_z'),  # was KeyError
        'a frame without a lap rule column': (lambda: L.prepare_session(s.drop(columns=['last_lap_time_ms'])), LapError,
                                              'not a session frame: no column last_lap_time_ms'),
        'a file name for a frame': (lambda: L.lap_table('x.csv'), LapError, 'expected a session frame'),
    }


@pytest.mark.parametrize('case', list(api_cases()))
def test_api_mistakes_are_clear_errors(case):
    call, error, said = api_cases()[case]
    with pytest.raises(error, match=said.replace('(', r'\(').replace("'", "'")):
        call()


def test_a_single_lap_number_is_taken_where_laps_are():
    from f1twin.corners import corner_table
    from f1twin.laps import distance_grid
    s = load_session(A)
    assert distance_grid(s, laps=2).index.get_level_values('lap').unique().tolist() == [2]
    assert corner_table(s, laps=2)['lap'].unique().tolist() == [2]


def blank_game(folder):
    """Pages of a game in its menus: a static page with a track, physics and graphics all zeros (status OFF)."""
    from f1twin import shm
    folder.mkdir()
    st = shm.Static()
    st.trackSPlineLength = 5793.0
    shm.write_pages(folder, shm.Physics(), shm.Graphics(), st)
    return folder


def test_collect_with_a_page_that_is_a_folder_waits_politely(tmp_path):
    """Was: 67,240 'the game closed its shared memory ... waiting' lines in 6 s (a folder opens, then every read fails)."""
    pages = blank_game(tmp_path / 'pages')
    (pages / 'acpmf_physics').unlink()
    (pages / 'acpmf_physics').mkdir()
    r = f1twin('collect', '--dir', pages, '--out', tmp_path / 'rec', '--duration', '1')
    assert r.returncode == 2 and r.stderr.splitlines()[-1].startswith('f1twin: error: ') and 'acpmf_physics is not a file' in r.stderr
    r = f1twin('collect', '--dir', pages, '--out', tmp_path / 'rec', '--duration', '1.5', '--wait')
    assert r.returncode == 0 and r.stderr.count('acpmf_physics is not a file') == 1 and len(r.stderr.splitlines()) < 6, r.stderr


def test_collect_says_when_the_game_is_not_live(tmp_path):
    """Was: silence until the end (a collector started while the game is in its menus)."""
    pages = blank_game(tmp_path / 'pages')
    r = f1twin('collect', '--dir', pages, '--out', tmp_path / 'rec', '--duration', '1.5')
    assert r.returncode == 0 and r.stderr.count('the game is off (in its menus, or no session): recording when it is live') == 1, r.stderr


def test_time_at_speed_of_a_car_that_never_moved():
    """Was: 'zero-size array to reduction operation maximum' (one bin edge), so the report failed in its cell 18."""
    from f1twin.charts import speed_histogram
    fig = speed_histogram(load_session(A).assign(speed_kmh=0.0))
    assert list(fig.data[0].x) == [5.0] and list(fig.data[0].y) == [100.0]
