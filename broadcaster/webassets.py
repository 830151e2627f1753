"""Browser libraries served under ``/vendor/`` on the HTTP port (the viewer's 3D, the status page's charts).

They come from the npm registry: ``web/package.json`` pins them and ``scripts/bootstrap`` installs them with
``npm ci`` into ``web/node_modules``; nothing is fetched when a page loads, so pages work on an offline
studio network (docs/decisions/0006). The folder is found with ``BLENDSYNC_WEB_DIR`` or next to a checkout.

A request never becomes a file path: the served files are indexed once, from fixed folders of fixed
packages, into a map from URL to file, and a URL that is not in the map is a 404.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PREFIX = "/vendor/"

# URL folder under /vendor/ -> (folder inside node_modules, whether to descend into sub-folders)
PACKAGES: dict[str, tuple[str, bool]] = {
    "three/": ("three/build", False),
    "three/addons/": ("three/examples/jsm", True),
    "msgpack/": ("@msgpack/msgpack/dist.esm", True),  # its index imports ./utils/*.mjs
    "uplot/": ("uplot/dist", False),
}

CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}

# An import map a page puts before its modules, so that three's add-ons find ``three`` by its bare name.
IMPORT_MAP = (
    '<script type="importmap">{"imports": {'
    '"three": "/vendor/three/three.module.js", '
    '"three/addons/": "/vendor/three/addons/", '
    '"@msgpack/msgpack": "/vendor/msgpack/index.mjs"}}</script>'
)


def default_root() -> Path:
    configured = os.environ.get("BLENDSYNC_WEB_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[1] / "web" / "node_modules"


@dataclass
class WebAssets:
    root: Path
    _index: dict[str, Path] | None = None
    _cache: dict[str, bytes] | None = None

    @property
    def installed(self) -> bool:
        return (self.root / "three" / "build" / "three.module.js").is_file()

    def index(self) -> dict[str, Path]:
        if self._index is None:
            index: dict[str, Path] = {}
            for url_folder, (folder, recursive) in PACKAGES.items():
                base = self.root / folder
                if not base.is_dir():
                    continue
                files = base.rglob("*") if recursive else base.iterdir()
                for path in files:
                    if path.is_file() and path.suffix in CONTENT_TYPES:
                        index[PREFIX + url_folder + path.relative_to(base).as_posix()] = path
            self._index = index
        return self._index

    def get(self, url_path: str) -> tuple[str, bytes] | None:
        """(content type, body) for a served URL; None for anything else."""
        path = self.index().get(url_path)
        if path is None:
            return None
        if self._cache is None:
            self._cache = {}
        body = self._cache.get(url_path)
        if body is None:
            body = self._cache[url_path] = path.read_bytes()
        return CONTENT_TYPES[path.suffix], body
