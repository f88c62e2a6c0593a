"""The model in production (issue 11): the shadow driver's decisions beside the human's, with version and latency,
and its performance per lap and sector with the game's own lap and sector times."""
import numpy as np
import pytest

from f1twin.experiences import AgentTopics, MemoryBus, ReplayBuffer, ReplayEnv, TrackModel, Worker, read_batch
from f1twin.io import load_session, sample_session_path
from f1twin.laps import prepare_session, lap_table
from f1twin.shadow import ShadowDriver, shadow_session
from f1twin.trainer import BCLearner, Model, load_policy


# The model is trained once, on one worker; session-scoped, as a worker runs other modules' tests between these and
# pytest makes a module-scoped fixture again after each break.
pytestmark = pytest.mark.xdist_group('shadow-trained')


@pytest.fixture(scope='session')
def trained():
    s = prepare_session(load_session(sample_session_path()))
    track = TrackModel.from_session(s)
    bus = MemoryBus(AgentTopics())
    Worker(ReplayEnv(s, track=track), None, bus.publish, worker_id='w1', run_id='r').run(len(s))
    buf = ReplayBuffer(10_000)
    for m in bus.reader('rl-experiences').poll(1000): buf.add(read_batch(m))
    bc = BCLearner()
    for _ in range(250): bc.learn(buf.sample(256))
    return load_policy(Model(*bc.export(), 'bc', 7, 'mlp')), track


@pytest.mark.parametrize('name,laps', [('telemetry_2025-09-12_19-00-17.csv', [81817, 81186, 82539, 82165]),
                                       ('telemetry_2025-09-13_16-18-26.csv', [82160, 81790])])
def test_shadow_on_a_recording(trained, name, laps):
    policy, track = trained
    s = prepare_session(load_session(sample_session_path(name)))
    dec, perf = shadow_session(s, policy, track)
    assert len(dec) == len(s) and (dec['model_version'] == 7).all() and dec['ai_throttle'].between(0, 1).all()
    assert dec['latency_ms'].median() < 1.0
    lap_rows = perf[perf['part'] == 'lap']
    assert lap_rows['time_ms'].tolist() == laps, "the game's lap times"
    assert lap_table(s)['lap_time_ms'].dropna().astype(int).tolist() == laps
    for lap, rows in perf.groupby('lap_number'):
        sectors = rows[rows['part'] != 'lap']
        assert sorted(sectors['part']) == ['s1', 's2', 's3'] and sectors['time_ms'].sum() == rows[rows['part'] == 'lap']['time_ms'].iloc[0]
    assert (lap_rows['agreement'] > 0.5).all() and (lap_rows['action_error'] < 0.1).all()
    # the human's action is in each decision, next to the model's
    assert np.allclose(dec['throttle'].to_numpy(), s['throttle'].to_numpy(), atol=1e-6)


def test_shadow_follows_a_newer_model_between_samples(trained):
    policy, track = trained
    class Models:
        version, _v = 1, 1
        def latest(self): return (self._v, policy, 0.0)
    models = Models()
    out = MemoryBus(AgentTopics())
    sd = ShadowDriver(models, track, out.publish)
    from f1twin.events import MemoryFeed, replay
    feed = MemoryFeed(maxlen=10**6)
    replay(prepare_session(load_session(sample_session_path())), feed.publish, speed=1e9)
    msgs = feed.poll(10**6)
    sd.feed(msgs[:1000])
    models._v = 2
    sd.feed(msgs[1000:])
    versions = [m['model_version'] for m in out.reader('ai-decisions').poll(10**6)]
    assert versions[0] == 1 and versions[-1] == 2 and sorted(set(versions)) == [1, 2] and out.counts['invalid'] == 0
