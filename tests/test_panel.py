"""The live panel's model (f1twin.panel) and its checks (f1twin.checks), headless: real replays of the bundled
sessions through an in-memory feed (the same messages as through Kafka), hostile and forged messages, bounded
buffers, and what a frame shows. No widget, no broker.
"""
import html.parser
import math
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from f1twin import events
from f1twin.checks import TOPIC_FIELDS, EventCheck, Seen, check_fields, event_problem, key_mismatch
from f1twin.io import load_session, sample_session_path
from f1twin.laprules import LapRule, lap_events
from f1twin.frame import GREEN, RED, alerts_html, display_numbers, metric_html, metric_values, sector_table_html
from f1twin.laps import lap_table
from f1twin.panel import CarState, LiveError, PanelModel
from f1twin.reference import RefLapError, reference_lap
from f1twin.schema import LAP_EVENTS, SECTOR_TIMES, SESSION_STATS, TELEMETRY_LIVE

ROOT = Path(__file__).resolve().parent.parent
LIVE, LAP, SECTOR, STATS = TELEMETRY_LIVE.name, LAP_EVENTS.name, SECTOR_TIMES.name, SESSION_STATS.name
LAPS = {1: 81817, 2: 81186, 3: 82539, 4: 82165}
SECTORS = {1: (30503, 25803, 25511), 2: (29661, 25838, 25687), 3: (30406, 26213, 25920), 4: (29961, 26270, 25934)}
GAME_LAPS = {'telemetry_2025-09-12_19-00-17.csv': [81817, 81186, 82539, 82165],
             'telemetry_2025-09-13_16-18-26.csv': [82160, 81790]}


@pytest.fixture(scope="module")
def session():
    return load_session(sample_session_path())


def replayed(df, publish=None, **kw) -> list[dict]:
    """The messages a replay of `df` publishes, as a MemoryFeed's poll returns them (JSON round trip included)."""
    feed = events.MemoryFeed()
    events.replay(df, publish(feed.publish) if publish else feed.publish, speed=1e9, **kw)
    return feed.poll(10**6)


@pytest.fixture(scope="module")
def messages(session):
    return replayed(session)


def drain(feed, idle_s=0.3):
    """A replay feed's batches until the replay is over and nothing came for `idle_s`."""
    quiet = None
    while True:
        batch = feed.poll(2000, timeout_ms=50)
        if batch:
            quiet = None
            yield batch
        elif not feed.done:
            continue
        elif quiet is None:
            quiet = time.monotonic()
        elif time.monotonic() - quiet > idle_s:
            return


def check_session_values(model, key_prefix, invalid=0):
    """The values every complete replay of the bundled session gives, whatever carried it."""
    assert len(model.keys) == 1 and model.keys[0].startswith(key_prefix)
    car = model.car()
    assert car.completed == 4
    assert car.best_lap == (2, 81186) and car.last_lap == (4, 82165)
    assert dict(car.lap_times) == LAPS
    assert car.best_sectors == {0: 29661, 1: 25803, 2: 25511}
    for lap, times in SECTORS.items():
        assert tuple(car.sectors[lap][s][0] for s in range(3)) == times
    # the personal-best flags as set at the time: lap 1 all three, lap 2 only S1, then none
    assert [car.sectors[1][s][1] for s in range(3)] == [True, True, True]
    assert [car.sectors[2][s][1] for s in range(3)] == [True, False, False]
    assert not any(car.sectors[lap][s][1] for lap in (3, 4) for s in range(3))
    assert (car.ref.lap, car.ref.lap_ms, car.ref.kind) == (2, 81186, "session")
    snap = model.snapshot()
    assert snap["lap"] == 5 and snap["laps"] == 4
    assert model.invalid == invalid
    return car


