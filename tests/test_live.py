"""The live panel's view (f1twin.live): the widgets built, started on display, redrawn and stopped without a browser;
what each frame shows (one snapshot for numbers and gauges, the delta's colour, steering in degrees, the G chart);
the map outline from a track or as the car drives; a real Kafka broker end to end; the README's three lines.

The Kafka tests use the design's topics (the panel reads those) under a car name of their own, so they never see
another test's messages; they need the broker of `make kafka-up` (or F1TWIN_KAFKA) and fail without one.
"""
import gc
import json
import re
import threading
import time
import uuid
import warnings
from pathlib import Path

import comm
import numpy as np
import pytest
from kafka import KafkaProducer

from f1twin import events, kafka_admin, kafka_publish
from f1twin.circuit import fit_orientation
from f1twin.io import load_session, sample_session_path
from f1twin.live import G_TITLES, NO_G_TEXT, LiveError, LivePanel, status_html
from f1twin.frame import GREEN, RED, display_numbers, metric_values
from f1twin.laprules import format_lap_time
from f1twin.panel import PanelModel
from f1twin.schema import TELEMETRY_LIVE, message_key
from test_panel import check_session_values, circle_messages, replayed

ROOT = Path(__file__).resolve().parent.parent
LIVE = TELEMETRY_LIVE.name


@pytest.fixture(scope="module")
def session():
    return load_session(sample_session_path())


@pytest.fixture(scope="module")
def messages(session):
    return replayed(session)


def wait_for(condition, timeout=20.0, what="condition"):
    """Poll `condition` until true, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline: pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def value_text(html: str) -> str:
    """The text of a metric's value element, its unit dropped."""
    return re.search(r'class="f1twin-metric-value"[^>]*>([^<]*)', html).group(1).strip()


def test_settings_are_checked():
    for bad in (dict(fps=0), dict(fps=1000), dict(fps=True), dict(window_s=0), dict(map_points=1),
                dict(trail_points=0), dict(track=([0.0], [1.0]))):
        with pytest.raises(LiveError):
            LivePanel(events.MemoryFeed(), **bad)
    with pytest.raises(LiveError, match="poll"):
        LivePanel("not a feed")
    with pytest.raises(LiveError, match="speed"):
        LivePanel.from_file(sample_session_path(), speed=0)


def test_the_model_names_still_import_from_live_with_a_warning():
    import importlib
    for name, home in (("PanelModel", "f1twin.panel"), ("CarState", "f1twin.panel"), ("metric_values", "f1twin.frame"),
                       ("sector_table_html", "f1twin.frame")):
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            got = getattr(__import__("f1twin.live", fromlist=[name]), name)
        assert got is getattr(importlib.import_module(home), name)
        assert said and issubclass(said[0].category, DeprecationWarning) and home in str(said[0].message)


def test_no_method_is_attached_after_its_class():
    """Issue 10: methods set with setattr after the class were missing from nbdev's index and the docs."""
    for mod in ("panel", "live", "checks"):
        src = (ROOT / "f1twin" / f"{mod}.py").read_text()
        assert "setattr(" not in src and not re.search(r"^[A-Z]\w*\.\w+\s*(,\s*[A-Z]\w*\.\w+\s*)*=", src, re.M), mod
        assert len(src.splitlines()) <= 500, mod
    idx = (ROOT / "f1twin" / "_modidx.py").read_text()
    for name in ("LivePanel.start", "LivePanel.stop", "LivePanel.close", "LivePanel.redraw", "LivePanel.from_file",
                 "LivePanel.from_kafka", "PanelModel.ingest", "PanelModel.snapshot", "CarState.telemetry",
                 "EventCheck.offer"):
        assert f".{name}'" in idx, name


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


@pytest.fixture
def unfrozen():
    """The panel's gc.freeze tests start from an unfrozen collector (a freeze another module left is put back)."""
    was = gc.get_freeze_count()
    gc.unfreeze()
    yield
    if was: gc.freeze()


