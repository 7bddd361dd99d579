import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { CreateBucketCommand, DeleteBucketCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { repoRoot } from '../../src/common/paths.js';
import type { ConfigInput } from '../../src/config/schema.js';

/** s3rver's built-in account. */
const ACCESS_KEY = 'S3RVER';

/**
 * A real S3-compatible server process (s3rver) on a free loopback port with its own folder and one bucket, plus a raw
 * client to look into the bucket the way anyone with its credentials could (no ckpt code in between).
 */
export class TestS3 {
  readonly raw: S3Client;

  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    readonly endpoint: string,
    readonly bucket: string,
  ) {
    this.raw = new S3Client({
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: ACCESS_KEY },
    });
  }

  static async start(bucket = 'ckpt-test'): Promise<TestS3> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-s3-'));
    const child = spawn(process.execPath, [path.join(repoRoot(), 'test/fixtures/s3-server.mjs'), path.join(dir, 'data'), bucket], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    for await (const chunk of child.stdout!) {
      out += String(chunk);
      if (out.includes('\n')) break;
    }
    const port = (JSON.parse(out.split('\n')[0]!) as { port: number }).port;
    return new TestS3(child, dir, `http://127.0.0.1:${port}`, bucket);
  }

  /** A credentials file for storage.remote.credentialsFile (mode 0600, like ckpt demands). */
  async credentialsFile(): Promise<string> {
    const file = path.join(this.dir, 'credentials.json');
    await writeFile(file, JSON.stringify({ accessKeyId: ACCESS_KEY, secretAccessKey: ACCESS_KEY }), { mode: 0o600 });
    return file;
  }

  /** storage.remote for this bucket. */
  async remoteConfig(extra: Partial<NonNullable<NonNullable<ConfigInput['storage']>['remote']>> = {}) {
    return { endpoint: this.endpoint, bucket: this.bucket, credentialsFile: await this.credentialsFile(), ...extra };
  }

  /** Every key in the bucket. */
  async keys(prefix = ''): Promise<string[]> {
    const res = await this.raw.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix }));
    return (res.Contents ?? []).map((o) => o.Key!).sort();
  }

  /** An object's stored bytes and metadata, as they are in the bucket. */
  async get(key: string): Promise<{ bytes: Buffer; metadata: Record<string, string> }> {
    const res = await this.raw.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
    const chunks: Buffer[] = [];
    for await (const c of res.Body as Readable) chunks.push(c as Buffer);
    return { bytes: Buffer.concat(chunks), metadata: res.Metadata ?? {} };
  }

  /** Flips one byte of a stored object (in its middle), keeping its metadata: damage in the bucket. */
  async flipByte(key: string): Promise<void> {
    const { bytes, metadata } = await this.get(key);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    await this.raw.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: bytes, Metadata: metadata }));
  }

  /** Removes the (empty) bucket: every upload to it is refused (NoSuchBucket) until restoreBucket. */
  async removeBucket(): Promise<void> {
    await this.raw.send(new DeleteBucketCommand({ Bucket: this.bucket }));
  }

  async restoreBucket(): Promise<void> {
    await this.raw.send(new CreateBucketCommand({ Bucket: this.bucket }));
  }

  async stop(): Promise<void> {
    this.raw.destroy();
    if (this.child.exitCode === null) {
      this.child.kill('SIGTERM');
      await once(this.child, 'exit');
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}
