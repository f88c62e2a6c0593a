"""f1twin.messages: the message format and the per-topic validation every reader applies (no broker needed)."""
import json
import random
from datetime import datetime

import numpy as np
import pytest

from f1twin.events import MemoryFeed, replay
from f1twin.io import load_session, sample_session_path
from f1twin.messages import (MESSAGE_FIELDS, MessageCounts, StreamError, check_message, decode_message, encode_message,
                             read_message, topic_fields)
from f1twin.schema import LAP_EVENTS, SECTOR_TIMES, SESSION_STATS, TELEMETRY_LIVE, TELEMETRY_TOPICS, TOPICS, TopicSpec
from conftest import ROOT

SESSIONS = [sample_session_path(), ROOT / "data" / "telemetry_2025-09-13_16-18-26.csv"]


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


def test_encoding_round_trip():
    value = {**sample(7), "sector_times": np.array([27001, 28050], dtype=np.int32), "g_vert": np.float32("nan"),
             "rpm": np.int32(11200), "in_pit": np.bool_(True), "speed_kmh": np.float64(251.5),
             "g_lon": np.float32(-0.3), "driver": "Kimi Räikkönen", "nested": {"a": [1.5, float("inf")]}}
    raw = encode_message(value)
    assert isinstance(raw, bytes) and raw.startswith(b'{"v":1,') and b", " not in raw and b": " not in raw
    assert b"NaN" not in raw and b"Infinity" not in raw and "Räikkönen".encode() in raw
    back = decode_message(raw)
    assert back == {**sample(7), "distance": None, "sector_times": [27001, 28050], "g_vert": None, "rpm": 11200,
                    "in_pit": True, "speed_kmh": 251.5, "g_lon": -0.3, "driver": "Kimi Räikkönen",
                    "nested": {"a": [1.5, None]}}
    assert type(back["rpm"]) is int and type(back["in_pit"]) is bool
    assert decode_message(encode_message(lap(3))) == lap(3)
    assert decode_message(encode_message(lap(3)), LAP_EVENTS) == lap(3)
    assert decode_message(encode_message({"v": 1, "a": 1})) == {"a": 1}, "a decoded message's own v is accepted"


@pytest.mark.parametrize("bad", [{"v": 2}, {"v": True}, {"v": "1"}, {"when": datetime.now()}, {"x": object()}, [1, 2], None])
def test_encoding_refuses_what_it_cannot_carry(bad):
    with pytest.raises(StreamError):
        encode_message(bad)


@pytest.mark.parametrize("raw,reason", [
    (b"", "malformed"), (b"{", "malformed"), (b'{"v":1', "malformed"), (b"not json", "malformed"),
    (b"[1,2]", "malformed"), (b'"text"', "malformed"), (b"42", "malformed"), (b"null", "malformed"),
    (b"\xff\xfe\x00", "malformed"), (b'{"v":1,"s":"\xe9"}', "malformed"), ('{"v":1}'.encode("utf-16"), "malformed"),
    (b"[" * 200_000, "malformed"), (None, "malformed"), ("{\"v\":1}", "malformed"), (1, "malformed"), (object(), "malformed"),
    (b'{"v":1,"speed_kmh":NaN}', "malformed"), (b'{"v":1,"x":-Infinity}', "malformed"),  # not JSON, whatever Python reads
    (b'{"v":1,"n":' + b"9" * 5000 + b"}", "malformed"),  # more digits than Python converts
    (b'{"speed_kmh":250}', "foreign"), (b'{"v":2,"a":1}', "foreign"), (b'{"v":true}', "foreign"), (b'{"v":"1"}', "foreign"),
    (b'{"v":1,"completed_laps":' + b"1" + b"0" * 400 + b"}", "invalid"),  # the number that crashed the panel
    (b'{"v":1,"speed_kmh":1e999}', "invalid"),  # JSON reads it as inf
])
def test_decoding_is_defensive_and_says_why(raw, reason):
    assert decode_message(raw) is None
    msg, why, problem = read_message(raw)
    assert msg is None and why == reason
    if reason == "invalid":
        assert problem[0] in ("completed_laps", "speed_kmh") and "out of range" in problem[1]


def test_every_field_of_every_topic_is_declared_once():
    for spec in TOPICS.values():
        fields = topic_fields(spec)
        assert [f.name for f in fields] == list(spec.fields)
        for f in fields:
            assert MESSAGE_FIELDS[f.name] is f
    assert {f.name: (f.kind, f.unit) for f in topic_fields(LAP_EVENTS) if f.name in ("lap_time_ms", "sector_times")} == {
        "lap_time_ms": ("int", "ms"), "sector_times": ("ints", "ms")}
    # adding a topic is declaring its fields: one with an undeclared field is refused, naming it
    with pytest.raises(StreamError, match="my-agent-topic: field.*q_value not declared"):
        check_message({"q_value": 1.0}, TopicSpec("my-agent-topic", 1, "", ("session_id", "car_id", "q_value")))


