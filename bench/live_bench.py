"""Live panel benchmark: publish-to-model latency on a real broker, redraw cost, consumer throughput, bounded memory.

Four measurements, each printed beside the original design's dashboard loop measured in the same run (poll the
consumer with a 100 ms timeout, rebuild a whole plotly `go.Figure` of the last 1000 messages -- speed-coloured
trail plus car marker -- then sleep 0.1 s; the loop of the design's "Streamlit Consumer Dashboard"):

1. latency: a publisher process (f1twin's KafkaPublisher driven by `events.replay` at 1x, every message stamped
   with `timestamp = time.time()` just before `publish`) sends a 333 Hz session as one-sample messages at 10 Hz
   and at 333 Hz (with the publisher's linger_ms, default 5), and as the collector sends it by default, recording
   at 333 Hz and at 10 Hz (`collect --hz 10`: the session resampled): every sample in a batch every 0.1 s on
   ac-telemetry-batch, the batch's newest sample on ac-telemetry-live; this
   process reads it with a TopicReader on the panel's topics filtered by a fresh car id (`poll(5000,
   timeout_ms=50)`, as LivePanel's feed thread) and feeds `PanelModel.ingest`; latency = the time `ingest`
   returned minus the stamp. Each f1twin run is done twice, with the TopicReader as it is and as it was (a fetch that
   leaves partitions out, their records buffered, waited its whole fetch_max_wait_ms, 100 ms, with the next message
   for them on the broker and `poll` waiting on it: the ~50 ms tail at 10 Hz, the late batches at 333 Hz). For batches, the publish stamp is the
   batch's, and "sample age" is from the time the replay passed each sample (what the batching adds). The
   baseline's latency is the time the figure that includes the message was built.
2. redraw: a LivePanel whose model holds three laps at 333 Hz; 33 new samples (0.1 s at 333 Hz) are ingested
   before each `redraw()`; median/p95 of `LivePanel.frame_ms`. No browser: the widgets' state is serialised into
   comm messages that a no-op comm (ipywidgets' DummyComm, as outside a kernel) drops; a second, shorter pass also
   JSON-encodes every message (what the kernel would do before sending it) and counts them.
3. throughput: 200,000 live messages from 20 car ids pre-produced into a fresh topic (deleted afterwards); one
   TopicReader drains them, alone and feeding a PanelModel. Without the package crc32c kafka-python computes
   CRC-32C in pure Python and produces and reads only about 5,000 messages/s: then 60,000 by default.
4. memory: the messages of a 1-hour 333 Hz session (about 1.2 M, from `events.replay`) fed to a PanelModel, time
   compressed (ingested as fast as they are made); the model's deep size, the process RSS and the buffer lengths
   after 1, 5, 10, 30, 45 and 60 minutes of session. `--real-time` also runs the actual 10x replay through
   `file_feed` (6 minutes per session hour).

    python bench/live_bench.py [--kafka HOST:PORT] [--latency-s 15] [--batch-latency-s 60] [--rates 10 333] [--linger-ms 5]
                               [--frames 300] [--messages 200000] [--memory-minutes 60] [--real-time]
                               [--skip latency redraw throughput memory]

Without --kafka the local broker (`make kafka-up`, or `F1TWIN_KAFKA`) is used. About 11 minutes on 2 cores (9 of them the latency runs).

The "floor" rows send the same one-sample stream and read it with Kafka's own Java consumer (kafka-clients from the
broker's jars, compiled with javac at run time): what the broker and this machine give, whatever the Python client
(if it misses the target too, no change to f1twin's reader can meet it here). The last floor row times Kafka's own
Java producer, send to acknowledgement, on an idle broker: a reader gets a message about when its producer gets the
acknowledgement, so that round trip is in every latency above.

Targets (issue 5): latency p99 < 10 ms at 10 Hz and at 333 Hz; redraw < 30 ms per frame; one consumer keeps up
with 20 rigs at 333 Hz (about 6,700 msg/s) with room to spare; memory after an hour of replay at 10x equal to
memory after a minute.
"""
import argparse, gc, json, os, subprocess, sys, time, types, uuid, warnings
from collections import deque
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from laps_bench import long_session  # noqa: E402
from f1twin.fakeac import resample_session  # noqa: E402
ROOT = Path(__file__).resolve().parent.parent
from f1twin import events, kafka_admin, kafka_publish, kafka_read, messages  # noqa: E402
from f1twin.live import LivePanel  # noqa: E402
from f1twin.panel import PanelModel  # noqa: E402
from f1twin.schema import TELEMETRY_LIVE, TELEMETRY_BATCH, TOPICS, TopicSpec, message_key  # noqa: E402
from f1twin.panel import PANEL_TOPICS  # noqa: E402
from f1twin.messages import batch_arrays  # noqa: E402

LIVE, BATCH = TELEMETRY_LIVE.name, TELEMETRY_BATCH.name
HZ = 333
SAMPLES_PER_FRAME = 33  # 0.1 s at 333 Hz: what arrives between two frames at the panel's 10 fps


def pct(a, q):
    return float(np.percentile(a, q)) if len(a) else float('nan')


def rss_mb() -> float:
    with open('/proc/self/statm') as f: return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 1e6


_SKIP = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType)


