// Chunked byte strings (docs/values.md, "Chunked byte strings"): a value's long byte strings travel as
// content-addressed chunks, each a blob the server holds for the room; the value names them in a msgpack
// extension. A value that names chunks waits here until they are fetched (blob_get), then goes on with
// its byte strings joined. A newer value of the same key replaces one still waiting; a chunk the server
// no longer holds belongs to a value a later one replaced: that value is dropped.

import { ExtensionCodec } from "@msgpack/msgpack";

export const CHUNKED_EXT = 7;
const HASH_BYTES = 32;

export class Chunked {
  constructor(length, hashes) {
    this.length = length;
    this.hashes = hashes; // Uint8Array(32) each
  }
}

function hex(bytes) {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

export const extensionCodec = new ExtensionCodec();
extensionCodec.register({
  type: CHUNKED_EXT,
  encode: () => null, // the page never encodes values
  decode: (data) => {
    if (data.length < 8 || (data.length - 8) % HASH_BYTES) throw new Error("bad chunked byte string");
    const view = new DataView(data.buffer, data.byteOffset, 8);
    const length = Number(view.getBigUint64(0));
    const hashes = [];
    for (let i = 8; i < data.length; i += HASH_BYTES) hashes.push(data.slice(i, i + HASH_BYTES));
    return new Chunked(length, hashes);
  },
});

function chunksOf(value, out) {
  if (value instanceof Chunked) for (const h of value.hashes) out.set(hex(h), h);
  else if (Array.isArray(value)) for (const v of value) chunksOf(v, out);
  else if (value && typeof value === "object" && !(value instanceof Uint8Array))
    for (const v of Object.values(value)) chunksOf(v, out);
  return out;
}

// The value with every Chunked replaced by its joined bytes (undefined when a length does not match).
function joined(value, have) {
  if (value instanceof Chunked) {
    const out = new Uint8Array(value.length);
    let at = 0;
    for (const h of value.hashes) {
      const piece = have.get(hex(h));
      if (at + piece.length > out.length) return undefined;
      out.set(piece, at);
      at += piece.length;
    }
    return at === out.length ? out : undefined;
  }
  if (Array.isArray(value)) {
    const out = value.map((v) => joined(v, have));
    return out.includes(undefined) ? undefined : out;
  }
  if (value && typeof value === "object" && !(value instanceof Uint8Array)) {
    const out = {};
    for (const [k, v] of Object.entries(value)) if ((out[k] = joined(v, have)) === undefined) return undefined;
    return out;
  }
  return value;
}

export class ChunkGate {
  constructor(fetchBlobs) {
    this.fetchBlobs = fetchBlobs; // (list of 32-byte hashes) -> sends blob_get
    this.reset();
  }

  reset() {
    this.waiting = new Map(); // key -> { value, need: Set(hex) }
    this.have = new Map(); // hex -> bytes, while a waiting value needs it
    this.requested = new Set(); // hex asked for on this connection, not answered yet
  }

  // A connection was lost: what was asked on it will not be answered; ask again on the next.
  resend() {
    this.requested.clear();
    this.request(this.needed());
  }

  needed() {
    const out = new Map();
    for (const { value } of this.waiting.values())
      for (const [h, bytes] of chunksOf(value, new Map())) if (!this.have.has(h)) out.set(h, bytes);
    return out;
  }

  request(wanted) {
    const ask = [...wanted].filter(([h]) => !this.requested.has(h));
    for (const [h] of ask) this.requested.add(h);
    if (ask.length) this.fetchBlobs(ask.map(([, bytes]) => bytes));
  }

  // A decoded value of `key` arrives: it is returned when it names no chunk (or all are here), else held.
  incoming(key, value) {
    this.drop(key);
    if (value === null) return null;
    const refs = chunksOf(value, new Map());
    if (!refs.size) return value;
    const need = new Set([...refs.keys()].filter((h) => !this.have.has(h)));
    if (!need.size) return joined(value, this.have) ?? null;
    this.waiting.set(key, { value, need });
    this.request([...refs].filter(([h]) => need.has(h)));
    return null;
  }

  drop(key) {
    if (!this.waiting.delete(key)) return;
    const still = new Set();
    for (const { value } of this.waiting.values()) for (const h of chunksOf(value, new Map()).keys()) still.add(h);
    for (const h of [...this.have.keys()]) if (!still.has(h)) this.have.delete(h);
  }

  // A blob_data: returns the [key, value] pairs now complete (in the order they arrived).
  arrived(hash, data) {
    const h = hex(hash);
    this.requested.delete(h);
    const ready = [];
    for (const [key, entry] of [...this.waiting]) {
      if (!entry.need.has(h)) continue;
      if (!(data instanceof Uint8Array)) {
        this.drop(key); // released: a later value replaced this one
        continue;
      }
      this.have.set(h, data);
      entry.need.delete(h);
      if (!entry.need.size) {
        const value = joined(entry.value, this.have);
        this.drop(key);
        if (value !== undefined) ready.push([key, value]);
      }
    }
    return ready;
  }
}
