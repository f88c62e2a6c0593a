"""The whole agent loop on the real broker (issue 11): `f1twin agents-demo`, and the faults: a worker killed, the
trainer killed and restarted, a worker that joins late, malformed/foreign/invalid messages on every topic.

Each test uses topics of its own (AgentTopics.suffixed) and a run id of its own, so it never sees another test's
messages on the shared broker. Processes are real (spawned), killed with SIGKILL."""
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaProducer

from f1twin.agents import AgentsLoop
from f1twin.experiences import AgentTopics
from f1twin.messages import encode_message

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.kafka


def test_agents_demo_command(kafka_bootstrap):
    """Two workers for a few seconds: exit 0, the summary says every transition arrived once and both end on the
    newest model; it takes well under a minute."""
    t0 = time.monotonic()
    r = subprocess.run([str(Path(sys.executable).parent / 'f1twin'), 'agents-demo', '--kafka', kafka_bootstrap,
                        '--workers', '2', '--duration', '6', '--topics-suffix', f'test-{uuid.uuid4().hex[:8]}'],
                       capture_output=True, text=True, timeout=180, cwd=ROOT)
    took = time.monotonic() - t0
    print(r.stdout, r.stderr[-2000:], f'{took:.1f} s')
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'OK: every transition sent was received exactly once' in r.stdout
    lines = {l.split()[0]: l.split() for l in r.stdout.splitlines() if l[:1] == 'w' and l.split()[0][1:].isdigit()}
    assert set(lines) == {'w1', 'w2'}
    for w, cols in lines.items():  # worker sent on_topic received repeated final_version stopped
        assert cols[1] == cols[2] == cols[3] and int(cols[1]) > 0 and cols[4] == '0', cols
    assert took < 90


def _junk(bootstrap: str, topics: AgentTopics) -> int:
    """On every agent topic: a malformed message, a foreign one and an f1twin message with an invalid field."""
    p = KafkaProducer(bootstrap_servers=bootstrap)
    for spec in topics.specs:
        p.send(spec.name, b'{"not json', key=b'junk')  # keyed: a compacted topic takes only keyed messages
        p.send(spec.name, b'{"someone": "else"}', key=b'junk')
        p.send(spec.name, encode_message({'session_id': 42, 'car_id': 'x', 'timestamp': time.time()}), key=b'junk')
    p.flush(10)
    p.close()
    return len(topics.specs)


def test_faults_worker_killed_trainer_restarted_late_worker_junk(kafka_bootstrap):
    topics = AgentTopics.suffixed(f'faults-{uuid.uuid4().hex[:8]}')
    loop = AgentsLoop(kafka_bootstrap, workers=2, topics=topics, publish_every_s=0.5, shadow_speed=10, rate_hz=300)
    loop.start()
    try:
        _junk(kafka_bootstrap, topics)
        loop.wait(3)
        loop.kill_worker('w2')                       # a worker dies mid-run: training goes on
        loop.wait(1.5, models=1)                     # until the trainer has published a model (a slow machine: longer)
        loop.kill_trainer()
        resumed = loop.restart_trainer()             # resumes from its newest model and the committed offsets
        assert resumed >= 1, 'the restarted trainer resumed from a published model'
        loop.wait(1.5)
        late = loop.add_worker('w3')                 # joins late: gets the newest model at once
        loop.wait(2.5)
        summary = loop.finish()
    finally:
        loop.close()
    print(summary)
    rows = {w['worker']: w for w in summary.workers}
    assert summary.ok, summary.problems
    assert rows['w2']['stopped'].startswith('killed') and rows['w2']['sent'] is None and rows['w2']['on_topic'] > 0
    assert rows['w2']['received'] == rows['w2']['on_topic'], "the killed worker's delivered transitions, once"
    for w in ('w1', 'w3'):
        assert rows[w]['sent'] == rows[w]['on_topic'] == rows[w]['received'] > 0 and rows[w]['final_version'] == summary.newest
    assert all(r['repeated'] == 0 for r in rows.values())
    assert summary.trainer['restarts'] == 1 and summary.trainer['resumed'][-1] == resumed
    first = rows['w3']['received_models'][0]  # (version, published_s, loaded_s)
    # it gets the newest model at once from the compacted topic (under a second here; 1.2 s once on a loaded
    # machine: the p99 < 1 s target is measured in bench/agents_bench.py, not asserted here)
    assert first[0] >= resumed and first[2] - rows['w3']['joined_s'] < 5.0, first
    assert summary.versions == list(range(1, summary.newest + 1)), 'versions go on from the resumed one'
    for spec in topics.specs:  # the junk on every topic: skipped and counted, by reason
        assert summary.skipped.get(spec.name) == {'malformed': 1, 'foreign': 1, 'invalid': 1}, (spec.name, summary.skipped)
    assert 'skipped' in str(summary) and 'killed' in str(summary)


def test_the_loops_processes_end_when_the_loop_is_killed(kafka_bootstrap):
    """`f1twin agents-demo` killed with SIGKILL (a crash, or a test's timeout): its trainer, shadow driver and workers
    end by themselves (they kept running and publishing, orphaned, before)."""
    import psutil
    from conftest import wait_until
    demo = subprocess.Popen([str(Path(sys.executable).parent / 'f1twin'), 'agents-demo', '--kafka', kafka_bootstrap,
                             '--workers', '2', '--duration', '120', '--topics-suffix', f'orphan-{uuid.uuid4().hex[:8]}'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        parent = psutil.Process(demo.pid)
        kids = wait_until(lambda: len(parent.children()) >= 4 and parent.children(), 120, 'trainer, shadow and two workers')
    finally:
        demo.kill()
        demo.wait(timeout=30)
    gone, alive = psutil.wait_procs(kids, timeout=40)
    for p in alive: p.kill()
    assert not alive, f'{len(alive)} of its {len(kids)} processes still running after 40 s'
