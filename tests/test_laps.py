"""Lap analysis on the real sessions: the game's times to the millisecond, and bad input handled."""
import numpy as np
import pandas as pd
import pytest

from f1twin.fakeac import resample_session
from f1twin.io import load_session, sample_session_path
from f1twin.laps import (LapError, compare_laps, consistency, distance_grid, lap_samples, lap_table,
                         prepare_session, sector_table, split_laps, split_runs, theoretical_best_ms)

A = load_session(sample_session_path('telemetry_2025-09-12_19-00-17.csv'))
B = load_session(sample_session_path('telemetry_2025-09-13_16-18-26.csv'))
A_LAPS, B_LAPS = [81817, 81186, 82539, 82165], [82160, 81790]


def timed(t):
    return t['lap_time_ms'].dropna().astype(int).tolist()


@pytest.mark.parametrize('df,laps', [(A, A_LAPS), (B, B_LAPS)])
def test_lap_times_equal_the_games(df, laps):
    t = lap_table(df)
    assert timed(t) == laps
    full = t.dropna(subset=['lap_time_ms'])
    assert (full[['s1_ms', 's2_ms', 's3_ms']].sum(axis=1) == full['lap_time_ms']).all()
    assert (full['timing'] == 'game').all()
    assert t.iloc[0]['kind'] == 'out' and t.iloc[0]['partial'] and t.iloc[-1]['partial']
    assert t[t['partial']]['lap_time_ms'].isna().all(), 'partial laps never get a lap time'


def test_lap_table_figures():
    t = lap_table(A)
    assert t.loc[2, 'top_speed_kmh'] == pytest.approx(339.4) and t.loc[2, 'max_rpm'] == 13608
    assert 70 < t.loc[2, 'full_throttle_pct'] < 90 and 5 < t.loc[2, 'braking_pct'] < 15


def test_sector_columns_follow_the_tracks_sectors_when_the_metadata_knows_them():
    """A session cut before its later sectors: one column per sector reached, or per sector of the track when the
    metadata has the game's sector count (a recording of the collector, which reads it from the static page)."""
    short = A.iloc[:30].copy()
    sectors = lambda t: [c for c in t.columns if c.startswith('s') and c.endswith('_ms')]
    assert sectors(lap_table(short)) == ['s1_ms']
    short.attrs = {**A.attrs, 'f1twin': {**A.attrs.get('f1twin', {}), 'sector_count': 3}}
    t = lap_table(short)
    assert sectors(t) == ['s1_ms', 's2_ms', 's3_ms'] and t[['s2_ms', 's3_ms']].isna().all().all()
    assert sectors(lap_table(A)) == ['s1_ms', 's2_ms', 's3_ms']


def test_derived_lap_times_without_the_games_times():
    t = lap_table(A.assign(last_lap_time_ms=0, best_lap_time_ms=0))
    assert timed(t) == A_LAPS and (t.dropna(subset=['lap_time_ms'])['timing'] == 'derived').all()
    fast = resample_session(A, 333).assign(last_lap_time_ms=0, current_lap_time_ms=0)
    err = np.array(timed(lap_table(fast))) - A_LAPS
    assert np.abs(err).max() <= 5, err


def test_sector_table_theoretical_best_and_consistency():
    st = sector_table(A)
    assert st.index.tolist() == [1, 2, 3, 4]
    assert theoretical_best_ms(st) == 29661 + 25803 + 25511
    assert st.loc[2, 's1_best'] and st.loc[1, 's2_best'] and st.loc[1, 's3_best'] and st['s1_best'].sum() == 1
    c = consistency(st)
    assert c.loc['lap_time_ms', 'range_ms'] == 82539 - 81186
    assert c.loc['lap_time_ms', 'std_ms'] == pytest.approx(np.std(A_LAPS, ddof=1))


def test_lap_relative_distance_and_grid():
    laps = split_laps(A)
    for n in (1, 2, 3, 4):
        d = laps.loc[laps.lap == n, 'distance']
        assert 0 <= d.iloc[0] < 10 and 5740 < d.iloc[-1] < 5760 and d.is_monotonic_increasing
    g = distance_grid(A, step=10)
    assert g.index.get_level_values('lap').unique().tolist() == [1, 2, 3, 4]
    per_lap = g.groupby('lap').size()
    assert (per_lap == per_lap.iloc[0]).all(), 'every lap on the same grid'


