import assert from 'node:assert/strict';
import { test } from 'node:test';
import { protoType } from '../../src/criu/codec.js';
import { spawnSync } from 'node:child_process';
import { repoRoot } from '../../src/common/paths.js';
import {
  CriuReqType,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  type CriuReq,
  type CriuResp,
} from '../../src/criu/index.js';

/** The wire contract (CRIU's rpc.proto field numbers), written out independently of proto/rpc.proto. */
const CRIU_OPTS_FIELDS = `1 images_dir_fd 2 pid 3 leave_running 4 ext_unix_sk 5 tcp_established 6 evasive_devices 7 shell_job
  8 file_locks 9 log_level 10 log_file 11 ps 12 notify_scripts 13 root 14 parent_img 15 track_mem 16 auto_dedup 17 work_dir_fd
  18 link_remap 19 veths 20 cpu_cap 21 force_irmap 22 exec_cmd 23 ext_mnt 24 manage_cgroups 25 cg_root 26 rst_sibling
  27 inherit_fd 28 auto_ext_mnt 29 ext_sharing 30 ext_masters 31 skip_mnt 32 enable_fs 33 unix_sk_ino 34 manage_cgroups_mode
  35 ghost_limit 36 irmap_scan_paths 37 external 38 empty_ns 39 join_ns 41 cgroup_props 42 cgroup_props_file
  43 cgroup_dump_controller 44 freeze_cgroup 45 timeout 46 tcp_skip_in_flight 47 weak_sysctls 48 lazy_pages 49 status_fd
  50 orphan_pts_master 51 config_file 52 tcp_close 53 lsm_profile 54 tls_cacert 55 tls_cacrl 56 tls_cert 57 tls_key 58 tls
  59 tls_no_cn_verify 60 cgroup_yard 61 pre_dump_mode 62 pidfd_store_sk 63 lsm_mount_context 64 network_lock
  65 mntns_compat_mode 66 skip_file_rwx_check 67 unprivileged 68 images_dir 69 leave_stopped 70 display_stats 71 log_to_stderr`;

const MESSAGE_FIELDS: Record<string, string> = {
  criu_req: '1 type 2 opts 3 notify_success 4 keep_open 5 features 6 pid',
  criu_resp: '1 type 2 success 3 dump 4 restore 5 notify 6 ps 7 cr_errno 8 features 9 cr_errmsg 10 version 11 status',
  criu_page_server_info: '1 address 2 port 3 pid 4 fd',
  criu_veth_pair: '1 if_in 2 if_out',
  ext_mount_map: '1 key 2 val',
  join_namespace: '1 ns 2 ns_file 3 extra_opt',
  inherit_fd: '1 key 2 fd',
  cgroup_root: '1 ctrl 2 path',
  unix_sk: '1 inode',
  criu_dump_resp: '1 restored',
  criu_restore_resp: '1 pid',
  criu_notify: '1 script 2 pid',
  criu_features: '1 mem_track 2 lazy_pages 3 pidfd_store',
  criu_version: '1 major_number 2 minor_number 3 gitid 4 sublevel 5 extra 6 name',
  criu_opts: CRIU_OPTS_FIELDS,
};

const REQ_TYPES = Object.keys(CriuReqType) as CriuReqType[];

function fieldsOf(name: string): string {
  const type = protoType('rpc.proto', name);
  return type.fieldsArray
    .slice()
    .sort((a, b) => a.id - b.id)
    .map((f) => `${f.id} ${f.name}`)
    .join(' ');
}

test('proto/rpc.proto has every message field of the wire contract, with its number', () => {
  for (const [name, expected] of Object.entries(MESSAGE_FIELDS)) {
    assert.equal(fieldsOf(name), expected.trim().split(/\s+/).join(' '), name);
  }
});

test('proto/rpc.proto enums and defaults match the wire contract', () => {
  const root = protoType('rpc.proto', 'criu_req').root;
  const values = (name: string) => JSON.stringify(root.lookupEnum(name).values);
  assert.equal(
    values('criu_req_type'),
    JSON.stringify({
      EMPTY: 0, DUMP: 1, RESTORE: 2, CHECK: 3, PRE_DUMP: 4, PAGE_SERVER: 5, NOTIFY: 6, CPUINFO_DUMP: 7, CPUINFO_CHECK: 8,
      FEATURE_CHECK: 9, VERSION: 10, WAIT_PID: 11, PAGE_SERVER_CHLD: 12, SINGLE_PRE_DUMP: 13,
    }),
  );
  assert.equal(values('criu_cg_mode'), JSON.stringify({ IGNORE: 0, CG_NONE: 1, PROPS: 2, SOFT: 3, FULL: 4, STRICT: 5, DEFAULT: 6 }));
  assert.equal(values('criu_network_lock_method'), JSON.stringify({ IPTABLES: 1, NFTABLES: 2, SKIP: 3 }));
  assert.equal(values('criu_pre_dump_mode'), JSON.stringify({ SPLICE: 1, VM_READ: 2 }));
  const opts = protoType('rpc.proto', 'criu_opts').fields;
  assert.equal(opts.images_dir_fd!.defaultValue, -1);
  assert.equal(opts.log_level!.defaultValue, 2);
  assert.equal(opts.cpu_cap!.defaultValue, 0xffffffff);
  assert.equal(opts.ghost_limit!.defaultValue, 0x100000);
  assert.equal(opts.images_dir_fd!.required, true);
});

