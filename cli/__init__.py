"""The ``ringkv`` command: argparse subcommands over the client API.

``main`` parses and dispatches; ``target`` opens the database a command
works on (``--data-dir`` or ``--connect``); ``kv`` and ``keyspace`` hold the
data commands; ``cluster`` holds ``status``, ``ring``, ``remove`` and
``leave``; ``serve`` runs a node; ``output`` renders values, tables and
JSON; ``demo`` is the guided tour, on the local processes of ``localcluster``.
"""
