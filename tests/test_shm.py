"""AC shared memory: the exact layout of the three pages, strings, opening pages, waiting, torn-read-safe copies."""
import ctypes
import mmap
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from f1twin.schema import TELEMETRY_FIELDS, F1twinError
from f1twin.shm import (AC_LIVE, PAGE_FILES, PAGES, RECORD_SOURCES, ACNotRunning, ACPages, ACPagesGone, ACStatus,
                        Graphics, Physics, Static, TornReadError, decode_wstr, encode_wstr, from_record_fields,
                        layout_table, open_pages, to_record_fields, write_pages)

# `[offset, size]` of every field, measured by compiling Kunos' three structs with gcc (-fshort-wchar, pack 4) and
# checked against the game's decompiled writer: a copy of ac_layout_offsets.json from the project's reference notes
# (ac_shared_memory_layout.md), kept here so the test needs nothing outside the repository.
REFERENCE = {
    'physics': {'size': 592, 'fields': {
        'packetId': (0, 4), 'gas': (4, 4), 'brake': (8, 4), 'fuel': (12, 4), 'gear': (16, 4), 'rpms': (20, 4),
        'steerAngle': (24, 4), 'speedKmh': (28, 4), 'velocity': (32, 12), 'accG': (44, 12), 'wheelSlip': (56, 16),
        'wheelLoad': (72, 16), 'wheelsPressure': (88, 16), 'wheelAngularSpeed': (104, 16), 'tyreWear': (120, 16),
        'tyreDirtyLevel': (136, 16), 'tyreCoreTemperature': (152, 16), 'camberRAD': (168, 16),
        'suspensionTravel': (184, 16), 'drs': (200, 4), 'tc': (204, 4), 'heading': (208, 4), 'pitch': (212, 4),
        'roll': (216, 4), 'cgHeight': (220, 4), 'carDamage': (224, 20), 'numberOfTyresOut': (244, 4),
        'pitLimiterOn': (248, 4), 'abs': (252, 4), 'kersCharge': (256, 4), 'kersInput': (260, 4),
        'autoShifterOn': (264, 4), 'rideHeight': (268, 8), 'turboBoost': (276, 4), 'ballast': (280, 4),
        'airDensity': (284, 4), 'airTemp': (288, 4), 'roadTemp': (292, 4), 'localAngularVel': (296, 12),
        'finalFF': (308, 4), 'performanceMeter': (312, 4), 'engineBrake': (316, 4), 'ersRecoveryLevel': (320, 4),
        'ersPowerLevel': (324, 4), 'ersHeatCharging': (328, 4), 'ersIsCharging': (332, 4), 'kersCurrentKJ': (336, 4),
        'drsAvailable': (340, 4), 'drsEnabled': (344, 4), 'brakeTemp': (348, 16), 'clutch': (364, 4),
        'tyreTempI': (368, 16), 'tyreTempM': (384, 16), 'tyreTempO': (400, 16), 'isAIControlled': (416, 4),
        'tyreContactPoint': (420, 48), 'tyreContactNormal': (468, 48), 'tyreContactHeading': (516, 48),
        'brakeBias': (564, 4), 'localVelocity': (568, 12), 'P2PActivations': (580, 4), 'P2PStatus': (584, 4),
        'currentMaxRpm': (588, 4),
    }},
    'graphics': {'size': 296, 'fields': {
        'packetId': (0, 4), 'status': (4, 4), 'session': (8, 4), 'currentTime': (12, 30), 'lastTime': (42, 30),
        'bestTime': (72, 30), 'split': (102, 30), 'completedLaps': (132, 4), 'position': (136, 4),
        'iCurrentTime': (140, 4), 'iLastTime': (144, 4), 'iBestTime': (148, 4), 'sessionTimeLeft': (152, 4),
        'distanceTraveled': (156, 4), 'isInPit': (160, 4), 'currentSectorIndex': (164, 4),
        'lastSectorTime': (168, 4), 'numberOfLaps': (172, 4), 'tyreCompound': (176, 66),
        'replayTimeMultiplier': (244, 4), 'normalizedCarPosition': (248, 4), 'carCoordinates': (252, 12),
        'penaltyTime': (264, 4), 'flag': (268, 4), 'idealLineOn': (272, 4), 'isInPitLane': (276, 4),
        'surfaceGrip': (280, 4), 'mandatoryPitDone': (284, 4), 'windSpeed': (288, 4), 'windDirection': (292, 4),
    }},
    'static': {'size': 684, 'fields': {
        'smVersion': (0, 30), 'acVersion': (30, 30), 'numberOfSessions': (60, 4), 'numCars': (64, 4),
        'carModel': (68, 66), 'track': (134, 66), 'playerName': (200, 66), 'playerSurname': (266, 66),
        'playerNick': (332, 66), 'sectorCount': (400, 4), 'maxTorque': (404, 4), 'maxPower': (408, 4),
        'maxRpm': (412, 4), 'maxFuel': (416, 4), 'suspensionMaxTravel': (420, 16), 'tyreRadius': (436, 16),
        'maxTurboBoost': (452, 4), 'deprecated_1': (456, 4), 'deprecated_2': (460, 4), 'penaltiesEnabled': (464, 4),
        'aidFuelRate': (468, 4), 'aidTireRate': (472, 4), 'aidMechanicalDamage': (476, 4),
        'aidAllowTyreBlankets': (480, 4), 'aidStability': (484, 4), 'aidAutoClutch': (488, 4),
        'aidAutoBlip': (492, 4), 'hasDRS': (496, 4), 'hasERS': (500, 4), 'hasKERS': (504, 4), 'kersMaxJ': (508, 4),
        'engineBrakeSettingsCount': (512, 4), 'ersPowerControllerCount': (516, 4), 'trackSPlineLength': (520, 4),
        'trackConfiguration': (524, 66), 'ersMaxJ': (592, 4), 'isTimedRace': (596, 4), 'hasExtraLap': (600, 4),
        'carSkin': (604, 66), 'reversedGridPositions': (672, 4), 'PitWindowStart': (676, 4),
        'PitWindowEnd': (680, 4),
    }},
}


