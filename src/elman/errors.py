"""The one error type the CLI turns into a single line and a non-zero exit."""


class ElmanError(Exception):
    """A user-facing error: bad input, a missing file, an unknown name.

    The message is one line that names the file or argument and says how to fix it.
    """
