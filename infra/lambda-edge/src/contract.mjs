// The request side of `akidb serve`'s embedding contract, as the edge applies it before touching the model.
//
// `parseEmbedRequest` decides one of three things for a POST to an embedding route:
//   { kind: 'texts', texts, encodingFormat }     the edge can answer;
//   { kind: 'error', status, type, message }     bad input that akidb serve refuses with the same status and type;
//   { kind: 'origin', reason }                   the edge can't be sure of the origin's answer: CloudFront forwards.
//
// akidb serve parses with serde_json into typed structs (axum's `Json`); JSON.parse is laxer in a few places
// whose exact serde answer depends on where in the document the oddity sits (a lone surrogate escape, invalid
// UTF-8 inside an ignored field, a duplicate key, nesting past serde_json's recursion limit, a number out of
// f64 range, a top-level array that serde reads as a struct). Those go to the origin, which is the reference:
// forwarding is always correct, answering is only correct when the answer is certain.

export const ROUTES = new Set(['/v1/embed', '/v1/embeddings']);

const JSON_MESSAGE = 'Failed to parse the request body as JSON';
const DATA_MESSAGE = 'Failed to deserialize the JSON body into the target type';
// serde_json's recursion limit is 128; well below it JSON.parse and serde agree on every shape.
const MAX_DEPTH = 100;
const TOKEN_ID_MESSAGE = 'token-id input is not supported: send text (a string or an array of strings)';

const invalid = (status, message) => ({ kind: 'error', status, type: 'invalid_request_error', message });
const origin = (reason) => ({ kind: 'origin', reason });

/**
 * What `Content-Type` says, as axum's `Json` extractor judges it: `json` (application/json or
 * application/*+json, any parameters), `other` (a plain type/subtype that is not JSON: 415), or `unsure`
 * (a value the mime crate might parse differently from this regex: leave it to the origin).
 */
export function contentTypeKind(value) {
  if (value === undefined) return 'other';
  const m = /^\s*([A-Za-z0-9!#$&^_.+-]+)\/([A-Za-z0-9!#$&^_.+-]+)\s*(;.*)?$/.exec(value);
  if (!m) return 'unsure';
  if (m[3] !== undefined && !/^;\s*[A-Za-z0-9_-]+=("[^"]*"|[A-Za-z0-9_.-]+)\s*$/.test(m[3])) return 'unsure';
  const type = m[1].toLowerCase();
  const subtype = m[2].toLowerCase();
  return type === 'application' && (subtype === 'json' || subtype.endsWith('+json')) ? 'json' : 'other';
}

/** True when `value`, or a key or string anywhere in it, is something serde_json may answer differently. */
function needsOrigin(value, depth = 0) {
  if (depth > MAX_DEPTH) return true;
  if (typeof value === 'string') return hasLoneSurrogate(value);
  if (typeof value === 'number') return !Number.isFinite(value);
  if (Array.isArray(value)) return value.some((v) => needsOrigin(v, depth + 1));
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).some(([k, v]) => hasLoneSurrogate(k) || needsOrigin(v, depth + 1));
  }
  return false;
}

// A high surrogate not followed by a low one, or a low one not preceded by a high one. JSON.parse keeps
// them (from `\ud800` escapes); serde_json refuses them into a String.
const hasLoneSurrogate = (s) => /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);

/** True when `key` appears as an object key more than once in the raw body (serde: "duplicate field"). */
const duplicateKey = (raw, key) => (raw.match(new RegExp(`"${key}"\\s*:`, 'g')) ?? []).length > 1;

// akidb serve reads token ids as any JSON numbers (to refuse them with a message that says so).
const isNumberArray = (v) => Array.isArray(v) && v.every((x) => typeof x === 'number');

function typeName(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a sequence';
  if (typeof v === 'object') return 'a map';
  return `a ${typeof v}`;
}

/**
 * The texts of `POST /v1/embed` or `POST /v1/embeddings`, or the reason not to answer. `headers` maps
 * lower-case names to values; `body` is the raw bytes (a Buffer). Limits: `maxTexts`, `maxChars`.
 */
