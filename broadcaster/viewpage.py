"""The browser viewer of a share link: ``/view/<room>?token=...`` and its modules under ``/viewer/``.

The page is static: the room and the token are read by the page from its own URL (the room is data, never
a path: every ``/view/…`` URL gets the same page), and it connects to ``/ws`` like any client
(docs/values.md says what it decodes). Its files, ``broadcaster/viewer/``, are served from a fixed index
built once, like the browser libraries (webassets.py): a URL outside the index is a 404.
"""

from __future__ import annotations

from pathlib import Path

from .webassets import CONTENT_TYPES, IMPORT_MAP

VIEW_PREFIX = "/view/"
FILES_PREFIX = "/viewer/"
FOLDER = Path(__file__).resolve().parent / "viewer"
PAGE_TYPE = "text/html; charset=utf-8"
IMPORT_MAP_MARK = "<!-- import map -->"


class ViewerPage:
    def __init__(self, folder: Path = FOLDER):
        self.folder = folder
        self._files: dict[str, tuple[str, bytes]] | None = None

    def files(self) -> dict[str, tuple[str, bytes]]:
        if self._files is None:
            files = {}
            for path in sorted(self.folder.iterdir()):
                if path.is_file() and path.suffix in CONTENT_TYPES:
                    files[FILES_PREFIX + path.name] = (CONTENT_TYPES[path.suffix], path.read_bytes())
            page = (self.folder / "index.html").read_text(encoding="utf-8")
            files[VIEW_PREFIX] = (PAGE_TYPE, page.replace(IMPORT_MAP_MARK, IMPORT_MAP).encode())
            self._files = files
        return self._files

    def get(self, url_path: str) -> tuple[str, bytes] | None:
        """(content type, body) for a viewer URL; None for anything else."""
        if url_path.startswith(VIEW_PREFIX):
            return self.files()[VIEW_PREFIX]  # whatever the room: the page reads it from its URL
        return self.files().get(url_path)