@pytest.mark.parametrize('page', ['physics', 'graphics', 'static'])
def test_struct_size_matches_reference(page):
    assert ctypes.sizeof(PAGES[page]) == REFERENCE[page]['size']
    assert PAGES[page].PAGE == page


@pytest.mark.parametrize('page,name', [(p, n) for p, r in REFERENCE.items() for n in r['fields']])
def test_field_offset_and_size_match_reference(page, name):
    assert layout_table(PAGES[page]).get(name) == REFERENCE[page]['fields'][name]


@pytest.mark.parametrize('page', ['physics', 'graphics', 'static'])
def test_no_fields_beyond_the_reference_and_same_order(page):
    assert list(layout_table(PAGES[page])) == list(REFERENCE[page]['fields'])


def test_strings_are_two_byte_code_units():
    for cls in PAGES.values():
        for name in cls.string_fields():
            t = dict(cls._fields_)[name]
            assert t._type_ is ctypes.c_uint16 and t._length_ in (15, 33), f'{cls.__name__}.{name}'
    assert Graphics.string_fields() == ('currentTime', 'lastTime', 'bestTime', 'split', 'tyreCompound')


@pytest.mark.parametrize('text', ['', 'monza', 'Räikkönen', 'Nürburgring Nordschleife', '鈴鹿サーキット',
                                  '🏁 flag', 'ks_ferrari_sf15t'])
@pytest.mark.parametrize('n', [15, 33])
def test_strings_round_trip(text, n):
    buf = encode_wstr(text, n)
    assert ctypes.sizeof(buf) == 2 * n and buf[n - 1] == 0, 'always NUL-terminated'
    units = len(text.encode('utf-16-le')) // 2
    if units <= n - 1:
        assert decode_wstr(buf) == text
        assert bytes(buf) == text.encode('utf-16-le').ljust(2 * n, b'\0')
    else:
        assert text.startswith(decode_wstr(buf))


