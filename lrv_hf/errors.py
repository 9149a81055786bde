"""The one exception type for bad user input.

The CLI prints an `InputError` as a single line (file, row or parameter, and what is wrong) and exits non-zero;
anything else is a bug and keeps its traceback.
"""


class InputError(ValueError):
    """Bad input from the user: a file, a row, a field or a parameter. The message names it and says what to do.

    Args:
        message (`str`): one line; a library parameter is written in backticks (`` `images` ``), never as a flag.
        parameter (`str`, *optional*): the library parameter at fault, so that a command line can say its own flag
            instead (`lrv_hf.cli.flag_message`).
    """

    def __init__(self, message: str, parameter: str | None = None):
        super().__init__(message)
        self.parameter = parameter