def test_compare_laps_is_exact_at_both_ends():
    c = compare_laps((A, 2), (A, 3))
    assert c['delta_s'].iloc[0] == 0
    assert c['delta_s'].iloc[-1] == pytest.approx((82539 - 81186) / 1000, abs=1e-9)
    assert {'speed_kmh_ref', 'speed_kmh_cmp', 'throttle_ref', 'brake_cmp', 'gear_ref', 'steering_cmp'} <= set(c.columns)
    same = compare_laps((A, 2), (A, 2))
    assert same['delta_s'].abs().max() < 1e-9


def test_compare_laps_across_sessions():
    c = compare_laps((A, 2), (B, 2))
    assert c['delta_s'].iloc[-1] == pytest.approx((81790 - 81186) / 1000, abs=1e-9)
    assert c.attrs['ref_label'].startswith('lap 2 (1:21.186)') and '2025-09-13' in c.attrs['cmp_label']


def test_session_without_a_completed_lap():
    t = lap_table(A.iloc[200:900])  # inside lap 1: no line crossed
    assert len(t) == 1 and t['partial'].all() and t['lap_time_ms'].isna().all()
    assert sector_table(A.iloc[200:900]).empty
    with pytest.raises(LapError, match='no complete timed lap'):
        distance_grid(A.iloc[200:900])
    with pytest.raises(LapError, match='not a complete timed lap'):
        compare_laps((A.iloc[200:900], 1), (A, 2))


def test_single_lap():
    one = A.iloc[150:970]  # the out-lap's end, lap 1, the first samples of lap 2
    assert timed(lap_table(one)) == [81817]
    assert sector_table(one).index.tolist() == [1]


def test_nans_in_channels_do_not_break_the_analysis():
    holes = A.copy()
    holes.loc[holes.sample(frac=0.1, random_state=0).index, ['speed_kmh', 'throttle', 'car_x']] = np.nan
    t = lap_table(holes)
    assert timed(t) == A_LAPS and t['top_speed_kmh'].notna().all()


def test_duplicates_and_disorder_are_fixed_with_a_warning():
    messy = pd.concat([A, A.iloc[500:700]]).sample(frac=1, random_state=3)
    messy = messy.assign(packet_id=np.arange(len(messy)))
    messy.attrs = A.attrs
    with pytest.warns(UserWarning, match='200 duplicate sample'):
        fixed = prepare_session(messy)
    assert len(fixed) == len(A) and timed(lap_table(fixed)) == A_LAPS


def test_restart_in_the_middle():
    both = pd.concat([A, B], ignore_index=True)
    both.attrs = A.attrs
    with pytest.raises(LapError, match='restarts at row 3411'):
        lap_table(both)
    runs = split_runs(both)
    assert [timed(lap_table(r)) for r in runs] == [A_LAPS, B_LAPS]
    assert [r['session_time_s'].iloc[0] for r in runs] == [0, 0]


def test_bad_lap_numbers():
    with pytest.raises(LapError, match='no lap 9'):
        lap_samples(A, 9)
    with pytest.raises(LapError, match='expected \\(session, lap_number\\)'):
        compare_laps(A, (A, 2))


def timed_laps(df):
    t = lap_table(df)
    return t[t['lap_time_ms'].notna() & ~t['partial']]


@pytest.mark.parametrize('df', [A, B])
def test_delta_is_pinned_to_the_games_splits_on_every_lap_pair(df):
    """At each sector line the delta equals the difference of the game's cumulative sector times (10 ms at most:
    here it is exact), at the finish the difference of the lap times."""
    t = timed_laps(df)
    for ref in t.index:
        for other in t.index.drop(ref):
            c = compare_laps((df, ref), (df, other))
            lines = c.attrs['lines_m']
            assert len(lines) == 4, 'start, two sector lines, finish'
            want = np.r_[0, np.cumsum(t.loc[other, ['s1_ms', 's2_ms']]) - np.cumsum(t.loc[ref, ['s1_ms', 's2_ms']]),
                         t.loc[other, 'lap_time_ms'] - t.loc[ref, 'lap_time_ms']] / 1000
            got = c.loc[lines, 'delta_s'].to_numpy()
            assert np.abs(got[:3] - want[:3]).max() < 0.010, (ref, other, got, want)
            assert got[3] == pytest.approx(want[3], abs=1e-9), 'the lap time difference at the finish'


def test_delta_across_sessions_and_refusal_of_another_track():
    c = compare_laps((A, 2), (B, 2))
    assert c.loc[c.attrs['lines_m'][-1], 'delta_s'] == pytest.approx((81790 - 81186) / 1000, abs=1e-9)
    elsewhere = B.copy()
    elsewhere.attrs = {'f1twin': {**B.attrs['f1twin'], 'track': 'spa'}}
    with pytest.raises(LapError, match="different tracks \\('monza' and 'spa'\\)"):
        compare_laps((A, 2), (elsewhere, 2))
