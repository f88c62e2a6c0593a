"""The Makefile targets a user runs by hand: `make lab` starts JupyterLab as root (containers) and as a user."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def lab_answers(user=None):
    """Run `make lab` (as `user` when given), wait until the server answers, stop it; True if it answered."""
    home = Path(tempfile.mkdtemp(prefix='f1twin-lab-'))  # outside pytest's root-only tmp folder
    os.chmod(home, 0o777)  # the other user writes its Jupyter runtime files here
    port = free_port()
    env = {**os.environ, 'HOME': str(home), 'JUPYTER_CONFIG_DIR': str(home / 'config'),
           'JUPYTER_DATA_DIR': str(home / 'data'), 'JUPYTER_RUNTIME_DIR': str(home / 'runtime')}
    args = f"LAB_ARGS=--no-browser --port {port} --ServerApp.ip=127.0.0.1 --ServerApp.token=''"
    cmd = ['make', '--no-print-directory', '-o', '.venv/.installed-stamp', 'lab', args]  # -o: no reinstall
    if user: cmd = ['runuser', '-u', user, '--'] + cmd
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f'http://127.0.0.1:{port}/api/status', timeout=2) as r:
                    return r.status == 200
            except OSError:
                time.sleep(0.3)  # polling the server's port; the deadline bounds the wait
        out = proc.stdout.read().decode(errors='replace') if proc.poll() is not None else ''
        pytest.fail(f'make lab did not answer on port {port} (exit code {proc.poll()}):\n{out[-2000:]}')
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try: proc.wait(20)
            except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(home, ignore_errors=True)


def test_make_lab_starts_as_the_current_user():
    assert lab_answers()


def jupyter_args_under_make(user):
    """The arguments `make lab` gives jupyter when run as `user`: BIN points at a stand-in `jupyter` that prints
    them (the real one lives in a venv only its owner can run, here root's)."""
    bindir = Path(tempfile.mkdtemp(prefix='f1twin-bin-'))
    os.chmod(bindir, 0o755)
    (bindir / 'jupyter').write_text('#!/bin/sh\necho "$@"\n')
    os.chmod(bindir / 'jupyter', 0o755)
    try:
        r = subprocess.run(['runuser', '-u', user, '--', 'make', '--no-print-directory', '-s', '-o',
                            '.venv/.installed-stamp', 'lab', f'BIN={bindir}'], cwd=ROOT, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout.split()
    finally:
        shutil.rmtree(bindir, ignore_errors=True)


def test_make_lab_allows_root_only_for_root():
    if os.geteuid() != 0 or not shutil.which('runuser'):
        pytest.fail('this test switches to the user nobody: run it as root (CI and the containers it is about do)')
    assert '--allow-root' in jupyter_args_under_make('root')
    as_user = jupyter_args_under_make('nobody')
    assert as_user[:2] == ['lab', '--notebook-dir=nbs'] and '--allow-root' not in as_user
