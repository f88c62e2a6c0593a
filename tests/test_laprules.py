"""The lap rules, written once: the scalar form (one sample at a time) and the vectorised form (a whole session)
find the same restarts, laps, sectors and session clock, on the real sessions and on harder cases built from them."""
import numpy as np
import pandas as pd
import pytest

from f1twin.fakeac import resample_session
from f1twin.io import load_session, sample_session_path
from f1twin.laprules import (LapRule, counter_glitches, lap_events, lap_starts, mend_lap_counter, recording_order, restarts,
                             session_time_ms)

A = load_session(sample_session_path('telemetry_2025-09-12_19-00-17.csv'))
B = load_session(sample_session_path('telemetry_2025-09-13_16-18-26.csv'))
GAME = {'A': [81817, 81186, 82539, 82165], 'B': [82160, 81790]}


def scalar_events(df):
    """The scalar rule over the records: the same table as `lap_events`, plus each sample's session clock."""
    rule, rows, clock = LapRule(), [], []
    for i, r in enumerate(df.to_dict('records')):
        st = rule.step(r)
        clock.append(st.time_ms)
        if st.restart: rows.append((i, 'restart', 0, -1, 0))
        if st.sector is not None: rows.append((i, 'sector', st.sector_lap, st.sector, st.sector_ms))
        if st.lap_ms is not None: rows.append((i, 'lap', st.lap_number, -1, st.lap_ms))
    return pd.DataFrame(rows, columns=['row', 'kind', 'lap_number', 'sector', 'time_ms']), np.array(clock)


def run_clock(df):
    """The vectorised session clock, from zero at each restart (as split_runs and the scalar rule give it)."""
    cuts = np.r_[0, restarts(df), len(df)]
    return np.concatenate([session_time_ms(df.iloc[a:b]) for a, b in zip(cuts[:-1], cuts[1:])])


def restarted():
    """Session A, then the game restarted into session B: lap and packet counters go back."""
    both = pd.concat([A, B], ignore_index=True)
    both['packet_id'] = np.r_[np.arange(len(A)) + 5000, np.arange(len(B))]
    both['session_id'] = 'one'
    return both


CASES = {'A': lambda: A, 'B': lambda: B, 'A at 333 Hz': lambda: resample_session(A, 333),
         'B at 50 Hz': lambda: resample_session(B, 50), 'A then B': restarted}


@pytest.mark.parametrize('case', CASES)
def test_scalar_and_vectorised_rules_agree_on_every_boundary(case):
    df = CASES[case]()
    vec = lap_events(df)
    sca, clock = scalar_events(df)
    pd.testing.assert_frame_equal(sca.astype(vec.dtypes.to_dict()), vec)
    np.testing.assert_allclose(clock, run_clock(df), atol=1e-6)
    # and both found what the game timed
    laps = vec[vec['kind'] == 'lap']['time_ms'].tolist()
    expected = {'A': GAME['A'], 'B': GAME['B'], 'A at 333 Hz': GAME['A'], 'B at 50 Hz': GAME['B'],
                'A then B': GAME['A'] + GAME['B']}[case]
    assert laps == expected


@pytest.mark.parametrize('df,game', [(A, GAME['A']), (B, GAME['B'])])
def test_sectors_of_each_timed_lap_add_up_to_the_lap_time(df, game):
    ev = lap_events(df)
    sectors = ev[ev['kind'] == 'sector'].groupby('lap_number')['time_ms'].agg(['sum', 'count'])
    timed = ev[ev['kind'] == 'lap'].set_index('lap_number')['time_ms']
    assert (sectors.loc[timed.index, 'count'] == 3).all()
    assert sectors.loc[timed.index, 'sum'].tolist() == timed.tolist() == game


def test_session_clock_between_timed_crossings_is_the_games_lap_time():
    t = session_time_ms(A)
    s = lap_starts(A)
    crossing = t[s] - A['current_lap_time_ms'].to_numpy()[s]
    assert np.diff(crossing).tolist() == GAME['A']


def test_restart_reasons():
    both = restarted()
    rule = LapRule()
    reasons = [st.restart for st in map(rule.step, both.to_dict('records')) if st.restart]
    assert reasons == ['lap counter went back']
    same_laps = pd.concat([B.iloc[:100], B.iloc[100:200].assign(packet_id=np.arange(100))], ignore_index=True)
    assert restarts(same_laps).tolist() == [100] and restarts(same_laps, packets=False).tolist() == []
    rule = LapRule()
    assert [st.restart for st in map(rule.step, same_laps.to_dict('records')) if st.restart] == ['packet counter went back']


def test_wall_clock_going_back_keeps_the_order_and_is_reported():
    jump = A.assign(timestamp=np.where(np.arange(len(A)) < 1234, A['timestamp'], A['timestamp'] - 7200))
    order, notes = recording_order(jump)
    assert order is None
    assert len(notes) == 1 and 'row 1234 (line 1236 of the CSV file) by 7199' in notes[0]


def test_a_shuffled_file_is_put_back_in_order():
    shuffled = A.sample(frac=1.0, random_state=7).reset_index(drop=True)
    order, notes = recording_order(shuffled)
    assert order is not None and 'out of order' in notes[-1]
    np.testing.assert_array_equal(shuffled.iloc[order]['distance_total'].to_numpy(), A['distance_total'].to_numpy())


@pytest.mark.parametrize('case', CASES)
def test_no_counter_glitch_in_real_sessions(case):
    assert len(counter_glitches(CASES[case]())[0]) == 0


def glitched(rows, value):
    done = A['completed_laps'].to_numpy().copy()
    done[rows] = value
    return A.assign(completed_laps=done)


def lap_rows(n):
    return np.flatnonzero(A['completed_laps'].to_numpy() == n)


@pytest.mark.parametrize('rows,value', [
    (lambda: [lap_rows(3)[400]], 99),  # a spike
    (lambda: [lap_rows(3)[400]], 2),  # a dip of one
    (lambda: lap_rows(3)[400:406], 0),  # six samples at zero: not a restart, the lap clock ran on
    (lambda: [lap_rows(2)[0]], 50),  # on the first sample of a lap (the line): before the reset lap 2, from it lap 3
    (lambda: [0], 7), (lambda: [len(A) - 1], 0),  # the first and the last sample
    (lambda: np.arange(7, len(A), 50), 9),  # every 50th sample
])
def test_counter_glitches_are_mended_to_the_real_counter(rows, value):
    df = glitched(rows(), value)
    fixed, notes = mend_lap_counter(df)
    assert fixed['completed_laps'].equals(A['completed_laps']) and len(notes) == 1 and 'completed_laps' in notes[0]
    assert lap_events(fixed).equals(lap_events(A))


def test_what_is_not_a_glitch_stays():
    restart = restarted()  # the counter goes back with the lap clock: a restart
    assert len(counter_glitches(restart)[0]) == 0
    jump = A.assign(completed_laps=A['completed_laps'] + 4 * (np.arange(len(A)) >= lap_rows(3)[0]))  # 2 -> 7 at a line
    assert len(counter_glitches(jump)[0]) == 0
    alternating = A.assign(completed_laps=np.where(np.arange(len(A)) % 2 == 0, 0, A['completed_laps']))
    assert len(counter_glitches(alternating)[0]) == 0  # no stretch is shorter than the ones it interrupts: not guessed
    no_clock = glitched([lap_rows(3)[400]], 99).assign(current_lap_time_ms=0)
    assert len(counter_glitches(no_clock)[0]) == 0  # nothing to tell a glitch by
