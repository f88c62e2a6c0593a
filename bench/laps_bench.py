"""Lap analysis benchmark: a 1-hour session at 333 Hz (about 1.2 M samples) built from the real recording.

Times split_laps + lap_table + sector_table + one compare_laps together (target: under 0.5 s, issue 4), and,
in the same run, a straightforward per-lap loop in the style of the original exploration notebooks as the
baseline (it filters the frame lap by lap and walks the samples of each lap in Python).

    python bench/laps_bench.py [--minutes 60]
"""
import argparse, time

import numpy as np
import pandas as pd

from f1twin.fakeac import resample_session
from f1twin.io import load_session, sample_session_path
from f1twin.laps import compare_laps, lap_bounds, lap_table, sector_table, split_laps


def long_session(minutes: float) -> pd.DataFrame:
    "The four timed laps of the real session at 333 Hz, repeated with the counters carried on, for `minutes`."
    r = resample_session(load_session(sample_session_path()), 333)
    b = lap_bounds(r)
    laps = r.iloc[int(b['first'][1]):int(b['first'][5])].reset_index(drop=True)  # laps 1-4
    span = float(b['start_s'][5] - b['start_s'][1])
    dist = float(b['line_m'][5] - b['line_m'][1])
    n = int(np.ceil(minutes * 60 / span))
    parts = []
    for k in range(n):
        p = laps.copy()
        p['completed_laps'] += 4 * k
        p['session_time_s'] += span * k
        p['timestamp'] += span * k
        p['distance_total'] += dist * k
        p['packet_id'] += len(laps) * k
        if k: p.loc[p['completed_laps'] == 4 * k, 'last_lap_time_ms'] = 82165  # the lap before: the copy's lap 4
        parts.append(p)
    out = pd.concat(parts, ignore_index=True)
    out.attrs = {'f1twin': {**r.attrs['f1twin'], 'source': 'bench: the real laps repeated at 333 Hz'}}
    return out


def f1twin_analysis(df):
    laps = split_laps(df)
    t = lap_table(df)
    st = sector_table(t)
    best = int(st['lap_time_ms'].idxmin())
    c = compare_laps((df, best), (df, best + 1))
    return laps, t, st, c


def baseline_analysis(df):
    "The exploration-notebook way: one lap at a time, a Python loop over its samples."
    rows = []
    for lap in sorted(df['completed_laps'].unique()):
        d = df[df['completed_laps'] == lap]
        top, full, total = 0.0, 0, 0
        for _, r in d.iterrows():
            top = max(top, r['speed_kmh'])
            full += r['throttle'] >= 0.98
            total += 1
        nxt = df[df['completed_laps'] == lap + 1]
        rows.append({'lap': lap + 1, 'lap_time_ms': nxt['last_lap_time_ms'].iloc[0] if len(nxt) else np.nan,
                     'top_speed': top, 'full_throttle': full / max(total, 1)})
    return pd.DataFrame(rows)


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--minutes', type=float, default=60)
    ap.add_argument('--baseline-laps', type=int, default=4, help='laps the (slow) baseline runs on; scaled up')
    a = ap.parse_args()
    df = long_session(a.minutes)
    print(f'session: {len(df):,} samples, {df.session_time_s.iloc[-1] / 60:.1f} min at 333 Hz, '
          f'{df.memory_usage(deep=True).sum() / 1e6:.0f} MB')
    f1twin_analysis(df.iloc[:200_000])  # warm-up (imports, caches)
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter(); laps, t, st, c = f1twin_analysis(df); best = min(best, time.perf_counter() - t0)
    print(f'f1twin  split_laps + lap_table + sector_table + compare_laps: {best:.3f} s '
          f'({len(t)} laps, {len(st)} representative; target < 0.5 s)')
    n_laps = df['completed_laps'].nunique()
    part = df[df['completed_laps'] < a.baseline_laps]
    t0 = time.perf_counter(); baseline_analysis(part); dt = time.perf_counter() - t0
    print(f'baseline per-lap Python loop: {dt:.2f} s for {a.baseline_laps} laps -> about {dt * n_laps / a.baseline_laps:.0f} s '
          f'for all {n_laps} laps ({dt * n_laps / a.baseline_laps / best:.0f}x slower)')