def deep_size(root) -> int:
    "Bytes of every Python object reachable from `root` (each counted once; classes, modules and functions skipped)."
    seen, stack, total = set(), [root], 0
    while stack:
        o = stack.pop()
        if id(o) in seen or isinstance(o, _SKIP): continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        stack.extend(gc.get_referents(o))
    return total


def sink_into(out: list):
    "A `publish(topic, key, value)` that keeps what a feed's poll would return (no JSON round trip, no broker)."
    n = [0]
    def publish(topic, key, value):
        m = dict(value)
        m.update(_topic=topic, _key=key.decode(), _timestamp_ms=int(time.time() * 1000), _partition=0, _offset=n[0])
        n[0] += 1
        out.append(m)
        return True
    return publish


# -- the baseline: the original design's dashboard -------------------------------------------------------------------
def baseline_figure(buf):
    "The original design's `create_live_circuit_map`: a whole new figure from the buffer, every cycle."
    import plotly.graph_objects as go
    if not buf: return go.Figure()
    x = [p['car_x'] for p in buf]
    z = [p['car_z'] for p in buf]
    speeds = [p['speed_kmh'] for p in buf]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=z, mode='markers+lines', marker=dict(color=speeds, colorscale='Viridis', size=4), name='Track'))
    cur = buf[-1]
    fig.add_trace(go.Scatter(x=[cur['car_x']], y=[cur['car_z']], mode='markers', marker=dict(size=15, color='red', symbol='circle'),
                             name='Current Position'))
    return fig


# -- 1. latency ------------------------------------------------------------------------------------------------------
def publisher_main(cfg: dict):
    "The publisher process: wait for 'go' on stdin, replay `seconds` of a 333 Hz session at 1x, print its stats."
    rows = int((cfg['seconds'] + 0.5) * HZ)
    df = long_session(cfg['seconds'] / 60 + 0.1).iloc[:rows].reset_index(drop=True)
    if cfg.get('batch_s') and cfg['hz'] < HZ: df = resample_session(df, cfg['hz'])  # a collector recording at hz (--hz)
    pub = kafka_publish.KafkaPublisher(cfg['bootstrap'], linger_ms=cfg['linger_ms'], client_id='f1twin-bench-publisher')
    warm = message_key(cfg['car'] + '-warmup', 'warmup')  # another car: the reader filters it out
    for topic in TOPICS: pub.publish(topic, warm, {'car_id': cfg['car'] + '-warmup', 'session_id': 'warmup'})
    ok = pub.flush(20)
    print('ready' if ok else 'broker-not-ready', flush=True)
    if not ok or sys.stdin.readline().strip() != 'go': pub.close(2); return

    def publish(topic, key, value):
        value['timestamp'] = time.time()  # the publish time, read back by the consumer
        return pub.publish(topic, key, value)
    batch_s = cfg.get('batch_s')
    r = events.replay(df, publish, speed=1.0, car_id=cfg['car'], batch_s=batch_s,
                      live_hz=None if cfg['hz'] >= HZ or batch_s else cfg['hz'])
    pub.flush(10)
    st = pub.close(5)
    print(json.dumps({'sent': r.messages, 'live': r.messages.get(BATCH if batch_s else LIVE, 0),
                      'delivered': st.total('delivered') - len(TOPICS),
                      'dropped': st.total('dropped'), 'failed': st.total('failed'), 'pending': st.total('pending'),
                      'seconds': r.seconds}), flush=True)


