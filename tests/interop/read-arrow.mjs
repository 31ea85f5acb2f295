// Reads an Arrow IPC file with the reference JavaScript implementation (apache-arrow) and prints it as one JSON
// object: the schema (name, type, nullable), the metadata, the record batch count and every row, with int64 values
// as decimal strings and binary values as base64.
//   node read-arrow.mjs FILE
import { readFileSync } from 'node:fs';
import { RecordBatchFileReader } from 'apache-arrow';

const reader = RecordBatchFileReader.from(readFileSync(process.argv[2]));
reader.open();
const schema = reader.schema;
const fields = schema.fields.map(f => ({ name: f.name, type: String(f.type), nullable: f.nullable }));
const toJson = value => {
  if (value === null || value === undefined) return null;
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  return value;
};
const rows = [];
let batches = 0;
for (const batch of reader) {
  batches++;
  const columns = schema.fields.map((_, i) => batch.getChildAt(i));
  for (let row = 0; row < batch.numRows; row++) {
    rows.push(columns.map(c => toJson(c.get(row))));
  }
}
console.log(JSON.stringify({ fields, metadata: Object.fromEntries(schema.metadata), batches, rows }));
