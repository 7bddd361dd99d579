/**
 * TypeScript shapes of CRIU's RPC messages (proto/rpc.proto), field for field, with CRIU's snake_case names:
 * what the codec encodes and decodes. The public, camelCase options live in options.ts.
 * Enums travel as their names; 64-bit integers as numbers.
 */

export type CriuReqType =
  | 'EMPTY'
  | 'DUMP'
  | 'RESTORE'
  | 'CHECK'
  | 'PRE_DUMP'
  | 'PAGE_SERVER'
  | 'NOTIFY'
  | 'CPUINFO_DUMP'
  | 'CPUINFO_CHECK'
  | 'FEATURE_CHECK'
  | 'VERSION'
  | 'WAIT_PID'
  | 'PAGE_SERVER_CHLD'
  | 'SINGLE_PRE_DUMP';

export const CRIU_REQ_TYPES: readonly CriuReqType[] = [
  'EMPTY',
  'DUMP',
  'RESTORE',
  'CHECK',
  'PRE_DUMP',
  'PAGE_SERVER',
  'NOTIFY',
  'CPUINFO_DUMP',
  'CPUINFO_CHECK',
  'FEATURE_CHECK',
  'VERSION',
  'WAIT_PID',
  'PAGE_SERVER_CHLD',
  'SINGLE_PRE_DUMP',
];

export type CriuCgMode = 'IGNORE' | 'CG_NONE' | 'PROPS' | 'SOFT' | 'FULL' | 'STRICT' | 'DEFAULT';
export type CriuNetworkLockMethod = 'IPTABLES' | 'NFTABLES' | 'SKIP';
export type CriuPreDumpModeName = 'SPLICE' | 'VM_READ';

export interface CriuPageServerInfoMessage {
  address?: string;
  port?: number;
  pid?: number;
  fd?: number;
}

export interface CriuVethPairMessage {
  if_in: string;
  if_out: string;
}

export interface ExtMountMapMessage {
  key: string;
  val: string;
}

export interface JoinNamespaceMessage {
  ns: string;
  ns_file: string;
  extra_opt?: string;
}

export interface InheritFdMessage {
  key: string;
  fd: number;
}

export interface CgroupRootMessage {
  ctrl?: string;
  path: string;
}

export interface UnixSkMessage {
  inode: number;
}

/** criu_opts. images_dir_fd is required on the wire: the client always sets it (an fd, or -1 with images_dir). */
export interface CriuOptsMessage {
  images_dir_fd: number;
  pid?: number;
  leave_running?: boolean;
  ext_unix_sk?: boolean;
  tcp_established?: boolean;
  evasive_devices?: boolean;
  shell_job?: boolean;
  file_locks?: boolean;
  log_level?: number;
  log_file?: string;
  ps?: CriuPageServerInfoMessage;
  notify_scripts?: boolean;
  root?: string;
  parent_img?: string;
  track_mem?: boolean;
  auto_dedup?: boolean;
  work_dir_fd?: number;
  link_remap?: boolean;
  veths?: CriuVethPairMessage[];
  cpu_cap?: number;
  force_irmap?: boolean;
  exec_cmd?: string[];
  ext_mnt?: ExtMountMapMessage[];
  manage_cgroups?: boolean;
  cg_root?: CgroupRootMessage[];
  rst_sibling?: boolean;
  inherit_fd?: InheritFdMessage[];
  auto_ext_mnt?: boolean;
  ext_sharing?: boolean;
  ext_masters?: boolean;
  skip_mnt?: string[];
  enable_fs?: string[];
  unix_sk_ino?: UnixSkMessage[];
  manage_cgroups_mode?: CriuCgMode;
  ghost_limit?: number;
  irmap_scan_paths?: string[];
  external?: string[];
  empty_ns?: number;
  join_ns?: JoinNamespaceMessage[];
  cgroup_props?: string;
  cgroup_props_file?: string;
  cgroup_dump_controller?: string[];
  freeze_cgroup?: string;
  timeout?: number;
  tcp_skip_in_flight?: boolean;
  weak_sysctls?: boolean;
  lazy_pages?: boolean;
  status_fd?: number;
  orphan_pts_master?: boolean;
  config_file?: string;
  tcp_close?: boolean;
  lsm_profile?: string;
  tls_cacert?: string;
  tls_cacrl?: string;
  tls_cert?: string;
  tls_key?: string;
  tls?: boolean;
  tls_no_cn_verify?: boolean;
  cgroup_yard?: string;
  pre_dump_mode?: CriuPreDumpModeName;
  pidfd_store_sk?: number;
  lsm_mount_context?: string;
  network_lock?: CriuNetworkLockMethod;
  mntns_compat_mode?: boolean;
  skip_file_rwx_check?: boolean;
  unprivileged?: boolean;
  images_dir?: string;
  leave_stopped?: boolean;
  display_stats?: boolean;
  log_to_stderr?: boolean;
}

export interface CriuFeaturesMessage {
  mem_track?: boolean;
  lazy_pages?: boolean;
  pidfd_store?: boolean;
}

export interface CriuRequest {
  type: CriuReqType;
  opts?: CriuOptsMessage;
  notify_success?: boolean;
  keep_open?: boolean;
  features?: CriuFeaturesMessage;
  /** For WAIT_PID. */
  pid?: number;
}

export interface CriuVersionMessage {
  major_number: number;
  minor_number: number;
  gitid?: string;
  sublevel?: number;
  extra?: number;
  name?: string;
}

export interface CriuResponse {
  type: CriuReqType;
  success: boolean;
  dump?: { restored?: boolean };
  restore?: { pid: number };
  notify?: { script?: string; pid?: number };
  ps?: CriuPageServerInfoMessage;
  cr_errno?: number;
  features?: CriuFeaturesMessage;
  cr_errmsg?: string;
  version?: CriuVersionMessage;
  status?: number;
}
