"""Sessions unlike the two bundled ones, as other tools and other drivers make them (from a sweep with MoTeC files of
other tools and varied sessions): each once crashed, gave a wrong figure, or wrote a file f1twin could not read back."""
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clirun import f1twin
from f1twin.io import export_csv, load_session
from f1twin.laps import lap_table, sector_table, theoretical_best_ms

ROOT = Path(__file__).resolve().parent.parent
A = ROOT / 'data' / 'telemetry_2025-09-12_19-00-17.csv'
B = ROOT / 'data' / 'telemetry_2025-09-13_16-18-26.csv'
A_LAPS = [81817, 81186, 82539, 82165]


def test_a_csv_written_without_steering_or_grip_reads_back(tmp_path):
    """A MoTeC log converted to CSV has no steering or grip values: the CSV has empty cells there, the last of the row
    among them. That is not a row cut short (a needed column other rows have values in, left empty at the end)."""
    df = load_session(A)
    df['steering'], df['surface_grip'] = np.nan, np.nan
    p = export_csv(df, tmp_path / 'no_grip.csv')
    assert p.read_text().splitlines()[1].endswith(',')
    back = load_session(p)
    assert lap_table(back)['lap_time_ms'].dropna().tolist() == A_LAPS
    assert back['surface_grip'].isna().all() and back['steering'].isna().all()
    lines = p.read_text().splitlines()
    cut = tmp_path / 'cut.csv'
    cut.write_text('\n'.join(lines[:100] + [','.join(lines[100].split(',')[:12])] + lines[101:]) + '\n')
    r = f1twin('laps', cut)
    assert r.returncode == 2 and 'line 101: only its first 12 of 24 fields have a value' in r.stderr, r.stderr


def test_no_sector_times_is_no_theoretical_best_and_one_lap_no_spread(tmp_path):
    df = load_session(A).assign(last_sector_time_ms=0)
    st = sector_table(lap_table(df))
    assert len(st) and np.isnan(theoretical_best_ms(st))
    p = export_csv(df, tmp_path / 'nosectors.csv')
    out = f1twin('laps', p).stdout.splitlines()[-1]
    assert 'theoretical best - (no sector times)' in out and '0:00.000' not in out
    b = load_session(B)
    one = b.iloc[:int(lap_table(b)['samples'].iloc[:2].sum()) + 20]  # the out-lap and one timed lap
    out = f1twin('laps', export_csv(one, tmp_path / 'one.csv')).stdout.splitlines()[-1]
    assert 'spread (std) - over 1 representative lap' in out and 'nan' not in out


def off_track(df, lap: int, at_m: float = 1500.0):
    """`df` with an off at `at_m` in `lap`: the car slows to a near stop and leaves the line by up to 40 m."""
    from f1twin.laps import prepare_session, split_laps
    df = prepare_session(df)
    s = split_laps(df)
    m = ((s['lap'] == lap) & (s['distance'] > at_m - 200) & (s['distance'] < at_m + 200)).to_numpy()
    d = s['distance'][m].to_numpy()
    df.loc[m, 'speed_kmh'] = np.minimum(df['speed_kmh'][m], np.abs(d - at_m) / 200 * 280).astype('f4')
    df.loc[m, 'car_x'] = (df['car_x'][m] + 40 * np.sin(np.pi * (d - at_m + 200) / 400)).astype('f4')
    return df


@pytest.mark.parametrize('path,lap', [(B, 1), (A, 3)])
def test_an_off_track_moment_is_an_unnamed_corner_in_its_place(tmp_path, path, lap):
    """An off between two named corners was put after all the named ones: the corner zones, built in order along the
    lap, got an empty one (ValueError from numpy) and `corners` and the report failed."""
    from f1twin.corners import corner_table
    from f1twin.io import save_session
    df = off_track(load_session(path), lap)
    t = corner_table(df)
    rows = t.reset_index()
    # corners are found on the laps' median: in a 2-lap session the off is one, in a 4-lap one it is outvoted
    assert ('unnamed at 1500 m' in set(rows['name'])) == (path == B)
    one = rows[rows['lap'] == rows['lap'].iloc[0]]
    assert one['apex_m'].is_monotonic_increasing, 'corners in their order along the lap'
    p = save_session(df, tmp_path / 'off.parquet')
    r = f1twin('corners', p)
    assert r.returncode == 0 and ('unnamed at 1500 m' in r.stdout) == (path == B), r.stderr
    r = f1twin('corners', p, '--lap', lap)  # the lap with the off on its own: the off is a corner
    assert r.returncode == 0 and 'unnamed at 1500 m' in r.stdout, r.stderr


