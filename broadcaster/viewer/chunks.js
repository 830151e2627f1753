// Chunked byte strings (docs/values.md, "Chunked byte strings"): a value's long byte strings travel as
// content-addressed chunks, each a blob the server holds for the room; the value names them in a msgpack
// extension: a tree (CHUNK_TREE_EXT: list nodes of hashes down to the chunks, the value naming the root)
// or a flat list (CHUNKED_EXT, the first format). A value that names chunks waits here until they are
// fetched (blob_get; a tree level by level, since a node's children are known once it is here), then goes
// on with its byte strings joined; one the page draws only at times (a base mesh) is held unfetched until
// it is wanted, and goes back to that when it no longer is. A newer value of the same key replaces one still waiting; a blob the
// server no longer holds belongs to a value a later one replaced: that value is dropped, as is one whose
// tree is malformed. The checks are the add-on's reader's (blender_addon/sync/chunks.py), plus bounds on
// what one value may make the page fetch and join.

import { ExtensionCodec } from "@msgpack/msgpack";

export const CHUNKED_EXT = 7;
export const CHUNK_TREE_EXT = 8;
const HASH_BYTES = 32;
const TREE_HEAD = 8 + 4 + 2; // length, chunk size, fan-out; then the root's hash
const MAX_DEPTH = 8; // node levels followed
const MAX_FANOUT = 256; // a node's children (docs/protocol.md: MAX_BLOB_CHILDREN)
const MAX_CHUNK_BYTES = 1024 * 1024; // one blob (docs/protocol.md: MAX_BLOB_BYTES)
// One value's byte strings: what the page joins and the blobs they name (a tree's every position
// counted: a node may name one blob many times, so this bounds the work and not only the fetching).
export const MAX_VALUE_BYTES = 512 * 1024 * 1024;
export const MAX_VALUE_BLOBS = 65536;
// All values' byte strings the page holds or is fetching at once: joined, then made into buffers for the
// GPU, they cost the tab several times their size (six values naming one 256 MiB tree took it past 9 GB).
export const MAX_HELD_BYTES = 1024 * 1024 * 1024;

// CHUNKED_EXT: every chunk's hash in the value.
export class Chunked {
  constructor(length, hashes) {
    this.length = length;
    this.hashes = hashes; // Uint8Array(32) each
  }

  get blobs() {
    return this.hashes.length;
  }
}

// CHUNK_TREE_EXT: widths[0] data chunks, widths[k] nodes of level k, the last the root (1).
export class ChunkTree {
  constructor(length, chunk, fanout, root) {
    if (!(chunk >= 1 && chunk <= MAX_CHUNK_BYTES) || !(fanout >= 2 && fanout <= MAX_FANOUT))
      throw new Error("a chunk tree's chunk size or fan-out is out of bounds");
    if (length <= chunk) throw new Error("a chunk tree of one chunk");
    this.length = length;
    this.chunk = chunk;
    this.fanout = fanout;
    this.root = root;
    this.widths = [Math.ceil(length / chunk)];
    while (this.widths.at(-1) > 1) {
      if (this.widths.length > MAX_DEPTH) throw new Error(`a chunk tree deeper than ${MAX_DEPTH} levels`);
      this.widths.push(Math.ceil(this.widths.at(-1) / fanout));
    }
  }

  get blobs() {
    return this.widths.reduce((a, b) => a + b, 0);
  }
}

