#!/usr/bin/env node
// Compose the NexusCart supergraph from the subgraph SDL files listed in
// supergraph.yaml (rover format) using @theguild/federation-composition.
//
//   node router/compose.mjs            # write schema/supergraph.graphql
//   node router/compose.mjs --check    # exit 1 if the committed file is stale
//
// Options (mainly for tests / CI):
//   --config <file>   supergraph.yaml to read   (default: <repo>/supergraph.yaml)
//   --out <file>      supergraph SDL to write   (default: <repo>/schema/supergraph.graphql)
//
// Subgraph schema paths in the yaml are resolved relative to the yaml's directory.
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { dirname, resolve, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseGraphQL } from 'graphql';
import { parse as parseYaml } from 'yaml';
import { composeServices } from '@theguild/federation-composition';

const routerDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(routerDir, '..');

function parseArgs(argv) {
  const opts = {
    check: false,
    config: resolve(repoRoot, 'supergraph.yaml'),
    out: resolve(repoRoot, 'schema', 'supergraph.graphql'),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--check') opts.check = true;
    else if (a === '--config') opts.config = resolve(argv[++i] ?? fail('--config needs a path'));
    else if (a === '--out') opts.out = resolve(argv[++i] ?? fail('--out needs a path'));
    else if (a === '-h' || a === '--help') {
      console.log('usage: node compose.mjs [--check] [--config supergraph.yaml] [--out schema/supergraph.graphql]');
      process.exit(0);
    } else fail(`unknown argument: ${a}`);
  }
  return opts;
}

function fail(msg) {
  console.error(`compose: ${msg}`);
  process.exit(1);
}

function loadServices(configPath) {
  if (!existsSync(configPath)) fail(`config not found: ${configPath}`);
  const config = parseYaml(readFileSync(configPath, 'utf8')) ?? {};
  const baseDir = dirname(configPath);
  const subgraphs = config.subgraphs;
  if (!subgraphs || typeof subgraphs !== 'object' || Object.keys(subgraphs).length === 0) {
    fail(`${configPath}: no "subgraphs" defined`);
  }
  // Sorted by name so the output does not depend on yaml key order.
  return Object.keys(subgraphs)
    .sort()
    .map((name) => {
      const sg = subgraphs[name] ?? {};
      const file = sg.schema?.file;
      if (!file) fail(`subgraph "${name}": only "schema.file" is supported`);
      if (!sg.routing_url) fail(`subgraph "${name}": "routing_url" is required`);
      const sdlPath = resolve(baseDir, file);
      if (!existsSync(sdlPath)) fail(`subgraph "${name}": schema file not found: ${sdlPath}`);
      let typeDefs;
      try {
        typeDefs = parseGraphQL(readFileSync(sdlPath, 'utf8'));
      } catch (e) {
        fail(`subgraph "${name}": cannot parse ${sdlPath}: ${e.message}`);
      }
      return { name, url: sg.routing_url, typeDefs };
    });
}

function compose(services) {
  const result = composeServices(services);
  if (result.errors && result.errors.length > 0) {
    console.error(`compose: composition failed with ${result.errors.length} error(s):`);
    for (const err of result.errors) {
      const code = err.extensions?.code ? `[${err.extensions.code}] ` : '';
      console.error(`  - ${code}${err.message}`);
    }
    process.exit(1);
  }
  return result.supergraphSdl.trimEnd() + '\n';
}

const opts = parseArgs(process.argv.slice(2));
const services = loadServices(opts.config);
const sdl = compose(services);
const shownOut = relative(process.cwd(), opts.out) || opts.out;

if (opts.check) {
  const current = existsSync(opts.out) ? readFileSync(opts.out, 'utf8') : null;
  if (current === sdl) {
    console.log(`compose: ${shownOut} is up to date (${services.length} subgraphs)`);
    process.exit(0);
  }
  console.error(
    current === null
      ? `compose: ${shownOut} does not exist.`
      : `compose: ${shownOut} is out of date with the subgraph schemas.`,
  );
  console.error('  Run `node router/compose.mjs` (or `npm --prefix router run compose`) and commit the result;');
  console.error(`  then \`git diff -- ${shownOut}\` shows what changed.`);
  process.exit(1);
}

mkdirSync(dirname(opts.out), { recursive: true });
writeFileSync(opts.out, sdl);
console.log(`compose: wrote ${shownOut} (${services.length} subgraphs: ${services.map((s) => s.name).join(', ')})`);
