#!/usr/bin/env python3
"""Run a real single-node Apache Kafka broker locally, without Docker.

Usage (from anywhere; paths are relative to the repo root):

    python tools/kafka_local.py up [--port P]  # start (or reuse) the broker; prints its address
    python tools/kafka_local.py status         # exit 0 if running and answering, 1 if not
    python tools/kafka_local.py down           # stop it (no error if it is not running)

    python tools/kafka_local.py up --instance NAME [--port P] [--secure] [--json]
    python tools/kafka_local.py status --instance NAME [--json]
    python tools/kafka_local.py down --instance NAME

`up` resolves the broker's jars (org.apache.kafka:kafka_2.13, see tools/kafka/pom.xml) with Maven
into .cache/kafka/jars/ once, writes a KRaft broker+controller config into .cache/kafka/run/,
formats the storage on first use, starts `java ... kafka.Kafka` detached and waits until a
metadata request succeeds. The broker listens on 127.0.0.1:19092 unless --port or the
F1TWIN_KAFKA_PORT environment variable says otherwise. Its address and PID are recorded in
.cache/kafka/broker.json, which tests/conftest.py reads. Progress messages go to stderr and the
bootstrap address alone to stdout. Broker log: .cache/kafka/run/server.log (JVM output: kafka.out).

--instance NAME runs an independent broker beside the default one (tests use them for outages
and security): its config, data, log and record live in .cache/kafka/instances/NAME/ (record:
broker.json there, run dir: run/), and starting or stopping it never touches another broker.
Without --port it reuses the ports it had last time when they are free (so a restart keeps its
address and its data), else picks free ones. F1TWIN_KAFKA_PORT applies to the default broker only.

--secure adds, beside PLAINTEXT (kept for admin use and the readiness check), three secured
listeners: SASL_PLAINTEXT and SASL_SSL accepting SASL/PLAIN and SCRAM-SHA-256 for the test
accounts alice/alice-secret and admin/admin-secret (SCRAM credentials are created when the storage
is formatted), and SSL. The certificate is self-signed by keytool once per instance (SAN
IP:127.0.0.1, DNS:localhost) into the run dir's ssl/ folder, with its PEM for clients (ca.pem),
so clients can keep hostname checking on. `up --secure` also waits until a SCRAM login over
SASL_PLAINTEXT and a PLAIN login over SASL_SSL succeed.

--json makes `up` and `status` print the whole record as JSON on stdout instead of the address:
bootstrap, pid, port, controller_port, log, started, instance (null for the default broker),
run_dir, secure, listeners ({"PLAINTEXT": "127.0.0.1:P", ...}) and, with --secure, users
({name: password}), mechanisms and ca_file. `status --json` adds running and answering.

Needs Java 17+ (and its keytool for --secure) and Maven on PATH. The readiness check needs
kafka-python in the Python that runs this script (the Makefile uses .venv/bin/python).
docker-compose.yml serves the same address as the default broker.
"""
from __future__ import annotations

import argparse
import base64
import fcntl
import hashlib
import json
import logging
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POM = ROOT / "tools" / "kafka" / "pom.xml"
LOG4J = ROOT / "tools" / "kafka" / "log4j2.properties"
CACHE = ROOT / ".cache" / "kafka"
JARS = CACHE / "jars"
JARS_OK = JARS / ".resolved"  # written after a successful resolve: sha256 of the POM used
RUN = CACHE / "run"
DATA = RUN / "data"
FORMATTED = RUN / "format.json"  # cluster id + controller port the storage was formatted with
STATE = CACHE / "broker.json"
INSTANCES = CACHE / "instances"  # named instances: INSTANCES/NAME/{broker.json,run/}
DEFAULT_PORT = 19092
READY_TIMEOUT = 90  # seconds
STOP_TIMEOUT = 20  # seconds
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
# ports picked for named instances and extra listeners: below Linux's ephemeral range, so a
# client's outgoing connection never holds the port a restarted broker wants back
PICK_PORTS = (20000, 32000)
SECURED = ("SASL_PLAINTEXT", "SSL", "SASL_SSL")  # the listeners --secure adds
MECHANISMS = ("PLAIN", "SCRAM-SHA-256")
USERS = {"alice": "alice-secret", "admin": "admin-secret"}  # test accounts, not secrets
HEAP_DEFAULT = ("-Xms256m", "-Xmx512m")
HEAP_INSTANCE = ("-Xms128m", "-Xmx384m")  # named instances run beside the default broker


