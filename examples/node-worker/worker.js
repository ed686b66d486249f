#!/usr/bin/env node
// A pybridge worker in JavaScript for Node.js, with no dependencies, written
// from docs/protocol.md (the pybridge worker protocol, version 1).
//
//   node examples/node-worker/worker.js
//
// It announces itself with `$/ready` and a manifest, serves `echo`, `add`,
// `divide` and the slow, cancellable `sleep`, answers `$/ping`,
// `$/cancelRequest` and `$/shutdown`, and exits on stdin EOF. Section numbers
// in the comments (§) point at docs/protocol.md.

'use strict';

const PROTOCOL_VERSION = '1.0';
const MAX_FRAME = 16 * 1024 * 1024; // §2: the default frame limit
const MAX_CONCURRENCY = 16;

// Error codes (§6).
const PARSE_ERROR = -32700;
const INVALID_REQUEST = -32600;
const METHOD_NOT_FOUND = -32601;
const INVALID_PARAMS = -32602;
const INTERNAL_ERROR = -32603;
const SHUTTING_DOWN = -32005;
const REQUEST_CANCELLED = -32800;

// --- §1 stdio isolation ------------------------------------------------------
// stdout is the protocol channel only. Keep a private writer for it, then
// point process.stdout (and so console.log) at stderr, so that a stray
// console.log in a method can never corrupt the channel.
const stdout = process.stdout;
const writeStdout = stdout.write.bind(stdout);
stdout.write = (chunk, encoding, callback) => process.stderr.write(chunk, encoding, callback);

function send(message) {
  // Compact JSON never contains a raw newline (§2), so one line is one frame.
  writeStdout(JSON.stringify(message) + '\n');
}

function respond(id, result) {
  send({ jsonrpc: '2.0', id, result });
}

function respondError(id, code, message, data) {
  const error = { code, message };
  if (data !== undefined) error.data = data;
  send({ jsonrpc: '2.0', id, error });
}

function log(level, message, fields) {
  const params = { level, message };
  if (fields !== undefined) params.fields = fields;
  send({ jsonrpc: '2.0', method: '$/log', params });
}

// --- the methods and their manifest (§4) -------------------------------------

class RpcError extends Error {
  constructor(code, message, data) {
    super(message);
    this.code = code;
    this.data = data;
  }
}

class Cancelled extends Error {}

const methods = {
  echo: {
    manifest: {
      description: 'Return the message as given.',
      params_schema: {
        type: 'object',
        properties: { message: { type: 'string' } },
        required: ['message'],
        additionalProperties: false,
      },
      positional: ['message'],
      result_schema: { type: 'string' },
      idempotent: true,
      cache_ttl_ms: 60000,
    },
    run: ({ message }) => message,
  },
  add: {
    manifest: {
      description: 'Add two integers.',
      params_schema: {
        type: 'object',
        properties: { a: { type: 'integer' }, b: { type: 'integer', default: 0 } },
        required: ['a'],
        additionalProperties: false,
      },
      positional: ['a', 'b'],
      result_schema: { type: 'integer' },
      idempotent: true,
      cache_ttl_ms: 600000,
      timeout_ms: 5000,
    },
    run: ({ a, b = 0 }) => a + b,
  },
  divide: {
    manifest: {
      description: 'Divide a by b; dividing by zero raises an internal error.',
      params_schema: {
        type: 'object',
        properties: { a: { type: 'number' }, b: { type: 'number' } },
        required: ['a', 'b'],
        additionalProperties: false,
      },
      positional: ['a', 'b'],
      result_schema: { type: 'number' },
      idempotent: true,
    },
    run: ({ a, b }) => {
      if (b === 0) throw new RangeError('division by zero');
      return a / b;
    },
  },
  sleep: {
    manifest: {
      description: 'Wait ms milliseconds, then return {slept: ms}; honours $/cancelRequest.',
      params_schema: {
        type: 'object',
        properties: { ms: { type: 'integer', minimum: 0, maximum: 600000 } },
        required: ['ms'],
        additionalProperties: false,
      },
      positional: ['ms'],
      timeout_ms: 600000,
    },
    run: ({ ms }, call) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => resolve({ slept: ms }), ms);
        call.onCancel = () => {
          clearTimeout(timer);
          reject(new Cancelled());
        };
      }),
  },
};

