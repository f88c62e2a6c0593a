"""Shared pytest fixtures.

Kafka tests talk to a real broker: start one with `make kafka-up` (tools/kafka_local.py, recorded
in .cache/kafka/broker.json) or point F1TWIN_KAFKA=host:port at one (e.g. `docker compose up -d`
and F1TWIN_KAFKA=127.0.0.1:19092). Without a broker the Kafka tests fail; they never skip.

Tests of Kafka security and outages get brokers of their own from tools/kafka_local.py's named
instances (.cache/kafka/instances/NAME/): `secure_kafka` (SASL and SSL listeners) and
`kafka_instance` (a private broker to kill and restart). They need Java 17 and the jars `make
kafka-up` resolves, never the shared broker.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

# jsonschema (under nbformat, which the report tests use) builds 39 grammars of rfc3987_syntax at import when it is
# installed (JupyterLab brings it): 2 s in each test process, for an IRI format nothing here validates. As `f1twin
# report` and the report's kernel do (f1twin/report.py), the tests go without it (jsonschema skips that check).
sys.modules.setdefault("rfc3987_syntax", None)

# The tests run in parallel workers, one per core: a BLAS thread pool in each (numpy's OpenBLAS starts one per core
# for the trainer's and the shadow driver's small matrix products) only makes them fight for the same cores (a
# fifth more CPU for the same work, measured). One BLAS thread per process, the kernels and CLIs they start included;
# set before anything imports numpy, and only where the user has not chosen.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# Bytecode is written (to the usual __pycache__ folders, ignored by git) even where PYTHONDONTWRITEBYTECODE is set:
# without it each test worker rewrites the asserts of every test module again (2 s a worker) and each kernel, CLI and
# fake game the tests start compiles f1twin anew, a seventh of the offline suite's CPU here.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

ROOT = Path(__file__).resolve().parent.parent
BROKER_JSON = ROOT / ".cache" / "kafka" / "broker.json"
HOW_TO_START = ("Start the local broker with `make kafka-up` "
                "(or set F1TWIN_KAFKA=host:port to a running Kafka).")


BROKER_FIXTURES = {"kafka_bootstrap", "secure_kafka", "kafka_instance"}


def pytest_collection_modifyitems(config, items):
    """A test that asks for a broker fixture is a `kafka` test, one in test_browser*.py a `browser` test, even if
    its author forgot the marker, so
    `pytest -m "not kafka and not browser"` never tries to reach a broker. (Markers and the warning filters are
    registered once, in pyproject.toml.)"""
    for item in items:
        if BROKER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kafka)
        if item.path.name.startswith("test_browser"):
            item.add_marker(pytest.mark.browser)
        # with pytest-xdist (`make test` runs `-n 2 --dist loadgroup`): the tests of the one "secure" broker
        # instance run in one worker (its session fixture starts and stops it), and so do the browser tests (one
        # JupyterLab and Chromium at a time)
        if "secure_kafka" in getattr(item, "fixturenames", ()) or item.path.name == "test_kafka_local.py":
            item.add_marker(pytest.mark.xdist_group("secure"))
        elif item.path.name.startswith("test_browser"):
            item.add_marker(pytest.mark.xdist_group("browser"))


def pytest_xdist_auto_num_workers(config):
    """`-n auto` (pyproject.toml's default): one worker per core, at least 2 and at most 4 (each private broker of the
    outage tests is a JVM, and the broker, JupyterLab and Chromium need cores of their own); a run that leaves out the
    broker and browser tests (`-m "not kafka and not browser"`) gets one more, up to 4: its tests mostly wait on
    processes they start (kernels, a fake game, CLIs), and a third worker keeps 2 cores busy (131 s instead of 147)."""
    cores = os.cpu_count() or 1
    return min(4, max(2, cores) + (1 if offline_run(config) else 0))


def offline_run(config) -> bool:
    """True if the run's `-m` expression selects no test that is only marked `kafka` or only marked `browser`."""
    from _pytest.mark.expression import Expression
    expr = config.option.markexpr
    if not expr:
        return False
    compiled = Expression.compile(expr)
    return not any(compiled.evaluate(lambda name, *_, m=mark, **__: name == m) for mark in ("kafka", "browser"))


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


# --- named broker instances (tools/kafka_local.py --instance) -----------------------------

KAFKA_LOCAL = ROOT / "tools" / "kafka_local.py"
INSTANCES = ROOT / ".cache" / "kafka" / "instances"
KAFKA_LOCAL_TIMEOUT = 240  # s for one command: a first `up` may resolve the jars with Maven


def kafka_local(*args: str) -> subprocess.CompletedProcess:
    """Run tools/kafka_local.py with this Python (a finished process, never raises on failure)."""
    return subprocess.run([sys.executable, str(KAFKA_LOCAL), *args], capture_output=True,
                          text=True, timeout=KAFKA_LOCAL_TIMEOUT)