def test_model_from_a_memory_replay(session):
    feed, model, deltas = events.file_feed(session, speed=100), PanelModel(), []
    for batch in drain(feed):
        for m in batch:  # one message at a time, to see the delta of every sample
            model.ingest([m], counts=feed.counts)
            car = model.car()
            if m["_topic"] == LIVE and car.delta_s is not None:
                deltas.append((car.completed + 1, m["current_lap_time_ms"], car.delta_s))
    check_session_values(model, "local/")
    assert model.status()["messages"] == sum(feed.result.messages.values())
    assert model.ignored == {} and model.status()["waiting"] == 0
    d = pd.DataFrame(deltas, columns=["lap", "clock_ms", "delta_s"])
    assert sorted(d["lap"].unique()) == [2, 3, 4, 5]  # no reference before lap 1 ended
    first, last = d.groupby("lap").first(), d.groupby("lap").last()
    assert (first["clock_ms"] < 200).all() and (first["delta_s"].abs() < 0.05).all()
    # each lap ends at its time minus the reference's: lap 1 for lap 2 (faster: negative), then lap 2
    for lap, ref in ((2, 1), (3, 2), (4, 2)):
        assert last.loc[lap, "delta_s"] == pytest.approx((LAPS[lap] - LAPS[ref]) / 1000, abs=0.15)
    assert last.loc[2, "delta_s"] < 0 < last.loc[3, "delta_s"] and last.loc[4, "delta_s"] > 0
    # in a slower lap the delta grows on the whole: the second half is behind the first
    lap3 = d[d["lap"] == 3]["delta_s"].to_numpy()
    assert lap3[len(lap3) // 2:].mean() > lap3[: len(lap3) // 2].mean()


def test_model_values_in_batches_equal_one_by_one(session):
    feed, model = events.file_feed(session, speed=100), PanelModel()
    for batch in drain(feed):
        model.ingest(batch, counts=feed.counts)
    check_session_values(model, "local/")
    st = model.status()
    assert st["malformed"] == st["foreign"] == 0 and st["lag_ms"] is not None and st["lag_ms"] < 5000


@pytest.mark.parametrize("name", sorted(GAME_LAPS))
def test_car_laps_are_the_lap_rules_on_both_real_sessions(name):
    """CarState times laps with f1twin.laprules.LapRule: the game's times, the laps `lap_events` finds in the file."""
    df = load_session(ROOT / "data" / name)
    car = CarState("local/s")
    for m in replayed(df):
        if m["_topic"] == LIVE:
            car.telemetry(m)
    assert type(car._rule) is LapRule
    assert list(car.lap_times.values()) == GAME_LAPS[name]
    ev = lap_events(df)
    assert dict(car.lap_times) == dict(zip(ev[ev["kind"] == "lap"]["lap_number"], ev[ev["kind"] == "lap"]["time_ms"]))
    assert car.series[-1][0] == pytest.approx(df["session_time_s"].iloc[-1] - df["session_time_s"].iloc[0], abs=1.0)


def test_a_restart_starts_the_car_afresh(messages):
    """The lap counter going back is the lap rule's restart: laps forgotten, waiting events counted, outline kept."""
    key = messages[0]["_key"]
    model = PanelModel()
    model.ingest(messages)
    outline = len(model.car().outline[0])
    model.ingest([{"_topic": LAP, "_key": key, "lap_number": 7, "lap_time_ms": 81000}])  # waits for lap 7
    last = [m for m in messages if m["_topic"] == LIVE][-1]
    model.ingest([{**last, "completed_laps": 0, "current_lap_time_ms": 500, "last_lap_time_ms": 0, "best_lap_time_ms": 0}])
    car = model.car()
    assert car.completed == 0 and not car.lap_times and car.best_lap is None and car.ref is None
    assert model.ignored == {"session restarted first": 1} and len(car.outline[0]) == outline
    assert model.snapshot()["lap"] == 1


def circle_messages(n_laps, hz=333, lap_s=90.0, key="rig/s1", length=5000.0):
    """Synthetic telemetry of a car lapping a circle, as a generator (nothing kept)."""
    r, n = length / (2 * math.pi), int(lap_s * hz)
    for lap in range(n_laps):
        for sector in range(3 if lap else 0):  # the sectors of the lap just finished
            yield {"_topic": SECTOR, "_key": key, "lap_number": lap, "sector": sector,
                   "sector_time_ms": 30000, "best_sector": lap == 1}
        for i in range(n):
            f = i / n
            yield {"_topic": LIVE, "_key": key, "_timestamp_ms": int(time.time() * 1000),
                   "speed_kmh": length / lap_s * 3.6, "rpm": 9000 + i % 2000, "gear": 5, "throttle": 1.0,
                   "brake": 0.0, "steering": 0.1, "g_lat": 1.2, "g_lon": 0.0,
                   "car_x": r * math.cos(2 * math.pi * f), "car_z": r * math.sin(2 * math.pi * f),
                   "distance_total": (lap + f) * length, "completed_laps": lap,
                   "current_lap_time_ms": int(i / hz * 1000), "last_lap_time_ms": int(lap_s * 1000) if lap else 0}


def sizes(model):
    c = model.car()
    return (len(model.cars), len(c.trail), len(c.series), len(c.ref[0]), len(c.lap_times), len(c.sectors),
            len(c.outline[0]), len(c.check._laps), len(c.check._spans), len(c._td))  # the last: the lap in progress


def test_model_buffers_stay_bounded_over_a_long_feed():
    model, batch, after = PanelModel(laps_kept=5), [], {}
    for i, m in enumerate(circle_messages(12)):  # 12 laps of 90 s at 333 Hz: about 360,000 samples
        batch.append(m)
        if len(batch) == 2000:
            model.ingest(batch)
            batch = []
            lap = model.car().completed
            if lap in (6, 11) and lap not in after: after[lap] = sizes(model)
    model.ingest(batch)
    c = model.car()
    assert c.completed == 11 and c.samples == 12 * int(90 * 333) and model.invalid == 0 and model.ignored == {}
    assert after[6][:-1] == after[11][:-1]  # the same after 6 laps as after 11
    n_cars, trail, series, ref, laps, sectors, outline, laps_seen, spans, trace = sizes(model)
    assert trail == 1500 and series <= 608 and ref <= 8000 and laps == 5 and sectors <= 6 and outline <= 4001
    assert laps_seen <= 7 and trace <= 8000 and c.best_sectors == {0: 30000, 1: 30000, 2: 30000}
    assert c.outline_closed and c.has_g
    snap = model.snapshot()
    assert snap["series"]["t"][0] >= -30.0 and snap["series"]["t"][-1] == 0.0
    assert abs(snap["delta_s"]) < 0.05  # every lap the same: no delta
    # many cars: at most max_cars kept, the followed one among them
    many = PanelModel(max_cars=4)
    for k in range(50):
        many.ingest([{"_topic": LIVE, "_key": f"rig{k}/s", "speed_kmh": 100.0}])
    assert len(many.cars) == 4 and many.selected == "rig0/s" and "rig49/s" in many.cars
    # events for laps the telemetry never reaches wait, at most 32 per car; the rest are counted
    model.ingest([{"_topic": LAP, "_key": "rig/s1", "lap_number": 1000 + i, "lap_time_ms": 90000} for i in range(100)])
    assert len(model.car().check.pending) == 32 and model.ignored == {"never reached by the telemetry": 68}


def test_model_skips_what_it_cannot_use():
    model = PanelModel()
    used = model.ingest([
        {"_topic": LAP, "_key": "a/s", "lap_number": "three", "lap_time_ms": {"x": 1}},
        {"_topic": LIVE, "speed_kmh": 10.0},  # no key, no car
        {"_topic": "someone-elses-topic", "_key": "a/s"},
        {"_topic": LIVE, "_key": "a/s", "speed_kmh": "fast", "rpm": None, "gear": float("nan")},
        {"_topic": LIVE, "_key": "a/s", "speed_kmh": 123.0, "rpm": 9000, "gear": 4},
    ])
    assert used == 1 and model.invalid == 4
    assert model.invalid_by == {"lap_number": 1, "_key": 1, "_topic": 1, "speed_kmh": 1}
    snap = model.snapshot()
    assert snap["speed_kmh"] == 123.0 and metric_values(snap)["gear"] == ("4", None)
    assert metric_values(None)["speed"] == ("-", None) and "no sector" in sector_table_html(None)


HOSTILE = [10**400, -10**400, 2**63, float("inf"), float("-inf"), "300", "", b"\xff", [1, [2]], {"a": {"b": []}},
           True, False, object(), complex(1, 2), (), -1, 0.5, 1e300]


def test_hostile_values_in_every_field_are_counted_never_raised(messages):
    """Issue 9: completed_laps = 10**400 crashed the model (OverflowError). Every field of every topic, every kind of
    junk: the model never raises, never needs its last-resort catch, and skips what does not fit."""
    examples = {t: next(m for m in messages if m["_topic"] == t) for t in (LIVE, LAP, SECTOR, STATS)}
    model, sent = PanelModel(), 0
    for topic, m in examples.items():
        for field in TOPIC_FIELDS[topic]:
            for v in HOSTILE:
                bad = {**m, field: v}
                # invalid: not of its kind, no usable key, or telemetry naming another car than its key says
                invalid = field == "_topic" or check_fields(bad, topic)[1] is not None or bad["_key"] == "" or (
                    topic == LIVE and key_mismatch(bad, bad["_key"]))
                before = model.invalid
                model.ingest([bad])
                sent += 1
                assert model.invalid == before + invalid, (topic, field, v)
            if field not in ("_topic", "_key"):  # missing: unknown (or, for what an event needs, invalid)
                model.ingest([{k: x for k, x in m.items() if k != field}])
                sent += 1
    assert not any(r.startswith("model error") for r in model.invalid_by), model.invalid_by
    assert model.invalid_by["completed_laps"] >= 8 and model.invalid_by["lap_time_ms"] >= 8
    # the bug of issue 9 exactly, and NaN/inf: a NaN number is unknown, NaN where a whole number belongs is invalid
    live = examples[LIVE]
    m2 = PanelModel()
    assert m2.ingest([{**live, "completed_laps": 10**400}, {**live, "speed_kmh": float("inf")},
                      {**live, "current_lap_time_ms": float("nan")}]) == 0 and m2.invalid == 3
    assert m2.ingest([{**live, "speed_kmh": float("nan")}]) == 1 and m2.snapshot()["speed_kmh"] is None
    # not even a dict, or nested junk in place of the message
    for junk in (None, "text", 42, [live], {"_topic": [LIVE], "_key": "a/b"}, {"_topic": LIVE, "_key": ["a/b"]}):
        assert m2.ingest([junk]) == 0
    assert m2.invalid == 9


def test_random_junk_never_raises(messages):
    """Seeded fuzzing: real messages with fields replaced, deleted or added at random, interleaved with the real ones."""
    rng = random.Random(9)
    junk_values = HOSTILE + [float("nan"), None, -2**31 - 1, 2**31, {"_topic": LIVE}, [None] * 70, "x" * 1000]
    model, out = PanelModel(), []
    for m in messages:
        out.append(m)
        bad = dict(m)
        for _ in range(rng.randint(1, 4)):
            op, field = rng.random(), rng.choice(list(bad) + ["extra", "sector_times", "lap_number"])
            if op < 0.6: bad[field] = rng.choice(junk_values)
            elif op < 0.8: bad.pop(field, None)
            else: bad[field] = rng.choice(list(messages[rng.randrange(len(messages))].values()))
        out.append(bad)
    for i in range(0, len(out), 500):
        model.ingest(out[i:i + 500])
    assert not any(r.startswith("model error") for r in model.invalid_by), model.invalid_by
    assert model.invalid > len(messages) // 2 and model.snapshot() is not None


def forging(extra_after_lap2):
    """A publish wrapper that sends `extra_after_lap2(key)` (forged messages) right after the real lap 2 event."""
    def wrap(publish):
        def send(topic, key, value):
            ok = publish(topic, key, value)
            if topic == LAP and value["lap_number"] == 2:
                for t, v in extra_after_lap2(value): publish(t, key, v)
            return ok
        return send
    return wrap


def test_forged_events_are_ignored_and_counted_by_reason(session):
    """Issue 9: a forged lap event (1 ms, negative, another car, ...) must not become the best lap."""
    def forged(lap2):
        lap = dict(lap2)
        return [(LAP, {**lap, "lap_time_ms": 1, "sector_times": []}),
                (LAP, {**lap, "lap_time_ms": -81186}),
                (LAP, {**lap, "car_id": "intruder", "lap_time_ms": 60000}),
                (LAP, {**lap, "session_id": "another", "lap_time_ms": 60000}),
                (LAP, {**lap, "lap_time_ms": 81500}),  # not what the game timed
                (LAP, {**lap, "lap_number": 3, "lap_time_ms": 62000, "sector_times": []}),  # sent before lap 3 ran
                (LAP, {**lap, "lap_number": 0}),
                (LAP, {**lap, "lap_number": 99}),  # a lap the telemetry never reaches
                (LAP, {**lap, "sector_times": [1000, 1000, 90000]}),
                (SECTOR, {"session_id": lap["session_id"], "car_id": lap["car_id"], "timestamp": lap["timestamp"],
                          "lap_number": 2, "sector": 0, "sector_time_ms": 1, "best_sector": True}),
                (SECTOR, {"session_id": lap["session_id"], "car_id": lap["car_id"], "timestamp": lap["timestamp"],
                          "lap_number": 2, "sector": 1, "sector_time_ms": 90000, "best_sector": False})]
    feed = events.MemoryFeed()
    events.replay(session, forging(forged)(feed.publish), speed=1e9)
    msgs = feed.poll(10**6)
    # a negative lap time is not a lap time at all: the feed's field check drops it before the panel sees it
    assert feed.counts["invalid"] == 1
    model = PanelModel()
    for i in range(0, len(msgs), 300):
        model.ingest(msgs[i:i + 300], counts=feed.counts)
    check_session_values(model, "local/")  # the best lap, the lap times and the sectors are the game's
    assert model.ignored == {"another car or session": 2, "no such lap": 1,
                             "faster than the track allows": 1, "shorter than its lap clock": 2,
                             "not the game's time": 1, "sectors longer than the lap": 1, "longer than its lap clock": 1}
    st = model.status()
    assert st["ignored"] == 9 and st["waiting"] == 1 and st["invalid"] == 0


def test_events_before_or_long_after_their_telemetry_still_count(messages):
    """Kafka keeps order within a topic, not across topics: events may come before the samples that end their lap,
    or well after. Either way the model ends with the game's laps and sectors, and ignores nothing."""
    events = [m for m in messages if m["_topic"] in (LAP, SECTOR)]
    others = [m for m in messages if m["_topic"] not in (LAP, SECTOR)]
    pos = {id(m): i for i, m in enumerate(messages)}
    for shift in (-400, -60, 60, 700):  # events sent this many messages early (negative) or late
        order = sorted(messages, key=lambda m: pos[id(m)] + (shift if m["_topic"] in (LAP, SECTOR) else 0))
        model = PanelModel()
        for i in range(0, len(order), 250):
            model.ingest(order[i:i + 250])
        check_session_values(model, "local/")
        assert model.ignored == {} and model.status()["waiting"] == 0, shift
    assert len(events) + len(others) == len(messages)


def test_event_check_bounds_come_from_the_telemetry(messages):
    """What `Seen` holds for a lap and a sector the telemetry watched: the lap clock seen, the game's lap time."""
    key = messages[0]["_key"]
    car = CarState(key)
    for m in messages:
        if m["_topic"] == LIVE: car.telemetry(m)
    lap2, s2 = car.check.seen(2), car.check.seen(2, 1)
    assert lap2.game_ms == 81186 and 81000 < lap2.at_least <= 81186 and 5700 < lap2.length_m < 5850
    assert 25500 < s2.at_least <= 25838 <= s2.at_most < 26200
    assert event_problem({"lap_number": 2, "lap_time_ms": 81186}, key, lap2) is None
    assert event_problem({"lap_number": 2, "sector": 1, "sector_time_ms": 25838}, key, s2, sector=True) is None
    assert isinstance(car.check, EventCheck) and Seen() == Seen(0.0, math.inf, None, None)


def test_outline_grows_as_the_car_drives_and_closes_once_round(messages):
    """Joining in the middle of lap 1: the outline is there before any lap completes, and stops once round."""
    live = [m for m in messages if m["_topic"] == LIVE][500:]
    car = CarState(live[0]["_key"])
    grown = []
    for i, m in enumerate(live):
        car.telemetry(m)
        if i % 50 == 0: grown.append((car.completed, len(car.outline[0]), car.outline_closed))
    assert grown[2][0] == 0 and 10 < grown[2][1] < grown[5][1]  # growing during the first lap
    closed_at = next(i for i, g in enumerate(grown) if g[2])
    assert grown[closed_at][0] == 1  # closed within a lap of joining
    assert len({g[1] for g in grown[closed_at:]}) == 1  # and never changed after
    xs, zs = car.outline
    assert (xs[0], zs[0]) == (xs[-1], zs[-1]) and 600 < len(xs) < 1500  # a loop of about 5.8 km (10 Hz: ~7 m apart)


def test_display_numbers_are_the_same_for_the_number_row_and_the_gauges(messages):
    model = PanelModel()
    model.ingest(messages)
    snap = model.snapshot()
    for speed, rpm, gear, shown in ((120.5, 8999.5, 0, ("121", "9000", "N")), (61.49, 7000.0, -1, ("61", "7000", "R")),
                                    (None, None, None, ("-", "-", "-")), (0.5, 0, 7, ("1", "0", "7"))):
        s = {**snap, "speed_kmh": speed, "rpm": rpm, "gear": gear}
        n, v = display_numbers(s), metric_values(s)
        assert (v["speed"][0], v["rpm"][0], v["gear"][0]) == shown
        assert (str(n["speed"]) if n["speed"] is not None else "-", str(n["rpm"]) if n["rpm"] is not None else "-",
                n["gear"]) == shown


class Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))


