"""The lap library: a folder of sessions indexed once, bests per track and car equal to the game's, incremental
re-indexing, broken and foreign files reported and skipped, lap events of several rigs counted once."""
import io
import os
import shutil
import subprocess
import sys
import uuid
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clirun import f1twin
from f1twin.corners import corner_table
from f1twin.io import load_session, sample_session_path, save_session
from f1twin.laps import compare_laps
from f1twin.library import LapLibrary, LibraryError, follow_lap_events, lap_event_problem, progress_chart

A, B = 'telemetry_2025-09-12_19-00-17', 'telemetry_2025-09-13_16-18-26'
F1TWIN = str(Path(sys.executable).parent / 'f1twin')


@pytest.fixture
def folder(tmp_path):
    """Both real sessions (CSV with their metadata), one as Parquet in a subfolder too, and two bad files."""
    for name in (A, B):
        for ext in ('.csv', '.meta.json'):
            shutil.copy(sample_session_path(name + '.csv').with_suffix(ext), tmp_path)
    (tmp_path / 'parquet').mkdir()
    save_session(load_session(sample_session_path(B + '.csv')), tmp_path / 'parquet' / f'{B}.parquet')
    (tmp_path / 'broken.csv').write_text('Timestamp,Speed_kmh\n1,2\n')
    (tmp_path / 'foreign.parquet').write_bytes(os.urandom(2000))
    return tmp_path


def test_index_bests_and_skipped_files(folder):
    with LapLibrary(folder) as lib:
        res = lib.update(progress=False)
        assert sorted(Path(p).name for p in res.unreadable) == ['broken.csv', 'foreign.parquet']
        assert 'missing column' in res.unreadable[str(folder / 'broken.csv')]
        b = lib.bests()
        assert len(b) == 1 and b.loc[0, 'track'] == 'monza'
        assert b.loc[0, ['best_lap_ms', 'best_lap', 'theoretical_best_ms', 'laps', 'sessions']].tolist() == \
            [81186, 2, 80975, 6, 2], 'the Parquet copy of a session counts once'
        laps = lib.sql('SELECT lap_time_ms FROM unique_laps WHERE valid ORDER BY start_time, seq')
        assert laps['lap_time_ms'].tolist() == [81817, 81186, 82539, 82165, 82160, 81790]
        assert lib.progress('monza')['best_lap_ms'].tolist() == [81186, 81790]


def test_second_run_reads_only_what_changed(folder):
    with LapLibrary(folder) as lib:
        assert len(lib.update(progress=False).read) == 5
        again = lib.update(progress=False)
        assert again.read == [] and again.unchanged == 5 and len(again.unreadable) == 2
        (folder / 'broken.csv').unlink()
        p = folder / f'{A}.csv'
        os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10_000_000))
        third = lib.update(progress=False)
        assert third.read == [str(p)] and third.removed == [str(folder / 'broken.csv')]
        assert len(third.unreadable) == 1
        assert lib.bests().loc[0, 'best_lap_ms'] == 81186


def test_the_library_best_lap_is_a_reference_for_comparisons(folder):
    with LapLibrary(folder) as lib:
        lib.update(progress=False)
        ref = lib.best_lap('monza')
        assert ref[1] == 2
        other = load_session(sample_session_path(B + '.csv'))
        c = compare_laps(ref, (other, 2))
        assert c['delta_s'].iloc[-1] == pytest.approx((81790 - 81186) / 1000, abs=1e-9)
        t = corner_table(other, ref=ref)
        assert t.attrs['ref_time_ms'] == 81186
        with pytest.raises(LibraryError, match="no valid lap of track 'spa'"):
            lib.best_lap('spa')


def test_lap_events_count_once_and_rank_rigs(tmp_path):
    with LapLibrary(tmp_path) as lib:
        ev = [{'car_id': f'rig{k}', 'session_id': 's1', 'lap_number': n, 'lap_time_ms': 81000 + 100 * k + n,
               'sector_times': [30000, 25000, 26000 + 100 * k + n]} for k in (1, 2) for n in (1, 2, 3)]
        assert lib.add_lap_events(ev, track='monza') == 6
        assert lib.add_lap_events(ev[::-1], track='monza') == 0
        board = lib.leaderboard('monza')
        assert board['car_id'].tolist() == ['rig1', 'rig2'] and board['best_lap_ms'].tolist() == [81101, 81201]


