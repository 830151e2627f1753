"""The ``meta`` of a datablock that holds a file (an image, a sound, a font, a movie clip, a library, a cache
file), merged when two artists changed it at the same moment.

Such a meta holds the datablock's name, its settings (a colour space, an alpha mode, a clip's or a cache's
``props``) and its file's identity together. The file's fields (:data:`CONTENT`) change together - a new file
is a new hash, size, name, tiles... - so they are one unit: ours when only our edit changed any of them,
else theirs. The other fields merge one by one, and ``props`` setting by setting: one artist fixing an
image's colour space while another renames it, or swapping a clip's footage while another changes its
frame offset, keeps both.

No bpy: values in, values out.
"""

from __future__ import annotations

from .three_way import three_way

# kind -> the fields naming its file (those a meta of that kind may hold)
CONTENT: dict[str, tuple[str, ...]] = {
    "img": ("source", "size", "generated", "sha256", "file", "tiles"),
    "sound": ("ext", "sha256", "bytes"),
    "font": ("builtin", "ext", "sha256", "bytes"),
    "clip": ("source", "file", "sha256", "files"),
    "lib": ("file", "sha256", "bytes", "linked", "links"),  # what is linked from it names its file's content
    "cache": ("file", "files", "sha256", "layers"),
}


def merge(kind: str, base: dict, ours: dict, theirs: dict) -> dict:
    """The merged meta of a ``kind`` in :data:`CONTENT` (three maps as that kind writes them)."""
    fields = CONTENT[kind]

    def content(doc: dict) -> list[object]:
        return [doc.get(field) for field in fields]

    def rest(doc: dict) -> dict:
        return {name: value for name, value in doc.items() if name not in fields}

    source = ours if content(theirs) == content(base) and content(ours) != content(base) else theirs
    merged = three_way(rest(base), rest(ours), rest(theirs))
    if all(isinstance(doc.get("props"), dict) for doc in (base, ours, theirs)):
        merged["props"] = three_way(base["props"], ours["props"], theirs["props"])
    merged.update({field: source[field] for field in fields if field in source})
    return merged
