// A reader-group reader in grpc-js, written from docs/wire-protocol.md ("Reading in a reader group") and the .proto
// files alone (loaded at run time, no generated code): it joins a group over the unary ReaderExchange, reads the
// segments the controller assigns over SegmentStore.Read, commits what it read, completes sealed segments, releases
// revoked ones, and stops at EndOfGroup. Usage: node group-reader.js <grpc port> <scope> <group> <reader id> <max ms> [lines]
// Prints one JSON object: { ended, events: [{ segment, offset, key, payload, t }], sessions, assigned, revoked, fenced, checkpoints }.
// With "lines", each event is also printed at once on a line of its own ({ "event": ... }), written synchronously
// before it is committed, so a test that SIGKILLs the reader knows every event it processed.
// Exits non-zero only when the harness breaks (a call fails, or max ms pass before EndOfGroup).
'use strict';
const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const CALL_MS = 10000;
const READ_BYTES = 65536;
const IDLE_MS = 50;
const KEY_FLAG = 0x80000000;

const contractsDir = path.join(__dirname, '..', '..', 'common', 'Streams.Common', 'Protos');
const loadOptions = { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true };
const proto = (file) => grpc.loadPackageDefinition(loader.loadSync(path.join(contractsDir, file), loadOptions));

const [port, scope, group, readerId, maxMsText, mode] = process.argv.slice(2);
const lines = mode === 'lines';
const address = `127.0.0.1:${port}`;
const credentials = grpc.credentials.createInsecure();
const until = Date.now() + Number(maxMsText);
const controllerV1 = proto('readergroups.proto').streams.controller.v1;
const groups = new controllerV1.ReaderGroups(address, credentials);
const controller = new controllerV1.Controller(address, credentials);
const SegmentStore = proto('segmentstore.proto').streams.segmentstore.v1.SegmentStore;
const stores = new Map();

const unary = (client, method, request) => new Promise((resolve, reject) =>
  client[method](request, { deadline: new Date(Date.now() + CALL_MS) }, (error, reply) => (error ? reject(error) : resolve(reply))));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The segment store serving a segment (SegmentEndpoint.grpc_uri is "http://host:port"; grpc-js takes "host:port"). */