test('proto/stats.proto matches CRIU stats entries', () => {
  const fields = (name: string) =>
    protoType('stats.proto', name)
      .fieldsArray.slice()
      .sort((a, b) => a.id - b.id)
      .map((f) => `${f.id} ${f.name}`)
      .join(' ');
  assert.equal(fields('stats_entry'), '1 dump 2 restore');
  assert.equal(
    fields('dump_stats_entry'),
    '1 freezing_time 2 frozen_time 3 memdump_time 4 memwrite_time 5 pages_scanned 6 pages_skipped_parent 7 pages_written ' +
      '8 irmap_resolve 9 pages_lazy 10 page_pipes 11 page_pipe_bufs 12 shpages_scanned 13 shpages_skipped_parent 14 shpages_written',
  );
  assert.equal(
    fields('restore_stats_entry'),
    '1 pages_compared 2 pages_skipped_cow 3 forking_time 4 restore_time 5 pages_restored',
  );
});

test('a VERSION request is the two bytes CRIU expects', () => {
  assert.deepEqual([...encodeRequest({ type: 'VERSION' })], [0x08, 0x0a]);
});

test('every request type encodes and decodes unchanged, with options, features and nested messages', () => {
  for (const type of REQ_TYPES) {
    const req: CriuReq = {
      type,
      opts: {
        images_dir_fd: 7,
        pid: 1234,
        leave_running: true,
        log_level: 4,
        log_file: 'dump.log',
        notify_scripts: true,
        network_lock: 'NFTABLES',
        manage_cgroups_mode: 'CG_NONE',
        pre_dump_mode: 'VM_READ',
        external: ['unix[123]', 'mnt[/x]:x'],
        ps: { address: '127.0.0.1', port: 1234 },
        veths: [{ if_in: 'veth0', if_out: 'eth0' }],
        join_ns: [{ ns: 'net', ns_file: '/proc/1/ns/net', extra_opt: 'x' }],
        cpu_cap: 0xffffffff,
        images_dir: '/var/lib/x',
        log_to_stderr: false,
      },
      notify_success: true,
      keep_open: false,
      features: { mem_track: true, lazy_pages: false, pidfd_store: true },
      pid: 42,
    };
    assert.deepEqual(decodeRequest(encodeRequest(req)), req, type);
  }
});

test('every reply type encodes and decodes unchanged; unset fields stay unset', () => {
  for (const type of REQ_TYPES) {
    const resp: CriuResp = {
      type,
      success: type !== 'EMPTY',
      dump: { restored: false },
      restore: { pid: 4321 },
      notify: { script: 'post-restore', pid: 4321 },
      cr_errno: 3,
      cr_errmsg: 'Error (criu/cr-dump.c:1): something',
      features: { mem_track: false, lazy_pages: true, pidfd_store: true },
      version: { major_number: 4, minor_number: 2, sublevel: 1, gitid: 'abc', name: 'x', extra: 0 },
      status: 0,
    };
    assert.deepEqual(decodeResponse(encodeResponse(resp)), resp, type);
  }
  assert.deepEqual(decodeResponse(encodeResponse({ type: 'DUMP', success: true })), { type: 'DUMP', success: true });
});

test('a reply missing a required field, or garbage, does not decode', () => {
  // criu_resp with only field 1 (type = DUMP): `success` (required) is missing.
  assert.throws(() => decodeResponse(Buffer.from([0x08, 0x01])), /success/);
  assert.throws(() => decodeResponse(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff])));
});

test('the message types in src/criu are what proto/*.proto generate now (scripts/generate-proto-types.js)', () => {
  const run = spawnSync(process.execPath, ['scripts/generate-proto-types.js', '--check'], { cwd: repoRoot(), encoding: 'utf8' });
  assert.equal(run.status, 0, `stale generated types: ${run.stderr}`);
});
