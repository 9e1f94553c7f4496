"""The exception the command line turns into a one-line error message."""

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad input from the user: a file, a value or an option. The message is one line."""
