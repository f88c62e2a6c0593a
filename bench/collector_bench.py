"""Collector benchmark: the fake AC at 333 Hz (a separate process, as the game), the collector recording.

Prints, for each configuration: packets the collector recorded, the packet ids it did not record as it sorts them
itself ("missed": it was not polling in time; "unwritten": the game jumped over them), the collector's CPU use
(share of one core), and sampling jitter (spread of the wall-clock interval between recorded packets). Baseline
in the same run: the original design's collector, polling every 100 ms (10 Hz). A first table measures what
reading the pages costs, with os.pread (what f1twin does on Linux: a page file cut short is an error, not a
SIGBUS) and through a mapping (what it did before).

    python bench/collector_bench.py [--seconds 60] [--kafka HOST:PORT]

Targets (issue 3): 0 packets missed at 333 Hz, CPU under 10 % of one core (the "steady" column: while it records;
"CPU" adds the start and the end, which a 60 s run does not amortise); issue 11: with Kafka and every sample
published (in batches, the collector's default), still under 10 %. The "before" row publishes a message per
sample (`batch_s=None`), as the collector did before batches, in the same run.

Reading the figures: the fake AC runs in its own process and logs the time it wrote each packet, so every
packetId the collector did not record is put down to one cause, from the fake AC's side:
- "late": the fake AC itself fell more than a step behind and never wrote the packet (the game's physics
  thread starved by the machine), nobody could have recorded it;
- "close": written and overwritten by the next packet within one poll interval (POLL_S), before a poll could
  see it;
- "stall": the collector was not polling for longer than that (descheduled, the GIL held by another thread).
The collector cannot see that log; its own "unwritten" (a jump seen by polls less than a packet period apart)
should match "late", and its "missed" should match close + stall. The "floor" row is a loop that only polls the
packetId, nothing else: what it loses is this machine's scheduling, not f1twin's work. POLL_S=0.0005 polls twice
as often (more CPU).
"""
import argparse, ctypes, os, resource, subprocess, sys, tempfile, threading, time
from types import SimpleNamespace
from pathlib import Path

import numpy as np
import pandas as pd

from f1twin.collector import Collector, CollectorConfig
from f1twin.fakeac import FakeAC
from f1twin.io import load_session, sample_session_path
from f1twin.shm import ACPages, PAGE_FILES, PAGES, open_pages, to_record_fields

POLL_S = float(os.environ.get('POLL_S', '0.001'))
# The fake AC in its own process (as the game), logging when it wrote each packet (time.monotonic, shared
# by all processes on Linux). SIGTERM ends it and saves the log.
FAKE = '''
import signal, sys, threading, time
import numpy as np
from f1twin.fakeac import FakeAC
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: stop.set())
fake = FakeAC(sys.argv[1], sys.argv[2], hz=333)
written = np.full(len(fake.samples), np.nan)
def on_packet(k, clock=time.monotonic): written[k] = clock()
st = fake.run(stop=stop, on_packet=on_packet)
np.save(sys.argv[3], written)
print(f'fake AC: wrote {st.packets} packets in {st.seconds:.1f} s, {st.skipped} skipped (late)', file=sys.stderr)
'''


class steady_cpu(threading.Thread):
    """A thread measuring the process's CPU share while it records, from `settle` s after the start to 0.5 s before
    the end (no connecting, topic checks or final file writing); its `share` once joined."""
    def __init__(self, seconds: float, settle: float = 3.0):
        super().__init__(daemon=True)
        self.seconds, self.settle, self.share = seconds, settle, float('nan')
        self.start()

    def run(self):
        time.sleep(self.settle); c0, w0 = cpu_seconds(), time.perf_counter()
        time.sleep(max(0.5, self.seconds - self.settle - 0.5))
        self.share = (cpu_seconds() - c0) / (time.perf_counter() - w0)


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def attribute(rec, written, poll_s):
    """Who lost each packet between the first and last one recorded: (late, close, stall).

    Packet k of the first loop has packetId k + 1; `written[k]` is when the fake AC wrote it (NaN: never)."""
    ids = rec['packet_id'].to_numpy()
    window = np.arange(ids[0], ids[-1] + 1)
    t = written[window - 1]
    late = np.isnan(t)
    lost = ~np.isin(window, ids) & ~late
    nxt = np.full(len(window), np.inf)  # when the packet was overwritten: the next packet written
    seen = np.flatnonzero(~late)
    nxt[seen[:-1]] = t[seen[1:]]
    close = lost & (nxt - t < poll_s)
    return int(late.sum()), int(close.sum()), int((lost & ~close).sum())


class BarePoller:
    """The floor this machine sets: a loop that only reads the packetId every POLL_S and notes new ones, nothing
    recorded or published. What it loses, any poller in Python loses here."""
    def __init__(self, pages): self.pages = pages

    def run(self, duration):
        pages, ids, times, last = self.pages, [], [], None
        end = time.monotonic() + duration
        while (now := time.monotonic()) < end:
            pid = pages.physics_packet_id()
            if pid != last:
                ids.append(pid); times.append(now); last = pid
            time.sleep(POLL_S)
        rec = pd.DataFrame({'packet_id': ids, 'timestamp': times})
        missed = int(np.sum(np.diff(ids) - 1))
        return SimpleNamespace(samples=len(ids), packets_missed=missed, packets_skipped=0, kafka=None, rec=rec)


