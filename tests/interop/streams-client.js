// grpc-js against a real Streams server, knowing only what a foreign client would: the repository's .proto files
// (loaded at run time by proto-loader, no generated code) and docs/wire-protocol.md (the event framing is
// implemented here from the doc). Usage: node streams-client.js <grpc port> <scenario> [args...]
// Every scenario prints one JSON object with what it observed and exits 0; the .NET test decides what is right.
// It exits non-zero only when the harness itself breaks (a call that should have worked failed, or a wait ran out).
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');
const { frameEvent, FrameParser, AppendCall } = require('./wire');

// Bounds on every wait: one call, one awaited reply, the whole scenario.
const CALL_MS = 10000;
const SCENARIO_MS = 30000;
// Read sizes cycled through so that reads end inside headers and bodies, not only at event boundaries.
const READ_SIZES = [7, 100, 1000, 65536];
const MAX_READS = 2000;

const contractsDir = path.join(__dirname, '..', '..', 'common', 'Streams.Common', 'Protos');
const testProtosDir = path.join(__dirname, '..', 'Protos');
const loadOptions = { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true };
const loaded = new Map();
const load = (dir, file) => {
  const at = path.join(dir, file);
  if (!loaded.has(at)) loaded.set(at, grpc.loadPackageDefinition(loader.loadSync(at, loadOptions)));
  return loaded.get(at);
};

const [port, scenario, ...args] = process.argv.slice(2);
const address = `127.0.0.1:${port}`;
const credentials = grpc.credentials.createInsecure();
// Exits once the line is written: stdout to a pipe is asynchronous, and exiting at once would cut it at 64 KiB.
const done = (result) => process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));