def test_progress_chart_has_the_sessions(folder):
    with LapLibrary(folder) as lib:
        lib.update(progress=False)
        fig = progress_chart(lib.progress('monza'))
        assert list(fig.data[0].y) == [81.186, 81.79] and fig.layout.yaxis.title.text == 'Lap time (s)'


def test_not_a_folder():
    with pytest.raises(LibraryError, match='not a folder'):
        LapLibrary('/no/such/folder')


def run(*args):
    return subprocess.run([F1TWIN, *map(str, args)], capture_output=True, text=True, timeout=300)


def test_cli_library(folder):
    r = f1twin('library', folder, '--track', 'monza', '--chart', folder / 'progress.html')  # in this process
    assert r.returncode == 0, r.stderr
    assert 'best 1:21.186 (lap 2 of telemetry_2025-09-12_19-00-17.csv, 2025-09-12), theoretical best 1:20.975' in r.stdout
    assert 'skipped' in r.stderr and 'broken.csv' in r.stderr
    assert (folder / 'progress.html').stat().st_size > 1_000_000, 'the chart works offline (plotly.js inside)'
    again = f1twin('library', folder, '--csv')
    assert 'f1twin library: 0 read, 5 unchanged' in again.stderr
    sessions = pd.read_csv(io.StringIO(again.stdout))
    assert sorted(sessions['best_lap_ms'].dropna().astype(int)) == [81186, 81790, 81790]


@pytest.mark.kafka
def test_lap_events_from_kafka_across_a_restart(tmp_path, kafka_bootstrap):
    """Two rigs replay sessions to the real topics; a follower indexes their lap events, stops, and reading the
    topic again from the start adds nothing."""
    rigs = [f'rig-{uuid.uuid4().hex[:6]}' for _ in range(2)]
    for rig, name in zip(rigs, (A, B)):
        r = run('replay', sample_session_path(name + '.csv'), '--kafka', kafka_bootstrap, '--speed', '200',
                '--car', rig, '--live-hz', '1')
        assert r.returncode == 0, r.stderr
    with LapLibrary(tmp_path) as lib:
        follow_lap_events(lib, kafka_bootstrap, 'monza', idle_timeout_s=3)
        board = lib.leaderboard('monza').set_index('car_id')
        assert board.loc[rigs, 'best_lap_ms'].tolist() == [81186, 81790]
        assert board.loc[rigs, 'laps'].tolist() == [4, 2]
        follow_lap_events(lib, kafka_bootstrap, 'monza', idle_timeout_s=3)  # a restart reads the topic again
        assert lib.leaderboard('monza').set_index('car_id').loc[rigs, 'laps'].tolist() == [4, 2]


def test_broken_or_forged_lap_events_are_left_out(tmp_path):
    good = {'car_id': 'rig1', 'session_id': 's1', 'lap_number': 1, 'lap_time_ms': 81500, 'sector_times': [30000, 25000, 26500]}
    bad = [{**good, 'lap_time_ms': 10 ** 400}, {**good, 'lap_time_ms': 1}, {**good, 'lap_time_ms': -5},
           {**good, 'lap_number': 'one'}, {**good, 'car_id': None}, {**good, 'sector_times': [1e400]},
           {**good, 'lap_time_ms': 81500.5}, {'lap_number': 3}]
    with LapLibrary(tmp_path) as lib:
        with pytest.warns(UserWarning, match=r'^8 of 8 lap event\(s\) left out: lap_time_ms is not a lap time'):
            assert lib.add_lap_events(bad, track='monza') == 0
        with pytest.warns(UserWarning, match=r'^8 of 9 lap event\(s\) left out'):
            assert lib.add_lap_events(bad + [good], track='monza') == 1
        assert [lap_event_problem(m) for m in bad[3:]] == [
            'lap_number is not a whole number from 1 to 100,000', 'no car_id', 'sector_times is not a list of whole ms',
            'lap_time_ms is not a lap time (whole ms, 1 s to 1 h)', 'no car_id']
        assert lap_event_problem('lap 3') == 'not a message (a str)' and lap_event_problem(good) is None
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            assert lib.add_lap_events([good], track='monza') == 0  # already there: no warning, nothing added
            assert lib.add_lap_events({**good, 'lap_number': 2}, track='monza') == 1  # one event, not in a list
        with pytest.raises(LibraryError, match='track must be a track name'):
            lib.add_lap_events([good], track='')
