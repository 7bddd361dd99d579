/**
 * Self size per constructor in a V8 heap snapshot (the BENCH_HEAP_SNAPSHOTS files of bench/scheduler.ts), largest
 * first: where a process's live heap goes. Objects and closures by constructor name; strings, code, arrays and V8's
 * internals by their node type.
 *
 * Run: node dist/bench/lib/heap-summary.js FILE.heapsnapshot [rows, default 25]
 */
import { readFileSync } from 'node:fs';

interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

const [file, rows = '25'] = process.argv.slice(2);
if (!file) {
  console.error('usage: heap-summary FILE.heapsnapshot [rows]');
  process.exit(2);
}
const heap = JSON.parse(readFileSync(file, 'utf8')) as HeapSnapshot;
const fields = heap.snapshot.meta.node_fields;
const typeNames = heap.snapshot.meta.node_types[0];
const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f)) as [number, number, number];
const byKind = new Map<string, { count: number; bytes: number }>();
for (let i = 0; i < heap.nodes.length; i += fields.length) {
  const type = typeNames[heap.nodes[i + typeAt]!]!;
  const kind = type === 'object' || type === 'closure' ? `${type} ${heap.strings[heap.nodes[i + nameAt]!]}` : `(${type})`;
  const entry = byKind.get(kind) ?? { count: 0, bytes: 0 };
  entry.count++;
  entry.bytes += heap.nodes[i + sizeAt]!;
  byKind.set(kind, entry);
}
const total = [...byKind.values()].reduce((sum, e) => sum + e.bytes, 0);
console.log(`${file}: ${(total / 2 ** 20).toFixed(1)} MiB live`);
for (const [kind, { count, bytes }] of [...byKind].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, Number(rows))) {
  console.log(`${(bytes / 1024).toFixed(0).padStart(8)} KiB ${String(count).padStart(8)}  ${kind.slice(0, 90)}`);
}
