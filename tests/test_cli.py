"""The `f1twin` console script, run as a user runs it."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
F1TWIN = str(Path(sys.executable).parent / 'f1twin')
DEMO = ROOT / 'data' / 'telemetry_2025-09-12_19-00-17.csv'


def run(*args, cwd=ROOT):
    return subprocess.run([F1TWIN, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_laps_prints_the_games_lap_times():
    r = run('laps', DEMO)
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines()[2:] if l.split()[0].rstrip('*').isdigit()]
    timed = {l.split()[0].rstrip('*'): l.split()[1] for l in lines if l.split()[1] != '-'}
    assert timed == {'1': '1:21.817', '2': '1:21.186', '3': '1:22.539', '4': '1:22.165'}
    assert any(l.split()[0] == '2*' for l in lines), 'best lap marked'
    assert 'theoretical best 1:20.975' in r.stdout


def test_laps_of_the_other_session_as_csv():
    r = run('laps', ROOT / 'data' / 'telemetry_2025-09-13_16-18-26.csv', '--format', 'csv')
    assert r.returncode == 0, r.stderr
    assert '82160' in r.stdout and '81790' in r.stdout


def test_convert_then_laps_from_parquet(tmp_path):
    out = tmp_path / 'monza.parquet'
    assert run('convert', DEMO, out).returncode == 0
    assert run('laps', out).stdout.splitlines()[2:] == run('laps', DEMO).stdout.splitlines()[2:]


@pytest.mark.parametrize('text,expected', [
    (None, 'no such file'),
    ('', 'empty file'),
    ('Timestamp,Speed_kmh\n1,2\n', 'missing column(s)'),
])
def test_bad_input_is_one_line_no_traceback(tmp_path, text, expected):
    p = tmp_path / 'bad.csv'
    if text is not None: p.write_text(text)
    r = run('laps', p)
    assert r.returncode == 2
    assert r.stderr.startswith(f'f1twin: error: {p}') and expected in r.stderr
    assert 'Traceback' not in r.stderr and len(r.stderr.splitlines()) == 1


def test_unknown_convert_format(tmp_path):
    r = run('convert', DEMO, tmp_path / 'x.xlsx')
    assert r.returncode == 2 and 'expected a .csv or .parquet' in r.stderr


def _subcommands(parser, path=()):
    """Every command and sub-command of the parser, as argument lists: ('laps',), ('library', 'index'), ..."""
    import argparse
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name)
                yield from _subcommands(sub, (*path, name))


def test_every_command_has_help(capsys):
    """Every command and sub-command answers --help (in this process: argparse prints and exits 0); the installed
    console script answers it too."""
    from f1twin.cli import build_parser, main
    commands = list(_subcommands(build_parser()))
    assert {('laps',), ('info',), ('convert',)} <= set(commands)
    for cmd in commands:
        with pytest.raises(SystemExit) as done:
            main([*cmd, '--help'])
        out = capsys.readouterr().out
        assert done.value.code == 0 and out.startswith(f"usage: f1twin {' '.join(cmd)}"), cmd
    r = run('--help')
    assert r.returncode == 0 and all(c[0] in r.stdout for c in commands)


def test_laps_of_a_session_the_game_restarted(tmp_path):
    two = tmp_path / 'telemetry_two.csv'
    a, b = DEMO.read_text().splitlines(), (ROOT / 'data' / 'telemetry_2025-09-13_16-18-26.csv').read_text().splitlines()
    cols = a[0].split(',')
    b_rows = [','.join(r.split(',')[:len(cols)]) for r in b[1:]]  # the same 24 columns
    two.write_text('\n'.join(a + b_rows) + '\n')
    r = run('laps', two)
    assert r.returncode == 0, r.stderr
    assert '2 runs' in r.stdout and 'run 2' in r.stdout and '1:21.790' in r.stdout and '1:21.186' in r.stdout


def test_replay_publishes_the_session_to_kafka(kafka_bootstrap):
    import uuid
    from f1twin.kafka_read import TopicReader
    car = f'cli-{uuid.uuid4().hex[:8]}'
    r = run('replay', ROOT / 'data' / 'telemetry_2025-09-13_16-18-26.csv', '--kafka', kafka_bootstrap, '--speed', '100',
            '--car', car)
    assert r.returncode == 0, r.stderr
    assert 'ac-lap-events 2' in r.stdout and 'pending 0' in r.stdout
    topics = ['ac-lap-events', 'ac-telemetry-live', 'ac-telemetry-batch']
    with TopicReader(kafka_bootstrap, topics, start='earliest', car_id=car) as reader:
        got = list(reader.messages(idle_timeout_s=10, to_end=True))  # delivered (pending 0): read to the end
    laps, live, batches = ([m for m in got if m['_topic'] == t] for t in topics)
    assert [m['lap_time_ms'] for m in laps] == [82160, 81790]
    # as the collector's defaults: every sample once, in order, in batches of 0.1 s of the session; 10 Hz live
    # (this 10 Hz recording: about one a sample)
    from f1twin.messages import batch_samples
    from f1twin.io import load_session
    samples, rec = [s for b in batches for s in batch_samples(b)], load_session(ROOT / 'data' / 'telemetry_2025-09-13_16-18-26.csv')
    assert [s['packet_id'] for s in samples] == rec['packet_id'].tolist()
    assert np.allclose([s['distance_total'] for s in samples], rec['distance_total'])
    assert 0.9 * len(batches) <= len(live) <= len(batches) + 2, (len(live), len(batches))


def test_replay_to_an_absent_broker_says_what_was_not_delivered():
    r = run('replay', DEMO, '--kafka', '127.0.0.1:1', '--speed', '1000')
    assert r.returncode == 1 and 'not delivered to 127.0.0.1:1' in r.stderr and 'Traceback' not in r.stderr
