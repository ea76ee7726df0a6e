#!/usr/bin/env node
// Regenerate the persisted-document manifests from router/operations/.
//
//   router/operations/*.graphql          first-party apps -> router/persisted-documents.json
//                                        ({ "<sha256>": "<document>" }; any client may run these by id)
//   router/operations/<app>/*.graphql    one partner app's allowlist -> router/persisted/<app>.json, in Apollo's
//   router/operations/<app>/*.json       persisted-query manifest format; a manifest a partner's tooling
//                                        produced (e.g. @apollo/generate-persisted-query-manifest) can be
//                                        dropped in the folder as is and is merged
//
// An API key with persistedOnly runs only the documents of the app named like the key (createApiKey's
// `name`). Each .graphql file is one document (one named operation plus the fragments it uses), normalised
// with graphql-js `print(parse(text))`, so whitespace/comment edits do not change its id: the lower-case hex
// SHA-256 of the normalised text, which clients send as `documentId` (or extensions.persistedQuery.sha256Hash).
//
//   node router/persist.mjs           # write the manifests
//   node router/persist.mjs --check   # exit 1 if a manifest is stale
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kind, parse, print } from 'graphql';

const routerDir = dirname(fileURLToPath(import.meta.url));
const opsDir = join(routerDir, 'operations');
const firstPartyPath = join(routerDir, 'persisted-documents.json');
const appsDir = join(routerDir, 'persisted');
const check = process.argv.includes('--check');
const appName = /^[a-z0-9][a-z0-9-]{1,62}$/;

function fail(message) {
  console.error(`persist: ${message}`);
  process.exit(1);
}

function sha256(text) {
  return createHash('sha256').update(text).digest('hex');
}

// [{ id, body, name, type }] of the .graphql files of `dir`.
function graphqlDocuments(dir, label) {
  const docs = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.graphql')).sort()) {
    let doc;
    try {
      doc = parse(readFileSync(join(dir, file), 'utf8'));
    } catch (e) {
      fail(`${label}${file}: ${e.message}`);
    }
    const ops = doc.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
    if (ops.length !== 1 || !ops[0].name) fail(`${label}${file}: must contain exactly one named operation`);
    const body = print(doc);
    docs.push({ id: sha256(body), body, name: ops[0].name.value, type: ops[0].operation, file: `${label}${file}` });
  }
  return docs;
}

// Operations of Apollo manifests dropped into an app folder.
function manifestDocuments(dir, label) {
  const docs = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    const manifest = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    if (manifest.format !== 'apollo-persisted-query-manifest' || manifest.version !== 1 || !Array.isArray(manifest.operations)) {
      fail(`${label}${file}: not an apollo-persisted-query-manifest version 1`);
    }
    for (const op of manifest.operations) {
      if (typeof op.id !== 'string' || typeof op.body !== 'string' || !op.id) fail(`${label}${file}: an operation without id or body`);
      try {
        parse(op.body);
      } catch (e) {
        fail(`${label}${file}: ${op.name ?? op.id}: ${e.message}`);
      }
      docs.push({ id: op.id, body: op.body, name: op.name ?? op.id, type: op.type ?? 'query', file: `${label}${file}` });
    }
  }
  return docs;
}

function uniqueNames(docs, where) {
  const seen = new Map();
  for (const d of docs) {
    if (seen.has(d.name) && seen.get(d.name).id !== d.id) fail(`${where}: operation name ${d.name} used in both ${seen.get(d.name).file} and ${d.file}`);
    seen.set(d.name, d);
  }
}

const outputs = new Map(); // path -> text

const firstParty = graphqlDocuments(opsDir, '');
uniqueNames(firstParty, 'operations/');
const firstPartyManifest = {};
for (const d of firstParty) {
  firstPartyManifest[d.id] = d.body;
  console.log(`${d.id}  ${d.name}  (${d.file})`);
}
outputs.set(firstPartyPath, JSON.stringify(firstPartyManifest, null, 2) + '\n');

const apps = readdirSync(opsDir).filter((f) => statSync(join(opsDir, f)).isDirectory()).sort();
for (const app of apps) {
  if (!appName.test(app)) fail(`operations/${app}: an app folder is named like its API keys: 2..63 of a-z, 0-9, '-'`);
  const dir = join(opsDir, app);
  const docs = [...graphqlDocuments(dir, `${app}/`), ...manifestDocuments(dir, `${app}/`)];
  uniqueNames(docs, `operations/${app}`);
  const operations = [...new Map(docs.map((d) => [d.id, { id: d.id, body: d.body, name: d.name, type: d.type }])).values()];
  for (const op of operations) console.log(`${op.id}  ${op.name}  (${app})`);
  const manifest = { format: 'apollo-persisted-query-manifest', version: 1, operations };
  outputs.set(join(appsDir, `${app}.json`), JSON.stringify(manifest, null, 2) + '\n');
}

const stale = existsSync(appsDir)
  ? readdirSync(appsDir).filter((f) => f.endsWith('.json') && !outputs.has(join(appsDir, f))).map((f) => join(appsDir, f))
  : [];
if (check) {
  const outdated = [...outputs].filter(([path, text]) => !existsSync(path) || readFileSync(path, 'utf8') !== text);
  if (outdated.length || stale.length) {
    fail(`stale: ${[...outdated.map(([p]) => p), ...stale].join(', ')}; run \`node router/persist.mjs\` and commit the result`);
  }
  console.log('persist: manifests up to date');
} else {
  mkdirSync(appsDir, { recursive: true });
  for (const path of stale) rmSync(path);
  for (const [path, text] of outputs) writeFileSync(path, text);
  console.log(`persist: wrote ${firstParty.length} first-party document(s) and ${apps.length} app manifest(s)`);
}
