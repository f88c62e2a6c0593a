"""MoTeC interop: both real sessions written as .ld/.ldx and read back with the game's lap times, the binary layout
checked byte by byte at the documented offsets, logs built here by hand (not by f1twin) read right, i2 CSV exports in
i2's layout (speed in km/h and m/s, pedals in % and 0-1) loaded with the game's lap times, bad files refused with one
clear error."""
import csv
import struct
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from f1twin import motec
from f1twin.io import SessionFileError, load_session, sample_session_path, session_meta
from f1twin.laprules import lap_starts
from f1twin.laps import lap_table, prepare_session, split_runs
from clirun import f1twin

ROOT = Path(__file__).resolve().parent.parent
DEMO = sample_session_path('telemetry_2025-09-12_19-00-17.csv')
OTHER = sample_session_path('telemetry_2025-09-13_16-18-26.csv')
GAME = {DEMO: [81817, 81186, 82539, 82165], OTHER: [82160, 81790]}  # the game's lap times, data/README.md
SECTORS = {DEMO: [(30503, 25803, 25511), (29661, 25838, 25687), (30406, 26213, 25920), (29961, 26270, 25934)],
           OTHER: [(30433, 26014, 25713), (30089, 26011, 25690)]}
SAMPLE = ROOT / 'tests' / 'data' / 'i2_export_acti_layout.csv'
LAP_COLS = ['lap_time_ms', 's1_ms', 's2_ms', 's3_ms', 'kind', 'partial', 'timing']


@pytest.fixture(scope='module', params=[DEMO, OTHER], ids=['0912', '0913'])
def session(request):
    return request.param, prepare_session(load_session(request.param))


def timed_laps(df):
    t = lap_table(df)
    t = t[t['lap_time_ms'].notna()]
    return t['lap_time_ms'].astype(int).tolist(), [tuple(r) for r in t[['s1_ms', 's2_ms', 's3_ms']].astype(int).to_numpy()]


def quiet(fn, *args):
    "Call fn, returning (result, the notes it gave)."
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        out = fn(*args)
    return out, [str(w.message) for w in caught]


# --- .ld / .ldx round trip on the real sessions

def test_round_trip_keeps_the_games_lap_and_sector_times(session, tmp_path):
    path, df = session
    ld = motec.write_ld(df, tmp_path / 'x.ld')
    back = load_session(ld)
    assert timed_laps(back) == (GAME[path], SECTORS[path])
    pd.testing.assert_frame_equal(lap_table(back)[LAP_COLS], lap_table(df)[LAP_COLS])


def test_beacons_are_the_line_crossings_exact_to_the_microsecond(session, tmp_path):
    path, df = session
    ld = motec.write_ld(df, tmp_path / 'x.ld')
    us, details = motec.read_ldx(ld.with_suffix('.ldx'))
    assert (us == np.round(us)).all()
    assert np.diff(us).tolist() == [ms * 1000 for ms in GAME[path]], 'each gap between beacons: a game lap time'
    t = df['session_time_s'].to_numpy()
    rows = lap_starts(df)
    crossings_ms = np.round(t[rows] * 1000) - df['current_lap_time_ms'].to_numpy()[rows]
    assert (us / 1000).tolist() == crossings_ms.tolist(), 'a beacon at every line crossing, the out-lap one too'
    best = min(GAME[path])
    assert details['Fastest Time'] == f'1:{best // 1000 % 60:02d}.{best % 1000:03d}'
    assert details['Total Laps'] == str(len(us) + 1)


def test_beacon_times_keep_every_microsecond_in_a_long_session(tmp_path):
    hours = [3_600_000_001, 7_200_123_457, 36_000_000_999]  # 1, 2 and 10 hours into a log
    (tmp_path / 'long.ldx').write_text(motec.ldx_text(hours))
    assert motec.read_ldx(tmp_path / 'long.ldx')[0].tolist() == hours
    assert 'Time="3.600000001e+09"' in (tmp_path / 'long.ldx').read_text(), 'scientific notation, as i2 writes it'


def test_a_renamed_log_is_still_recognised(tmp_path):
    ld = motec.write_ld(prepare_session(load_session(OTHER)), tmp_path / 'x.ld')
    renamed = tmp_path / 'session.bin'
    renamed.write_bytes(ld.read_bytes())
    assert motec.is_motec_file(renamed) and not motec.is_motec_file(OTHER)
    df, notes = quiet(load_session, renamed)  # read by its marker; no .ldx beside it: the laps from the Lap Time channel
    assert timed_laps(df)[0] == GAME[OTHER] and 'taken from the Lap Time channel' in notes[0]


def test_every_channel_comes_back_within_its_stored_precision(session, tmp_path):
    _, df = session
    g = motec.resample(df)
    back = motec.read_ld(motec.write_ld(df, tmp_path / 'x.ld'))
    assert list(back.columns) == list(g.columns) and len(back) == len(g)
    for c in g.columns:
        if c in ('session_id', 'car_id', 'tyre_compound'):
            assert (back[c].astype(str) == g[c].astype(str)).all(), c
            continue
        a, b = g[c].to_numpy(np.float64), back[c].to_numpy(np.float64)
        spec = motec.BY_FIELD.get(c)
        tol = np.abs(a) * 2.4e-7 if spec is not None and spec.store == 'f4' else 0  # float32: half an ulp, twice
        ok = (np.abs(a - b) <= tol) | (np.isnan(a) & np.isnan(b))
        assert ok.all(), f'{c}: first difference at row {np.flatnonzero(~ok)[0]}'


