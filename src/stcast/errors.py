"""One exception type for every problem a user can fix (bad data, names, shapes, files)."""


class StcastError(ValueError):
    """A problem with the user's input: the message names it and, where possible, the fix."""
