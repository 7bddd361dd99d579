import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  S3Client,
  type _Object,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { parseOrThrow } from '../common/validation.js';
import { isCheckpointId } from '../common/checkpoint-id.js';
import { manifestSchema, type Manifest } from '../catalog/manifest.js';
import type { Config } from '../config/schema.js';
import type { Signer } from '../security/signer.js';
import { isSafeTargetKey } from '../targets/key.js';
import { ChunkCipher } from './chunk-cipher.js';
import { compress, decompress, type Compression } from './compression.js';
import { loadBucketCredentials } from './credentials.js';
import { StorageError } from './errors.js';

/** What names a checkpoint's objects. */
type CheckpointName = { id: string; target: { key: string } };

export type RemoteConfig = NonNullable<Config['storage']['remote']>;

export interface RemoteStoreOptions {
  config: RemoteConfig;
  /** Checks the manifests read back from the bucket (only what ckpt signed is listed or restored). */
  signer: Signer;
  /** Default: loaded from config.credentialsFile or the environment (loadBucketCredentials). */
  client?: S3Client;
}

/** Bytes of a checkpoint's files handled so far, of all. */
export type TransferProgress = (bytesDone: number, bytesTotal: number) => void;

/** What a listing of the bucket found: usable checkpoints, and manifests that do not count, with the reason. */
export interface RemoteListing {
  manifests: Manifest[];
  skipped: { key: string; reason: string }[];
}

const MANIFEST_OBJECT = 'manifest.json';
/** Object metadata (x-amz-meta-*) saying how an object is packed. */
const META_COMPRESSION = 'ckpt-compression';
const META_ENCRYPTED = 'ckpt-encrypted';
const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
/** Parts of one object in flight at once. */
const UPLOAD_QUEUE = 2;

/**
 * Checkpoints in an S3-compatible bucket. One object per file, `<prefix>/<targetKey>/<id>/files/<name>`, compressed
 * (zstd / lz4 program) and, with an encryption key, sealed (ChunkCipher); then `<prefix>/<targetKey>/<id>/manifest.json`
 * (the signed manifest, sealed too), written last: a checkpoint whose manifest object exists is whole. Downloads are
 * checked by the caller against the manifest's SHA-256 of each file.
 */
export class RemoteStore {
  private readonly client: S3Client;
  private readonly cipher: ChunkCipher | undefined;
  private readonly config: RemoteConfig;
  private readonly signer: Signer;

  constructor(options: RemoteStoreOptions) {
    const { config } = options;
    this.config = config;
    this.signer = options.signer;
    this.cipher = config.encryptionKeyFile ? ChunkCipher.fromKeyFile(config.encryptionKeyFile) : undefined;
    this.client =
      options.client ??
      new S3Client({
        endpoint: config.endpoint,
        region: config.region,
        forcePathStyle: config.forcePathStyle,
        credentials: loadBucketCredentials(config.credentialsFile),
      });
  }

  /** `bucket/prefix`, for messages. */
  get where(): string {
    return [this.config.bucket, this.config.prefix].filter(Boolean).join('/');
  }

  /** Uploads the files of a committed checkpoint folder, then its manifest. Aborts (leaving no manifest object) on `signal`. */
  async upload(manifest: Manifest, dir: string, options: { onProgress?: TransferProgress; signal?: AbortSignal } = {}): Promise<void> {
    const total = manifest.bytes;
    let done = 0;
    for (const name of Object.keys(manifest.files).sort()) {
      const counted = createReadStream(path.join(dir, name)).pipe(
        counter((n) => {
          done += n;
          options.onProgress?.(done, total);
        }),
      );
      const packed = compress(counted, this.config.compression, this.config.zstdLevel);
      await this.put(this.fileKey(manifest, name), this.seal(packed), this.config.compression, options.signal);
    }
    const body = Readable.from([Buffer.from(JSON.stringify(manifest, null, 2) + '\n')]);
    await this.put(this.manifestKey(manifest), this.seal(body), 'none', options.signal);
  }

