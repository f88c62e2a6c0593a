"""The live panel (f1twin.live): its model fed by real replays (in memory and through a real Kafka broker), bounded
buffers, malformed messages, and the widgets built, started, redrawn and stopped without a browser.

The Kafka tests use the design's topics (the panel reads those) under a car name of their own, so they never see
another test's messages; they need the broker of `make kafka-up` (or F1TWIN_KAFKA) and fail without one.
"""
import math
import time
import uuid

import comm
import pandas as pd
import pytest
from kafka import KafkaProducer

from f1twin import stream
from f1twin.io import load_session, sample_session_path
from f1twin.live import LiveError, LivePanel, PanelModel, metric_values, sector_table_html
from f1twin.schema import LAP_EVENTS, SECTOR_TIMES, TELEMETRY_LIVE, message_key

LAPS = {1: 81817, 2: 81186, 3: 82539, 4: 82165}
SECTORS = {1: (30503, 25803, 25511), 2: (29661, 25838, 25687), 3: (30406, 26213, 25920), 4: (29961, 26270, 25934)}


@pytest.fixture(scope="module")
def session():
    return load_session(sample_session_path())


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


def check_session_values(model, key_prefix):
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
    assert car.ref[2:] == (2, 81186)
    snap = model.snapshot()
    assert snap["lap"] == 5 and snap["laps"] == 4
    assert model.invalid == 0
    return car


def test_model_from_a_memory_replay(session):
    feed, model, deltas = stream.file_feed(session, speed=100), PanelModel(), []
    for batch in drain(feed):
        for m in batch:  # one message at a time, to see the delta of every sample
            model.ingest([m], counts=feed.counts)
            car = model.car()
            if m["_topic"] == TELEMETRY_LIVE.name and car.delta_s is not None:
                deltas.append((car.completed + 1, m["current_lap_time_ms"], car.delta_s))
    check_session_values(model, "local/")
    assert model.status()["messages"] == sum(feed.result.messages.values())
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
    feed, model = stream.file_feed(session, speed=100), PanelModel()
    for batch in drain(feed):
        model.ingest(batch, counts=feed.counts)
    check_session_values(model, "local/")
    st = model.status()
    assert st["malformed"] == st["foreign"] == 0 and st["lag_ms"] is not None and st["lag_ms"] < 5000


def circle_messages(n_laps, hz=333, lap_s=90.0, key="rig/s1", length=5000.0):
    """Synthetic telemetry of a car lapping a circle, as a generator (nothing kept)."""
    r, n = length / (2 * math.pi), int(lap_s * hz)
    for lap in range(n_laps):
        for sector in range(3 if lap else 0):  # the sectors of the lap just finished
            yield {"_topic": SECTOR_TIMES.name, "_key": key, "lap_number": lap, "sector": sector,
                   "sector_time_ms": 30000, "best_sector": lap == 1}
        for i in range(n):
            f = i / n
            yield {"_topic": TELEMETRY_LIVE.name, "_key": key, "_timestamp_ms": int(time.time() * 1000),
                   "speed_kmh": length / lap_s * 3.6, "rpm": 9000 + i % 2000, "gear": 5, "throttle": 1.0,
                   "brake": 0.0, "steering": 0.1, "g_lat": 1.2, "g_lon": 0.0,
                   "car_x": r * math.cos(2 * math.pi * f), "car_z": r * math.sin(2 * math.pi * f),
                   "distance_total": (lap + f) * length, "completed_laps": lap,
                   "current_lap_time_ms": int(i / hz * 1000), "last_lap_time_ms": int(lap_s * 1000) if lap else 0}


def sizes(model):
    c = model.car()
    return (len(model.cars), len(c.trail), len(c.series), len(c.ref[0]), len(c.lap_times), len(c.sectors),
            len(c.outline[0]), len(c._td))  # the last: the lap in progress, which grows within a lap


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
    assert c.completed == 11 and c.samples == 12 * int(90 * 333) and model.invalid == 0
    assert after[6][:-1] == after[11][:-1]  # the same after 6 laps as after 11
    n_cars, trail, series, ref, laps, sectors, outline, trace = sizes(model)
    assert trail == 1500 and series <= 608 and ref <= 8000 and laps == 5 and sectors <= 6 and outline <= 3000
    assert trace <= 8000 and c.best_sectors == {0: 30000, 1: 30000, 2: 30000}
    snap = model.snapshot()
    assert snap["series"]["t"][0] >= -30.0 and snap["series"]["t"][-1] == 0.0
    assert abs(snap["delta_s"]) < 0.05  # every lap the same: no delta
    # many cars: at most max_cars kept, the followed one among them
    many = PanelModel(max_cars=4)
    for k in range(50):
        many.ingest([{"_topic": TELEMETRY_LIVE.name, "_key": f"rig{k}/s", "speed_kmh": 100.0}])
    assert len(many.cars) == 4 and many.selected == "rig0/s" and "rig49/s" in many.cars