def say(msg: str) -> None:
    print(f"kafka_local: {msg}", file=sys.stderr, flush=True)


def die(msg: str):
    say(f"error: {msg}")
    sys.exit(1)


def need(tool: str, hint: str) -> None:
    if shutil.which(tool) is None:
        die(f"`{tool}` was not found on PATH. {hint}")


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


# --- instances ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Instance:
    """Where one broker keeps its things: the default one (name None) or a named one."""
    name: str | None
    home: Path  # holds the record (broker.json) and the lock
    run: Path  # config, data, logs, ssl material

    @property
    def data(self) -> Path:
        return self.run / "data"

    @property
    def formatted(self) -> Path:
        return self.run / "format.json"

    @property
    def ports(self) -> Path:
        return self.run / "ports.json"  # the ports of the last start, kept across `down`

    @property
    def ssl(self) -> Path:
        return self.run / "ssl"

    @property
    def state(self) -> Path:
        return self.home / "broker.json"

    @property
    def label(self) -> str:
        return "Kafka" if self.name is None else f"Kafka instance {self.name!r}"

    def cli(self, command: str) -> str:
        opt = "" if self.name is None else f" --instance {self.name}"
        return f"`python tools/kafka_local.py {command}{opt}`"


def instance(name: str | None) -> Instance:
    if name is None:
        return Instance(None, CACHE, RUN)
    if not NAME.fullmatch(name):
        die(f"bad instance name {name!r}: use up to 40 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit.")
    return Instance(name, INSTANCES / name, INSTANCES / name / "run")


# --- processes and ports ------------------------------------------------------------------

def alive(pid: int) -> bool:
    """True if `pid` runs and is not a zombie; on Linux also that it is a Kafka broker."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if not Path("/proc/self").exists():  # no procfs (e.g. macOS): trust kill(0)
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z" and b"kafka.Kafka" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, IndexError):
        return False


def stop(pid: int) -> bool:
    """SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL. True once the process is gone."""
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 5)):
        if not alive(pid):
            return True
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.2)
    return not alive(pid)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the JVM does
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def pick_free_port(taken=()) -> int:
    """A free port in PICK_PORTS that is not in `taken` (and never 19092/19093)."""
    lo, hi = PICK_PORTS
    for _ in range(200):
        port = random.randrange(lo, hi)
        if port not in taken and port_free(port):
            return port
    die(f"found no free port in 127.0.0.1:{lo}-{hi}.")


def choose_ports(inst: Instance, port: int | None, secure: bool) -> dict[str, int]:
    """Ports per listener: `port` for PLAINTEXT if given; else, for each listener, the port it
    had last time (the controller's: the one the storage was formatted with, or for the default
    broker port+1) if free, else a free one."""
    last = read_json(inst.ports)
    last["CONTROLLER"] = formatted_with(inst).get("controller_port") or last.get("CONTROLLER")
    chosen: dict[str, int] = {}
    for name in ("PLAINTEXT", "CONTROLLER", *(SECURED if secure else ())):
        if name == "PLAINTEXT" and port is not None:
            chosen[name] = port
            continue
        wishes = [last.get(name)]
        if name == "CONTROLLER" and inst.name is None:
            wishes.append(chosen["PLAINTEXT"] + 1)
        free = [p for p in wishes
                if isinstance(p, int) and p not in chosen.values() and port_free(p)]
        chosen[name] = free[0] if free else pick_free_port(chosen.values())
        if name == "PLAINTEXT" and last.get(name) and chosen[name] != last[name]:
            say(f"port {last[name]} of the last start is taken; using {chosen[name]}.")
    return chosen


def kafka_admin_client():
    """kafka-python's KafkaAdminClient, imported lazily (only the readiness check needs it)."""
    try:
        from kafka import KafkaAdminClient
    except ImportError:
        die(f"kafka-python is not installed for {sys.executable}; run this with the project "
            "venv (.venv/bin/python) or `pip install kafka-python`.")
    logging.getLogger("kafka").addHandler(logging.NullHandler())  # no retry noise on stderr
    return KafkaAdminClient


