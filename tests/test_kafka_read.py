"""f1twin.kafka_read against real brokers: filters, start positions, late topics, what it skips (and that the panel
never sees it), and how fast it resumes after an outage (on a private broker)."""
import threading
import time
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from kafka import KafkaAdminClient, KafkaProducer

from f1twin.kafka_admin import ensure_topics
from f1twin.kafka_publish import KafkaPublisher
from f1twin.kafka_read import RECONNECT_BACKOFF_MAX_MS, TopicReader, consume
from f1twin.panel import PanelModel
from f1twin.messages import META_FIELDS, StreamError, encode_message
from f1twin.schema import LAP_EVENTS, TELEMETRY_LIVE, message_key
from conftest import broker_answers, wait_until

KEY = message_key("rig1", "s1")


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


@pytest.fixture
def make_topic(kafka_bootstrap, unique_topic):
    """make_topic(spec, **changes) -> the spec under a unique name; every topic made is deleted afterwards."""
    made = []

    def make(spec=LAP_EVENTS, **changes):
        s = replace(spec, name=f"{unique_topic}-{len(made)}", **changes)
        made.append(s.name)
        return s

    yield make
    if made:
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        try:
            existing = set(admin.list_topics())
            admin.delete_topics([t for t in made if t in existing], raise_errors=False)
        finally:
            admin.close()


def read_all(bootstrap, topics, start="earliest", **kw):
    return list(consume(bootstrap, topics, start=start, idle_timeout_s=1.0, **kw))


def test_publish_and_read_back_filtered_by_car_and_session(kafka_bootstrap, make_topic):
    live, laps = make_topic(TELEMETRY_LIVE), make_topic(LAP_EVENTS)
    security = {"security_protocol": "PLAINTEXT"}
    ensure_topics(kafka_bootstrap, [live, laps], security=security)
    readers = {tuple(f.items()): TopicReader(kafka_bootstrap, [live, laps], security=security, **f)
               for f in ({}, {"car_id": "rig1"}, {"car_id": "rig1", "session_id": "s1"}, {"session_id": "s1"})}
    cars = [("rig1", "s1"), ("rig2", "s1"), ("rig1", "s2")]
    with KafkaPublisher(kafka_bootstrap, droppable=[live.name], security=security) as pub:
        for i in range(150):
            car, session = cars[i % 3]
            assert pub.publish(live.name, message_key(car, session), sample(i, car, session))
        for n in range(1, 4):
            for car, session in cars:
                pub.publish(laps.name, message_key(car, session), lap(n, car, session))
        assert pub.flush(15)
        s = pub.stats()
    assert s.delivered == {live.name: 150, laps.name: 9} and s.total("pending") == s.total("dropped") == 0
    assert s.connected and s.outages == 0

    def cars_of(msgs):
        return {(m["car_id"], m["session_id"]) for m in msgs}

    got = {}
    for f, r in readers.items():
        msgs, deadline = [], time.monotonic() + 15
        want = {0: 159, 1: 106, 2: 53, 3: 106}[len(got)]
        while len(msgs) < want and time.monotonic() < deadline:
            msgs += r.poll(100, timeout_ms=200)
        assert r.counts["messages"] == len(msgs) and r.skipped == 0
        r.close()
        got[f] = msgs
    everything, rig1, rig1_s1, s1 = got.values()
    assert len(everything) == 159 and cars_of(everything) == set(cars)
    assert len(rig1) == 106 and cars_of(rig1) == {("rig1", "s1"), ("rig1", "s2")}
    assert len(rig1_s1) == 53 and cars_of(rig1_s1) == {("rig1", "s1")}
    assert len(s1) == 106 and cars_of(s1) == {("rig1", "s1"), ("rig2", "s1")}
    assert readers[()].counts["filtered"] == 0 and readers[(("car_id", "rig1"),)].counts["filtered"] == 53

    # each car's messages in the order published, exactly as published (NaN as null), with where they came from
    mine = [m for m in rig1_s1 if m["_topic"] == live.name]
    assert [payload(m) for m in mine] == [{**sample(i), "distance": None} for i in range(0, 150, 3)]
    assert [m["lap_number"] for m in rig1_s1 if m["_topic"] == laps.name] == [1, 2, 3]
    m = mine[0]
    assert m["_key"] == "rig1/s1" and m["_offset"] == 0 and 0 <= m["_partition"] < 3
    assert abs(m["_timestamp_ms"] / 1000 - time.time()) < 60