def test_the_delta_colour_is_in_the_one_style_attribute(messages):
    """Issue 9: the delta's colour did not change: its element had two style attributes and browsers keep the first."""
    model = PanelModel()
    model.ingest(messages)
    snap = model.snapshot()
    for delta, color in ((-0.31, GREEN), (0.42, RED)):
        text, c = metric_values({**snap, "delta_s": delta})["delta"]
        assert c == color
        p = Tags()
        p.feed(metric_html("Delta", text, "s", c))
        for tag, attrs in p.tags:
            assert [a for a, _ in attrs].count("style") <= 1, (tag, attrs)
        value = next(attrs for tag, attrs in p.tags if ("class", "f1twin-metric-value") in attrs)
        assert dict(value)["style"].endswith(f"color:{color}")


def test_alerts_arrive_checked_and_show_escaped(messages):
    """anomaly-detection messages: kept per car (the newest few), a hostile one counted invalid, text escaped."""
    model = PanelModel()
    model.ingest(messages)
    key = model.keys[0]
    car_id, sid = key.split('/')
    alert = {'_topic': 'anomaly-detection', '_key': key, 'car_id': car_id, 'session_id': sid, 'timestamp': 1.7e9,
             'time_s': 61.0, 'lap': 1, 'kind': 'spin', 'severity': 'critical', 'detail': '<script>x()</script>'}
    model.ingest([{**alert, 'time_s': 60.0 + i} for i in range(20)] + [{**alert, 'severity': 10**400}])
    snap = model.snapshot()
    assert len(snap['alerts']) == 12 and snap['alerts'][-1]['time_s'] == 79.0
    assert model.status()['invalid_by'] == {'severity': 1}
    page = alerts_html(snap)
    assert page.count('class="f1twin-alert"') == 5 and '<script>' not in page and '&lt;script&gt;' in page
    assert page.index('1:19') < page.index('1:18'), 'newest first'