def test_a_second_round_trip_changes_nothing(session, tmp_path):
    _, df = session
    once = motec.read_ld(motec.write_ld(df, tmp_path / 'a.ld'))
    twice = motec.read_ld(motec.write_ld(once, tmp_path / 'b.ld'))
    pd.testing.assert_frame_equal(twice, once)


def test_metadata_comes_back(session, tmp_path):
    path, df = session
    back = load_session(motec.write_ld(df, tmp_path / 'x.ld'))
    m0, m1 = session_meta(df), session_meta(back)
    for k in ('session_id', 'car_id', 'track', 'car', 'driver', 'start_time', 'track_length_m'):
        assert getattr(m1, k) == getattr(m0, k), k
    assert m1.source == 'ld:x.ld' and m1.sample_rate_hz == 10.0
    assert (back['tyre_compound'] == 'Soft (S)').all()
    assert back['timestamp'].iloc[0] == pd.Timestamp(m0.start_time).timestamp()


def test_resampling_is_regular_and_close_to_the_recording(session):
    _, df = session
    g = motec.resample(df)
    assert np.allclose(np.diff(g['session_time_s']), 0.1)
    assert g['session_time_s'].iloc[-1] >= df['session_time_s'].iloc[-1] > g['session_time_s'].iloc[-2]
    speed_at_samples = np.interp(df['session_time_s'], g['session_time_s'], g['speed_kmh'])
    assert np.median(np.abs(speed_at_samples - df['speed_kmh'])) < 0.5
    if df['distance'].notna().any():  # the lap distance restarts at the line: never interpolated across it
        d_at = np.interp(df['session_time_s'], g['session_time_s'], g['distance'])
        assert g['distance'].min() > -1 and np.median(np.abs(d_at - df['distance'])) < 1


def test_no_channel_is_invented(tmp_path):
    df = prepare_session(load_session(DEMO))
    names = [c.name for c in motec.read_ld_log(motec.write_ld(df, tmp_path / 'x.ld')).channels]
    assert {'Ground Speed', 'Engine RPM', 'Gear', 'Throttle Pos', 'Brake Pos', 'Steering Angle', 'Car Coord X',
            'Lap Time', 'Last Lap Time', 'Session Lap Count', 'Last Sector Time'} <= set(names)
    assert not {'G Force Lat', 'G Force Long', 'Car Pos Norm', 'Lap Distance'} & set(names), 'not in this recording'


def test_a_fast_session_with_track_position_round_trips(tmp_path):
    from f1twin.fakeac import resample_session
    hi = resample_session(prepare_session(load_session(OTHER)), 50.0)  # what the collector records at 50 Hz
    back, notes = quiet(motec.read_ld, motec.write_ld(hi, tmp_path / 'hi.ld'))
    assert not notes and session_meta(back).sample_rate_hz == 50
    assert timed_laps(back) == (GAME[OTHER], SECTORS[OTHER])
    pos, ref = back['normalized_position'].to_numpy(), hi['normalized_position'].to_numpy()
    assert len(back) == len(hi) and np.abs(pos - ref).max() < 1e-6, 'the track position wraps at the line, not before'


def test_a_log_at_another_rate_keeps_the_lap_times(tmp_path):
    df = prepare_session(load_session(DEMO))
    back = motec.read_ld(motec.write_ld(df, tmp_path / 'x.ld', rate=7))
    assert session_meta(back).sample_rate_hz == 7 and timed_laps(back)[0] == GAME[DEMO]


def test_without_the_ldx_the_lap_time_channel_gives_the_laps(tmp_path):
    ld = motec.write_ld(prepare_session(load_session(DEMO)), tmp_path / 'x.ld')
    ld.with_suffix('.ldx').unlink()
    back, notes = quiet(load_session, ld)
    assert any('no beacons: 5 line crossing(s) taken from the Lap Time channel' in n for n in notes)
    assert timed_laps(back) == (GAME[DEMO], SECTORS[DEMO])


def without_beacons_or_lap_clock(tmp_path, rate, drop):
    """The demo session as a `rate` Hz log with no .ldx and no Lap Time channel, but a track position and a lap
    distance made from its crossings (the position reaching 1 at the line, the distance integrated from the speed, as
    the game's channels do), less the channels in `drop`."""
    ld = motec.write_ld(prepare_session(load_session(DEMO)), tmp_path / 'x.ld', rate=rate)
    ld.with_suffix('.ldx').unlink()
    log = motec.read_ld_log(ld)
    clock = log.channel('Lap Time').values
    t = np.arange(len(clock)) / rate
    r = np.flatnonzero(np.diff(clock) < 0) + 1
    cross = np.r_[-clock[0], t[r] - clock[r]]  # the lap under way at the start began before the log
    v = log.channel('Ground Speed').values / 3.6
    travelled = np.r_[0, np.cumsum((v[1:] + v[:-1]) / 2 / rate)]
    at = np.interp(cross, t, travelled)
    at[0] = at[1] - 5793  # Monza's length: the lap under way at the start
    seg = np.searchsorted(cross, t, side='right') - 1
    lap_s = np.diff(np.r_[cross, cross[-1] + 90])  # (the lap under way at the end: 90 s)
    made = {'Car Pos Norm': ('', (t - cross[seg]) / lap_s[seg]), 'Lap Distance': ('m', travelled - at[seg])}
    log.channels = [c for c in log.channels if c.name not in ('Lap Time', *drop)] + [
        motec.LdChannel(n, u, rate, x) for n, (u, x) in made.items() if n not in drop]
    out = tmp_path / 'y.ld'
    out.write_bytes(motec.ld_bytes(log))
    return quiet(load_session, out)


