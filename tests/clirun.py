"""`f1twin ARGS` run in the test's own process: the same `main()` the console script calls, its stdout, stderr and
exit code captured, without the second of interpreter start and imports a subprocess costs. Tests of what only a
process shows (signals, the console script itself, a broker or a game that must outlive a call) run it as a
subprocess instead (tests/test_cli.py, tests/test_collector.py)."""
import contextlib
import io
import subprocess
import sys
import warnings


def _print_warning(msg) -> None:
    "What Python does with a warning shown outside pytest: print it (as `warnings.formatwarning` formats it) to stderr."
    sys.stderr.write(warnings._formatwarnmsg(msg))


def f1twin(*args, cwd=None) -> subprocess.CompletedProcess:
    """Run `f1twin ARGS` in this process (in folder `cwd`, if given) and return what a subprocess run would: the exit
    code, stdout and stderr as text. Warnings print as Python's default filters would in a fresh interpreter."""
    from f1twin.cli import main
    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        if cwd is not None: stack.enter_context(contextlib.chdir(cwd))
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        stack.enter_context(warnings.catch_warnings())
        warnings.resetwarnings()  # a fresh interpreter's filters, not pytest's (which record instead of printing)
        warnings._showwarnmsg_impl = _print_warning  # and printed, as there (catch_warnings puts pytest's back)
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter('ignore', category)
        try: code = main(argv)
        except SystemExit as e: code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return subprocess.CompletedProcess(['f1twin', *argv], code, out.getvalue(), err.getvalue())
