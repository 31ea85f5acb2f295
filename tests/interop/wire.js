// The wire pieces a foreign client implements from docs/wire-protocol.md alone: event framing and the Append bidi
// stream, shared by the interop scenarios (streams-client.js).
'use strict';

// Bounds on every wait: one awaited reply, the whole call.
const REPLY_MS = 10000;
const SCENARIO_MS = 30000;
const deadline = (ms) => ({ deadline: new Date(Date.now() + ms) });

// ---- Event framing, from docs/wire-protocol.md ("Event framing") ----

const KEY_FLAG = 0x80000000;

/**
 * One event's frame: u32 BE header (bit 31 = key stored, bits 0..30 = body length), [u16 BE key length, key], payload.
 * The key is a string (stored as UTF-8) or, to send what no writer should, a Buffer of any bytes.
 */
function frameEvent(payload, key) {
  const keyBytes = key === null || key === undefined ? null : (Buffer.isBuffer(key) ? key : Buffer.from(key, 'utf8'));
  const keyPart = keyBytes ? 2 + keyBytes.length : 0;
  const bodyLength = keyPart + payload.length;
  const frame = Buffer.alloc(4 + bodyLength);
  frame.writeUInt32BE((bodyLength | (keyBytes ? KEY_FLAG : 0)) >>> 0, 0);
  if (keyBytes) {
    frame.writeUInt16BE(keyBytes.length, 4);
    keyBytes.copy(frame, 6);
  }
  payload.copy(frame, 4 + keyPart);
  return frame;
}

/** Parses frames off bytes read from a segment; keeps an incomplete last frame for the next call. */
class FrameParser {
  constructor() { this.pending = Buffer.alloc(0); this.events = []; }

  push(bytes) {
    let buffer = this.pending.length ? Buffer.concat([this.pending, bytes]) : bytes;
    while (buffer.length >= 4) {
      const header = buffer.readUInt32BE(0);
      const hasKey = (header & KEY_FLAG) !== 0;
      const bodyLength = header & 0x7fffffff;
      if (buffer.length < 4 + bodyLength) break;
      const body = buffer.subarray(4, 4 + bodyLength);
      let key = null;
      let payload = body;
      if (hasKey) {
        const keyLength = body.readUInt16BE(0);
        key = body.subarray(2, 2 + keyLength).toString('utf8');
        payload = body.subarray(2 + keyLength);
      }
      this.events.push({ key, payload: Buffer.from(payload).toString('base64') });
      buffer = buffer.subarray(4 + bodyLength);
    }
    this.pending = Buffer.from(buffer);
  }
}

// ---- The Append bidi stream ----

/** One Append call: write requests, take replies (bounded waits). */
class AppendCall {
  constructor(client) {
    this.replies = [];
    this.error = null;
    this.status = null;
    this.wake = () => {};
    this.call = client.Append(deadline(SCENARIO_MS));
    this.call.on('data', (reply) => { this.replies.push(reply); this.wake(); });
    this.call.on('error', (e) => { this.error = e; this.wake(); });
    this.call.on('status', (s) => { this.status = s; this.wake(); });
  }

  write(request) { this.call.write(request); }

  /** Removes and returns the first reply that matches; throws if none comes within REPLY_MS. */
  async take(match, what) {
    const until = Date.now() + REPLY_MS;
    for (;;) {
      const index = this.replies.findIndex(match);
      if (index >= 0) return this.replies.splice(index, 1)[0];
      if (this.error) throw new Error(`${what}: the Append call failed with ${this.error.code}: ${this.error.details}`);
      const left = until - Date.now();
      if (left <= 0) throw new Error(`${what}: no reply within ${REPLY_MS} ms`);
      await new Promise((resolve) => { this.wake = resolve; setTimeout(resolve, left); });
    }
  }

  /** Ends the request stream and waits for the call's status. */
  async finish() {
    this.call.end();
    const until = Date.now() + REPLY_MS;
    while (!this.status && Date.now() < until) {
      await new Promise((resolve) => { this.wake = resolve; setTimeout(resolve, until - Date.now()); });
    }
    if (!this.status) throw new Error(`the Append call did not end within ${REPLY_MS} ms`);
    return { code: this.status.code, details: this.status.details };
  }
}

module.exports = { KEY_FLAG, frameEvent, FrameParser, AppendCall };