def test_reader_start_earliest_latest_and_time(kafka_bootstrap, make_topic):
    laps = make_topic(LAP_EVENTS)
    ensure_topics(kafka_bootstrap, [laps])
    with KafkaPublisher(kafka_bootstrap) as pub:
        for n in (1, 2, 3):
            pub.publish(laps.name, KEY, lap(n))
        assert pub.flush(10)
        last = read_all(kafka_bootstrap, laps)[-1]["_timestamp_ms"]
        wait_until(lambda: time.time() * 1000 > last + 5, 5, "the clock has moved past the last message")
        between = datetime.now(timezone.utc)
        latest = TopicReader(kafka_bootstrap, laps, start="latest")
        wait_until(lambda: time.time() * 1000 > between.timestamp() * 1000 + 5, 5, "the clock has moved on")
        for n in (4, 5, 6):
            pub.publish(laps.name, KEY, lap(n))
        assert pub.flush(10)

    def numbers(**kw):
        return [m["lap_number"] for m in read_all(kafka_bootstrap, laps, **kw)]

    got, deadline = [], time.monotonic() + 10
    while len(got) < 3 and time.monotonic() < deadline:
        got += latest.poll(10, timeout_ms=200)
    latest.close()
    assert [m["lap_number"] for m in got] == [4, 5, 6]
    assert numbers() == [1, 2, 3, 4, 5, 6]
    assert numbers(start=between) == [4, 5, 6]
    assert numbers(start=int(between.timestamp() * 1000)) == [4, 5, 6]
    assert numbers(start=timedelta(minutes=10)) == [1, 2, 3, 4, 5, 6]
    assert numbers(start=datetime.now(timezone.utc) + timedelta(minutes=1)) == []
    assert [m["lap_number"] for m in consume(kafka_bootstrap, laps, start="earliest", max_messages=2)] == [1, 2]
    for bad, words in [("yesterday", "'latest', 'earliest'"), (datetime.now(), "no time zone"),
                       (time.time(), "looks like seconds"), (True, "expected"), (-5, "not a time")]:
        with pytest.raises(StreamError, match=words):
            TopicReader(kafka_bootstrap, laps, start=bad)


def test_reader_picks_up_a_topic_created_later(kafka_bootstrap, make_topic):
    laps = make_topic(LAP_EVENTS)
    with TopicReader(kafka_bootstrap, laps) as reader:
        assert reader.poll(timeout_ms=100) == []
        ensure_topics(kafka_bootstrap, [laps])
        with KafkaPublisher(kafka_bootstrap) as pub:
            pub.publish(laps.name, KEY, lap(1))
            assert pub.flush(10)
        got, deadline = [], time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            got = reader.poll(timeout_ms=200)
    assert [m["lap_number"] for m in got] == [1]
    with pytest.raises(StreamError, match="closed"):
        reader.poll()


def test_malformed_foreign_and_invalid_messages_are_skipped_and_counted(kafka_bootstrap, make_topic):
    laps = make_topic(LAP_EVENTS)
    ensure_topics(kafka_bootstrap, [laps])
    raw = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        values = [encode_message(lap(1)), b'{"lap_number": 2', b"\xff\xfe garbage", b"[1, 2, 3]", b"",
                  b'{"lap_number": 3}', b'{"v": 99, "lap_number": 4}', None, encode_message(lap(5)),
                  encode_message({**lap(7), "lap_number": 10**400}), encode_message({**lap(8), "lap_time_ms": "fast"}),
                  b'{"v":1,"lap_number":NaN}']
        for v in values:
            raw.send(laps.name, key=KEY, value=v)
        raw.send(laps.name, key=None, value=encode_message(lap(6)))
        raw.flush(10)
    finally:
        raw.close()
    with TopicReader(kafka_bootstrap, laps, start="earliest") as r:
        got = list(r.messages(idle_timeout_s=1.5))
        assert [m["lap_number"] for m in got] == [1, 5, 6]
        assert r.counts == {"messages": 3, "filtered": 0, "malformed": 6, "foreign": 2, "invalid": 2} and r.skipped == 10
        assert r.invalid == {(laps.name, "lap_number"): 1, (laps.name, "lap_time_ms"): 1}
    with TopicReader(kafka_bootstrap, laps.name, start="earliest", car_id="rig1") as r:  # by a name f1twin does not know
        assert [m["lap_number"] for m in r.messages(idle_timeout_s=1.5)] == [1, 5]
        assert r.counts["filtered"] == 1, "the message without a key"
        assert r.counts["invalid"] == 2, "a topic by name: the declared fields a message carries are checked"


