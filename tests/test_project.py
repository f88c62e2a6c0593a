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
