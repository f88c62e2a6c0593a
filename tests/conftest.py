"""Shared pytest fixtures.

Kafka tests talk to a real broker: start one with `make kafka-up` (tools/kafka_local.py, recorded
in .cache/kafka/broker.json) or point F1TWIN_KAFKA=host:port at one (e.g. `docker compose up -d`
and F1TWIN_KAFKA=127.0.0.1:19092). Without a broker the Kafka tests fail; they never skip.
"""
import json
import os
import socket
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BROKER_JSON = ROOT / ".cache" / "kafka" / "broker.json"
HOW_TO_START = ("Start the local broker with `make kafka-up` "
                "(or set F1TWIN_KAFKA=host:port to a running Kafka).")


def pytest_configure(config):
    # kafka-python 3.0 loads its protocol schemas with deprecated importlib.resources calls
    config.addinivalue_line("filterwarnings",
                            "ignore:(read_text|open_text) is deprecated:DeprecationWarning")
    config.addinivalue_line("markers", "browser: drives a real browser (Debian's Chromium via Playwright)")


def recorded_bootstrap():
    """The address tools/kafka_local.py recorded, or None."""
    try:
        return json.loads(BROKER_JSON.read_text())["bootstrap"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture(scope="session")
def kafka_bootstrap():
    """Bootstrap address of a Kafka broker that answers a metadata request (else the test fails)."""
    from kafka import KafkaAdminClient

    bootstrap = os.environ.get("F1TWIN_KAFKA") or recorded_bootstrap()
    if not bootstrap:
        pytest.fail(f"No Kafka broker: F1TWIN_KAFKA is unset and {BROKER_JSON} does not exist. "
                    + HOW_TO_START, pytrace=False)
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:  # a closed port fails at once instead of after the client's retries
        socket.create_connection((host, int(port)), timeout=5).close()
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000,
                                 bootstrap_timeout_ms=10_000)
        try:
            admin.list_topics()
        finally:
            admin.close()
    except Exception as exc:
        pytest.fail(f"Kafka at {bootstrap} does not answer a metadata request "
                    f"({type(exc).__name__}: {exc}). " + HOW_TO_START, pytrace=False)
    return bootstrap


@pytest.fixture
def unique_topic():
    """A fresh topic name, so tests never see each other's messages."""
    return f"f1twin-test-{uuid.uuid4().hex[:12]}"
