"""The one exception type for bad user input.

Raise :class:`UserError` with a single line that says what was wrong, where,
and what to do. The CLI prints it as ``mstbnn: error: ...`` and exits with 2,
without a traceback.
"""


class UserError(Exception):
    """Bad input from the user: a missing file, a malformed artefact, an unknown option value."""
