"""Smoke tests: the Kafka broker (make kafka-up) works end to end with kafka-python."""
import json
import subprocess
import sys
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

KAFKA_LOCAL = Path(__file__).resolve().parent.parent / "tools" / "kafka_local.py"


def test_produce_consume_roundtrip(kafka_bootstrap, unique_topic):
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics({unique_topic: {"num_partitions": 1, "replication_factor": 1}},
                            wait_for_metadata=True)
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        try:
            sent = producer.send(unique_topic, key=b"car-44", value=b'{"lap": 1}').get(timeout=10)
        finally:
            producer.close()
        assert (sent.topic, sent.partition) == (unique_topic, 0)

        consumer = KafkaConsumer(unique_topic, bootstrap_servers=kafka_bootstrap,
                                 group_id=f"{unique_topic}-group", auto_offset_reset="earliest",
                                 consumer_timeout_ms=10_000)
        try:
            message = next(iter(consumer), None)  # None if nothing arrives within 10 s
        finally:
            consumer.close()
        assert message is not None, "no message consumed within 10 s"
        assert (message.key, message.value) == (b"car-44", b'{"lap": 1}')
    finally:
        try:
            admin.delete_topics([unique_topic])
        finally:
            admin.close()


def test_kafka_local_status_agrees_with_its_record(kafka_bootstrap):
    """`status` exits 0 naming the broker it recorded, or 1 when the broker in use is not its own (docker)."""
    record = KAFKA_LOCAL.parent.parent / ".cache" / "kafka" / "broker.json"
    managed = record.exists() and json.loads(record.read_text())["bootstrap"] == kafka_bootstrap
    result = subprocess.run([sys.executable, str(KAFKA_LOCAL), "status"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == (0 if managed else 1), result.stdout + result.stderr
    if managed:
        assert kafka_bootstrap in result.stdout


def test_kafka_python_checks_crcs_in_c():
    """crc32c is installed and used: in pure Python the record checksums cap a consumer near 6 000 msg/s."""
    from kafka.record import util
    assert util.crc32c_c is not None
