"""f1twin.kafka_admin against the real broker: topics with the design's partitions and retention, check_connection,
local_bootstrap. Every test uses topics of its own and deletes them afterwards."""
import json
import time
from dataclasses import replace

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource

from f1twin import kafka_admin
from f1twin.kafka_admin import check_connection, ensure_topics, local_bootstrap
from f1twin.kafka_conn import KafkaSettings, StreamWarning
from f1twin.messages import StreamError
from f1twin.schema import HOUR_MS, LAP_EVENTS, SESSION_STATS, TELEMETRY_LIVE

NOWHERE = "127.0.0.1:1"  # nothing listens there: connection refused at once


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


def retention_of(bootstrap, topic):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        conf = admin.describe_configs([ConfigResource("TOPIC", topic, ["retention.ms"])], config_filter="all")
        parts = {t["name"]: len(t["partitions"]) for t in admin.describe_topics([topic])}
    finally:
        admin.close()
    return int(conf["topic"][topic]["retention.ms"]["value"]), parts[topic]


def test_local_bootstrap_and_check_connection(kafka_bootstrap, monkeypatch, tmp_path):
    monkeypatch.setenv("F1TWIN_KAFKA", kafka_bootstrap)
    assert local_bootstrap() == kafka_bootstrap
    monkeypatch.setenv("F1TWIN_KAFKA", NOWHERE)
    monkeypatch.setattr(kafka_admin, "_broker_records", lambda: [tmp_path / "broker.json"])
    assert local_bootstrap() is None
    (tmp_path / "broker.json").write_text(json.dumps({"bootstrap": kafka_bootstrap}))
    assert local_bootstrap() == kafka_bootstrap
    assert check_connection(kafka_bootstrap) is True and check_connection(KafkaSettings(kafka_bootstrap)) is True
    t = time.monotonic()
    assert check_connection(NOWHERE) is False, "nothing listens: not an error (a broker not started yet)"
    assert time.monotonic() - t < 2


def test_check_connection_to_a_server_that_is_not_kafka():
    import socket
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        t = time.monotonic()
        with pytest.raises(StreamError, match="does not answer"):
            check_connection(f"127.0.0.1:{silent.getsockname()[1]}", timeout_s=2)
        assert time.monotonic() - t < 6


def test_ensure_topics_creates_with_retention_and_is_idempotent(kafka_bootstrap, make_topic):
    live, stats = make_topic(TELEMETRY_LIVE, partitions=2), make_topic(SESSION_STATS, partitions=1)
    assert ensure_topics(kafka_bootstrap, [live, stats]) == {live.name: "created", stats.name: "created"}
    assert retention_of(kafka_bootstrap, live.name) == (HOUR_MS, 2)
    assert retention_of(kafka_bootstrap, stats.name) == (6 * HOUR_MS, 1)
    assert ensure_topics(kafka_bootstrap, [live, stats], security={"security_protocol": "PLAINTEXT"}) == {
        live.name: "ok", stats.name: "ok"}
    assert ensure_topics(KafkaSettings(kafka_bootstrap), [live]) == {live.name: "ok"}

    # someone changed the retention: reported, and set back to the spec unless told not to
    with pytest.warns(StreamWarning, match=r"retention.ms is 3600000 \(1 h\), the spec says 18000000 \(5 h\); left as is"):
        assert ensure_topics(kafka_bootstrap, [replace(live, retention_ms=5 * HOUR_MS)],
                             update_retention=False) == {live.name: "retention differs"}
    assert retention_of(kafka_bootstrap, live.name) == (HOUR_MS, 2)
    with pytest.warns(StreamWarning, match="updated it to the spec"):
        assert ensure_topics(kafka_bootstrap, [replace(live, retention_ms=5 * HOUR_MS)]) == {live.name: "retention updated"}
    assert retention_of(kafka_bootstrap, live.name) == (5 * HOUR_MS, 2)
    # partitions are only reported
    with pytest.warns(StreamWarning, match="has 1 partition.*spec says 3"):
        assert ensure_topics(kafka_bootstrap, [replace(stats, partitions=3)]) == {stats.name: "partitions differ"}
    assert retention_of(kafka_bootstrap, stats.name) == (6 * HOUR_MS, 1)


def test_ensure_topics_errors():
    t = time.monotonic()
    with pytest.raises(StreamError, match="127.0.0.1:1 does not answer"):
        ensure_topics(NOWHERE)
    assert time.monotonic() - t < 5
    with pytest.raises(StreamError, match="TopicSpec"):
        ensure_topics(NOWHERE, ["ac-lap-events"])
    with pytest.raises(StreamError, match="replication_factor"):
        ensure_topics(NOWHERE, replication_factor=0)
