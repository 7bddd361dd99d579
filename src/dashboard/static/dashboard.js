// ckpt dashboard: plain JavaScript, no framework, no build step, nothing loaded from elsewhere (uPlot, for the plots,
// is served by this server from its npm package).
// On load: the recent events, jobs, checkpoints and schedules from the REST API; then the WebSocket feed from the last
// event loaded (`since`), so nothing is missed or applied twice, also after a reconnect. Everything shown from the
// server is put in the page with textContent (never as HTML).

import uPlot from './uPlot.esm.js';

const MAX_EVENTS = 300;
/** Jobs loaded on start (the feed adds new ones); filtering and paging happen in the page. */
const JOBS_LOADED = 2000;
const PAGE_SIZE = 50;
const TERMINAL = new Set(['completed', 'failed']);

// ---- token: from ?token= once, then kept for this tab only and removed from the address bar (and from history).
const token = (() => {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl) {
    sessionStorage.setItem('ckpt-token', fromUrl);
    url.searchParams.delete('token');
    history.replaceState(null, '', url.pathname + (url.search || '') + url.hash);
  }
  return fromUrl || sessionStorage.getItem('ckpt-token') || '';
})();

const state = {
  /** id -> job (the API's job view, updated by events) */
  jobs: new Map(),
  checkpoints: [],
  schedules: [],
  /** Workloads (ckpt run): processes in their own pid namespace, and copies restored from their checkpoints. */
  workloads: [],
  /** 'read' or 'operate': the caller's role (the API's overview says); action buttons only for 'operate'. */
  role: null,
  /** Id of the last event applied: the `since` of the next subscription. */
  lastEventId: null,
  selectedJobId: null,
  /** The selected job's CRIU log as the API has it (every line; the feed only carries a sample of a fast log). */
  logText: '',
  filter: { search: '', state: '', type: '', target: '', schedule: '', node: '' },
  page: 0,
  /** Attention items the operator dismissed (kept in this browser). */
  dismissed: new Set(JSON.parse(localStorage.getItem('ckpt-dismissed') || '[]')),
};

const $ = (id) => document.getElementById(id);
const canOperate = () => state.role === 'operate';

// ---- HTTP

async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let data = text;
  if ((res.headers.get('content-type') || '').includes('json')) {
    try {
      data = JSON.parse(text);
    } catch {
      // keep the text
    }
  }
  if (!res.ok) {
    const err = new Error((data && data.message) || `${res.status} ${res.statusText}`);
    err.status = res.status;
    err.issues = (data && data.issues) || [];
    err.data = data;
    throw err;
  }
  return data;
}

function describeError(err) {
  if (err.issues && err.issues.length) return err.issues.map((i) => `${i.field}: ${i.reason}`).join('\n');
  return err.message;
}

// ---- formatting

const MiB = 1024 * 1024;
const mib = (b) => (typeof b === 'number' && Number.isFinite(b) ? (b / MiB).toFixed(1) : '?');
function bytes(b) {
  if (typeof b !== 'number') return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = b;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}
function duration(ms) {
  if (typeof ms !== 'number') return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  return `${Math.floor(ms / 60000)}m ${Math.round((ms % 60000) / 1000)}s`;
}
function micros(us) {
  if (typeof us !== 'number') return '';
  return us < 1000 ? `${us} µs` : duration(us / 1000);
}
function time(t) {
  if (t === null || t === undefined || t === '') return '-';
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  const p = (n) => String(n).padStart(2, '0');
  const clock = `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  if (d.toDateString() === new Date().toDateString()) return clock;
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${clock.slice(0, 5)}`;
}
function target(t) {
  if (!t) return '-';
  if (t.pid !== undefined) return `pid ${t.pid}`;
  if (t.pidFile !== undefined) return `pid file ${t.pidFile}`;
  if (t.match !== undefined) return `/${t.match}/`;
  return JSON.stringify(t);
}
function jobTarget(j) {
  const d = j.data || {};
  if (j.type === 'dump' && d.target) return target(d.target);
  if (j.type === 'restore' && d.checkpointId) return d.checkpointId;
  if (d.checkpointIds) return `${d.checkpointIds.length} checkpoints`;
  return j.target || '-';
}
function resultText(j) {
  const r = j.result;
  if (!r) return '';
  const s = r.stats || {};
  const parts = [];
  if (r.restoredPid !== undefined) parts.push(`pid ${r.restoredPid}`);
  if (r.checkpointId && j.type !== 'restore') parts.push(r.checkpointId);
  const frozen = s.frozenTimeUs !== undefined ? s.frozenTimeUs : s.frozenTime;
  if (frozen !== undefined) parts.push(`frozen ${micros(frozen)}`);
  if (s.pagesWritten !== undefined) parts.push(`${s.pagesWritten} pages`);
  if (r.bytes !== undefined) parts.push(bytes(r.bytes));
  if (r.items) parts.push(`${r.succeeded || 0}/${r.items.length} restored`);
  if (r.skipped) parts.push(`skipped: ${r.reason || 'busy'}`);
  if (r.durationMs !== undefined) parts.push(duration(r.durationMs));
  return parts.join(' · ');
}

/** A dump's checkpoint on one line and its figures on the next; other jobs' results on one line. */
function resultCell(j) {
  const r = j.result;
  if (!r) return null;
  const text = resultText({ ...j, result: { ...r, checkpointId: undefined } });
  if (j.type !== 'dump' || !r.checkpointId) return el('div', { class: 'result', text });
  return el('div', { class: 'result' }, el('div', { class: 'mono', text: r.checkpointId }), el('div', { class: 'muted', text }));
}

// ---- DOM helpers (textContent only)

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k.startsWith('data-')) node.setAttribute(k, String(v));
    else node[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}