def test_string_truncation():
    assert decode_wstr(encode_wstr('Nürburgring Nordschleife', 15)) == 'Nürburgring No'
    assert decode_wstr(encode_wstr('x' * 40, 33)) == 'x' * 32
    # a surrogate pair is never cut in half: 7 flags (14 units) fit in 15, the 8th would need units 15-16
    assert decode_wstr(encode_wstr('🏁' * 8, 15)) == '🏁' * 7
    assert decode_wstr(encode_wstr('a' + '🏁' * 8, 15)) == 'a' + '🏁' * 6
    with pytest.raises(ValueError, match='NUL'):
        encode_wstr('a\0b', 15)


def test_decode_stops_at_first_nul_and_never_raises():
    assert decode_wstr(b'm\0o\0\0\0z\0a\0') == 'mo', 'garbage after the terminator is ignored'
    assert decode_wstr('A\u4100\u0041'.encode('utf-16-le')) == 'A\u4100A', 'no terminator: the whole buffer'
    assert decode_wstr(b'\x00\xd8A\x00\0\0') == '\ufffdA', 'a lone surrogate becomes U+FFFD'
    assert decode_wstr(b'A\0B') == 'A', 'odd trailing byte dropped'
    assert decode_wstr(bytes(66)) == ''


def test_pages_build_from_keywords_and_read_back_from_bytes():
    st = Static(smVersion='1.7', track='ks_nordschleife', trackConfiguration='nordschleife', playerName='Kimi',
                playerSurname='Räikkönen', sectorCount=3, tyreRadius=[0.33, 0.33, 0.36, 0.36], PitWindowEnd=7)
    back = Static.from_buffer_copy(bytes(st))
    assert back.text('track') == 'ks_nordschleife' and back.text('playerSurname') == 'Räikkönen'
    assert back.PitWindowEnd == 7 and back.to_dict()['tyreRadius'] == pytest.approx([0.33, 0.33, 0.36, 0.36])
    assert bytes(st)[524:548] == 'nordschleife'.encode('utf-16-le')
    ph = Physics(packetId=7, tyreContactNormal=[[0, 1, 0]] * 4, currentMaxRpm=8000, P2PStatus=2)
    raw = bytes(ph)
    assert struct.unpack_from('<3i', raw, 580) == (0, 2, 8000)
    assert struct.unpack_from('<3f', raw, 468 + 12 * 3) == (0.0, 1.0, 0.0)
    with pytest.raises(AttributeError, match='no field'):
        Physics(speed=1)
    with pytest.raises(TypeError, match='not a string field'):
        Physics(gas='full')
    with pytest.raises(KeyError):
        ph.text('gas')
    assert 'smVersion=' in repr(st) and 'packetId=7' in repr(ph)


def test_record_fields_cover_every_ac_sourced_schema_field():
    assert set(RECORD_SOURCES) == {f.name for f in TELEMETRY_FIELDS if f.ac}
    rec = to_record_fields(Physics(), Graphics())
    assert set(rec) == set(RECORD_SOURCES)


def test_record_fields_values():
    ph = Physics(packetId=5, gas=0.75, brake=0.25, gear=2, rpms=7345, steerAngle=-0.5, speedKmh=201.5,
                 accG=(1.5, 0.25, -2.0))
    gr = Graphics(packetId=9, status=AC_LIVE, completedLaps=3, iCurrentTime=12345, iLastTime=81817, iBestTime=81186,
                  lastSectorTime=27999, currentSectorIndex=2, distanceTraveled=17234.5, normalizedCarPosition=0.5,
                  carCoordinates=(10.5, -2.0, 300.25), isInPit=1, isInPitLane=0, surfaceGrip=0.96875, flag=1,
                  tyreCompound='Medium (M)')
    rec = to_record_fields(ph, gr)
    assert rec == {
        'packet_id': 5, 'speed_kmh': 201.5, 'rpm': 7345, 'throttle': 0.75, 'brake': 0.25, 'steering': -0.5, 'gear': 1,
        'car_x': 10.5, 'car_y': -2.0, 'car_z': 300.25, 'distance_total': 17234.5, 'normalized_position': 0.5,
        'sector': 2, 'completed_laps': 3, 'current_lap_time_ms': 12345, 'last_lap_time_ms': 81817,
        'best_lap_time_ms': 81186, 'last_sector_time_ms': 27999, 'in_pit': True, 'in_pit_lane': False,
        'surface_grip': 0.96875, 'g_lat': 1.5, 'g_lon': -2.0, 'g_vert': 0.25, 'flag': 1, 'tyre_compound': 'Medium (M)'}
    assert all(type(v) in (int, float, bool, str) for v in rec.values()), 'plain Python values'
    assert to_record_fields(bytes(ph), bytes(gr)) == rec
    assert to_record_fields(*from_record_fields(rec)) == rec