@pytest.mark.parametrize("topic,change,field", [
    (TELEMETRY_LIVE, {"completed_laps": 10**400}, "completed_laps"),
    (TELEMETRY_LIVE, {"completed_laps": -1}, "completed_laps"),
    (TELEMETRY_LIVE, {"gear": 128}, "gear"),  # an int8
    (TELEMETRY_LIVE, {"gear": 3.0}, "gear"),
    (TELEMETRY_LIVE, {"rpm": True}, "rpm"),
    (TELEMETRY_LIVE, {"speed_kmh": "fast"}, "speed_kmh"),
    (TELEMETRY_LIVE, {"speed_kmh": 1e39}, "speed_kmh"),  # beyond float32
    (TELEMETRY_LIVE, {"speed_kmh": 10**400}, "speed_kmh"),
    (TELEMETRY_LIVE, {"session_id": 7}, "session_id"),
    (TELEMETRY_LIVE, {"in_pit_lane": 1}, "in_pit_lane"),
    (TELEMETRY_LIVE, {"sector": None}, "sector"),
    (TELEMETRY_LIVE, {"timestamp": None}, "timestamp"),
    (LAP_EVENTS, {"sector_times": [27000, "28000"]}, "sector_times"),
    (LAP_EVENTS, {"sector_times": 27000}, "sector_times"),
    (LAP_EVENTS, {"lap_time_ms": 2**31}, "lap_time_ms"),
    (LAP_EVENTS, {"best_lap": "yes"}, "best_lap"),
    (LAP_EVENTS, {"speed_kmh": [1]}, "speed_kmh"),  # a declared field outside its topic is still checked
])
def test_invalid_fields_are_named(topic, change, field):
    msg = {**(sample(1) if topic is TELEMETRY_LIVE else lap(1)), **change}
    raw = encode_message(msg)
    problem = check_message({k: v for k, v in json.loads(raw).items() if k != "v"}, topic)
    assert problem is not None and problem[0] == field, problem
    assert read_message(raw, topic)[1:] == ("invalid", problem)
    assert read_message(raw, topic.name)[1] == "invalid", "a known topic's name is checked as its spec"


def test_missing_fields_are_invalid_unknown_floats_are_not():
    live = {k: v for k, v in sample(1).items() if k != "packet_id"}
    assert check_message(live, TELEMETRY_LIVE) == ("packet_id", "missing")
    no_g = {k: v for k, v in sample(1).items() if k not in ("g_lat", "g_lon", "distance")}
    assert check_message(no_g, TELEMETRY_LIVE) is None, "unknown floats may be absent or null"
    assert check_message({**sample(1), "g_lat": None, "distance": None}, TELEMETRY_LIVE) is None
    assert check_message({"lap_number": 10**400, "anything": [1, {"a": 1e999}]}, "someone-elses-topic") == (
        "lap_number", "a 401-digit number is out of range 0..2147483647")
    assert check_message({"anything": [1, {"a": 1e999}]}, "someone-elses-topic") is None


def test_every_message_of_both_real_sessions_is_valid():
    """Validation must never drop real data: every message replay makes from the two real sessions passes."""
    for path in SESSIONS:
        feed = MemoryFeed(maxlen=10**6)
        r = replay(load_session(path), feed.publish, speed=1e9)
        got = feed.poll(10**6)
        assert feed.skipped == 0 and feed.invalid == {}, (path, feed.counts, feed.invalid)
        assert len(got) == sum(r.messages.values()) == feed.counts["messages"]
        assert set(r.messages) == set(TELEMETRY_TOPICS)
        for m in got:
            assert check_message(m, m["_topic"]) is None