def test_the_panel_never_sees_a_number_it_cannot_use(kafka_bootstrap):
    """Issue 9: `completed_laps` = 10**400 on the live topic crashed the panel model with OverflowError."""
    car = f"huge-{uuid.uuid4().hex[:8]}"
    key = message_key(car, "s1")
    ensure_topics(kafka_bootstrap)
    reader = TopicReader(kafka_bootstrap, [TELEMETRY_LIVE.name, LAP_EVENTS.name], car_id=car)
    raw = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        good = [{**sample(i, car), "completed_laps": 3} for i in range(5)]
        for v in [good[0], {**good[1], "completed_laps": 10**400}, {**good[2], "speed_kmh": 10**400}, good[3]]:
            raw.send(TELEMETRY_LIVE.name, key=key, value=encode_message(v))
        raw.send(LAP_EVENTS.name, key=key, value=encode_message({**lap(3, car), "lap_time_ms": 10**400}))
        raw.flush(10)
    finally:
        raw.close()
    model, got, deadline = PanelModel(), [], time.monotonic() + 15
    while reader.counts["messages"] + reader.skipped < 5 and time.monotonic() < deadline:
        batch = reader.poll(100, timeout_ms=200)
        got += batch
        model.ingest(batch, counts=reader.counts)  # raised OverflowError before the reader checked every field
    reader.close()
    assert [m["packet_id"] for m in got] == [0, 3]
    assert reader.counts["invalid"] == 3 and reader.invalid == {
        (TELEMETRY_LIVE.name, "completed_laps"): 1, (TELEMETRY_LIVE.name, "speed_kmh"): 1, (LAP_EVENTS.name, "lap_time_ms"): 1}
    assert model.car(f"{car}/s1").samples == 2


def test_reader_resumes_within_2s_of_the_broker_answering_again(kafka_instance, unique_topic):
    """Issue 9: after an outage the reader took about 19 s to resume (kafka-python's reconnect backoff grows to 30 s).
    Now it reads a message sent after the restart within 2 s of that message being acknowledged."""
    boot = kafka_instance.bootstrap
    laps = replace(LAP_EVENTS, name=f"{unique_topic}-laps")
    ensure_topics(boot, [laps])
    reader = TopicReader(boot, laps)

    def send(n):
        p = KafkaProducer(bootstrap_servers=boot, acks="all")
        try:
            p.send(laps.name, key=KEY, value=encode_message(lap(n))).get(10)
        finally:
            p.close()

    got = []

    def received(n):
        got.extend(reader.poll(100, timeout_ms=50))
        return any(m["lap_number"] == n for m in got)

    send(1)
    wait_until(lambda: received(1), 15, "the reader has lap 1")
    kafka_instance.stop()
    outage_end = time.monotonic() + 15  # long enough for kafka-python's own backoff to have grown past 10 s
    while time.monotonic() < outage_end:
        assert reader.poll(100, timeout_ms=100) == []  # polling through the outage, as the panel's thread does
    kafka_instance.start()
    wait_until(lambda: broker_answers(boot, 2), 30, "the broker answers again")
    send(2)
    acked = time.monotonic()
    deadline = acked + 30
    while not received(2) and time.monotonic() < deadline:
        pass
    took = time.monotonic() - acked
    reader.close()
    print(f"resumed {took:.2f} s after the first message after the outage was acknowledged "
          f"(reconnect backoff capped at {RECONNECT_BACKOFF_MAX_MS} ms)")
    assert [m["lap_number"] for m in got] == [1, 2]
    assert took < 2.0, f"the reader took {took:.1f} s to resume"


# -- the reader's own wait (the 50 ms tail) and batches of samples --------------------------------------------------
from f1twin.events import replay  # noqa: E402
from f1twin.io import load_session, sample_session_path  # noqa: E402
from f1twin.kafka_read import session_from_topics  # noqa: E402
from f1twin.laps import lap_table  # noqa: E402
from f1twin.messages import batch_columns, encode_array  # noqa: E402
from f1twin.panel import PANEL_TOPICS  # noqa: E402
from f1twin.schema import TELEMETRY_BATCH, TOPICS  # noqa: E402
from conftest import ROOT  # noqa: E402

GAME = {sample_session_path(): [81817, 81186, 82539, 82165], ROOT / "data" / "telemetry_2025-09-13_16-18-26.csv": [82160, 81790]}


