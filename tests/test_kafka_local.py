"""tools/kafka_local.py's named instances and secured listeners, against real brokers.

The brokers here are named instances (.cache/kafka/instances/): `secure_kafka` for SASL and SSL,
`kafka_instance` for a private broker to kill; the shared broker (`kafka_bootstrap`) is only
checked to keep answering.
"""
import json
import subprocess
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaTimeoutError, SaslAuthenticationFailedError

from conftest import ROOT, broker_answers, kafka_local, wait_until

pytestmark = pytest.mark.kafka


def client_settings(state: dict, listener: str, mechanism: str | None = None,
                    user: str = "alice", password: str | None = None) -> dict:
    """kafka-python settings for one listener of a secure instance."""
    settings = {"bootstrap_servers": state["listeners"][listener], "security_protocol": listener}
    if listener.startswith("SASL"):
        settings.update(sasl_mechanism=mechanism, sasl_plain_username=user,
                        sasl_plain_password=state["users"][user] if password is None else password)
    if listener.endswith("SSL"):
        settings.update(ssl_cafile=state["ca_file"], ssl_check_hostname=True)
    return settings


def produce(topic: str, key: bytes, value: bytes, **settings):
    """Create `topic` and send one message with acks=all; its metadata."""
    admin = KafkaAdminClient(**settings)
    try:
        admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}},
                            wait_for_metadata=True)
    finally:
        admin.close()
    producer = KafkaProducer(acks="all", **settings)
    try:
        return producer.send(topic, key=key, value=value).get(timeout=15)
    finally:
        producer.close()


def consume_first(topic: str, **settings):
    """The first message of `topic` from the earliest offset, or None after 15 s idle."""
    consumer = KafkaConsumer(topic, group_id=f"{topic}-group", auto_offset_reset="earliest",
                             consumer_timeout_ms=15_000, **settings)
    try:
        return next(iter(consumer), None)
    finally:
        consumer.close()


def appended(path: Path, offset: int) -> str:
    with open(path, errors="replace") as f:
        f.seek(offset)
        return f.read()


# --- secured listeners --------------------------------------------------------------------

