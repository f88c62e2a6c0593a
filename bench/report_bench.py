"""Report benchmark: a 20-lap session (the real laps repeated, recorded at 333 Hz) to a self-contained HTML report.

Prints the time split into kernel start, notebook execution and HTML conversion (target: under 15 s in all,
issue 6) and the size of the HTML, beside the baseline of a plain `jupyter nbconvert --execute --to html` of the
same template notebook (the one-step way, with the default plotly renderer).

    python bench/report_bench.py [--laps 20] [--hz 333]
"""
import argparse, subprocess, sys, tempfile, time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).parent))
from laps_bench import long_session  # noqa: E402
from f1twin.io import save_session  # noqa: E402
from f1twin.report import load_template, make_report  # noqa: E402


def kernel_start_seconds() -> float:
    from jupyter_client.manager import start_new_kernel
    t0 = time.perf_counter()
    km, kc = start_new_kernel(kernel_name='python3')
    dt = time.perf_counter() - t0
    kc.stop_channels(); km.shutdown_kernel(now=True)
    return dt


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--laps', type=int, default=20)
    a = ap.parse_args()
    minutes = a.laps * 82 / 60
    df = long_session(minutes)
    with tempfile.TemporaryDirectory() as d:
        path = save_session(df, Path(d) / f'session_{a.laps}_laps.parquet')
        print(f'session: {len(df):,} samples at 333 Hz, {df.completed_laps.max()} laps')
        k = kernel_start_seconds()
        t0 = time.perf_counter()
        r = make_report(path, Path(d) / 'out')
        total = time.perf_counter() - t0
        print(f'f1twin report: {total:.1f} s in all (kernel start {k:.1f} s, execution {r.seconds_execute - k:.1f} s, '
              f'HTML {r.seconds_html:.1f} s, checks and moves {total - r.seconds_execute - r.seconds_html:.1f} s); '
              f'HTML {r.html_bytes / 1e6:.1f} MB; target < 15 s')
        nb = load_template()  # the same template, its parameter set by hand, plotly's default renderer
        params = next(c for c in nb.cells if 'parameters' in c.metadata.get('tags', []))
        params.source += f"\nsession = {str(path)!r}"
        for c in nb.cells: c.source = c.source.replace('report.use_report_renderer()', '')
        tpl = Path(d) / 'baseline.ipynb'
        nbformat.write(nb, tpl)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, '-m', 'jupyter', 'nbconvert', '--execute', '--to', 'html', str(tpl)],
                       check=True, capture_output=True)
        base = time.perf_counter() - t0
        size = (Path(d) / 'baseline.html').stat().st_size
        print(f'baseline nbconvert --execute --to html (default renderer): {base:.1f} s, HTML {size / 1e6:.1f} MB '
              f'(its figures need plotly.js from the network or are missing)')