/** UUID job ids are long; the first 8 characters tell them apart in a list (the full id is the tooltip). */
const shortId = (id) => (/^[0-9a-f]{8}-[0-9a-f-]{27}$/.test(id) ? `${id.slice(0, 8)}…` : id);
const td = (text, cls) => el('td', { class: cls, text: text === undefined || text === null ? '' : String(text) });
const badge = (text, cls) => el('span', { class: `badge ${cls || text}`, text });

function progressBar(j) {
  const p = j.progress || {};
  const percent = j.state === 'completed' ? 100 : Math.max(0, Math.min(100, Math.round(p.percent || 0)));
  const cls = j.state === 'completed' || j.state === 'failed' ? `bar ${j.state}` : 'bar';
  const fill = el('span');
  fill.style.width = `${percent}%`;
  return el('div', { class: cls, role: 'progressbar', 'data-percent': percent, title: `${percent}%` }, fill, el('em', { text: `${percent}%` }));
}

/** Stages as a person reads them (CRIU's notification names and ckpt's own). */
const STAGES = {
  queued: 'queued',
  starting: 'starting',
  resolving: 'finding the process',
  'waiting-target': 'waiting for another dump of it',
  dumping: 'freezing',
  'pre-dump': 'freezing',
  'network-lock': 'locking the network',
  'query-ext-files': 'writing pages',
  'post-dump': 'finishing the dump',
  'network-unlock': 'unlocking the network',
  committing: 'committing',
  done: 'done',
  'waiting-pid': 'waiting for the pid to be free',
  'waiting-batch-slot': 'waiting for a batch slot',
  restoring: 'restoring',
  'pre-restore': 'reading images',
  'setup-namespaces': 'setting up namespaces',
  'post-setup-namespaces': 'restoring memory',
  'post-restore': 'restored',
  'pre-resume': 'resuming',
  'post-resume': 'resumed',
  checking: 'checking it runs',
};
const stageText = (stage) => STAGES[stage] || stage || '';

/** The progress line of a running job: a dump writing pages says how many MiB of how many (never more than all). */
function progressText(j) {
  const p = j.progress || {};
  if (TERMINAL.has(j.state)) return '';
  const stage = stageText(p.stage);
  if (j.type === 'dump' && p.bytesExpected > 0 && p.bytesWritten > 0) {
    return `${stage} ${mib(Math.min(p.bytesWritten, p.bytesExpected))} of ${mib(p.bytesExpected)} MiB`;
  }
  return stage;
}

/** A long reason folded: its first line shown, the rest on demand. */
function folded(text, cls = 'reason') {
  const all = String(text || '');
  const [first, ...rest] = all.split('\n');
  if (!rest.length) return el('div', { class: cls, text: first });
  return el('details', { class: cls }, el('summary', { text: first }), el('pre', { text: rest.join('\n') }));
}

function actionButton(label, action, onclick, secondary = true) {
  return el('button', {
    type: 'button',
    class: `small-btn${secondary ? ' secondary' : ''}`,
    text: label,
    'data-action': action,
    onclick: (ev) => {
      ev.stopPropagation();
      onclick();
    },
  });
}

/** A cell with the row's action buttons, empty for a read-only token (the buttons are not even made). */
function actionsCell(buttons) {
  return el('td', { class: 'wrap' }, canOperate() ? el('div', { class: 'row-actions' }, ...buttons()) : null);
}

/** Asks in a modal dialog; resolves true when confirmed. */
function confirmAction(text) {
  const dialog = $('confirm');
  $('confirm-text').textContent = text;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true }));
}

// ---- rendering (batched to one per frame)

let renderQueued = false;
const dirty = new Set();
function render(...parts) {
  for (const p of parts) dirty.add(p);
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    const parts = new Set(dirty);
    dirty.clear();
    if (parts.has('jobs')) renderJobs();
    if (parts.has('jobs') || parts.has('schedules')) renderAttention();
    if (parts.has('checkpoints') || parts.has('schedules')) renderCheckpoints();
    if (parts.has('schedules')) renderSchedules();
    if (parts.has('workloads')) renderWorkloads();
    if (parts.has('log')) renderLog();
  });
}

/** The target of a job as a key when known (`python3-4242`), else as asked (`pid 4242`). */
function jobTargetKey(j) {
  const d = j.data || {};
  if (j.target) return j.target;
  if (d.resolved && d.resolved.key) return d.resolved.key;
  if (typeof d.target === 'string') return d.target;
  return jobTarget(j);
}

function matches(j) {
  const f = state.filter;
  if (f.state && (f.state === 'waiting' ? !['waiting', 'prioritized'].includes(j.state) : j.state !== f.state)) return false;
  if (f.type && j.type !== f.type) return false;
  if (f.target && jobTargetKey(j) !== f.target) return false;
  if (f.schedule && (j.scheduleId || (j.data && j.data.scheduleId)) !== f.schedule) return false;
  if (f.node && j.node !== f.node) return false;
  if (f.search) {
    const q = f.search.toLowerCase();
    const d = j.data || {};
    const hay = [j.id, jobTargetKey(j), jobTarget(j), d.checkpointId, j.result && j.result.checkpointId].filter(Boolean).join(' ').toLowerCase();
    if (!hay.includes(q)) return false;
  }
  return true;
}

/** Keeps a select's options in step with the values seen, keeping the chosen one. */
function fillSelect(select, label, values) {
  const chosen = select.value;
  const wanted = ['', ...[...values].sort()];
  if (select.options.length === wanted.length && [...select.options].every((o, i) => o.value === wanted[i])) return;
  select.replaceChildren(...wanted.map((v) => el('option', { value: v, text: v || label })));
  select.value = chosen;
}