def test_two_corners_found_near_one_named_corner_do_not_share_its_name():
    from f1twin.corners import _name_corners
    found = pd.DataFrame({'name': ['T1', 'T2', 'T3'], 'apex_m': [985.0, 1040.0, 2150.0], 'min_speed_kmh': [80.0, 90.0, 108.0]})
    named = _name_corners(found, [('T1/Rettifilo', 0.17), ('Roggia', 0.37)], 5793.0)
    assert named['name'].tolist() == ['T1/Rettifilo', 'unnamed at 1040 m', 'Roggia']


def test_a_log_whose_game_clocks_are_all_zero_has_no_lap_of_no_time(tmp_path):
    """The game's lap, sector and best times all 0 (a tool that does not log them): the session clock, rebuilt from the
    lap clock, is 0 throughout, and laps 'derived' from it were 0:00.000, the library's best lap of all time."""
    from f1twin.library import LapLibrary
    df = load_session(A).assign(current_lap_time_ms=0, last_lap_time_ms=0, best_lap_time_ms=0, last_sector_time_ms=0)
    p = export_csv(df, tmp_path / 'lib' / 'zero.csv')
    t = lap_table(load_session(p))
    assert t['lap_time_ms'].isna().all() and (t['timing'] == '').all()
    r = f1twin('laps', p)
    assert r.returncode == 0 and '0:00.000' not in r.stdout and r.stdout.rstrip().endswith('no complete timed lap')
    r = f1twin('corners', p)
    assert r.returncode == 2 and 'no complete timed lap' in r.stderr
    with LapLibrary(tmp_path / 'lib') as lib:
        lib.update(progress=False)
        assert not (lib.sql('SELECT lap_time_ms FROM laps')['lap_time_ms'].fillna(1) <= 0).any()
    kept = load_session(A).assign(last_lap_time_ms=0)  # the session clock kept (a Parquet file): laps derived from it
    assert np.allclose(lap_table(kept)['lap_time_ms'].dropna(), A_LAPS, atol=60)


def ld_with_counts(tmp_path, counts) -> Path:
    """A MoTeC log of session A written by f1twin, with the sample count of its channels set by `counts(name)` (None:
    as written); the .ldx beside it."""
    import struct
    from f1twin.motec import write_ld
    p = write_ld(load_session(A), tmp_path / 'a.ld')
    b = bytearray(p.read_bytes())
    at = struct.unpack_from('<I', b, 8)[0]
    while at:
        name = bytes(b[at + 32:at + 64]).split(b'\0')[0].decode()
        n = counts(name)
        if n is not None: struct.pack_into('<I', b, at + 12, n)
        at = struct.unpack_from('<I', b, at + 4)[0]
    p.write_bytes(bytes(b))
    return p


def test_motec_logs_with_channels_without_samples(tmp_path):
    p = ld_with_counts(tmp_path, lambda name: 0)
    r = f1twin('laps', p)
    assert r.returncode == 2 and re.search(r'a\.ld: no samples in any of its \d+ channel\(s\)$', r.stderr.strip()), r.stderr
    p = ld_with_counts(tmp_path, lambda name: 0 if name == 'Brake Pos' else None)
    r = f1twin('laps', p)
    assert r.returncode == 2 and r.stderr.strip().endswith(': channel Brake Pos has no samples; f1twin needs it'), r.stderr