def test_a_fetch_that_leaves_a_partition_out_does_not_make_it_wait(kafka_bootstrap, make_topic):
    """kafka-python leaves a partition out of a fetch while records it has for it wait to be taken; with its IO thread a
    response can land between a poll's taking and its next fetch, and a message for that partition then waited for the
    whole fetch_max_wait_ms of a fetch without it (in the bench, 1-2 % of the batches, up to the wait: p99 230 ms with
    a 500 ms wait). Such a fetch asks the broker not to wait; a fetch of every partition still waits. Here the landing
    is made to happen: a response is buffered, then the next fetch is sent without taking it, as poll does."""
    laps = make_topic(LAP_EVENTS, partitions=3)
    ensure_topics(kafka_bootstrap, [laps])
    with TopicReader(kafka_bootstrap, laps, start="latest") as r, KafkaPublisher(kafka_bootstrap) as pub:
        assert r.no_wait_when_partial, "this kafka-python has no Fetcher._create_fetch_requests/_fetchable_partitions"
        fetcher, sent, answered = r._consumer._fetcher, [], threading.Event()
        build, done = fetcher._create_fetch_requests, fetcher._clear_pending_fetch_request
        fetcher._create_fetch_requests = lambda: (lambda q: sent.extend(q.values()) or q)(build())
        fetcher._clear_pending_fetch_request = lambda *a: (done(*a), answered.set())  # a fetch answered (seen here only)
        for _ in range(2):  # the first fetch answers for every partition; from the second, only for those with records
            answered.clear()
            assert r.poll(10, timeout_ms=0) == []
            wait_until(answered.is_set, 10, "a fetch answered (empty, after its fetch_max_wait_ms)")
        answered.clear()
        assert r.poll(10, timeout_ms=0) == [] and [(req.max_wait_ms, len(p)) for req, p in sent] == [(100, 3)] * 3
        pub.publish(laps.name, KEY, lap(1))
        assert pub.flush(10)

        def lap_buffered():
            if fetcher._completed_fetches: return True
            if answered.is_set():  # an empty answer (its wait ran out before the lap): the next fetch, as poll sends it
                answered.clear()
                fetcher.send_fetches()
            return False
        wait_until(lap_buffered, 10, "the response with the lap buffered")
        n = len(sent)
        fetcher.send_fetches()  # the next fetch, the response not taken
        (wait, parts), = [(req.max_wait_ms, set(p)) for req, p in sent[n:]]
        got = []
        wait_until(lambda: got.extend(r.poll(10, timeout_ms=500)) or got, 10, "the lap read")
        assert [m["lap_number"] for m in got] == [1]
        assert len(parts) == 2 and all(tp.partition != got[0]["_partition"] for tp in parts), parts
        assert wait == 0, "a fetch that leaves a partition out must not wait"
        wait_until(lambda: r.poll(10, timeout_ms=0) == [] and any(len(p) == 3 for _, p in sent[n + 1:]), 10, "a whole fetch again")
        assert all(req.max_wait_ms == (100 if len(p) == 3 else 0) for req, p in sent)


def test_a_batch_round_trips_through_the_broker_into_the_panel(kafka_bootstrap):
    """The bundled session (10 Hz) published as the collector publishes it (every sample in batches, here one a second
    of session: ten samples; the batch's newest sample on the one-sample topic) and read by the panel's reader: the
    model has every sample, once, and the game's laps."""
    session = load_session(sample_session_path())
    car = f"batch-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap)
    reader = TopicReader(kafka_bootstrap, list(PANEL_TOPICS), start="latest", car_id=car)
    try:
        with KafkaPublisher(kafka_bootstrap) as pub:
            sent = replay(session, pub.publish, speed=1e9, car_id=car, batch_s=1.0)
            assert pub.flush(30) and pub.stats().total("failed") == 0
        model = PanelModel()
        wait_until(lambda: model.ingest(reader.poll(5000, timeout_ms=200), counts=reader.counts) is not None
                   and reader.counts["messages"] >= sum(sent.messages.values()), 30, "every message read")
    finally:
        reader.close()
    c = model.car()
    assert reader.skipped == 0 and model.invalid == 0 and c.key.startswith(f"{car}/")
    assert c.samples == len(session) and dict(c.lap_times) == dict(enumerate(GAME[sample_session_path()], 1))
    assert model.by_topic[TELEMETRY_BATCH.name] == sent.messages[TELEMETRY_BATCH.name] <= len(session) / 9