function hex(bytes) {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

function unhex(h) {
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return out;
}

// The 8-byte big-endian length at the start of an extension, refused past what a value may join (a
// hostile length must not become an allocation).
function lengthOf(data) {
  const length = new DataView(data.buffer, data.byteOffset, 8).getBigUint64(0);
  if (length > BigInt(MAX_VALUE_BYTES)) throw new Error("a chunked byte string too long for the page");
  return Number(length);
}

export const extensionCodec = new ExtensionCodec();
extensionCodec.register({
  type: CHUNKED_EXT,
  encode: () => null, // the page never encodes values
  decode: (data) => {
    if (data.length < 8 || (data.length - 8) % HASH_BYTES) throw new Error("bad chunked byte string");
    const hashes = [];
    for (let i = 8; i < data.length; i += HASH_BYTES) hashes.push(data.slice(i, i + HASH_BYTES));
    return new Chunked(lengthOf(data), hashes);
  },
});
extensionCodec.register({
  type: CHUNK_TREE_EXT,
  encode: () => null,
  decode: (data) => {
    if (data.length !== TREE_HEAD + HASH_BYTES) throw new Error("a chunk tree's extension has the wrong size");
    const view = new DataView(data.buffer, data.byteOffset, TREE_HEAD);
    return new ChunkTree(lengthOf(data), view.getUint32(8), view.getUint16(12), data.slice(TREE_HEAD));
  },
});

function isExt(value) {
  return value instanceof Chunked || value instanceof ChunkTree;
}

function extsOf(value, out, depth = 0) {
  if (depth > MAX_NESTING) throw new RangeError("a value nested too deep"); // the caller leaves it out
  if (isExt(value)) out.push(value);
  else if (Array.isArray(value)) for (const v of value) extsOf(v, out, depth + 1);
  else if (value && typeof value === "object" && !(value instanceof Uint8Array))
    for (const v of Object.values(value)) extsOf(v, out, depth + 1);
  return out;
}
const MAX_NESTING = 64; // deeper than any value the add-on writes

// One byte string of a waiting value: the blobs it needs now, as hex: a tree's current level (`depth` 0:
// its data chunks), or a flat list's chunks.
class Pending {
  constructor(ext) {
    this.ext = ext;
    if (ext instanceof Chunked) {
      this.depth = 0;
      this.level = ext.hashes.map(hex);
    } else {
      this.depth = ext.widths.length - 1;
      this.level = [hex(ext.root)];
    }
  }

  // Goes down while every node of the level is here; throws on a node the tree's shape refuses.
  descend(have) {
    while (this.depth > 0 && this.level.every((h) => have.has(h))) {
      const width = this.ext.widths[this.depth - 1];
      const below = [];
      for (const h of this.level) {
        const node = have.get(h);
        if (!node.length || node.length % HASH_BYTES || node.length > this.ext.fanout * HASH_BYTES)
          throw new Error("a chunk tree's list node is malformed");
        for (let i = 0; i < node.length; i += HASH_BYTES) below.push(hex(node.subarray(i, i + HASH_BYTES)));
        if (below.length > width) throw new Error("a chunk tree's nodes do not hold its chunks");
      }
      if (below.length !== width) throw new Error("a chunk tree's nodes do not hold its chunks");
      this.depth -= 1;
      this.level = below;
    }
  }

  // The joined bytes once every chunk is here (undefined when their lengths do not add up).
  joined(have) {
    const out = new Uint8Array(this.ext.length);
    let at = 0;
    for (const h of this.level) {
      const piece = have.get(h);
      if (at + piece.length > out.length) return undefined;
      out.set(piece, at);
      at += piece.length;
    }
    return at === out.length ? out : undefined;
  }
}

// The value with every extension replaced by its joined bytes (undefined when one does not join).
function joined(value, pending, have) {
  if (isExt(value)) return pending.get(value).joined(have);
  if (Array.isArray(value)) {
    const out = value.map((v) => joined(v, pending, have));
    return out.includes(undefined) ? undefined : out;
  }
  if (value && typeof value === "object" && !(value instanceof Uint8Array)) {
    const out = {};
    for (const [k, v] of Object.entries(value))
      if ((out[k] = joined(v, pending, have)) === undefined) return undefined;
    return out;
  }
  return value;
}

export class ChunkGate {
  constructor(fetchBlobs, leftOut = () => {}, maxHeld = MAX_HELD_BYTES) {
    this.fetchBlobs = fetchBlobs; // (list of 32-byte hashes) -> sends blob_get
    this.leftOut = leftOut; // (key) -> a value was left out: the key keeps its previous value
    this.maxHeld = maxHeld;
    this.reset();
  }

  reset() {
    this.shown = new Map(); // key -> bytes of the joined value last returned for it (the scene holds it)
    this.waiting = new Map(); // key -> { value, bytes, pending: Map(ext -> Pending), need: Set(hex) }
    this.deferred = new Map(); // key -> value whose chunks are asked for only once it is wanted
    this.have = new Map(); // hex -> bytes, while a waiting value's current levels name it
    this.requested = new Set(); // hex asked for on this connection, not answered yet
  }

  // A connection was lost: what was asked on it will not be answered; ask again on the next.
  resend() {
    this.requested.clear();
    const all = new Set();
    for (const { need } of this.waiting.values()) for (const h of need) all.add(h);
    this.request(all);
  }

  request(wanted) {
    const ask = [...wanted].filter((h) => !this.requested.has(h));
    for (const h of ask) this.requested.add(h);
    if (ask.length) this.fetchBlobs(ask.map(unhex));
  }

  // A decoded value of `key` arrives: it is returned when it names no chunk (or all are here), else held
  // (null: held, or left out); without `fetch` nothing is asked for until `want(key)`.
  incoming(key, value, fetch = true) {
    this.drop(key);
    if (value === null) {
      this.shown.delete(key);
      return null;
    }
    const exts = extsOf(value, []);
    if (!exts.length) {
      this.shown.delete(key);
      return value;
    }
    let bytes = 0, blobs = 0;
    for (const ext of exts) (bytes += ext.length), (blobs += ext.blobs);
    if (bytes > MAX_VALUE_BYTES || blobs > MAX_VALUE_BLOBS) {
      this.leftOut(key);
      return null;
    }
    if (!fetch) {
      this.deferred.set(key, value);
      return null;
    }
    if (this.over(key, bytes)) {
      this.leftOut(key); // the page keeps what it holds (the key its previous value)
      return null;
    }
    return this.start(key, value, exts, bytes);
  }

  // Whether `key`'s value of `bytes` would take what the page holds or fetches past `maxHeld` (what it
  // replaces not counted).
  over(key, bytes) {
    let total = bytes;
    for (const [k, held] of this.shown) if (k !== key) total += held;
    for (const [k, entry] of this.waiting) if (k !== key) total += entry.bytes;
    return total > this.maxHeld;
  }

  start(key, value, exts, bytes) {
    const pending = new Map(exts.map((ext) => [ext, new Pending(ext)]));
    return this.advance(key, { value, bytes, pending, need: new Set() }) ?? null;
  }

  // The page now draws `key`'s value: a deferred one is fetched (returned at once when nothing is missing).
  want(key) {
    const value = this.deferred.get(key);
    if (value === undefined) return null;
    const exts = extsOf(value, []);
    let bytes = 0;
    for (const ext of exts) bytes += ext.length;
    if (this.over(key, bytes)) return null; // stays deferred: wanted again once there is room
    this.deferred.delete(key);
    return this.start(key, value, exts, bytes);
  }

  // The page no longer draws `key`'s value: what it still needs is not asked for (blobs already asked
  // for still come, and are let go) until it is wanted again.
  park(key) {
    const entry = this.waiting.get(key);
    if (!entry) return;
    this.drop(key);
    this.deferred.set(key, entry.value);
  }

  // Descends the entry's trees as far as the blobs here allow: returns its joined value when it is
  // complete; else holds it (asking for what it needs next) and returns undefined, as when it is refused.
  advance(key, entry) {
    try {
      for (const part of entry.pending.values()) part.descend(this.have);
    } catch {
      this.drop(key); // a malformed tree: the value is left out
      this.leftOut(key);
      return undefined;
    }
    for (const part of entry.pending.values()) for (const h of part.level) if (!this.have.has(h)) entry.need.add(h);
    if (entry.need.size) {
      this.waiting.set(key, entry);
      this.collect();
      this.request(entry.need);
      return undefined;
    }
    const value = joined(entry.value, entry.pending, this.have);
    this.drop(key);
    if (value === undefined) this.leftOut(key);
    else this.shown.set(key, entry.bytes);
    return value;
  }

  drop(key) {
    this.deferred.delete(key);
    if (this.waiting.delete(key)) this.collect();
  }

  // Keeps only the blobs a waiting value's current levels name (a node is read once, when its level is).
  collect() {
    const still = new Set();
    for (const { pending } of this.waiting.values())
      for (const part of pending.values()) for (const h of part.level) still.add(h);
    for (const h of [...this.have.keys()]) if (!still.has(h)) this.have.delete(h);
  }

  // A blob_data: returns the [key, value] pairs now complete (in the order they arrived).
  arrived(hash, data) {
    const h = hex(hash);
    this.requested.delete(h);
    const ready = [];
    for (const [key, entry] of [...this.waiting]) {
      if (!entry.need.has(h) || this.waiting.get(key) !== entry) continue;
      if (!(data instanceof Uint8Array)) {
        this.drop(key); // released: a later value replaced this one
        this.leftOut(key);
        continue;
      }
      this.have.set(h, data);
      entry.need.delete(h);
      if (entry.need.size) continue;
      const value = this.advance(key, entry);
      if (value !== undefined) ready.push([key, value]);
    }
    return ready;
  }
}
