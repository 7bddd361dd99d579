import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Reading and editing CRIU image files (`pstree.img`, `files.img`) at the protobuf wire level.
 *
 * An image is two little-endian u32 magics, then entries of u32 length + protobuf message, to the end of the file.
 * Only the fields ckpt needs are interpreted; every other byte of an entry is copied as it is, so an edit never
 * drops fields that this code does not know (CRIU adds fields between versions).
 */

/** Raised when an image file is not what CRIU writes. */
export class ImageFileError extends Error {
  readonly code = 'EIMAGE_FORMAT';
  constructor(
    readonly file: string,
    reason: string,
  ) {
    super(`${file}: ${reason}`);
    this.name = 'ImageFileError';
  }
}

interface ImageFile {
  magics: Buffer;
  entries: Buffer[];
}

async function readImage(file: string): Promise<ImageFile> {
  const buf = await readFile(file);
  if (buf.length < 8) throw new ImageFileError(file, 'shorter than its magic numbers');
  const entries: Buffer[] = [];
  let off = 8;
  while (off < buf.length) {
    if (off + 4 > buf.length) throw new ImageFileError(file, `entry length cut short at byte ${off}`);
    const len = buf.readUInt32LE(off);
    off += 4;
    if (off + len > buf.length) throw new ImageFileError(file, `entry of ${len} bytes at byte ${off} runs past the end`);
    entries.push(buf.subarray(off, off + len));
    off += len;
  }
  return { magics: buf.subarray(0, 8), entries };
}

function encodeImage(image: ImageFile): Buffer {
  const parts: Buffer[] = [image.magics];
  for (const e of image.entries) {
    const len = Buffer.alloc(4);
    len.writeUInt32LE(e.length);
    parts.push(len, e);
  }
  return Buffer.concat(parts);
}

/** One field of a protobuf message: its number, wire type, the whole field's bytes and its value. */
interface WireField {
  no: number;
  type: number;
  raw: Buffer;
  /** Varint value (wire type 0), or undefined. */
  varint?: bigint;
  /** Length-delimited payload (wire type 2), or undefined. */
  bytes?: Buffer;
}

function readVarint(buf: Buffer, at: number): [bigint, number] {
  let value = 0n;
  let shift = 0n;
  for (let i = at; i < buf.length && i < at + 10; i++) {
    const b = buf[i]!;
    value |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [value, i + 1];
    shift += 7n;
  }
  throw new Error(`bad varint at byte ${at}`);
}

function encodeVarint(value: number | bigint): Buffer {
  let v = BigInt(value);
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return Buffer.from(out);
}

function fieldsOf(msg: Buffer): WireField[] {
  const fields: WireField[] = [];
  let off = 0;
  while (off < msg.length) {
    const start = off;
    const [key, afterKey] = readVarint(msg, off);
    const no = Number(key >> 3n);
    const type = Number(key & 7n);
    const field: WireField = { no, type, raw: msg };
    switch (type) {
      case 0: {
        const [v, next] = readVarint(msg, afterKey);
        field.varint = v;
        off = next;
        break;
      }
      case 1:
        off = afterKey + 8;
        break;
      case 2: {
        const [len, next] = readVarint(msg, afterKey);
        field.bytes = msg.subarray(next, next + Number(len));
        off = next + Number(len);
        break;
      }
      case 5:
        off = afterKey + 4;
        break;
      default:
        throw new Error(`unsupported wire type ${type} at byte ${start}`);
    }
    if (off > msg.length) throw new Error(`field ${no} runs past the end of its message`);
    field.raw = msg.subarray(start, off);
    fields.push(field);
  }
  return fields;
}

function lengthDelimited(no: number, payload: Buffer): Buffer {
  return Buffer.concat([encodeVarint((no << 3) | 2), encodeVarint(payload.length), payload]);
}

/** A task of a checkpointed tree, as pstree.img records it (pids as seen in the tree's own pid namespace). */
export interface TreeTask {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  threads: number[];
}

/** The tasks of a checkpoint (pstree.img), root first. */
export async function readProcessTree(imagesDir: string): Promise<TreeTask[]> {
  const file = path.join(imagesDir, 'pstree.img');
  const image = await readImage(file);
  try {
    return image.entries.map((entry) => {
      const task: TreeTask = { pid: 0, ppid: 0, pgid: 0, sid: 0, threads: [] };
      for (const f of fieldsOf(entry)) {
        if (f.no === 5 && f.type === 2 && f.bytes) {
          // packed repeated threads
          for (let off = 0; off < f.bytes.length; ) {
            const [v, next] = readVarint(f.bytes, off);
            task.threads.push(Number(v));
            off = next;
          }
        } else if (f.varint !== undefined) {
          const v = Number(f.varint);
          if (f.no === 1) task.pid = v;
          else if (f.no === 2) task.ppid = v;
          else if (f.no === 3) task.pgid = v;
          else if (f.no === 4) task.sid = v;
          else if (f.no === 5) task.threads.push(v);
        }
      }
      if (!task.pid) throw new Error('an entry without a pid');
      return task;
    });
  } catch (err) {
    throw new ImageFileError(file, (err as Error).message);
  }
}

/** file_entry.type of a regular file (CRIU's fd_types.REG), and the fields that hold its reg_file_entry and path. */
const FD_TYPE_REG = 1n;
const FILE_ENTRY_TYPE = 1;
const FILE_ENTRY_REG = 3;
const REG_FILE_FLAGS = 2;
const REG_FILE_NAME = 6;
/** open(2)'s O_APPEND on Linux: CRIU does not check the size of files open for appending (logs) on restore. */
const O_APPEND = 0o2000;

/** A regular file whose path rewriteFilePaths changed, and whether the tree had it open for appending. */
export interface RewrittenPath {
  from: string;
  to: string;
  append: boolean;
}

/**
 * Copies `files.img` from `fromDir` to `toDir`, giving regular files new paths: `rename(path)` returns the new absolute
 * path, or undefined to keep it. CRIU reopens regular files by these paths on restore. Returns the paths it changed.
 */
export async function rewriteFilePaths(
  fromDir: string,
  toDir: string,
  rename: (file: string) => string | undefined,
): Promise<RewrittenPath[]> {
  const file = path.join(fromDir, 'files.img');
  const image = await readImage(file);
  const changed: RewrittenPath[] = [];
  try {
    image.entries = image.entries.map((entry) => {
      const fields = fieldsOf(entry);
      if (fields.find((f) => f.no === FILE_ENTRY_TYPE)?.varint !== FD_TYPE_REG) return entry;
      return Buffer.concat(
        fields.map((f) => {
          if (f.no !== FILE_ENTRY_REG || !f.bytes) return f.raw;
          const regFields = fieldsOf(f.bytes);
          const flags = Number(regFields.find((g) => g.no === REG_FILE_FLAGS)?.varint ?? 0n);
          const reg = regFields.map((g) => {
            if (g.no !== REG_FILE_NAME || !g.bytes) return g.raw;
            const from = g.bytes.toString('utf8');
            const to = rename(from);
            if (to === undefined || to === from) return g.raw;
            changed.push({ from, to, append: (flags & O_APPEND) !== 0 });
            return lengthDelimited(REG_FILE_NAME, Buffer.from(to, 'utf8'));
          });
          return lengthDelimited(FILE_ENTRY_REG, Buffer.concat(reg));
        }),
      );
    });
  } catch (err) {
    throw new ImageFileError(file, (err as Error).message);
  }
  await writeFile(path.join(toDir, 'files.img'), encodeImage(image), { mode: 0o600 });
  return changed;
}