def start_publisher(bootstrap, car, hz, seconds, linger_ms, batch_s=None):
    cfg = dict(bootstrap=bootstrap, car=car, hz=hz, seconds=seconds, linger_ms=linger_ms, batch_s=batch_s)
    p = subprocess.Popen([sys.executable, __file__, '--publisher', json.dumps(cfg)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    if line != 'ready':
        p.kill(); p.wait()
        raise SystemExit(f'the publisher did not get ready ({line or "no output"})')
    return p


def finish_publisher(p) -> dict:
    out = p.stdout.read().strip().splitlines()
    p.wait()
    return json.loads(out[-1]) if out else {}


def old_fetches(reader):
    "Make `reader` fetch as TopicReader did before: a fetch that leaves partitions out waits its whole fetch_max_wait_ms."
    if reader.no_wait_when_partial:  # (a kafka-python it cannot wrap fetches as before anyway)
        del reader._consumer._fetcher._create_fetch_requests  # kafka-python's own, not _no_wait_when_partial's wrapper


def latency_f1twin(bootstrap, hz, seconds, linger_ms, batch_s=None, old=False):
    "(latency of the messages carrying samples, ms; sample age for batches, ms; the publisher's stats)."
    car = f'bench-{uuid.uuid4().hex[:8]}'
    pub = start_publisher(bootstrap, car, hz, seconds, linger_ms, batch_s)
    reader = kafka_read.TopicReader(bootstrap, list(PANEL_TOPICS), start='latest', car_id=car, client_id='f1twin-bench-live')
    if old: old_fetches(reader)
    model = PanelModel(car_id=car)
    lat, age, carrier = [], [], BATCH if batch_s else LIVE
    pub.stdin.write('go\n'); pub.stdin.flush()
    last = time.monotonic()
    try:
        while pub.poll() is None or time.monotonic() - last < 1.0:
            batch = reader.poll(5000, timeout_ms=50)  # LivePanel's feed thread: max_batch 5000, poll_ms 50
            if not batch: continue
            model.ingest(batch, counts=reader.counts)
            now = time.time()
            last = time.monotonic()
            lat.extend((now - m['timestamp']) * 1000 for m in batch if m['_topic'] == carrier)
            for m in batch:
                if m['_topic'] == BATCH: age.extend((now - batch_arrays(m['columns'])['timestamp']) * 1000)
    finally:
        reader.close()
    st = finish_publisher(pub)
    return np.array(lat), np.array(age), st


JAVA_READER = """
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.TopicPartition;
import java.time.*;
import java.util.*;
public class F1twinFloorReader {  // args: bootstrap topic; prints "<receive time, epoch s>\t<value>" per record
  public static void main(String[] a) {
    Properties p = new Properties();
    p.put("bootstrap.servers", a[0]); p.put("fetch.max.wait.ms", "100"); p.put("enable.auto.commit", "false");
    p.put("key.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer");
    p.put("value.deserializer", "org.apache.kafka.common.serialization.StringDeserializer");
    try (KafkaConsumer<byte[], String> c = new KafkaConsumer<>(p)) {
      List<TopicPartition> tps = new ArrayList<>();
      c.partitionsFor(a[1]).forEach(i -> tps.add(new TopicPartition(i.topic(), i.partition())));
      c.assign(tps); c.seekToEnd(tps); tps.forEach(c::position);
      System.out.println("ready"); System.out.flush();
      while (true) for (ConsumerRecord<byte[], String> r : c.poll(Duration.ofMillis(100))) {
        Instant t = Instant.now();
        System.out.println((t.getEpochSecond() + t.getNano() / 1e9) + "\t" + r.value()); System.out.flush();
      }
    }
  }
}
"""


JAVA_ROUND_TRIP = """
import org.apache.kafka.clients.producer.*;
import java.util.*;
public class F1twinRoundTrip {  // args: bootstrap topic bytes n; prints the send -> acknowledged times, ms, one per line
  public static void main(String[] a) throws Exception {
    Properties p = new Properties();
    p.put("bootstrap.servers", a[0]); p.put("acks", "all"); p.put("linger.ms", "0");
    p.put("key.serializer", "org.apache.kafka.common.serialization.ByteArraySerializer");
    p.put("value.serializer", "org.apache.kafka.common.serialization.ByteArraySerializer");
    byte[] v = new byte[Integer.parseInt(a[2])];
    try (KafkaProducer<byte[], byte[]> pr = new KafkaProducer<>(p)) {
      for (int i = 0; i < 2000; i++) pr.send(new ProducerRecord<>(a[1], v)).get();  // the broker's JIT warmed
      for (int i = 0; i < Integer.parseInt(a[3]); i++) {
        long t0 = System.nanoTime(); pr.send(new ProducerRecord<>(a[1], v)).get();
        System.out.println((System.nanoTime() - t0) / 1e6); Thread.sleep(20);
      }
    }
  }
}
"""


def java_compiled(name: str, source: str):
    "The classpath of Java class `name` compiled from `source` with the broker's jars, or None without javac or jars."
    import shutil, tempfile
    jars = ROOT / '.cache' / 'kafka' / 'jars'
    if not shutil.which('javac') or not any(jars.glob('kafka-clients-*.jar')): return None
    d = Path(tempfile.mkdtemp(prefix='f1twin-floor-'))
    (d / f'{name}.java').write_text(source)
    cp = f'{d}:{jars}/*'
    if subprocess.run(['javac', '-cp', cp, '-d', str(d), str(d / f'{name}.java')], capture_output=True).returncode: return None
    return cp


def broker_round_trip(bootstrap, size=6000, n=500):
    """Send -> acknowledged times (ms) of Kafka's own Java producer (acks=all, one message of `size` bytes every 20 ms,
    after 2,000 to warm the broker) on a fresh topic: the broker's share of any publish -> panel latency, or None."""
    cp = java_compiled('F1twinRoundTrip', JAVA_ROUND_TRIP)
    if cp is None: return None
    topic = f'f1twin-bench-rt-{uuid.uuid4().hex[:8]}'
    kafka_admin.ensure_topics(bootstrap, [TopicSpec(topic, TELEMETRY_LIVE.retention_ms, '', TELEMETRY_LIVE.fields, partitions=1)])
    try:
        r = subprocess.run(['java', '-Xmx256m', '-cp', cp, 'F1twinRoundTrip', bootstrap, topic, str(size), str(n)],
                           capture_output=True, text=True, timeout=300)
        ms = [float(x) for x in r.stdout.split()]
        return np.array(ms) if len(ms) == n else None
    finally:
        try:
            from kafka import KafkaAdminClient
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id='f1twin-bench-admin')
            admin.delete_topics([topic]); admin.close()
        except Exception: pass


def java_reader(bootstrap, topic):
    """Kafka's own Java consumer (kafka-clients, from the jars tools/kafka_local.py fetched) on `topic`, compiled into a
    temporary folder; the process (printing "ready", then a line per record), or None without javac or the jars."""
    cp = java_compiled('F1twinFloorReader', JAVA_READER)
    if cp is None: return None
    p = subprocess.Popen(['java', '-Xmx256m', '-cp', cp, 'F1twinFloorReader', bootstrap, topic], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    if p.stdout.readline().strip() != 'ready':
        p.kill(); return None
    return p


def latency_java_floor(bootstrap, hz, seconds, linger_ms, batch_s=None):
    """The same stream (f1twin's publisher, as above: one-sample, or the collector's batches with `batch_s`) read by Kafka's
    own Java consumer: what this broker and machine give whatever the Python client (latency = the Java reader's receive
    time minus the publish stamp)."""
    import threading
    reader = java_reader(bootstrap, BATCH if batch_s else LIVE)
    if reader is None: return None, {}
    car, lat = f'bench-{uuid.uuid4().hex[:8]}', []
    def read():
        for line in reader.stdout:
            t, _, raw = line.rstrip('\n').partition('\t')
            try: m = json.loads(raw)
            except ValueError: continue
            if m.get('car_id') == car: lat.append((float(t) - m['timestamp']) * 1000)
    th = threading.Thread(target=read, daemon=True)
    th.start()
    pub = start_publisher(bootstrap, car, hz, seconds, linger_ms, batch_s)
    pub.stdin.write('go\n'); pub.stdin.flush()
    st = finish_publisher(pub)
    deadline = time.monotonic() + 5
    while len(lat) < st.get('live', 0) and time.monotonic() < deadline: time.sleep(0.05)  # the last lines, with a deadline
    reader.kill(); reader.wait()
    return np.array(lat), st


def latency_baseline(bootstrap, hz, seconds, linger_ms):
    "The original design's loop on the same stream: poll(timeout_ms=100), rebuild the figure, sleep(0.1)."
    from kafka import KafkaConsumer
    car = f'bench-{uuid.uuid4().hex[:8]}'
    pub = start_publisher(bootstrap, car, hz, seconds, linger_ms)
    consumer = KafkaConsumer(LIVE, bootstrap_servers=bootstrap, client_id='f1twin-bench-baseline',
                             value_deserializer=lambda m: json.loads(m.decode('utf-8')))
    for _ in range(50):  # positioned at the end before anything is published
        consumer.poll(timeout_ms=100)
        if consumer.assignment():
            for tp in consumer.assignment(): consumer.position(tp)
            break
    mine = f'{car}/'.encode()
    buf, lat = deque(maxlen=1000), []
    pub.stdin.write('go\n'); pub.stdin.flush()
    last = time.monotonic()
    try:
        while pub.poll() is None or time.monotonic() - last < 1.0:
            new = []
            for _, msgs in consumer.poll(timeout_ms=100).items():
                for msg in msgs:
                    if msg.key is not None and msg.key.startswith(mine):  # (the design reads one car; others share the topic here)
                        buf.append(msg.value); new.append(msg.value)
            baseline_figure(buf)
            now = time.time()
            if new: last = time.monotonic()
            lat.extend((now - v['timestamp']) * 1000 for v in new)
            time.sleep(0.1)
    finally:
        consumer.close()
    st = finish_publisher(pub)
    return np.array(lat), st


def run_latency(a, bootstrap):
    print(f'\n1. latency, publish -> panel model (broker {bootstrap}; {a.latency_s:g} s per one-sample run, {a.batch_latency_s:g} s per run of the '
          'collector\'s batches (10 messages/s: a p99 of 600, not of 150); the publisher is another '
          'process: f1twin\'s KafkaPublisher fed by events.replay at 1x, linger_ms as shown (the default, what the collector '
          'uses, is 5); reader "now": a fetch that leaves partitions out does not wait; "before": it waits; "floor": the '
          'same stream read by Kafka\'s own Java consumer, what the broker and machine give; target p99 < 10 ms)')
    print(f"   {'run':<66} {'received':>11} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'> 10 ms':>8} {'> 40 ms':>8}")
    rows = [('f1twin', hz, lg, None, old) for lg in a.linger_ms for hz in a.rates for old in (True, False)]
    rows += [('f1twin', hz, 5, b, old) for b in a.batch_s for hz in a.rates for old in (True, False)]
    rows += [('floor', hz, 5, None, False) for hz in a.rates]
    rows += [('floor', hz, 5, b, False) for b in a.batch_s for hz in a.rates]
    rows += [('baseline', hz, 0, None, False) for hz in a.baseline_rates]
    for kind, hz, linger, batch_s, old in rows:
        if kind == 'f1twin':
            lat, age, st = latency_f1twin(bootstrap, hz, a.batch_latency_s if batch_s else a.latency_s, linger, batch_s, old)
            label = (f'f1twin {hz:g} Hz one-sample, linger {linger}, reader {"before" if old else "now"}' if not batch_s else
                     f'f1twin {hz:g} Hz collector default: batch every {batch_s:g} s, reader {"before" if old else "now"}')
        elif kind == 'floor':
            (lat, st), age = latency_java_floor(bootstrap, hz, a.batch_latency_s if batch_s else a.latency_s, linger, batch_s), np.array([])
            label = (f'floor: {hz:g} Hz one-sample read by Kafka\'s Java consumer' if not batch_s else
                     f'floor: {hz:g} Hz collector default read by Kafka\'s Java consumer')
            if lat is None:
                print(f'   {label:<66} (not run: needs javac and the broker jars of `make kafka-up`)')
                continue
        else:
            (lat, st), age = latency_baseline(bootstrap, hz, a.latency_s, linger), np.array([])
            label = f'baseline {hz:g} Hz, linger {linger}: poll 100 ms, new figure, sleep 0.1 s'
        got = f"{len(lat)}/{st.get('live', '?')}"
        print(f'   {label:<66} {got:>11} {pct(lat, 50):>7.1f} {pct(lat, 99):>7.1f} {lat.max() if len(lat) else float("nan"):>7.1f} '
              f'{(lat > 10).sum():>8} {(lat > 40).sum():>8}'
              + (f"  (dropped {st['dropped']}, failed {st['failed']})" if st.get('dropped') or st.get('failed') else ''))
        if len(age):
            print(f"   {'   its samples, from the replay passing each to ingest (sample age)':<66} {len(age):>11} {pct(age, 50):>7.1f} "
                  f"{pct(age, 99):>7.1f} {age.max():>7.1f} {(age > 10).sum():>8} {(age > 40).sum():>8}")
    rt = broker_round_trip(bootstrap)
    label = "floor: the broker's round trip, Kafka's Java producer (6 kB, acks=all)"
    if rt is None: print(f'   {label:<66} (not run: needs javac and the broker jars of `make kafka-up`)')
    else:
        print(f'   {label:<66} {len(rt):>11} {pct(rt, 50):>7.1f} {pct(rt, 99):>7.1f} {rt.max():>7.1f} {(rt > 10).sum():>8} '
              f'{(rt > 40).sum():>8}')
        print('   (a message reaches a waiting reader when the broker has appended it, about when the producer has its '
              'acknowledgement: this row is the part of every row above that no client can remove)')


# -- 2. redraw -------------------------------------------------------------------------------------------------------
class CountingComm:
    "Stands in for a kernel's comm: JSON-encodes each widget message as the kernel would, counts messages and bytes."
    def __init__(self): self.messages = self.bytes = 0
    def send(self, data=None, metadata=None, buffers=None):
        self.messages += 1
        self.bytes += len(json.dumps(data, ensure_ascii=False, allow_nan=False, default=str).encode()) + sum(len(memoryview(b).cast('B')) for b in buffers or ())


def widgets_of(panel) -> list:
    "Every widget of the panel: the boxes' children, and their layouts and styles."
    out, stack = [], [panel.widget]
    while stack:
        x = stack.pop()
        if x is None or any(x is y for y in out): continue
        out.append(x)
        stack.extend(getattr(x, 'children', ()) or ())
        stack.extend(getattr(x, k, None) for k in ('layout', 'style'))
    return out


def run_redraw(a):
    print(f'\n2. redraw cost per frame (a model holding 3 laps at 333 Hz; {SAMPLES_PER_FRAME} new samples before each frame; '
          'no browser: widget messages are built, then dropped by a no-op comm; target < 30 ms)')
    df = long_session(7)
    t = df['session_time_s'].to_numpy()
    warm = int(np.searchsorted(t, t[0] + 3 * 82.0))
    df = df.iloc[:warm + (a.frames + 60) * SAMPLES_PER_FRAME]
    msgs = []
    events.replay(df, sink_into(msgs), speed=1e9, car_id='bench-redraw')
    live_idx = [i for i, m in enumerate(msgs) if m['_topic'] == LIVE]
    cut = live_idx[warm]
    head, tail = msgs[:cut], msgs[cut:]
    frames = [tail[i:i + SAMPLES_PER_FRAME] for i in range(0, len(tail), SAMPLES_PER_FRAME)]
    # the view before issue 12 (no reference, no driver row), the same frames, timed first
    old = LivePanel(events.MemoryFeed(), car_id='bench-redraw')
    old._draw_driver = lambda snap: None
    old.model.ingest(head); old.redraw()
    for f in frames[:5 + a.frames]: old.model.ingest(f); old.redraw()
    old_ms = np.array(list(old.frame_ms)[-a.frames:])
    old.close(); del old
    # all of it on: a reference from the start (session 2's best lap), the delta bar, predicted lap, splits, shift light
    panel = LivePanel(events.MemoryFeed(), car_id='bench-redraw', reference=ROOT / 'data' / 'telemetry_2025-09-13_16-18-26.csv')
    panel.model.ingest(head)
    buf = deque((m for m in head if m['_topic'] == LIVE), maxlen=1000)  # for the baseline
    del msgs, head, live_idx
    gc.collect()  # the 100k messages just ingested are gone: no collector pass over them inside a frame
    panel.redraw()  # the first frame also fits the circuit outline (once)
    for f in frames[:5]: panel.model.ingest(f); panel.redraw()  # warm-up
    panel.frame_ms.clear()
    full_gc = []  # Python's full (generation 2) collections during the timed frames: they pause whatever runs
    def on_gc(phase, info, t=[0.0]):
        if phase == 'start': t[0] = time.perf_counter()
        elif info['generation'] == 2: full_gc.append((time.perf_counter() - t[0]) * 1000)
    gc.callbacks.append(on_gc)
    try:
        for f in frames[5:5 + a.frames]:
            panel.model.ingest(f)
            panel.redraw()
    finally: gc.callbacks.remove(on_gc)
    ms = np.array(panel.frame_ms)
    # a second pass with every widget message JSON-encoded (the kernel's share of a frame, without the socket)
    comm = CountingComm()
    for wdg in widgets_of(panel):
        if getattr(wdg, 'comm', None) is not None: wdg.comm.send = comm.send
    panel.frame_ms.clear()
    extra = frames[5 + a.frames:5 + a.frames + 50]
    for f in extra:
        panel.model.ingest(f)
        panel.redraw()
    ms_json = np.array(panel.frame_ms)
    # baseline: a new figure of the last 1000 messages every frame, plus to_json (what st.plotly_chart sends)
    build, tojson = [], []
    for f in frames[5:5 + min(a.frames, 200)]:
        buf.extend(m for m in f if m['_topic'] == LIVE)
        t0 = time.perf_counter(); fig = baseline_figure(buf); t1 = time.perf_counter(); fig.to_json(); t2 = time.perf_counter()
        build.append((t1 - t0) * 1000); tojson.append((t2 - t0) * 1000)
    build, tojson = np.array(build), np.array(tojson)
    c = panel.model.car()
    print(f"   {'run':<58} {'frames':>7} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7}")
    print(f"   {'before: LivePanel.redraw without reference and driver row':<58} {len(old_ms):>7} {pct(old_ms, 50):>7.1f} {pct(old_ms, 95):>7.1f} {old_ms.max():>7.1f}")
    print(f"   {'f1twin LivePanel.redraw (frame_ms), widget messages dropped':<58} {len(ms):>7} {pct(ms, 50):>7.1f} {pct(ms, 95):>7.1f} {ms.max():>7.1f}"
          + (f"  (max: {len(full_gc)} full garbage collection(s) of the process's {len(gc.get_objects()):,} objects meanwhile, "
             f"up to {max(full_gc):.0f} ms)" if full_gc else ''))
    print(f"   {'f1twin LivePanel.redraw + JSON of its widget messages':<58} {len(ms_json):>7} {pct(ms_json, 50):>7.1f} {pct(ms_json, 95):>7.1f} {ms_json.max():>7.1f}"
          f"  ({comm.messages / max(len(ms_json), 1):.0f} messages, {comm.bytes / max(len(ms_json), 1) / 1e3:.0f} kB per frame)")
    print(f"   {'baseline: new go.Figure of the last 1000 messages':<58} {len(build):>7} {pct(build, 50):>7.1f} {pct(build, 95):>7.1f} {build.max():>7.1f}")
    print(f"   {'baseline: new go.Figure + fig.to_json()':<58} {len(tojson):>7} {pct(tojson, 50):>7.1f} {pct(tojson, 95):>7.1f} {tojson.max():>7.1f}")
    print(f'   (f1twin draws the map trail ({len(c.trail)} points, <= {panel.map_points} drawn), gauges, two time-series '
          f'figures ({len(c.series)} points), metrics, the sector table, and the driver row against {c.ref.label}: delta bar, '
          f'predicted lap, splits, shift light; the baseline draws the map only)')


def crc_impl() -> str:
    from kafka.record import util
    return ('with the C module crc32c' if getattr(util, 'crc32c_c', None) is not None
            else 'in pure Python (the optional package crc32c is not installed)')


# -- 3. throughput ---------------------------------------------------------------------------------------------------
def run_throughput(a, bootstrap):
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    cars = 20
    per_car = a.messages // cars
    topic = f'f1twin-bench-{uuid.uuid4().hex[:8]}'
    print(f'\n3. throughput, one consumer ({a.messages:,} live messages of {cars} cars pre-produced into the fresh topic '
          f'{topic}, {TELEMETRY_LIVE.partitions} partitions; target well above {cars} x 333 = {cars * 333:,} msg/s)')
    kafka_admin.ensure_topics(bootstrap, [TopicSpec(topic, TELEMETRY_LIVE.retention_ms, '', TELEMETRY_LIVE.fields,
                                               partitions=TELEMETRY_LIVE.partitions)])
    try:
        step = 1500
        recs = long_session(2).iloc[:per_car + step * cars].to_dict('records')
        run = uuid.uuid4().hex[:6]
        t0 = time.perf_counter()
        prod = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=1 << 20, acks=1,
                             client_id='f1twin-bench-producer', max_request_size=8 << 20)
        keys = [message_key(f'rig{i:02d}-{run}', f'bench-{run}') for i in range(cars)]
        for j in range(per_car):
            for i in range(cars):
                v = events.live_message(recs[i * step + j])
                v['car_id'], v['session_id'] = f'rig{i:02d}-{run}', f'bench-{run}'
                prod.send(topic, value=messages.encode_message(v), key=keys[i])
        prod.flush(60); prod.close()
        total = per_car * cars
        print(f'   (produced in {time.perf_counter() - t0:.1f} s with a raw kafka-python producer, messages of about '
              f'{len(messages.encode_message(v))} bytes)')

        def drain(model: PanelModel | None):
            reader = kafka_read.TopicReader(bootstrap, topic, start='earliest', client_id='f1twin-bench-drain')
            n, t0, last = 0, time.perf_counter(), time.perf_counter()
            try:
                while n < total and time.perf_counter() - last < 10:
                    batch = reader.poll(5000, timeout_ms=100)
                    if not batch: continue
                    last = time.perf_counter()
                    if model is not None:
                        for m in batch: m['_topic'] = LIVE  # the bench topic stands for ac-telemetry-live
                        model.ingest(batch, counts=reader.counts)
                    n += len(batch)
            finally: reader.close()
            return n, time.perf_counter() - t0

        def drain_raw():
            c = KafkaConsumer(topic, bootstrap_servers=bootstrap, client_id='f1twin-bench-raw', auto_offset_reset='earliest',
                              check_crcs=False, value_deserializer=lambda m: json.loads(m.decode('utf-8')))
            n, t0, last = 0, time.perf_counter(), time.perf_counter()
            try:
                while n < total and time.perf_counter() - last < 10:
                    got = c.poll(timeout_ms=100, max_records=5000)
                    k = sum(len(v) for v in got.values())
                    if k: last = time.perf_counter(); n += k
            finally: c.close()
            return n, time.perf_counter() - t0

        def baseline_loop(seconds):
            c = KafkaConsumer(topic, bootstrap_servers=bootstrap, client_id='f1twin-bench-baseline-loop', auto_offset_reset='earliest',
                              value_deserializer=lambda m: json.loads(m.decode('utf-8')))
            buf, n, t0 = deque(maxlen=1000), 0, time.perf_counter()
            try:
                while time.perf_counter() - t0 < seconds and n < total:
                    for _, msgs in c.poll(timeout_ms=100).items():
                        for msg in msgs: buf.append(msg.value); n += 1
                    baseline_figure(buf)
                    time.sleep(0.1)
            finally: c.close()
            return n, time.perf_counter() - t0

        model = PanelModel()
        print(f"   {'consumer':<58} {'messages':>9} {'seconds':>8} {'msg/s':>9} {'x target':>8}")
        target = cars * 333
        for label, (n, dt) in (('f1twin TopicReader.poll alone', drain(None)),
                               ('f1twin TopicReader.poll + PanelModel.ingest', drain(model)),
                               ('reference: kafka-python KafkaConsumer, no CRC check, json', drain_raw())):
            print(f'   {label:<58} {n:>9,} {dt:>8.2f} {n / dt:>9,.0f} {n / dt / target:>8.1f}')
        # the model alone, from decoded messages
        sample = []
        for j in range(min(per_car, 5000)):
            for i in range(cars):
                v = events.live_message(recs[i * step + j]); v['car_id'], v['session_id'] = f'rig{i:02d}-x', 'x'
                v.update(_topic=LIVE, _key=f'rig{i:02d}-x/x', _timestamp_ms=0)
                sample.append(v)
        m2 = PanelModel()
        t0 = time.perf_counter()
        for k in range(0, len(sample), 5000): m2.ingest(sample[k:k + 5000])
        dt = time.perf_counter() - t0
        print(f"   {'f1twin PanelModel.ingest alone (decoded messages)':<58} {len(sample):>9,} {dt:>8.2f} {len(sample) / dt:>9,.0f} {len(sample) / dt / target:>8.1f}")
        n, dt = baseline_loop(a.baseline_drain_s)
        print(f"   {'baseline loop: poll (500 max) + new figure + sleep 0.1 s':<58} {n:>9,} {dt:>8.2f} {n / dt:>9,.0f} {n / dt / target:>8.1f}")
        print(f'   (model: {len(model.cars)} cars, {model.messages:,} messages used, {model.invalid} invalid; kafka-python checks '
              f'each batch\'s CRC-32C {crc_impl()}, TopicReader does not turn that off)')
    finally:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id='f1twin-bench-admin')
            admin.delete_topics([topic]); admin.close()
        except Exception as e: print(f'   (could not delete the bench topic {topic}: {e})')