def test_random_bytes_and_mutations_never_raise():
    """Whatever a topic holds: read_message never raises, and what it lets through has every declared field valid
    (so float() of any number field cannot overflow)."""
    rnd = random.Random(20250912)
    base = [encode_message(sample(i)) for i in range(20)] + [encode_message(lap(n)) for n in range(1, 5)]
    junk = [b"0", b"9" * 400, b"-1", b"1e999", b"null", b"true", b'"x"', b"[]", b"{}", b"NaN", b"[1e999]", b"-" + b"9" * 30]
    taken = MessageCounts()
    for i in range(5000):
        raw = bytearray(rnd.choice(base))
        if i % 3 == 0:  # a value replaced
            colon = [j for j, c in enumerate(raw) if c == ord(":")]
            at = rnd.choice(colon) + 1
            end = min([j for j in range(at, len(raw)) if raw[j] in b",}"] or [len(raw)])
            raw[at:end] = rnd.choice(junk)
        elif i % 3 == 1:  # bytes flipped
            for _ in range(rnd.randint(1, 4)):
                raw[rnd.randrange(len(raw))] = rnd.randrange(256)
        else:
            raw = raw[:rnd.randrange(len(raw))]
        topic = TELEMETRY_LIVE if raw.startswith(b'{"v":1,"session_id":"s1","car_id":"rig1","packet_id"') else LAP_EVENTS
        msg = taken.take(bytes(raw), topic)
        if msg is not None:
            for k, v in msg.items():
                f = MESSAGE_FIELDS.get(k)
                if f is not None and f.kind in ("int", "float") and v is not None:
                    float(v)
    assert taken.counts["messages"] + taken.skipped == 5000
    assert taken.counts["invalid"] > 100 and taken.counts["malformed"] > 100, taken.counts


def test_counts_by_reason_topic_and_field(caplog):
    taken = MessageCounts()
    huge = encode_message({**sample(1), "completed_laps": 10**400})
    for raw in [encode_message(sample(1)), huge, huge, b"{", b'{"x":1}', encode_message({**sample(1), "gear": "7"})]:
        taken.take(raw, TELEMETRY_LIVE)
    assert taken.counts == {"messages": 1, "filtered": 0, "malformed": 1, "foreign": 1, "invalid": 3}
    assert taken.invalid == {(TELEMETRY_LIVE.name, "completed_laps"): 2, (TELEMETRY_LIVE.name, "gear"): 1}
    assert taken.skipped == 5
    said = [r.getMessage() for r in caplog.records if r.name == "f1twin.messages"]
    assert len(said) == 4, "one warning per kind of problem, not per message"
    assert any("completed_laps: a 401-digit number is out of range" in s for s in said)


def test_session_stats_message_follows_its_spec():
    from f1twin.events import STATS_FIELDS, SessionStats
    st = SessionStats()
    df = load_session(SESSIONS[0])
    for rec in df.iloc[:2000].to_dict("records"):
        st.add(rec)
    msg = st.message(rec)
    assert tuple(msg) == STATS_FIELDS == tuple(f for f in SESSION_STATS.fields if f not in ("session_id", "car_id", "timestamp"))
    assert check_message({"session_id": "s", "car_id": "c", "timestamp": 1.0, **msg}, SESSION_STATS) is None


def test_sector_time_messages_of_the_real_session():
    feed = MemoryFeed()
    replay(load_session(SESSIONS[0]), feed.publish, speed=1e9)
    sectors = [m for m in feed.poll(10**6) if m["_topic"] == SECTOR_TIMES.name]
    assert len(sectors) == 12 and feed.skipped == 0
    assert [m["sector_time_ms"] for m in sectors[:3]] == [30503, 25803, 25511]


# -- batches of samples (ac-telemetry-batch) ------------------------------------------------------------------------
from f1twin.events import LiveSender  # noqa: E402
from f1twin.fakeac import resample_session  # noqa: E402
from f1twin.messages import BATCH_COLUMNS, LIVE_COLUMNS, batch_arrays, batch_columns, batch_samples, encode_array  # noqa: E402
from f1twin.schema import TELEMETRY_BATCH  # noqa: E402


def batch_message(records, car="rig1", session="s1"):
    return decode_message(encode_message({"session_id": session, "car_id": car, "timestamp": 1757703617.0,
                                          "columns": batch_columns(records)}), TELEMETRY_BATCH)


def test_a_batch_carries_every_sample_bit_for_bit():
    """Both real sessions in batches of 333: every sample comes back, float32 fields bit for bit, NaN as None."""
    for path in SESSIONS:
        df = load_session(path)
        recs = df.to_dict("records")
        back = []
        for i in range(0, len(recs), 333):
            m = batch_message(recs[i:i + 333])
            assert m is not None and check_message(m, TELEMETRY_BATCH) is None
            back += batch_samples(m)
        assert len(back) == len(df)
        for name in LIVE_COLUMNS:
            got = np.array([np.nan if s[name] is None else s[name] for s in back], dtype=df[name].dtype)
            want = df[name].to_numpy()
            assert got.tobytes() == want.tobytes() or (np.isnan(want).all() and np.isnan(got).all()), (path, name)


