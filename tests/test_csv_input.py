"""CSV session files as users really have them: odd but valid files load with the game's lap times, bad values get
one clear error naming the file, the column and the line, and what a spreadsheet did to a file is recognised."""
import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from f1twin.io import SessionFileError, load_session, sample_session_path
from f1twin.laps import lap_table, prepare_session
from clirun import f1twin

DEMO = sample_session_path('telemetry_2025-09-12_19-00-17.csv')
OTHER = sample_session_path('telemetry_2025-09-13_16-18-26.csv')
TEXT = DEMO.read_text()
LINES = TEXT.splitlines()
HEADER = LINES[0].split(',')
GAME = [81817, 81186, 82539, 82165]


def write(tmp_path, data, name='session.csv'):
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return p


def with_value(column, line, value, lines=LINES):
    """The demo file's text with `value` in `column` on file line `line` (1 = the header)."""
    out = list(lines)
    cells = out[line - 1].split(',')
    cells[HEADER.index(column)] = value
    out[line - 1] = ','.join(cells)
    return '\n'.join(out) + '\n'


def game_laps(path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        t = lap_table(prepare_session(load_session(path)))
    return t['lap_time_ms'].dropna().astype(int).tolist(), [str(w.message) for w in caught]


def error_of(path):
    with pytest.raises(SessionFileError) as e:
        load_session(path)
    msg = str(e.value)
    assert str(path) in msg, 'every error names the file'
    return msg


RAW = pd.read_csv(DEMO)


@pytest.mark.parametrize('name,data', [
    ('crlf', '\r\n'.join(LINES) + '\r\n'),
    ('bom', '\ufeff' + TEXT),
    ('bom_crlf', '\ufeff' + '\r\n'.join(LINES) + '\r\n'),
    ('reversed_columns', RAW[RAW.columns[::-1]].to_csv(index=False)),
    ('quoted', RAW.to_csv(index=False, quoting=1)),
    ('no_final_newline', TEXT.rstrip('\n')),
])
def test_odd_but_valid_files_load_with_the_games_lap_times(tmp_path, name, data):
    laps, notes = game_laps(write(tmp_path, data))
    assert laps == GAME
    assert not notes, f'nothing to say about a valid file: {notes}'


def test_unknown_columns_are_ignored_with_a_note(tmp_path):
    laps, notes = game_laps(write(tmp_path, RAW.assign(WaterTemp=90.5, Driver='me').to_csv(index=False)))
    assert laps == GAME
    assert any('WaterTemp' in n and 'Driver' in n and 'ignored' in n for n in notes), notes


def test_known_optional_columns_are_not_reported():
    laps, notes = game_laps(OTHER)  # it has Distance and DistanceTraveled_m_Original
    assert laps == [82160, 81790] and not notes


@pytest.mark.parametrize('sep,decimal', [(';', ','), (';', '.'), ('\t', '.')])
def test_spreadsheet_separators_are_recognised_and_read(tmp_path, sep, decimal):
    p = write(tmp_path, RAW.to_csv(index=False, sep=sep, decimal=decimal))
    laps, notes = game_laps(p)
    assert laps == GAME
    what = {';': "';'", '\t': 'tab'}[sep]
    assert any(f'separated by {what}' in n for n in notes), notes
    if decimal == ',': assert any("',' as the decimal mark" in n for n in notes), notes
    df = load_session(p)
    np.testing.assert_allclose(df['speed_kmh'], RAW['Speed_kmh'], rtol=1e-6)


@pytest.mark.parametrize('column,value,expected', [
    ('CompletedLaps', '99999999999999999999', 'too large'),
    ('iLastTime_ms', '3000000000', 'too large'),
    ('Gear', '300', 'too large'),
    ('RPM', '-99999999999', 'too large'),
    ('Speed_kmh', 'inf', 'not a finite number'),
    ('Speed_kmh', '-inf', 'not a finite number'),
    ('iLastTime_ms', '-inf', 'not a finite number'),
    ('CarX', '1e400', 'not a finite number'),
    ('Throttle', 'NaN', None),  # a missing float is allowed (NaN)
    ('RPM', '7000.5', 'whole number'),
    ('CompletedLaps', 'three', 'expected a number'),
])
def test_bad_values_name_file_column_and_line(tmp_path, column, value, expected):
    p = write(tmp_path, with_value(column, 9, value))
    if expected is None:
        assert len(load_session(p)) == len(LINES) - 1
        return
    msg = error_of(p)
    assert f'line 9, column {column}' in msg and expected in msg, msg


def test_inf_never_reaches_a_table(tmp_path):
    p = write(tmp_path, with_value('Speed_kmh', 100, 'inf'))
    with pytest.raises(SessionFileError):
        lap_table(load_session(p))


def test_unreadable_separator_is_explained(tmp_path):
    p = write(tmp_path, RAW.to_csv(index=False, sep='|'))
    msg = error_of(p)
    assert 'missing column' in msg and 'comma-separated' in msg


def run(*args):
    return f1twin(*args)  # in this process (tests/clirun.py)


def test_cli_reports_a_huge_value_as_bad_input_not_unexpected(tmp_path):
    p = write(tmp_path, with_value('CompletedLaps', 6, '99999999999999999999'))
    r = run('laps', p)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f'f1twin: error: {p}, line 6, column CompletedLaps') and 'unexpected' not in r.stderr


def test_laps_and_info_agree_when_the_wall_clock_goes_back(tmp_path):
    raw = RAW.copy()
    raw.loc[1500:, 'Timestamp'] -= 3600  # the computer's clock set back an hour mid-session
    p = write(tmp_path, raw.to_csv(index=False))
    laps, info = run('laps', p, '--format', 'csv'), run('info', p)
    assert laps.returncode == info.returncode == 0, laps.stderr + info.stderr
    table = pd.read_csv(io.StringIO(laps.stdout))
    assert table['lap_time_ms'].dropna().astype(int).tolist() == GAME
    assert 'timed laps: 4, best 1:21.186' in ' '.join(info.stdout.split())
    for r in (laps, info):
        assert 'wall clock (timestamp) goes back at 1 place(s), first at row 1500 (line 1502' in r.stderr