def test_panel_on_a_file_starts_when_shown_redraws_and_stops(session, comm_messages, unfrozen):
    assert gc.get_freeze_count() == 0
    panel = LivePanel.from_file(session, speed=50, fps=20)
    assert not panel.running and panel.feed is None  # the replay starts with the panel
    assert "f1twin-panel" in panel.widget._dom_classes
    outline = panel._map.data[0]
    assert len(outline.x) > 500 and list(panel._map._widget_data[0]["x"]) == list(outline.x), \
        "the outline is the state a browser view starts from (one still loading plotly when it was sent)"
    try:
        # shown (what Jupyter does with a cell's last value): it starts, no click needed
        assert "application/vnd.jupyter.widget-view+json" in panel._repr_mimebundle_()
        assert panel.running and gc.get_freeze_count() > 0
        wait_for(lambda: panel.model.messages >= 1200 and panel.frames > 3, what="1200 messages drawn")
        assert "f1twin-status-state\">running" in panel._status.value
    finally:
        panel.stop()
    assert not panel.running and panel.feed is None
    assert gc.get_freeze_count() == 0  # the freeze is undone when the panel stops
    shown = metric_values(panel.model.snapshot())
    assert shown["speed"][0] != "-" and value_text(panel._metrics["speed"].value) == shown["speed"][0]
    assert "f1twin-status-state\">stopped (press Start to replay)" in panel._status.value
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
    comm_messages.clear()  # (shown, with no browser to answer its frame clock: a frame must be forced at once)
    assert not panel.redraw() and panel.redraw(force=True) and 8 <= len(comm_messages) <= 24
    # shown again: no second start; start again: the file is replayed from the beginning
    panel._repr_mimebundle_()
    assert not panel.running
    panel.start()
    try:
        wait_for(lambda: panel.model.messages > 0, what="the replay again")
        assert panel.model.messages < 1200
    finally:
        panel.close()
    assert gc.get_freeze_count() == 0


def test_gc_freeze_is_held_while_any_panel_runs(unfrozen):
    a, b = (LivePanel(events.MemoryFeed(), autostart=False) for _ in range(2))
    a.start(); b.start()
    try:
        assert gc.get_freeze_count() > 0
        a.stop()
        assert gc.get_freeze_count() > 0  # b still runs
    finally:
        a.close(); b.close()
    assert gc.get_freeze_count() == 0
    # a freeze someone else made is theirs: a panel neither adds to it nor undoes it
    gc.freeze()
    a.start(); a.stop()
    assert gc.get_freeze_count() > 0
    gc.unfreeze()


def frames_of(panel, msgs, chunk=40):
    """Ingest `msgs` in chunks, drawing a frame after each; yields the panel after each frame drawn."""
    for i in range(0, len(msgs), chunk):
        panel.model.ingest(msgs[i:i + chunk])
        if panel.redraw(): yield panel


def test_number_row_and_gauges_show_one_snapshot(messages):
    """Issue 9: the number row and the gauges showed different values for the same instant (different rounding,
    the gear as a number). Every frame of the session, and speeds on a half: the same texts."""
    key = messages[0]["_key"]
    live = [m for m in messages if m["_topic"] == LIVE]
    halves = [{**live[-1], "speed_kmh": s + 0.5, "rpm": 9000 + r, "gear": g}  # rpm is a whole number (int32)
              for s, r, g in ((62, 0, 0), (120, 1, -1), (7, 2, 3))]
    panel = LivePanel(events.MemoryFeed(), autostart=False)
    n = 0
    for p in frames_of(panel, messages + halves, chunk=25):
        g, text = p._gauges.data, {k: value_text(p._metrics[k].value) for k in ("speed", "rpm", "gear")}
        assert (str(g[1].value), str(g[0].value), p._gauges.layout.annotations[0].text) == \
            (text["speed"], text["rpm"], text["gear"]), n
        n += 1
    assert n > 100 and text == {"speed": "8", "rpm": "9002", "gear": "3"} and key in panel.model.keys
    panel.model.ingest(halves[:1])
    panel.redraw()
    assert value_text(panel._metrics["speed"].value) == "63" == str(panel._gauges.data[1].value)
    assert value_text(panel._metrics["gear"].value) == "N" == panel._gauges.layout.annotations[0].text


