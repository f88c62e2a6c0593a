#!/usr/bin/env python3
"""Keep committed notebooks small: drop the outputs a reader cannot use from a file.

Plotly figures (`application/vnd.plotly.v1+json`, tens to hundreds of KB each) render only in a live Jupyter, and
any output above MAX_BYTES is a large table or figure better seen by running the notebook. Text, small tables and
asserts' prints stay. `make export` runs this after nbdev_clean; tests/test_project.py checks it was run.

    python tools/trim_outputs.py [NOTEBOOK ...]     # default: every nbs/*.ipynb
    python tools/trim_outputs.py --check            # exit 1 and list what would be trimmed
"""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_BYTES = 20_000
DROP_TYPES = ('application/vnd.plotly.v1+json',)


def too_big(output: dict) -> bool:
    data = output.get('data', {})
    return any(t in data for t in DROP_TYPES) or len(json.dumps(output)) > MAX_BYTES


def trim(path: Path, check: bool = False) -> int:
    "Drop the outputs that are too big; returns how many (with `check`, only counts)."
    nb = json.loads(path.read_text())
    n = 0
    for cell in nb['cells']:
        outs = cell.get('outputs', [])
        keep = [o for o in outs if not too_big(o)]
        n += len(outs) - len(keep)
        if not check: cell['outputs'] = keep
    if n and not check:
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    return n


if __name__ == '__main__':
    check = '--check' in sys.argv
    paths = [Path(a) for a in sys.argv[1:] if a != '--check'] or sorted((ROOT / 'nbs').glob('*.ipynb'))
    found = {p: trim(p, check) for p in paths}
    for p, n in found.items():
        if n: print(f'{p}: {n} output(s) {"too big" if check else "dropped"}')
    sys.exit(1 if check and any(found.values()) else 0)