def test_from_record_fields_takes_numpy_scalars():
    import numpy as np
    row = {'gear': np.int8(-1), 'in_pit': np.True_, 'in_pit_lane': np.False_, 'speed_kmh': np.float32(88.5),
           'packet_id': np.int64(77), 'car_z': np.float32(-5.0), 'tyre_compound': 'Hard (H)'}
    ph, gr = from_record_fields(row)
    assert (ph.gear, ph.packetId, ph.speedKmh, gr.isInPit, gr.isInPitLane) == (0, 77, 88.5, 1, 0)
    assert gr.carCoordinates[2] == -5.0 and gr.text('tyreCompound') == 'Hard (H)'


@pytest.mark.parametrize('raw,gear', [(0, -1), (1, 0), (2, 1), (7, 6)])
def test_gear_is_raw_minus_one(raw, gear):
    assert to_record_fields(Physics(gear=raw), Graphics())['gear'] == gear
    assert from_record_fields({'gear': gear})[0].gear == raw


def make_pages(tmp_path, packet_id=100):
    st = Static(smVersion='1.7', track='monza', carModel='ks_ferrari_sf15t', sectorCount=3)
    gr = Graphics(packetId=20, status=AC_LIVE, completedLaps=1, tyreCompound='Soft')
    ph = Physics(packetId=packet_id, gear=3, speedKmh=250.0)
    return write_pages(tmp_path, ph, gr, st)


def test_open_pages_from_a_directory(tmp_path):
    paths = make_pages(tmp_path)
    assert {p.name for p in paths.values()} == set(PAGE_FILES.values())
    with open_pages(tmp_path) as ac:
        assert isinstance(ac, ACPages) and ac.where == str(tmp_path)
        assert ac.static().text('track') == 'monza' and ac.static().sectorCount == 3
        assert ac.graphics().text('tyreCompound') == 'Soft' and ac.status() is ACStatus.LIVE
        p = ac.physics()
        assert isinstance(p, Physics) and p.speedKmh == 250.0 and ac.physics_packet_id() == 100
        assert ac.raw('physics') == bytes(p)
        # the fake AC rewrites the file through its own mapping: the reader sees each update
        with open(paths['physics'], 'r+b') as f:
            w = mmap.mmap(f.fileno(), 592)
        for k in range(101, 106):
            w[:] = bytes(Physics(packetId=k, gear=k % 8))
            assert ac.physics_packet_id() == k and ac.physics().gear == k % 8
        w.close()
        assert p.packetId == 100, 'a snapshot is a copy, not a view'
    assert ac.closed
    with pytest.raises(ValueError):
        ac.physics()
    ac.close()  # idempotent


def test_write_pages_rewrites_in_place(tmp_path):
    paths = make_pages(tmp_path)
    inode = paths['physics'].stat().st_ino
    with open_pages(tmp_path) as ac:
        write_pages(tmp_path, physics=Physics(packetId=101))
        assert paths['physics'].stat().st_ino == inode and ac.physics().packetId == 101
    with pytest.raises(ValueError, match='592 bytes'):
        write_pages(tmp_path, physics=Graphics())


