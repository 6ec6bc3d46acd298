"""Error types shared by the core.

`UserError` is anything the user can fix (a wrong file, a bad ROI, a bad
option).  The CLI prints its message on one line and exits with status 2;
every other exception is a bug in this package.
"""


class UserError(Exception):
    """Bad input or usage; the message is shown to the user as is."""


class InputFileError(UserError):
    """An input file is missing, unreadable or not what the command needs."""


class ChecksumError(UserError):
    """A weights file does not match the sha256 its model card declares."""


class Cancelled(Exception):
    """Long work was cancelled by the caller."""


class ServiceUnreachable(Exception):
    """A staging server could not be reached, or the connection to it was lost (the CLI exits with status 3)."""


class ServerError(Exception):
    """A staging server failed on its side (an internal error there; the CLI exits with status 1)."""
