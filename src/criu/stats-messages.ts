// Generated from proto/stats.proto by scripts/generate-proto-types.js: do not edit, run `npm run -s generate:proto`.
// CRIU's snake_case names; enums travel as their names, 64-bit integers as numbers (src/criu/codec.ts).

export interface DumpStatsEntry {
  freezing_time: number;
  frozen_time: number;
  memdump_time: number;
  memwrite_time: number;
  pages_scanned: number;
  pages_skipped_parent: number;
  pages_written: number;
  irmap_resolve?: number;
  pages_lazy: number;
  page_pipes?: number;
  page_pipe_bufs?: number;
  shpages_scanned?: number;
  shpages_skipped_parent?: number;
  shpages_written?: number;
}

export interface RestoreStatsEntry {
  pages_compared: number;
  pages_skipped_cow: number;
  forking_time: number;
  restore_time: number;
  pages_restored?: number;
}

export interface StatsEntry {
  dump?: DumpStatsEntry;
  restore?: RestoreStatsEntry;
}
