// grpc-js calling a server under test. Usage: node grpc-client.js <port> <scenario> [args...]
// Prints one JSON object with what it observed; exits 0 unless the harness itself breaks.
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const protoDir = path.join(__dirname, '..', 'Protos');
const contractsDir = path.join(__dirname, '..', '..', 'common', 'Streams.Common', 'Protos');
const load = (file, dir) => grpc.loadPackageDefinition(loader.loadSync(path.join(dir, file), { keepCase: false, longs: String, enums: String, defaults: true }));

const [port, scenario, ...args] = process.argv.slice(2);
const address = `127.0.0.1:${port}`;
const credentials = grpc.credentials.createInsecure();
const done = (result) => { console.log(JSON.stringify(result)); process.exit(0); };
const failed = (error) => done({ ok: false, code: error.code, details: error.details });

const echo = () => new (load('interop.proto', protoDir).streams.interop.v1.Echo)(address, credentials);

const scenarios = {
  unary() {
    echo().Unary({ text: 'hello from grpc-js', payload: Buffer.from([1, 2, 3]) }, (e, r) =>
      e ? failed(e) : done({ ok: true, text: r.text, payload: [...r.payload] }));
  },
  serverStream() {
    const indexes = [];
    const call = echo().ServerStream({ text: 's', count: 100 });
    call.on('data', (r) => indexes.push(r.index));
    call.on('error', failed);
    call.on('status', (s) => { if (s.code === 0) done({ ok: true, indexes }); });
  },
  bidi() {
    const call = echo().Bidi();
    const texts = [];
    call.on('data', (r) => texts.push(r.text));
    call.on('error', failed);
    call.on('status', (s) => { if (s.code === 0) done({ ok: true, texts }); });
    for (let i = 0; i < 5; i++) call.write({ text: `m${i}` });
    call.end();
  },
  fail() {
    echo().Fail({ code: 9, text: 'stream is sealed ✓ 100%' }, (e) => done({ ok: !e, code: e && e.code, details: e && e.details }));
  },
  deadline() {
    const started = Date.now();
    echo().Sleep({ delayMs: 10000 }, { deadline: new Date(Date.now() + 1000) }, (e) =>
      done({ ok: !e, code: e && e.code, elapsedMs: Date.now() - started }));
  },
  health() {
    const Health = load('health.proto', protoDir).grpc.health.v1.Health;
    new Health(address, credentials).Check({ service: '' }, (e, r) => e ? failed(e) : done({ ok: true, status: r.status }));
  },
  keda() {
    // KEDA's calls, as KEDA makes them, against the controller: args = scope stream
    const Scaler = load('externalscaler.proto', contractsDir).externalscaler.ExternalScaler;
    const scaler = new Scaler(address, credentials);
    const ref = { name: 'readers', namespace: 'default', scalerMetadata: { scope: args[0], stream: args[1] } };
    scaler.IsActive(ref, (e1, active) => {
      if (e1) return failed(e1);
      scaler.GetMetricSpec(ref, (e2, spec) => {
        if (e2) return failed(e2);
        const metricName = spec.metricSpecs[0].metricName;
        scaler.GetMetrics({ scaledObjectRef: ref, metricName }, (e3, metrics) => {
          if (e3) return failed(e3);
          done({
            ok: true, active: active.result, metricName, targetSize: Number(spec.metricSpecs[0].targetSize),
            value: Number(metrics.metricValues[0].metricValue), valueFloat: metrics.metricValues[0].metricValueFloat,
          });
        });
      });
    });
  },
  kedaMissing() {
    const Scaler = load('externalscaler.proto', contractsDir).externalscaler.ExternalScaler;
    new Scaler(address, credentials).IsActive({ name: 'r', namespace: 'd', scalerMetadata: { scope: 'nope' } }, (e) =>
      done({ ok: !e, code: e && e.code, details: e && e.details }));
  },
};

if (!scenarios[scenario]) { console.error(`unknown scenario ${scenario}`); process.exit(2); }
scenarios[scenario]();
setTimeout(() => { console.error('scenario timed out'); process.exit(3); }, 20000).unref();