def kafka_local_json(*args: str) -> dict:
    """Run an `up ... --json` and return the broker's record; pytest.fail with its output if not."""
    r = kafka_local(*args, "--json")
    try:
        if r.returncode == 0:
            return json.loads(r.stdout)
    except ValueError:
        pass
    pytest.fail(f"`kafka_local.py {' '.join(args)}` failed (exit {r.returncode}):\n"
                f"{r.stderr}{r.stdout}", pytrace=False)


def broker_answers(bootstrap: str, timeout: float = 5.0, **security) -> bool:
    """True if `bootstrap` answers a metadata request within about `timeout` seconds."""
    from kafka import KafkaAdminClient

    host, _, port = bootstrap.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    ms = int(timeout * 1000)
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=ms,
                                 bootstrap_timeout_ms=ms, **security)
        try:
            admin.list_topics()
        finally:
            admin.close()
        return True
    except Exception:
        return False


def wait_until(condition, timeout: float, what: str, every: float = 0.2):
    """Poll `condition` until it returns a true value (returned) or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting until {what}", pytrace=False)
        time.sleep(every)


def pid_running(pid: int) -> bool:
    """True if `pid` runs and is not a zombie (a killed broker is nobody's child to reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return not Path("/proc/self").exists()  # no procfs: trust kill(0)


def port_closed(bootstrap: str) -> bool:
    host, _, port = bootstrap.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return False
    except OSError:
        return True


@pytest.fixture(scope="session")
def secure_kafka():
    """The record (a dict) of the named instance "secure", a broker with secured listeners
    (`kafka_local.py up --instance secure --secure`), started unless it already runs; stopped at
    the end of the session only if started here. Fails (never skips) if it cannot start.

    Keys: "listeners" {"PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL": "127.0.0.1:PORT"},
    "users" {"alice": "alice-secret", "admin": "admin-secret"}, "mechanisms" ["PLAIN",
    "SCRAM-SHA-256"] (both on SASL_PLAINTEXT and SASL_SSL), "ca_file" (PEM of the broker's
    self-signed certificate, SAN IP:127.0.0.1 and DNS:localhost: use it as ssl_cafile with
    ssl_check_hostname on), "bootstrap" (= the PLAINTEXT one, for admin work), "pid", "port",
    "controller_port", "log" (the broker's server.log), "run_dir", "instance", "secure",
    "started".
    """
    status = kafka_local("status", "--instance", "secure", "--json")
    try:
        state = json.loads(status.stdout)
    except ValueError:
        state = {}
    started = not (status.returncode == 0 and state.get("secure"))
    if started:
        state = kafka_local_json("up", "--instance", "secure", "--secure")
    yield state
    if started:
        kafka_local("down", "--instance", "secure")


class KafkaInstance:
    """A private plain broker of one test: a named instance of tools/kafka_local.py.

    .name, .state (its record), .bootstrap, .port, .pid; .answers(timeout) (metadata request);
    .start() (`up` on the same port as before, same data), .stop() (`down`), .kill() (SIGKILL of
    the JVM, as a crash). Each waits, with a deadline, until the broker answers (start) or its
    process is gone and its port closed (stop, kill).
    """

    def __init__(self, name: str):
        self.name = name
        self.state: dict = {}

    @property
    def bootstrap(self) -> str:
        return self.state["bootstrap"]

    @property
    def port(self) -> int:
        return self.state["port"]

    @property
    def pid(self) -> int:
        return self.state["pid"]

    def answers(self, timeout: float = 5.0) -> bool:
        return bool(self.state) and broker_answers(self.bootstrap, timeout)

    def start(self) -> "KafkaInstance":
        port = ["--port", str(self.port)] if self.state else []
        state = kafka_local_json("up", "--instance", self.name, *port)
        if self.state and state["port"] != self.port:
            pytest.fail(f"{self.name} came back on port {state['port']}, not {self.port}")
        self.state = state
        return self

    def stop(self, timeout: float = 40) -> None:
        r = kafka_local("down", "--instance", self.name)
        if r.returncode != 0:
            pytest.fail(f"`kafka_local.py down --instance {self.name}` failed:\n{r.stderr}")
        self._wait_gone(timeout)

    def kill(self, timeout: float = 20) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._wait_gone(timeout)

    def _wait_gone(self, timeout: float) -> None:
        if self.state:
            wait_until(lambda: not pid_running(self.pid) and port_closed(self.bootstrap),
                       timeout, f"broker {self.name} (pid {self.pid}) is gone")

    def remove(self) -> None:
        """Stop it if it runs and delete its folder (data, logs, record)."""
        kafka_local("down", "--instance", self.name)
        shutil.rmtree(INSTANCES / self.name, ignore_errors=True)


@pytest.fixture
def kafka_instance():
    """A started private broker (a KafkaInstance, plain PLAINTEXT listener on a free port) for
    one test, which may kill, stop and restart it without disturbing the shared broker.
    Function scope: every test gets a fresh one (about 10 s to start), stopped and deleted
    (.cache/kafka/instances/<name>/) afterwards."""
    inst = KafkaInstance(f"private-{uuid.uuid4().hex[:8]}")
    try:
        yield inst.start()
    finally:
        inst.remove()
