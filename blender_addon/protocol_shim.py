"""Where the add-on finds the sans-IO wire protocol.

In the installable zip built by ``blendsync addon build`` the protocol
package is vendored inside the add-on as ``_vendor/protocol``; in a checkout
the add-on sits next to the top-level ``protocol`` package. Everything else
in the add-on imports the protocol through this module only::

    from .protocol_shim import protocol
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def _load():
    try:
        return importlib.import_module(f"{__package__}._vendor.protocol")
    except ImportError:
        pass
    try:
        return importlib.import_module("protocol")
    except ImportError:
        repo = str(Path(__file__).resolve().parent.parent)
        if repo not in sys.path:
            sys.path.append(repo)
        return importlib.import_module("protocol")


protocol = _load()
