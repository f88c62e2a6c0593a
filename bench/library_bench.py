"""Lap library benchmark: index 1,000 sessions of 20 laps, then index again with nothing new.

Sessions are synthesised from the bundled 12 September session: its four timed laps strung five times into one
20-lap session (counters, distance and lap clock continued, lap times shifted by a few ms per session so every
session has its own bests), written as f1twin Parquet files (the collector's format), one per day.

    python bench/library_bench.py [--sessions 1000] [--workers N] [--keep DIR]

Targets (issue 13): first index under 30 s, second index (nothing new) under 1 s. Baseline in the same run: what
a library without an index does to answer the same question, reading every file again (in one process, as a
plain loop would).
"""
import argparse, os, shutil, sys, tempfile, time, warnings
from pathlib import Path

import numpy as np
import pandas as pd

from f1twin.io import load_session, sample_session_path, save_session
from f1twin.laprules import session_time_ms
from f1twin.library import LapLibrary, session_rows

warnings.simplefilter('ignore')


def twenty_laps() -> pd.DataFrame:
    """The bundled session's laps 1-4 strung five times: one session of 20 timed laps (and the out-lap's end)."""
    s = load_session(sample_session_path())
    head, block, tail = s.iloc[:154], s.iloc[154:3408], s.iloc[3408:]
    span = block['distance_total'].iloc[-1] - block['distance_total'].iloc[0] + (
        tail['distance_total'].iloc[0] - block['distance_total'].iloc[-1])
    parts = [head]
    for r in range(5):
        b = block.copy()
        b['completed_laps'] += 4 * r
        b['distance_total'] += r * span
        if r:  # the first lap of a repeat follows lap 4 of the one before: its last lap is lap 4's time
            first_lap = block['completed_laps'].to_numpy() == 0
            b.loc[first_lap, 'last_lap_time_ms'] = 82165
            b.loc[first_lap, 'best_lap_time_ms'] = 81186
        parts.append(b)
    end = tail.copy()  # lap 20 timed on its first row, then the recording ends
    end['completed_laps'] += 16
    end['distance_total'] += 4 * span
    parts.append(end)
    out = pd.concat(parts, ignore_index=True)
    out['packet_id'] = np.arange(len(out))
    out['session_time_s'] = session_time_ms(out) / 1000
    out.attrs = s.attrs
    return out


def write_sessions(folder: Path, n: int) -> None:
    base = twenty_laps()
    meta = dict(base.attrs['f1twin'])
    timed = base['last_lap_time_ms'].to_numpy() > 0
    t0 = pd.Timestamp('2024-01-01', tz='UTC')
    for i in range(n):
        df = base.copy()
        df['last_lap_time_ms'] = np.where(timed, base['last_lap_time_ms'] + i % 997, 0)
        start = t0 + pd.Timedelta(days=i)
        df['timestamp'] = base['timestamp'] - base['timestamp'].iloc[0] + start.timestamp()
        df.attrs = {'f1twin': {**meta, 'session_id': f'synth-{i:04d}', 'start_time': start.isoformat()}}
        save_session(df, folder / f'{start:%Y-%m-%d}_synth-{i:04d}.parquet')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--sessions', type=int, default=1000)
    ap.add_argument('--workers', type=int, default=None, help='processes reading files (default: one per core)')
    ap.add_argument('--keep', help='write the sessions here and keep them (default: a temporary folder)')
    args = ap.parse_args()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix='f1twin-library-bench-'))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        write_sessions(folder, args.sessions)
        print(f'wrote {args.sessions} sessions of 20 laps in {time.perf_counter() - t:.1f} s ({folder})')
        db = folder / '.f1twin-library.duckdb'
        db.unlink(missing_ok=True)
        with LapLibrary(folder) as lib:
            t = time.perf_counter(); first = lib.update(progress=False, workers=args.workers); t_first = time.perf_counter() - t
            t = time.perf_counter(); second = lib.update(progress=False, workers=args.workers); t_second = time.perf_counter() - t
            t = time.perf_counter(); best = lib.bests(); t_query = time.perf_counter() - t
        laps = int(best['laps'].sum())
        files = sorted(folder.glob('*.parquet'))
        sample = files[:max(1, len(files) // 10)]  # the baseline reads a tenth and scales: the whole would take long
        t = time.perf_counter()
        for f in sample: session_rows(f)
        t_base = (time.perf_counter() - t) * len(files) / len(sample)
        print(f'{"":28s}{"seconds":>10s}  target')
        print(f'{"first index":28s}{t_first:10.2f}  < 30 s   ({len(first.read)} files, {laps} valid laps)')
        print(f'{"second index, nothing new":28s}{t_second:10.2f}  < 1 s    ({second.unchanged} files unchanged)')
        print(f'{"bests query":28s}{t_query:10.3f}')
        print(f'{"baseline: read every file":28s}{t_base:10.2f}  (one process, no index: every question costs this)')
        ok = t_first < 30 and t_second < 1 and not first.failed and laps == 20 * args.sessions
        print('targets met' if ok else 'TARGETS NOT MET')
        return 0 if ok else 1
    finally:
        if not args.keep: shutil.rmtree(folder, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
