"""The one exception type for bad user input.

The CLI prints an `InputError` as a single line (file, row or field, and what is wrong) and exits non-zero;
anything else is a bug and keeps its traceback.
"""


class InputError(ValueError):
    """Bad input from the user: a file, a row, a field or a flag. The message names it and says what to do."""