@pytest.mark.parametrize('drop, source, crossings', [((), 'Car Pos Norm', 5), (('Car Pos Norm',), 'Lap Distance', 5),
                                          (('Car Pos Norm', 'Lap Distance'), 'Session Lap Count', 4)])
def test_without_beacons_or_lap_clock_the_position_distance_or_lap_counter_gives_the_laps(tmp_path, drop, source, crossings):
    back, notes = without_beacons_or_lap_clock(tmp_path, 20, drop)
    assert any(f'no beacons: {crossings} line crossing(s) taken from the {source} channel' in n for n in notes), notes
    assert timed_laps(back)[0] == GAME[DEMO], 'placed to the millisecond by the Last Lap Time channel'
    back, notes = without_beacons_or_lap_clock(tmp_path, 20, drop + ('Last Lap Time',))
    laps = lap_table(back)['lap_time_ms'].dropna().to_numpy()
    assert len(laps) == len(GAME[DEMO]) - (source == 'Session Lap Count'), laps
    assert np.abs(laps - GAME[DEMO][-len(laps):]).max() <= 50, 'without it: to a sample (50 ms at 20 Hz)'


def test_without_any_lap_channel_a_log_is_one_stint(tmp_path):
    back, notes = without_beacons_or_lap_clock(tmp_path, 20, ('Car Pos Norm', 'Lap Distance', 'Session Lap Count'))
    assert not any('no beacons' in n for n in notes) and lap_table(back)['lap_time_ms'].notna().sum() == 0


def test_a_lap_distance_that_never_makes_a_lap_gives_no_crossings(tmp_path):
    n = 200  # 10 s at 20 Hz of a car crawling in the pits: the lap distance jitters between 0 and 3 m
    jitter = (np.arange(n) % 4).astype(float).tolist()
    p = handmade_ld(tmp_path / 'pits.ld', [(name, unit, 20, 7, 4, (0, 1, 1, 0), values) for name, unit, values in (
        ('Ground Speed', 'km/h', [5.0] * n), ('Throttle Pos', '%', [0.0] * n), ('Brake Pos', '%', [0.0] * n),
        ('Engine RPM', 'rpm', [3000.0] * n), ('Gear', '', [1.0] * n), ('Lap Distance', 'm', jitter))])
    df, notes = quiet(load_session, p)
    assert not any('no beacons' in n for n in notes) and (df['completed_laps'] == 0).all(), notes
    assert lap_table(df)['lap_time_ms'].notna().sum() == 0, 'one stint'


def test_a_log_as_read_writes_back_as_it_was_stored(tmp_path):
    log = motec.read_ld_log(another_tools_log(tmp_path))
    (tmp_path / 'again.ld').write_bytes(motec.ld_bytes(log))
    again = motec.read_ld_log(tmp_path / 'again.ld')
    assert [(c.name, c.unit, c.rate, c.store, c.dec) for c in again.channels] == [
        (c.name, c.unit, c.rate, '<f4' if c.store == '<f2' else c.store, c.dec) for c in log.channels], 'float16 as float32'
    assert all(np.array_equal(a.values, b.values) for a, b in zip(again.channels, log.channels))
    thirds = handmade_ld(tmp_path / 'thirds.ld', [('Ground Speed', 'km/h', 10, 3, 2, (0, 1, 3, 0), [100, 101, 102])])
    log = motec.read_ld_log(thirds)  # int16 scaled by 1/3: values between whole numbers
    (tmp_path / 'b.ld').write_bytes(motec.ld_bytes(log))
    back = motec.read_ld_log(tmp_path / 'b.ld')
    assert back.channels[0].store == '<f4' and np.allclose(back.channels[0].values, [100 / 3, 101 / 3, 102 / 3], rtol=1e-7)
    log.channels[0].store = 'f8'
    with pytest.raises(motec.MotecError, match="store 'f8'"): motec.ld_bytes(log)


def test_a_restarted_session_is_refused_and_the_cli_writes_one_log_per_run(tmp_path):
    a, b = load_session(DEMO), load_session(OTHER)
    two = pd.concat([a, b], ignore_index=True)
    two.attrs = a.attrs
    with pytest.raises(motec.MotecError, match='restarts the session'):
        motec.write_ld(two, tmp_path / 'two.ld')
    p = tmp_path / 'two.parquet'
    from f1twin.io import save_session
    save_session(two, p)
    r = run('convert', p, tmp_path / 'out.ld')
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(tmp_path / f'out-run{i}.{x}') for i in (1, 2) for x in ('ld', 'ldx')]
    assert timed_laps(load_session(tmp_path / 'out-run1.ld'))[0] == GAME[DEMO]
    assert timed_laps(load_session(tmp_path / 'out-run2.ld'))[0] == GAME[OTHER]