def test_a_malformed_batch_is_invalid_never_an_exception():
    """Every way a batch can be wrong makes it invalid on its topic ('columns'), and batch_samples says so."""
    recs = load_session(sample_session_path()).iloc[:20].to_dict("records")
    good = batch_message(recs)
    cols = good["columns"]
    bad = [
        {k: v for k, v in cols.items() if k != "completed_laps"},  # a required column missing
        {**cols, "speed_kmh": encode_array(np.ones(19), "f4")},  # shorter than the others
        {**cols, "gear": encode_array(np.full(20, 200), "i4")},  # out of an int8's range
        {**cols, "packet_id": encode_array(np.full(20, -1), "i8")},  # a packet id is never negative
        {**cols, "rpm": encode_array(np.full(20, 11000.0), "f4")},  # the wrong dtype
        {**cols, "current_lap_time_ms": encode_array(np.full(20, np.nan), "f8")},
        {**cols, "speed_kmh": encode_array(np.full(20, np.inf), "f4")},  # unknown is NaN, never infinite
        {**cols, "in_pit_lane": encode_array(np.full(20, 2), "u1")},  # a flag is 0 or 1
        {**cols, "throttle": {**cols["throttle"], "data": "!!!!"}},
        {k: encode_array(np.zeros(0), BATCH_COLUMNS[k].dtype) for k in cols},  # no sample
        [cols], "columns", None,
    ]
    for b in bad:
        m = {**good, "columns": b}
        problem = check_message(m, TELEMETRY_BATCH)
        assert problem is not None and problem[0] == "columns", (problem, str(b)[:80])
        assert read_message(encode_message(m), TELEMETRY_BATCH)[1] == "invalid"
        with pytest.raises(StreamError):
            batch_samples(m)
    assert check_message({**good, "columns": {**cols, "from_a_newer_f1twin": [1]}}, TELEMETRY_BATCH) is None
    with pytest.raises(StreamError, match="rpm"):
        batch_columns([{**recs[0], "rpm": None}])


def test_live_sender_every_sample_once_in_order_at_steady_rates():
    """At 333 Hz with the collector's default (a batch every 0.1 s): every sample once, in order, ~10 batches and ~10
    one-sample messages a second, each one-sample message the newest sample of the batch sent just before it (the batch
    first: a reader of batches never waits for the one-sample message)."""
    fast = resample_session(load_session(sample_session_path()).iloc[:600], 333)
    sent = []
    s = LiveSender(lambda topic, value: sent.append((topic, value)), batch_s=0.1)
    for rec in fast.to_dict("records"):
        s.add(rec, rec["session_time_s"])
    s.flush()
    batches = [v for t, v in sent if t == TELEMETRY_BATCH.name]
    ids = np.concatenate([batch_arrays(b["columns"])["packet_id"] for b in batches])
    assert ids.tolist() == fast["packet_id"].tolist()
    span = fast["session_time_s"].iloc[-1] - fast["session_time_s"].iloc[0]
    assert abs(len(batches) - 10 * span) <= 2 and abs(s.sent[TELEMETRY_LIVE.name] - 10 * span) <= 2
    assert sent[0][0] == TELEMETRY_BATCH.name
    for i, (topic, value) in enumerate(sent[1:], 1):
        if topic == TELEMETRY_LIVE.name:
            prev = sent[i - 1]
            assert prev[0] == TELEMETRY_BATCH.name and batch_arrays(prev[1]["columns"])["packet_id"][-1] == value["packet_id"]
    quiet = LiveSender(lambda topic, value: sent.append((topic, value)), batch_s=0.1)
    quiet.add(fast.iloc[0].to_dict(), 0.0)  # the first sample goes at once
    quiet.add(fast.iloc[1].to_dict(), 0.01)
    n = len(sent)
    quiet.due(0.05)
    assert len(sent) == n, "not yet due"
    quiet.due(0.2)
    assert [t for t, _ in sent[-2:]] == [TELEMETRY_BATCH.name, TELEMETRY_LIVE.name]
    assert len(batch_samples({"columns": sent[-2][1]["columns"]})) == 1
    with pytest.raises(StreamError):
        LiveSender(print, batch_s=-1)


def test_replay_in_batches_passes_every_check_and_loses_nothing():
    """Both real sessions replayed in batches into a MemoryFeed: nothing skipped, every sample there, the same events."""
    for path in SESSIONS:
        df = load_session(path)
        feed = MemoryFeed(maxlen=10**6)
        r = replay(df, feed.publish, speed=1e9, batch_s=0.5)
        got = feed.poll(10**6)
        assert feed.skipped == 0 and len(got) == sum(r.messages.values())
        samples = [s for m in got if m["_topic"] == TELEMETRY_BATCH.name for s in batch_samples(m)]
        assert [s["packet_id"] for s in samples] == df["packet_id"].tolist()
        plain = replay(df, MemoryFeed(maxlen=10**6).publish, speed=1e9)
        assert r.laps == plain.laps and r.messages["ac-lap-events"] == plain.messages["ac-lap-events"]
