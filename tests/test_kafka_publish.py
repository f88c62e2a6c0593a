"""f1twin.kafka_publish: the publisher never blocks or raises in the caller, buffers through outages, keeps each key's
order; what it needs from kafka-python, checked on the installed version and on the lowest one f1twin supports.

Outages are made on private brokers (the `kafka_instance` fixture), never on the shared one.
"""
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from kafka import KafkaAdminClient

from f1twin.kafka_admin import ensure_topics
from f1twin.kafka_publish import KafkaPublisher, PublishStats
from f1twin.kafka_read import TopicReader, consume
from f1twin.messages import META_FIELDS, StreamError, decode_message
from f1twin.schema import LAP_EVENTS, TELEMETRY_LIVE, message_key
from conftest import ROOT

KEY = message_key("rig1", "s1")
NOWHERE = "127.0.0.1:1"  # nothing listens there: connection refused at once
CHECK = ROOT / "tests" / "kafka_python_check.py"


def sample(i, car="rig1", session="s1"):
    return {"session_id": session, "car_id": car, "packet_id": i, "timestamp": 1757703617.0 + i / 100,
            "speed_kmh": 251.5, "rpm": 11200, "throttle": 1.0, "brake": 0.0, "steering": -0.02, "gear": 7,
            "car_x": -312.25, "car_y": 10.5, "car_z": 1208.75, "distance": float("nan"), "distance_total": 15230.5,
            "normalized_position": 0.42, "sector": 1, "completed_laps": 3, "current_lap_time_ms": 35120,
            "last_lap_time_ms": 81817, "best_lap_time_ms": 81186, "in_pit_lane": False, "g_lat": 1.8, "g_lon": -0.3}


def lap(n, car="rig1", session="s1"):
    return {"session_id": session, "car_id": car, "timestamp": 1757703617.0 + 80 * n, "lap_number": n,
            "lap_time_ms": 81000 + n, "sector_times": [27000 + n, 28000, 26000 - n], "best_lap": n % 3 == 0,
            "distance_total": 5793.0 * n}


def payload(m):
    return {k: v for k, v in m.items() if k not in META_FIELDS}


def spec_on(bootstrap, spec, unique_topic, suffix):
    s = replace(spec, name=f"{unique_topic}-{suffix}")
    ensure_topics(bootstrap, [s])
    return s


def drop_topics(bootstrap, *names):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_topics([n for n in names if n in set(admin.list_topics())], raise_errors=False)
    finally:
        admin.close()


def read_all(bootstrap, topics, start="earliest", **kw):
    return list(consume(bootstrap, topics, start=start, idle_timeout_s=1.0, **kw))


# --- with the shared broker ----------------------------------------------------------------------------------

def test_message_the_broker_refuses_counts_as_failed_and_does_not_block_the_rest(kafka_bootstrap, unique_topic):
    laps = spec_on(kafka_bootstrap, LAP_EVENTS, unique_topic, "laps")
    try:
        with KafkaPublisher(kafka_bootstrap) as pub:
            assert pub.check() is True
            pub.publish(laps.name, KEY, lap(1))
            pub.publish(laps.name, KEY, {**lap(2), "blob": "x" * 2_000_000})  # over the 1 MB request limit
            pub.publish(laps.name, KEY, lap(3))
            assert pub.flush(10)
            assert pub.stats().delivered == {laps.name: 2} and pub.stats().failed == {laps.name: 1}
        assert [m["lap_number"] for m in read_all(kafka_bootstrap, laps)] == [1, 3]
    finally:
        drop_topics(kafka_bootstrap, laps.name)


# --- without a broker ----------------------------------------------------------------------------------------

