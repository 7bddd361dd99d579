// Generated from proto/rpc.proto by scripts/generate-proto-types.js: do not edit, run `npm run -s generate:proto`.
// CRIU's snake_case names; enums travel as their names, 64-bit integers as numbers (src/criu/codec.ts).

export interface CriuPageServerInfo {
  address?: string;
  port?: number;
  pid?: number;
  fd?: number;
}

export interface CriuVethPair {
  if_in: string;
  if_out: string;
}

export interface ExtMountMap {
  key: string;
  val: string;
}

export interface JoinNamespace {
  ns: string;
  ns_file: string;
  extra_opt?: string;
}

export interface InheritFd {
  key: string;
  fd: number;
}

export interface CgroupRoot {
  ctrl?: string;
  path: string;
}

export interface UnixSk {
  inode: number;
}

export const CriuCgMode = {
  IGNORE: 0,
  CG_NONE: 1,
  PROPS: 2,
  SOFT: 3,
  FULL: 4,
  STRICT: 5,
  DEFAULT: 6,
} as const;
export type CriuCgMode = keyof typeof CriuCgMode;

export const CriuNetworkLockMethod = {
  IPTABLES: 1,
  NFTABLES: 2,
  SKIP: 3,
} as const;
export type CriuNetworkLockMethod = keyof typeof CriuNetworkLockMethod;

export const CriuPreDumpMode = {
  SPLICE: 1,
  VM_READ: 2,
} as const;
export type CriuPreDumpMode = keyof typeof CriuPreDumpMode;

export interface CriuOpts {
  images_dir_fd: number;
  /** unset on dump: CRIU dumps the requesting process itself */
  pid?: number;
  leave_running?: boolean;
  ext_unix_sk?: boolean;
  tcp_established?: boolean;
  evasive_devices?: boolean;
  shell_job?: boolean;
  file_locks?: boolean;
  log_level?: number;
  /** a bare name, written in the work dir */
  log_file?: string;
  ps?: CriuPageServerInfo;
  notify_scripts?: boolean;
  root?: string;
  parent_img?: string;
  track_mem?: boolean;
  auto_dedup?: boolean;
  work_dir_fd?: number;
  link_remap?: boolean;
  /** deprecated: use external */
  veths?: CriuVethPair[];
  cpu_cap?: number;
  force_irmap?: boolean;
  exec_cmd?: string[];
  /** deprecated: use external */
  ext_mnt?: ExtMountMap[];
  /** backward compatibility */
  manage_cgroups?: boolean;
  cg_root?: CgroupRoot[];
  /** swrk only */
  rst_sibling?: boolean;
  /** swrk only */
  inherit_fd?: InheritFd[];
  auto_ext_mnt?: boolean;
  ext_sharing?: boolean;
  ext_masters?: boolean;
  skip_mnt?: string[];
  enable_fs?: string[];
  /** deprecated: use external */
  unix_sk_ino?: UnixSk[];
  manage_cgroups_mode?: CriuCgMode;
  ghost_limit?: number;
  irmap_scan_paths?: string[];
  external?: string[];
  empty_ns?: number;
  join_ns?: JoinNamespace[];
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
  pre_dump_mode?: CriuPreDumpMode;
  pidfd_store_sk?: number;
  lsm_mount_context?: string;
  network_lock?: CriuNetworkLockMethod;
  mntns_compat_mode?: boolean;
  skip_file_rwx_check?: boolean;
  unprivileged?: boolean;
  /** a path; send images_dir_fd = -1 with it */
  images_dir?: string;
  leave_stopped?: boolean;
  display_stats?: boolean;
  log_to_stderr?: boolean;
}

export interface CriuDumpResp {
  restored?: boolean;
}

export interface CriuRestoreResp {
  pid: number;
}

export interface CriuNotify {
  script?: string;
  pid?: number;
}

export const CriuReqType = {
  EMPTY: 0,
  DUMP: 1,
  RESTORE: 2,
  CHECK: 3,
  PRE_DUMP: 4,
  PAGE_SERVER: 5,
  NOTIFY: 6,
  CPUINFO_DUMP: 7,
  CPUINFO_CHECK: 8,
  FEATURE_CHECK: 9,
  VERSION: 10,
  WAIT_PID: 11,
  PAGE_SERVER_CHLD: 12,
  SINGLE_PRE_DUMP: 13,
} as const;
export type CriuReqType = keyof typeof CriuReqType;

/** Features that FEATURE_CHECK can be asked about: set the ones to query, the reply says which are available. */
export interface CriuFeatures {
  mem_track?: boolean;
  lazy_pages?: boolean;
  pidfd_store?: boolean;
}

export interface CriuReq {
  type: CriuReqType;
  opts?: CriuOpts;
  notify_success?: boolean;
  /** Keep the connection for more requests; honoured only by PAGE_SERVER(_CHLD), CPUINFO_*, FEATURE_CHECK and VERSION. */
  keep_open?: boolean;
  features?: CriuFeatures;
  /** For WAIT_PID. */
  pid?: number;
}

export interface CriuResp {
  type: CriuReqType;
  success: boolean;
  dump?: CriuDumpResp;
  restore?: CriuRestoreResp;
  notify?: CriuNotify;
  ps?: CriuPageServerInfo;
  cr_errno?: number;
  features?: CriuFeatures;
  cr_errmsg?: string;
  version?: CriuVersion;
  status?: number;
}

/** The reply to VERSION. */
export interface CriuVersion {
  major_number: number;
  minor_number: number;
  gitid?: string;
  sublevel?: number;
  extra?: number;
  name?: string;
}