  /**
   * Writes the checkpoint's files into `dir` (made 0700; files 0600), unpacked. A damaged object fails with
   * StorageError EDAMAGED naming the file; the caller verifies the SHA-256 of each against the manifest.
   */
  async download(manifest: Manifest, dir: string, options: { onProgress?: TransferProgress; signal?: AbortSignal } = {}): Promise<void> {
    const total = manifest.bytes;
    let done = 0;
    for (const name of Object.keys(manifest.files).sort()) {
      const file = path.join(dir, name);
      await mkdir(path.dirname(file), { recursive: true, mode: DIR_MODE });
      const what = `${name} (object ${this.fileKey(manifest, name)})`;
      const { body, compression } = await this.get(this.fileKey(manifest, name), what, options.signal);
      const progress = counter((n) => {
        done += n;
        options.onProgress?.(done, total);
      });
      await pipeline(decompress(body, compression, what), progress, createWriteStream(file, { mode: FILE_MODE, flags: 'wx' }), {
        signal: options.signal,
      });
    }
  }

  /** The checkpoint's signed manifest as the bucket holds it; StorageError ECHECKPOINT_NOT_FOUND / EDAMAGED, CatalogError when untrusted. */
  async readManifest(targetKey: string, checkpointId: string): Promise<Manifest> {
    return this.readManifestAt(this.manifestKey({ id: checkpointId, target: { key: targetKey } }));
  }

  /** Every checkpoint in the bucket whose manifest is whole, signed with the deployment's key and in its own place. */
  async list(): Promise<RemoteListing> {
    const listing: RemoteListing = { manifests: [], skipped: [] };
    for (const object of await this.listObjects(this.prefixed(''))) {
      const key = object.Key!;
      if (!key.endsWith(`/${MANIFEST_OBJECT}`)) continue;
      try {
        listing.manifests.push(await this.readManifestAt(key));
      } catch (err) {
        listing.skipped.push({ key, reason: (err as Error).message });
      }
    }
    return listing;
  }

  /** Removes every object of the checkpoint, the manifest first (so a half-removed checkpoint is never listed). */
  async remove(manifest: CheckpointName): Promise<void> {
    const folder = this.checkpointPrefix(manifest);
    const keys = (await this.listObjects(folder)).map((o) => o.Key!);
    const manifestKey = this.manifestKey(manifest);
    const ordered = [...keys.filter((k) => k === manifestKey), ...keys.filter((k) => k !== manifestKey)];
    // DeleteObjects takes up to 1000 keys.
    for (let i = 0; i < ordered.length; i += 1000) {
      const batch = ordered.slice(i, i + 1000);
      const res = await this.client.send(
        new DeleteObjectsCommand({ Bucket: this.config.bucket, Delete: { Objects: batch.map((Key) => ({ Key })) } }),
      );
      if (res.Errors?.length) {
        const first = res.Errors[0]!;
        throw new Error(`could not remove ${first.Key} from ${this.config.bucket}: ${first.Code} ${first.Message ?? ''}`.trim());
      }
    }
  }

  /** Closes the client's connections. */
  close(): void {
    this.client.destroy();
  }