def test_publish_never_raises_or_blocks_without_a_broker(caplog):
    pub = KafkaPublisher(NOWHERE, droppable=["live"])
    t0 = time.perf_counter()
    slowest = 0.0
    for i in range(1000):
        t = time.perf_counter()
        assert pub.publish("live", KEY, sample(i)) is True
        slowest = max(slowest, time.perf_counter() - t)
    elapsed = time.perf_counter() - t0
    for bad in [("live", KEY, "not a dict"), ("live", KEY, {"when": datetime.now()}), (None, KEY, {}),
                ("live", 12, {}), ("live", KEY, {"v": 2})]:
        assert pub.publish(*bad) is False
    assert pub.publish("laps", "rig1/s1", lap(1)) is True, "a str key is encoded"
    assert pub.check() is False and not pub.connected, "unreachable: not an error, it buffers"
    t = time.monotonic()
    stats = pub.close(timeout=0.5)
    assert time.monotonic() - t < 3
    assert elapsed < 1.0 and slowest < 0.25, (elapsed, slowest)  # blocking would take seconds; 0.25 s allows a busy CI
    assert stats.pending == {"live": 1000, "laps": 1} and stats.total("delivered") == 0
    assert stats.failed == {"live": 4, "None": 1} and stats.dropped == {}
    assert stats.error == "connection refused" and "not connected (connection refused)" in str(stats)
    assert pub.publish("live", KEY, sample(0)) is False and pub.stats().failed["live"] == 5, "closed"
    down = [r for r in caplog.records if r.name == "f1twin.kafka" and "is unreachable" in r.getMessage()]
    assert len(down) == 1 and "127.0.0.1:1" in down[0].getMessage()