# -- 4. memory -------------------------------------------------------------------------------------------------------
def buffers(model: PanelModel) -> str:
    c = model.car()
    ref = len(c.ref[0]) if c.ref else 0
    return (f'trail {len(c.trail)}, series {len(c.series)}, laps {len(c.lap_times)}, sector rows {len(c.sectors)}, '
            f'delta ref {ref}, lap trace {len(c._td)}, outline {len(c.outline[0])}, cars {len(model.cars)}')


def run_memory(a):
    print(f'\n4. memory of the panel model over a {a.memory_minutes:g}-minute 333 Hz session (time compressed: the messages of '
          'events.replay are ingested as fast as they are made; target: the same after the hour as after a minute)')
    print('   (every buffer of the model is bounded by a count of samples, laps or cars, and the decimation follows the '
          'session clock in the messages, not the wall clock: the same messages leave the same state at any speed)')
    df = long_session(a.memory_minutes)
    t = df['session_time_s'].to_numpy()
    df = df.iloc[:int(np.searchsorted(t, t[0] + 60 * a.memory_minutes))]
    t = t[:len(df)]
    model = PanelModel(car_id='bench-mem')
    gc.collect()
    base_rss = rss_mb()
    checks = sorted({1, 5, 10, 30, 45, int(a.memory_minutes)} & set(range(1, int(a.memory_minutes) + 1)))
    t0, n, rows = time.perf_counter(), 0, []
    print(f"   {'session time':<14} {'messages':>10} {'model kB':>9} {'RSS MB':>8}  buffers")
    for minute in range(1, int(a.memory_minutes) + 1):
        lo, hi = np.searchsorted(t, t[0] + 60 * (minute - 1)), np.searchsorted(t, t[0] + 60 * minute)
        if lo >= hi: break
        msgs = []
        events.replay(df.iloc[lo:hi], sink_into(msgs), speed=1e9, car_id='bench-mem')
        for k in range(0, len(msgs), 5000): model.ingest(msgs[k:k + 5000])
        n += len(msgs)
        del msgs
        if minute in checks:
            gc.collect()
            size = deep_size(model) / 1e3
            rows.append(size)
            print(f'   {minute:>4} min       {n:>10,} {size:>9.0f} {rss_mb():>8.0f}  {buffers(model)}')
    print(f'   ({n:,} messages in {time.perf_counter() - t0:.0f} s; model kB: deep size of every object the PanelModel holds; '
          f'RSS: the whole process, {base_rss:.0f} MB before the first message, the session frame included)')
    if len(rows) > 1:
        ten = f', / after 10 min (a minute of replay at 10x): {rows[-1] / rows[checks.index(10)]:.2f}x' if 10 in checks[:-1] else ''
        print(f'   model after {checks[-1]} min / after 1 min: {rows[-1] / rows[0]:.2f}x{ten}. The first laps fill the trail, the lap '
              f'trace and the delta reference; the lap and sector history is full at {model.car().laps_kept} laps; then nothing grows.')
    if a.real_time:
        real_time(a, df, first_minute=int(np.searchsorted(t, t[0] + 60)))


