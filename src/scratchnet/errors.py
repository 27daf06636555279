"""The root of every error a user can fix by changing an input, not the code.

Bad params, a corrupt or hostile archive, an unreachable tracking server, a missing artifact:
each raises a subclass of `UserError` whose message names the file or key and what to do.
Entry points print such an error as one line (`<stage>: <message>`) and exit with status 1;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem in what the user gave (a file, a param, a server address); the message says which."""


class MissingInputError(UserError, FileNotFoundError):
    """A file an earlier stage writes is not there; the message names it and the stage to run."""
