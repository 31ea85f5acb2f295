// Validates rendered Kubernetes objects against Kubernetes' schemas, twice:
//  1. the OpenAPI schemas compiled into the kubernetes-models packages (Kubernetes' own types, and the CRDs of KEDA
//     and the Prometheus Operator): types, enums, required fields, formats;
//  2. the same packages' TypeScript declarations, by type-checking each object as an object literal of its kind:
//     TypeScript's excess-property check rejects any field the schema does not name (a typo such as
//     "livenesProbe", which the OpenAPI schemas let through as the API server's non-strict mode would).
// Usage: node validate.mjs MANIFESTS.json INTEROP-DIR  (INTEROP-DIR holds the node_modules of tests/interop)
// Prints one JSON line {"objects": N, "kinds": {...}, "errors": [...]}; exits 1 if any object is invalid or has no
// schema here, 2 if the packages cannot be loaded.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [manifestsPath, interopDir] = process.argv.slice(2);
if (!manifestsPath || !interopDir) {
  console.error("usage: node validate.mjs MANIFESTS.json INTEROP-DIR");
  process.exit(2);
}

const modules = join(resolve(interopDir), "node_modules");
const packages = ["kubernetes-models", "@kubernetes-models/keda", "@kubernetes-models/prometheus-operator"];
for (const name of [...packages, "typescript"]) {
  if (!existsSync(join(modules, name, "package.json"))) {
    console.error(`${name} is not installed in ${modules}: run npm ci --prefix ${interopDir} (tools/test.sh does)`);
    process.exit(2);
  }
}

// apiVersion "v1" is the core group's folder "v1"; "apps/v1" is "apps/v1"; a CRD's "keda.sh/v1alpha1" likewise.
function modelFile(apiVersion, kind) {
  for (const name of packages) {
    const file = join(modules, name, apiVersion, `${kind}.js`);
    if (existsSync(file)) {
      return file;
    }
  }
  return null;
}

const documents = JSON.parse(readFileSync(manifestsPath, "utf8"));
const errors = [];
const kinds = {};
const typed = [];
for (const [index, { source, object }] of documents.entries()) {
  const where = `${source}: ${object.kind} ${object.metadata?.name ?? "(no name)"}`;
  kinds[object.kind] = (kinds[object.kind] ?? 0) + 1;
  const file = modelFile(object.apiVersion, object.kind);
  if (file === null) {
    errors.push(`${where}: no schema for ${object.apiVersion} ${object.kind}`);
    continue;
  }
  const exports = await import(pathToFileURL(file).href);
  const Model = exports[object.kind];
  try {
    new Model(object).validate();
  } catch (e) {
    errors.push(`${where}: ${e.message}`);
  }
  typed.push({ index, where, file, kind: object.kind, object });
}

// The type check: one file, one typed constant per object.
const ts = (await import(pathToFileURL(join(modules, "typescript", "lib", "typescript.js")).href)).default;
const dir = mkdtempSync(join(tmpdir(), "chart-types-"));
try {
  const lines = [];
  for (const { index, file, kind } of typed) {
    lines.push(`import type { I${kind} as T${index} } from ${JSON.stringify(file)};`);
  }
  for (const { index, object } of typed) {
    lines.push(`export const o${index}: T${index} = ${JSON.stringify(object, null, 2)};`);
  }
  const input = join(dir, "objects.ts");
  writeFileSync(input, lines.join("\n") + "\n");
  const program = ts.createProgram([input], {
    noEmit: true,
    strict: true,
    skipLibCheck: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    types: [],
  });
  const text = readFileSync(input, "utf8");
  for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n");
    if (diagnostic.file && diagnostic.file.fileName === input.replaceAll("\\", "/")) {
      // Name the object and the field: the constant the error falls in, and the line's text.
      const position = diagnostic.start ?? 0;
      const before = text.slice(0, position);
      const constant = before.lastIndexOf("export const o");
      const index = constant < 0 ? NaN : Number(before.slice(constant + "export const o".length).match(/^\d+/)?.[0]);
      const entry = typed.find((t) => t.index === index);
      const line = text.slice(before.lastIndexOf("\n") + 1, text.indexOf("\n", position)).trim();
      errors.push(`${entry?.where ?? "type check"}: ${message} (at ${line})`);
    } else {
      errors.push(`type check: ${message}`);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

console.log(JSON.stringify({ objects: documents.length, kinds, errors }));
process.exit(errors.length === 0 ? 0 : 1);
