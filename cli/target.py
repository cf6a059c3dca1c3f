"""Which database a command works on: ``--data-dir`` (embedded) or ``--connect`` (cluster).

:func:`open_target` is the one place that turns parsed arguments into a
database object; every data command goes through it. Cluster-only commands
(``status``, ``ring``, ``remove``, ``leave``) take their node addresses from
:func:`cluster_addrs`. ``--connect`` (and ``RINGKV_CONNECT``) accept a
comma-separated list: the client starts from the first node that answers.
"""

from __future__ import annotations

import argparse
import os

import ringkv
from ringkv.api import DatabaseAPI
from ringkv.cli.exits import CommandError, UsageError

__all__ = ["ENV_CONNECT", "ENV_DATA_DIR", "DEFAULT_TIMEOUT", "add_target_options", "cluster_addrs", "open_target", "target_kind", "timeout_of"]

ENV_DATA_DIR = "RINGKV_DATA_DIR"
ENV_CONNECT = "RINGKV_CONNECT"
#: Seconds a cluster call may take unless ``--timeout`` says otherwise.
DEFAULT_TIMEOUT = 5.0


def add_target_options(parser: argparse.ArgumentParser, *, top: bool = False, timeout: bool = True) -> None:
    """Add ``--data-dir`` / ``--connect`` (and ``--timeout``) to ``parser``.

    They are accepted both before the subcommand (``top=True``, the top-level
    parser) and after it. Subcommand copies default to SUPPRESS so they do not
    overwrite a value given before the subcommand. ``timeout=False`` leaves
    ``--timeout`` out, for a command that gives it a meaning of its own
    (``feed follow``); the per-call deadline is then the one given before the
    command.
    """
    default = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("target (one of)")
    group.add_argument(
        "--data-dir",
        metavar="DIR",
        default=default,
        help=f"embedded database directory (env {ENV_DATA_DIR})",
    )
    group.add_argument(
        "--connect",
        metavar="ADDR",
        default=default,
        help=f"address of a cluster node, e.g. tcp://127.0.0.1:7100; a comma-separated list is allowed (env {ENV_CONNECT})",
    )
    if not timeout:
        return
    cluster = parser.add_argument_group("cluster")
    cluster.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_seconds,
        default=default,
        help=f"deadline of each cluster call (default: {DEFAULT_TIMEOUT:g})",
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"not a number of seconds in (0, 3600]: {text!r}")
    return value


def timeout_of(args: argparse.Namespace) -> float:
    """The ``--timeout`` given (before or after the command), else the default."""
    return getattr(args, "timeout", None) or DEFAULT_TIMEOUT


def _split_addrs(text: str) -> list[str]:
    addrs = [a.strip() for a in text.split(",") if a.strip()]
    for a in addrs:
        if "://" not in a:
            raise UsageError(f"bad node address {a!r}: use a ZeroMQ endpoint like tcp://127.0.0.1:7100")
    if not addrs:
        raise UsageError("--connect needs at least one node address")
    return addrs


def _choose(args: argparse.Namespace) -> tuple[str, str]:
    """``("data_dir", DIR)`` or ``("connect", ADDR)``: flags first, then environment."""
    data_dir = getattr(args, "data_dir", None)
    connect = getattr(args, "connect", None)
    if data_dir and connect:
        raise UsageError("give either --data-dir or --connect, not both")
    if data_dir:
        return "data_dir", data_dir
    if connect:
        return "connect", connect
    env_dir = os.environ.get(ENV_DATA_DIR) or None
    env_connect = os.environ.get(ENV_CONNECT) or None
    if env_dir and env_connect:
        raise UsageError(f"both {ENV_DATA_DIR} and {ENV_CONNECT} are set; pass --data-dir or --connect to choose")
    if env_dir:
        return "data_dir", env_dir
    if env_connect:
        return "connect", env_connect
    raise UsageError(f"no database given: pass --data-dir DIR (or set {ENV_DATA_DIR}), or --connect ADDR (or set {ENV_CONNECT})")


def target_kind(args: argparse.Namespace) -> str:
    """``"data_dir"`` or ``"connect"``: which kind of database the arguments name."""
    return _choose(args)[0]


def open_target(args: argparse.Namespace, *, create: bool = True) -> DatabaseAPI:
    """Open the database the arguments name; the caller closes it.

    ``create=False`` (read-only commands) refuses a data directory that does
    not exist instead of creating an empty database there.
    """
    kind, where = _choose(args)
    if kind == "connect":
        return ringkv.connect(_split_addrs(where), timeout=timeout_of(args))
    if os.path.exists(where) and not os.path.isdir(where):
        raise CommandError(f"data directory {where!r} is not a directory")
    if not create and not os.path.isdir(where):
        raise CommandError(f"no database at {where!r}: the directory does not exist (a put creates it)")
    return ringkv.open(where)


def cluster_addrs(args: argparse.Namespace, command: str) -> list[str]:
    """The node addresses of ``--connect`` / ``RINGKV_CONNECT`` for a cluster-only command."""
    kind, where = _choose(args)
    if kind != "connect":
        raise UsageError(f"{command} needs a cluster: pass --connect ADDR (or set {ENV_CONNECT})")
    return _split_addrs(where)
