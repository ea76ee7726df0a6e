#!/usr/bin/env node
// Regenerate router/persisted-documents.json from router/operations/*.graphql.
//
// Each .graphql file is one document (one operation plus any fragments it
// uses). The document is normalised with graphql-js `print(parse(text))`, so
// whitespace/comment edits do not change its hash, and stored under the
// lower-case hex SHA-256 of that normalised text — the same hash Apollo-style
// APQ clients send in extensions.persistedQuery.sha256Hash, and the value to
// send as `documentId`.
//
//   node router/persist.mjs           # write the manifest
//   node router/persist.mjs --check   # exit 1 if the manifest is stale
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kind, parse, print } from 'graphql';

const routerDir = dirname(fileURLToPath(import.meta.url));
const opsDir = join(routerDir, 'operations');
const manifestPath = join(routerDir, 'persisted-documents.json');
const check = process.argv.includes('--check');

const manifest = {};
const names = new Map();
for (const file of readdirSync(opsDir).filter((f) => f.endsWith('.graphql')).sort()) {
  const text = readFileSync(join(opsDir, file), 'utf8');
  let doc;
  try {
    doc = parse(text);
  } catch (e) {
    console.error(`persist: ${file}: ${e.message}`);
    process.exit(1);
  }
  const ops = doc.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
  if (ops.length !== 1 || !ops[0].name) {
    console.error(`persist: ${file}: must contain exactly one named operation`);
    process.exit(1);
  }
  const opName = ops[0].name.value;
  if (names.has(opName)) {
    console.error(`persist: operation name ${opName} used in both ${names.get(opName)} and ${file}`);
    process.exit(1);
  }
  names.set(opName, file);
  const normalized = print(doc);
  const hash = createHash('sha256').update(normalized).digest('hex');
  manifest[hash] = normalized;
  console.log(`${hash}  ${opName}  (${file})`);
}

const out = JSON.stringify(manifest, null, 2) + '\n';
if (check) {
  const current = existsSync(manifestPath) ? readFileSync(manifestPath, 'utf8') : '';
  if (current !== out) {
    console.error('persist: router/persisted-documents.json is stale; run `node router/persist.mjs` and commit it');
    process.exit(1);
  }
  console.log('persist: manifest up to date');
} else {
  writeFileSync(manifestPath, out);
  console.log(`persist: wrote ${Object.keys(manifest).length} document(s) to persisted-documents.json`);
}
