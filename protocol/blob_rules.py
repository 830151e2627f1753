"""What a blob's bytes must be to be taken: their SHA-256 is the blob's hash, and a tree node's bytes list
the children it names (blob_put, export_blob and blob_data check them; docs/protocol.md section 3a)."""

from __future__ import annotations

import hashlib

from .limits import BLOB_HASH_BYTES, FieldError


def check_blob_hash(hash: bytes, data: bytes) -> None:
    if hashlib.sha256(data).digest() != hash:
        raise FieldError("hash", "is not the sha256 of data")


def check_tree_blob(hash: bytes, data: bytes, children: list[bytes] | None) -> None:
    """A blob with its bytes and, for a tree node, the blobs it holds (blob_put, export_blob).

    A node's bytes list each child's hash at an offset that is a multiple of 32 (the add-on's nodes are
    their children's hashes, concatenated). So what a node holds follows from its bytes, which its hash
    fixes: nobody can make a known blob hold blobs of their choosing, and no cycle can be made (a node
    would have to list the hash of a node that lists its own)."""
    check_blob_hash(hash, data)
    if children is None:
        return
    if hash in children:
        raise FieldError("children", "must not name the blob itself")
    size = BLOB_HASH_BYTES  # the offsets are multiples of it
    listed = {data[at : at + size] for at in range(0, len(data) - size + 1, size)}
    for child in children:
        if child not in listed:
            reason = f"names {child.hex()}, which data does not list at an offset that is a multiple of 32"
            raise FieldError("children", reason)
