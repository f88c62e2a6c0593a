"""Report benchmark: a 23-lap session (the real laps repeated, recorded at 333 Hz) to a self-contained HTML report.

Prints where the time goes, phase by phase: papermill and the kernel's start, then each cell of the report template
by the comment that opens it (imports, reading the session, lap analysis, corners, each figure and table), the
papermill overhead between cells, and nbconvert's HTML; the size of the HTML and what it is made of (plotly.js,
CSS, each figure's data). Target (issue 12): under 10 s in all, HTML under 6 MB, readable offline.

Beside it, measured in the same run:
- the floor: the same `make_report` on a template with nothing but its parameters cell (papermill, a kernel that
  starts and stops, nbconvert with plotly.js inlined): what no change to the analysis or the figures can go under;
- the CLI: `f1twin report` in a fresh process, which first imports papermill and nbconvert (the parent's imports);
- the baseline: a plain `jupyter nbconvert --execute --to html` of the same template (plotly's default renderer:
  its figures need plotly.js from the network or are missing).

The machine is shared: each figure is the median of `--repeat` runs (the spread is printed).

    python bench/report_bench.py [--laps 23] [--repeat 3] [--no-baseline]
"""
import argparse, re, statistics, subprocess, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).parent))
from laps_bench import long_session  # noqa: E402
from f1twin.io import save_session  # noqa: E402
from f1twin.report import load_template, make_report  # noqa: E402

TARGET_S, TARGET_MB = 10.0, 6.0


def cell_label(cell) -> str:
    "A code cell's phase: the comment that opens it ('parameters' for papermill's cells)."
    tags = cell.metadata.get('tags', [])
    if 'parameters' in tags or 'injected-parameters' in tags: return 'parameters'
    first = cell.source.strip().splitlines()[0] if cell.source.strip() else ''
    return first[1:].strip().split(' (')[0] if first.startswith('#') else first[:40]


def _when(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def phases(r, started: float) -> dict:
    "Seconds per phase of one make_report run, from the executed notebook's papermill timings."
    nb = nbformat.read(r.notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == 'code']
    out = {'papermill and kernel start': _when(code[0].metadata.papermill['start_time']) - started}
    for c in code:
        label = cell_label(c)
        out[label] = out.get(label, 0.0) + c.metadata.papermill['duration']
    cells = sum(c.metadata.papermill['duration'] for c in code)
    out['papermill between cells, kernel stop'] = r.seconds_execute - out['papermill and kernel start'] - cells
    out['nbconvert HTML'] = r.seconds_html
    return out


def one_report(path: Path, out: Path, template=None):
    started = datetime.now(timezone.utc).timestamp()
    t0 = time.perf_counter()
    r = make_report(path, out, template=template)
    total = time.perf_counter() - t0
    return r, total, phases(r, started) if template is None else None


def html_parts(page: str) -> dict:
    "Bytes of the HTML by what they are: plotly.js, CSS, each figure's data, the rest."
    from plotly.offline import get_plotlyjs
    js = len(get_plotlyjs()) if get_plotlyjs() in page else 0
    css = sum(len(m) for m in re.findall(r'<style.*?</style>', page, re.S))
    figs = [len(f) for f in re.findall(r'Plotly\.newPlot\((.*?)\)\s*};', page, re.S)]
    return {'plotly.js': js, 'CSS': css, 'figures': figs, 'rest': len(page) - js - css - sum(figs)}


def median_spread(xs) -> str:
    return f'{statistics.median(xs):5.2f} s' + (f' ({min(xs):.2f}-{max(xs):.2f})' if len(xs) > 1 else '')


def cli_seconds(path: Path, out: Path) -> float:
    exe = Path(sys.executable).with_name('f1twin')
    t0 = time.perf_counter()
    subprocess.run([str(exe), 'report', str(path), '--out', str(out)], check=True, capture_output=True)
    return time.perf_counter() - t0


def parent_import_seconds() -> float:
    "What a fresh process spends importing f1twin.report, papermill and nbconvert before any work."
    code = 'import time; t = time.perf_counter(); import f1twin.report, papermill, nbconvert; print(time.perf_counter() - t)'
    return float(subprocess.run([sys.executable, '-c', code], check=True, capture_output=True, text=True).stdout)


def floor_template(d: Path) -> Path:
    nb = load_template()
    nb.cells = [c for c in nb.cells if 'parameters' in c.metadata.get('tags', [])]
    path = d / 'floor.ipynb'
    nbformat.write(nb, path)
    return path


def baseline_seconds(path: Path, d: Path) -> tuple[float, int]:
    nb = load_template()  # the same template, its parameter set by hand, plotly's default renderer
    params = next(c for c in nb.cells if 'parameters' in c.metadata.get('tags', []))
    params.source += f"\nsession = {str(path)!r}"
    for c in nb.cells: c.source = c.source.replace('report.use_report_renderer()', '')
    tpl = d / 'baseline.ipynb'
    nbformat.write(nb, tpl)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, '-m', 'jupyter', 'nbconvert', '--execute', '--to', 'html', str(tpl)],
                   check=True, capture_output=True)
    return time.perf_counter() - t0, (d / 'baseline.html').stat().st_size


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--laps', type=int, default=23)
    ap.add_argument('--repeat', type=int, default=3, help='runs of each measurement; the median is printed')
    ap.add_argument('--no-baseline', action='store_true', help='skip the plain nbconvert baseline')
    a = ap.parse_args()
    df = long_session(a.laps * 82 / 60)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        path = save_session(df, d / f'session_{a.laps}_laps.parquet')
        print(f'session: {len(df):,} samples at 333 Hz, {df.completed_laps.max()} laps; median of {a.repeat} run(s)')
        runs = [one_report(path, d / 'out') for _ in range(a.repeat)]
        totals = [t for _, t, _ in runs]
        r = runs[-1][0]
        print(f'\nf1twin report: {median_spread(totals)} in all (target < {TARGET_S:.0f} s), '
              f'HTML {r.html_bytes / 1e6:.2f} MB (target < {TARGET_MB:.0f} MB)')
        for label in runs[0][2]:
            print(f'  {label:38s} {median_spread([p[label] for _, _, p in runs])}')
        parts = html_parts(r.html.read_text(encoding='utf-8'))
        print(f"  HTML: plotly.js {parts['plotly.js'] / 1e6:.2f} MB (inlined once), CSS {parts['CSS'] / 1e6:.2f} MB, "
              f"{len(parts['figures'])} figures {sum(parts['figures']) / 1e6:.2f} MB "
              f"({', '.join(f'{b / 1e3:.0f}' for b in parts['figures'])} kB), rest {parts['rest'] / 1e6:.2f} MB")
        floor_tpl = floor_template(d)
        floor = [one_report(path, d / 'floor', template=floor_tpl)[1] for _ in range(a.repeat)]
        print(f'floor (a template of only its parameters cell: papermill, kernel start and stop, nbconvert): '
              f'{median_spread(floor)}')
        imports = [parent_import_seconds() for _ in range(a.repeat)]
        cli = [cli_seconds(path, d / 'cli') for _ in range(a.repeat)]
        print(f'f1twin report on the command line (a fresh process): {median_spread(cli)}, '
              f'of which importing papermill and nbconvert {median_spread(imports)}')
        if not a.no_baseline:
            base, size = baseline_seconds(path, d)
            print(f'baseline nbconvert --execute --to html (default renderer): {base:.1f} s, HTML {size / 1e6:.1f} MB '
                  f'(its figures need plotly.js from the network or are missing)')