def test_the_delta_is_green_for_a_gain_and_red_for_a_loss(messages):
    """Issue 9: the delta's colour did not change (two style attributes on one element)."""
    panel, seen = LivePanel(events.MemoryFeed(), autostart=False), set()
    for p in frames_of(panel, messages, chunk=60):
        html = p._metrics["delta"].value
        text = value_text(html)
        if text == "-": continue
        tag = re.search(r'<div class="f1twin-metric-value"([^>]*)>', html).group(1)
        assert tag.count("style=") == 1
        assert f"color:{GREEN if text.startswith('-') else RED}" in tag, (text, tag)
        seen.add(text[0])
    assert seen == {"-", "+"}


def test_steering_in_degrees_and_the_g_chart_says_a_csv_has_no_g(messages):
    panel = LivePanel(events.MemoryFeed(), autostart=False)
    panel.model.ingest(messages)
    assert panel.redraw()
    fig, snap = panel._series, panel.model.snapshot()
    steer = np.array([np.nan if v is None else v for v in snap["series"]["steering"]], float)
    assert np.allclose(np.asarray(fig.data[3].y, float), np.degrees(steer), equal_nan=True)
    assert fig.layout.yaxis3.title.text == "steering (°)" and fig.layout.yaxis3.ticksuffix == "°"
    assert np.nanmax(np.abs(fig.data[3].y)) > 5  # degrees, not radians
    # no G channels: the G traces and axis hidden (no empty legend entries), the chart says so
    assert not snap["has_g"] and fig.data[4].visible is False and fig.data[5].visible is False
    assert fig.layout.yaxis4.visible is False
    assert NO_G_TEXT in fig.layout.annotations[1].text and fig.layout.annotations[1].text == G_TITLES[False]


def test_the_g_chart_shows_g_for_a_source_that_has_it():
    panel = LivePanel(events.MemoryFeed(), autostart=False)
    panel.model.ingest(list(circle_messages(1))[:3000])
    assert panel.redraw()
    fig = panel._series
    assert fig.data[4].visible is True and fig.data[5].visible is True and fig.layout.yaxis4.visible is True
    assert fig.layout.annotations[1].text == "Steering and G-forces" and np.nanmax(fig.data[4].y) == pytest.approx(1.2)


