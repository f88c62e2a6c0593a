"""f1twin.kafka_conn: the one Kafka settings object, its security settings, and the CLI options that build it."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from f1twin.cli import build_parser, kafka_from_args
from f1twin.kafka_conn import (KafkaAuthError, KafkaSettings, _client_config, _failure, kafka_settings,
                               security_config)
from f1twin.messages import StreamError
from f1twin.schema import F1twinError


def test_security_settings(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert security_config("SASL_SSL", mechanism="SCRAM-SHA-512", username="u", password="p", cafile=ca) == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "u",
        "sasl_plain_password": "p", "ssl_cafile": str(ca), "ssl_check_hostname": True}
    assert security_config("SSL", cafile=ca) == {"security_protocol": "SSL", "ssl_cafile": str(ca),
                                                 "ssl_check_hostname": True}
    for bad, words in [(lambda: security_config("SASL_SSL", username="u"), "username and a password"),
                       (lambda: security_config("SSL", cafile=tmp_path / "missing.pem"), "no such file"),
                       (lambda: security_config("PLAINTEXT", cafile=ca), "does not use TLS"),
                       (lambda: security_config("PLAINTEXT", username="u", password="p"), "has no login"),
                       (lambda: security_config("SASL_SSL", mechanism="MD5", username="u", password="p"), "MD5")]:
        with pytest.raises(StreamError, match=words):
            bad()
    # every client gets the same settings, and a wrong key is an error before anything starts
    for cls in (KafkaProducer, KafkaAdminClient, KafkaConsumer):
        cfg = _client_config(kafka_settings("h1:9092,h2:9093", security_config("SASL_PLAINTEXT", username="u", password="p")), cls)
        assert cfg["sasl_plain_username"] == "u" and cfg["bootstrap_servers"] == ["h1:9092", "h2:9093"]
    from f1twin.kafka_publish import KafkaPublisher
    with pytest.raises(StreamError, match="unknown security setting.*sasl_user"):
        KafkaPublisher("localhost:9092", security={"sasl_user": "u"})
    with pytest.raises(StreamError, match="not 'host:port'"):
        KafkaPublisher("localhost")


def test_settings_take_the_password_from_a_variable_or_a_file_and_never_show_it(tmp_path, monkeypatch):
    monkeypatch.setenv("F1TWIN_TEST_PW", "s3cret-from-env")
    (tmp_path / "pw").write_text("s3cret-from-file\nignored second line\n")
    by_env = KafkaSettings("b:9093", "SASL_PLAINTEXT", "SCRAM-SHA-256", "alice", password_env="F1TWIN_TEST_PW")
    by_file = KafkaSettings("b:9093", "SASL_PLAINTEXT", "SCRAM-SHA-256", "alice", password_file=str(tmp_path / "pw"))
    by_value = KafkaSettings("b:9093", "SASL_PLAINTEXT", "SCRAM-SHA-256", "alice", password="s3cret-value")
    assert by_env.security["sasl_plain_password"] == "s3cret-from-env"
    assert by_file.security["sasl_plain_password"] == "s3cret-from-file"
    assert by_value.security["sasl_plain_password"] == "s3cret-value"
    for s in (by_env, by_file, by_value):
        shown = repr(s) + str(s)
        assert "s3cret" not in shown and "alice" in shown and "SASL_PLAINTEXT" in str(s)
    for s in (by_env, by_file):  # handed to another process (the report's kernel) by where the password is
        d = s.to_dict()
        assert "s3cret" not in str(d) and kafka_settings(d) == s
    with pytest.raises(StreamError, match="password_env or password_file"):
        by_value.to_dict()
    assert KafkaSettings("b:9093", "SASL_SSL", username="u", password="p").mechanism == "PLAIN", "PLAIN by default"
    assert kafka_settings("a:1").security == {} and kafka_settings("a:1", {"security_protocol": "PLAINTEXT"}).security == {}
    assert kafka_settings(by_env) is by_env


@pytest.mark.parametrize("make,words", [
    (lambda p: KafkaSettings("b:9093", "SASL_PLAINTEXT", username="u", password_env="F1TWIN_SURELY_UNSET"), "F1TWIN_SURELY_UNSET is not set"),
    (lambda p: KafkaSettings("b:9093", "SASL_PLAINTEXT", username="u", password_file=str(p / "none")), "password file .*none"),
    (lambda p: KafkaSettings("b:9093", "SASL_PLAINTEXT", username="u", password_file=str(p)), "password file"),
    (lambda p: KafkaSettings("b:9093", "SASL_PLAINTEXT", username="u", password="a", password_env="X"), "one way"),
    (lambda p: KafkaSettings("b:9093", "PLAINTEXT", "PLAIN"), "SASL mechanism .* has no login"),
    (lambda p: KafkaSettings("b:9093", "SSL", cafile=str(p / "none.pem")), "no such file"),
    (lambda p: KafkaSettings("b"), "not 'host:port'"),
    (lambda p: KafkaSettings("b:9093", extra={"ssl_password": "x", "nonsense": 1}), "nonsense"),
    (lambda p: kafka_settings(KafkaSettings("b:1"), {"security_protocol": "SSL"}), "not also as security="),
    (lambda p: kafka_settings({"bootstrap": "b:1", "passwd": "x"}), "unknown Kafka setting"),
])
def test_bad_settings_are_one_clear_error(tmp_path, make, words):
    with pytest.raises(StreamError, match=words):
        make(tmp_path)


def parse(*argv):
    return build_parser().parse_args(["replay", "s.csv", *argv])


def test_cli_kafka_options_build_the_settings(tmp_path, monkeypatch):
    for var in ("F1TWIN_KAFKA", "F1TWIN_CONFIG"): monkeypatch.delenv(var, raising=False)  # no settings but the options
    monkeypatch.chdir(tmp_path)  # (and no ./f1twin.toml)
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("RIG_PW", "pw-from-env")
    s = kafka_from_args(parse("--kafka", "k1:9093,k2:9093", "--kafka-security-protocol", "SASL_SSL",
                              "--kafka-sasl-mechanism", "SCRAM-SHA-512", "--kafka-sasl-username", "rig1",
                              "--kafka-password-env", "RIG_PW", "--kafka-ssl-cafile", str(ca),
                              "--kafka-ssl-no-check-hostname"))
    assert s == KafkaSettings("k1:9093,k2:9093", "SASL_SSL", "SCRAM-SHA-512", "rig1", password_env="RIG_PW",
                              cafile=str(ca), check_hostname=False)
    assert s.security["sasl_plain_password"] == "pw-from-env" and s.security["ssl_check_hostname"] is False
    assert kafka_from_args(parse("--kafka", "k:9092")) == KafkaSettings("k:9092")
    report = build_parser().parse_args(["report", "--kafka", "k:9092", "--session-id", "x"])
    assert kafka_from_args(report).to_dict()["bootstrap"] == "k:9092", "report builds the same settings"
    assert kafka_from_args(build_parser().parse_args(["report", "s.csv"])) is None
    for argv, words in [(("--kafka", "k:1", "--kafka-sasl-username", "u"), "needs the password"),
                        (("--kafka", "k:1", "--kafka-sasl-username", "u", "--kafka-password-env", "F1TWIN_SURELY_UNSET"), "not set"),
                        (("--kafka", "k:1", "--kafka-sasl-username", "u", "--kafka-password-env", "RIG_PW"), "has no login"),
                        (("--kafka", "k:1", "--kafka-ssl-cafile", str(ca)), "does not use TLS")]:
        with pytest.raises(F1twinError, match=words):
            kafka_from_args(parse(*argv))
    with pytest.raises(F1twinError, match="needs where Kafka is: a bootstrap address \\(--kafka HOST:PORT"):
        kafka_from_args(build_parser().parse_args(["report", "s.csv", "--kafka-ssl-cafile", str(ca)]))


def test_cli_has_no_password_option_and_says_so_in_one_line(tmp_path):
    f1twin = str(Path(sys.executable).parent / "f1twin")
    r = subprocess.run([f1twin, "replay", "x.csv", "--kafka", "k:1", "--kafka-password", "secret"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "error: ambiguous option: --kafka-password could match --kafka-password-env" in r.stderr
    r = subprocess.run([f1twin, "replay", str(tmp_path / "x.csv"), "--kafka", "k:1", "--kafka-security-protocol",
                        "SASL_PLAINTEXT", "--kafka-sasl-username", "u"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("f1twin: error: ") and len(r.stderr.splitlines()) == 1
    assert "--kafka-password-env VAR or --kafka-password-file FILE" in r.stderr


def test_what_kafka_python_logged_becomes_one_clear_line():
    sasl = KafkaSettings("127.0.0.1:9094", "SASL_PLAINTEXT", "SCRAM-SHA-256", "alice", password="nope")
    tls = KafkaSettings("127.0.0.1:9095", "SSL")
    timeout = TimeoutError("Unable to bootstrap from 127.0.0.1:9094")
    cases = [
        (sasl, ["Abort ([Error 58] SaslAuthenticationFailedError: Authentication failed: Invalid username or password)"],
         KafkaAuthError, r"^Kafka at 127.0.0.1:9094 refused the login of 'alice' \(SASL_PLAINTEXT, SASL SCRAM-SHA-256\): wrong username or password\?$"),
        (sasl, ["SaslHandshake failed: UnsupportedSaslMechanismError"], KafkaAuthError, "does not accept SASL SCRAM-SHA-256 on this listener"),
        (sasl, ["SaslHandshake failed: IllegalSaslStateError"], KafkaAuthError, "does not use SASL on this listener"),
        (sasl, ["<KafkaTCPTransport>: socket disconnected"], KafkaAuthError, "closed the connection during the login of 'alice'"),
        (tls, ["Handshake failed: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate (_ssl.c:1006)"],
         KafkaAuthError, r"certificate this client does not trust \(self-signed certificate\)"),
        (tls, ["Handshake failed: [SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of protocol"], KafkaAuthError,
         "did not complete a TLS handshake"),
        (KafkaSettings("127.0.0.1:9094"), ["socket disconnected"], KafkaAuthError, "does this listener need TLS or SASL"),
        (KafkaSettings("127.0.0.1:9094"), [], StreamError, "does not answer"),
    ]
    for settings, logged, cls, words in cases:
        e = _failure(settings, timeout, logged)
        assert type(e) is cls and re.search(words, str(e)), str(e)
        assert "\n" not in str(e) and "nope" not in str(e)
