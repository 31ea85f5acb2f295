// Prints XXH64 (seed 0) of each argument's UTF-8 bytes, from xxHash's reference C code compiled to WebAssembly.
import xxhash from 'xxhash-wasm';
const { h64Raw } = await xxhash();
for (const s of process.argv.slice(2)) console.log(h64Raw(new TextEncoder().encode(s), 0n).toString(16).padStart(16, '0'));