  private async readManifestAt(key: string): Promise<Manifest> {
    const { body } = await this.get(key, `object ${key}`);
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      throw new StorageError('EDAMAGED', `object ${key}: not a manifest (not JSON)`);
    }
    const manifest = parseOrThrow(manifestSchema, parsed, `object ${key}`);
    const { signature, ...signed } = manifest;
    if (signature === undefined || !this.signer.verify('manifest', signed, signature)) {
      throw new StorageError('EDAMAGED', `object ${key}: the manifest's signature does not verify (altered, unsigned, or another deployment's)`);
    }
    if (key !== this.manifestKey(manifest)) {
      throw new StorageError('EDAMAGED', `object ${key}: it is the manifest of ${manifest.target.key}/${manifest.id}`);
    }
    return manifest;
  }

  private async put(key: string, body: Readable, compression: Compression, signal?: AbortSignal): Promise<void> {
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.config.bucket,
        Key: key,
        Body: body,
        Metadata: { [META_COMPRESSION]: compression, [META_ENCRYPTED]: this.cipher ? '1' : '0' },
      },
      partSize: this.config.partBytes,
      queueSize: UPLOAD_QUEUE,
    });
    const abort = () => void upload.abort().catch(() => undefined);
    signal?.addEventListener('abort', abort, { once: true });
    try {
      await upload.done();
    } catch (err) {
      // A stream that failed (the compressor, a file read) is the reason, not the SDK's wrapper of it.
      body.destroy();
      throw err;
    } finally {
      signal?.removeEventListener('abort', abort);
    }
  }

  /** An object's body, unsealed; refuses a plain object when a key is configured (the bucket must hold nothing readable). */
  private async get(key: string, what: string, signal?: AbortSignal): Promise<{ body: Readable; compression: Compression }> {
    let res;
    try {
      res = await this.client.send(new GetObjectCommand({ Bucket: this.config.bucket, Key: key }), { abortSignal: signal });
    } catch (err) {
      if (err instanceof NoSuchKey || (err as { name?: string }).name === 'NoSuchKey') {
        throw new StorageError('ECHECKPOINT_NOT_FOUND', `${what}: not in bucket ${this.config.bucket}`);
      }
      throw err;
    }
    const meta = res.Metadata ?? {};
    const compression = meta[META_COMPRESSION] ?? 'none';
    if (compression !== 'none' && compression !== 'lz4' && compression !== 'zstd') {
      throw new StorageError('EDAMAGED', `${what}: unknown compression ${JSON.stringify(compression)}`);
    }
    const encrypted = meta[META_ENCRYPTED] === '1';
    const raw = res.Body as Readable;
    if (encrypted && !this.cipher) {
      raw.destroy();
      throw new StorageError('EDAMAGED', `${what}: encrypted, but storage.remote.encryptionKeyFile is not set`);
    }
    if (!encrypted && this.cipher) {
      raw.destroy();
      throw new StorageError('EDAMAGED', `${what}: not encrypted, though storage.remote.encryptionKeyFile is set`);
    }
    const body = this.cipher ? raw.pipe(this.cipher.decryptor(what)) : raw;
    if (body !== raw) raw.on('error', (err) => body.destroy(err));
    return { body, compression };
  }

  private seal(body: Readable): Readable {
    if (!this.cipher) return body;
    const sealed = this.cipher.encryptor();
    body.on('error', (err) => sealed.destroy(err));
    return body.pipe(sealed);
  }

  private async listObjects(prefix: string): Promise<_Object[]> {
    const objects: _Object[] = [];
    let token: string | undefined;
    do {
      const res = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.config.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      objects.push(...(res.Contents ?? []));
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return objects;
  }

  private checkpointPrefix(manifest: CheckpointName): string {
    // The same checks as a local path: a key or id from anywhere else never shapes an object name.
    if (!isSafeTargetKey(manifest.target.key) || !isCheckpointId(manifest.id)) {
      throw new StorageError('ECHECKPOINT_NOT_FOUND', `not a checkpoint name: ${JSON.stringify(`${manifest.target.key}/${manifest.id}`)}`);
    }
    return this.prefixed(`${manifest.target.key}/${manifest.id}/`);
  }

  private manifestKey(manifest: CheckpointName): string {
    return this.checkpointPrefix(manifest) + MANIFEST_OBJECT;
  }

  private fileKey(manifest: CheckpointName, name: string): string {
    return `${this.checkpointPrefix(manifest)}files/${name}`;
  }

  private prefixed(rest: string): string {
    const prefix = this.config.prefix.replace(/^\/+|\/+$/g, '');
    return prefix ? `${prefix}/${rest}` : rest;
  }
}

/** Passes bytes through, telling how many went by. */
function counter(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      onBytes(chunk.length);
      callback(null, chunk);
    },
  });
}