# --- the binary layout, checked at the documented offsets without f1twin's record types

def cstr(buf, at, n):
    return buf[at:at + n].split(b'\0', 1)[0].decode()


def test_written_log_follows_the_documented_layout(tmp_path):
    df = prepare_session(load_session(DEMO))
    buf = motec.write_ld(df, tmp_path / 'x.ld').read_bytes()
    u32 = lambda at: struct.unpack_from('<I', buf, at)[0]
    u16 = lambda at: struct.unpack_from('<H', buf, at)[0]
    assert u32(0) == 0x40 and u32(1502) == 0xC81A4 and struct.unpack_from('<3H', buf, 64) == (1, 0x4240, 0xF)
    assert cstr(buf, 74, 8) == 'ADL' and u16(84) == 0xADB0
    assert (cstr(buf, 94, 16), cstr(buf, 126, 16)) == ('12/09/2025', '16:54:33')
    assert cstr(buf, 222, 64) == 'open-wheel F1-style car (soft tyres)' and cstr(buf, 350, 64) == 'monza'
    assert cstr(buf, 1572, 64) == 'Tires: Soft (S)'
    event = u32(36)
    assert cstr(buf, event, 64) == '2025-09-12_19-00-17' and cstr(buf, event + 128, 1024).startswith('f1twin:{')
    venue = u16(event + 1152)
    assert cstr(buf, venue, 64) == 'monza' and cstr(buf, u16(venue + 1098), 64) == 'open-wheel F1-style car (soft tyres)'
    at, prev, names, n_grid = u32(8), 0, [], len(motec.resample(df))
    while at:  # the doubly linked list of 124-byte channel records
        assert u32(at) == prev, 'each record points back at the one before'
        nxt, data, n = struct.unpack_from('<3I', buf, at + 4)
        counter, kind, size, rate, shift, mul, scale, dec = struct.unpack_from('<4H4h', buf, at + 16)
        assert counter == 0x2EE1 + len(names) and rate == 10 and n == n_grid and (shift, mul, scale) == (0, 1, 1)
        names.append((cstr(buf, at + 32, 32), cstr(buf, at + 72, 12), kind, size, dec, data, n))
        prev, at = at, nxt
    assert len(names) == u32(86)
    name, unit, kind, size, dec, data, n = names[0]
    assert (name, unit, kind, size) == ('Ground Speed', 'km/h', 7, 4) and data == u32(12)
    speed = np.frombuffer(buf, '<f4', count=n, offset=data)
    np.testing.assert_array_equal(speed, motec.resample(df)['speed_kmh'].to_numpy(np.float32))
    lap_time = next(x for x in names if x[0] == 'Lap Time')
    assert lap_time[1:5] == ('s', 5, 4, 3), 'int32 milliseconds: exact lap clock'
    assert data + sum(x[3] * x[6] for x in names) == len(buf), 'the samples fill the file to its end'


def handmade_ld(path, channels, rate_of=None, header=None):
    """A .ld built here with struct at the documented offsets: channels (name, unit, rate, kind, size, (shift, mul,
    scale, dec), raw samples). Independent of f1twin.motec's own layout."""
    meta_at = 1762
    data_at = meta_at + 124 * len(channels)
    buf = bytearray(data_at)
    struct.pack_into('<I', buf, 0, 0x40)
    struct.pack_into('<II', buf, 8, meta_at, data_at)
    struct.pack_into('<I', buf, 86, len(channels))
    for k, (at, n) in {'date': (94, 16), 'time': (126, 16), 'driver': (158, 64), 'vehicle': (222, 64),
                       'venue': (350, 64)}.items():
        buf[at:at + n] = (header or {}).get(k, '').encode().ljust(n, b'\0')
    samples = b''
    for i, (name, unit, rate, kind, size, (shift, mul, scale, dec), raw) in enumerate(channels):
        at = meta_at + 124 * i
        fmt = {(7, 2): '<e', (7, 4): '<f', (3, 2): '<h', (0, 2): '<h', (5, 4): '<i', (3, 4): '<i'}[(kind, size)]
        body = b''.join(struct.pack(fmt, x) for x in raw)
        struct.pack_into('<IIII', buf, at, at - 124 if i else 0, at + 124 if i + 1 < len(channels) else 0,
                         data_at + len(samples), len(raw))
        struct.pack_into('<HHHH4h', buf, at + 16, 0, kind, size, rate, shift, mul, scale, dec)
        buf[at + 32:at + 64] = name.encode().ljust(32, b'\0')
        buf[at + 72:at + 84] = unit.encode().ljust(12, b'\0')
        samples += body
    path.write_bytes(bytes(buf) + samples)
    return path