# -- batches of samples ----------------------------------------------------------------------------------------------
def test_batches_give_the_model_what_one_sample_messages_give(session):
    """The session replayed as the collector sends it (every sample in batches, a one-sample message with each):
    the model has every sample once, the same laps, sectors and lap trace as from a message per sample."""
    from f1twin.schema import TELEMETRY_BATCH
    batched, single = PanelModel(), PanelModel()
    got = replayed(session, batch_s=0.5)
    for i in range(0, len(got), 50):
        batched.ingest(got[i:i + 50])
    single.ingest(replayed(session))
    b, s = batched.car(), single.car()
    assert b.samples == s.samples == len(session)
    assert dict(b.lap_times) == dict(s.lap_times) == LAPS and b.best_sectors == s.best_sectors
    assert (b.ref.lap, b.ref.lap_ms) == (s.ref.lap, s.ref.lap_ms) == (2, 81186) and b.ref.distance == s.ref.distance
    n_live = sum(m["_topic"] == LIVE for m in got)
    assert batched.by_topic[TELEMETRY_BATCH.name] == sum(m["_topic"] == TELEMETRY_BATCH.name for m in got)
    # each batch comes before its one-sample message, so every one-sample message repeats a sample the model has
    assert batched.duplicates == n_live and batched.invalid == 0, "the one-sample messages beside the batches are left aside"