def run(label, seconds, hz=None, kafka=None, live_hz=None, bare=False, batch_s=CollectorConfig.batch_s):
    with tempfile.TemporaryDirectory() as d:
        pages_dir, log = Path(d) / 'pages', Path(d) / 'written.npy'
        fake = subprocess.Popen([sys.executable, '-c', FAKE, str(sample_session_path()), str(pages_dir), str(log)],
                                stderr=subprocess.PIPE, text=True)
        try:
            with open_pages(pages_dir, wait=True, timeout=60) as pages:
                time.sleep(0.5)  # let the fake reach its pace
                cfg = CollectorConfig(out_dir=Path(d) / 'out', hz=hz, kafka=kafka, live_hz=live_hz, car_id='bench', poll_s=POLL_S,
                                      batch_s=batch_s)
                c0, w0 = cpu_seconds(), time.perf_counter()
                steady = steady_cpu(seconds)
                summary = (BarePoller(pages) if bare else Collector(pages, cfg)).run(duration=seconds)
                cpu, wall = cpu_seconds() - c0, time.perf_counter() - w0
                steady.join()
        finally:
            fake.terminate()
            err = fake.communicate(timeout=60)[1]
        if fake.returncode != 0: sys.exit(f'the fake AC failed:\n{err}')
        print('   ', err.strip().splitlines()[-1])
        rec = summary.rec if bare else load_session(summary.files[0])
        gaps = np.diff(rec['timestamp'].to_numpy()) * 1000  # the wall clock (session_time_s is the game's)
        expected = 1000 / (hz or 333)
        losses = '' if hz else '{:>6} {:>6} {:>6}'.format(*attribute(rec, np.load(log), POLL_S))
        unwritten = '-' if bare or hz else summary.packets_skipped
        print(f'{label:<36} {summary.samples:>8} {summary.packets_missed:>7} {unwritten:>9} {100 * cpu / wall:>6.1f}% {100 * steady.share:>6.1f}% '
              f'{np.median(gaps):>7.2f} {np.percentile(gaps, 99):>7.2f} {gaps.max():>7.2f}  {losses:<20}  (ideal gap {expected:.2f} ms)'
              + (f"  kafka delivered {summary.kafka.total('delivered')} messages ({kafka_split(summary.kafka)}), pending "
                 f"{summary.kafka.total('pending')}" if summary.kafka else ''))


def kafka_split(stats) -> str:
    from f1twin.schema import TELEMETRY_LIVE, TELEMETRY_BATCH
    return f"{stats.delivered.get(TELEMETRY_BATCH.name, 0)} batches, {stats.delivered.get(TELEMETRY_LIVE.name, 0)} one-sample"


def read_costs(n=20000):
    """Microseconds per read of the pages, with os.pread (open_pages) and through a mapping, on the fake AC's pages."""
    import mmap, timeit
    with tempfile.TemporaryDirectory(dir='/dev/shm' if os.access('/dev/shm', os.W_OK) else None) as d:
        fake = FakeAC(load_session(sample_session_path()).iloc[:50], d, hz=10, speed=100)
        fake.run()
        maps = {}
        for name, cls in PAGES.items():
            with open(Path(d) / PAGE_FILES[name], 'rb') as f:
                maps[name] = mmap.mmap(f.fileno(), ctypes.sizeof(cls), access=mmap.ACCESS_READ)
        print(f"{'read':<28} {'pread':>8} {'mmap':>8}   (microseconds; best of 5 x {n})")
        with open_pages(d) as pr, ACPages(maps, d) as mm:
            for what, op in [('physics_packet_id()', lambda ac: ac.physics_packet_id),
                             ('physics() + graphics() + map', lambda ac: lambda: to_record_fields(ac.physics(), ac.graphics()))]:
                us = [min(timeit.repeat(op(ac), number=n, repeat=5)) / n * 1e6 for ac in (pr, mm)]
                print(f'{what:<28} {us[0]:>8.2f} {us[1]:>8.2f}')


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seconds', type=float, default=60)
    ap.add_argument('--kafka', help='also run with Kafka publishing to this broker')
    a = ap.parse_args()
    read_costs()
    print(f'\n{a.seconds:g} s per run, fake AC at 333 Hz, poll every {POLL_S * 1000:g} ms; CPU is the collector '
          'process (share of one core) over the whole run (connecting, checking topics, writing the final file '
          'included), steady while it records (from 3 s in to 0.5 s before the end); packet ids not recorded, as the collector sorts them: missed (not polled in '
          'time), unwritten (the game jumped over them); and from the fake AC\'s log: late (never written), close '
          '(overwritten within one poll), stall (the collector was not polling)')
    print(f"{'run':<36} {'recorded':>8} {'missed':>7} {'unwritten':>9} {'CPU':>7} {'steady':>7} {'gap p50':>7} {'p99':>7} {'max':>7}  "
          f"{'late':>6} {'close':>6} {'stall':>6}")
    run('baseline: original design, 10 Hz', a.seconds, hz=10)
    run('floor: bare packetId poll loop', a.seconds, bare=True)
    run('f1twin: every packet (333 Hz)', a.seconds)
    if a.kafka:
        run('f1twin: + Kafka, one-sample 10 Hz only', a.seconds, kafka=a.kafka, live_hz=10, batch_s=None)
        run('before: + Kafka, a message per sample', a.seconds, kafka=a.kafka, batch_s=None)
        run(f'now: + Kafka, batches (default {CollectorConfig.batch_s:g} s)', a.seconds, kafka=a.kafka)
