"""Session files: the real recordings load right, Parquet round-trips, bad input gets one clear error."""
import os
import shutil
import subprocess
import warnings

import numpy as np
import pandas as pd
import pytest

from f1twin import shm
from f1twin.cli import main
from f1twin.io import (SessionCloseError, SessionFileError, SessionWriter, export_csv, load_session, read_parts,
                       recover_session, sample_session_path, save_session, session_meta)
from f1twin.schema import COLUMNS, SchemaError, SessionMeta, conform

DEMO = sample_session_path('telemetry_2025-09-12_19-00-17.csv')
OTHER = sample_session_path('telemetry_2025-09-13_16-18-26.csv')
LINES = DEMO.read_text().splitlines()


def write(tmp_path, text, name='bad.csv'):
    p = tmp_path / name
    p.write_text(text)
    return p


def error_of(path):
    with pytest.raises(SessionFileError) as e:
        load_session(path)
    msg = str(e.value)
    assert str(path) in msg, 'every error names the file'
    return msg


@pytest.mark.parametrize('path,rows,laps', [(DEMO, 3411, 4), (OTHER, 2021, 2)])
def test_real_sessions_load_as_records(path, rows, laps):
    df = load_session(path)
    assert list(df.columns) == list(COLUMNS) and len(df) == rows
    assert df['completed_laps'].max() == laps
    raw = pd.read_csv(path)
    np.testing.assert_array_equal(df['current_lap_time_ms'], raw['iCurrentTime_ms'])
    np.testing.assert_allclose(df['distance_total'], raw['DistanceTraveled_m'])
    np.testing.assert_allclose(df['car_x'], raw['CarX'], rtol=1e-6)
    m = session_meta(df)
    assert m.track == 'monza' and m.source == f'csv:{path.name}' and 9 < m.sample_rate_hz < 11
    assert m.start_time.startswith(path.stem[len('telemetry_'):len('telemetry_') + 10])


def test_distance_column_only_where_the_file_has_it():
    assert load_session(DEMO)['distance'].isna().all()
    assert load_session(OTHER)['distance'].notna().all()


def test_parquet_round_trip_keeps_records_and_metadata(tmp_path):
    df = load_session(DEMO)
    p = save_session(df, tmp_path / 'sub' / 'monza.parquet')
    back = load_session(p)
    pd.testing.assert_frame_equal(back, df)
    assert session_meta(back) == session_meta(df)
    assert sorted(x.name for x in p.parent.iterdir()) == ['monza.parquet']


def collector_records(df):
    """The records the collector appends: mapped from AC's pages, so flags are 0/1 ints, not bools."""
    phys, gfx, out = shm.Physics(), shm.Graphics(), []
    for i, rec in enumerate(df.to_dict('records')):
        shm.from_record_fields(rec, phys, gfx)
        r = shm.to_record_fields(phys, gfx)
        r.update(packet_id=i + 1, timestamp=1.7e9 + i / 10, session_time_s=rec['session_time_s'],
                 distance=rec['distance'], session_id='s1', car_id='rig1')
        out.append(r)
    return out


@pytest.mark.parametrize('csv', [False, True])
def test_session_writer_parts_and_file_equal_the_records(tmp_path, csv):
    """One-second parts (the first through pandas, later ones straight into Arrow) read back as one frame."""
    records = collector_records(load_session(DEMO))
    assert isinstance(records[0]['in_pit'], int)
    meta = SessionMeta(session_id='s1', car_id='rig1', track='monza')
    w = SessionWriter(tmp_path / 'rec.parquet', meta, csv_path=tmp_path / 'rec.csv' if csv else None)
    for i in range(0, len(records), 333):
        for r in records[i:i + 333]: w.append(r)
        assert w.flush() == len(records[i:i + 333])
    assert (w._schema is not None) != csv, 'without CSV, parts after the first skip pandas'
    expected = conform(pd.DataFrame(records))
    crashed = load_session(tmp_path / 'rec.parquet.parts')
    pd.testing.assert_frame_equal(crashed, expected)
    done = load_session(recover_session(tmp_path / 'rec.parquet.parts'))
    pd.testing.assert_frame_equal(done, expected)
    assert session_meta(done) == meta
    if csv: assert len(load_session(tmp_path / 'rec.csv')) == len(records)


def test_session_writer_bad_record_is_a_clear_error_and_nothing_is_lost(tmp_path):
    records = collector_records(load_session(DEMO).iloc[:700])
    w = SessionWriter(tmp_path / 'rec.parquet', SessionMeta(session_id='s1'))
    for r in records[:300]: w.append(r)
    w.flush()
    bad = dict(records[300], gear=float('nan'))
    for r in [bad, *records[301:600]]: w.append(r)
    with pytest.raises(SchemaError, match="'gear'"):
        w.flush()
    assert len(w._pending) == 300, 'the records stay queued for the next flush'
    w._pending.remove(bad)
    for r in records[600:]: w.append(r)
    assert w.flush() == 399
    pd.testing.assert_frame_equal(load_session(w.close()), conform(pd.DataFrame(records[:300] + records[301:])))


