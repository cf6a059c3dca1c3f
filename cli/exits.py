"""Exit codes of the ``ringkv`` command, and the one CLI-only error."""

OK = 0
#: ``get`` of a key that does not exist.
NOT_FOUND = 1
#: Bad command line (argparse's own errors, or no/ambiguous target).
USAGE = 2
#: Any other error: ringkv errors, OS errors, unexpected failures.
ERROR = 3
#: Interrupted by Ctrl-C (128 + SIGINT).
INTERRUPTED = 130


class UsageError(Exception):
    """The command line is wrong in a way argparse cannot see (exit 2)."""


class CommandError(Exception):
    """The command cannot run as asked, outside ringkv's own errors (exit 3)."""
