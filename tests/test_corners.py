"""Corners: found from the data, the same in both real sessions, and the time lost per corner and on the straights
adding up to the lap time difference on every lap."""
import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from f1twin.corners import LapGrid, corner_summary, corner_table, corner_zones, find_corners, segment_times
from f1twin.io import load_session, sample_session_path
from f1twin.laps import LapError
from clirun import f1twin

warnings.simplefilter('ignore', UserWarning)
A = load_session(sample_session_path('telemetry_2025-09-12_19-00-17.csv'))
B = load_session(sample_session_path('telemetry_2025-09-13_16-18-26.csv'))
GAME = {'A': {1: 81817, 2: 81186, 3: 82539, 4: 82165}, 'B': {1: 82160, 2: 81790}}
MONZA = ['T1/Rettifilo', 'Roggia', 'Lesmo 1', 'Lesmo 2', 'Ascari', 'Parabolica']


def test_the_same_six_corners_in_both_sessions():
    a, b = find_corners(LapGrid(A)), find_corners(LapGrid(B))
    assert a['name'].tolist() == b['name'].tolist() == MONZA
    assert a.index.tolist() == b.index.tolist() == [1, 2, 3, 4, 5, 6]
    assert np.abs(a['apex_m'].to_numpy() - b['apex_m'].to_numpy()).max() < 50


def test_an_unknown_track_gets_numbered_corners_in_lap_order():
    anon = A.copy()
    anon.attrs = {'f1twin': {**A.attrs['f1twin'], 'track': 'somewhere'}}
    c = find_corners(LapGrid(anon))
    assert c['name'].tolist() == [f'T{k}' for k in range(1, 7)]
    assert (np.diff(c['apex_m']) > 0).all()


@pytest.mark.parametrize('df,game', [(A, GAME['A']), (B, GAME['B'])])
def test_corners_and_straights_add_up_to_the_lap_time_difference_on_every_lap(df, game):
    for ref in game:
        t = corner_table(df, ref=ref)
        seg = t.attrs['segments'].groupby('lap')['time_lost_s'].sum()
        want = {lap: (ms - game[ref]) / 1000 for lap, ms in game.items()}
        assert np.abs(seg.to_numpy() - np.array([want[l] for l in seg.index])).max() < 0.010
        assert (t[t['lap'] == ref]['time_lost_s'].abs() < 1e-9).all(), 'the reference loses nothing to itself'


def test_against_a_lap_of_another_session():
    t = corner_table(B, ref=(A, 2))
    seg = t.attrs['segments'].groupby('lap')['time_lost_s'].sum()
    assert np.allclose(seg.to_numpy(), [(82160 - 81186) / 1000, (81790 - 81186) / 1000], atol=0.010)
    assert t.attrs['ref_time_ms'] == 81186


def test_corner_figures_are_where_the_corner_is():
    t = corner_table(A)
    z = t.attrs['zones']
    for _, r in t.iterrows():
        zone = z.loc[r['corner']]
        assert zone['entry_m'] - 400 <= r['brake_m'] <= r['apex_m'], r.to_dict()
        assert r['turn_in_m'] <= r['apex_m'] and zone['entry_m'] <= r['apex_m'] <= zone['exit_m']
    assert t.groupby('name')['gear_apex'].median()['T1/Rettifilo'] <= 2  # the first chicane: first or second gear
    s = corner_summary(t)
    assert s['laps'].tolist() == [4] * 6 and (s['brake_spread_m'] < 20).all()


def test_a_corner_taken_without_braking_has_no_braking_point():
    lift = A.copy()
    lift['brake'] = 0.0
    t = corner_table(lift)
    assert t['brake_m'].isna().all() and t['turn_in_m'].notna().all()


def test_no_timed_lap_is_a_clear_error():
    with pytest.raises(LapError, match='no complete timed lap'):
        corner_table(A.iloc[:800])


def run(*args):
    return f1twin(*args)  # in this process (tests/clirun.py)


def test_cli_corners_csv():
    r = run('corners', sample_session_path(), '--csv')
    assert r.returncode == 0, r.stderr
    t = pd.read_csv(io.StringIO(r.stdout))
    for col in ('lap', 'corner', 'brake_m', 'apex_m', 'min_speed_kmh', 'exit_speed_kmh', 'time_lost_s'):
        assert col in t.columns
    assert len(t) == 24 and t[t['lap'] == 2]['time_lost_s'].abs().max() == 0


def test_cli_corners_text_with_a_reference_of_another_session_and_bad_input(tmp_path):
    other = sample_session_path('telemetry_2025-09-13_16-18-26.csv')
    r = run('corners', other, '--ref', f'{sample_session_path()}:2', '--lap', '2')
    assert r.returncode == 0, r.stderr
    assert 'reference lap 2 (1:21.186)' in r.stdout and 'Parabolica' in r.stdout
    bad = run('corners', other, '--ref', 'nolap')
    assert bad.returncode == 2 and 'expected SESSION_FILE:LAP' in bad.stderr