def probe(bootstrap: str, timeout: float = 5.0, **security) -> Exception | None:
    """None if the broker at `bootstrap` answers a metadata request (kafka-python, lazily),
    else the error. `security` are kafka-python settings (security_protocol, sasl_...)."""
    host, port = bootstrap.rsplit(":", 1)
    try:  # cheap pre-check, and keeps kafka-python from retrying against a closed port
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError as exc:
        return exc
    KafkaAdminClient = kafka_admin_client()
    ms = int(timeout * 1000)
    opts = {"bootstrap_servers": bootstrap, "request_timeout_ms": ms, "client_id": "kafka-local",
            **security}
    # kafka-python 3.x calls it bootstrap_timeout_ms, 2.x api_version_auto_timeout_ms
    key = "bootstrap_timeout_ms" if "bootstrap_timeout_ms" in KafkaAdminClient.DEFAULT_CONFIG \
        else "api_version_auto_timeout_ms"
    opts[key] = ms
    seen = AuthErrors()
    logging.getLogger("kafka").addHandler(seen)
    try:
        admin = KafkaAdminClient(**opts)
        try:
            admin.list_topics()
            return None
        finally:
            admin.close()
    except Exception as exc:
        # kafka-python 3.0 retries a rejected login until its bootstrap timeout and then
        # raises KafkaTimeoutError; the authentication error is only in its log
        return exc if auth_failed(exc) or not seen.errors else seen.errors[-1]
    finally:
        logging.getLogger("kafka").removeHandler(seen)


class AuthErrors(logging.Handler):
    """Collects the authentication errors kafka-python logs (its log arguments)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.errors: list[Exception] = []

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        self.errors += [a for a in args if isinstance(a, Exception) and auth_failed(a)]


def answers(bootstrap: str, timeout: float = 5.0, **security) -> bool:
    """True if the broker at `bootstrap` answers a metadata request."""
    return probe(bootstrap, timeout, **security) is None


def auth_failed(exc: Exception | None) -> bool:
    """True if `exc` is kafka-python's answer to rejected credentials."""
    from kafka import errors
    return isinstance(exc, (errors.SaslAuthenticationFailedError,
                            errors.UnsupportedSaslMechanismError))