def test_one_sample_messages_read_before_the_batches_are_replaced_by_them(session):
    """A reader catching up on a backlog gets one topic before the other: every one-sample message and event first,
    then every batch. The car starts afresh from the batches: every sample once, in order, the game's laps."""
    from f1twin.schema import TELEMETRY_BATCH
    got = replayed(session, batch_s=1.0)
    model = PanelModel()
    model.ingest([m for m in got if m["_topic"] != TELEMETRY_BATCH.name])
    assert model.car().samples == sum(m["_topic"] == LIVE for m in got) < len(session)
    model.ingest([m for m in got if m["_topic"] == TELEMETRY_BATCH.name])
    c = model.car()
    assert c.samples == len(session) and dict(c.lap_times) == LAPS and c.latest["packet_id"] == session["packet_id"].iloc[-1]
    assert c.best_sectors == {0: 29661, 1: 25803, 2: 25511} and model.invalid == 0


def test_a_malformed_batch_is_counted_and_the_rest_used(session):
    """A batch whose columns break their rules (or are not a batch at all) is counted under 'columns'; the batches
    around it are used, and the panel never raises."""
    from f1twin.messages import encode_array
    from f1twin.schema import TELEMETRY_BATCH
    got = [m for m in replayed(session.iloc[:400], batch_s=1.0) if m["_topic"] == TELEMETRY_BATCH.name]
    cols = got[5]["columns"]
    bad = [{**got[5], "columns": {**cols, "completed_laps": encode_array(np.full(10, 10**12), "i8")}},
           {**got[5], "columns": {k: v for k, v in cols.items() if k != "packet_id"}},
           {**got[5], "columns": "not columns"}, {**got[5], "columns": None}]
    model = PanelModel()
    assert model.ingest(got[:5] + bad + got[6:]) == len(got) - 1
    assert model.invalid == 4 and model.invalid_by == {"columns": 4}
    assert model.car().samples == 400 - (len(batch_of(got[5])))