def test_session_files_follow_the_umask(tmp_path):
    """Session files, parts, CSV exports (and their .meta.json) and MoTeC logs get 0666 less the umask, like any new
    file (not mkstemp's 0600: .ld/.ldx files were 0600)."""
    from f1twin.motec import write_ld
    df = load_session(DEMO).iloc[:20]
    old = os.umask(0o002)
    try:
        saved = save_session(df, tmp_path / 'saved.parquet')
        w = SessionWriter(tmp_path / 'rec.parquet', session_meta(df))
        for r in df.to_dict('records'): w.append(r)
        w.flush()
        [part] = w.parts.glob('part-*.parquet')
        part_mode = part.stat().st_mode & 0o777
        closed = w.close()
        exported = export_csv(df, tmp_path / 'export.csv')
        ld = write_ld(load_session(DEMO), tmp_path / 'log.ld')
    finally:
        os.umask(old)
    files = (saved, closed, exported, exported.with_suffix('.meta.json'), ld, ld.with_suffix('.ldx'))
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in files}
    assert modes == {'saved.parquet': '0o664', 'rec.parquet': '0o664', 'export.csv': '0o664', 'export.meta.json': '0o664',
                     'log.ld': '0o664', 'log.ldx': '0o664'}
    assert part_mode == 0o664
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith('.')], 'no temporary file left behind'


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MB file system: a tmpfs mounted for the test (needs root, which the project's test machine has)."""
    d = tmp_path / 'disk'
    d.mkdir()
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', str(d)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f'cannot mount a 1 MB tmpfs for the disk-full tests ({r.stderr.strip()}); they need root')
    try:
        yield d
    finally:
        subprocess.run(['umount', '-l', str(d)], check=True)


def fill(disk, leave=0):
    """Fill the file system with a file, then give back `leave` bytes; returns the file."""
    filler = disk / 'filler'
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, bytes(4096))
    except OSError:
        pass
    finally:
        os.close(fd)
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def writer_with_parts(path, records, chunk=333):
    """A writer that flushed all the records but the last (incomplete) chunk, which stays in memory."""
    w = SessionWriter(path, SessionMeta(session_id='s1', car_id='rig1', track='monza'))
    full = len(records) - len(records) % chunk
    for i in range(0, full, chunk):
        for r in records[i:i + chunk]: w.append(r)
        w.flush()
    for r in records[full:]: w.append(r)
    return w


def test_disk_full_at_close_keeps_the_parts_and_says_how_to_recover(small_disk, tmp_path):
    """The final file does not fit (the last part does): nothing is removed, the message names `f1twin recover`."""
    records = collector_records(load_session(DEMO))
    w = writer_with_parts(small_disk / 'rec.parquet', records)
    assert w._pending, 'samples still in memory when close() starts'
    filler = fill(small_disk, leave=64 * 1024)
    with pytest.raises(SessionCloseError) as e:
        w.close()
    msg = str(e.value)
    assert 'No space left on device' in msg and f'f1twin recover {w.parts}' in msg
    assert not (small_disk / 'rec.parquet').exists()
    assert not [p for p in small_disk.iterdir() if p.name.startswith('.')], 'the temporary file is gone'
    pd.testing.assert_frame_equal(read_parts(w.parts), conform(pd.DataFrame(records)), obj='every sample in the parts')
    filler.unlink()
    assert main(['recover', str(w.parts)]) == 0
    pd.testing.assert_frame_equal(load_session(small_disk / 'rec.parquet'), conform(pd.DataFrame(records)))
    assert not w.parts.exists()


def test_disk_full_for_the_last_part_rescues_the_samples_in_memory(small_disk, tmp_path, monkeypatch):
    """Not even the last part fits: the samples in memory go to the rescue folder, and the message says where."""
    monkeypatch.setenv('F1TWIN_RESCUE_DIR', str(tmp_path / 'rescue'))
    records = collector_records(load_session(DEMO))
    w = writer_with_parts(small_disk / 'rec.parquet', records)
    n_pending = len(w._pending)
    filler = fill(small_disk)
    with pytest.raises(SessionCloseError) as e:
        w.close()
    rescued = e.value.rescued
    assert rescued is not None and rescued.is_relative_to(tmp_path / 'rescue') and rescued.exists()
    assert f'the last {n_pending} samples did not fit there and were saved to {rescued}' in str(e.value)
    assert f'f1twin recover {w.parts}' in str(e.value)
    filler.unlink()
    shutil.move(rescued, w.parts / rescued.name)  # what the message says to do
    pd.testing.assert_frame_equal(load_session(recover_session(w.parts)), conform(pd.DataFrame(records)))


