"""The project's own consistency: README in step with nbs/index.ipynb."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_is_generated_from_index_notebook():
    r = subprocess.run([sys.executable, 'tools/readme.py', '--check'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_every_library_the_package_imports_is_declared():
    """Each third-party module imported anywhere in f1twin/ belongs to a distribution named in settings.ini
    `requirements` (not only arriving through another package's dependencies)."""
    import ast
    import configparser
    import re
    from importlib.metadata import packages_distributions
    cfg = configparser.ConfigParser(delimiters=['='])
    cfg.read(ROOT / 'settings.ini')
    declared = {re.split(r'[<>=!~\[ ]', r, maxsplit=1)[0].lower().replace('_', '-')
                for r in cfg['DEFAULT']['requirements'].split()}
    imported = set()
    for path in (ROOT / 'f1twin').glob('**/*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import): imported |= {a.name.split('.')[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split('.')[0])
    dists = packages_distributions()
    third_party = {m for m in imported if m in dists and m != 'f1twin'}
    missing = {m: dists[m] for m in third_party
               if not {d.lower().replace('_', '-') for d in dists[m]} & declared}
    assert not missing, f'imported but not declared in settings.ini requirements: {missing}'


def test_every_public_function_class_and_method_is_in_nbdevs_index():
    """nbdev's index (_modidx.py) lists what the docs show: a method attached after its class (setattr) is missing
    from it. Every public name a module defines, and every public method of its classes, must be there."""
    import importlib
    import inspect
    import pkgutil
    import f1twin
    from f1twin._modidx import d
    syms = d['syms']
    missing = []
    for m in pkgutil.iter_modules(f1twin.__path__):
        if m.name.startswith('_') or m.name == 'stream': continue  # stream: the old names, re-exported
        mod = importlib.import_module(f'f1twin.{m.name}')
        index = syms.get(f'f1twin.{m.name}', {})
        for name, obj in vars(mod).items():
            if name.startswith('_') or getattr(obj, '__module__', None) != mod.__name__: continue
            if inspect.isfunction(obj) and f'f1twin.{m.name}.{name}' not in index: missing.append(f'{m.name}.{name}')
            if inspect.isclass(obj):
                for meth, f in vars(obj).items():
                    if meth.startswith('_') or not (inspect.isfunction(f) or isinstance(f, (classmethod, staticmethod, property))):
                        continue
                    if f'f1twin.{m.name}.{name}.{meth}' not in index: missing.append(f'{m.name}.{name}.{meth}')
    assert not missing, f'not in nbdev\'s index (define classes whole, or with @patch): {missing}'


def test_xdist_groups_keep_their_tests_on_one_worker(tmp_path):
    """The tests of one xdist_group (one secure broker, one browser, one costly fixture) run on one worker: with
    pytest 9.2, pytest-xdist's `--dist loadgroup` silently stopped grouping (pytest-dev/pytest-xdist issue 1386),
    and the suite would still pass, slower or with two brokers of one name racing (settings.ini pins pytest)."""
    (tmp_path / 'test_groups.py').write_text(
        'import os, pytest\n'
        + ''.join(f"@pytest.mark.xdist_group('g')\ndef test_{i}(): pass\n" for i in range(6)))
    (tmp_path / 'pytest.ini').write_text('[pytest]\n')  # not this project's configuration
    r = subprocess.run([sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '-n', '2', '--dist', 'loadgroup',
                        '-v', '-c', str(tmp_path / 'pytest.ini'), str(tmp_path)],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    ran = [line.split()[0] for line in r.stdout.splitlines() if 'PASSED' in line]
    assert len(ran) == 6 and len(set(ran)) == 1, f'the group ran on {sorted(set(ran))}: {r.stdout[-1500:]}'


def test_exported_cells_and_modules_stay_small():
    """Issue 10's limits: no exported notebook cell over 80 lines, no module over 500 (nbdev's index excepted)."""
    import json
    long_cells = []
    for nb in sorted((ROOT / 'nbs').glob('*.ipynb')):
        for cell in json.loads(nb.read_text())['cells']:
            src = ''.join(cell['source'])
            if cell['cell_type'] == 'code' and src.lstrip().startswith('#| export') and len(src.splitlines()) > 80:
                long_cells.append(f"{nb.name} cell {cell.get('id')}: {len(src.splitlines())} lines")
    assert not long_cells, long_cells
    big = [f'{p.name}: {n} lines' for p in sorted((ROOT / 'f1twin').glob('*.py')) if p.name != '_modidx.py'
           and (n := len(p.read_text().splitlines())) > 500]
    assert not big, big
