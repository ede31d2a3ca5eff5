"""The one exception type robusttext raises for bad input."""


class RobustTextError(ValueError):
    """Bad input or configuration; the message names the problem.

    The command line prints the message without a traceback.
    """
