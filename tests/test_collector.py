"""The collector end to end: fake AC (a separate process, as the game) -> collector -> session file and Kafka."""
import json
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from f1twin.collector import Collector, CollectorConfig
from f1twin.stream import LapTracker
from f1twin.io import load_session, sample_session_path
from f1twin.laps import lap_table
from f1twin.shm import open_pages
from f1twin.stream import TopicReader

ROOT = Path(__file__).resolve().parent.parent
KAFKA_LOCAL = ROOT / 'tools' / 'kafka_local.py'
GAME_LAPS = [81817, 81186, 82539, 82165]
GAME_SECTORS = [[30503, 25803, 25511], [29661, 25838, 25687], [30406, 26213, 25920], [29961, 26270, 25934]]
F1TWIN = [sys.executable, '-c', 'import sys; from f1twin.cli import main; sys.exit(main())']


def start_fake_ac(pages_dir, hz=33.3, speed=10.0, loops=1, session=None):
    """The fake game: 333 packets a second by default (33.3 Hz x 10), the whole real session in about 35 s."""
    return subprocess.Popen([*F1TWIN, 'fake-ac', str(session or sample_session_path()), '--hz', str(hz),
                             '--speed', str(speed), '--dir', str(pages_dir), '--loops', str(loops)],
                            stderr=subprocess.PIPE, text=True)


def fake_skipped(fake) -> int:
    """Packets the fake AC never wrote because it ran late (its packetId jumps over them), from its summary line."""
    err = fake.stderr.read()
    m = re.search(r'\((\d+) skipped\)', err)
    assert m, f'no summary from the fake AC: {err}'
    return int(m.group(1))


def collect(pages_dir, cfg, **run):
    with open_pages(pages_dir, timeout=30) as pages:
        return Collector(pages, cfg).run(**run)


def test_lap_tracker_on_the_recording_gives_the_games_times():
    tr = LapTracker()
    events = [e for rec in load_session(sample_session_path()).to_dict('records') for e in tr.update(rec)]
    laps = [e for k, e in events if k == 'lap']
    assert [l['lap_time_ms'] for l in laps] == GAME_LAPS
    assert [l['sector_times'] for l in laps] == GAME_SECTORS
    sectors = [e for k, e in events if k == 'sector']
    assert len(sectors) == 12, 'three splits a lap; the out-lap has none'


def test_fake_ac_to_collector_to_parquet_and_csv(tmp_path):
    fake = start_fake_ac(tmp_path / 'pages')
    summary = collect(tmp_path / 'pages', CollectorConfig(out_dir=tmp_path / 'out', csv=True), duration=90, once=True)
    assert fake.wait(timeout=30) == 0
    assert [l['lap_time_ms'] for l in summary.laps] == GAME_LAPS
    assert [l['sector_times'] for l in summary.laps] == GAME_SECTORS
    assert [l['best_lap'] for l in summary.laps] == [True, True, False, False]
    [path] = summary.files
    rec = load_session(path)
    assert len(rec) == summary.samples
    ids = rec['packet_id'].to_numpy()
    assert (np.diff(ids) > 0).all(), 'each packet recorded once, in order'
    assert summary.samples + summary.packets_missed == ids[-1] - ids[0] + 1
    # How many it misses is a speed figure (bench/collector_bench.py measures and explains it, about 0.3 % here);
    # this only rules out a collector that does not keep up at all (the original design's 10 Hz loop misses 97 %).
    # Ids the fake game never wrote because the machine made it late are not the collector's misses.
    late = fake_skipped(fake)
    assert summary.packets_missed - late <= 0.2 * summary.samples, \
        f'at 333 packets/s the collector keeps up ({summary.packets_missed} missed, {late} never written)'
    t = lap_table(rec)
    assert t['lap_time_ms'].dropna().tolist() == GAME_LAPS
    assert t.dropna(subset=['lap_time_ms'])[['s1_ms', 's2_ms', 's3_ms']].values.tolist() == GAME_SECTORS
    assert rec.attrs['f1twin']['track'] == 'monza' and rec.attrs['f1twin']['source'] == 'collector'
    csv = load_session(path.with_suffix('.csv'))
    assert len(csv) == len(rec) and lap_table(csv)['lap_time_ms'].dropna().tolist() == GAME_LAPS
    assert not list((tmp_path / 'out').glob('*.parts')), 'the parts were joined into the session file'