function renderJobs() {
  // Measured (performance.measure) so the cost of filtering and drawing thousands of jobs can be read from the page.
  const started = performance.now();
  const all = [...state.jobs.values()];
  const targets = new Set();
  const schedules = new Set();
  const nodes = new Set();
  for (const j of all) {
    targets.add(jobTargetKey(j));
    const s = j.scheduleId || (j.data && j.data.scheduleId);
    if (s) schedules.add(s);
    if (j.node) nodes.add(j.node);
  }
  fillSelect($('filter-target'), 'any target', targets);
  fillSelect($('filter-schedule'), 'any schedule', schedules);
  fillSelect($('filter-node'), 'any node', nodes);

  const shown = all.filter(matches).sort((a, b) => (b.createdAt || 0) - (a.createdAt || 0));
  const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
  state.page = Math.min(state.page, pages - 1);
  const slice = shown.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE);
  const rows = slice.map((j) => {
    const shownState = j.retrying && !TERMINAL.has(j.state) ? 'retrying' : j.state;
    const actions = [];
    if (canOperate() && ['waiting', 'delayed', 'active', 'prioritized'].includes(j.state)) {
      actions.push(actionButton('Cancel', 'cancel', () => cancelJob(j.id)));
    }
    if (canOperate() && j.state === 'failed') actions.push(actionButton('Retry', 'retry', () => retryJob(j.id)));
    return el(
      'tr',
      { 'data-job-id': j.id, 'data-state': j.state, class: j.id === state.selectedJobId ? 'selected' : '', onclick: () => selectJob(j.id) },
      el('td', { class: 'mono', title: j.id, text: shortId(j.id) }),
      td(j.type),
      el('td', { class: 'mono wrap', text: jobTargetKey(j) }),
      el('td', {}, badge(shownState)),
      el('td', {}, progressBar(j), el('div', { class: 'stage muted small', text: progressText(j) })),
      td(j.attemptsMade || 0, 'hide-narrow'),
      td(time(j.createdAt), 'hide-narrow'),
      el('td', { class: 'wrap' }, j.state === 'failed' ? folded(j.failedReason) : resultCell(j), actions.length ? el('div', { class: 'row-actions' }, ...actions) : null),
    );
  });
  $('jobs-body').replaceChildren(...rows);
  $('jobs-empty').hidden = rows.length > 0;
  $('jobs-empty').textContent = all.length ? 'No job matches.' : 'No jobs yet.';
  $('jobs-info').textContent = shown.length
    ? `${state.page * PAGE_SIZE + 1}–${state.page * PAGE_SIZE + slice.length} of ${shown.length} jobs${shown.length < all.length ? ` (${all.length} loaded)` : ''}`
    : '';
  $('page-prev').disabled = state.page === 0;
  $('page-next').disabled = state.page >= pages - 1;
  performance.measure('ckpt:render-jobs', { start: started, detail: { jobs: all.length } });
  if (state.selectedJobId) {
    const j = state.jobs.get(state.selectedJobId);
    $('log-state').textContent = j ? `${j.type} · ${j.state}${TERMINAL.has(j.state) ? '' : ` · ${progressText(j)}`}` : '';
  }
}

function dismiss(key) {
  state.dismissed.add(key);
  localStorage.setItem('ckpt-dismissed', JSON.stringify([...state.dismissed].slice(-2000)));
  render('jobs');
}

/** Failed jobs and unhealthy schedules first, until dismissed. */
function renderAttention() {
  const items = [];
  for (const s of state.schedules) {
    const st = s.state || {};
    if (st.healthy !== false) continue;
    const key = `schedule:${s.id}:${st.lastFailure ? st.lastFailure.at : ''}`;
    if (state.dismissed.has(key)) continue;
    items.push(
      el(
        'li',
        { 'data-schedule-id': s.id, class: 'bad' },
        el('div', { class: 'what' }, badge('unhealthy'), el('span', { class: 'mono', text: ` schedule ${s.id}` }), el('span', { class: 'muted small', text: ` ${st.consecutiveFailures} failures in a row` })),
        folded(st.lastFailure ? st.lastFailure.reason : ''),
        el('div', { class: 'row-actions' }, actionButton('Dismiss', 'dismiss', () => dismiss(key))),
      ),
    );
  }
  const failed = [...state.jobs.values()].filter((j) => j.state === 'failed' && !state.dismissed.has(`job:${j.id}`));
  failed.sort((a, b) => (b.finishedAt || b.createdAt || 0) - (a.finishedAt || a.createdAt || 0));
  for (const j of failed.slice(0, 50)) {
    items.push(
      el(
        'li',
        { 'data-job-id': j.id, class: 'bad' },
        el('div', { class: 'what' }, badge('failed'), el('span', { class: 'mono', title: j.id, text: ` ${j.type} ${shortId(j.id)} ` }), el('span', { class: 'mono', text: jobTargetKey(j) }), el('span', { class: 'muted small', text: ` ${time(j.finishedAt || j.createdAt)}` })),
        folded(j.failedReason),
        el('div', { class: 'row-actions' }, canOperate() ? actionButton('Retry', 'retry', () => retryJob(j.id)) : null, actionButton('Dismiss', 'dismiss', () => dismiss(`job:${j.id}`))),
      ),
    );
  }
  if (failed.length > 50) items.push(el('li', { class: 'muted small', text: `and ${failed.length - 50} more failed jobs (filter the jobs by state "failed")` }));
  $('attention').replaceChildren(...items);
  $('attention-card').hidden = items.length === 0;
}

/** The plots of each target: one figure per figure kind, kept across renders so a new checkpoint only adds a point. */
const PLOTS = [
  { kind: 'size', label: 'checkpoint size', value: (c) => c.bytes, format: bytes },
  { kind: 'frozen', label: 'frozen time', value: (c) => c.stats && c.stats.frozenTimeUs, format: micros },
  { kind: 'dump', label: 'dump duration', value: (c) => c.durationMs, format: duration },
  { kind: 'pages', label: 'pages written', value: (c) => c.stats && c.stats.pagesWritten, format: (v) => String(Math.round(v)) },
];
const PLOT_HEIGHT = 110;
/** `${target} ${kind}` -> {figure, caption, box, chart}: uPlot charts live as long as their target has checkpoints. */
const plots = new Map();

