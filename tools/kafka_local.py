#!/usr/bin/env python3
"""Run a real single-node Apache Kafka broker locally, without Docker.

Usage (from anywhere; paths are relative to the repo root):

    python tools/kafka_local.py up [--port P]  # start (or reuse) the broker; prints its address
    python tools/kafka_local.py status         # exit 0 if running and answering, 1 if not
    python tools/kafka_local.py down           # stop it (no error if it is not running)

`up` resolves the broker's jars (org.apache.kafka:kafka_2.13, see tools/kafka/pom.xml) with Maven
into .cache/kafka/jars/ once, writes a KRaft broker+controller config into .cache/kafka/run/,
formats the storage on first use, starts `java ... kafka.Kafka` detached and waits until a
metadata request succeeds. The broker listens on 127.0.0.1:19092 unless --port or the
F1TWIN_KAFKA_PORT environment variable says otherwise. Its address and PID are recorded in
.cache/kafka/broker.json, which tests/conftest.py reads. Progress messages go to stderr and the
bootstrap address alone to stdout. Broker log: .cache/kafka/run/server.log (JVM output: kafka.out).

Needs Java 17+ and Maven on PATH. The readiness check needs kafka-python in the Python that runs
this script (the Makefile uses .venv/bin/python). docker-compose.yml serves the same address.
"""
from __future__ import annotations

import argparse
import base64
import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
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
DEFAULT_PORT = 19092
READY_TIMEOUT = 90  # seconds
STOP_TIMEOUT = 20  # seconds


def say(msg: str) -> None:
    print(f"kafka_local: {msg}", file=sys.stderr, flush=True)


def die(msg: str):
    say(f"error: {msg}")
    sys.exit(1)


def need(tool: str, hint: str) -> None:
    if shutil.which(tool) is None:
        die(f"`{tool}` was not found on PATH. {hint}")


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


def any_free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kafka_admin_client():
    """kafka-python's KafkaAdminClient, imported lazily (only the readiness check needs it)."""
    try:
        from kafka import KafkaAdminClient
    except ImportError:
        die(f"kafka-python is not installed for {sys.executable}; run this with the project "
            "venv (.venv/bin/python) or `pip install kafka-python`.")
    logging.getLogger("kafka").addHandler(logging.NullHandler())  # no retry noise on stderr
    return KafkaAdminClient


def answers(bootstrap: str, timeout: float = 5.0) -> bool:
    """True if the broker at `bootstrap` answers a metadata request (kafka-python, lazily)."""
    host, port = bootstrap.rsplit(":", 1)
    try:  # cheap pre-check, and keeps kafka-python from retrying against a closed port
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    KafkaAdminClient = kafka_admin_client()
    ms = int(timeout * 1000)
    opts = {"bootstrap_servers": bootstrap, "request_timeout_ms": ms, "client_id": "kafka-local"}
    # kafka-python 3.x calls it bootstrap_timeout_ms, 2.x api_version_auto_timeout_ms
    key = "bootstrap_timeout_ms" if "bootstrap_timeout_ms" in KafkaAdminClient.DEFAULT_CONFIG \
        else "api_version_auto_timeout_ms"
    opts[key] = ms
    try:
        admin = KafkaAdminClient(**opts)
    except Exception:
        return False
    try:
        admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        admin.close()


# --- state file ---------------------------------------------------------------------------

def read_state() -> dict | None:
    try:
        state = json.loads(STATE.read_text())
        return state if {"bootstrap", "pid"} <= state.keys() else None
    except (OSError, ValueError):
        return None


# --- broker setup -------------------------------------------------------------------------