def another_tools_log(tmp_path):
    n = 40  # 2 s at 20 Hz; the gear at 10 Hz
    speed_raw = list(range(1000, 1000 + 10 * n, 10))  # int16, shift 5, mul 3, scale 2, dec 1
    return handmade_ld(tmp_path / 'other_tool.ld', [
        ('Ground Speed', 'km/h', 20, 3, 2, (5, 3, 2, 1), speed_raw),
        ('Throttle Pos', '%', 20, 7, 2, (0, 1, 1, 0), [50.0] * n),  # float16
        ('Brake Pos', '%', 20, 5, 4, (0, 1, 1, 2), [1250] * n),  # int32, 2 decimals: 12.5 %
        ('Engine RPM', 'rpm', 20, 0, 2, (0, 1, 1, 0), [9000 + i for i in range(n)]),
        ('Gear', '', 10, 3, 2, (0, 1, 1, 0), [3] * 10 + [4] * 10),
        ('Water Temp', 'C', 2, 7, 4, (0, 1, 1, 0), [90.0] * 4),
    ], header={'driver': 'Someone', 'vehicle': 'ks_car', 'venue': 'spa', 'date': '02/13/2026', 'time': '10:20'})


def test_a_log_written_by_another_tool_is_read(tmp_path):
    df, notes = quiet(load_session, another_tools_log(tmp_path))
    assert any('Water Temp' in n for n in notes), 'a channel f1twin does not know is reported'
    assert len(df) == 40 and np.allclose(np.diff(df['session_time_s']), 0.05)
    np.testing.assert_allclose(df['speed_kmh'], [(r / 2 * 0.1 + 5) * 3 for r in range(1000, 1400, 10)], rtol=1e-6)
    assert (df['throttle'] == 0.5).all() and np.allclose(df['brake'], 0.125)
    assert df['gear'].tolist() == [3] * 20 + [4] * 20, '10 Hz gear held on the 20 Hz grid'
    assert df['rpm'].tolist() == list(range(9000, 9040))
    assert (df['completed_laps'] == 0).all() and (df['current_lap_time_ms'] == np.arange(40) * 50).all(), 'one stint'
    v = df['speed_kmh'].to_numpy(np.float64) / 3.6
    assert df['distance_total'].iloc[-1] == pytest.approx(((v[1:] + v[:-1]) / 2 * 0.05).sum(), rel=1e-9), 'from the speed'
    m = session_meta(df)
    assert (m.driver, m.car, m.track, m.session_id) == ('Someone', 'ks_car', 'spa', 'other_tool')
    assert m.start_time == '2026-02-13T10:20:00+00:00', 'mm/dd/yyyy where the day shows it'
    log = motec.read_ld_log(tmp_path / 'other_tool.ld')
    assert log.channel('Water Temp').values.tolist() == [90.0] * 4, 'every channel stays available as stored'


def test_a_log_without_an_essential_channel_names_it(tmp_path):
    p = handmade_ld(tmp_path / 'nogear.ld', [('Ground Speed', 'km/h', 10, 7, 4, (0, 1, 1, 0), [100.0] * 5),
                                             ('Throttle Pos', '%', 10, 7, 4, (0, 1, 1, 0), [0.0] * 5),
                                             ('Brake Pos', '%', 10, 7, 4, (0, 1, 1, 0), [0.0] * 5)])
    with pytest.raises(SessionFileError, match=r'no Engine RPM or Gear channel') as e: load_session(p)
    assert str(p) in str(e.value)


# --- bad logs: one clear error naming the file, never a numpy/struct traceback

