"""The ``ringkv`` command: argparse subcommands over the client API.

``main`` parses and dispatches; ``target`` opens the database a command
works on; ``kv`` and ``keyspace`` hold the data commands; ``output`` renders
values, tables and JSON; ``demo`` is the guided tour.
"""
