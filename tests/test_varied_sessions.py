"""Sessions unlike the two bundled ones, as other tools and other drivers make them (from a sweep with MoTeC files of
other tools and varied sessions): each once crashed, gave a wrong figure, or wrote a file f1twin could not read back."""
import numpy as np
import pandas as pd
import pytest

from clirun import f1twin
from f1twin.io import export_csv, load_session
from f1twin.laps import lap_table, sector_table, theoretical_best_ms

ROOT = __import__('pathlib').Path(__file__).resolve().parent.parent
A = ROOT / 'data' / 'telemetry_2025-09-12_19-00-17.csv'
B = ROOT / 'data' / 'telemetry_2025-09-13_16-18-26.csv'
A_LAPS = [81817, 81186, 82539, 82165]


def test_a_csv_written_without_steering_or_grip_reads_back(tmp_path):
    """A MoTeC log converted to CSV has no steering or grip values: the CSV has empty cells there, the last of the row
    among them. That is not a row cut short (a needed column other rows have values in, left empty at the end)."""
    df = load_session(A)
    df['steering'], df['surface_grip'] = np.nan, np.nan
    p = export_csv(df, tmp_path / 'no_grip.csv')
    assert p.read_text().splitlines()[1].endswith(',')
    back = load_session(p)
    assert lap_table(back)['lap_time_ms'].dropna().tolist() == A_LAPS
    assert back['surface_grip'].isna().all() and back['steering'].isna().all()
    lines = p.read_text().splitlines()
    cut = tmp_path / 'cut.csv'
    cut.write_text('\n'.join(lines[:100] + [','.join(lines[100].split(',')[:12])] + lines[101:]) + '\n')
    r = f1twin('laps', cut)
    assert r.returncode == 2 and 'line 101: only its first 12 of 24 fields have a value' in r.stderr, r.stderr


def test_no_sector_times_is_no_theoretical_best_and_one_lap_no_spread(tmp_path):
    df = load_session(A).assign(last_sector_time_ms=0)
    st = sector_table(lap_table(df))
    assert len(st) and np.isnan(theoretical_best_ms(st))
    p = export_csv(df, tmp_path / 'nosectors.csv')
    out = f1twin('laps', p).stdout.splitlines()[-1]
    assert 'theoretical best - (no sector times)' in out and '0:00.000' not in out
    b = load_session(B)
    one = b.iloc[:int(lap_table(b)['samples'].iloc[:2].sum()) + 20]  # the out-lap and one timed lap
    out = f1twin('laps', export_csv(one, tmp_path / 'one.csv')).stdout.splitlines()[-1]
    assert 'spread (std) - over 1 representative lap' in out and 'nan' not in out