const controllerProto = () => load(contractsDir, 'controller.proto').streams.controller.v1;
const segmentStoreProto = () => load(contractsDir, 'segmentstore.proto').streams.segmentstore.v1;
const controller = () => new (controllerProto().Controller)(address, credentials);
// SegmentEndpoint.grpc_uri is "http://host:port"; grpc-js takes "host:port".
const segmentStore = (grpcUri) => new (segmentStoreProto().SegmentStore)(grpcUri.replace(/^https?:\/\//, ''), credentials);
const deadline = (ms = CALL_MS) => ({ deadline: new Date(Date.now() + ms) });

const unary = (client, method, request, ms = CALL_MS) => new Promise((resolve, reject) =>
  client[method](request, deadline(ms), (error, reply) => (error ? reject(error) : resolve(reply))));

/** The status of a call expected to fail: { code, details } (code 0 if it unexpectedly succeeded). */
const statusOf = async (promise) => {
  try {
    await promise;
    return { code: 0, details: '' };
  } catch (e) {
    return { code: e.code, details: e.details };
  }
};

/**
 * A call of any kind with raw bytes as its (only) request message, for malformed and oversized messages. Resolves once
 * the call ends successfully, rejects with its status otherwise.
 */
function rawCall(client, methodPath, kind, bytes) {
  const same = (b) => b;
  return new Promise((resolve, reject) => {
    const settle = (s) => (s.code === grpc.status.OK ? resolve() : reject(s));
    if (kind === 'unary') {
      client.makeUnaryRequest(methodPath, same, same, bytes, deadline(), (e) => (e ? reject(e) : resolve()));
      return;
    }
    let call;
    if (kind === 'serverStream') {
      call = client.makeServerStreamRequest(methodPath, same, same, bytes, new grpc.Metadata(), deadline());
    } else {
      call = kind === 'bidi'
        ? client.makeBidiStreamRequest(methodPath, same, same, new grpc.Metadata(), deadline())
        : client.makeClientStreamRequest(methodPath, same, same, new grpc.Metadata(), deadline(), () => {});
      call.write(bytes);
      call.end();
    }
    call.on('data', () => {});
    call.on('error', () => {});
    call.on('status', settle);
  });
}

const setupOf = (requestId) => (r) => r.kind === 'setup' && r.setup.requestId === String(requestId);
const answerOf = (requestId) => (r) => (r.kind === 'appended' && r.appended.requestId === String(requestId))
  || (r.kind === 'rejected' && r.rejected.requestId === String(requestId));
const rejected = (reply) => ({
  error: reply.kind === 'rejected' ? reply.rejected.error : `not rejected: ${reply.kind}`,
  message: reply.kind === 'rejected' ? reply.rejected.message : '',
  lastEventNumber: reply.kind === 'rejected' ? Number(reply.rejected.lastEventNumber) : null,
  segmentLength: reply.kind === 'rejected' ? Number(reply.rejected.segmentLength) : null,
});
const acked = (reply) => {
  if (reply.kind !== 'appended') throw new Error(`expected DataAppended, got ${JSON.stringify(reply)}`);
  return { lastEventNumber: Number(reply.appended.lastEventNumber), segmentLength: Number(reply.appended.segmentLength) };
};

/** Reads a segment from offset 0 to its length, in small reads, and parses the frames; then reads at the tail. */
async function readSegment(client, segment) {
  const parser = new FrameParser();
  let offset = 0;
  let reads = 0;
  let length = null;
  const problems = [];
  while (reads < MAX_READS && (length === null || offset < length)) {
    const maxBytes = READ_SIZES[reads % READ_SIZES.length];
    const reply = await unary(client, 'Read', { requestId: reads + 1, segment, offset, maxBytes, waitMillis: 0 });
    reads++;
    length = Number(reply.segmentLength);
    if ((reply.status === 'READ_STATUS_AT_TAIL' || reply.status === 'READ_STATUS_END_OF_SEGMENT') && offset === length) break;
    if (reply.status !== 'READ_STATUS_OK') { problems.push(`read at ${offset}: ${reply.status}`); break; }
    if (Number(reply.offset) !== offset) problems.push(`read at ${offset} answered offset ${reply.offset}`);
    if (reply.data.length === 0 || reply.data.length > maxBytes) problems.push(`read of ${maxBytes} at ${offset} returned ${reply.data.length} bytes`);
    parser.push(reply.data);
    offset += reply.data.length;
  }
  if (parser.pending.length) problems.push(`${parser.pending.length} bytes left after the last whole event`);

  const tail = await unary(client, 'Read', { requestId: 0, segment, offset, maxBytes: 100, waitMillis: 0 });
  const waitStarted = Date.now();
  const tailWait = await unary(client, 'Read', { requestId: 0, segment, offset, maxBytes: 100, waitMillis: 300 });
  return {
    events: parser.events, reads, endOffset: offset, problems,
    tailStatus: tail.status, tailWaitStatus: tailWait.status, tailWaitMs: Date.now() - waitStarted,
  };
}

// ---- KEDA's external scaler, asked what KEDA asks ----

/** The first message of a server stream; the call is cancelled once it arrives. */
const firstMessage = (call) => new Promise((resolve, reject) => {
  let settled = false;
  call.on('data', (message) => { if (!settled) { settled = true; resolve(message); call.cancel(); } });
  call.on('error', (e) => { if (!settled) { settled = true; reject(e); } });
});

/** A call's reply picked apart as pick says, with code 0; or its status. */
const outcome = async (promise, pick) => {
  try {
    return { code: 0, ...pick(await promise) };
  } catch (e) {
    return { code: e.code, details: e.details };
  }
};

/** Asks the scaler about a ScaledObject with these trigger metadata: IsActive, StreamIsActive, GetMetricSpec, GetMetrics. */
async function askScaler(metadata) {
  const scaler = new (load(contractsDir, 'externalscaler.proto').externalscaler.ExternalScaler)(address, credentials);
  // KEDA passes every metadata entry of the trigger, scalerAddress included.
  const ref = { name: 'readers', namespace: 'default', scalerMetadata: { scalerAddress: address, ...metadata } };
  const isActive = await outcome(unary(scaler, 'IsActive', ref), (r) => ({ result: r.result }));
  const streamIsActive = await outcome(firstMessage(scaler.StreamIsActive(ref, deadline())), (r) => ({ result: r.result }));
  const metricSpec = await outcome(unary(scaler, 'GetMetricSpec', ref), (r) => ({
    specs: r.metricSpecs.map((m) => ({ metricName: m.metricName, targetSize: Number(m.targetSize), targetSizeFloat: m.targetSizeFloat })),
  }));
  // KEDA asks for the metric by the name GetMetricSpec gave it (without the "s0-" prefix it adds).
  const metricName = metricSpec.code === 0 && metricSpec.specs.length ? metricSpec.specs[0].metricName : 'streams-segments';
  const metrics = await outcome(unary(scaler, 'GetMetrics', { scaledObjectRef: ref, metricName }), (r) => ({
    values: r.metricValues.map((v) => ({ metricName: v.metricName, metricValue: Number(v.metricValue), metricValueFloat: v.metricValueFloat })),
  }));
  return { isActive, streamIsActive, metricSpec, metrics };
}

const transactionsProto = () => load(contractsDir, 'transactions.proto').streams.controller.v1;

/** A routing key's point in [0, 1) (docs/routing-keys.md): XXH64 of its UTF-8 bytes, seed 0, top 53 bits. */
async function pointOf(key) {
  const { h64Raw } = await (await import('xxhash-wasm')).default();
  return Number(h64Raw(new TextEncoder().encode(key), 0n) >> 11n) / 2 ** 53;
}

/** Appends the events (each { key, payload }) to one segment in one block under a fresh writer id; returns the ack. */
async function appendBlock(segment, events) {
  const endpoint = await unary(controller(), 'GetSegmentEndpoint', { segment });
  const call = new AppendCall(segmentStore(endpoint.grpcUri));
  call.write({ setup: { requestId: 1, writerId: crypto.randomBytes(16), segment } });
  const setup = await call.take(setupOf(1), `setup of ${segment}`);
  const data = Buffer.concat(events.map((e) => frameEvent(Buffer.from(e.payload, 'utf8'), e.key)));
  call.write({ block: { requestId: 1, lastEventNumber: events.length - 1, eventCount: events.length, data } });
  const answer = await call.take(answerOf(1), `block to ${segment}`);
  await call.finish();
  return { setupSealed: setup.setup.sealed, ...(answer.kind === 'appended' ? acked(answer) : rejected(answer)) };
}

/** Every event of the stream's current segments, by reading each whole. */
async function readCurrentSegments(scope, stream) {
  const active = await unary(controller(), 'GetActiveSegments', { scope, stream });
  const events = [];
  for (const s of active.segments) {
    const endpoint = await unary(controller(), 'GetSegmentEndpoint', { segment: s.segment });
    const read = await readSegment(segmentStore(endpoint.grpcUri), s.segment);
    events.push(...read.events.map((e) => ({ segment: s.segment, key: e.key, payload: Buffer.from(e.payload, 'base64').toString('utf8') })));
  }
  return events;
}

const scenarios = {
  /**
   * args: scope stream count. A transactional writer from transactions.proto and the append protocol alone: begin,
   * route count events over 8 keys to their segments' transaction segments, check nothing is visible, commit, read
   * back; then a second transaction aborted, whose transaction segments are then gone.
   */
  async transaction() {
    const [scope, stream, count] = args;
    const txns = new (transactionsProto().Transactions)(address, credentials);
    const begun = await unary(txns, 'BeginTransaction', { scope, stream, leaseMs: 0 });
    const id = begun.transaction.transactionId;
    const bySegment = new Map();
    for (let i = 0; i < Number(count); i++) {
      const key = `key-${i % 8}`;
      const point = await pointOf(key);
      const segment = begun.segments.find((s) => point < s.keyEnd) || begun.segments[begun.segments.length - 1];
      if (!bySegment.has(segment.segment)) bySegment.set(segment.segment, { id: segment.segmentId, events: [] });
      bySegment.get(segment.segment).events.push({ key, payload: `js-${i}` });
    }
    const appends = [];
    for (const [segment, { events }] of bySegment) appends.push(await appendBlock(`${segment}#txn.${id}`, events));
    const visibleBefore = (await readCurrentSegments(scope, stream)).length;
    const committed = await unary(txns, 'CommitTransaction', {
      transaction: { scope, stream, transactionId: id }, segmentIds: [...bySegment.values()].map((v) => v.id), wait: true,
    }, 20000);
    const afterCommit = await readCurrentSegments(scope, stream);

    const second = await unary(txns, 'BeginTransaction', { scope, stream, leaseMs: 5000 });
    const secondId = second.transaction.transactionId;
    const secondSegment = `${second.segments[0].segment}#txn.${secondId}`;
    const secondAppend = await appendBlock(secondSegment, [{ key: 'key-x', payload: 'never visible' }]);
    const aborted = await unary(txns, 'AbortTransaction', { scope, stream, transactionId: secondId });
    const endpoint = await unary(controller(), 'GetSegmentEndpoint', { segment: secondSegment });
    const gone = await statusOf(unary(segmentStore(endpoint.grpcUri), 'GetSegmentInfo', { segment: secondSegment }));
    const commitAborted = await statusOf(unary(txns, 'CommitTransaction', { transaction: { scope, stream, transactionId: secondId }, segmentIds: [], wait: true }));
    done({
      ok: true, id, appends, visibleBefore, state: committed.state, committedSegments: committed.segmentIds.map(Number),
      afterCommit, secondAppend, abortedState: aborted.state, abortReason: aborted.abortReason, goneCode: gone.code, commitAborted,
      afterAbort: (await readCurrentSegments(scope, stream)).length,
    });
  },


  /** args: scope stream segmentCount. Creates both through the controller, twice each, then lists and describes. */
  async controller() {
    const [scope, stream, segmentCount] = args;
    const ctl = controller();
    const config = { scaling: { fixed: { segmentCount: Number(segmentCount) } } };
    const scopeCreated = await unary(ctl, 'CreateScope', { scope });
    const scopeAgain = await unary(ctl, 'CreateScope', { scope });
    const streamCreated = await unary(ctl, 'CreateStream', { scope, stream, config });
    const streamAgain = await unary(ctl, 'CreateStream', { scope, stream, config });
    const scopes = await unary(ctl, 'ListScopes', {});
    const streams = await unary(ctl, 'ListStreams', { scope });
    const info = await unary(ctl, 'DescribeStream', { scope, stream });
    const active = await unary(ctl, 'GetActiveSegments', { scope, stream });
    const endpoints = [];
    for (const s of active.segments) endpoints.push(await unary(ctl, 'GetSegmentEndpoint', { segment: s.segment }));
    const range = (s) => ({ segmentId: s.segmentId, segment: s.segment, keyStart: s.keyStart, keyEnd: s.keyEnd });
    done({
      ok: true,
      scopeCreated: scopeCreated.created, scopeCreatedAgain: scopeAgain.created,
      streamCreated: streamCreated.created, streamCreatedAgain: streamAgain.created,
      scopes: scopes.scopes, streams: streams.streams,
      info: {
        scope: info.scope, stream: info.stream, state: info.state, epoch: info.epoch,
        scaling: info.config.scaling.kind, segmentCount: info.config.scaling.fixed.segmentCount,
        hasRetention: info.config.retention !== null, createdAtUnixMs: Number(info.createdAtUnixMs),
        activeSegments: info.activeSegments.map(range),
      },
      active: { state: active.state, segments: active.segments.map(range) },
      endpoints: endpoints.map((e) => ({ segment: e.segment, host: e.host, dataPort: e.dataPort, grpcUri: e.grpcUri })),
    });
  },

  /**
   * args: scope stream eventsFile. The file is a JSON array of { key: string|null, payload: base64 }. The last event
   * is kept for a conditional append on the first segment; the others go, in blocks of 1 to 4 events, round-robin to
   * the stream's active segments, all over one Append call per segment store. Then a second call sets up again,
   * re-sends a block (deduplicated), appends conditionally, and every segment is read back with Read.
   */
  async appendRead() {
    const [scope, stream, eventsFile] = args;
    const events = JSON.parse(fs.readFileSync(eventsFile, 'utf8')).map((e) => ({ key: e.key, payload: Buffer.from(e.payload, 'base64') }));
    const ctl = controller();
    const active = await unary(ctl, 'GetActiveSegments', { scope, stream });
    const segments = [];
    for (const [i, s] of active.segments.entries()) {
      const endpoint = await unary(ctl, 'GetSegmentEndpoint', { segment: s.segment });
      segments.push({
        segment: s.segment, grpcUri: endpoint.grpcUri, requestId: i + 1,
        nextEventNumber: 0, length: 0, blocks: [], eventIndexes: [], acks: [],
      });
    }

    // Plan the blocks: sizes cycle 1, 3, 2, 4, 1; block k goes to segment k mod n.
    const sizes = [1, 3, 2, 4, 1];
    const last = events.length - 1;
    for (let first = 0, k = 0; first < last; k++) {
      const count = Math.min(sizes[k % sizes.length], last - first);
      const s = segments[k % segments.length];
      const indexes = [...Array(count).keys()].map((j) => first + j);
      const data = Buffer.concat(indexes.map((j) => frameEvent(events[j].payload, events[j].key)));
      s.nextEventNumber += count;
      s.length += data.length;
      s.blocks.push({ requestId: s.requestId, lastEventNumber: s.nextEventNumber - 1, eventCount: count, data, endOffset: s.length });
      s.eventIndexes.push(...indexes);
      first += count;
    }

    const writerId = crypto.randomBytes(16);
    const byUri = new Map();
    for (const s of segments) byUri.set(s.grpcUri, [...(byUri.get(s.grpcUri) || []), s]);
    const callStatuses = [];
    for (const [grpcUri, served] of byUri) {
      const call = new AppendCall(segmentStore(grpcUri));
      for (const s of served) call.write({ setup: { requestId: s.requestId, writerId, segment: s.segment } });
      for (const s of served) {
        const setup = await call.take(setupOf(s.requestId), `AppendSetup for ${s.segment}`);
        s.setupSegment = setup.setup.segment;
        s.setupLastEventNumber = Number(setup.setup.lastEventNumber);
      }
      // Pipelined: every block goes out before any acknowledgement is awaited.
      const order = [];
      for (let k = 0; served.some((s) => k < s.blocks.length); k++) {
        for (const s of served) if (k < s.blocks.length) order.push(s.blocks[k]);
      }
      for (const b of order) {
        call.write({ block: { requestId: b.requestId, lastEventNumber: b.lastEventNumber, eventCount: b.eventCount, data: b.data } });
      }
      // Acknowledgements are cumulative: wait until each segment's last block is covered (at most one reply per block).
      for (const s of served) {
        const lastNumber = s.blocks.length ? s.blocks[s.blocks.length - 1].lastEventNumber : -1;
        for (let n = 0; n < s.blocks.length && (s.acks.length === 0 || s.acks[s.acks.length - 1].lastEventNumber < lastNumber); n++) {
          const reply = await call.take(answerOf(s.requestId), `acknowledgement on ${s.segment}`);
          if (reply.kind === 'rejected') throw new Error(`block rejected on ${s.segment}: ${JSON.stringify(reply.rejected)}`);
          s.acks.push(acked(reply));
        }
      }
      callStatuses.push(await call.finish());
    }

    // A second call: set up again (learns the last durable event number), re-send the first and the last block (duplicates:
    // acknowledged, not appended), then the kept event conditionally, first at a wrong offset (refused), then at the right one.
    const first = segments[0];
    const again = new AppendCall(segmentStore(first.grpcUri));
    const requestId = 100;
    again.write({ setup: { requestId, writerId, segment: first.segment } });
    const resetup = await again.take(setupOf(requestId), 'second AppendSetup');
    const resend = async (b) => {
      again.write({ block: { requestId, lastEventNumber: b.lastEventNumber, eventCount: b.eventCount, data: b.data } });
      return acked(await again.take(answerOf(requestId), `acknowledgement of the re-sent block ${b.lastEventNumber}`));
    };
    const firstDuplicate = await resend(first.blocks[0]);
    const duplicate = await resend(first.blocks[first.blocks.length - 1]);
    const kept = frameEvent(events[last].payload, events[last].key);
    const conditional = { requestId, lastEventNumber: first.nextEventNumber, eventCount: 1, data: kept };
    again.write({ block: { ...conditional, expectedOffset: first.length + 1 } });
    const conditionFailed = rejected(await again.take(answerOf(requestId), 'conditional append at a wrong offset'));
    again.write({ block: { ...conditional, expectedOffset: first.length } });
    const conditionalAck = acked(await again.take(answerOf(requestId), 'conditional append'));
    const secondCallStatus = await again.finish();
    first.eventIndexes.push(last);
    first.blocks.push({ lastEventNumber: conditional.lastEventNumber, eventCount: 1, endOffset: first.length + kept.length });

    const results = [];
    for (const s of segments) {
      const client = segmentStore(s.grpcUri);
      const read = await readSegment(client, s.segment);
      const info = await unary(client, 'GetSegmentInfo', { requestId: 1, segment: s.segment });
      results.push({
        segment: s.segment, setupSegment: s.setupSegment, setupLastEventNumber: s.setupLastEventNumber, eventIndexes: s.eventIndexes,
        blocks: s.blocks.map((b) => ({ lastEventNumber: b.lastEventNumber, eventCount: b.eventCount })), acks: s.acks,
        read, info: { length: Number(info.length), startOffset: Number(info.startOffset), sealed: info.sealed },
      });
    }
    done({
      ok: true, writerId: writerId.toString('hex'), callStatuses, segments: results,
      second: {
        segment: first.segment, setupLastEventNumber: Number(resetup.setup.lastEventNumber),
        firstDuplicate, duplicate, conditionFailed, conditionalAck, status: secondCallStatus,
      },
    });
  },

  /** args: scope stream. Reads every active segment of a stream written by someone else (the .NET SDK). */
  async readStream() {
    const [scope, stream] = args;
    const ctl = controller();
    const active = await unary(ctl, 'GetActiveSegments', { scope, stream });
    const segments = [];
    for (const s of active.segments) {
      const endpoint = await unary(ctl, 'GetSegmentEndpoint', { segment: s.segment });
      segments.push({ segment: s.segment, read: await readSegment(segmentStore(endpoint.grpcUri), s.segment) });
    }
    done({ ok: true, segments });
  },

  /**
   * args: scope stream. Seals a stream someone else wrote, then looks at it as a reader, a writer and KEDA would: it
   * has no active segments, the segments DescribeStream names resolve and read to their ends, a setup on one is
   * answered and its block refused, and the scaler reports 0 segments and inactive.
   */
  async sealed() {
    const [scope, stream] = args;
    const ctl = controller();
    const sealedInfo = await unary(ctl, 'SealStream', { scope, stream });
    const active = await unary(ctl, 'GetActiveSegments', { scope, stream });
    const info = await unary(ctl, 'DescribeStream', { scope, stream });
    const segments = [];
    for (const s of info.activeSegments) {
      const endpoint = await unary(ctl, 'GetSegmentEndpoint', { segment: s.segment });
      const store = segmentStore(endpoint.grpcUri);
      const segmentInfo = await unary(store, 'GetSegmentInfo', { segment: s.segment });
      segments.push({ segment: s.segment, grpcUri: endpoint.grpcUri, sealed: segmentInfo.sealed, read: await readSegment(store, s.segment) });
    }

    const call = new AppendCall(segmentStore(segments[0].grpcUri));
    call.write({ setup: { requestId: 1, writerId: crypto.randomBytes(16), segment: segments[0].segment } });
    const setup = await call.take(setupOf(1), 'setup on a sealed segment');
    call.write({ block: { requestId: 1, lastEventNumber: 0, eventCount: 1, data: frameEvent(Buffer.from('too late'), null) } });
    const block = rejected(await call.take(answerOf(1), 'block to a sealed segment'));
    const appendCallStatus = await call.finish();

    done({
      ok: true, sealedState: sealedInfo.state, describedState: info.state,
      active: { state: active.state, segments: active.segments.map((r) => r.segment) },
      segments: segments.map(({ grpcUri, ...rest }) => rest),
      append: { setupLastEventNumber: Number(setup.setup.lastEventNumber), block, status: appendCallStatus },
      scaler: await askScaler({ scope, stream }),
    });
  },

  /**
   * args: scope stream (an existing stream). KEDA's four calls for a good trigger, and for triggers with an invalid
   * name, a missing stream, missing keys and a bad segmentsPerReplica.
   */
  async scaler() {
    const [scope, stream] = args;
    const triggers = {
      good: { scope, stream },
      twoPerReplica: { scope, stream, segmentsPerReplica: '2' },
      invalidScope: { scope: 'no spaces allowed', stream },
      invalidStream: { scope, stream: '-leading-dash' },
      missingStream: { scope, stream: 'no-such-stream' },
      missingScope: { scope: 'no-such-scope', stream },
      noStreamKey: { scope },
      zeroPerReplica: { scope, stream, segmentsPerReplica: '0' },
      nanPerReplica: { scope, stream, segmentsPerReplica: 'NaN' },
    };
    const answers = {};
    for (const [name, metadata] of Object.entries(triggers)) answers[name] = await askScaler(metadata);
    done({ ok: true, answers });
  },

  /** args: scope stream. The stream must exist with an empty segment 0. Every documented failure, one by one. */
  async errors() {
    const [scope, stream] = args;
    const ctl = controller();
    const segment = `${scope}/${stream}/0.#epoch.0`;
    const missing = `${scope}/${stream}/9.#epoch.0`;
    const fixed = (segmentCount) => ({ scaling: { fixed: { segmentCount } } });
    const endpoint = await unary(ctl, 'GetSegmentEndpoint', { segment });
    const store = segmentStore(endpoint.grpcUri);
    const statuses = {
      invalidScopeName: await statusOf(unary(ctl, 'CreateScope', { scope: 'no spaces allowed' })),
      invalidStreamName: await statusOf(unary(ctl, 'CreateStream', { scope, stream: 'no/slashes', config: fixed(1) })),
      zeroSegments: await statusOf(unary(ctl, 'CreateStream', { scope, stream: 'zero', config: fixed(0) })),
      streamInMissingScope: await statusOf(unary(ctl, 'CreateStream', { scope: 'no-such-scope', stream: 's', config: fixed(1) })),
      describeMissingStream: await statusOf(unary(ctl, 'DescribeStream', { scope, stream: 'no-such-stream' })),
      listStreamsOfMissingScope: await statusOf(unary(ctl, 'ListStreams', { scope: 'no-such-scope' })),
      endpointOfInvalidSegment: await statusOf(unary(ctl, 'GetSegmentEndpoint', { segment: 'not a segment' })),
      endpointOfMissingSegment: await statusOf(unary(ctl, 'GetSegmentEndpoint', { segment: missing })),
      endpointOfMissingEpoch: await statusOf(unary(ctl, 'GetSegmentEndpoint', { segment: `${scope}/${stream}/0.#epoch.1` })),
      endpointOfMissingStream: await statusOf(unary(ctl, 'GetSegmentEndpoint', { segment: `${scope}/no-such-stream/0.#epoch.0` })),
      deleteUnsealedStream: await statusOf(unary(ctl, 'DeleteStream', { scope, stream })),
      deleteNonEmptyScope: await statusOf(unary(ctl, 'DeleteScope', { scope })),
      readMissingSegment: await statusOf(unary(store, 'Read', { segment: missing, offset: 0, maxBytes: 100 })),
      readInvalidSegment: await statusOf(unary(store, 'Read', { segment: '../../etc/passwd', offset: 0, maxBytes: 100 })),
      readPastTheEnd: await statusOf(unary(store, 'Read', { segment, offset: String(2 ** 40), maxBytes: 100 })),
      readNegativeOffset: await statusOf(unary(store, 'Read', { segment, offset: -5, maxBytes: 100 })),
      infoOfMissingSegment: await statusOf(unary(store, 'GetSegmentInfo', { segment: missing })),
      createExistingSegment: await statusOf(unary(store, 'CreateSegment', { segment })),
      // Over the 16 MiB message limit.
      oversizedRequest: await statusOf(rawCall(ctl, '/streams.controller.v1.Controller/CreateScope', 'unary', Buffer.alloc(17 * 1024 * 1024))),
    };

    // Append rejections, all on one call; every request gets exactly one reply.
    const call = new AppendCall(store);
    const event = frameEvent(Buffer.from('x'), null);
    call.write({ block: { requestId: 1, lastEventNumber: 3, eventCount: 1, data: event } });
    call.write({ setup: { requestId: 2, writerId: Buffer.from('short'), segment } });
    call.write({ setup: { requestId: 3, writerId: crypto.randomBytes(16), segment: missing } });
    call.write({ setup: { requestId: 4, writerId: crypto.randomBytes(16), segment } });
    const append = {
      notSetUp: rejected(await call.take(answerOf(1), 'block never set up')),
      shortWriterId: rejected(await call.take(answerOf(2), 'setup with a short writer id')),
      missingSegment: rejected(await call.take(answerOf(3), 'setup of a missing segment')),
    };
    const setup = await call.take(setupOf(4), 'setup');
    const blocks = {
      halfAnEvent: { lastEventNumber: 0, eventCount: 1, data: Buffer.concat([event, frameEvent(Buffer.from('cut'), null).subarray(0, 5)]) },
      wrongEventCount: { lastEventNumber: 0, eventCount: 2, data: event },
      negativeEventNumber: { lastEventNumber: -1, eventCount: 1, data: event },
      emptyBlock: { lastEventNumber: 0, eventCount: 0, data: Buffer.alloc(0) },
      keyNotUtf8: { lastEventNumber: 1, eventCount: 2, data: Buffer.concat([event, frameEvent(Buffer.from('x'), Buffer.from([0x6b, 0xff, 0xfe]))]) },
      wrongExpectedOffset: { lastEventNumber: 0, eventCount: 1, data: event, expectedOffset: 12345 },
    };
    for (const [name, block] of Object.entries(blocks)) {
      call.write({ block: { requestId: 4, ...block } });
      append[name] = rejected(await call.take(answerOf(4), name));
    }
    const appendCallStatus = await call.finish();
    const info = await unary(store, 'GetSegmentInfo', { segment });
    done({ ok: true, statuses, append, setupLastEventNumber: Number(setup.setup.lastEventNumber), appendCallStatus, segmentLengthAfter: Number(info.length) });
  },

  /**
   * A message no protobuf parser accepts (a length-delimited field 1 that claims 5 bytes and has 1), sent to every rpc
   * of every service the server has a .proto for in this repository, and to server reflection.
   */
  async malformed() {
    const malformed = Buffer.from([0x0a, 0x05, 0x61]);
    const services = [
      controllerProto().Controller, segmentStoreProto().SegmentStore,
      load(contractsDir, 'externalscaler.proto').externalscaler.ExternalScaler,
      load(testProtosDir, 'health.proto').grpc.health.v1.Health,
    ];
    const methods = services.flatMap((service) => Object.values(service.service)
      .map((m) => ({ path: m.path, kind: m.requestStream ? (m.responseStream ? 'bidi' : 'clientStream') : (m.responseStream ? 'serverStream' : 'unary') })));
    for (const version of ['v1', 'v1alpha']) methods.push({ path: `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`, kind: 'bidi' });
    const client = new grpc.Client(address, credentials);
    const statuses = {};
    for (const m of methods) statuses[m.path] = await statusOf(rawCall(client, m.path, m.kind, malformed));
    done({ ok: true, statuses });
  },

  /** args: service names that must be served. Check each, an unknown name, and Watch. */
  async health() {
    const health = new (load(testProtosDir, 'health.proto').grpc.health.v1.Health)(address, credentials);
    const checks = {};
    for (const service of ['', ...args]) checks[service] = (await unary(health, 'Check', { service })).status;
    const unknown = await statusOf(unary(health, 'Check', { service: 'no.such.Service' }));
    // The statuses a Watch delivers until `until` (or the first one if until is null), within CALL_MS.
    const watch = (service, until) => new Promise((resolve) => {
      const statuses = [];
      const call = health.Watch({ service }, deadline());
      call.on('data', (r) => {
        statuses.push(r.status);
        if (until === null || r.status === until) { call.cancel(); resolve({ statuses }); }
      });
      call.on('error', (e) => resolve({ statuses, code: e.code, details: e.details }));
    });
    done({ ok: true, checks, unknown, watch: await watch('', 'SERVING'), watchUnknown: await watch('no.such.Service', null) });
  },

  /**
   * args: a scope that exists. Lists services through reflection (v1 and v1alpha), then calls Controller.ListScopes
   * with a client built only from the descriptor that reflection returned: no .proto of ours is loaded.
   */
  async reflection() {
    const { GrpcReflection } = require('grpc-js-reflection-client');
    const options = () => [new grpc.Metadata(), deadline()];
    const v1 = new GrpcReflection(address, credentials, {}, 'v1');
    const v1alpha = new GrpcReflection(address, credentials, {}, 'v1alpha');
    const services = await v1.listServices('*', ...options());
    const servicesV1alpha = await v1alpha.listServices('*', ...options());
    const descriptor = await v1.getDescriptorBySymbol('streams.controller.v1.Controller', ...options());
    const Controller = descriptor.getPackageObject(loadOptions).streams.controller.v1.Controller;
    const scopes = (await unary(new Controller(address, credentials), 'ListScopes', {})).scopes;
    const segmentStoreMethods = (await v1.listMethods('streams.segmentstore.v1.SegmentStore', ...options())).map((m) => m.name);
    const missingSymbol = await statusOf(v1.getDescriptorBySymbol('no.such.Symbol', ...options()));
    done({ ok: true, services, servicesV1alpha, scopes, segmentStoreMethods, missingSymbolFails: missingSymbol.code !== 0 });
  },
};

if (!scenarios[scenario]) { console.error(`unknown scenario ${scenario}`); process.exit(2); }
setTimeout(() => { console.error(`scenario ${scenario} timed out after ${SCENARIO_MS} ms`); process.exit(3); }, SCENARIO_MS).unref();
scenarios[scenario]().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  if (e && e.code !== undefined) console.error(`gRPC status ${e.code}: ${e.details}`);
  process.exit(1);
});
