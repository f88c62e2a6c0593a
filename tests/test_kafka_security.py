"""SASL and TLS for real (issue 9): the collector, `f1twin replay` and the live panel connect through each secured
listener of a broker of their own (`secure_kafka`: SASL/PLAIN and SCRAM-SHA-256, TLS with a self-signed CA), and a
wrong password or an untrusted certificate is one clear error within seconds, not a hang."""
import dataclasses
import logging
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from f1twin.collector import Collector, CollectorConfig
from f1twin.io import load_session, sample_session_path, save_session
from f1twin.kafka_admin import check_connection, ensure_topics
from f1twin.kafka_conn import KafkaAuthError, KafkaSettings
from f1twin.kafka_publish import KafkaPublisher
from f1twin.kafka_read import TopicReader
from f1twin.panel import PanelModel
from f1twin.schema import LAP_EVENTS, TOPICS
from f1twin.shm import open_pages
from conftest import ROOT

F1TWIN = str(Path(sys.executable).parent / "f1twin")
SESSION2 = ROOT / "data" / "telemetry_2025-09-13_16-18-26.csv"  # laps 82160, 81790
PW_VAR = "F1TWIN_TEST_KAFKA_PASSWORD"
THROUGH = [("SASL_PLAINTEXT", "PLAIN"), ("SASL_PLAINTEXT", "SCRAM-SHA-256"), ("SSL", None), ("SASL_SSL", "SCRAM-SHA-256")]


def settings(state, protocol, mechanism=None, password=None, **kw) -> KafkaSettings:
    "KafkaSettings for one listener of the secure broker, as alice."
    sasl = protocol.startswith("SASL")
    return KafkaSettings(state["listeners"][protocol], protocol, mechanism, "alice" if sasl else None,
                         password=(password or state["users"]["alice"]) if sasl else None,
                         cafile=state["ca_file"] if protocol.endswith("SSL") else None, **kw)


def cli_options(state, protocol, mechanism=None) -> list[str]:
    "The same as `f1twin` options; the password is in the environment variable PW_VAR, never on the command line."
    opts = ["--kafka", state["listeners"][protocol], "--kafka-security-protocol", protocol]
    if protocol.startswith("SASL"):
        opts += ["--kafka-sasl-mechanism", mechanism, "--kafka-sasl-username", "alice", "--kafka-password-env", PW_VAR]
    if protocol.endswith("SSL"):
        opts += ["--kafka-ssl-cafile", state["ca_file"]]
    return opts


def f1twin(*args, password, timeout=180):
    return subprocess.run([F1TWIN, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, PW_VAR: password})


def laps_seen(state, protocol, mechanism, car) -> tuple[list, PanelModel]:
    "The lap events of `car`, read as the live panel reads them: a TopicReader with the security settings into a model."
    s = settings(state, protocol, mechanism)
    model = PanelModel()
    with TopicReader(s.bootstrap, list(TOPICS), start="earliest", car_id=car, security=s.security) as reader:
        msgs = list(reader.messages(idle_timeout_s=3))
    model.ingest(msgs, counts=reader.counts)
    assert reader.skipped == 0
    return [m["lap_time_ms"] for m in msgs if m["_topic"] == LAP_EVENTS.name], model


@pytest.fixture(scope="module")
def secured(secure_kafka):
    "The secure broker, with the design's topics (made through a SCRAM login)."
    ensure_topics(settings(secure_kafka, "SASL_PLAINTEXT", "SCRAM-SHA-256"))
    return secure_kafka


@pytest.mark.parametrize("protocol,mechanism", THROUGH)
def test_replay_and_the_panel_through_each_secured_listener(secured, protocol, mechanism):
    car = f"sec-{uuid.uuid4().hex[:8]}"
    assert check_connection(settings(secured, protocol, mechanism)) is True
    r = f1twin("replay", SESSION2, *cli_options(secured, protocol, mechanism), "--speed", "1000", "--car", car,
               password=secured["users"]["alice"])
    assert r.returncode == 0, r.stderr
    assert "ac-lap-events 2" in r.stdout and "pending 0" in r.stdout and "; connected" in r.stdout
    assert secured["users"]["alice"] not in r.stdout + r.stderr
    laps, model = laps_seen(secured, protocol, mechanism, car)
    assert laps == [82160, 81790]
    [state] = model.cars.values()
    assert state.best_lap == (2, 81790) and state.samples > 1000


