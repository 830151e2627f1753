"""Fonts (kind ``font``): the built-in font by name, other fonts as their file; received fonts are packed."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile

import bpy

from .. import ids
from ..context import ApplyContext, ReadContext
from ..replacing import replace
from .base import Kind

BUILTIN_FONT = "<builtin>"


def font_path(font: bpy.types.VectorFont) -> str | None:
    """The file behind a font that is neither built in nor packed, if it exists."""
    if not font.filepath or font.filepath == BUILTIN_FONT:
        return None
    path = bpy.path.abspath(font.filepath, library=font.library)
    return path if os.path.isfile(path) else None


def accepts(font: bpy.types.VectorFont) -> bool:
    """The built-in font, or a font whose file can be sent."""
    return font.filepath == BUILTIN_FONT or font.packed_file is not None or font_path(font) is not None


def font_content(font: bpy.types.VectorFont) -> bytes | None:
    """The font file (TTF, OTF, WOFF2...) behind a font; None for the built-in font."""
    if font.packed_file is not None:
        return bytes(font.packed_file.data)
    path = font_path(font)
    if path is None:
        return None
    with open(path, "rb") as fh:
        return fh.read()


def serialise(font: bpy.types.VectorFont, ctx: ReadContext) -> dict[str, object]:
    builtin = font.filepath == BUILTIN_FONT
    content = None if builtin else font_content(font) or b""
    return {
        "meta": {
            "name": font.name,
            "builtin": builtin,
            "ext": None if builtin else os.path.splitext(font.filepath)[1].lower() or ".ttf",
            "sha256": None if content is None else hashlib.sha256(content).hexdigest(),
            "bytes": content,
        }
    }


def describe(font: bpy.types.VectorFont, ctx: ReadContext) -> dict:
    content = font_content(font)
    return {
        "name": font.name,
        "builtin": font.filepath == BUILTIN_FONT,
        "content": hashlib.sha256(content).hexdigest() if content is not None else None,
    }


def _rename_font(font: bpy.types.VectorFont, name: str) -> None:
    if font.name != name:
        with contextlib.suppress(AttributeError):  # the built-in font's name cannot be changed
            font.name = name


def load_font(doc: dict) -> bpy.types.VectorFont:
    """The built-in font, or a packed font made from the font file in ``doc``."""
    if doc["builtin"]:
        # A built-in font that a new text curve brought along (and that has no uuid yet) is taken over.
        font = next(
            (f for f in bpy.data.fonts if f.filepath == BUILTIN_FONT and ids.peek_uuid(f) is None), None
        )
        if font is None:
            font = bpy.data.fonts.load(BUILTIN_FONT, check_existing=False)
    else:
        fd, path = tempfile.mkstemp(prefix="blendsync-", suffix=doc["ext"])
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(doc["bytes"])
            font = bpy.data.fonts.load(path, check_existing=False)
            font.pack()
        finally:
            with contextlib.suppress(OSError):
                os.remove(path)
    _rename_font(font, doc["name"])
    return font


def create(uuid: str, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    return load_font(doc)


def apply_meta(font: bpy.types.VectorFont, doc: dict, ctx: ApplyContext) -> bpy.types.ID:
    builtin = font.filepath == BUILTIN_FONT
    if builtin != doc["builtin"] or (
        not builtin and hashlib.sha256(font_content(font) or b"").hexdigest() != doc["sha256"]
    ):
        font = replace(font, load_font(doc), bpy.data.fonts.remove)
    _rename_font(font, doc["name"])
    return font


KIND = Kind(
    name="font",
    collection="fonts",
    rna_type="VectorFont",
    parts={"meta": apply_meta},
    create=create,
    serialise=serialise,
    describe=describe,
    accepts=accepts,
)
