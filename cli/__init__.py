"""The ``ringkv`` command: argparse subcommands over the client API.

``main`` parses and dispatches; ``target`` opens the database a command
works on (``--data-dir`` or ``--connect``); ``kv``, ``keyspace`` and
``feeds`` hold the data commands, ``dump`` the JSON-lines export and import;
``cluster`` holds ``status``, ``ring``, ``remove`` and ``leave`` (with the
streaming progress of ``transfers``) and ``repair`` the anti-entropy pass;
``serve`` runs a node (also as ``join`` and ``replace``); ``output`` renders
values, tables and JSON; ``demo`` is the guided tour, on the local processes
of ``localcluster``.
"""