def real_time(a, df, first_minute: int):
    print(f'   --real-time: the same session through file_feed at 10x ({a.memory_minutes * 6:.0f} s), polled as LivePanel does')
    feed = events.file_feed(df, speed=10, car_id='bench-rt')
    model = PanelModel(car_id='bench-rt')
    t0, first = time.monotonic(), None
    try:
        while not (feed.done and not feed._q):
            model.ingest(feed.poll(5000, timeout_ms=50), counts=feed.counts)
            if first is None and model.by_topic.get(LIVE, 0) >= first_minute:  # a minute of session
                first = deep_size(model) / 1e3
                print(f'   after 1 min of session: model {first:.0f} kB, {model.messages:,} messages, {buffers(model)}')
    finally: feed.close()
    size = deep_size(model) / 1e3
    print(f'   after {a.memory_minutes:g} min of session ({time.monotonic() - t0:.0f} s): model {size:.0f} kB, '
          f'{model.messages:,} messages ({feed.counts["messages"]:,} published), {buffers(model)}'
          + (f'; {size / first:.2f}x the first minute' if first else ''))


if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] == '--publisher':
        publisher_main(json.loads(sys.argv[2])); sys.exit(0)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--kafka', help='bootstrap HOST:PORT (default: the local broker of `make kafka-up`)')
    ap.add_argument('--latency-s', type=float, default=15, help='seconds of publishing per one-sample latency run')
    ap.add_argument('--batch-latency-s', type=float, default=60, help="seconds of publishing per run of the collector's batches")
    ap.add_argument('--rates', type=float, nargs='+', default=[10, 333], help='f1twin latency runs (Hz)')
    ap.add_argument('--baseline-rates', type=float, nargs='*', default=[10, 333], help='baseline latency runs (Hz)')
    ap.add_argument('--linger-ms', type=int, nargs='+', default=[5], help="the publisher's linger_ms, f1twin one-sample runs "
                    "per value and rate (f1twin's default: 5); the baseline runs use 0")
    ap.add_argument('--batch-s', type=float, nargs='*', default=[0.1], help='f1twin runs with batches (the collector default: 0.1 s)')
    ap.add_argument('--frames', type=int, default=300, help='frames timed in the redraw run (at most 600)')
    ap.add_argument('--messages', type=int, help='messages pre-produced for the throughput run (default 200,000; '
                    '60,000 when kafka-python computes CRC-32C in pure Python, which limits it to about 5,000 msg/s)')
    ap.add_argument('--baseline-drain-s', type=float, default=8, help='seconds the baseline loop drains the throughput topic')
    ap.add_argument('--memory-minutes', type=float, default=60, help='session minutes fed to the model')
    ap.add_argument('--real-time', action='store_true', help='also replay the session at 10x through file_feed (6 min per hour)')
    ap.add_argument('--skip', nargs='*', default=[], choices=['latency', 'redraw', 'throughput', 'memory'])
    a = ap.parse_args()
    a.frames = min(a.frames, 600)
    if a.messages is None: a.messages = 200_000 if 'C module' in crc_impl() else 60_000
    t_start = time.perf_counter()
    warnings.filterwarnings('ignore', message='value_deserializer', category=DeprecationWarning)  # the design's lambda
    bootstrap = None
    if not {'latency', 'throughput'} <= set(a.skip):
        bootstrap = a.kafka or kafka_admin.local_bootstrap()
        if bootstrap is None: raise SystemExit('no Kafka broker: start one with `make kafka-up`, or pass --kafka HOST:PORT')
        kafka_admin.ensure_topics(bootstrap)
    print(f'live panel benchmark: python {sys.version.split()[0]}, {os.cpu_count()} CPUs')
    if 'latency' not in a.skip: run_latency(a, bootstrap)
    if 'redraw' not in a.skip: run_redraw(a)
    if 'throughput' not in a.skip: run_throughput(a, bootstrap)
    if 'memory' not in a.skip: run_memory(a)
    print(f'\n(whole run: {time.perf_counter() - t_start:.0f} s)')
