"""How mstbnn ends a command early: bad user input, or a SIGTERM.

Raise :class:`UserError` with a single line that says what was wrong, where,
and what to do. The CLI prints it as ``mstbnn: error: ...`` and exits with 2,
without a traceback. :func:`sigterm_unwinds` turns a SIGTERM into
:class:`Terminated`, so running tools are killed on the way out (exit 143).
"""

import contextlib
import signal
import threading


class UserError(Exception):
    """Bad input from the user: a missing file, a malformed artefact, an unknown option value."""


class Terminated(KeyboardInterrupt):
    """A SIGTERM, raised where the process is (see :func:`sigterm_unwinds`)."""


@contextlib.contextmanager
def sigterm_unwinds():
    """Within the block, a SIGTERM (a job's timeout, `kill`) raises :class:`Terminated` like Ctrl-C.

    So every ``except BaseException`` / ``finally`` cleanup runs: a tool being
    run (yosys, nextpnr, a Verilator build) is killed with us instead of
    running on orphaned. Outside the main thread (where Python cannot set
    handlers) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_terminated(signum, frame):
    raise Terminated