def test_restart_starts_a_new_session(tmp_path):
    short = load_session(sample_session_path()).iloc[:1100]  # the out-lap and lap 1
    src = tmp_path / 'short.parquet'
    from f1twin.io import save_session
    save_session(short, src)
    fake = start_fake_ac(tmp_path / 'pages', hz=33.3, speed=20, loops=2, session=src)
    summary = collect(tmp_path / 'pages', CollectorConfig(out_dir=tmp_path / 'out'), duration=60, once=True)
    assert fake.wait(timeout=30) == 0
    assert summary.sessions == 2 and len(summary.files) == 2
    assert [l['lap_time_ms'] for l in summary.laps] == [81817, 81817]
    for f in summary.files:
        assert lap_table(load_session(f))['lap_time_ms'].dropna().tolist() == [81817]


def read_topic(bootstrap, topic, car_id, expect=None, idle=5.0):
    with TopicReader(bootstrap, [topic], start='earliest', car_id=car_id) as r:
        return list(r.messages(idle_timeout_s=idle, max_messages=expect))


def test_collector_publishes_to_kafka(tmp_path, kafka_bootstrap):
    car = f'rig-{uuid.uuid4().hex[:8]}'
    fake = start_fake_ac(tmp_path / 'pages')
    cfg = CollectorConfig(out_dir=tmp_path / 'out', car_id=car, kafka=kafka_bootstrap, live_hz=10)
    summary = collect(tmp_path / 'pages', cfg, duration=90, once=True)
    assert fake.wait(timeout=30) == 0
    assert summary.kafka.total('pending') == 0 and summary.kafka.total('failed') == 0
    laps = read_topic(kafka_bootstrap, 'ac-lap-events', car, expect=4)
    assert [m['lap_time_ms'] for m in laps] == GAME_LAPS
    assert [m['sector_times'] for m in laps] == GAME_SECTORS
    assert [m['best_lap'] for m in laps] == [True, True, False, False]
    assert all(m['_key'] in (f"{car}/{m['session_id']}", f"{car}/{m['session_id']}".encode()) for m in laps)
    topics = ['ac-sector-times', 'ac-session-stats', 'ac-telemetry-live']
    with TopicReader(kafka_bootstrap, topics, start='earliest', car_id=car) as r:  # one reader, one idle wait
        got = list(r.messages(idle_timeout_s=5.0))
    sectors, stats, live = ([m for m in got if m['_topic'] == t] for t in topics)
    timed = [m['sector_time_ms'] for m in sectors if m['lap_number'] in (1, 2, 3, 4)]
    assert timed == [x for lap in GAME_SECTORS for x in lap]
    assert len(stats) >= 4 and all(s['max_speed'] > 250 for s in stats[1:])
    assert 250 < len(live) < 450, 'live telemetry at about 10 Hz over ~35 s'
    assert {'speed_kmh', 'rpm', 'gear', 'car_x', 'car_z', 'distance', 'sector'} <= set(live[0])


def kafka_local(*args):
    return subprocess.run([sys.executable, str(KAFKA_LOCAL), *args], capture_output=True, text=True, timeout=180)


def test_broker_lost_mid_session_then_back(tmp_path, kafka_bootstrap):
    record = ROOT / '.cache' / 'kafka' / 'broker.json'
    if not record.exists() or json.loads(record.read_text())['bootstrap'] != kafka_bootstrap:
        pytest.fail('this test stops and restarts the broker: it needs the one `make kafka-up` manages')
    car = f'rig-{uuid.uuid4().hex[:8]}'
    fake = start_fake_ac(tmp_path / 'pages')
    cfg = CollectorConfig(out_dir=tmp_path / 'out', car_id=car, kafka=kafka_bootstrap, live_hz=10)
    result = {}
    th = threading.Thread(target=lambda: result.update(s=collect(tmp_path / 'pages', cfg, duration=120, once=True)))
    th.start()
    try:
        time.sleep(4)
        assert kafka_local('down').returncode == 0  # lost mid-session: laps 1 and 2 end during the outage
        time.sleep(15)
        assert th.is_alive(), 'the collector keeps recording without its broker'
    finally:
        up = kafka_local('up')
        assert up.returncode == 0, up.stderr
    th.join(timeout=120)
    assert fake.wait(timeout=30) == 0
    summary = result['s']
    rec = load_session(summary.files[0])
    assert lap_table(rec)['lap_time_ms'].dropna().tolist() == GAME_LAPS, 'the session file is complete'
    assert summary.samples + summary.packets_missed == rec['packet_id'].iloc[-1] - rec['packet_id'].iloc[0] + 1
    assert summary.kafka.outages >= 1
    laps = read_topic(kafka_bootstrap, 'ac-lap-events', car, expect=4, idle=10)
    assert sorted({m['lap_time_ms'] for m in laps}) == sorted(GAME_LAPS), 'every lap event arrives after the outage'


