"""Speed of the agent loop (issue 11), each figure beside a baseline measured in the same run.

- ingest into the replay buffer on one consumer (ExperienceFeed: group poll, checks, buffer, commit), against the
  same messages only read and checked by a TopicReader; target >= 20,000 transitions/s;
- a new model reaches every worker (published -> loaded by each worker's ModelFollower), p99, against a small
  message's publish -> read latency; target p99 < 1 s;
- inference per step (the numpy MLP policy on one observation), against scikit-learn's predict on one; target < 1 ms.

Usage: python bench/agents_bench.py --kafka 127.0.0.1:19092
"""
import argparse
import time
import uuid

import numpy as np

from f1twin.experiences import AgentTopics, ExperienceFeed, KafkaBus, MemoryBus, ReplayBuffer, ReplayEnv, Worker, read_batch
from f1twin.io import sample_session_path
from f1twin.kafka_read import TopicReader
from f1twin.trainer import BCLearner, Model, ModelFollower, load_policy, model_message


def ingest(bus, topics, n_batches: int):
    env = ReplayEnv(sample_session_path())
    w = Worker(env, None, bus.publish, worker_id='bench', run_id='bench', topic=topics.experiences, batch_size=256)
    w.run(n_batches * 256)
    assert bus.flush(60)
    t0 = time.perf_counter()
    with TopicReader(bus.settings, topics.experiences, start='earliest') as r:
        got = 0
        while got < n_batches * 256: got += sum(m['n'] for m in r.poll(500, timeout_ms=200))
    base = got / (time.perf_counter() - t0)
    feed = ExperienceFeed(bus, ReplayBuffer(1_000_000), topic=topics.experiences, group_id=f'bench-{uuid.uuid4().hex[:6]}', run_id='bench')
    t0 = time.perf_counter()
    while feed.buffer.total < n_batches * 256: feed.pump(500, timeout_ms=200)
    rate = feed.buffer.total / (time.perf_counter() - t0)
    feed.close()
    return rate, base


def reach(bus, topics, n_models: int, n_workers: int):
    bc = BCLearner()
    mem = MemoryBus(AgentTopics())
    Worker(ReplayEnv(sample_session_path()), None, mem.publish, worker_id='w', run_id='r').run(1000)
    buf = ReplayBuffer(10_000)
    for m in mem.reader('rl-experiences').poll(100): buf.add(read_batch(m))
    bc.learn(buf.sample(256))
    followers = [ModelFollower(bus, topics=topics, run_id='bench') for _ in range(n_workers)]
    time.sleep(1.0)
    for v in range(1, n_models + 1):
        bus.publish(topics.models.name, b'trainer/bench', model_message(*bc.export(), model_id='bc', version=v, kind='mlp',
                                                                        trainer_id='trainer', run_id='bench'))
        time.sleep(0.2)
    for f in followers: f.wait_for(n_models, 5)
    lat = [loaded - published for f in followers for _, published, loaded in f.received]
    for f in followers: f.close()
    # baseline: a small message, published and read back
    small = []
    with TopicReader(bus.settings, topics.metrics, start='latest') as r:
        time.sleep(0.5)
        for i in range(20):
            t = time.time()
            bus.publish(topics.metrics.name, b'b', {'session_id': 'b', 'car_id': 'b', 'timestamp': t, 'model_id': 'x',
                        'model_version': i, 'loss': None, 'val_error': None, 'action_names': [], 'ingest_rate': 0.0,
                        'buffer_fill': 0.0, 'transitions': 0, 'duplicates': 0, 'updates': 0, 'workers': [],
                        'worker_transitions': [], 'worker_versions': []})
            got = []
            while not got: got = r.poll(10, timeout_ms=100)
            small.append(time.time() - t)
    return np.array(lat), np.array(small), len(lat)


def inference(n: int = 3000):
    mem = MemoryBus(AgentTopics())
    env = ReplayEnv(sample_session_path())
    Worker(env, None, mem.publish, worker_id='w', run_id='r').run(2000)
    buf = ReplayBuffer(10_000)
    for m in mem.reader('rl-experiences').poll(100): buf.add(read_batch(m))
    bc = BCLearner()
    for _ in range(20): bc.learn(buf.sample(256))
    pol = load_policy(Model(*bc.export(), 'bc', 1, 'mlp'))
    obs = buf.sample(n)['obs']
    ours, theirs = np.empty(n), np.empty(n)
    for i in range(n):
        t = time.perf_counter(); pol(obs[i]); ours[i] = time.perf_counter() - t
        t = time.perf_counter(); bc.predict(obs[i:i + 1]); theirs[i] = time.perf_counter() - t
    return ours * 1000, theirs * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--kafka', default='127.0.0.1:19092')
    ap.add_argument('--batches', type=int, default=400, help='batches of 256 transitions for the ingest figure')
    a = ap.parse_args()
    topics = AgentTopics.suffixed(f'bench-{uuid.uuid4().hex[:8]}')
    with KafkaBus(a.kafka, topics) as bus:
        rate, base = ingest(bus, topics, a.batches)
        print(f'ingest into the replay buffer, one consumer: {rate:,.0f} transitions/s (target >= 20,000); '
              f'baseline, the same messages only read and checked: {base:,.0f}/s')
        lat, small, n = reach(bus, topics, n_models=20, n_workers=3)
        print(f'a new model reaches every worker: p50 {np.median(lat) * 1000:.0f} ms, p99 {np.quantile(lat, 0.99) * 1000:.0f} ms '
              f'over {n} arrivals (target p99 < 1 s); baseline, a small message published and read: '
              f'p50 {np.median(small) * 1000:.0f} ms, p99 {np.quantile(small, 0.99) * 1000:.0f} ms')
    ours, theirs = inference()
    print(f'inference per step (numpy MLP policy): p50 {np.median(ours):.3f} ms, p99 {np.quantile(ours, 0.99):.3f} ms '
          f'(target < 1 ms); baseline, scikit-learn predict on one observation: p50 {np.median(theirs):.3f} ms, '
          f'p99 {np.quantile(theirs, 0.99):.3f} ms')


if __name__ == '__main__':
    main()