def test_a_malformed_batch_on_the_topic_is_skipped_and_counted(kafka_bootstrap, make_topic):
    """Batches written straight into the topic: a good one is read, one that is not JSON, one of another version and
    one whose column breaks its rule are skipped and counted (the invalid one under its field, 'columns')."""
    topic = make_topic(TELEMETRY_BATCH)
    ensure_topics(kafka_bootstrap, [topic])
    recs = [sample(i) for i in range(30)]
    good = {"session_id": "s1", "car_id": "rig1", "timestamp": 1757703617.0, "columns": batch_columns(recs)}
    bad_gear = {**good, "columns": {**good["columns"], "gear": encode_array(np.full(30, 1000), "i4")}}
    raw = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        for v in [encode_message(good), encode_message(bad_gear), encode_message(good)[:-40], b'{"columns": {}}']:
            raw.send(topic.name, key=KEY, value=v)
        raw.flush(10)
    finally:
        raw.close()
    with TopicReader(kafka_bootstrap, topic, start="earliest") as r:
        got = list(r.messages(idle_timeout_s=1.5))
        assert r.counts == {"messages": 1, "filtered": 0, "malformed": 1, "foreign": 1, "invalid": 1}
        assert r.invalid == {(topic.name, "columns"): 1}
    model = PanelModel()
    assert model.ingest([{**m, "_topic": TELEMETRY_BATCH.name} for m in got]) == 1
    assert model.car("rig1/s1").samples == 30


@pytest.mark.parametrize("path", list(GAME))
def test_a_report_read_back_from_batches_has_the_games_lap_times(kafka_bootstrap, path):
    """A session published in batches (and one-sample messages) and read back from Kafka: every sample once, in
    order, and the lap and sector times of the game."""
    session = load_session(path)
    car = f"report-{uuid.uuid4().hex[:8]}"
    with KafkaPublisher(kafka_bootstrap, ensure=TOPICS.values()) as pub:
        replay(session, pub.publish, speed=1e9, car_id=car, batch_s=1.0)
        assert pub.flush(30)
    back = session_from_topics(kafka_bootstrap, session.attrs["f1twin"]["session_id"], car_id=car, idle_timeout_s=2)
    assert back["packet_id"].tolist() == session["packet_id"].tolist()
    t = lap_table(back).dropna(subset=["lap_time_ms"])
    assert t["lap_time_ms"].tolist() == GAME[path]
    assert t[["s1_ms", "s2_ms", "s3_ms"]].sum(axis=1).tolist() == GAME[path]


def test_a_session_read_back_stops_at_the_end_and_never_mixes_two_cars(kafka_bootstrap):
    """session_from_topics reads what the topics hold and stops there (not after an idle wait), and a session id sent
    by two rigs gives one car's samples with a warning naming both, or the car asked for."""
    import subprocess, sys, warnings
    from pathlib import Path
    from f1twin.kafka_read import session_from_topics
    from f1twin.laps import lap_table
    session = Path(__file__).resolve().parent.parent / 'data' / 'telemetry_2025-09-13_16-18-26.csv'
    cars = [f'two-{uuid.uuid4().hex[:6]}' for _ in range(2)]
    since = datetime.now(timezone.utc)
    for car in cars:
        r = subprocess.run([sys.executable, '-c', 'import sys; from f1twin.cli import main; sys.exit(main())', 'replay', str(session), '--kafka', kafka_bootstrap,
                            '--speed', '1000', '--car', car], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    t = time.monotonic()
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter('always')
        df = session_from_topics(kafka_bootstrap, since=since, idle_timeout_s=300)
    assert time.monotonic() - t < 60, 'it stopped at the end of the topics, not after 300 s without messages'
    [w] = [w for w in said if 'was sent by' in str(w.message)]
    assert all(c in str(w.message) for c in cars) and df.attrs['f1twin']['car_id'] in cars
    assert len(df) == 2021 and lap_table(df)['lap_time_ms'].dropna().tolist() == [82160, 81790], 'one car, not both'
    one = session_from_topics(kafka_bootstrap, '2025-09-13_16-18-26', car_id=cars[1], since=since)
    assert one.attrs['f1twin']['car_id'] == cars[1] and len(one) == 2021


@pytest.mark.kafka
def test_a_session_that_is_not_on_the_topics_says_what_was_read(kafka_bootstrap):
    """A session id nobody sent: read to the topics' end (not an idle wait), and the error says how much was read."""
    from f1twin.kafka_read import session_from_topics
    from f1twin.schema import SECTOR_TIMES, TELEMETRY_BATCH
    ensure_topics(kafka_bootstrap, [TELEMETRY_BATCH, TELEMETRY_LIVE, SECTOR_TIMES])
    with pytest.raises(StreamError, match=r"no telemetry of session 'nobody-.*read to their end: \d+ message\(s\), none of it"):
        session_from_topics(kafka_bootstrap, f'nobody-{uuid.uuid4().hex[:8]}', idle_timeout_s=300)