def login_checks(state: dict) -> list[tuple[str, str, dict]]:
    """(what, bootstrap, kafka-python settings) of the logins `up --secure` waits for."""
    user, password = "alice", state["users"]["alice"]
    sasl = {"sasl_plain_username": user, "sasl_plain_password": password}
    listeners = state["listeners"]
    return [
        (f"SCRAM-SHA-256 login of {user} over SASL_PLAINTEXT", listeners["SASL_PLAINTEXT"],
         {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256", **sasl}),
        (f"PLAIN login of {user} over SASL_SSL", listeners["SASL_SSL"],
         {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "ssl_cafile":
          state["ca_file"], "ssl_check_hostname": True, **sasl}),
    ]


# --- state file ---------------------------------------------------------------------------

def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def read_state(inst: Instance) -> dict | None:
    state = read_json(inst.state)
    return state if {"bootstrap", "pid"} <= state.keys() else None


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read (it holds passwords)."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


# --- broker setup -------------------------------------------------------------------------

def resolve_jars() -> None:
    """Copy the broker and its runtime dependencies into JARS, unless already done for this POM."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    with open(CACHE / ".jars.lock", "w") as lock:  # instances may start at the same time
        fcntl.flock(lock, fcntl.LOCK_EX)
        if JARS_OK.exists() and JARS_OK.read_text().strip() == digest:
            return
        need("mvn", "It resolves the Kafka jars once from Maven Central; install Maven "
                    "(e.g. `apt-get install maven`) or use `docker compose up -d` instead.")
        say("resolving the Kafka jars with Maven into .cache/kafka/jars/ (first time only) ...")
        shutil.rmtree(JARS, ignore_errors=True)
        cmd = ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
               f"-DoutputDirectory={JARS}", "-DincludeScope=runtime"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0 or not any(JARS.glob("kafka_2.13-*.jar")):
            die(f"Maven could not resolve the Kafka jars:\n{r.stdout}{r.stderr}")
        JARS_OK.write_text(digest + "\n")


def java(inst: Instance, main: str, *args: str, heap: tuple[str, ...] = ()) -> list[str]:
    return ["java", *heap, "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={LOG4J}",
            f"-Dkafka.logs.dir={inst.run}", "-cp", f"{JARS}/*", main, *args]


def ssl_material(inst: Instance) -> dict:
    """The instance's keystore (a self-signed key made by keytool once), its password and the
    certificate as PEM for clients: {"keystore", "password", "ca_file"}."""
    keystore, pem, secret = inst.ssl / "server.p12", inst.ssl / "ca.pem", inst.ssl / "password"
    if not (keystore.exists() and pem.exists() and secret.exists()):
        need("keytool", "It comes with Java (e.g. `apt-get install openjdk-17-jre-headless`).")
        shutil.rmtree(inst.ssl, ignore_errors=True)
        inst.ssl.mkdir(mode=0o700, parents=True)
        password = secrets.token_urlsafe(18)
        env = {**os.environ, "KAFKA_LOCAL_STOREPASS": password}  # never on a command line
        store = ["-keystore", str(keystore), "-storetype", "PKCS12",
                 "-storepass:env", "KAFKA_LOCAL_STOREPASS"]
        say(f"making a self-signed certificate for 127.0.0.1/localhost in {rel(inst.ssl)}")
        for cmd in (["keytool", "-genkeypair", "-alias", "broker", "-keyalg", "RSA",
                     "-keysize", "2048", "-validity", "3650", "-dname",
                     f"CN=localhost, O=f1twin kafka_local {inst.name or 'default'}",
                     "-ext", "SAN=IP:127.0.0.1,DNS:localhost",
                     "-keypass:env", "KAFKA_LOCAL_STOREPASS", *store, "-noprompt"],
                    ["keytool", "-exportcert", "-rfc", "-alias", "broker", "-file", str(pem),
                     *store]):
            r = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if r.returncode != 0:
                shutil.rmtree(inst.ssl, ignore_errors=True)
                die(f"keytool failed ({' '.join(cmd[:2])}):\n{r.stdout}{r.stderr}")
        write_private(secret, password + "\n")
    return {"keystore": keystore, "password": secret.read_text().strip(), "ca_file": pem}


def jaas(mechanism: str) -> str:
    """The broker's JAAS line for one SASL mechanism on one listener."""
    admin = f'username="admin" password="{USERS["admin"]}"'
    if mechanism == "PLAIN":
        accounts = " ".join(f'user_{u}="{p}"' for u, p in USERS.items())
        return f"org.apache.kafka.common.security.plain.PlainLoginModule required {admin} {accounts};"
    return f"org.apache.kafka.common.security.scram.ScramLoginModule required {admin};"


def secure_props(ssl: dict) -> dict:
    props = {
        "sasl.enabled.mechanisms": ",".join(MECHANISMS),
        # answer a failed login at once (Kafka delays it by 100 ms against password guessing),
        # so a client with a wrong password gives up sooner
        "connection.failed.authentication.delay.ms": 0,
    }
    for listener in ("sasl_plaintext", "sasl_ssl"):
        for mechanism in MECHANISMS:
            props[f"listener.name.{listener}.{mechanism.lower()}.sasl.jaas.config"] = jaas(mechanism)
    props.update({
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": ssl["keystore"],
        "ssl.keystore.password": ssl["password"],
        "ssl.key.password": ssl["password"],
        "ssl.client.auth": "none",
    })
    return props


def write_config(inst: Instance, ports: dict[str, int], ssl: dict | None) -> Path:
    cport = ports["CONTROLLER"]
    listeners = ",".join(f"{name}://127.0.0.1:{port}" for name, port in ports.items())
    protocols = ",".join(f"{name}:{'PLAINTEXT' if name == 'CONTROLLER' else name}"
                         for name in ports)
    props = {
        "process.roles": "broker,controller",
        "node.id": 1,
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{cport}",
        "listeners": listeners,
        "advertised.listeners": listeners,
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": protocols,
        "log.dirs": inst.data,
        # one node: every internal topic gets replication factor 1 and min ISR 1
        "offsets.topic.replication.factor": 1,
        "offsets.topic.num.partitions": 1,
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
        "transaction.state.log.num.partitions": 1,
        "share.coordinator.state.topic.replication.factor": 1,
        "share.coordinator.state.topic.min.isr": 1,
        "share.coordinator.state.topic.num.partitions": 1,
        "default.replication.factor": 1,
        "min.insync.replicas": 1,
        "num.partitions": 1,
        "auto.create.topics.enable": "true",
        "group.initial.rebalance.delay.ms": 0,
        # a small local broker: modest segments, one day of retention
        "log.segment.bytes": 16 * 1024 * 1024,
        "log.retention.hours": 24,
        "log.retention.check.interval.ms": 60000,
        **(secure_props(ssl) if ssl else {}),
    }
    path = inst.run / "server.properties"
    write_private(path, "# written by tools/kafka_local.py on every `up`\n"
                  + "".join(f"{k}={v}\n" for k, v in props.items()))
    return path


def formatted_with(inst: Instance) -> dict:
    return read_json(inst.formatted) if (inst.data / "meta.properties").exists() else {}


def format_storage(inst: Instance, config: Path, cport: int, secure: bool) -> None:
    """Format the KRaft storage unless it already is, for this controller port (and, for
    --secure, with the SCRAM credentials of USERS)."""
    done = formatted_with(inst)
    scram = sorted(USERS) if secure else []
    if done.get("controller_port") == cport and set(scram) <= set(done.get("scram_users", [])):
        return
    if done:
        why = "the controller port changed" if done.get("controller_port") != cport \
            else "--secure needs SCRAM credentials, created only at format time"
        say(f"reformatting {rel(inst.data)} ({why}); its topics are dropped.")
    shutil.rmtree(inst.data, ignore_errors=True)  # the quorum records the controller endpoint
    cluster_id = "-"
    while cluster_id.startswith("-"):  # as Kafka's Uuid.randomUuid(): no leading dash
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    say(f"formatting KRaft storage in {rel(inst.data)} (cluster id {cluster_id})")
    creds = [a for u in scram for m in MECHANISMS if m.startswith("SCRAM")
             for a in ("--add-scram", f"{m}=[name={u},password={USERS[u]}]")]
    r = subprocess.run(java(inst, "kafka.tools.StorageTool", "format", "--standalone",
                            "-t", cluster_id, "-c", str(config), *creds),
                       capture_output=True, text=True)
    if r.returncode != 0:
        die(f"formatting the storage failed:\n{r.stdout}{r.stderr}")
    inst.formatted.write_text(json.dumps({"cluster_id": cluster_id, "controller_port": cport,
                                          "scram_users": scram}) + "\n")


def log_tail(inst: Instance, lines: int = 40) -> str:
    out = []
    for name in ("server.log", "kafka.out"):
        try:
            text = (inst.run / name).read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            continue
        if text:
            out.append(f"--- last lines of {inst.run / name} ---\n" + "\n".join(text))
    return "\n".join(out) or "(no broker log was written)"


def ready(inst: Instance, state: dict, proc: subprocess.Popen, started: float) -> None:
    """Wait until PLAINTEXT answers a metadata request and, for --secure, the SASL logins work;
    die (the caller stops the broker) on a crash, rejected credentials or READY_TIMEOUT."""
    checks = [("a metadata request over PLAINTEXT", state["bootstrap"], {})]
    if state["secure"]:
        checks += login_checks(state)
    for what, bootstrap, security in checks:
        while (err := probe(bootstrap, 3, **security)) is not None:
            if auth_failed(err):
                die(f"the broker rejected the {what}: {err}\n{log_tail(inst, 20)}")
            if proc.poll() is not None:
                die(f"the broker exited with code {proc.returncode} while starting.\n"
                    f"{log_tail(inst)}")
            if time.monotonic() - started > READY_TIMEOUT:
                die(f"the broker did not answer {what} at {bootstrap} within {READY_TIMEOUT} s "
                    f"(last error: {type(err).__name__}: {err}).\n{log_tail(inst)}")
            time.sleep(0.5)


def emit(state: dict, as_json: bool) -> None:
    print(json.dumps(state, indent=2) if as_json else state["bootstrap"], flush=True)


# --- commands -----------------------------------------------------------------------------

def reuse(inst: Instance, state: dict, port: int | None, secure: bool, as_json: bool) -> int:
    bootstrap, pid = state["bootstrap"], state["pid"]
    if not answers(bootstrap, 10):
        die(f"the recorded broker (pid {pid}) runs but does not answer at {bootstrap}; "
            f"run {inst.cli('down')}, then `up` again.\n{log_tail(inst, 20)}")
    if secure and not state.get("secure"):
        die(f"{inst.label} runs at {bootstrap} (pid {pid}) without secured listeners; "
            f"run {inst.cli('down')}, then `up --secure`.")
    note = "" if port is None or state.get("port") == port else \
        f" (not on the requested port {port})"
    say(f"{inst.label} is already running at {bootstrap}, pid {pid}{note}; reusing it.")
    emit(state, as_json)
    return 0


def cmd_up(inst: Instance, port: int | None, secure: bool, as_json: bool) -> int:
    kafka_admin_client()  # fail early, before starting anything, if kafka-python is missing
    state = read_state(inst)
    if state:
        if alive(state["pid"]):
            return reuse(inst, state, port, secure, as_json)
        say(f"removing a stale record: pid {state['pid']} is gone.")
    inst.state.unlink(missing_ok=True)

    need("java", "Kafka 4.x needs Java 17 or newer "
                 "(e.g. `apt-get install openjdk-17-jre-headless`).")
    if port is not None and not port_free(port):
        hint = "" if inst.name else (
            " (If that is a Kafka you started yourself, e.g. with docker compose, just set "
            f"F1TWIN_KAFKA=127.0.0.1:{port}.)")
        die(f"port 127.0.0.1:{port} is already in use by another process. Free it, or pick "
            f"another port with --port{'' if inst.name else ' or F1TWIN_KAFKA_PORT'}.{hint}")
    resolve_jars()
    inst.run.mkdir(parents=True, exist_ok=True)
    if (inst.run / "server.log").exists():  # keep one previous log; a failure shows this start's
        (inst.run / "server.log").replace(inst.run / "server.log.1")
    ports = choose_ports(inst, port, secure)
    ssl = ssl_material(inst) if secure else None
    config = write_config(inst, ports, ssl)
    format_storage(inst, config, ports["CONTROLLER"], secure)
    inst.ports.write_text(json.dumps(ports) + "\n")

    bootstrap = f"127.0.0.1:{ports['PLAINTEXT']}"
    state = {
        "bootstrap": bootstrap, "port": ports["PLAINTEXT"], "controller_port": ports["CONTROLLER"],
        "log": str(inst.run / "server.log"), "instance": inst.name, "run_dir": str(inst.run),
        "secure": secure,
        "listeners": {n: f"127.0.0.1:{p}" for n, p in ports.items() if n != "CONTROLLER"},
    }
    if ssl:
        state.update(users=dict(USERS), mechanisms=list(MECHANISMS), ca_file=str(ssl["ca_file"]))
    extra = "".join(f", {n} {a}" for n, a in state["listeners"].items() if n != "PLAINTEXT")
    say(f"starting {inst.label} on {bootstrap}{extra} (controller 127.0.0.1:{ports['CONTROLLER']});"
        f" log: {inst.run / 'server.log'}")
    started = time.monotonic()
    heap = HEAP_DEFAULT if inst.name is None else HEAP_INSTANCE
    with open(inst.run / "kafka.out", "wb") as out:
        proc = subprocess.Popen(java(inst, "kafka.Kafka", str(config), heap=heap),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                cwd=inst.run, start_new_session=True)
    try:
        ready(inst, state, proc, started)
    except BaseException:  # timeout, crash or Ctrl-C: never leave a half-started broker behind
        stop(proc.pid)
        proc.wait()
        raise
    state = {"bootstrap": bootstrap, "pid": proc.pid, **state,
             "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    inst.home.mkdir(parents=True, exist_ok=True)
    write_private(inst.state, json.dumps(state, indent=2) + "\n")
    say(f"{inst.label} is ready at {bootstrap} (pid {proc.pid}, "
        f"{time.monotonic() - started:.1f} s).")
    emit(state, as_json)
    return 0


def cmd_down(inst: Instance) -> int:
    state = read_state(inst)
    if not state:
        say(f"{inst.label} is not running (no {rel(inst.state)}).")
        inst.state.unlink(missing_ok=True)
        return 0
    pid = state["pid"]
    if not alive(pid):
        say(f"{inst.label} is not running (removing the stale record for pid {pid}).")
    else:
        say(f"stopping {inst.label} (pid {pid}) ...")
        if not stop(pid):
            die(f"pid {pid} survived SIGKILL; check it by hand.")
        say(f"{inst.label} stopped.")
    inst.state.unlink(missing_ok=True)
    return 0


def cmd_status(inst: Instance, as_json: bool) -> int:
    state = read_state(inst)
    running = bool(state) and alive(state["pid"])
    answering = running and answers(state["bootstrap"])
    if as_json:
        print(json.dumps({**(state or {}), "instance": inst.name, "running": running,
                          "answering": answering}, indent=2))
    elif answering:
        print(f"running at {state['bootstrap']} (pid {state['pid']})")
    elif running:
        print(f"not answering: pid {state['pid']} runs but {state['bootstrap']} does not respond")
    else:
        print("not running" + (f" (stale record for pid {state['pid']})" if state else ""))
    return 0 if answering else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--instance", metavar="NAME",
                        help="a named broker beside the default one, kept in "
                             ".cache/kafka/instances/NAME/ (default: the default broker)")
    parser.add_argument("--port", type=int,
                        help=f"PLAINTEXT port for `up` (default broker: $F1TWIN_KAFKA_PORT, else "
                             f"{DEFAULT_PORT}; named instance: its last port if free, else a "
                             f"free one)")
    parser.add_argument("--secure", action="store_true",
                        help="`up` with SASL_PLAINTEXT, SSL and SASL_SSL listeners too")
    parser.add_argument("--json", action="store_true",
                        help="`up`/`status`: print the broker's record as JSON on stdout")
    args = parser.parse_args(argv)
    inst = instance(args.instance)
    port = args.port
    if port is None and inst.name is None:
        port = int(os.environ.get("F1TWIN_KAFKA_PORT") or DEFAULT_PORT)
    if args.command == "status":
        return cmd_status(inst, args.json)
    if args.command == "down" and not inst.home.exists():
        return cmd_down(inst)  # nothing to stop; do not create the folder
    inst.home.mkdir(parents=True, exist_ok=True)
    with open(inst.home / ".lock", "w") as lock:  # one up/down at a time per instance
        fcntl.flock(lock, fcntl.LOCK_EX)
        if args.command == "up":
            return cmd_up(inst, port, args.secure, args.json)
        return cmd_down(inst)


if __name__ == "__main__":
    sys.exit(main())
