import path from 'node:path';
import protobuf from 'protobufjs';
import { repoRoot } from '../common/paths.js';
import type { CriuReq, CriuResp } from './rpc-messages.js';
import type { StatsEntry } from './stats-messages.js';

const roots = new Map<string, protobuf.Root>();

/** A message type from proto/<file>, loaded once. keepCase: field names stay CRIU's snake_case. */
export function protoType(file: 'rpc.proto' | 'stats.proto', name: string): protobuf.Type {
  let root = roots.get(file);
  if (!root) {
    root = new protobuf.Root().loadSync(path.join(repoRoot(), 'proto', file), { keepCase: true });
    roots.set(file, root);
  }
  return root.lookupType(name);
}

/** Enums as names, 64-bit integers as numbers, unset fields left out (proto2 defaults are not sent values). */
const TO_OBJECT: protobuf.IConversionOptions = { enums: String, longs: Number, defaults: false };

function encode(typeName: string, value: object): Buffer {
  const type = protoType('rpc.proto', typeName);
  return Buffer.from(type.encode(type.fromObject(value)).finish());
}

/** Throws when the bytes are not a valid message (bad wire data, a required field missing). */
function decode<T>(typeName: string, bytes: Uint8Array): T {
  const type = protoType('rpc.proto', typeName);
  return type.toObject(type.decode(bytes), TO_OBJECT) as T;
}

export function encodeRequest(req: CriuReq): Buffer {
  return encode('criu_req', req);
}

export function decodeResponse(bytes: Uint8Array): CriuResp {
  return decode<CriuResp>('criu_resp', bytes);
}

/** The service side of the codec: used to play a CRIU service in tests. */
export function decodeRequest(bytes: Uint8Array): CriuReq {
  return decode<CriuReq>('criu_req', bytes);
}

export function encodeResponse(resp: CriuResp): Buffer {
  return encode('criu_resp', resp);
}

/** Decodes one stats_entry (the payload of a stats-dump / stats-restore file). */
export function decodeStatsEntry(bytes: Uint8Array): StatsEntry {
  const type = protoType('stats.proto', 'stats_entry');
  return type.toObject(type.decode(bytes), TO_OBJECT) as StatsEntry;
}