@pytest.mark.parametrize("protocol,mechanism", [("SASL_PLAINTEXT", "SCRAM-SHA-256"), ("SSL", None), ("SASL_SSL", "PLAIN")])
def test_the_collector_publishes_through_each_secured_listener(secured, tmp_path, protocol, mechanism):
    short = save_session(load_session(sample_session_path()).iloc[:1100], tmp_path / "short.parquet")  # out-lap, lap 1
    fake = subprocess.Popen([F1TWIN, "fake-ac", str(short), "--hz", "33.3", "--speed", "20", "--dir", str(tmp_path / "pages")],
                            stderr=subprocess.PIPE, text=True)
    car = f"sec-{uuid.uuid4().hex[:8]}"
    s = settings(secured, protocol, mechanism)
    cfg = CollectorConfig(out_dir=tmp_path / "out", car_id=car, kafka=s.bootstrap, security=s.security, live_hz=10)
    with open_pages(tmp_path / "pages", timeout=30) as pages:
        summary = Collector(pages, cfg).run(duration=60, once=True)
    assert fake.wait(timeout=30) == 0
    assert [l["lap_time_ms"] for l in summary.laps] == [81817]
    assert summary.kafka.connected and summary.kafka.total("pending") == summary.kafka.total("failed") == 0
    laps, _ = laps_seen(secured, protocol, mechanism, car)
    assert laps == [81817]