export function parseEmbedRequest(route, headers, body, limits) {
  const encoding = headers['content-encoding'];
  const coding = encoding?.trim().toLowerCase();
  if (coding && coding !== 'identity') {
    return invalid(415, `Content-Encoding "${encoding}" is not supported: send the body uncompressed`);
  }
  const ct = contentTypeKind(headers['content-type']);
  if (ct === 'unsure') return origin('unusual-content-type');
  if (ct === 'other') return invalid(415, 'Expected request with `Content-Type: application/json`');

  let raw;
  try {
    // fatal: invalid UTF-8 throws; ignoreBOM: a BOM stays in the text, so JSON.parse refuses it as serde does.
    raw = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(body);
  } catch {
    // serde_json refuses invalid UTF-8 inside a string it keeps but skips it inside an ignored field.
    return origin('invalid-utf8');
  }
  let doc;
  try {
    doc = JSON.parse(raw);
  } catch (e) {
    return invalid(400, `${JSON_MESSAGE}: ${e.message}`);
  }
  if (needsOrigin(doc)) return origin('json-edge-case');
  // serde reads a struct from a JSON array too (fields in order); rare enough to leave to the origin.
  if (Array.isArray(doc)) return origin('array-body');
  if (doc === null || typeof doc !== 'object') {
    return invalid(422, `${DATA_MESSAGE}: invalid type: ${typeName(doc)}, expected a request object`);
  }

  let texts;
  let encodingFormat = 'float';
  if (route === '/v1/embed') {
    if (duplicateKey(raw, 'texts')) return origin('duplicate-key');
    const unknown = Object.keys(doc).find((k) => k !== 'texts');
    if (unknown !== undefined) {
      return invalid(422, `${DATA_MESSAGE}: unknown field \`${unknown}\`, expected \`texts\``);
    }
    if (!('texts' in doc)) return invalid(422, `${DATA_MESSAGE}: missing field \`texts\``);
    texts = doc.texts;
    if (!Array.isArray(texts)) {
      return invalid(422, `${DATA_MESSAGE}: texts: invalid type: ${typeName(texts)}, expected a sequence`);
    }
    const bad = texts.findIndex((t) => typeof t !== 'string');
    if (bad >= 0) {
      return invalid(422, `${DATA_MESSAGE}: texts[${bad}]: invalid type: ${typeName(texts[bad])}, expected a string`);
    }
  } else {
    for (const key of ['input', 'model', 'encoding_format', 'dimensions', 'user']) {
      if (duplicateKey(raw, key)) return origin('duplicate-key');
    }
    if (!('input' in doc)) return invalid(422, `${DATA_MESSAGE}: missing field \`input\``);
    const input = doc.input;
    if (typeof input === 'string') texts = [input];
    else if (Array.isArray(input) && input.every((t) => typeof t === 'string')) texts = input;
    else if (Array.isArray(input) && input.length > 0 && (isNumberArray(input) || input.every(isNumberArray))) {
      return invalid(422, TOKEN_ID_MESSAGE);
    } else {
      return invalid(422, `${DATA_MESSAGE}: input: a string or an array of strings expected, got ${typeName(input)}`);
    }
    for (const key of ['model', 'user']) {
      if (doc[key] !== undefined && doc[key] !== null && typeof doc[key] !== 'string') {
        return invalid(422, `${DATA_MESSAGE}: ${key}: invalid type: ${typeName(doc[key])}, expected a string`);
      }
    }
    const format = doc.encoding_format;
    if (format !== undefined && format !== null) {
      if (format !== 'float' && format !== 'base64') {
        return invalid(422, `encoding_format must be "float" or "base64", not ${JSON.stringify(format)}`);
      }
      encodingFormat = format;
    }
    const dims = doc.dimensions;
    if (dims !== undefined && dims !== null) {
      // The model's size is known once it is loaded; until then the origin judges.
      if (limits.dim == null) return origin('dimensions-before-load');
      if (dims !== limits.dim) {
        return invalid(422, `dimensions ${JSON.stringify(dims)} is not available: this model's embeddings have a fixed size of ${limits.dim}`);
      }
      // JSON.parse reads 384.0 as 384; serde refuses a float for an integer field. Only a plain 384 is certain.
      if (!new RegExp(`"dimensions"\\s*:\\s*${limits.dim}(?![0-9.eE])`).test(raw)) return origin('dimensions-spelling');
    }
  }

  if (texts.length === 0) return invalid(422, 'no texts given: send at least one');
  if (texts.length > limits.maxTexts) {
    return invalid(413, `${texts.length} texts in one request; the limit is ${limits.maxTexts}`);
  }
  for (let i = 0; i < texts.length; i++) {
    // Characters as Rust counts them: Unicode scalar values (a surrogate pair is one).
    if (texts[i].length <= limits.maxChars) continue; // UTF-16 units >= scalar values
    let n = 0;
    for (const _ of texts[i]) n++;
    if (n > limits.maxChars) {
      return invalid(413, `text ${i} has ${n} characters; the limit is ${limits.maxChars}`);
    }
  }
  return { kind: 'texts', texts, encodingFormat };
}