def test_an_upper_case_ldx_is_the_logs_laps(tmp_path):
    from f1twin.motec import write_ld
    p = write_ld(load_session(A), tmp_path / 'a.ld')
    up = p.rename(tmp_path / 'A.LD')
    p.with_suffix('.ldx').rename(tmp_path / 'A.LDX')
    r = f1twin('laps', up)
    assert r.returncode == 0 and 'beacon' not in r.stderr and '1:21.186' in r.stdout, r.stderr


def i2_variant(tmp_path, name, edit) -> Path:
    """Session A exported as an i2 CSV by f1twin, then each line passed through `edit(number, line)`."""
    from f1twin.motec import write_i2_csv
    p = write_i2_csv(load_session(A), tmp_path / 'a_i2.csv')
    lines = p.read_text().splitlines()
    out = tmp_path / name
    out.write_text('\n'.join(edit(i, l) for i, l in enumerate(lines)) + '\n')
    return out


def laps_of(path) -> list[int]:
    return [int(x) for x in lap_table(load_session(path))['lap_time_ms'].dropna()]


def test_i2_exports_as_other_tools_and_locales_write_them(tmp_path):
    from f1twin.motec import read_i2_table
    base = laps_of(i2_variant(tmp_path, 'base.csv', lambda i, l: l))
    assert base == A_LAPS
    start = read_i2_table(tmp_path / 'base.csv')[1].attrs['first_line']
    # a separator ending every data row (one more cell than channel names): was every column shifted by one
    trailing = i2_variant(tmp_path, 'trailing.csv', lambda i, l: l + ',' if i + 1 >= start and l else l)
    assert laps_of(trailing) == A_LAPS
    # a space after each comma of the header ('"Format", "MoTeC CSV File"'): was read as the game's CSV
    spaced = i2_variant(tmp_path, 'spaced.csv', lambda i, l: l.replace('","', '", "') if i < start - 1 else l)
    assert spaced.read_text().startswith('"Format", "MoTeC CSV File"') and laps_of(spaced) == A_LAPS
    # a European export: ';' between fields, a decimal comma, in the beacons too (was 'expected times in seconds')
    def euro(i, l):
        if l.startswith('"Beacon Markers"'): return l.replace('.', ',').replace('","', '";"')
        return l.replace(',', ';').replace('.', ',')
    eu = i2_variant(tmp_path, 'euro.csv', euro)
    assert '"Beacon Markers";"' in eu.read_text() and laps_of(eu) == A_LAPS


def test_a_log_without_positions_says_so_and_its_report_leaves_out_corners_and_maps(tmp_path):
    """Positions all 0 (a tool that does not log them): corners said '0 corners' and the report's maps were one dot."""
    from f1twin.report import make_report
    p = export_csv(load_session(B).assign(car_x=0.0, car_y=0.0, car_z=0.0), tmp_path / 'nopos.csv')
    r = f1twin('corners', p)
    assert r.returncode == 2 and 'no car positions in these laps' in r.stderr, r.stderr
    from f1twin.circuit import CircuitError, circuit_map
    with pytest.raises(CircuitError, match='car_x/car_z do not change'):
        circuit_map(load_session(p))
    rep = make_report(p, tmp_path / 'out')
    page = rep.html.read_text(encoding='utf-8')
    assert 'No car positions in this session' in page and '1:21.790' in page
    import nbformat
    streams = [o for c in nbformat.read(rep.notebook, 4).cells for o in c.get('outputs', []) if o.get('name') == 'stderr']
    assert not streams, 'no warnings printed into the page'


def test_a_reference_lap_of_another_track_or_car_is_refused(tmp_path):
    from f1twin.io import save_session
    b = load_session(B)
    for key, value in (('track', 'brands_hatch'), ('car', 'gt3')):
        other = b.copy()
        other.attrs = {**b.attrs, 'f1twin': {**b.attrs['f1twin'], key: value}}
        p = save_session(other, tmp_path / f'{key}.parquet')
        r = f1twin('corners', A, '--ref', f'{p}:2')
        assert r.returncode == 2 and f'the laps are of different {key}s' in r.stderr, r.stderr
    r = f1twin('corners', A, '--ref', f'{B}:2')  # the same track and car: the other session's lap is the reference
    assert r.returncode == 0 and 'reference' in r.stdout, r.stderr


