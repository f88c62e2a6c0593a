"""What f1twin needs from kafka-python, checked in a process of its own (so a test can put another kafka-python
version first on PYTHONPATH): `python tests/kafka_python_check.py MODE BOOTSTRAP`. Run by tests/test_kafka_publish.py.

- roundtrip: topics created, 50 lap events published and read back, an invalid message skipped;
- abandon:   a producer holding records for a broker that went away is closed at once by f1twin's `_abandon`,
             its records failed (kafka-python's private `_sender.force_close()`, which f1twin relies on);
- outage:    a KafkaPublisher rides out a broker outage: what it buffered is delivered after the restart, in order.

It prints `ready` / `buffering` and waits for a line on stdin where the test must stop or start the broker, and
prints its result as one JSON line last.
"""
import json
import sys
import time
import uuid
from dataclasses import replace

import kafka
from f1twin.kafka_admin import check_connection, ensure_topics
from f1twin.kafka_publish import KafkaPublisher, _abandon, _producer_config
from f1twin.kafka_read import TopicReader
from f1twin.messages import encode_message
from f1twin.schema import LAP_EVENTS, message_key

KEY = message_key("rig1", "s1")


def lap(n):
    return {"session_id": "s1", "car_id": "rig1", "timestamp": time.time(), "lap_number": n, "lap_time_ms": 81000 + n,
            "sector_times": [27000, 28000, 26000 + n], "best_lap": False, "distance_total": 5793.0 * n}


def topic(bootstrap):
    spec = replace(LAP_EVENTS, name=f"f1twin-kpcheck-{uuid.uuid4().hex[:10]}")
    ensure_topics(bootstrap, [spec])
    return spec


def say(what):
    print(what, flush=True)


def wait_for(line):
    got = sys.stdin.readline().strip()
    assert got == line, f"expected {line!r} on stdin, got {got!r}"


def read_back(bootstrap, spec):
    with TopicReader(bootstrap, spec, start="earliest") as r:
        got = list(r.messages(idle_timeout_s=3))
    return [m["lap_number"] for m in got], r.counts


def roundtrip(bootstrap):
    spec = topic(bootstrap)
    with KafkaPublisher(bootstrap) as pub:
        assert pub.check()
        for n in range(1, 51):
            pub.publish(spec.name, KEY, lap(n))
        pub.publish(spec.name, KEY, {**lap(51), "lap_number": 10**400})
        flushed = pub.flush(15)
    laps, counts = read_back(bootstrap, spec)
    return {"connected": check_connection(bootstrap), "flushed": flushed, "laps": laps, "counts": counts}


def abandon(bootstrap):
    spec = topic(bootstrap)
    p = kafka.KafkaProducer(**{k: v for k, v in _producer_config("f1twin-check", 0, 30.0).items()
                               if k in kafka.KafkaProducer.DEFAULT_CONFIG}, bootstrap_servers=bootstrap)
    p.send(spec.name, encode_message(lap(1)), key=KEY).get(15)
    say("ready")
    wait_for("broker down")
    futures = [p.send(spec.name, encode_message(lap(n)), key=KEY) for n in range(2, 12)]
    pending = sum(not f.is_done for f in futures)
    sender = getattr(p, "_sender", None)
    t = time.monotonic()
    _abandon(p, 30.0)
    took = time.monotonic() - t
    return {"pending_before": pending, "seconds": took, "failed": sum(f.is_done and f.failed() for f in futures),
            "has_force_close": hasattr(sender, "force_close"), "sender_alive": bool(sender and sender.is_alive())}


def outage(bootstrap):
    spec = topic(bootstrap)
    pub = KafkaPublisher(bootstrap, delivery_timeout_s=5)
    for n in range(1, 6):
        pub.publish(spec.name, KEY, lap(n))
    assert pub.flush(15)
    say("ready")
    wait_for("broker down")
    for n in range(6, 11):
        pub.publish(spec.name, KEY, lap(n))
    deadline = time.monotonic() + 20
    while pub.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    noticed = not pub.connected
    say("buffering")
    wait_for("broker up")
    for n in range(11, 16):
        pub.publish(spec.name, KEY, lap(n))
    flushed = pub.flush(45)
    stats = pub.close(5)
    laps, counts = read_back(bootstrap, spec)
    first = [n for i, n in enumerate(laps) if n not in laps[:i]]
    return {"noticed": noticed, "flushed": flushed, "first": first, "outages": stats.outages,
            "pending": stats.total("pending"), "failed": stats.total("failed"), "dropped": stats.total("dropped")}


if __name__ == "__main__":
    mode, bootstrap = sys.argv[1], sys.argv[2]
    result = {"roundtrip": roundtrip, "abandon": abandon, "outage": outage}[mode](bootstrap)
    print(json.dumps({"kafka_python": kafka.__version__, "kafka_file": kafka.__file__, **result}), flush=True)