def test_recover_command(tmp_path, capsys):
    records = collector_records(load_session(DEMO).iloc[:700])
    w = writer_with_parts(tmp_path / 'rec.parquet', records)
    w.flush()
    assert main(['recover', str(w.parts), str(tmp_path / 'out.parquet')]) == 0
    assert capsys.readouterr().out.strip() == f'{tmp_path / "out.parquet"}: 700 samples recovered'
    assert main(['recover', str(tmp_path / 'nowhere.parquet.parts')]) == 2
    assert capsys.readouterr().err == (f'f1twin: error: {tmp_path / "nowhere.parquet.parts"}: no such folder; expected '
                                       'the <session>.parquet.parts folder a recording left\n')
    with pytest.raises(SystemExit) as e:
        main(['recover', '--help'])
    assert e.value.code == 0 and 'PARTS_DIR' in capsys.readouterr().out


def test_csv_export_reads_back_identically(tmp_path):
    df = load_session(DEMO)
    back = load_session(export_csv(df, tmp_path / DEMO.name))
    pd.testing.assert_frame_equal(back.drop(columns='timestamp'), df.drop(columns='timestamp'))
    assert (back['timestamp'] == np.floor(df['timestamp'])).all()
    header = (tmp_path / DEMO.name).read_text().splitlines()[0]
    assert header == LINES[0], 'the export has the original column order'


def test_missing_file(tmp_path):
    assert error_of(tmp_path / 'nope.csv').endswith('no such file')


def test_directory(tmp_path):
    assert 'is a directory' in error_of(tmp_path)


def test_empty_file(tmp_path):
    assert 'empty file' in error_of(write(tmp_path, ''))


def test_header_only(tmp_path):
    assert 'no data rows' in error_of(write(tmp_path, LINES[0] + '\n'))


def test_missing_required_column(tmp_path):
    header = LINES[0].replace('iLastTime_ms,', '')
    rows = [','.join(v for i, v in enumerate(l.split(',')) if i != 10) for l in LINES[1:20]]
    msg = error_of(write(tmp_path, '\n'.join([header] + rows)))
    assert 'missing column(s) iLastTime_ms' in msg


def test_non_numeric_value_names_line_and_column(tmp_path):
    lines = LINES[:30]
    lines[7] = lines[7].replace(lines[7].split(',')[1], 'fast', 1)  # Speed_kmh on line 8
    msg = error_of(write(tmp_path, '\n'.join(lines)))
    assert "line 8, column Speed_kmh: expected a number, got 'fast'" in msg


def test_empty_value_in_an_integer_column(tmp_path):
    lines = LINES[:30]
    f = lines[4].split(',')
    f[8] = ''  # iCurrentTime_ms on line 5
    lines[4] = ','.join(f)
    assert 'line 5, column iCurrentTime_ms: empty, expected a whole number' in error_of(write(tmp_path, '\n'.join(lines)))


def test_bad_boolean(tmp_path):
    lines = LINES[:30]
    lines[3] = lines[3].replace(',False,False,', ',maybe,False,')
    assert "line 4, column IsInPit: expected True or False, got 'maybe'" in error_of(write(tmp_path, '\n'.join(lines)))


def test_extra_field_mid_file(tmp_path):
    lines = LINES[:30]
    lines[9] += ',1.0'
    assert 'line 10 has 25 fields, expected 24' in error_of(write(tmp_path, '\n'.join(lines)))


def test_truncated_last_line_is_dropped_with_a_warning(tmp_path):
    p = write(tmp_path, '\n'.join(LINES[:21]) + '\n' + LINES[21][:30])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        df = load_session(p)
    assert len(df) == 20
    assert any('line 22 is truncated' in str(x.message) and str(p) in str(x.message) for x in w)


def test_binary_file(tmp_path):
    p = tmp_path / 'x.csv'
    p.write_bytes(b'\x00\xff\xfe' * 50)
    assert 'not a text CSV' in error_of(p)


def test_foreign_parquet(tmp_path):
    p = tmp_path / 'other.parquet'
    pd.DataFrame({'a': [1, 2]}).to_parquet(p)
    assert 'without f1twin metadata' in error_of(p)


def test_damaged_parquet(tmp_path):
    good = save_session(load_session(DEMO), tmp_path / 'good.parquet').read_bytes()
    p = tmp_path / 'cut.parquet'
    p.write_bytes(good[: len(good) // 2])
    assert 'Parquet' in error_of(p)