def test_a_channel_the_source_never_recorded_is_said_once_not_a_critical_anomaly(tmp_path):
    """A MoTeC log without a steering channel: steering is NaN throughout; 'critical: steering is NaN in 25000 samples'
    was every anomaly list's headline. NaN in part of a session stays what it was (critical)."""
    from f1twin.anomalies import detect
    from f1twin.io import save_session
    df = load_session(A)
    ev = detect(df.assign(steering=np.nan))
    steer = ev[ev['detail'].str.startswith('steering')]
    assert steer[['kind', 'severity']].values.tolist() == [['non-finite', 'info']]
    assert steer['detail'].iloc[0] == 'steering has no value in any sample: the source did not record it'
    part = df.copy()
    part.loc[part.index[100:200], 'steering'] = np.nan
    ev = detect(part)
    assert (ev[ev['detail'].str.startswith('steering')]['severity'] == 'critical').all() and len(ev) > 0


@pytest.mark.parametrize('out,blocked', [('x.ld', 'x.ldx'), ('x.ld', 'x.ld'), ('x.csv', 'x.meta.json'), ('x.parquet', 'x.parquet')])
def test_convert_checks_every_file_it_writes_before_writing_any(tmp_path, out, blocked):
    """A folder where the .ldx (or the CSV's meta.json) goes: was the .ld written, then an error naming a temporary
    file ('.x.ldx.90b5b2bb.part -> x.ldx: Is a directory')."""
    (tmp_path / blocked).mkdir()
    r = f1twin('convert', B, tmp_path / out)
    assert r.returncode == 2 and r.stderr.strip().endswith(f'{tmp_path / blocked}: is a folder; give the name of a file to write'), r.stderr
    assert [p.name for p in tmp_path.iterdir()] == [blocked], 'nothing written'


def test_motec_units_other_loggers_use(tmp_path):
    from f1twin.motec_ld import BY_FIELD
    assert BY_FIELD['speed_kmh'].factor('km/hr') == BY_FIELD['speed_kmh'].factor('KPH') == 1.0
    assert BY_FIELD['rpm'].factor('') == BY_FIELD['rpm'].factor('r/min') == 1.0  # an RPM channel without a unit


def test_a_percent_channel_holding_fractions_is_read_as_fractions(tmp_path):
    """Throttle labelled % with values 0..1 (a logger that writes fractions under a % label): was divided by 100, so
    the car never passed 1 % throttle."""
    from f1twin.motec import read_ld, write_ld
    df = load_session(A)
    p = write_ld(df.assign(throttle=df['throttle'] / 100), tmp_path / 'frac.ld')  # written as 0..1, labelled %
    with pytest.warns(UserWarning, match="'Throttle Pos' is labelled % but its values stay within 0..1"):
        back = read_ld(p)
    full = lap_table(back)['full_throttle_pct'].iloc[1:-1]
    assert (full > 60).all(), full


@pytest.mark.parametrize('date,time,iso', [
    ('13/09/2025', '14:15:02', '2025-09-13T14:15:02+00:00'), ('2025-09-13', '14:15:02', '2025-09-13T14:15:02+00:00'),
    ('13/09/25', '2:15:02 PM', '2025-09-13T14:15:02+00:00'), ('09/13/2025', '12:05:00 AM', '2025-09-13T00:05:00+00:00'),
    ('13.09.2025', '12:30 pm', '2025-09-13T12:30:00+00:00'), ('yesterday', '14:15', '')])
def test_motec_log_dates_and_times_as_loggers_write_them(date, time, iso):
    """ISO dates and two-digit years were left blank (samples dated 1970); '2:15:02 PM' was read as 02:15."""
    from f1twin.motec import _start_time
    assert _start_time(date, time) == iso