def test_not_running_on_an_empty_directory(tmp_path):
    with pytest.raises(ACNotRunning) as e:
        open_pages(tmp_path)
    msg = str(e.value)
    assert isinstance(e.value, F1twinError) and e.value.where == str(tmp_path)
    assert str(tmp_path) in msg and 'acpmf_physics, acpmf_graphics, acpmf_static' in msg
    assert e.value.problems == ('acpmf_physics missing', 'acpmf_graphics missing', 'acpmf_static missing')
    assert 'Start AC' in msg


def test_not_running_when_pages_are_short_or_static_is_empty(tmp_path):
    make_pages(tmp_path)
    (tmp_path / 'acpmf_graphics').write_bytes(bytes(100))
    with pytest.raises(ACNotRunning) as e:
        open_pages(tmp_path)
    assert e.value.problems == ('acpmf_graphics has 100 bytes, expected 296 (still being created, or cut short)',)
    write_pages(tmp_path, graphics=Graphics(), static=Static())
    with pytest.raises(ACNotRunning, match='acpmf_static is all zeros'):
        open_pages(tmp_path)
    with pytest.raises(ACNotRunning, match='is not a directory'):
        open_pages(tmp_path / 'acpmf_static')


def test_a_page_file_being_created_is_looked_at_again(tmp_path):
    """A page file still shorter than its layout when opened (a bridge creating it) is read once it is whole."""
    make_pages(tmp_path)
    (tmp_path / 'acpmf_physics').write_bytes(bytes(10))
    timer = threading.Timer(0.2, write_pages, (tmp_path, Physics(packetId=5)))
    timer.start()
    try:
        with open_pages(tmp_path) as ac:  # no wait asked: the short file alone is looked at again for a moment
            assert ac.physics().packetId == 5
    finally:
        timer.join()


TRUNCATE_WHILE_OPEN = """
import os, sys
from f1twin.shm import open_pages, ACPagesGone
with open_pages(sys.argv[1]) as ac:
    assert ac.physics().packetId == 100
    os.truncate(os.path.join(sys.argv[1], 'acpmf_physics'), int(sys.argv[2]))
    try: ac.physics()
    except ACPagesGone as e: print(e); print(ac.gone())
"""