@pytest.mark.parametrize("listener,mechanism", [
    ("SASL_PLAINTEXT", "PLAIN"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
    ("SSL", None),
    ("SASL_SSL", "PLAIN"),
    ("SASL_SSL", "SCRAM-SHA-256"),
])
def test_roundtrip_through_secured_listener(secure_kafka, unique_topic, listener, mechanism):
    settings = client_settings(secure_kafka, listener, mechanism)
    sent = produce(unique_topic, b"car-44", b'{"lap": 1}', **settings)
    assert (sent.topic, sent.partition, sent.offset) == (unique_topic, 0, 0)
    message = consume_first(unique_topic, **settings)
    assert message is not None, f"nothing consumed over {listener} within 15 s"
    assert (message.key, message.value) == (b"car-44", b'{"lap": 1}')


@pytest.mark.parametrize("mechanism,broker_says", [
    ("PLAIN", "Invalid username or password"),
    ("SCRAM-SHA-256", "invalid credentials with SASL mechanism SCRAM-SHA-256"),
])
def test_wrong_password_fails_fast(secure_kafka, mechanism, broker_says):
    """A wrong password fails the client call within seconds, never hangs, and the broker says
    why. kafka-python 3.0.12 keeps retrying a rejected login until bootstrap_timeout_ms (30 s by
    default) and then raises KafkaTimeoutError; SaslAuthenticationFailedError (error 58) shows
    only in its log, and not even every time: its transport drops a response that arrives with
    the broker's close. So the client may raise either, and the broker's log is the witness."""
    log = Path(secure_kafka["log"])
    offset = log.stat().st_size
    settings = client_settings(secure_kafka, "SASL_PLAINTEXT", mechanism, password="not-it")
    started = time.monotonic()
    with pytest.raises((KafkaTimeoutError, SaslAuthenticationFailedError)):
        KafkaProducer(bootstrap_timeout_ms=5_000, **settings)
    assert time.monotonic() - started < 15, "a wrong password must not hang the client"
    rejected = wait_until(
        lambda: [line for line in appended(log, offset).splitlines()
                 if "Failed authentication" in line and broker_says in line],
        10, f"the broker logs the failed {mechanism} login")
    assert "/127.0.0.1" in rejected[0]


def test_ssl_without_the_ca_is_refused(secure_kafka):
    """The certificate is the instance's own: a client that does not trust it cannot connect."""
    settings = client_settings(secure_kafka, "SSL")
    del settings["ssl_cafile"]
    assert not broker_answers(settings.pop("bootstrap_servers"), 3, **settings)


def test_secure_record_has_what_clients_need(secure_kafka):
    state = secure_kafka
    assert set(state["listeners"]) == {"PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL"}
    assert len({state["listeners"][n] for n in state["listeners"]}) == 4
    assert state["bootstrap"] == state["listeners"]["PLAINTEXT"]
    assert state["users"] == {"alice": "alice-secret", "admin": "admin-secret"}
    assert state["mechanisms"] == ["PLAIN", "SCRAM-SHA-256"]
    ca = Path(state["ca_file"])
    assert ca.read_text().startswith("-----BEGIN CERTIFICATE-----")
    # the certificate, its key and the passwords stay in the ignored cache
    for path in (ca, Path(state["run_dir"]) / "ssl" / "server.p12",
                 Path(state["run_dir"]) / "server.properties"):
        assert path.is_relative_to(ROOT / ".cache")
        ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", str(path)])
        assert ignored.returncode == 0, f"{path} is not ignored by git"
    status = kafka_local("status", "--instance", "secure", "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["answering"] is True


# --- independent instances and outages ----------------------------------------------------

def test_down_of_one_instance_leaves_the_others_answering(kafka_bootstrap, secure_kafka,
                                                         kafka_instance):
    brokers = {"shared": kafka_bootstrap, "secure": secure_kafka["bootstrap"],
               "private": kafka_instance.bootstrap}
    assert len(set(brokers.values())) == 3
    assert kafka_instance.pid != secure_kafka["pid"]
    for name, bootstrap in brokers.items():
        assert broker_answers(bootstrap), f"the {name} broker does not answer"

    kafka_instance.stop()  # `down --instance private-...`
    assert not kafka_instance.answers(2)
    assert broker_answers(kafka_bootstrap), "the shared broker stopped answering"
    assert broker_answers(secure_kafka["bootstrap"]), "the secure instance stopped answering"
    assert kafka_local("status", "--instance", kafka_instance.name).returncode == 1
    assert kafka_local("status", "--instance", "secure").returncode == 0


def test_kill_9_and_restart_on_the_same_port_keeps_the_data(kafka_instance, unique_topic):
    bootstrap, pid = kafka_instance.bootstrap, kafka_instance.pid
    produce(unique_topic, b"before", b"the crash", bootstrap_servers=bootstrap)

    kafka_instance.kill()  # SIGKILL: no clean shutdown, the broker recovers its log at start
    assert not kafka_instance.answers(2)
    kafka_instance.start()
    assert kafka_instance.bootstrap == bootstrap, "restarted on another port"
    assert kafka_instance.pid != pid

    message = consume_first(unique_topic, bootstrap_servers=bootstrap)
    assert message is not None, "the message produced before the crash is gone"
    assert (message.key, message.value) == (b"before", b"the crash")


def test_cli_rejects_a_bad_instance_name_and_downs_a_missing_one_quietly():
    bad = kafka_local("status", "--instance", "../escape")
    assert bad.returncode == 1 and "bad instance name" in bad.stderr
    missing = kafka_local("down", "--instance", "never-started")
    assert missing.returncode == 0 and "is not running" in missing.stderr
    assert not (ROOT / ".cache" / "kafka" / "instances" / "never-started").exists()