def test_map_without_a_track_grows_the_outline_in_a_fixed_orientation(messages):
    """Issue 9: in Kafka mode there was no outline until a lap completed, then the map turned. Without a track the
    map is seen from above from the first position, and the outline grows as the car drives."""
    live = [m for m in messages if m["_topic"] == LIVE][500:]  # joining in the middle of lap 1
    panel = LivePanel(events.MemoryFeed(), autostart=False)
    orients, outline_n, where = [], [], []
    for p in frames_of(panel, live, chunk=30):
        orients.append(p._orient)
        outline_n.append((p.model.car().completed, len(p._map.data[0].x)))
        where.append(p._orient.apply(live[0]["car_x"], live[0]["car_z"]))  # one world point, on the map
    assert all(o is orients[0] for o in orients) and orients[0].angle == 0.0
    assert len(set(where)) == 1  # the map never moved under a fixed point
    first_lap = [n for done, n in outline_n if done == 0]
    assert first_lap[2] > 10 and first_lap[-1] > first_lap[2]  # an outline before any lap completed, growing
    assert outline_n[-1][1] == outline_n[len(outline_n) // 2][1]  # closed once the car came round: no more change


@pytest.mark.kafka
def test_kafka_panel_with_a_track_draws_the_circuit_before_any_message(kafka_bootstrap, session):
    car = f"test-live-{uuid.uuid4().hex[:8]}"
    kafka_admin.ensure_topics(kafka_bootstrap)
    panel = LivePanel.from_kafka(kafka_bootstrap, car_id=car, track=sample_session_path(), autostart=False)
    try:
        assert panel.model.messages == 0 and len(panel._map.data[0].x) > 500
        assert list(panel._map.data[3].text)[:1] == ["S/F"]
        assert panel._orient == fit_orientation(session["car_x"], session["car_z"])
    finally:
        panel.close()
    with pytest.raises(Exception, match="nope.csv"):
        LivePanel.from_kafka(kafka_bootstrap, track="nope.csv")


@pytest.mark.kafka
def test_kafka_panel_without_a_track_draws_the_outline_as_the_car_drives(kafka_bootstrap, session):
    car = f"test-live-{uuid.uuid4().hex[:8]}"
    kafka_admin.ensure_topics(kafka_bootstrap)
    panel = LivePanel.from_kafka(kafka_bootstrap, car_id=car, start="latest", fps=10)
    try:
        panel._repr_mimebundle_()  # shown: running
        part = session.iloc[150:600]  # the middle of lap 1: no lap completes
        with kafka_publish.KafkaPublisher(kafka_bootstrap) as pub:
            stats = events.replay(part, pub.publish, speed=1e9, car_id=car)
            assert pub.flush(20)
        wait_for(lambda: panel.model.messages >= sum(stats.messages.values()), what="the replayed messages")
        wait_for(lambda: len(panel._map.data[0].x) > 100, what="the outline drawn")  # by the panel's own frames
        assert panel.model.car().completed == 0
        assert panel._orient.angle == 0.0
    finally:
        panel.close()


@pytest.mark.kafka
def test_kafka_replay_to_panel_gives_the_same_values_and_skips_malformed(kafka_bootstrap, session):
    car = f"test-live-{uuid.uuid4().hex[:8]}"
    kafka_admin.ensure_topics(kafka_bootstrap)
    panel = LivePanel.from_kafka(kafka_bootstrap, car_id=car, start="latest", fps=10)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        panel.start()
        key = message_key(car, "2025-09-12_19-00-17")
        for raw in (b"not json", b"[1,2]", b'{"speed_kmh": 300.0}'):  # malformed, malformed, foreign (no version)
            producer.send(LIVE, key=key, value=raw)
        producer.send(LIVE, key=key, value=json.dumps({"v": 1, "completed_laps": 10**400}).encode())  # invalid
        producer.flush(10)
        with kafka_publish.KafkaPublisher(kafka_bootstrap) as pub:
            stats = events.replay(session, pub.publish, speed=80, car_id=car)
            assert pub.flush(20)
        total = sum(stats.messages.values())
        wait_for(lambda: panel.model.messages >= total, timeout=30, what="the whole replay")
        panel.redraw()
    finally:
        producer.close()
        panel.close()
    assert panel.model.messages == total
    counts = panel.feed.counts
    assert counts["malformed"] == 2 and counts["foreign"] == 1
    st = panel.model.status()
    assert st["malformed"] == 2 and st["foreign"] == 1 and st["invalid"] <= 1 and st["ignored"] == 0
    # the 10**400 message: skipped by the reader or counted by the model, never raised
    check_session_values(panel.model, f"{car}/", invalid=st["invalid"])
    assert "malformed 3" in panel._status.value
    assert value_text(panel._metrics["best"].value) == "1:21.186"
    assert "1:22.165" in panel._metrics["last"].value


def readme_lines() -> list[str]:
    """The three lines of 22_live's first section that the README shows: how to open the panel."""
    nb = json.loads((ROOT / "nbs" / "22_live.ipynb").read_text())
    first = "".join(nb["cells"][0]["source"])
    return re.search(r"```python\n(.*?)\n```", first, re.S).group(1).splitlines()


@pytest.mark.kafka
def test_the_readme_lines_open_the_panel(kafka_bootstrap, session, monkeypatch):
    lines = readme_lines()
    assert len(lines) == 3 and lines[0] == "from f1twin.live import LivePanel"
    assert "from_file(" in lines[1] and "from_kafka('127.0.0.1:19092')" in lines[2]
    monkeypatch.chdir(ROOT)  # the README's commands run from the repository's folder
    ns: dict = {}
    exec(lines[0], ns)
    file_panel = eval(lines[1], ns)
    kafka_panel = eval(lines[2].replace("127.0.0.1:19092", kafka_bootstrap), ns)
    car = f"test-readme-{uuid.uuid4().hex[:8]}"
    try:
        for p in (file_panel, kafka_panel):
            p._repr_mimebundle_()  # a notebook shows a cell's last value: the panel starts
            assert p.running
        with kafka_publish.KafkaPublisher(kafka_bootstrap) as pub:
            events.replay(session.iloc[:200], pub.publish, speed=1e9, car_id=car)
            assert pub.flush(20)
        wait_for(lambda: file_panel.model.messages > 50 and any(k.startswith(car) for k in kafka_panel.model.keys),
                 what="both panels fed")
    finally:
        file_panel.close(); kafka_panel.close()


def test_status_line_says_what_was_not_used():
    st = PanelModel().status()
    assert "stopped (press Start)" in status_html(st, running=False, source="x")
    st.update(messages=10, idle_s=0.5, lag_ms=12.0, malformed=1, foreign=2, invalid=3, invalid_by={"gear": 2, "_key": 1},
              ignored=2, ignored_by={"time not positive": 2}, waiting=1)
    line = status_html(st, running=True, source="Kafka x", error="ConnectionError: down")
    for part in ("running", "lag 12 ms", "malformed 3", "invalid 3 (gear 2, _key 1)", "ignored 2 (time not positive 2)",
                 "waiting 1", "10 messages", "ConnectionError: down"):
        assert part in line, part


def test_a_frame_is_drawn_while_another_thread_ingests(messages):
    """The view draws from snapshots while the feed thread ingests: no frame fails, and the last shows the end."""
    panel = LivePanel(events.MemoryFeed(), autostart=False)
    done = threading.Event()

    def feed():
        for i in range(0, len(messages), 20): panel.model.ingest(messages[i:i + 20])
        done.set()
    t = threading.Thread(target=feed)
    t.start()
    while not done.is_set(): panel.redraw()
    t.join()
    panel.redraw()
    assert value_text(panel._metrics["lap"].value) == "5" and value_text(panel._metrics["best"].value) == "1:21.186"
    assert display_numbers(panel.model.snapshot())["gear"] == panel._gauges.layout.annotations[0].text


def ack(panel):
    """What the browser does once it has handled a frame's messages: its FrameClock says so."""
    panel._clock.seen = panel._clock.frame


def test_a_browser_that_is_behind_gets_the_newest_frame_not_a_backlog(messages):
    """In a slow browser the queued frames showed the car minutes late and the gauges behind the number row: once
    shown, a panel leaves frames out while the browser has not acknowledged the last one (at most a second)."""
    panel = LivePanel(events.MemoryFeed(), autostart=False)
    panel.model.ingest(messages[:500])
    assert panel.redraw()
    panel.model.ingest(messages[500:600])
    assert panel.redraw()  # not shown anywhere yet: nothing to wait for
    panel._repr_mimebundle_()  # shown (autostart=False: not started)
    panel.model.ingest(messages[600:700])
    assert not panel.redraw() and panel.skipped == 1  # the browser has not taken the last frame
    ack(panel)
    assert panel.redraw() and panel.frames == 3  # acknowledged: the newest frame goes
    panel.model.ingest(messages[700:800])
    assert not panel.redraw()
    panel._sent_at -= 2.0  # no answer for over a second (a closed tab): frames go anyway
    assert panel.redraw()
    panel.model.ingest(messages[800:900])
    panel.close()  # the last frame is always sent
    assert panel.frames == 5 and value_text(panel._metrics["lap"].value) == str(panel.model.snapshot()["lap"])


def test_the_browsers_trace_deltas_do_not_strip_the_panels_colours(messages):
    """plotly 7's browser side answers each update with trace deltas computed against a stale copy of the figure;
    plotly.py applied them and removed properties the panel set (the car's red became plotly's default teal)."""
    panel = LivePanel(events.MemoryFeed(), autostart=False)
    panel.model.ingest(messages[:800])
    assert panel.redraw()
    car = panel._map.data[2]
    # the answer a real browser sent after a frame (captured in JupyterLab), for the car's trace
    panel._map._js2py_traceDeltas = {"trace_edit_id": panel._map._last_trace_edit_id, "trace_deltas": [
        {"uid": car.uid, "marker": {"symbol": "circle", "opacity": 1, "color": "#e10600", "line": {"dash": "solid"}}}]}
    assert car.marker.color == "#e10600" and car.marker.line.color == "white" and car.marker.size == 16


def test_the_model_imports_no_widgets_and_nothing_imports_kafka():
    """The model is headless (architecture.md: the panel imports no widgets), and a panel on a file needs no Kafka code."""
    import subprocess
    import sys
    code = ("import sys, f1twin.panel; a = 'ipywidgets' in sys.modules; import f1twin.live, f1twin.checks; "
            "print(a, 'ipywidgets' in sys.modules, any(m.split('.')[0] == 'kafka' for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "False"], out


def test_a_file_panel_shows_the_anomaly_monitors_alerts_as_they_happen(session):
    """Issue 11: alerts arrive in the panel as the replay reaches them (the monitor runs beside the replay); the
    bundled session's one anomaly, the data gap of lap 3, at the game time detect() finds on the file."""
    from f1twin.anomalies import detect
    panel = LivePanel.from_file(session, speed=500, autostart=False)
    try:
        panel.start()
        deadline = time.monotonic() + 60
        while not panel.model.snapshot() or not panel.model.snapshot()['alerts']:
            assert time.monotonic() < deadline, 'no alert within 60 s'
            time.sleep(0.05)
    finally:
        panel.stop()
    alert = panel.model.snapshot()['alerts'][0]
    found = detect(session).iloc[0]
    assert (alert['kind'], alert['lap'], alert['time_s']) == (found['kind'], found['lap'], pytest.approx(found['time_s'], abs=0.2))
    assert 'data gap' in panel._alerts.value and 'f1twin-alert' in panel._alerts.value
    quiet = LivePanel.from_file(session, speed=500, autostart=False, alerts=False)
    assert 'no alerts' in quiet._alerts.value


def test_the_driver_row_with_a_reference_from_the_start(session, messages):
    """Issue 12: with session 2's best lap as the reference, the delta bar, the predicted lap, the splits as they
    come and the shift light are drawn from lap 1 on; the bar's number and colour are the delta's; the shift light
    counts up to the highest rpm seen; the reference in use is named."""
    panel = LivePanel(events.MemoryFeed(), autostart=False, reference=ROOT / "data" / "telemetry_2025-09-13_16-18-26.csv")
    seen = {"bar": set(), "splits": set(), "lit": set(), "refs": set()}
    for p in frames_of(panel, messages, chunk=60):
        snap = p.model.snapshot()
        bar, pred, splits = p._delta_bar.value, p._predicted.value, p._splits.value
        if snap["delta_s"] is None:
            assert 'data-sign="none"' in bar
            continue
        sign = "gain" if snap["delta_s"] < 0 else "loss"
        assert f'data-sign="{sign}"' in bar and f">{snap['delta_s']:+.2f}<" in bar
        assert f"background:{GREEN if sign == 'gain' else RED}" in bar
        assert value_text(pred) == format_lap_time(snap["predicted_ms"])
        seen["bar"].add(sign)
        seen["refs"].add(re.search(r'class="f1twin-ref"[^>]*>vs ([^<]*)<', pred).group(1))
        seen["splits"].update(re.findall(r'data-sector="(\d)" data-colour="(#\w+)"', splits))
        seen["lit"].add(int(re.search(r'data-lit="(\d+)"', p._shift.value).group(1)))
        if snap["laps"] == 0: assert snap["ref"]["kind"] == "lap"  # lap 1: the reference given
    assert seen["bar"] == {"gain", "loss"}
    assert seen["refs"] == {"lap 2 (1:21.790) of 2025-09-13_16-18-26", "session best, lap 2 (1:21.186)"}
    assert {s for s, _ in seen["splits"]} == {"0", "1", "2"} and len({c for _, c in seen["splits"]}) >= 2
    assert 0 in seen["lit"] and max(seen["lit"]) >= 7 and len(seen["lit"]) > 5


def test_a_file_panel_takes_the_librarys_best_of_its_track_and_car(tmp_path, session):
    import shutil
    from f1twin.library import LapLibrary
    for f in (ROOT / "data").glob("telemetry_*"): shutil.copy(f, tmp_path)
    with LapLibrary(tmp_path) as lib:
        lib.update(progress=False)
        panel = LivePanel.from_file(ROOT / "data" / "telemetry_2025-09-13_16-18-26.csv", autostart=False, reference=lib)
    assert panel.model.reference.kind == "library" and panel.model.reference.lap_ms == 81186
