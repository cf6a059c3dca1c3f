"""``python -m ringkv.cli``: the same as the ``ringkv`` script."""

import sys

from ringkv.cli.main import main

sys.exit(main())