def test_cli_collect_stops_cleanly_on_sigterm(tmp_path):
    fake = start_fake_ac(tmp_path / 'pages')
    time.sleep(1)
    col = subprocess.Popen([*F1TWIN, 'collect', '--dir', str(tmp_path / 'pages'), '--out', str(tmp_path / 'out')],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(13)  # lap 1 ends about 10 s in
    col.send_signal(signal.SIGTERM)
    out, err = col.communicate(timeout=30)
    fake.terminate(); fake.wait(timeout=30)
    assert col.returncode == 0, err
    assert 'laps 1, best lap 1:21.817' in out and 'packets missed' in out
    [f] = list((tmp_path / 'out').glob('*.parquet'))
    assert lap_table(load_session(f))['lap_time_ms'].dropna().tolist() == [81817]


def test_cli_collect_without_ac_is_a_clear_error(tmp_path):
    r = subprocess.run([*F1TWIN, 'collect', '--dir', str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and 'shared memory is not available' in r.stderr and 'Traceback' not in r.stderr


def test_cli_collect_waits_for_ac(tmp_path):
    col = subprocess.Popen([*F1TWIN, 'collect', '--dir', str(tmp_path / 'pages'), '--out', str(tmp_path / 'out'),
                            '--wait', '--once'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    short = load_session(sample_session_path()).iloc[:1000]
    from f1twin.io import save_session
    fake = start_fake_ac(tmp_path / 'pages', speed=20, session=save_session(short, tmp_path / 's.parquet'))
    out, err = col.communicate(timeout=60)
    assert fake.wait(timeout=30) == 0
    assert col.returncode == 0, err
    assert 'waiting for' in err and 'laps 1, best lap 1:21.817' in out


def test_pause_and_replay_record_nothing_and_invent_no_laps(tmp_path):
    """LIVE, PAUSE (no physics step), a REPLAY that crosses the line, LIVE again: only LIVE is recorded, no lap."""
    from f1twin.fakeac import PageWriter, resample_session, static_page
    from f1twin.shm import ACStatus, Graphics, Physics, from_record_fields
    recs = resample_session(load_session(sample_session_path()).iloc[900:1000], 100).to_dict('records')
    assert recs[0]['completed_laps'] == 0 and recs[-1]['completed_laps'] == 1, 'the replayed stretch crosses the line'
    script = [(ACStatus.LIVE, recs[:300]), (ACStatus.PAUSE, recs[299:300] * 100), (ACStatus.REPLAY, recs[300:]),
              (ACStatus.LIVE, recs[299:300] * 50)]
    stop, replayed = threading.Event(), []

    def game():
        phys, gfx = Physics(), Graphics()
        with PageWriter(tmp_path / 'pages') as pw:
            packet = 0
            for status, chunk in script:
                for r in chunk:
                    from_record_fields(r, phys, gfx)
                    if status != ACStatus.PAUSE: packet += 1  # a paused game takes no physics step
                    if status == ACStatus.REPLAY: replayed.append(packet)
                    phys.packetId, gfx.status = packet, int(status)
                    gfx.packetId += 2
                    pw.write('physics', phys)
                    pw.write('graphics', gfx)
                    time.sleep(0.004)
        time.sleep(0.1)
        stop.set()

    with PageWriter(tmp_path / 'pages') as pw:  # the game has loaded the car: static page written
        pw.write('static', static_page(load_session(sample_session_path())))
    writer = threading.Thread(target=game)
    with open_pages(tmp_path / 'pages', timeout=30) as pages:
        writer.start()
        summary = Collector(pages, CollectorConfig(out_dir=tmp_path / 'out')).run(stop=stop, duration=60)
    writer.join()
    assert summary.laps == [], 'the replay crossing the line invents no lap'
    rec = load_session(summary.files[0])
    assert rec['packet_id'].is_unique and not set(rec['packet_id']) & set(replayed)
    assert len(rec) + summary.packets_missed == 350, 'every LIVE packet recorded or counted missed, no more'
    assert summary.packets_missed <= 35, 'it keeps up with the game (how closely: bench/collector_bench.py)'