@pytest.mark.parametrize('size', [0, 100])
def test_a_page_file_cut_short_while_open_is_an_error_not_a_sigbus(tmp_path, size):
    """A bridge truncating the page files when the game exits: the reader gets ACPagesGone, it is not killed by SIGBUS
    (which a mapping of the file gives; run in a child process, as SIGBUS would kill pytest)."""
    make_pages(tmp_path)
    r = subprocess.run([sys.executable, '-c', TRUNCATE_WHILE_OPEN, str(tmp_path), str(size)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, f'the reader died (exit status {r.returncode}: -7 is SIGBUS): {r.stderr}'
    msg, gone = r.stdout.splitlines()
    assert f'acpmf_physics was cut short while open ({size} of 592 bytes)' in msg and str(tmp_path) in msg
    assert gone == f'acpmf_physics was cut short ({size} of 592 bytes)'


def test_gone_tells_removed_and_recreated_page_files(tmp_path):
    make_pages(tmp_path)
    with open_pages(tmp_path) as ac:
        assert ac.gone() is None
        (tmp_path / 'acpmf_static').unlink()
        assert ac.gone() == 'acpmf_static was removed'
        assert ac.static().text('track') == 'monza', 'the open file is the old one, still readable'
        make_pages(tmp_path)
        assert ac.gone() == 'acpmf_static was replaced by a new file'
    with open_pages(tmp_path) as ac:
        write_pages(tmp_path, physics=Physics(packetId=7))  # rewritten in place: the same file
        assert ac.gone() is None and ac.physics_packet_id() == 7
    with pytest.raises(ValueError):
        ac.physics_packet_id()


def test_wait_times_out_with_a_clear_error(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(ACNotRunning) as e:
        open_pages(tmp_path, wait=True, timeout=0.4, poll=0.05)
    waited = time.monotonic() - t0
    assert 0.4 <= waited < 1.5
    assert 'Waited 0.4 s' in str(e.value) and 'acpmf_static missing' in str(e.value)


def test_wait_succeeds_when_the_pages_appear(tmp_path):
    timer = threading.Timer(0.3, make_pages, (tmp_path, 4242))
    t0 = time.monotonic()
    timer.start()
    try:
        with open_pages(tmp_path, wait=True, timeout=5, poll=0.02) as ac:
            assert ac.physics().packetId == 4242 and ac.static().text('carModel') == 'ks_ferrari_sf15t'
    finally:
        timer.join()
    assert 0.3 <= time.monotonic() - t0 < 3


class FlakyCounter(ACPages):
    """Pages whose first `wrong` packetId reads disagree with the page, as if a writer had struck each time."""
    wrong = 0

    def _packet_id(self, buf):
        self.wrong -= 1
        return super()._packet_id(buf) + (self.wrong >= 0)


def test_snapshot_retries_until_the_counter_holds(tmp_path):
    make_pages(tmp_path)
    maps = {}
    for name, file in PAGE_FILES.items():
        with open(tmp_path / file, 'rb') as f:
            maps[name] = mmap.mmap(f.fileno(), ctypes.sizeof(PAGES[name]), access=mmap.ACCESS_READ)
    ac = FlakyCounter(maps, str(tmp_path), retries=5)
    ac.wrong = 3
    assert ac.physics().packetId == 100 and ac.torn_retries == 3
    ac.wrong = 10**6
    with pytest.raises(TornReadError, match='changed during each of 6 copies'):
        ac.graphics()
    assert ac.torn_retries == 3 + 6
    ac.close()


WRITER = '''
import mmap, struct, sys, time
with open(sys.argv[1], 'r+b') as f:
    m = mmap.mmap(f.fileno(), 592)
k, end = 0, time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    k += 1
    m[:] = struct.pack('<148i', *[k] * 148)  # one block copy per step, like the game; every word = step number
    time.sleep(0)                            # about 15,000 steps a second, 50 times AC's rate
'''


@pytest.fixture
def shm_dir(tmp_path):
    """A fresh directory in /dev/shm (tmpfs, where Linux bridges write the pages), else tmp_path."""
    if not os.access('/dev/shm', os.W_OK):
        yield tmp_path
        return
    d = Path(tempfile.mkdtemp(prefix='f1twin-test-', dir='/dev/shm'))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_snapshots_are_whole_while_another_process_writes(shm_dir):
    """Snapshots never mix two writes of a running writer.

    A writer descheduled in the middle of its copy leaves a half-written page with an unchanged packetId that no
    reader can tell from a whole one (AC has no lock). Such a page reads the same bytes for as long as the stall
    lasts, so the test counts distinct torn pages: a stall or two on a busy machine, never a torn page per write.
    """
    make_pages(shm_dir, packet_id=0)
    with open_pages(shm_dir) as ac:
        writer = subprocess.Popen([sys.executable, '-c', WRITER, str(shm_dir / 'acpmf_physics'), '2'])
        try:
            deadline = time.monotonic() + 10
            while ac.physics_packet_id() == 0:
                assert time.monotonic() < deadline, 'the writer process never wrote'
                time.sleep(0.001)
            ids, torn, plain_torn, end = [], set(), set(), time.monotonic() + 1.0
            while time.monotonic() < end:
                page = bytes(ac.physics())
                words = set(memoryview(page).cast('i'))
                if len(words) != 1: torn.add(page)
                ids.append(min(words))
                if len(set(memoryview(raw := ac.raw('physics')).cast('i'))) != 1: plain_torn.add(raw)
        finally:
            writer.wait(timeout=30)
    print(f'{len(ids)} snapshots, {ac.torn_retries} retried copies; distinct torn pages: '
          f'{len(torn)} in snapshots, {len(plain_torn)} in unchecked copies')
    assert writer.returncode == 0
    assert len(torn) <= 2, f'{len(torn)} distinct torn snapshots of {len(ids)}: more than a stalled writer explains'
    assert len(set(ids)) > 1000 and ids == sorted(ids), 'the page was changing under the reader'