def test_a_server_that_never_answers_does_not_hang_publish_or_close():
    """A port that accepts connections but never speaks Kafka (a wrong service, a stuck broker)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        pub = KafkaPublisher(f"127.0.0.1:{silent.getsockname()[1]}", droppable=["live"])
        t0 = time.perf_counter()
        for i in range(200):
            assert pub.publish("live", KEY, sample(i))
        assert time.perf_counter() - t0 < 0.5
        silent.settimeout(10)  # the reachability check connects first, then the producer, which then waits
        conns = [silent.accept()[0] for _ in range(2)]
        t = time.monotonic()
        stats = pub.close(timeout=0.5)
        assert time.monotonic() - t < 4
        pub._thread.join(10)  # it gives up on that server within its 5 s connect timeout
        assert not pub._thread.is_alive()
        for c in conns:
            c.close()
    assert stats.pending == {"live": 200} and not stats.connected


def test_full_buffer_drops_oldest_telemetry_and_keeps_lap_events():
    pub = KafkaPublisher(NOWHERE, buffer_size=100, event_buffer_size=50, droppable=["live"])
    for i in range(300):
        pub.publish("live", KEY, sample(i))
        if i % 15 == 0:
            pub.publish("laps", KEY, lap(i // 15))
    kept = [decode_message(m[2])["packet_id"] for m in pub._buf.bulk]
    events = [decode_message(m[2])["lap_number"] for m in pub._buf.events]
    stats = pub.close(timeout=0)
    assert kept == list(range(200, 300)), "the newest 100 samples stay"
    assert events == list(range(20)), "every lap event stays"
    assert stats.pending == {"live": 100, "laps": 20} and stats.dropped == {"live": 200}
    # the event buffer is bounded too
    pub = KafkaPublisher(NOWHERE, event_buffer_size=5)
    for n in range(8):
        pub.publish("laps", KEY, lap(n))
    assert [decode_message(m[2])["lap_number"] for m in pub._buf.events] == [3, 4, 5, 6, 7]
    assert pub.close(timeout=0).dropped == {"laps": 3}


def test_buffers_are_bounded_in_megabytes_too():
    """Telemetry batches and agents' messages are far bigger than a sample: a long outage is bounded by the bytes
    held, not only by the count (the newest kept, the oldest dropped and counted; events have their own bound)."""
    pub = KafkaPublisher(NOWHERE, buffer_mb=0.25, event_buffer_mb=0.05, droppable=["live"])
    big = {"session_id": "s1", "car_id": "rig1", "note": "x" * 10_000}
    for i in range(100):
        pub.publish("live", KEY, {**big, "packet_id": i})
        pub.publish("laps", KEY, {**lap(i), "note": "y" * 2_000})
    held = {kind: pub._buf.nbytes[kind] for kind in ("telemetry", "event")}
    assert held == {"telemetry": sum(len(m[2]) for m in pub._buf.bulk), "event": sum(len(m[2]) for m in pub._buf.events)}
    assert 0.25 * 2**20 - 10_200 < held["telemetry"] <= 0.25 * 2**20 and held["event"] <= 0.05 * 2**20
    kept = [decode_message(m[2])["packet_id"] for m in pub._buf.bulk]
    laps_kept = [decode_message(m[2])["lap_number"] for m in pub._buf.events]
    stats = pub.close(timeout=0)
    size = held["telemetry"] // len(kept)  # every sample message has the same size here
    assert kept == list(range(100 - len(kept), 100)) and len(kept) == 2**18 // size, "the newest that fit in 256 KB"
    assert laps_kept == list(range(100 - len(laps_kept), 100)) and stats.dropped["laps"] == 100 - len(laps_kept)
    assert stats.pending == {"live": len(kept), "laps": len(laps_kept)} and stats.dropped["live"] == 100 - len(kept)
    for bad in (0, -1, float("nan"), float("inf"), "256", True):
        with pytest.raises(StreamError, match="buffer_mb must be a positive number of megabytes"):
            KafkaPublisher(NOWHERE, buffer_mb=bad)


def test_publish_cost():
    pub = KafkaPublisher(NOWHERE, buffer_size=10_000, droppable=["live"])
    costs = []
    for i in range(5000):
        s = sample(i)
        t = time.perf_counter_ns()
        pub.publish("live", KEY, s)
        costs.append(time.perf_counter_ns() - t)
    pub.close(timeout=0)
    costs = np.array(costs) / 1000
    print(f"publish: median {np.median(costs):.1f} µs, mean {costs.mean():.1f} µs, p99 {np.percentile(costs, 99):.1f} µs")
    assert np.median(costs) < 100


def test_publish_stats_text():
    s = PublishStats({"a": 3}, {"a": 1}, {}, {"b": 2}, False, 1, "Kafka at h:1 refused the login of 'u' (SASL_SSL, SASL PLAIN)")
    assert str(s) == ("delivered 3, pending 1, dropped 0, failed 2; not connected (Kafka at h:1 refused the login of 'u' "
                      "(SASL_SSL, SASL PLAIN)), 1 outage(s)")


# --- the outage ----------------------------------------------------------------------------------------------

def test_lap_events_survive_a_broker_outage(kafka_instance, unique_topic, caplog):
    """Stop a (private) broker mid-session, keep publishing, restart it: every lap event arrives, in order."""
    boot = kafka_instance.bootstrap
    live, laps = spec_on(boot, TELEMETRY_LIVE, unique_topic, "live"), spec_on(boot, LAP_EVENTS, unique_topic, "laps")
    caplog.set_level(logging.WARNING, logger="f1twin.kafka")
    pub = KafkaPublisher(boot, droppable=[live.name], buffer_size=10_000)
    sent, slowest, n_live = [], 0.0, 0

    def publish_lap():
        nonlocal slowest
        sent.append(lap(len(sent) + 1))
        t = time.perf_counter()
        assert pub.publish(laps.name, KEY, sent[-1])
        slowest = max(slowest, time.perf_counter() - t)

    def publish_live(n):
        nonlocal slowest, n_live
        for _ in range(n):
            t = time.perf_counter()
            assert pub.publish(live.name, KEY, sample(n_live))
            slowest = max(slowest, time.perf_counter() - t)
            n_live += 1

    try:
        for _ in range(5):
            publish_lap()
            publish_live(30)
        assert pub.flush(10) and pub.connected

        kafka_instance.stop()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (pub.connected or len(sent) < 15):
            publish_lap()
            publish_live(30)
            time.sleep(0.1)
        assert not pub.connected, "the publisher did not notice the broker going away"
        during = pub.stats()
        assert during.pending.get(laps.name, 0) > 0 and during.outages == 1

        kafka_instance.start()
        for _ in range(5):
            publish_lap()
            publish_live(30)
        assert pub.flush(30), f"not delivered after the broker came back: {pub.stats()}"
        assert pub.connected
    finally:
        stats = pub.close(timeout=5)

    assert slowest < 0.25, f"a publish took {slowest * 1000:.1f} ms"  # blocking on the broker takes seconds
    assert stats.pending == {} and stats.failed == {} and stats.dropped == {} and stats.outages == 1
    assert stats.delivered[laps.name] >= len(sent) and stats.delivered[live.name] >= n_live
    got = [payload(m) for m in read_all(boot, laps)]
    first = []
    for m in got:
        if m not in first:
            first.append(m)
    assert first == sent, "every lap event arrives exactly as sent, in order"
    print(f"{len(sent)} lap events sent, {len(got)} received ({len(got) - len(first)} duplicates); {n_live} samples")
    samples = read_all(boot, live)
    assert {m["packet_id"] for m in samples} == set(range(n_live))
    messages = [r.getMessage() for r in caplog.records if r.name == "f1twin.kafka" and boot in r.getMessage()]
    assert sum("is unreachable" in m for m in messages) == 1, messages
    assert sum("is reachable again" in m for m in messages) == 1, messages


# --- what f1twin needs from kafka-python ---------------------------------------------------------------------

def kafka_python_floor() -> str:
    "The lowest kafka-python settings.ini claims f1twin works with."
    m = re.search(r"kafka-python>=([\d.]+)", (ROOT / "settings.ini").read_text())
    assert m, "settings.ini has no kafka-python>=X requirement"
    return m[1]


@pytest.fixture(scope="module")
def floor_kafka_python(tmp_path_factory):
    """A folder holding only kafka-python at the floor version, to put first on PYTHONPATH."""
    target = tmp_path_factory.mktemp("kafka-python-floor")
    version = kafka_python_floor()
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                        f"kafka-python=={version}"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"pip could not install kafka-python=={version}:\n{r.stderr}"
    return target, version


class Check:
    """tests/kafka_python_check.py MODE BOOTSTRAP in a process of its own, with `kafka_path` first on PYTHONPATH."""
    def __init__(self, mode, bootstrap, kafka_path=None):
        env = {**os.environ, **({"PYTHONPATH": str(kafka_path)} if kafka_path else {})}
        self.p = subprocess.Popen([sys.executable, str(CHECK), mode, bootstrap], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def expect(self, line, timeout=60):
        got = self._line(timeout)
        assert got == line, f"expected {line!r} from the check, got {got!r}: {self.p.stderr.read() if not got else ''}"

    def tell(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def _line(self, timeout):
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(self.p.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            self.p.kill()
            pytest.fail(f"the check printed nothing within {timeout} s", pytrace=False)
        return self.p.stdout.readline().strip()

    def result(self, timeout=120):
        out, err = self.p.communicate(timeout=timeout)
        assert self.p.returncode == 0, f"the check failed:\n{err}"
        return json.loads(out.strip().splitlines()[-1])


def check_abandon(kafka_instance, kafka_path=None) -> dict:
    check = Check("abandon", kafka_instance.bootstrap, kafka_path)
    check.expect("ready")
    kafka_instance.kill()
    check.tell("broker down")
    r = check.result()
    # f1twin drops a producer at once in an outage with kafka-python's private KafkaProducer._sender.force_close();
    # if a kafka-python release removes or changes it, this fails here, not in a collector during an outage
    assert r["has_force_close"], f"kafka-python {r['kafka_python']} has no KafkaProducer._sender.force_close()"
    assert r["pending_before"] == 10 and r["failed"] == 10, r
    assert r["seconds"] < 3 and not r["sender_alive"], r
    return r


def test_abandon_drops_a_producer_at_once_with_installed_kafka_python(kafka_instance):
    import kafka
    r = check_abandon(kafka_instance)
    assert r["kafka_python"] == kafka.__version__


def test_the_lowest_kafka_python_f1twin_claims(kafka_bootstrap, kafka_instance, floor_kafka_python):
    """settings.ini's kafka-python floor, installed in a folder of its own: a publisher/reader round trip with
    validation, a producer abandoned in an outage, and a publisher that rides out the outage."""
    path, version = floor_kafka_python
    check = Check("roundtrip", kafka_bootstrap, path)
    r = check.result()
    assert r["kafka_python"] == version and r["kafka_file"].startswith(str(path)), r
    assert r["connected"] and r["flushed"] and r["laps"] == list(range(1, 51)), r
    assert r["counts"]["invalid"] == 1 and r["counts"]["messages"] == 50, r

    check = Check("outage", kafka_instance.bootstrap, path)
    check.expect("ready")
    kafka_instance.stop()
    check.tell("broker down")
    check.expect("buffering", timeout=60)
    kafka_instance.start()
    check.tell("broker up")
    r = check.result()
    assert r["noticed"] and r["flushed"] and r["first"] == list(range(1, 16)), r
    assert r["outages"] == 1 and r["pending"] == r["failed"] == r["dropped"] == 0, r
    check_abandon(kafka_instance, path)