function makePlot(format) {
  const box = el('div', { class: 'plot-box' });
  const chart = new uPlot(
    {
      width: 200,
      height: PLOT_HEIGHT,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      // One checkpoint: a minute either side of it (uPlot would otherwise stretch a single instant over years).
      scales: {
        x: {
          time: true,
          range: (u) => {
            const xs = u.data[0];
            return xs.length > 1 ? [xs[0], xs[xs.length - 1]] : xs.length ? [xs[0] - 60, xs[0] + 60] : [0, 1];
          },
        },
      },
      axes: [
        // One line per tick (uPlot's default adds a second line with the date, which a small plot cuts off).
        { size: 22, space: 64, font: '10px system-ui', ticks: { size: 3 }, grid: { stroke: '#eef0f4' }, values: (_u, ticks) => ticks.map((t) => time(t * 1000)) },
        { size: 58, font: '10px system-ui', ticks: { size: 3 }, grid: { stroke: '#eef0f4' }, values: (_u, ticks) => ticks.map(format) },
      ],
      series: [{}, { stroke: '#2f6fde', width: 1.5, spanGaps: true, points: { show: true, size: 5, fill: '#2f6fde' } }],
    },
    [[], []],
    box,
  );
  // The chart takes the width its grid cell gives it (never more: nothing may scroll sideways).
  new ResizeObserver(() => {
    const width = Math.floor(box.clientWidth);
    if (width > 0 && width !== chart.width) chart.setSize({ width, height: PLOT_HEIGHT });
  }).observe(box);
  return { box, chart };
}

/** The target's figure of one kind over time (oldest left), its newest value in the caption; one point per checkpoint. */
function plotOf(key, spec, oldestFirst) {
  const id = `${key} ${spec.kind}`;
  let p = plots.get(id);
  if (!p) {
    const caption = el('figcaption');
    const { box, chart } = makePlot(spec.format);
    p = { figure: el('figure', { class: 'plot', 'data-plot': spec.kind }, caption, box), caption, chart };
    plots.set(id, p);
  }
  const xs = oldestFirst.map((c) => new Date(c.created).getTime() / 1000);
  const ys = oldestFirst.map((c) => {
    const v = spec.value(c);
    return typeof v === 'number' && Number.isFinite(v) ? v : null;
  });
  p.chart.setData([xs, ys]);
  const newest = ys.filter((v) => v !== null).at(-1);
  p.caption.textContent = `${spec.label}: ${newest === undefined ? '-' : spec.format(newest)}`;
  p.figure.dataset.points = String(p.chart.data[0].length);
  p.seen = true;
  return p.figure;
}

/** Charts of targets that no longer have checkpoints go (uPlot holds canvases and listeners). */
function dropUnseenPlots() {
  for (const [id, p] of plots) {
    if (p.seen) p.seen = false;
    else {
      p.chart.destroy();
      plots.delete(id);
    }
  }
}

/** A good checkpoint: one whose latest restore drill, if any, did not fail. */
const good = (cp) => !(cp.verified && !cp.verified.ok);

/** A time with how long ago it was, as an element carrying the instant for whoever reads the page. */
function when(t) {
  return el('time', { dateTime: new Date(t).toISOString(), text: `${time(t)} (${age(t)} ago)` });
}

/**
 * Per schedule that made checkpoints of this target: its last success (its newest good checkpoint, or what the
 * scheduler recorded when the catalog lists none) and its next runs as the server's cron code computes them.
 */
function targetSchedules(cps) {
  const ids = new Set(cps.map((c) => c.scheduleId).filter(Boolean));
  const lines = state.schedules
    .filter((s) => ids.has(s.id))
    .map((s) => {
      const newest = cps.find((c) => c.scheduleId === s.id && good(c));
      const success = newest ? newest.created : s.state && s.state.lastCheckpointAt;
      const runs = s.nextRuns || [];
      return el(
        'div',
        { class: 'target-schedule small', 'data-schedule-id': s.id },
        el('span', { class: 'mono', text: `schedule ${s.id}` }),
        el('span', { class: 'last-success' }, el('span', { class: 'muted', text: 'last success ' }), success ? when(success) : el('span', { text: 'none yet' })),
        el(
          'span',
          { class: 'next-runs' },
          el('span', { class: 'muted', text: 'next runs ' }),
          runs.length ? el('ol', {}, ...runs.map((r) => el('li', { 'data-at': r.at, title: `${r.local} ${s.timezone}${r.dst ? ` (DST: ${r.dst})` : ''}`, text: time(r.at) }))) : el('span', { text: 'none (paused or disabled)' }),
        ),
      );
    });
  return lines.length ? el('div', { class: 'target-schedules' }, ...lines) : null;
}

function age(t) {
  const ms = Date.now() - new Date(t).getTime();
  if (!Number.isFinite(ms)) return '-';
  if (ms < 60_000) return `${Math.max(0, Math.round(ms / 1000))} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`;
  if (ms < 86_400_000) return `${(ms / 3_600_000).toFixed(1)} h`;
  return `${(ms / 86_400_000).toFixed(1)} d`;
}

