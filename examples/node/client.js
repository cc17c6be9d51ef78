#!/usr/bin/env node
// A newsrec client in Node.js: GetRelated, GetPopular, RecordEvents and the standard health check.
// It loads the repository's contract (protos/recommender/v1/recommender.proto) at run time, so
// nothing is generated or written by hand. Each call prints one JSON line on stdout; an error
// status prints a JSON line with the error, a message on stderr, and exits 1. See README.md.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const USAGE = `usage: node client.js [--target HOST:PORT] [--ca FILE] [--deadline-ms N] COMMAND
commands:
  health                          grpc.health.v1.Health/Check of recommender.v1.Recommender
  related ARTICLE_ID [--limit N] [--section S] [--exclude ID]...
  popular [--section S] [--limit N]
  record ARTICLE_ID [--session S] [--type click|impression]
  all ARTICLE_ID [--session S]    health, related, popular, record in turn
environment: NEWSREC_TARGET (default 127.0.0.1:50051), NEWSREC_TLS_CA (TLS with this CA file),
  NEWSREC_CLIENT_TOKEN (a bare secret) or NEWSREC_WRITE_TOKEN (the first name=secret entry),
  NEWSREC_PROTOS (the protos/ folder, default ../../protos)`;

const SERVICE = 'recommender.v1.Recommender';
const OPTIONS = {
  target: { type: 'string' }, ca: { type: 'string' }, 'deadline-ms': { type: 'string' },
  limit: { type: 'string' }, section: { type: 'string' }, exclude: { type: 'string', multiple: true },
  session: { type: 'string' }, type: { type: 'string' }, help: { type: 'boolean', short: 'h' },
};

class UsageError extends Error {}

/** The secret to send as `authorization: Bearer <secret>` ('' for none). The server takes a
 * comma-separated list of `name=secret` (or bare `secret`) entries; a client uses one secret. */
function clientToken(env) {
  if (env.NEWSREC_CLIENT_TOKEN) return env.NEWSREC_CLIENT_TOKEN.trim();
  const first = (env.NEWSREC_WRITE_TOKEN || '').split(',').map((e) => e.trim()).find(Boolean);
  if (!first) return '';
  const at = first.indexOf('=');
  return at < 0 ? first : first.slice(at + 1);
}

/** Both services from their .proto files: the repo's contract and the bundled health proto. */
function loadServices(env) {
  const repoProtos = env.NEWSREC_PROTOS || path.resolve(__dirname, '..', '..', 'protos');
  const definition = protoLoader.loadSync(
    ['recommender/v1/recommender.proto', 'grpc/health/v1/health.proto'],
    { includeDirs: [repoProtos, path.join(__dirname, 'protos')], keepCase: true,
      longs: Number, enums: String, defaults: true, oneofs: true },
  );
  const loaded = grpc.loadPackageDefinition(definition);
  return { Recommender: loaded.recommender.v1.Recommender, Health: loaded.grpc.health.v1.Health };
}

/** Plaintext, or TLS when a CA file is given (the server's NEWSREC_TLS_CERT must chain to it). */
function credentials(caFile) {
  return caFile ? grpc.credentials.createSsl(fs.readFileSync(caFile))
    : grpc.credentials.createInsecure();
}

/** Timestamps ({seconds, nanos}) as RFC 3339 strings, as the proto3 JSON mapping writes them. */
function jsonable(value) {
  if (Array.isArray(value)) return value.map(jsonable);
  if (value === null || typeof value !== 'object') return value;
  const keys = Object.keys(value);
  if (keys.length === 2 && 'seconds' in value && 'nanos' in value) {
    return new Date(value.seconds * 1000 + Math.floor(value.nanos / 1e6)).toISOString();
  }
  return Object.fromEntries(keys.map((k) => [k, jsonable(value[k])]));
}

/** One unary call: resolves to the reply, or rejects with the gRPC error (code, details). */
function unary(client, method, request, metadata, deadlineMs) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + deadlineMs);
    client[method](request, metadata, { deadline }, (err, reply) => (err ? reject(err) : resolve(reply)));
  });
}

function positiveInt(text, name) {
  if (text === undefined) return 0;
  if (!/^\d+$/.test(text)) throw new UsageError(`--${name} takes a whole number, got ${text}`);
  return Number(text);
}

function needId(positionals, command) {
  if (!positionals[1]) throw new UsageError(`${command} needs an ARTICLE_ID`);
  return positionals[1];
}

/** The calls a command makes, in order: [label, which client, method, request]. */
function plan(command, positionals, values) {
  const eventType = { click: 'EVENT_TYPE_CLICK', impression: 'EVENT_TYPE_IMPRESSION' }[values.type || 'click'];
  if (!eventType) throw new UsageError(`--type is click or impression, got ${values.type}`);
  const limit = positiveInt(values.limit, 'limit');
  const section = values.section || '';
  const health = ['Health/Check', 'health', 'Check', { service: SERVICE }];
  const related = (id) => ['GetRelated', 'recommender', 'GetRelated',
    { article_id: id, limit, section, exclude_ids: values.exclude || [] }];
  const popular = ['GetPopular', 'recommender', 'GetPopular', { section, limit, exclude_ids: [] }];
  const record = (id) => ['RecordEvents', 'recommender', 'RecordEvents',
    { events: [{ article_id: id, type: eventType, session_id: values.session || '' }] }];
  switch (command) {
    case 'health': return [health];
    case 'related': return [related(needId(positionals, command))];
    case 'popular': return [popular];
    case 'record': return [record(needId(positionals, command))];
    case 'all': { const id = needId(positionals, command); return [health, related(id), popular, record(id)]; }
    default: throw new UsageError(command ? `unknown command ${command}` : 'no command given');
  }
}

/** Exit codes: 0 every call OK, 1 an error status, 2 a usage error, 3 health not SERVING. */
async function main(argv, env) {
  const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
  if (values.help) { console.log(USAGE); return 0; }
  const calls = plan(positionals[0], positionals, values);
  const target = values.target || env.NEWSREC_TARGET || '127.0.0.1:50051';
  const deadlineMs = positiveInt(values['deadline-ms'], 'deadline-ms') || 5000;
  const { Recommender, Health } = loadServices(env);
  const creds = credentials(values.ca || env.NEWSREC_TLS_CA);
  const clients = { recommender: new Recommender(target, creds), health: new Health(target, creds) };
  const token = clientToken(env);
  try {
    for (const [label, which, method, request] of calls) {
      const metadata = new grpc.Metadata();
      if (token && which === 'recommender') metadata.set('authorization', `Bearer ${token}`);
      let reply;
      try {
        reply = await unary(clients[which], method, request, metadata, deadlineMs);
      } catch (err) {
        const code = grpc.status[err.code] || String(err.code);
        console.log(JSON.stringify({ call: label, target, error: { code, details: err.details } }));
        console.error(`newsrec client: ${label} on ${target} failed: ${code}: ${err.details}`);
        return 1;
      }
      console.log(JSON.stringify({ call: label, target, request, response: jsonable(reply) }));
      if (which === 'health' && reply.status !== 'SERVING') {
        console.error(`newsrec client: ${SERVICE} on ${target} is ${reply.status}, not SERVING`);
        return 3;
      }
    }
    return 0;
  } finally {
    Object.values(clients).forEach((c) => c.close());
  }
}

main(process.argv.slice(2), process.env).then((code) => { process.exitCode = code; }, (err) => {
  const usage = err instanceof UsageError || String(err.code).startsWith('ERR_PARSE_ARGS');
  console.error(`newsrec client: ${err.message}${usage ? `\n${USAGE}` : ''}`);
  process.exitCode = usage ? 2 : 1;
});