@pytest.mark.parametrize("protocol,mechanism,words", [
    ("SASL_PLAINTEXT", "PLAIN", "the login of 'alice' (SASL_PLAINTEXT, SASL PLAIN): wrong username or password"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-256", "the login of 'alice' (SASL_PLAINTEXT, SASL SCRAM-SHA-256): wrong username or password"),
    ("SASL_SSL", "PLAIN", "the login of 'alice' (SASL_SSL, SASL PLAIN): wrong username or password"),
])  # "refused the login", or "closed the connection during the login" when the broker's refusal is not read in time
def test_a_wrong_password_is_one_clear_error_within_seconds(secured, protocol, mechanism, words):
    wrong = settings(secured, protocol, mechanism, password="not-alice-secret")
    for what, attempt in [("admin", lambda: ensure_topics(wrong)), ("reader", lambda: TopicReader(wrong, list(TOPICS))),
                          ("check", lambda: check_connection(wrong))]:
        t = time.monotonic()
        with pytest.raises(KafkaAuthError) as e:
            attempt()
        assert time.monotonic() - t < 8, f"{what} took {time.monotonic() - t:.1f} s"
        assert words in str(e.value) and "not-alice-secret" not in str(e.value), str(e.value)
    pub = KafkaPublisher(wrong)
    t = time.monotonic()
    with pytest.raises(KafkaAuthError, match="alice"):
        pub.check()
    assert time.monotonic() - t < 8
    assert pub.publish(LAP_EVENTS.name, b"a/b", {"lap_number": 1}) is True, "it still never raises in the caller"
    stats = pub.close(timeout=0)
    assert stats.pending == {LAP_EVENTS.name: 1} and words in stats.error

    t = time.monotonic()
    r = f1twin("replay", SESSION2, *cli_options(secured, protocol, mechanism), "--speed", "1000",
               password="not-alice-secret", timeout=60)
    assert r.returncode == 2 and time.monotonic() - t < 20
    assert r.stderr.startswith("f1twin: error: Kafka at ") and words in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr and "not-alice-secret" not in r.stderr


def test_an_untrusted_certificate_or_the_wrong_protocol_is_one_clear_error(secured, tmp_path):
    cases = [
        (KafkaSettings(secured["listeners"]["SSL"], "SSL"), "presented a certificate this client does not trust (self-signed"),
        (KafkaSettings(secured["listeners"]["SSL"]), "closed the connection at once: does this listener need TLS or SASL"),
        (KafkaSettings(secured["listeners"]["SASL_PLAINTEXT"], "SSL", cafile=secured["ca_file"]), "did not complete a TLS handshake"),
        (KafkaSettings(secured["listeners"]["SASL_PLAINTEXT"], "SASL_PLAINTEXT", "SCRAM-SHA-512", "alice", password="x"),
         # the broker answers the handshake with "unsupported" then closes; which of the two kafka-python sees first
         # is a race, so either message must name the mechanism as a cause
         ("does not accept SASL SCRAM-SHA-512", "SASL SCRAM-SHA-512): wrong username or password, a SASL mechanism it does not accept")),
        (KafkaSettings(secured["bootstrap"], "SASL_PLAINTEXT", "PLAIN", "alice", password="x"), "does not use SASL on this listener"),
    ]
    for s, words in cases:
        t = time.monotonic()
        with pytest.raises(KafkaAuthError) as e:
            TopicReader(s, list(TOPICS))
        words = (words,) if isinstance(words, str) else words
        assert time.monotonic() - t < 8 and any(w in str(e.value) for w in words), str(e.value)


def test_the_collector_with_a_wrong_password_stops_at_start_or_records_and_says_why_once_if_optional(secured, tmp_path, caplog):
    short = save_session(load_session(sample_session_path()).iloc[:1100], tmp_path / "short.parquet")
    wrong = settings(secured, "SASL_PLAINTEXT", "PLAIN", password="not-alice-secret")
    cfg = CollectorConfig(out_dir=tmp_path / "out", car_id="sec-wrong", kafka=wrong.bootstrap, security=wrong.security)
    caplog.set_level(logging.WARNING, logger="f1twin.kafka")

    def fake_ac(pages):
        return subprocess.Popen([F1TWIN, "fake-ac", str(short), "--hz", "33.3", "--speed", "20", "--dir", str(pages)],
                                stderr=subprocess.PIPE, text=True)
    fake = fake_ac(tmp_path / "pages")
    with open_pages(tmp_path / "pages", timeout=30) as pages:
        with pytest.raises(KafkaAuthError, match="the login of 'alice'"):
            Collector(pages, cfg)  # refused at start: an error before anything is recorded
    assert fake.wait(timeout=60) == 0
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())

    caplog.clear()  # the same with Kafka optional: the session is recorded, the refusal said once
    fake = fake_ac(tmp_path / "pages2")
    with open_pages(tmp_path / "pages2", timeout=30) as pages:
        summary = Collector(pages, dataclasses.replace(cfg, kafka_optional=True)).run(duration=60, once=True)
    assert fake.wait(timeout=30) == 0
    assert [l["lap_time_ms"] for l in summary.laps] == [81817], "the session is recorded whatever Kafka says"
    assert len(summary.files) == 1 and not summary.kafka.connected and "the login of 'alice'" in summary.kafka.error
    errors = [r.getMessage() for r in caplog.records if r.name == "f1twin.kafka" and r.levelno == logging.ERROR]
    assert len(errors) == 1 and "check the settings" in errors[0] and "not-alice-secret" not in errors[0], errors


def test_a_report_read_back_through_a_secured_listener_keeps_the_password_out_of_its_files(secured, tmp_path):
    """`f1twin report --kafka ...` hands the settings to the report's kernel by where the password is (the variable),
    never the password: the executed notebook is kept beside the report."""
    car = f"sec-{uuid.uuid4().hex[:8]}"
    opts = cli_options(secured, "SASL_SSL", "SCRAM-SHA-256")
    password = secured["users"]["alice"]
    assert f1twin("replay", SESSION2, *opts, "--speed", "1000", "--car", car, password=password).returncode == 0
    r = f1twin("report", *opts, "--session-id", "2025-09-13_16-18-26", "--car", car, "--out", tmp_path, password=password,
               timeout=300)
    assert r.returncode == 0, r.stderr
    [page] = tmp_path.glob("*.html")
    [notebook] = tmp_path.glob("*.ipynb")
    assert "1:22.160" in page.read_text() and "1:21.790" in page.read_text()
    assert PW_VAR in notebook.read_text() and password not in notebook.read_text() + page.read_text()