function renderCheckpoints() {
  const byTarget = new Map();
  for (const cp of state.checkpoints) {
    const key = cp.target ? cp.target.key : '-';
    if (!byTarget.has(key)) byTarget.set(key, []);
    byTarget.get(key).push(cp);
  }
  const blocks = [...byTarget].map(([key, cps]) => {
    const total = cps.reduce((n, c) => n + (c.bytes || 0), 0);
    const oldestFirst = [...cps].reverse();
    const lastGood = cps.find(good);
    const rows = cps.map((cp) =>
      el(
        'tr',
        { 'data-checkpoint-id': cp.id },
        td(cp.id, 'mono'),
        td(age(cp.created), ''),
        td(bytes(cp.bytes)),
        td(cp.scheduleId || '', 'mono hide-narrow'),
        el(
          'td',
          { 'data-verified': cp.verified ? String(cp.verified.ok) : '', title: cp.verified ? `drill at ${time(cp.verified.at)}${cp.verified.reason ? `: ${cp.verified.reason}` : ''}` : '' },
          cp.verified ? badge(cp.verified.ok ? 'restores' : 'drill failed', cp.verified.ok ? 'completed' : 'failed') : null,
        ),
        el('td', {}, cp.pinned ? badge('pinned', 'active') : null),
        el('td', { 'data-location': cp.location || 'local' }, badge(cp.location || 'local', cp.location === 'uploading' ? 'active' : 'completed')),
        actionsCell(() => [
          actionButton('Restore', 'restore', () => restore(cp), false),
          actionButton(cp.pinned ? 'Unpin' : 'Pin', cp.pinned ? 'unpin' : 'pin', () =>
            act('POST', `/api/v1/checkpoints/${encodeURIComponent(cp.id)}/${cp.pinned ? 'unpin' : 'pin'}`, loadCheckpoints),
          ),
          actionButton('Drill', 'verify', () => act('POST', `/api/v1/checkpoints/${encodeURIComponent(cp.id)}/verify`)),
          actionButton('Delete', 'delete', () => deleteCheckpoint(cp)),
        ]),
      ),
    );
    return el(
      'div',
      { class: 'target', 'data-target': key },
      el(
        'div',
        { class: 'target-head' },
        el('h3', { class: 'mono', text: key }),
        el('span', { class: 'muted small', text: `${cps.length} checkpoint${cps.length === 1 ? '' : 's'} · ${bytes(total)} · newest ${age(cps[0].created)} ago` }),
        el('span', { class: 'last-success small' }, el('span', { class: 'muted', text: 'last success ' }), lastGood ? when(lastGood.created) : el('span', { text: 'none' })),
      ),
      targetSchedules(cps),
      el('div', { class: 'plots' }, ...PLOTS.map((spec) => plotOf(key, spec, oldestFirst))),
      el('table', { class: 'grid' }, el('tbody', {}, ...rows)),
    );
  });
  $('targets').replaceChildren(...blocks);
  dropUnseenPlots();
  $('checkpoints-empty').hidden = blocks.length > 0;
}

/** Workloads: state (running, or how it ended), host pid, where it came from, its newest checkpoint. */
function renderWorkloads() {
  const rows = state.workloads.map((w) => {
    const ended = w.ended ? (w.ended.code !== undefined ? `exited ${w.ended.code}` : 'killed') + (w.ended.signal ? ` (${w.ended.signal})` : '') : '';
    const origin = w.origin && w.origin.kind === 'restore' ? `copy of ${w.origin.of} from ${w.origin.checkpointId}` : 'ckpt run';
    return el(
      'tr',
      { 'data-workload': w.name, 'data-state': w.state },
      td(w.name, 'mono'),
      el('td', {}, badge(w.state === 'running' ? 'running' : ended || w.state, w.state === 'running' ? 'active' : 'failed')),
      td(w.node, 'hide-narrow'),
      td(String(w.hostPid), 'mono'),
      td(origin, 'small hide-narrow'),
      td(w.newestCheckpoint ? `${w.newestCheckpoint.id} (${age(w.newestCheckpoint.created)} ago)` : '-', 'mono small'),
    );
  });
  $('workloads-body').replaceChildren(...rows);
  $('workloads-empty').hidden = rows.length > 0;
}

function renderSchedules() {
  const rows = state.schedules.map((s) => {
    const st = s.state || {};
    const status = !s.enabled ? 'disabled' : st.paused ? 'paused' : 'active';
    const health = st.healthy === false ? `unhealthy (${st.consecutiveFailures})` : 'healthy';
    return el(
      'tr',
      { 'data-schedule-id': s.id },
      td(s.id, 'mono'),
      td(`${s.cron}${s.timezone && s.timezone !== 'UTC' ? ` ${s.timezone}` : ''}`, 'mono'),
      el('td', { class: 'mono wrap', text: target(s.target) }),
      el('td', {}, badge(status, status === 'active' ? 'active-schedule' : status)),
      el('td', { title: (st.lastFailure && st.lastFailure.reason) || '' }, badge(health, st.healthy === false ? 'unhealthy' : 'healthy')),
      td(time(s.nextRunAt), 'hide-narrow'),
      actionsCell(() => [
        actionButton('Run now', 'trigger', () => act('POST', `/api/v1/schedules/${encodeURIComponent(s.id)}/trigger`), false),
        actionButton(st.paused ? 'Resume' : 'Pause', st.paused ? 'resume' : 'pause', () =>
          act('POST', `/api/v1/schedules/${encodeURIComponent(s.id)}/${st.paused ? 'resume' : 'pause'}`, loadSchedules),
        ),
      ]),
    );
  });
  $('schedules-body').replaceChildren(...rows);
  $('schedules-empty').hidden = rows.length > 0;
}

function renderLog() {
  const id = state.selectedJobId;
  $('log-card').hidden = !id;
  if (!id) return;
  $('log-job').textContent = `job ${id}`;
  const pre = $('log');
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.textContent = state.logText;
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}

/** The newest line of the events list when it counts job.log lines: the next batch of the same job adds to it. */
let logLine = null;