def damaged(tmp_path, how):
    df = prepare_session(load_session(DEMO))
    good = motec.write_ld(df, tmp_path / 'good.ld').read_bytes()
    bad = bytearray(good)
    first = struct.unpack_from('<I', good, 8)[0]
    name = tmp_path / 'bad.ld'
    if how == 'truncated': bad = bad[:len(bad) * 2 // 3]
    elif how == 'header only': bad = bad[:900]
    elif how == 'empty': bad = b''
    elif how == 'wrong marker': struct.pack_into('<I', bad, 0, 0x41)
    elif how == 'record outside': struct.pack_into('<I', bad, 8, len(good) + 10)
    elif how == 'data outside': struct.pack_into('<I', bad, first + 8, len(good) - 4)
    elif how == 'loop': struct.pack_into('<I', bad, first + 4, first)
    elif how == 'rate 0': struct.pack_into('<H', bad, first + 22, 0)
    elif how == 'unknown type': struct.pack_into('<H', bad, first + 18, 9)
    elif how == 'scale 0': struct.pack_into('<h', bad, first + 28, 0)
    name.write_bytes(bytes(bad))
    (tmp_path / 'good.ldx').rename(name.with_suffix('.ldx'))
    return name


@pytest.mark.parametrize('how,expected', [
    ('truncated', 'lie outside the file'), ('header only', 'truncated file'), ('empty', 'truncated file'),
    ('wrong marker', 'not a MoTeC .ld log (it starts with 41 00 00 00'), ('record outside', 'channel record 1 at byte'),
    ('data outside', "channel 'Ground Speed': its 3436 samples"), ('loop', 'loops back'), ('rate 0', '0 Hz'),
    ('unknown type', 'unknown type (kind 9'), ('scale 0', 'scale 0'),
])
def test_a_damaged_log_is_one_clear_error(tmp_path, how, expected):
    p = damaged(tmp_path, how)
    with pytest.raises(SessionFileError) as e: load_session(p)
    assert str(p) in str(e.value) and expected in str(e.value)
    r = run('laps', p)
    assert r.returncode == 2 and r.stderr.startswith(f'f1twin: error: {p}') and len(r.stderr.splitlines()) == 1


@pytest.mark.parametrize('ldx,expected', [
    ('Beacons 15.42 97.237\n', 'not an XML .ldx file'),
    ('<?xml version="1.0"?><Other/>', 'not a MoTeC .ldx file'),
    (motec.ldx_text([15_420_000]).replace('Time="1.542e+07"', 'Time="later"'), "Time='later'"),
    (motec.ldx_text([15_420_000]).replace('Time="1.542e+07"', 'Time="-5"'), "Time='-5'"),
])
def test_a_bad_ldx_is_one_clear_error(tmp_path, ldx, expected):
    ld = motec.write_ld(prepare_session(load_session(DEMO)), tmp_path / 'x.ld')
    ld.with_suffix('.ldx').write_text(ldx)
    with pytest.raises(SessionFileError) as e: load_session(ld)
    assert str(ld.with_suffix('.ldx')) in str(e.value) and expected in str(e.value)


def test_an_ldx_without_beacons_is_one_stint(tmp_path):
    df = prepare_session(load_session(DEMO))
    g = motec.resample(df)
    chans = [motec.LdChannel(c.name, c.unit, 10, g[c.field].to_numpy(np.float64) / c.factor(c.unit), store=c.store, dec=c.dec)
             for c in motec.CHANNELS if c.field in motec.ESSENTIAL]  # no lap channels
    (tmp_path / 'x.ld').write_bytes(motec.ld_bytes(motec.LdLog({}, chans)))
    (tmp_path / 'x.ldx').write_text(motec.ldx_text([]))
    back = load_session(tmp_path / 'x.ld')
    assert (back['completed_laps'] == 0).all() and back['current_lap_time_ms'].is_monotonic_increasing


# --- i2 CSV exports

def i2_export(df, path, speed='km/h', pedals='%', drop=()):
    """A MoTeC i2 'Export Data' CSV of a recording, written here in i2's layout (header pairs in columns 1-2 and 5-6,
    beacons in one cell, names and units rows, every cell quoted), with ACTI's channel names: not by f1twin.motec.
    The samples are the recording's own (irregular, about 10 Hz)."""
    t = df['session_time_s'].to_numpy()
    rows = lap_starts(df)
    crossings = t[rows] - df['current_lap_time_ms'].to_numpy()[rows] / 1000
    v = df['speed_kmh'].to_numpy(np.float64) / (3.6 if speed == 'm/s' else 1)
    k = 100 if pedals == '%' else 1
    chans = [('Time', 's', t, '%.3f'), ('Distance', 'm', df['distance_total'] - df['distance_total'].iloc[0], '%.3f'),
             ('ABS Active', '', np.zeros(len(t)), '%.4f'), ('Brake Pos', pedals.replace('0-1', ''), df['brake'] * k, '%.6f'),
             ('Car Coord X', 'm', -df['car_x'], '%.6f'), ('Car Coord Y', 'm', df['car_z'], '%.6f'),
             ('Car Coord Z', 'm', df['car_y'], '%.6f'), ('Engine RPM', 'rpm', df['rpm'], '%d'), ('Gear', '', df['gear'], '%.3f'),
             ('Ground Speed', speed, v, '%.6f'), ('In Pit', '', df['in_pit'].astype(int), '%d'),
             ('Lap Time', 's', df['current_lap_time_ms'] / 1000, '%.3f'), ('Last Lap Time', 's', df['last_lap_time_ms'] / 1000, '%.3f'),
             ('Last Sector Time', 's', df['last_sector_time_ms'] / 1000, '%.3f'),
             ('Session Lap Count', '', df['completed_laps'], '%.4f'), ('Steering Angle', 'deg', np.degrees(df['steering']), '%.5f'),
             ('Throttle Pos', pedals.replace('0-1', ''), df['throttle'] * k, '%.6f'), ('Tire Temp Core FL', 'C', np.full(len(t), 85.0), '%.2f')]
    chans = [c for c in chans if c[0] not in drop]
    head = ['"Format","MoTeC CSV File",,,"Workbook",""', '"Venue","monza",,,"Worksheet",""',
            '"Vehicle","rss_formula_hybrid_2022",,,"Vehicle Desc",""', '"Driver","Test Driver",,,"Engine ID",""', '"Device","ADL"',
            '"Comment","Tires: Soft (S)",,,"Session","PRACTICE"', '"Log Date","12/09/2025",,,"Origin Time","0.000","s"',
            '"Log Time","16:54:33",,,"Start Time","0.000","s"', '"Sample Rate","10.000","Hz",,"End Time","%.3f","s"' % t[-1],
            '"Duration","%.3f","s",,"Start Distance","0","m"' % t[-1], '"Range","entire outing",,,"End Distance","0","m"',
            '"Beacon Markers","' + ''.join('%.3f ' % c for c in crossings) + '"', '', '',
            ','.join(f'"{c[0]}"' for c in chans), ','.join(f'"{c[1]}"' for c in chans), '', '']
    body = pd.DataFrame({c[0]: np.char.mod(c[3], np.asarray(c[2])) for c in chans})
    path.write_text('\r\n'.join(head) + '\r\n' + body.to_csv(header=False, index=False, quoting=csv.QUOTE_ALL, lineterminator='\r\n'))
    return path


@pytest.mark.parametrize('speed,pedals', [('km/h', '%'), ('m/s', '%'), ('km/h', '0-1'), ('m/s', '0-1')])
def test_i2_exports_load_with_the_games_lap_times(session, tmp_path, speed, pedals):
    path, df = session
    back, notes = quiet(load_session, i2_export(df, tmp_path / 'export.csv', speed, pedals))
    assert timed_laps(back) == (GAME[path], SECTORS[path])
    pd.testing.assert_frame_equal(lap_table(back)[LAP_COLS], lap_table(df)[LAP_COLS])
    np.testing.assert_allclose(back['speed_kmh'], df['speed_kmh'], atol=1e-4)
    np.testing.assert_allclose(back['throttle'], df['throttle'], atol=1e-6)
    np.testing.assert_allclose(back['brake'], df['brake'], atol=1e-6)
    np.testing.assert_allclose(back['steering'], df['steering'], atol=1e-6)
    np.testing.assert_allclose(back[['car_x', 'car_y', 'car_z']], df[['car_x', 'car_y', 'car_z']], atol=1e-4)
    assert (back['gear'] == df['gear']).all() and (back['rpm'] == df['rpm']).all()
    assert notes == [f'{tmp_path / "export.csv"}: 2 channel(s) not in the f1twin record, not loaded: ABS Active, '
                     'Tire Temp Core FL (all channels: f1twin.motec.read_i2_table)']
    m = session_meta(back)
    assert (m.track, m.car, m.driver, m.start_time) == ('monza', 'rss_formula_hybrid_2022', 'Test Driver', '2025-09-12T16:54:33+00:00')
    assert m.source == 'motec-csv:export.csv' and m.sample_rate_hz == 10 and back['tyre_compound'].iloc[0] == 'Soft (S)'


@pytest.mark.parametrize('channel', ['Ground Speed', 'Throttle Pos', 'Brake Pos', 'Engine RPM', 'Gear'])
def test_an_i2_export_without_an_essential_channel_names_it(tmp_path, channel):
    p = i2_export(prepare_session(load_session(OTHER)), tmp_path / 'x.csv', drop=(channel,))
    with pytest.raises(SessionFileError, match=f'no {channel} channel') as e: quiet(load_session, p)
    assert str(p) in str(e.value)


def test_the_hand_written_sample_in_the_layout_of_a_real_acti_export():
    df, notes = quiet(load_session, SAMPLE)
    assert notes == [f'{SAMPLE}: 3 channel(s) not in the f1twin record, not loaded: ABS Active, Lap Time2, Tire Temp Core FL '
                     '(all channels: f1twin.motec.read_i2_table)']
    t = lap_table(df)
    assert t['lap_time_ms'].tolist()[:2] == [1234, 1266] and t['partial'].tolist() == [False, False, True]
    assert t[['s1_ms', 's2_ms', 's3_ms']].iloc[:2].to_numpy().tolist() == [[400, 417, 417], [400, 433, 433]]
    assert df['completed_laps'].tolist() == [0] * 7 + [1] * 6 + [2] * 3, 'the 00.000 beacon is the log starting at the line'
    assert df['current_lap_time_ms'].tolist()[6:9] == [1200, 166, 366], 'the lap clock from the beacons, to the ms'
    assert df['gear'].iloc[0] == 6 and df['throttle'].iloc[0] == 1.0 and df['brake'].max() == pytest.approx(0.355)
    assert df['g_lat'].iloc[-1] == pytest.approx(0.169) and df['g_lon'].iloc[0] == pytest.approx(-0.8), "ACTI's CG Accel, in G"
    assert (df['car_x'].iloc[0], df['car_z'].iloc[0], df['car_y'].iloc[0]) == (100.0, 50.0, 0.5), "ACTI's X mirrored, Z up"
    assert df['distance_total'].iloc[-1] == 167, "i2's Distance column"
    m = session_meta(df)
    assert (m.track, m.car, m.driver, m.start_time, m.sample_rate_hz) == ('test_ring', 'ks_test_car', 'A. Driver',
                                                                          '2026-02-04T17:42:00+00:00', 5.0)
    assert df['tyre_compound'].iloc[0] == 'Soft (C3)'


def test_i2_export_units_are_honoured_not_guessed(tmp_path):
    text = SAMPLE.read_text()
    units_line = next(l for l in text.splitlines() if l.startswith('"s","m"'))
    (tmp_path / 'ms2.csv').write_text(text.replace(units_line, units_line.replace('"G","G"', '"m/s2","m/s2"')))
    df, _ = quiet(load_session, tmp_path / 'ms2.csv')
    assert df['g_lat'].iloc[-1] == pytest.approx(0.169 / 9.80665)
    (tmp_path / 'bad.csv').write_text(text.replace(units_line, units_line.replace('"km/h"', '"knots"')))
    with pytest.raises(SessionFileError, match=r"channel 'Ground Speed' is in 'knots'; expected 'km/h' or"): quiet(load_session, tmp_path / 'bad.csv')
    (tmp_path / 'pct.csv').write_text(text.replace(units_line, units_line.replace('"%","G"', '"","G"')))
    df, notes = quiet(load_session, tmp_path / 'pct.csv')
    assert df['brake'].max() == pytest.approx(0.355) and any("'Brake Pos' has no unit and values up to 35.5" in n for n in notes)


@pytest.mark.parametrize('edit,expected', [
    (lambda s: s.replace('"1.200","72"', '"1.200x","72"'), "line 25, channel 'Time': expected a number, got '1.200x'"),
    (lambda s: s.replace('"7.000","213.51"', '"seven","213.51"'), "line 25, channel 'Gear': expected a number, got 'seven'"),
    (lambda s: s.replace('"00.000 1.234 2.500 "', '"00.000 1.234 later "'), "Beacon Markers '00.000 1.234 later': expected"),
    (lambda s: s.replace('"1.400","83"', '"1.000","83"'), 'line 26: Time 1.0 after 1.2; expected times that go forward'),
    (lambda s: '\r\n'.join(s.splitlines()[:14]), 'no channel-name row starting with "Time"'),
])
def test_a_bad_i2_export_is_one_clear_error(tmp_path, edit, expected):
    p = tmp_path / 'bad.csv'
    p.write_text(edit(SAMPLE.read_text()))
    with pytest.raises(SessionFileError) as e: quiet(load_session, p)
    assert str(p) in str(e.value) and expected in str(e.value)


def test_write_i2_csv_is_read_back_with_the_games_lap_times(session, tmp_path):
    path, df = session
    p = motec.write_i2_csv(df, tmp_path / 'x.csv')
    header, table, units = motec.read_i2_table(p)
    assert header['Beacon Markers'].split()[1:] == ['%.3f' % x for x in np.cumsum(GAME[path]) / 1000 + float(header['Beacon Markers'].split()[0])]
    assert units['Ground Speed'] == 'km/h' and units['Throttle Pos'] == '%' and units['Lap Time'] == 's'
    back = load_session(p)
    assert timed_laps(back) == (GAME[path], SECTORS[path])
    ld = motec.read_ld(motec.write_ld(df, tmp_path / 'x.ld'))
    for c in ('current_lap_time_ms', 'last_lap_time_ms', 'completed_laps', 'sector', 'last_sector_time_ms', 'gear', 'rpm'):
        np.testing.assert_array_equal(back[c], ld[c], err_msg=c)
    for c in ('speed_kmh', 'throttle', 'steering', 'car_x', 'distance_total'):  # 9 digits give back the float32 in the file
        np.testing.assert_allclose(back[c], ld[c], rtol=2.4e-7, err_msg=c)


def test_an_i2_export_without_beacon_markers_or_lap_time_takes_the_laps_from_its_lap_counter(tmp_path):
    p = motec.write_i2_csv(prepare_session(load_session(DEMO)), tmp_path / 'x.csv', rate=20)
    rows = list(csv.reader(p.open(newline='')))
    at = next(i for i, r in enumerate(rows) if r[:1] == ['Time'])
    gone = rows[at].index('Lap Time')
    rows = [r for r in rows[:at] if r[:1] != ['Beacon Markers']] + [r[:gone] + r[gone + 1:] if r else r for r in rows[at:]]
    with (tmp_path / 'bare.csv').open('w', newline='') as f: csv.writer(f, quoting=csv.QUOTE_ALL).writerows(rows)
    back, notes = quiet(load_session, tmp_path / 'bare.csv')
    assert any('line crossing(s) taken from the Session Lap Count channel' in n for n in notes), notes
    assert timed_laps(back)[0] == GAME[DEMO]


# --- the command line

def run(*args):
    return f1twin(*args, cwd=ROOT)  # in this process (tests/clirun.py)


def test_cli_convert_to_ld_then_laps_info_and_back_to_parquet(tmp_path):
    ld = tmp_path / 'monza.ld'
    r = run('convert', DEMO, ld)
    assert r.returncode == 0 and r.stdout.split() == [str(ld), str(ld.with_suffix('.ldx'))], r.stderr
    laps = run('laps', ld)
    assert laps.returncode == 0 and laps.stdout.startswith('monza.ld: monza, 3436 samples at 10.0 Hz')
    rows = {l.split()[0].rstrip('*'): l.split()[1:5] for l in laps.stdout.splitlines()[2:] if l.split()[0].rstrip('*').isdigit()}
    original = {l.split()[0].rstrip('*'): l.split()[1:5] for l in run('laps', DEMO).stdout.splitlines()[2:]
                if l.split()[0].rstrip('*').isdigit()}
    assert rows == original, 'lap and sector times as the game timed them'
    info = run('info', ld)
    assert info.returncode == 0 and 'source: ld:monza.ld' in info.stdout and 'timed laps: 4, best 1:21.186' in info.stdout
    pq = tmp_path / 'back.parquet'
    assert run('convert', ld, pq).returncode == 0
    assert run('laps', pq).stdout.splitlines()[1:] == laps.stdout.splitlines()[1:]
    csv_out = tmp_path / 'i2.csv'
    assert run('convert', ld, csv_out, '--i2').returncode == 0 and csv_out.read_text().startswith('"Format","MoTeC CSV File"')
    assert run('laps', csv_out).stdout.splitlines()[1:] == laps.stdout.splitlines()[1:]
    r = run('convert', DEMO, tmp_path / 'x.parquet', '--rate', '20')
    assert r.returncode == 2 and '--rate applies to MoTeC output only' in r.stderr
