"""Collector benchmark: the fake AC at 333 Hz (a separate process, as the game), the collector recording.

Prints, for each configuration: packets the fake AC wrote, packets the collector recorded and missed, the
collector's CPU use (share of one core), and sampling jitter (spread of the interval between recorded packets).
Baseline in the same run: the original design's collector, polling every 100 ms (10 Hz).

    python bench/collector_bench.py [--seconds 60] [--kafka HOST:PORT]

Targets (issue 3): 0 packets missed at 333 Hz, CPU under 10 % of one core.

Reading the figures: the fake AC runs in its own process and logs the time it wrote each packet, so every
packetId the collector did not record is put down to one cause:
- "late": the fake AC itself fell more than a step behind and never wrote the packet (the game's physics
  thread starved by the machine), nobody could have recorded it;
- "close": written and overwritten by the next packet within one poll interval (POLL_S), before a poll could
  see it;
- "stall": the collector was not polling for longer than that (descheduled, the GIL held by another thread).
"missed" in the table counts every jump in the packetId (late + close + stall); what the collector could have
recorded and did not is close + stall. The "floor" row is a
loop that only polls the packetId, nothing else: what it loses is this machine's scheduling, not f1twin's work.
POLL_S=0.0005 polls twice as often (more CPU).
"""
import argparse, os, resource, subprocess, sys, tempfile, time
from types import SimpleNamespace
from pathlib import Path

import numpy as np
import pandas as pd

from f1twin.collector import Collector, CollectorConfig
from f1twin.io import load_session, sample_session_path
from f1twin.shm import open_pages

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
        rec = pd.DataFrame({'packet_id': ids, 'session_time_s': times})
        missed = int(np.sum(np.diff(ids) - 1))
        return SimpleNamespace(samples=len(ids), packets_missed=missed, kafka=None, rec=rec)


def run(label, seconds, hz=None, kafka=None, live_hz=None, bare=False):
    with tempfile.TemporaryDirectory() as d:
        pages_dir, log = Path(d) / 'pages', Path(d) / 'written.npy'
        fake = subprocess.Popen([sys.executable, '-c', FAKE, str(sample_session_path()), str(pages_dir), str(log)],
                                stderr=subprocess.PIPE, text=True)
        try:
            with open_pages(pages_dir, wait=True, timeout=60) as pages:
                time.sleep(0.5)  # let the fake reach its pace
                cfg = CollectorConfig(out_dir=Path(d) / 'out', hz=hz, kafka=kafka, live_hz=live_hz, car_id='bench', poll_s=POLL_S)
                c0, w0 = cpu_seconds(), time.perf_counter()
                summary = (BarePoller(pages) if bare else Collector(pages, cfg)).run(duration=seconds)
                cpu, wall = cpu_seconds() - c0, time.perf_counter() - w0
        finally:
            fake.terminate()
            err = fake.communicate(timeout=60)[1]
        if fake.returncode != 0: sys.exit(f'the fake AC failed:\n{err}')
        print('   ', err.strip().splitlines()[-1])
        rec = summary.rec if bare else load_session(summary.files[0])
        gaps = np.diff(rec['session_time_s'].to_numpy()) * 1000
        expected = 1000 / (hz or 333)
        losses = '' if hz else '{:>6} {:>6} {:>6}'.format(*attribute(rec, np.load(log), POLL_S))
        print(f'{label:<36} {summary.samples:>8} {summary.packets_missed:>7} {100 * cpu / wall:>6.1f}% '
              f'{np.median(gaps):>7.2f} {np.percentile(gaps, 99):>7.2f} {gaps.max():>7.2f}  {losses:<20}  (ideal gap {expected:.2f} ms)'
              + (f"  kafka delivered {summary.kafka.total('delivered')}, pending {summary.kafka.total('pending')}" if summary.kafka else ''))


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seconds', type=float, default=60)
    ap.add_argument('--kafka', help='also run with Kafka publishing to this broker')
    a = ap.parse_args()
    print(f'{a.seconds:g} s per run, fake AC at 333 Hz, poll every {POLL_S * 1000:g} ms; CPU is the collector '
          'process (share of one core); packet ids lost: late (the fake AC never wrote them), close (overwritten '
          'within one poll), stall (the collector was not polling)')
    print(f"{'run':<36} {'recorded':>8} {'missed':>7} {'CPU':>7} {'gap p50':>7} {'p99':>7} {'max':>7}  "
          f"{'late':>6} {'close':>6} {'stall':>6}")
    run('baseline: original design, 10 Hz', a.seconds, hz=10)
    run('floor: bare packetId poll loop', a.seconds, bare=True)
    run('f1twin: every packet (333 Hz)', a.seconds)
    if a.kafka:
        run('f1twin: every packet + Kafka 10 Hz', a.seconds, kafka=a.kafka, live_hz=10)
        run('f1twin: every packet + Kafka 333 Hz', a.seconds, kafka=a.kafka)