function addEventLine(e) {
  if (e.event === 'job.progress') return;
  const d = e.data || {};
  const list = $('events');
  if (e.event === 'job.log') {
    const count = (d.lines || []).length + (d.dropped || 0);
    if (logLine && logLine.jobId === e.jobId && list.firstElementChild === logLine.li) {
      logLine.count += count;
      logLine.text.textContent = `${e.jobType || 'job'} ${e.jobId} ${logLine.count} log lines`;
      return;
    }
    const text = el('span', { text: `${e.jobType || 'job'} ${e.jobId} ${count} log lines` });
    const li = el('li', { 'data-event': e.event }, el('span', { class: 't', text: time(e.ts) }), el('span', { class: 'n info', text: e.event }), text);
    logLine = { jobId: e.jobId, count, li, text };
    list.prepend(li);
  } else {
    const kind = /failed|unhealthy/.test(e.event)
      ? 'bad'
      : /completed|created/.test(e.event)
        ? 'ok'
        : /retrying|stalled|skipped|pruned|cancelled|exited/.test(e.event)
          ? 'warn'
          : 'info';
    let text = '';
    if (e.event === 'job.failed') text = `${d.final === false ? '(will retry) ' : ''}${String(d.reason || '').split('\n')[0]}`;
    else if (e.event === 'job.completed') text = resultText({ type: e.jobType, result: d.result });
    else if (e.event === 'restore.exited') text = `restored pid ${d.pid} exited ${d.afterMs} ms after its restore`;
    else if (e.event === 'checkpoint.pruned') text = `${d.checkpointId || ''} freed ${bytes(d.bytes)} (${d.reason || 'retention'})`;
    else if (d.reason) text = String(d.reason).split('\n')[0];
    else if (d.checkpointId) text = d.checkpointId;
    else if (d.jobId) text = `job ${d.jobId}`;
    const subject = e.scheduleId && (e.event.startsWith('schedule.') || !e.jobId) ? `schedule ${e.scheduleId}` : e.jobId ? `${e.jobType || 'job'} ${e.jobId}` : e.target || '';
    list.prepend(
      el('li', { 'data-event': e.event }, el('span', { class: 't', text: time(e.ts) }), el('span', { class: `n ${kind}`, text: e.event }), el('span', { class: 'x', text: `${subject} ${text}`.trim() })),
    );
  }
  while (list.childElementCount > MAX_EVENTS) list.lastElementChild.remove();
  $('events-empty').hidden = true;
}

// ---- state from the API

const STATE_RANK = { waiting: 1, delayed: 1, 'waiting-children': 1, prioritized: 1, active: 2, completed: 3, failed: 3 };

/** Merges a job fetched over HTTP into what events already told us; a state never goes back from a newer one. */
function mergeJob(fetched) {
  const known = state.jobs.get(fetched.id);
  if (!known) {
    state.jobs.set(fetched.id, fetched);
    return;
  }
  const keepState = (STATE_RANK[known.state] || 0) > (STATE_RANK[fetched.state] || 0);
  state.jobs.set(fetched.id, keepState ? { ...fetched, state: known.state, progress: known.progress, result: known.result, failedReason: known.failedReason } : { ...known, ...fetched });
}

async function loadJobs() {
  const { items } = await api('GET', `/api/v1/jobs?limit=${JOBS_LOADED}`);
  for (const j of items) mergeJob(j);
  render('jobs');
}

async function loadCheckpoints() {
  const { items } = await api('GET', '/api/v1/checkpoints?limit=200');
  state.checkpoints = items;
  render('checkpoints');
}
async function loadWorkloads() {
  const { items } = await api('GET', '/api/v1/workloads');
  state.workloads = items;
  render('workloads');
}
async function loadSchedules() {
  const { items } = await api('GET', '/api/v1/schedules');
  state.schedules = items;
  render('schedules');
}

/** Header: counts per state, nodes and the caller's role. */
async function loadOverview() {
  const o = await api('GET', '/api/v1/overview');
  const c = o.counts;
  $('count-waiting').textContent = String(c.waiting);
  $('count-active').textContent = String(c.active);
  $('count-delayed').textContent = String(c.delayed);
  $('count-failed-hour').textContent = String(c.failedLastHour);
  $('count-completed').textContent = String(c.completed);
  const nodes = $('health-nodes');
  const idle = o.nodes.filter((n) => n.workers === 0);
  nodes.className = `chip ${o.nodes.length && !idle.length ? 'ok' : idle.length ? 'bad' : 'unknown'}`;
  nodes.textContent = `${o.nodes.length} node${o.nodes.length === 1 ? '' : 's'}`;
  nodes.title = o.nodes.map((n) => `${n.node}: ${n.workers} worker${n.workers === 1 ? '' : 's'}`).join('\n');
  if (state.role !== o.role) {
    state.role = o.role;
    document.body.dataset.role = o.role;
    render('jobs', 'checkpoints', 'schedules');
  }
}

