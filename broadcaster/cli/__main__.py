"""``python -m broadcaster.cli``: the ``blendsync`` command from a checkout (tests start servers this way)."""

import sys

from . import main

sys.exit(main())