def test_the_library_keeps_no_sectors_of_a_track_with_more_than_three(tmp_path):
    """A track with four sectors: the library kept s1-s3 and its theoretical best (their sum) was 13 s under the best lap."""
    from f1twin.io import save_session
    from f1twin.library import LapLibrary
    df = load_session(A)
    s = df['sector'].to_numpy().copy()
    s[(s == 2) & (df['current_lap_time_ms'].to_numpy() > 75_000)] = 3  # the last stretch a sector of its own
    four = df.assign(sector=s)
    assert [c for c in lap_table(four).columns if c.startswith('s') and c.endswith('_ms') and c[1:-3].isdigit()][-1] == 's4_ms'
    save_session(four, tmp_path / 'lib' / 'four.parquet')
    with LapLibrary(tmp_path / 'lib') as lib:
        lib.update(progress=False)
        best = lib.sql('SELECT min(best_lap_ms) AS b, min(theoretical_best_ms) AS t FROM sessions').iloc[0]
    assert best['b'] == 81186 and pd.isna(best['t'])


def test_a_renamed_copy_of_a_session_counts_once_in_the_library(tmp_path):
    """A CSV's session id is its file name: a copy under another name counted twice ('8 valid laps in 3 sessions')."""
    import shutil
    from f1twin.library import LapLibrary
    lib_dir = tmp_path / 'lib'
    lib_dir.mkdir()
    for name in ('telemetry_2025-09-13_16-18-26', 'monza_practice'):
        for ext in ('.csv', '.meta.json'): shutil.copy(B.with_suffix(ext), lib_dir / f'{name}{ext}')
    shutil.copy(A, lib_dir / A.name)
    shutil.copy(A.with_suffix('.meta.json'), lib_dir / A.with_suffix('.meta.json').name)
    with LapLibrary(lib_dir) as lib:
        lib.update(progress=False)
        row = lib.sql("SELECT count(*) AS laps FROM unique_laps WHERE valid").iloc[0]
        sessions = lib.sql('SELECT count(*) AS n FROM unique_sessions').iloc[0]['n']
    assert row['laps'] == 4 + 2 and sessions == 2
    r = f1twin('library', lib_dir)
    assert '6 valid laps in 2 session(s)' in r.stdout, r.stdout


def test_each_run_of_a_restarted_session_is_dated_as_it_ran_and_counted_once(tmp_path):
    """A session the game restarted, converted to MoTeC (a log per run): the second run's log had the first run's start
    time, and the library took it for the first run (its laps left out as duplicates)."""
    import shutil
    from f1twin.laps import split_runs
    from f1twin.library import LapLibrary
    a = load_session(A)
    two = pd.concat([a, a.assign(timestamp=a['timestamp'] + 1000)], ignore_index=True)
    two.attrs = a.attrs
    lib_dir = tmp_path / 'lib'
    src = export_csv(two, lib_dir / 'two.csv')
    shutil.copy(A.with_suffix('.meta.json'), src.with_suffix('.meta.json'))  # the track and car
    runs = split_runs(load_session(src))
    t0 = pd.Timestamp(a['timestamp'].iloc[0], unit='s', tz='UTC')
    assert [pd.Timestamp(r.attrs['f1twin']['start_time']) - t0 for r in runs][1] == pd.Timedelta(seconds=1000)
    r = f1twin('convert', src, tmp_path / 'out' / 'two.ld')
    assert r.returncode == 0, r.stderr
    for f in (tmp_path / 'out').iterdir(): shutil.copy(f, lib_dir / f.name)  # two-run1.ld/.ldx, two-run2.ld/.ldx
    with LapLibrary(lib_dir) as lib:
        lib.update(progress=False)
        laps = lib.sql('SELECT count(*) AS n FROM unique_laps WHERE valid').iloc[0]['n']
        sessions = lib.sql('SELECT count(*) AS n FROM unique_sessions').iloc[0]['n']
    assert (laps, sessions) == (8, 2), 'each run once: the CSV and its two logs hold the same two runs'
