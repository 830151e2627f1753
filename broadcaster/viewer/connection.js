// The viewer's connection: the wire protocol (docs/protocol.md) over the HTTP port's WebSocket, one frame
// body per binary message. It says hello with the share token, joins the room read-only, answers pings,
// and keeps the room's key -> value map; it reconnects (resuming from its last seq) unless the server
// refused the link.

import { decode, encode } from "@msgpack/msgpack";

const MAX_BLOB_GET = 64; // hashes in one blob_get (docs/protocol.md, "Limits")
const FATAL_FOR_GOOD = new Set(["auth_failed", "forbidden", "version_mismatch", "kicked", "no_such_room"]);

function randomSession() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class RoomConnection {
  constructor(callbacks) {
    // url, room, token; onStatus, onReset, onJoined, onItems, onBlob, onClients, onClient, onClientLeft
    Object.assign(this, callbacks);
    this.session = randomSession();
    this.seq = null; // the last seq applied; a reconnect resumes after it
    this.stopped = false;
    this.retry = 0.25;
    this.inSnapshot = false;
    this.blobsAsked = 0;
  }

  start() {
    this.connections = (this.connections || 0) + 1;
    this.onStatus("connecting", "connecting...");
    const ws = new WebSocket(this.url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      this.send({
        type: "hello",
        protocol: 1,
        client_name: "viewer",
        client_kind: "viewer",
        client_version: "",
        session: this.session,
        token: this.token,
      });
      const join = { type: "join_room", room: this.room, ref: 1 };
      if (this.seq !== null) join.since = this.seq;
      this.send(join);
    };
    ws.onmessage = (message) => {
      if (!(message.data instanceof ArrayBuffer)) return;
      let body;
      try {
        body = decode(new Uint8Array(message.data));
      } catch {
        return;
      }
      this.handle(body);
    };
    ws.onclose = () => {
      this.stopPinging();
      if (this.stopped) return;
      this.onStatus("connecting", "connection lost: reconnecting...");
      // Every page loses its connection when the server restarts: a random share of the wait keeps
      // them from coming back, and then pinging, all at once.
      setTimeout(() => this.start(), this.retry * 1000 * (0.5 + Math.random() / 2));
      this.retry = Math.min(this.retry * 2, 4);
    };
  }

  send(body) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(encode(body));
      this.lastSent = performance.now();
    }
  }

  // Chunks of values (chunks.js): a viewer may fetch the blobs its room references, 64 per request.
  getBlobs(hashes) {
    this.blobsAsked += hashes.length;
    for (let i = 0; i < hashes.length; i += MAX_BLOB_GET)
      this.send({ type: "blob_get", hashes: hashes.slice(i, i + MAX_BLOB_GET) });
  }

  // The server closes a client it hears nothing from for its heartbeat timeout, and a viewer has
  // nothing else to say: ping whenever nothing was sent for a heartbeat interval. The checks start at a
  // random point of their period: pages that connected together would otherwise ping in step, the
  // server taking hundreds of pings in one burst every interval.
  keepAlive(interval) {
    this.stopPinging();
    const period = Math.max((interval * 1000) / 2, 50);
    const check = () => {
      if (performance.now() - (this.lastSent || 0) >= interval * 1000 * 0.9)
        this.send({ type: "ping", nonce: (this.nonce = (this.nonce || 0) + 1) });
    };
    this.pingStart = setTimeout(() => {
      check();
      this.pinger = setInterval(check, period);
    }, Math.random() * period);
  }

  stopPinging() {
    clearTimeout(this.pingStart);
    clearInterval(this.pinger);
  }

  handle(body) {
    switch (body.type) {
      case "welcome":
        this.keepAlive(typeof body.heartbeat_interval === "number" && body.heartbeat_interval > 0 ? body.heartbeat_interval : 5);
        break;
      case "ping":
        this.send({ type: "pong", nonce: body.nonce });
        break;
      case "joined":
        this.retry = 0.25;
        if (body.mode === "snapshot") {
          this.inSnapshot = true;
          this.onReset(); // a snapshot replaces whatever we had
        }
        this.seq = body.seq;
        this.onClients(body.clients || []);
        this.onJoined(); // chunks asked for on a lost connection are asked again
        this.onStatus(body.mode === "snapshot" ? "loading" : "connected", body.mode === "snapshot" ? "loading the room..." : "live");
        break;
      case "snapshot":
        this.onItems(body.items.map(([key, value]) => [key, value]));
        break;
      case "snapshot_end":
        this.inSnapshot = false;
        this.seq = body.seq;
        this.onStatus("connected", "live");
        break;
      case "applied":
        this.seq = body.seq;
        this.onItems(body.ops.map((op) => (op[0] === "set" ? [op[1], op[2]] : [op[1], null])));
        break;
      case "blob_data":
        this.onBlob(body.hash, body.data ?? null);
        break;
      case "client_joined":
        this.onClient(body.client.id, body.client, true);
        break;
      case "client_updated":
        this.onClient(body.client_id, body.state, false);
        break;
      case "client_left":
        this.onClientLeft(body.client_id);
        break;
      case "room_deleted":
        this.stop("error", "the room was deleted");
        break;
      case "error":
        if (body.fatal || FATAL_FOR_GOOD.has(body.code)) {
          if (FATAL_FOR_GOOD.has(body.code)) {
            const expired = body.code === "auth_failed";
            this.stop(
              expired ? "expired" : "error",
              expired ? "This link has expired or was revoked." : `The server refused: ${body.message}`,
            );
          }
        }
        break;
    }
  }

  stop(state, text) {
    this.stopped = true;
    this.stopPinging();
    this.onStatus(state, text);
    if (this.ws) this.ws.close();
  }
}