// A validator for the small subset of JSON Schema the manifest above uses:
// returns a problem, or null when the params fit.
function checkParams(schema, params) {
  if (params === null || typeof params !== 'object' || Array.isArray(params)) {
    return 'params must be an object';
  }
  const properties = schema.properties || {};
  for (const name of schema.required || []) {
    if (!(name in params)) return `missing required parameter "${name}"`;
  }
  for (const [name, value] of Object.entries(params)) {
    const property = properties[name];
    if (property === undefined) {
      if (schema.additionalProperties === false) return `unexpected parameter "${name}"`;
      continue;
    }
    const fits = {
      integer: Number.isInteger(value),
      number: typeof value === 'number',
      string: typeof value === 'string',
    }[property.type];
    if (fits === false) return `parameter "${name}" must be of type ${property.type}`;
    if (property.minimum !== undefined && value < property.minimum) return `parameter "${name}" is below ${property.minimum}`;
    if (property.maximum !== undefined && value > property.maximum) return `parameter "${name}" is above ${property.maximum}`;
  }
  return null;
}

// Positional params map element i to the parameter named positional[i] (§3).
function byName(method, params) {
  if (params === undefined || params === null) return {};
  if (!Array.isArray(params)) return params;
  const names = method.manifest.positional || [];
  if (params.length > names.length) return null;
  const named = {};
  params.forEach((value, i) => {
    named[names[i]] = value;
  });
  return named;
}

// --- dispatch ----------------------------------------------------------------

const inFlight = new Map(); // JSON of the id -> {onCancel}
let shuttingDown = false;
let shutdownId; // the id of a `$/shutdown` request, answered before exiting

function isId(id) {
  return typeof id === 'string' || typeof id === 'number' || id === null;
}

// Handles one request or notification; returns a promise of the response
// (or null for a notification).
async function handle(message) {
  if (message === null || typeof message !== 'object' || Array.isArray(message)) {
    return errorResponse(null, INVALID_REQUEST, 'Invalid Request', 'a message must be an object');
  }
  const hasId = Object.prototype.hasOwnProperty.call(message, 'id');
  const id = hasId && isId(message.id) ? message.id : null;
  if (message.jsonrpc !== '2.0') return errorResponse(id, INVALID_REQUEST, 'Invalid Request', 'jsonrpc must be "2.0"');
  if (typeof message.method !== 'string') return errorResponse(id, INVALID_REQUEST, 'Invalid Request', 'method must be a string');
  if (hasId && !isId(message.id)) return errorResponse(null, INVALID_REQUEST, 'Invalid Request', 'id must be a string, a number or null');
  const { method, params } = message;
  if (params !== undefined && (params === null || typeof params !== 'object')) {
    return errorResponse(id, INVALID_REQUEST, 'Invalid Request', 'params must be an object or an array');
  }
  // `_meta` (§9) and any other unknown top-level member are ignored.

  if (method.startsWith('$/')) return reserved(method, hasId, id, params);
  const spec = Object.prototype.hasOwnProperty.call(methods, method) ? methods[method] : undefined;
  if (spec === undefined) {
    return hasId ? errorResponse(id, METHOD_NOT_FOUND, 'Method not found', `no method named "${method}"`, 'MethodNotFound') : null;
  }
  if (shuttingDown) {
    return hasId ? errorResponse(id, SHUTTING_DOWN, 'worker is shutting down', 'request arrived after $/shutdown', 'ShuttingDown') : null;
  }
  const named = byName(spec, params);
  const problem = named === null ? 'too many positional params' : checkParams(spec.manifest.params_schema, named);
  if (problem !== null) {
    return hasId ? errorResponse(id, INVALID_PARAMS, `Invalid params: ${problem}`, problem, 'InvalidParams') : null;
  }

  const key = JSON.stringify(id);
  const call = { onCancel: null };
  if (hasId) inFlight.set(key, call);
  try {
    const result = await spec.run(named, call);
    return hasId ? { jsonrpc: '2.0', id, result: result === undefined ? null : result } : null;
  } catch (err) {
    if (!hasId) return null;
    if (err instanceof Cancelled) {
      return errorResponse(id, REQUEST_CANCELLED, 'request cancelled', 'request cancelled', 'RequestCancelled');
    }
    if (err instanceof RpcError) return { jsonrpc: '2.0', id, error: { code: err.code, message: err.message, data: err.data } };
    return {
      jsonrpc: '2.0',
      id,
      error: {
        code: INTERNAL_ERROR,
        message: `${err.name}: ${err.message}`,
        data: { type: err.name, message: err.message, traceback: String(err.stack).slice(-32768) },
      },
    };
  } finally {
    if (hasId && inFlight.get(key) === call) inFlight.delete(key);
    if (shuttingDown) maybeExitAfterShutdown();
  }
}

