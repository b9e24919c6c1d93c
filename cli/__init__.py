"""`depthprune`: the headless command line (Typer). Data goes to stdout, progress to stderr.

Any user mistake ends with one line `error: ...` naming the bad value and its source, exit code 2.
"""

from __future__ import annotations

import sys

import typer

from ..core.errors import UserError
from ..core.parsing import parse_indices, parse_list, parse_options
from . import evaluate, export, heal, runs, search, speed, study  # noqa: F401  (each module registers its commands on `app`)
from .common import app, stderr

__all__ = ["app", "main", "parse_indices", "parse_list", "parse_options"]


def main() -> None:
    """Entry point: Typer without its tracebacks; user errors as one line and exit code 2."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own Rich bars report progress
    try:
        app(standalone_mode=False)
    except UserError as exc:
        stderr.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        stderr.print("interrupted")
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: bad option values, unknown options
        if type(exc).__name__ == "NoArgsIsHelpError":  # help was already printed
            sys.exit(0)
        message = " ".join(exc.format_message().split())
        stderr.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
