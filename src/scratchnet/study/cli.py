"""The one way a stage script runs: user errors as one line, bugs with their traceback.

Every `pipeline/<stage>.py` ends with

    if __name__ == "__main__":
        stage_main("train", main, usage="softmax|twolayer", choices=[MODELS])

A user reads a traceback as "the program crashed"; the project's own errors (subclasses of
`scratchnet.errors.UserError`: bad params, a corrupt data source, an unreachable tracking server,
a missing artifact, a wrong command line) already name the file or key and the fix, so they are
printed as one line. Any other exception is a bug and keeps its full traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from scratchnet.errors import UserError


class UsageError(UserError):
    """The stage script was called with the wrong arguments; the message shows the right ones."""


def stage_main(
    stage: str, main: Callable[..., Any], *, usage: str = "", choices: Sequence[Collection[str] | None] = ()
) -> None:
    """Runs `main(*sys.argv[1:])` as the stage named `stage`.

    choices: one entry per positional argument, the values it may take (None: any); usage: those
    arguments as the usage line shows them. A UserError exits with 1 and `<stage>: <message>` on
    stderr (its traceback only under SCRATCHNET_DEBUG=1); any other exception propagates.
    """
    argv = sys.argv[1:]
    try:
        if len(argv) != len(choices) or any(
            allowed is not None and value not in allowed for value, allowed in zip(argv, choices)
        ):
            script = Path(sys.argv[0]).as_posix() if sys.argv and sys.argv[0] else "<stage>.py"
            given = " ".join(argv) or "no arguments"
            raise UsageError(f"usage: python {script} {usage}".rstrip() + f" (got: {given})")
        main(*argv)
    except UserError as err:
        if os.environ.get("SCRATCHNET_DEBUG", "").strip().lower() not in ("", "0", "false", "no"):
            raise
        message = str(err).strip() or type(err).__name__
        # Some messages already start with the stage's name ("report: ..."); say it once.
        message = message.removeprefix(f"{stage}: ")
        print(f"{stage}: {message}", file=sys.stderr, flush=True)
        sys.exit(1)