def batch_of(m):
    from f1twin.messages import batch_samples
    return batch_samples(m)


SESSION1, SESSION2 = (ROOT / "data" / name for name in sorted(GAME_LAPS))


def delta_rows(model, msgs):
    """Feed `msgs` one at a time; per live sample: lap in progress, lap clock, delta, delta at the last line, ref kind."""
    rows = []
    for m in msgs:
        model.ingest([m])
        c = model.car()
        if m["_topic"] == LIVE:
            rows.append((c.completed + 1, m["current_lap_time_ms"], c.delta_s, c.line_delta, c.ref and c.ref.kind))
    return pd.DataFrame(rows, columns=["lap", "clock_ms", "delta_s", "line_delta", "ref"])


def test_a_reference_given_at_start_gives_a_delta_from_the_first_lap_pinned_at_every_line():
    """Issue 12: session 2 replayed against session 1's best lap: a delta from lap 1's first sample (not after a
    lap), and at each timing line the game's split minus the reference's (within 10 ms, also in the delta itself)."""
    ref = reference_lap(SESSION1)  # no lap number: the session's best complete lap
    assert (ref.lap, ref.lap_ms, ref.kind) == (2, 81186, "lap")
    second = load_session(SESSION2)
    d = delta_rows(PanelModel(reference=ref), replayed(second))
    starts = d.index[d["clock_ms"].diff() < 0]  # the line: lap 1 begins at row 117 (the out lap before it)
    assert d["delta_s"].first_valid_index() == starts[0] == 117 and abs(d.loc[117, "delta_s"]) < 0.02
    assert d.loc[117:, "delta_s"].notna().all()  # from then on, every sample has one
    # the lines, from the lap tables (an independent path): cumulative splits minus the reference's
    t1, t2 = lap_table(load_session(SESSION1)), lap_table(second)
    cum = lambda t, lap: [t.loc[lap, "s1_ms"], t.loc[lap, "s1_ms"] + t.loc[lap, "s2_ms"], t.loc[lap, "lap_time_ms"]]
    expect = [(lap, s, (a - b) / 1000) for lap in (1, 2) for s, a, b in zip((0, 1, None), cum(t2, lap), cum(t1, 2))]
    lines = d["line_delta"].dropna().drop_duplicates().tolist()
    assert [(lap, s) for lap, s, _ in lines] == [(lap, s) for lap, s, _ in expect]
    for (_, _, got), (_, _, want) in zip(lines, expect): assert got == pytest.approx(want, abs=0.010)
    # the delta the panel shows: the first sample after each sector line, the last one before each finish
    changed = d.index[d["line_delta"].ne(d["line_delta"].shift()) & d["line_delta"].notna()]
    for i in changed:
        lap, sector, at_line = d.loc[i, "line_delta"]
        shown = d.loc[i, "delta_s"] if sector is not None else d.loc[i - 1, "delta_s"]
        assert shown == pytest.approx(at_line, abs=0.010), (lap, sector, shown, at_line)
    assert (d["ref"].dropna() == "lap").all()  # session 2 never beat 1:21.186