async function storeFor(segment) {
  const endpoint = await unary(controller, 'GetSegmentEndpoint', { segment });
  const target = endpoint.grpcUri.replace(/^https?:\/\//, '');
  if (!stores.has(target)) stores.set(target, new SegmentStore(target, credentials));
  return stores.get(target);
}

/** Whole events at the front of bytes read at offset: [{ offset, key, payload }] and how many bytes they took. */
function parse(bytes, offset) {
  const events = [];
  let at = 0;
  while (bytes.length - at >= 4) {
    const header = bytes.readUInt32BE(at);
    const bodyLength = header & 0x7fffffff;
    if (bytes.length - at < 4 + bodyLength) break;
    const body = bytes.subarray(at + 4, at + 4 + bodyLength);
    let key = null;
    let payload = body;
    if ((header & KEY_FLAG) !== 0) {
      const keyLength = body.readUInt16BE(0);
      key = body.subarray(2, 2 + keyLength).toString('utf8');
      payload = body.subarray(2 + keyLength);
    }
    events.push({ offset: offset + at, key, payload: payload.toString('utf8') });
    at += 4 + bodyLength;
  }
  return { events, consumed: at };
}

async function main() {
  const result = { ended: false, events: [], sessions: 0, assigned: [], revoked: [], fenced: [], checkpoints: [] };
  let session = '0';
  let outbox = [{ join: { scope, group, readerId } }];
  // segment id -> { segment, ownerEpoch, offset, end, pending: Buffer }
  const owned = new Map();
  const position = (s) => ({ segmentId: s.id, segment: s.segment, offset: String(s.offset) });

  while (!result.ended) {
    if (Date.now() > until) throw new Error(`no EndOfGroup within ${maxMsText} ms`);
    const reply = await unary(groups, 'ReaderExchange', { scope, group, readerId, messages: outbox });
    outbox = [];
    for (const message of reply.messages) {
      switch (message.kind) {
        case 'joined':
          session = message.joined.sessionEpoch;
          result.sessions++;
          break;
        case 'assign': {
          const a = message.assign;
          // A repeat of an Assign already held (same owner epoch) changes nothing.
          if (owned.has(a.segmentId) && owned.get(a.segmentId).ownerEpoch === a.ownerEpoch) break;
          owned.set(a.segmentId, { id: a.segmentId, segment: a.segment, ownerEpoch: a.ownerEpoch, offset: Number(a.startOffset), end: Number(a.endOffset), pending: Buffer.alloc(0) });
          result.assigned.push(a.segment);
          break;
        }
        case 'revoke': {
          const s = owned.get(message.revoke.segmentId);
          if (s) {
            // Everything read was processed (printed) already: release at the committed position.
            outbox.push({ release: { sessionEpoch: session, ownerEpoch: s.ownerEpoch, position: position(s) } });
            owned.delete(s.id);
            result.revoked.push(s.segment);
          }
          break;
        }
        case 'fenced':
          result.fenced.push(message.fenced.segmentId);
          if (message.fenced.segmentId === '0') {
            owned.clear();
            outbox = [{ join: { scope, group, readerId } }];
          } else {
            owned.delete(message.fenced.segmentId);
          }
          break;
        case 'checkpoint':
          // Everything read was processed (printed): the commits are the positions of every segment held.
          outbox.push({ checkpointAck: { sessionEpoch: session, name: message.checkpoint.name, positions: [...owned.values()].map(position) } });
          result.checkpoints.push(message.checkpoint.name);
          break;
        case 'endOfGroup':
          result.ended = true;
          break;
        default:
          break;
      }
    }

    if (result.ended) break;
    // Every exchange mentions each segment held: the controller repeats an Assign a reader does not mention.
    outbox.push({ heartbeat: { sessionEpoch: session, readPositions: [...owned.values()].map(position) } });
    let readAny = false;
    for (const s of [...owned.values()]) {
      const store = await storeFor(s.segment);
      const maxBytes = s.end >= 0 ? Math.min(READ_BYTES, s.end - s.offset - s.pending.length) : READ_BYTES;
      const read = await unary(store, 'Read', { requestId: 1, segment: s.segment, offset: String(s.offset + s.pending.length), maxBytes, waitMillis: 0 });
      if (read.status === 'READ_STATUS_OK' && read.data.length > 0) {
        readAny = true;
        const bytes = s.pending.length ? Buffer.concat([s.pending, read.data]) : read.data;
        const { events, consumed } = parse(bytes, s.offset);
        for (const e of events) {
          // t: when it was processed, in ms since the epoch with sub-ms precision (one clock for every process here).
          const event = { segment: s.segment, ...e, t: performance.timeOrigin + performance.now() };
          if (lines) fs.writeSync(1, `${JSON.stringify({ event })}\n`);
          result.events.push(event);
        }
        s.pending = Buffer.from(bytes.subarray(consumed));
        s.offset += consumed;
        outbox.push({ commit: { sessionEpoch: session, ownerEpoch: s.ownerEpoch, position: position(s) } });
      }
      const atEnd = (s.end >= 0 && s.offset >= s.end) || (read.status === 'READ_STATUS_END_OF_SEGMENT' && s.pending.length === 0);
      if (atEnd) {
        outbox.push({ completed: { sessionEpoch: session, ownerEpoch: s.ownerEpoch, position: position(s) } });
        owned.delete(s.id);
      } else if (read.status === 'READ_STATUS_TRUNCATED') {
        s.offset = Number(read.startOffset);
        s.pending = Buffer.alloc(0);
      }
    }

    if (!readAny) await sleep(IDLE_MS);
  }

  // Leave, so the group does not wait out this session.
  await unary(groups, 'ReaderExchange', { scope, group, readerId, messages: [{ leave: { sessionEpoch: session } }] });
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
}

main().catch((e) => {
  process.stderr.write(`group-reader: ${e.stack || e}\n`);
  process.exit(2);
});