/** Redis, CRIU and storage as /healthz sees them. */
async function loadHealth() {
  // With tokens configured the checks need one (without, /healthz answers only {status}).
  const res = await fetch('/healthz', { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const { checks } = await res.json();
  for (const name of ['redis', 'criu', 'storage']) {
    const c = checks[name] || { ok: false, error: 'not checked' };
    const chip = $(`health-${name}`);
    chip.className = `chip ${c.ok ? 'ok' : 'bad'}`;
    chip.title = c.ok ? (name === 'storage' ? `${bytes(c.freeBytes)} free` : c.version || 'ok') : c.error || 'failing';
    chip.textContent = name === 'storage' && typeof c.freeBytes === 'number' ? `storage ${bytes(c.freeBytes)} free` : name === 'criu' ? 'CRIU' : name === 'redis' ? 'Redis' : name;
  }
}

const timers = {};
/** Coalesces bursts of events into one reload. */
function reloadSoon(which, ms = 150) {
  const load = { checkpoints: loadCheckpoints, schedules: loadSchedules, overview: loadOverview, workloads: loadWorkloads }[which];
  clearTimeout(timers[which]);
  timers[which] = setTimeout(() => load().catch(showLoadError), ms);
}

const fetchingJobs = new Set();
function fetchJob(id) {
  if (fetchingJobs.has(id)) return;
  fetchingJobs.add(id);
  api('GET', `/api/v1/jobs/${encodeURIComponent(id)}`)
    .then((j) => {
      mergeJob(j);
      render('jobs');
    })
    .catch(() => undefined)
    .finally(() => fetchingJobs.delete(id));
}

function showLoadError(err) {
  if (err.status === 401) setConn('offline', 'this server needs a token: open the page as /?token=…');
  else setConn('offline', `API: ${err.message}`);
}

// ---- events from the feed

function jobOf(e) {
  let j = state.jobs.get(e.jobId);
  if (!j) {
    const d = e.data || {};
    j = { id: e.jobId, type: e.jobType, state: 'waiting', progress: { stage: 'queued', percent: 0, bytesWritten: 0, bytesExpected: 0 }, attemptsMade: 0, createdAt: e.ts };
    if (e.scheduleId) j.scheduleId = e.scheduleId;
    state.jobs.set(e.jobId, j);
    // job.waiting says what the job is for (a burst of new jobs costs no request each); other events do not: ask.
    if (e.event === 'job.waiting') {
      j.node = d.node;
      j.data = { target: d.target, checkpointId: d.checkpointId, checkpointIds: d.checkpointIds, scheduleId: e.scheduleId };
    } else {
      fetchJob(e.jobId);
    }
  }
  if (e.target) j.target = e.target;
  return j;
}

function applyEvent(e) {
  state.lastEventId = e.id;
  $('last-event').textContent = `event ${e.id}`;
  addEventLine(e);
  const d = e.data || {};
  if (e.event.startsWith('job.') && e.jobId) {
    if (e.event === 'job.cancelled' && d.state !== 'active') {
      // Removed from the queue: nothing left to show.
      state.jobs.delete(e.jobId);
      render('jobs');
      reloadSoon('overview', 300);
      return;
    }
    const j = jobOf(e);
    switch (e.event) {
      case 'job.waiting':
        if (!TERMINAL.has(j.state) || d.retried) j.state = 'waiting';
        if (d.retried) j.failedReason = undefined;
        break;
      case 'job.active':
        if (!TERMINAL.has(j.state)) j.state = 'active';
        j.retrying = false;
        break;
      case 'job.progress':
        if (!TERMINAL.has(j.state)) {
          j.state = 'active';
          j.progress = d;
        }
        break;
      case 'job.retrying':
        j.retrying = true;
        if (!TERMINAL.has(j.state)) j.state = 'waiting';
        break;
      case 'job.failed':
      case 'job.cancelled':
        j.attemptsMade = d.attemptsMade ?? j.attemptsMade;
        if (e.event === 'job.failed' && d.final === false) {
          j.retrying = true;
        } else {
          j.state = 'failed';
          j.failedReason = e.event === 'job.cancelled' ? 'cancelled by an operator' : d.reason;
          j.finishedAt = e.ts;
        }
        break;
      case 'job.completed':
        j.state = 'completed';
        j.result = d.result;
        j.finishedAt = e.ts;
        j.progress = { ...(j.progress || {}), percent: 100 };
        break;
      case 'job.log':
        if (j.id === state.selectedJobId) refreshLog();
        break;
      default:
        break;
    }
    // The final view (attempts, finish time) is the API's.
    if (TERMINAL.has(j.state) && ['job.completed', 'job.failed', 'job.cancelled'].includes(e.event)) {
      fetchJob(j.id);
      if (j.id === state.selectedJobId) refreshLog();
    }
    if (e.event !== 'job.progress' && e.event !== 'job.log') reloadSoon('overview', 300);
    render('jobs');
  }
  if (e.event.startsWith('checkpoint.')) reloadSoon('checkpoints');
  if (e.event.startsWith('workload.') || e.event === 'checkpoint.created') reloadSoon('workloads');
  if (e.event.startsWith('schedule.') || e.event === 'checkpoint.created' || e.event === 'job.failed') reloadSoon('schedules');
}

// ---- the feed connection

let ws = null;
let reconnectDelay = 250;
let started = false;
/** Events that arrive while the first REST load runs; applied after it. */
let held = null;

function setConn(kind, text) {
  const c = $('conn');
  c.className = `conn conn-${kind}`;
  c.textContent = text;
}

function subscribe() {
  ws.send(JSON.stringify({ op: 'subscribe', channels: ['job', 'schedule', 'checkpoint', 'workload', 'restore'], since: state.lastEventId, batch: true }));
}

function connect() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const url = `${proto}//${location.host}/api/v1/feed${token ? `?token=${encodeURIComponent(token)}` : ''}`;
  setConn('connecting', started ? 'reconnecting…' : 'connecting…');
  ws = new WebSocket(url);
  ws.onmessage = (m) => {
    let msg;
    try {
      msg = JSON.parse(m.data);
    } catch {
      return;
    }
    switch (msg.type) {
      case 'hello':
        if (state.lastEventId === null) firstLoad(msg.lastEventId);
        else subscribe();
        break;
      case 'subscribed':
        reconnectDelay = 250;
        started = true;
        setConn('live', 'live');
        break;
      case 'event':
        if (held) held.push(msg);
        else applyEvent(msg);
        break;
      case 'events':
        // Several events in one frame (we subscribe with batch: true), oldest first.
        for (const e of msg.events) {
          if (held) held.push(e);
          else applyEvent(e);
        }
        break;
      case 'reset':
        // The events since our last one are no longer kept: load the current state again.
        held = [];
        loadState();
        break;
      case 'error':
        console.warn('feed error', msg);
        break;
      default:
        break;
    }
  };
  // Whatever ended it (server restart, network, 'too slow'), reconnect and resume after the last event applied.
  ws.onclose = () => {
    ws = null;
    setConn('offline', `offline, retrying in ${Math.round(reconnectDelay / 100) / 10}s`);
    // Never connected: a refused upgrade does not say why, the API does (a missing or wrong token, say).
    if (!started) api('GET', '/api/v1/jobs?limit=1').catch(showLoadError);
    setTimeout(connect, reconnectDelay);
    reconnectDelay = Math.min(reconnectDelay * 2, 5000);
  };
}

/** History first (recent events, then jobs and the rest), then live from the last event loaded. */
async function firstLoad(helloLastId) {
  held = [];
  let history = [];
  try {
    history = (await api('GET', `/api/v1/events?limit=${MAX_EVENTS}`)).items;
  } catch (err) {
    showLoadError(err);
  }
  for (const e of history) addEventLine(e);
  state.lastEventId = history.length ? history[history.length - 1].id : helloLastId;
  if (ws) subscribe();
  await loadState();
}

async function loadState() {
  held = held || [];
  try {
    await Promise.all([loadJobs(), loadCheckpoints(), loadSchedules(), loadWorkloads(), loadOverview(), loadHealth()]);
  } catch (err) {
    showLoadError(err);
  }
  const events = held;
  held = null;
  for (const e of events) applyEvent(e);
}

// ---- actions

async function act(method, path, after) {
  try {
    const res = await api(method, path);
    if (after) await after();
    return res;
  } catch (err) {
    alert(describeError(err));
    return null;
  }
}

function say(kind, text) {
  const msg = $('dump-message');
  msg.className = `message ${kind}`;
  msg.textContent = text;
}

async function restore(cp) {
  const ok = await confirmAction(`Restore ${cp.id} of ${cp.target ? cp.target.key : 'its target'}? The process comes back with its pid; it must not be running.`);
  if (!ok) return;
  try {
    const { jobId } = await api('POST', '/api/v1/restores', { checkpointId: cp.id });
    say('ok', `restore job ${jobId} queued`);
    placeholder(jobId, 'restore', { checkpointId: cp.id });
  } catch (err) {
    say('error', describeError(err));
  }
}

async function deleteCheckpoint(cp) {
  if (!(await confirmAction(`Delete checkpoint ${cp.id} and its files?`))) return;
  await act('DELETE', `/api/v1/checkpoints/${encodeURIComponent(cp.id)}`, loadCheckpoints);
}

async function cancelJob(id) {
  if (!(await confirmAction(`Cancel job ${id}? An active dump is aborted; the process is thawed and keeps running.`))) return;
  await act('DELETE', `/api/v1/jobs/${encodeURIComponent(id)}`);
}

async function retryJob(id) {
  const res = await act('POST', `/api/v1/jobs/${encodeURIComponent(id)}/retry`);
  if (res) fetchJob(id);
}

/** Shows a job the moment the API accepted it; its events fill it in. */
function placeholder(jobId, type, data) {
  if (!state.jobs.has(jobId)) {
    state.jobs.set(jobId, { id: jobId, type, state: 'waiting', data, progress: { stage: 'queued', percent: 0 }, attemptsMade: 0, createdAt: Date.now() });
  }
  fetchJob(jobId);
  render('jobs');
}

function selectJob(id) {
  if (state.selectedJobId !== id) state.logText = 'loading…';
  state.selectedJobId = id;
  render('jobs', 'log');
  refreshLog();
}

/** Fetches the selected job's log; one fetch at a time, and one more if lines came meanwhile. */
let logFetch = null;
let logAgain = false;
function refreshLog() {
  if (logFetch) {
    logAgain = true;
    return;
  }
  const id = state.selectedJobId;
  if (!id) return;
  logFetch = api('GET', `/api/v1/jobs/${encodeURIComponent(id)}/log`)
    .then(
      (text) => {
        if (state.selectedJobId === id) state.logText = String(text) || '(nothing logged yet)';
      },
      (err) => {
        if (state.selectedJobId === id) state.logText = `(no log: ${err.message})`;
      },
    )
    .finally(() => {
      logFetch = null;
      render('log');
      if (logAgain) {
        logAgain = false;
        refreshLog();
      }
    });
}

$('dump-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const raw = $('dump-pid').value.trim();
  const kind = $('dump-kind').value;
  const criu = {};
  if ($('dump-tcp').checked) criu.tcpEstablished = true;
  if ($('dump-shell').checked) criu.shellJob = true;
  if ($('dump-locks').checked) criu.fileLocks = true;
  const body = {
    target: kind === 'match' ? { match: raw } : { pid: /^\d+$/.test(raw) ? Number(raw) : raw },
    leaveRunning: !$('dump-stop').checked,
    ...(Object.keys(criu).length ? { criu } : {}),
  };
  const button = $('dump-submit');
  button.disabled = true;
  try {
    const { jobId } = await api('POST', '/api/v1/dumps', body);
    say('ok', `dump job ${jobId} queued`);
    placeholder(jobId, 'dump', body);
    selectJob(jobId);
  } catch (err) {
    say('error', describeError(err));
  } finally {
    button.disabled = false;
  }
});

$('log-close').addEventListener('click', () => {
  state.selectedJobId = null;
  render('jobs', 'log');
});

for (const [id, key] of [['filter-state', 'state'], ['filter-type', 'type'], ['filter-target', 'target'], ['filter-schedule', 'schedule'], ['filter-node', 'node'], ['search', 'search']]) {
  $(id).addEventListener('input', () => {
    state.filter[key] = $(id).value.trim();
    state.page = 0;
    render('jobs');
  });
}
$('page-prev').addEventListener('click', () => {
  state.page = Math.max(0, state.page - 1);
  render('jobs');
});
$('page-next').addEventListener('click', () => {
  state.page++;
  render('jobs');
});

// Next-run times pass, health changes without events: ask again now and then.
setInterval(() => reloadSoon('schedules'), 30_000);
setInterval(() => loadHealth().catch(() => undefined), 10_000);
setInterval(() => reloadSoon('overview'), 15_000);

connect();
