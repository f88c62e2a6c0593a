"""The model channel and training (issue 11): safe weights (safetensors, checksum, never pickle), behavioural
cloning that learns the human's actions, the Learner protocol, and on the real broker: a worker swaps to a new model
without stopping, a worker that joins late gets the newest model within a second from the compacted topic."""
import base64
import hashlib
import pickle
import time
import uuid

import numpy as np
import pytest

from f1twin.experiences import AgentTopics, KafkaBus, MemoryBus, ReplayBuffer, ReplayEnv, TrackModel, Worker, read_batch
from f1twin.io import load_session, sample_session_path
from f1twin.laps import prepare_session
from f1twin.messages import encode_message, read_message
from f1twin.trainer import (BCLearner, Model, ModelError, ModelFollower, Trainer, load_policy, model_message,
                            read_model_bytes, read_model_message, register_policy)


@pytest.fixture(scope='module')
def buffer():
    s = prepare_session(load_session(sample_session_path()))
    bus = MemoryBus(AgentTopics())
    Worker(ReplayEnv(s), None, bus.publish, worker_id='w1', run_id='r').run(len(s))
    buf = ReplayBuffer(10_000)
    for m in bus.reader('rl-experiences').poll(1000): buf.add(read_batch(m))
    return buf


def _msg(tensors, **kw):
    m = model_message(tensors, {}, model_id='m', version=1, kind='mlp', trainer_id='t', run_id='r', **kw)
    return read_message(encode_message(m), 'model-updates')[0]


def test_a_model_message_can_never_run_code():
    called = []
    class Evil:
        def __reduce__(self): return (called.append, ('ran',))
    payload = pickle.dumps(Evil())
    msg = _msg({'w': np.ones(2, np.float32)})
    forged = {**msg, 'weights': base64.b64encode(payload).decode(), 'sha256': hashlib.sha256(payload).hexdigest()}
    with pytest.raises(ModelError): read_model_message(forged)
    assert called == [], 'the pickle was never unpickled'
    with pytest.raises(ModelError, match='checksum'): read_model_message({**msg, 'sha256': 'f' * 64})
    assert read_message(encode_message({**msg, 'weights': 'not base64!'}), 'model-updates')[1] == 'invalid'
    with pytest.raises(ModelError, match='not finite'):
        read_model_message(_msg({'w': np.array([np.inf], np.float32)}))
    # a header that points outside the file, or a dtype that is not a number
    good = base64.b64decode(msg['weights'])
    n = int.from_bytes(good[:8], 'little')
    for bad_header in (good[8:8 + n].replace(b'"F32"', b'"U8 "'), good[8:8 + n].replace(b'[0,8]', b'[0,9]')):
        with pytest.raises(ModelError): read_model_bytes(good[:8] + bad_header + good[8 + n:])


def test_behavioural_cloning_learns_the_humans_actions(buffer):
    bc = BCLearner(seed=1)
    for _ in range(250): bc.learn(buffer.sample(256))
    held = buffer.sample(2000, validation=True)
    err, base = bc.evaluate(held), np.abs(held['action'] - held['action'].mean(0)).mean(0)
    assert (err < 0.6 * base).all(), (err, base)
    tensors, meta = bc.export()
    pol = load_policy(Model(tensors, meta, 'bc', 1, 'mlp'))
    assert np.allclose(pol.act(held['obs'][:100]), bc.predict(held['obs'][:100]), atol=1e-4)
    again = BCLearner()
    again.restore(Model(tensors, meta, 'bc', 1, 'mlp'))
    assert np.allclose(again.predict(held['obs'][:100]), bc.predict(held['obs'][:100]), atol=1e-4), 'restored exactly'


def test_another_learner_plugs_into_the_same_protocol(buffer):
    """A user's algorithm: linear least squares in numpy, with a policy kind of its own."""
    class Linear:
        kind, action_names, updates = 'linear', ('throttle', 'brake', 'steering'), 0
        def __init__(self): self.w = None
        def _x(self, o): return np.c_[o, np.ones(len(o))]
        def learn(self, b):
            self.w = np.linalg.lstsq(self._x(b['obs']), b['action'], rcond=None)[0]; self.updates += 1
            return float(((self._x(b['obs']) @ self.w - b['action']) ** 2).mean())
        def evaluate(self, b): return np.abs(self._x(b['obs']) @ self.w - b['action']).mean(0)
        def export(self): return {'w': self.w.astype(np.float32)}, {}
        def restore(self, model): self.w = model.tensors['w']
    register_policy('linear', lambda m: (lambda obs: np.r_[obs, 1.0] @ m.tensors['w']))
    bus = MemoryBus(AgentTopics())
    Worker(ReplayEnv(sample_session_path()), None, bus.publish, worker_id='w1', run_id='lin', batch_size=500).run(2000)
    tr = Trainer(bus, Linear(), run_id='lin', model_id='lin', publish_every_s=0.0, min_transitions=100)
    for _ in range(3): tr.step()
    f = ModelFollower(bus, run_id='lin', model_id='lin')
    assert f.wait_for(tr.version, 2) and tr.version >= 1
    _, policy, _ = f.latest()
    assert policy(np.zeros(11, np.float32)).shape == (3,)
    f.close()
    with pytest.raises(Exception, match='not a Learner'): Trainer(bus, object(), run_id='x')


@pytest.mark.kafka
def test_models_reach_workers_and_a_late_worker_gets_the_newest_at_once(kafka_bootstrap, buffer):
    topics = AgentTopics.suffixed(f'tr-{uuid.uuid4().hex[:8]}')
    run = 'r1'
    with KafkaBus(kafka_bootstrap, topics) as bus:
        bc = BCLearner()
        for _ in range(20): bc.learn(buffer.sample(256))
        env = ReplayEnv(sample_session_path())
        f = ModelFollower(bus, topics=topics, run_id=run)
        w = Worker(env, None, bus.publish, worker_id='w1', run_id=run, topic=topics.experiences, models=f)
        key = b'trainer/r1'
        for v in range(1, 6):
            tensors, meta = bc.export()
            bus.publish(topics.models.name, key, model_message(tensors, meta, model_id='bc', version=v, kind='mlp',
                                                               trainer_id='trainer', run_id=run))
            assert bus.flush(10)
            deadline = time.monotonic() + 5
            while w.stats.model_version < v and time.monotonic() < deadline: w.step()  # swaps between steps
            assert w.stats.model_version == v
        assert all(lat < 1.0 for _, lat in w.stats.swaps), w.stats.swaps
        t0 = time.time()
        late = ModelFollower(bus, topics=topics, run_id=run)
        assert late.wait_for(5, 1.0) and late.received[0][0] == 5 and late.received[0][2] - t0 < 1.0, late.received
        f.close(); late.close()
        from kafka.admin import KafkaAdminClient, ConfigResource
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        conf = admin.describe_configs([ConfigResource('TOPIC', topics.models.name, ['cleanup.policy'])])['topic']
        admin.close()
        assert conf[topics.models.name]['cleanup.policy']['value'] == 'compact'