def test_the_sessions_best_replaces_the_given_reference_only_if_faster(messages):
    """Session 1 against session 2's best lap (1:21.790): lap 1 (1:21.817) is slower and leaves it; lap 2
    (1:21.186) is faster and becomes the reference; the snapshot says which is in use."""
    model = PanelModel(reference=(SESSION2, 2))
    d = delta_rows(model, messages)
    by_lap = d.groupby("lap")["ref"].last()
    assert by_lap[1] == "lap" and by_lap[2] == "lap" and by_lap[3] == "session" and by_lap[5] == "session"
    assert (model.car().ref.lap, model.car().ref.lap_ms) == (2, 81186)
    ref = model.snapshot()["ref"]
    assert ref["kind"] == "session" and ref["label"] == "session best, lap 2 (1:21.186)"
    assert ref["sectors_ms"] == [29661, 25838, 25687]  # its own lines, as the panel measured them
    first = d[d["lap"] == 1]["delta_s"]
    assert first.notna().any() and d.loc[first.first_valid_index(), "clock_ms"] < 200  # lap 1 from its first sample
    snap = model.snapshot()  # the predicted lap: the reference's time plus the delta now
    assert snap["predicted_ms"] == pytest.approx(81186 + snap["delta_s"] * 1000)


def test_the_librarys_best_is_the_reference(tmp_path, messages):
    """Issue 13: the library's best lap of the track and car is a reference; without a track it says what it needs."""
    import shutil
    from f1twin.library import LapLibrary
    for f in (ROOT / "data").glob("telemetry_*"): shutil.copy(f, tmp_path)
    meta = load_session(SESSION1).attrs["f1twin"]
    with LapLibrary(tmp_path) as lib:
        lib.update(progress=False)
        ref = reference_lap(lib, track=meta["track"], car=meta["car"])
        with pytest.raises(RefLapError, match="needs the track"): PanelModel(reference=lib)
    assert ref.kind == "library" and (ref.lap, ref.lap_ms) == (2, 81186) and "library best 1:21.186" in ref.label
    model = PanelModel()
    model.ingest(messages[:500])
    assert model.car().ref is None and model.car().delta_s is None
    assert model.car().completed + 1 == 1 and model.car()._whole  # in lap 1, seen from the line
    model.set_reference(ref)  # chosen while the car is out: used from the next sample
    d = delta_rows(model, messages[500:])
    assert d["delta_s"].notna().all() and d.loc[0, "delta_s"] == pytest.approx(0.79, abs=0.05)
    assert model.snapshot()["ref"]["kind"] == "library"  # 1:21.186 is not beaten by its own lap


def test_bad_references_and_settings_are_clear_errors(session):
    for bad, why in (((session, 0), "not a complete timed lap"), ((session, 9), "no lap 9"), (42, "expected a session")):
        with pytest.raises(RefLapError, match=why): PanelModel(reference=bad)
    with pytest.raises(LiveError, match="max_rpm"): PanelModel(max_rpm=5)