def resolve_jars() -> None:
    """Copy the broker and its runtime dependencies into JARS, unless already done for this POM."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
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


def java(main: str, *args: str, heap: tuple[str, ...] = ()) -> list[str]:
    return ["java", *heap, "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={LOG4J}",
            f"-Dkafka.logs.dir={RUN}", "-cp", f"{JARS}/*", main, *args]


def write_config(port: int, cport: int) -> Path:
    props = {
        "process.roles": "broker,controller",
        "node.id": 1,
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{cport}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": DATA,
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
    }
    path = RUN / "server.properties"
    path.write_text("# written by tools/kafka_local.py on every `up`\n"
                    + "".join(f"{k}={v}\n" for k, v in props.items()))
    return path


def formatted_with() -> dict:
    try:
        return json.loads(FORMATTED.read_text()) if (DATA / "meta.properties").exists() else {}
    except (OSError, ValueError):
        return {}


def format_storage(config: Path, cport: int) -> None:
    """Format the KRaft storage unless it already is, for this controller port."""
    if formatted_with().get("controller_port") == cport:
        return
    shutil.rmtree(DATA, ignore_errors=True)  # the quorum records the controller endpoint
    cluster_id = "-"
    while cluster_id.startswith("-"):  # as Kafka's Uuid.randomUuid(): no leading dash
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    say(f"formatting KRaft storage in .cache/kafka/run/data (cluster id {cluster_id})")
    r = subprocess.run(java("kafka.tools.StorageTool", "format", "--standalone",
                            "-t", cluster_id, "-c", str(config)),
                       capture_output=True, text=True)
    if r.returncode != 0:
        die(f"formatting the storage failed:\n{r.stdout}{r.stderr}")
    FORMATTED.write_text(json.dumps({"cluster_id": cluster_id, "controller_port": cport}) + "\n")


def log_tail(lines: int = 40) -> str:
    out = []
    for name in ("server.log", "kafka.out"):
        try:
            text = (RUN / name).read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            continue
        if text:
            out.append(f"--- last lines of {RUN / name} ---\n" + "\n".join(text))
    return "\n".join(out) or "(no broker log was written)"


# --- commands -----------------------------------------------------------------------------

def cmd_up(port: int) -> int:
    kafka_admin_client()  # fail early, before starting anything, if kafka-python is missing
    state = read_state()
    if state:
        bootstrap, pid = state["bootstrap"], state["pid"]
        if alive(pid):
            if not answers(bootstrap, 10):
                die(f"the recorded broker (pid {pid}) runs but does not answer at {bootstrap}; "
                    f"run `python tools/kafka_local.py down`, then `up` again.\n{log_tail(20)}")
            note = "" if state.get("port") == port else f" (not on the requested port {port})"
            say(f"Kafka is already running at {bootstrap}, pid {pid}{note}; reusing it.")
            print(bootstrap)
            return 0
        say(f"removing a stale record: pid {pid} is gone.")
    STATE.unlink(missing_ok=True)

    need("java", "Kafka 4.x needs Java 17 or newer "
                 "(e.g. `apt-get install openjdk-17-jre-headless`).")
    if not port_free(port):
        die(f"port 127.0.0.1:{port} is already in use by another process. Free it, or pick "
            f"another port with --port or F1TWIN_KAFKA_PORT. (If that is a Kafka you started "
            f"yourself, e.g. with docker compose, just set F1TWIN_KAFKA=127.0.0.1:{port}.)")
    resolve_jars()
    RUN.mkdir(parents=True, exist_ok=True)
    if (RUN / "server.log").exists():  # keep one previous log; the tail on failure is this start's
        (RUN / "server.log").replace(RUN / "server.log.1")
    # controller port: the one the storage was formatted with, else port+1, else any free one
    free = [p for p in (formatted_with().get("controller_port"), port + 1)
            if p and p != port and port_free(p)]
    cport = free[0] if free else any_free_port()
    config = write_config(port, cport)
    format_storage(config, cport)

    bootstrap = f"127.0.0.1:{port}"
    say(f"starting Kafka on {bootstrap} (controller 127.0.0.1:{cport}); log: {RUN / 'server.log'}")
    started = time.monotonic()
    with open(RUN / "kafka.out", "wb") as out:
        proc = subprocess.Popen(java("kafka.Kafka", str(config), heap=("-Xms256m", "-Xmx512m")),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                cwd=RUN, start_new_session=True)
    try:
        while not answers(bootstrap, 3):
            if proc.poll() is not None:
                die(f"the broker exited with code {proc.returncode} while starting.\n{log_tail()}")
            if time.monotonic() - started > READY_TIMEOUT:
                die(f"the broker did not answer within {READY_TIMEOUT} s.\n{log_tail()}")
            time.sleep(0.5)
    except BaseException:  # timeout, crash or Ctrl-C: never leave a half-started broker behind
        stop(proc.pid)
        proc.wait()
        raise
    STATE.write_text(json.dumps({
        "bootstrap": bootstrap, "pid": proc.pid, "port": port, "controller_port": cport,
        "log": str(RUN / "server.log"), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }, indent=2) + "\n")
    say(f"Kafka is ready at {bootstrap} (pid {proc.pid}, {time.monotonic() - started:.1f} s).")
    print(bootstrap)
    return 0


def cmd_down() -> int:
    state = read_state()
    if not state:
        say("Kafka is not running (no .cache/kafka/broker.json).")
        STATE.unlink(missing_ok=True)
        return 0
    pid = state["pid"]
    if not alive(pid):
        say(f"Kafka is not running (removing the stale record for pid {pid}).")
    else:
        say(f"stopping Kafka (pid {pid}) ...")
        if not stop(pid):
            die(f"pid {pid} survived SIGKILL; check it by hand.")
        say("Kafka stopped.")
    STATE.unlink(missing_ok=True)
    return 0


def cmd_status() -> int:
    state = read_state()
    if state and alive(state["pid"]):
        if answers(state["bootstrap"]):
            print(f"running at {state['bootstrap']} (pid {state['pid']})")
            return 0
        print(f"not answering: pid {state['pid']} runs but {state['bootstrap']} does not respond")
        return 1
    print("not running" + (f" (stale record for pid {state['pid']})" if state else ""))
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--port", type=int,
                        default=os.environ.get("F1TWIN_KAFKA_PORT") or DEFAULT_PORT,
                        help=f"PLAINTEXT port for `up` "
                             f"(default: $F1TWIN_KAFKA_PORT, else {DEFAULT_PORT})")
    args = parser.parse_args(argv)
    if args.command == "status":
        return cmd_status()
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:  # one up/down at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        return cmd_up(args.port) if args.command == "up" else cmd_down()


if __name__ == "__main__":
    sys.exit(main())
