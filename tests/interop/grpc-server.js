// grpc-js serving the Echo test service, for our client to call. Usage: node grpc-server.js <port>
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const definition = loader.loadSync(path.join(__dirname, '..', 'Protos', 'interop.proto'), { keepCase: false, longs: String, defaults: true });
const Echo = grpc.loadPackageDefinition(definition).streams.interop.v1.Echo;

const server = new grpc.Server();
server.addService(Echo.service, {
  Unary: (call, callback) => callback(null, { text: call.request.text, payload: call.request.payload }),
  ServerStream: (call) => {
    for (let i = 0; i < call.request.count; i++) call.write({ text: call.request.text, index: i });
    call.end();
  },
  Bidi: (call) => {
    let index = 0;
    call.on('data', (r) => call.write({ text: r.text, index: index++, payload: r.payload }));
    call.on('end', () => call.end());
  },
  Fail: (call, callback) => callback({ code: call.request.code, details: call.request.text }),
  Sleep: (call, callback) => {
    const timer = setTimeout(() => callback(null, { text: call.request.text }), call.request.delayMs);
    call.on('cancelled', () => clearTimeout(timer));
  },
});

server.bindAsync(`127.0.0.1:${process.argv[2]}`, grpc.ServerCredentials.createInsecure(), (error) => {
  if (error) { console.error(error.message); process.exit(1); }
  console.log('listening');
});