function errorResponse(id, code, message, detail, type) {
  return { jsonrpc: '2.0', id, error: { code, message, data: { type: type || 'InvalidRequest', message: detail } } };
}

function reserved(method, hasId, id, params) {
  switch (method) {
    case '$/ping':
      return hasId ? { jsonrpc: '2.0', id, result: { pid: process.pid, rss_bytes: process.memoryUsage.rss() } } : null;
    case '$/cancelRequest': {
      // §7: cancel the call if it still runs; an unknown id is ignored.
      const target = params && !Array.isArray(params) ? params.id : undefined;
      const call = isId(target) ? inFlight.get(JSON.stringify(target)) : undefined;
      if (call !== undefined && call.onCancel !== null) {
        log('debug', 'call cancelled', { request_id: target });
        call.onCancel();
      }
      return hasId ? { jsonrpc: '2.0', id, result: null } : null;
    }
    case '$/shutdown':
      // §8: no new work; finish what runs, answer, exit 0.
      shuttingDown = true;
      if (hasId) shutdownId = id;
      setImmediate(maybeExitAfterShutdown);
      return null;
    default:
      return hasId ? errorResponse(id, METHOD_NOT_FOUND, 'Method not found', `no reserved method "${method}"`, 'MethodNotFound') : null;
  }
}

function maybeExitAfterShutdown() {
  if (inFlight.size > 0) return;
  if (shutdownId !== undefined) respond(shutdownId, null);
  process.exit(0);
}

function dispatch(message) {
  if (Array.isArray(message)) {
    if (message.length === 0) {
      send(errorResponse(null, INVALID_REQUEST, 'Invalid Request', 'empty batch'));
      return;
    }
    Promise.all(message.map(handle)).then((responses) => {
      const answered = responses.filter((r) => r !== null);
      if (answered.length > 0) send(answered);
    });
    return;
  }
  handle(message).then((response) => {
    if (response !== null) send(response);
  });
}

// --- §2 NDJSON framing, never buffering more than MAX_FRAME of one line -------

let pending = []; // pieces of the current line
let pendingBytes = 0;
let skipping = false; // inside an oversized line: drop up to its newline

function frameTooLarge() {
  process.stderr.write(`node-worker: dropped a frame larger than ${MAX_FRAME} bytes\n`);
  send(errorResponse(null, INVALID_REQUEST, `Invalid Request: frame larger than ${MAX_FRAME} bytes`, 'frame too large', 'FrameTooLarge'));
}

function onLine(buffer) {
  let text = buffer.toString('utf8');
  if (text.endsWith('\r')) text = text.slice(0, -1);
  if (text.trim() === '') return;
  let message;
  try {
    message = JSON.parse(text);
  } catch (err) {
    send(errorResponse(null, PARSE_ERROR, 'Parse error', err.message, 'ParseError'));
    return;
  }
  dispatch(message);
}

function onData(chunk) {
  let start = 0;
  while (start < chunk.length) {
    const newline = chunk.indexOf(0x0a, start);
    const end = newline < 0 ? chunk.length : newline;
    if (!skipping) {
      if (pendingBytes + (end - start) > MAX_FRAME) {
        pending = [];
        pendingBytes = 0;
        skipping = true;
        frameTooLarge();
      } else {
        pending.push(chunk.subarray(start, end));
        pendingBytes += end - start;
      }
    }
    if (newline < 0) return;
    if (skipping) {
      skipping = false;
    } else {
      const line = Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      onLine(line);
    }
    start = newline + 1;
  }
}

// --- §8 stdin EOF: cancel what runs, exit 0 ------------------------------------

function onEnd() {
  for (const call of inFlight.values()) {
    if (call.onCancel !== null) call.onCancel();
  }
  // Nobody reads the answers any more; leave now.
  process.exit(0);
}

// --- §4 the handshake ----------------------------------------------------------

process.stdin.on('data', onData);
process.stdin.on('end', onEnd);
process.stdin.on('error', onEnd);

send({
  jsonrpc: '2.0',
  method: '$/ready',
  params: {
    pid: process.pid,
    protocol_version: PROTOCOL_VERSION,
    max_concurrency: MAX_CONCURRENCY,
    name: 'node-example',
    version: '1.0.0',
    methods: Object.entries(methods).map(([name, spec]) => ({ name, ...spec.manifest })),
  },
});
