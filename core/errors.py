"""User-facing errors: one line naming the bad value and where it came from."""


class UserError(Exception):
    """A mistake in the user's input (flag, file, model). The CLI prints it on one line, exit 2."""