def test_model_skips_what_it_cannot_use():
    model = PanelModel()
    used = model.ingest([
        {"_topic": LAP_EVENTS.name, "_key": "a/s", "lap_number": "three", "lap_time_ms": {"x": 1}},
        {"_topic": TELEMETRY_LIVE.name, "speed_kmh": 10.0},  # no key, no car
        {"_topic": "someone-elses-topic", "_key": "a/s"},
        {"_topic": TELEMETRY_LIVE.name, "_key": "a/s", "speed_kmh": "fast", "rpm": None, "gear": float("nan")},
        {"_topic": TELEMETRY_LIVE.name, "_key": "a/s", "speed_kmh": 123.0, "rpm": 9000, "gear": 4},
    ])
    assert used == 3 and model.invalid == 1
    snap = model.snapshot()
    assert snap["speed_kmh"] == 123.0 and metric_values(snap)["gear"] == ("4", None)
    assert metric_values(None)["speed"] == ("-", None) and "no sector" in sector_table_html(None)


def test_settings_are_checked():
    for bad in (dict(fps=0), dict(fps=1000), dict(window_s=0), dict(map_points=1), dict(trail_points=0)):
        with pytest.raises(LiveError):
            LivePanel(stream.MemoryFeed(), **bad)
    with pytest.raises(LiveError, match="poll"):
        LivePanel("not a feed")
    with pytest.raises(LiveError, match="speed"):
        LivePanel.from_file(sample_session_path(), speed=0)


@pytest.fixture
def comm_messages(monkeypatch):
    """Counts the widget messages sent (outside a kernel, widgets talk to a DummyComm)."""
    sent = []
    orig = comm.DummyComm.publish_msg

    def publish(self, msg_type, *args, **kw):
        sent.append(msg_type)
        return orig(self, msg_type, *args, **kw)

    monkeypatch.setattr(comm.DummyComm, "publish_msg", publish)
    return sent


def test_panel_on_a_file_starts_redraws_and_stops(session, comm_messages):
    panel = LivePanel.from_file(session, speed=50, fps=20)
    assert not panel.running and panel.feed is None  # the replay starts with the panel
    assert "f1twin-panel" in panel.widget._dom_classes
    assert "application/vnd.jupyter.widget-view+json" in panel._repr_mimebundle_()
    try:
        panel.start()
        assert panel.running
        deadline = time.monotonic() + 20
        while panel.model.messages < 1200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert panel.model.messages >= 1200 and panel.frames > 3
    finally:
        panel.stop()
    assert not panel.running and panel.feed is None
    shown = metric_values(panel.model.snapshot())
    assert shown["speed"][0] != "-" and shown["speed"][0] in panel._metrics["speed"].value
    assert "f1twin-metric-value" in panel._metrics["speed"].value
    assert "f1twin-status-state\">stopped" in panel._status.value
    assert len(panel._map.data[1].x) > 100 and len(panel._map.data[2].x) == 1
    assert len(panel._map.data[1].x) <= panel.map_points
    assert len(panel._map.data[0].x) > 100 and list(panel._map.data[3].text)[:1] == ["S/F"]  # outline and marks
    assert len(panel._series.data[0].x) > 10 and max(panel._series.data[0].x) == 0
    assert panel._gauges.data[0].value > 0
    assert "f1twin-sector-row" in panel._sectors.value
    assert list(panel._car.options) == panel.model.keys
    assert max(panel.frame_ms) < 200
    # a frame sends a couple of dozen widget messages at most, however many samples came since the last one
    last = panel.model.car().latest
    more = [{**last, "current_lap_time_ms": last["current_lap_time_ms"] + 10 * i,
             "distance_total": last["distance_total"] + 0.5 * i, "speed_kmh": 100 + i / 10} for i in range(1, 501)]
    assert panel.model.ingest(more) == 500
    comm_messages.clear()
    assert panel.redraw() and 10 <= len(comm_messages) <= 24
    # start again: the file is replayed from the beginning
    panel.start()
    try:
        deadline = time.monotonic() + 10
        while panel.model.messages == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert 0 < panel.model.messages < 1200
    finally:
        panel.close()


def test_kafka_replay_to_panel_gives_the_same_values_and_skips_malformed(kafka_bootstrap, session):
    car = f"test-live-{uuid.uuid4().hex[:8]}"
    stream.ensure_topics(kafka_bootstrap)
    panel = LivePanel.from_kafka(kafka_bootstrap, car_id=car, start="latest", fps=10)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        panel.start()
        key = message_key(car, "2025-09-12_19-00-17")
        for raw in (b"not json", b"[1,2]", b'{"speed_kmh": 300.0}'):  # malformed, malformed, foreign (no version)
            producer.send(TELEMETRY_LIVE.name, key=key, value=raw)
        producer.flush(10)
        with stream.KafkaPublisher(kafka_bootstrap) as pub:
            stats = stream.replay(session, pub.publish, speed=80, car_id=car)
            assert pub.flush(20)
        total = sum(stats.messages.values())
        deadline = time.monotonic() + 30
        while panel.model.messages < total and time.monotonic() < deadline:
            time.sleep(0.1)
        panel.redraw()
    finally:
        producer.close()
        panel.close()
    assert panel.model.messages == total
    check_session_values(panel.model, f"{car}/")
    counts = panel.feed.counts
    assert counts["malformed"] == 2 and counts["foreign"] == 1
    st = panel.model.status()
    assert st["malformed"] == 2 and st["foreign"] == 1 and st["invalid"] == 0
    assert "malformed 3" in panel._status.value
    assert panel._metrics["best"].value.count("1:21.186") == 1
    assert "1:22.165" in panel._metrics["last"].value
