// ckpt dashboard: plain JavaScript, no framework, no build step, nothing loaded from elsewhere.
// State comes from the REST API once, then from the WebSocket feed; a reconnect resumes with `since`, so nothing is
// missed or applied twice. Everything shown from the server is put in the page with textContent (never as HTML).

const MAX_JOBS = 100;
const MAX_EVENTS = 200;
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
  /** Id of the last event applied: the `since` of the next subscription. */
  lastEventId: null,
  selectedJobId: null,
  /** The selected job's CRIU log as the API has it (every line; the feed only carries a sample of a fast log). */
  logText: '',
};

const $ = (id) => document.getElementById(id);

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
    if (parts.has('checkpoints')) renderCheckpoints();
    if (parts.has('schedules')) renderSchedules();
    if (parts.has('log')) renderLog();
  });
}

function renderJobs() {
  const jobs = [...state.jobs.values()].sort((a, b) => (b.createdAt || 0) - (a.createdAt || 0)).slice(0, MAX_JOBS);
  const rows = jobs.map((j) => {
    const p = j.progress || {};
    const shownState = j.retrying && !TERMINAL.has(j.state) ? 'retrying' : j.state;
    const tr = el(
      'tr',
      { 'data-job-id': j.id, 'data-state': j.state, class: j.id === state.selectedJobId ? 'selected' : '', onclick: () => selectJob(j.id) },
      el('td', { class: 'mono', title: j.id, text: shortId(j.id) }),
      td(j.type),
      td(jobTarget(j), 'mono'),
      el('td', {}, badge(shownState)),
      td(TERMINAL.has(j.state) ? '' : p.stage || ''),
      el('td', {}, progressBar(j)),
      td(p.bytesExpected || p.bytesWritten ? `${mib(p.bytesWritten)} / ${mib(p.bytesExpected)}` : ''),
      td(j.attemptsMade || 0),
      td(time(j.createdAt)),
      el('td', {}, j.state === 'failed' ? el('div', { class: 'reason', text: j.failedReason || '' }) : resultCell(j)),
    );
    return tr;
  });
  $('jobs-body').replaceChildren(...rows);
  $('jobs-empty').hidden = rows.length > 0;
  if (state.selectedJobId) {
    const j = state.jobs.get(state.selectedJobId);
    $('log-state').textContent = j ? `${j.type} · ${j.state}${j.progress && j.progress.stage && !TERMINAL.has(j.state) ? ` · ${j.progress.stage}` : ''}` : '';
  }
}

function renderCheckpoints() {
  const rows = state.checkpoints.map((cp) =>
    el(
      'tr',
      { 'data-checkpoint-id': cp.id },
      td(cp.id, 'mono'),
      td(cp.target ? cp.target.key : '-', 'mono'),
      el('td', { class: 'mono cmd', title: cp.target ? cp.target.cmdline : '', text: cp.target ? cp.target.cmdline : '' }),
      td(time(cp.created)),
      td(bytes(cp.bytes)),
      td(cp.scheduleId || '', 'mono'),
      el(
        'td',
        { 'data-verified': cp.verified ? String(cp.verified.ok) : '', title: cp.verified ? `drill at ${time(cp.verified.at)}${cp.verified.reason ? `: ${cp.verified.reason}` : ''}` : '' },
        cp.verified ? badge(cp.verified.ok ? 'restores' : 'drill failed', cp.verified.ok ? 'completed' : 'failed') : null,
      ),
      el('td', {}, cp.pinned ? badge('pinned', 'active') : null),
      el(
        'td',
        {},
        el('button', { type: 'button', class: 'small-btn', text: 'Restore', 'data-action': 'restore', onclick: () => restore(cp.id) }),
        ' ',
        el('button', {
          type: 'button',
          class: 'small-btn secondary',
          text: cp.pinned ? 'Unpin' : 'Pin',
          onclick: () => act(`/api/v1/checkpoints/${encodeURIComponent(cp.id)}/${cp.pinned ? 'unpin' : 'pin'}`, loadCheckpoints),
        }),
      ),
    ),
  );
  $('checkpoints-body').replaceChildren(...rows);
  $('checkpoints-empty').hidden = rows.length > 0;
}

function renderSchedules() {
  const rows = state.schedules.map((s) => {
    const st = s.state || {};
    const status = !s.enabled ? 'disabled' : st.paused ? 'paused' : 'active';
    const health = st.healthy === false ? `unhealthy (${st.consecutiveFailures} failures)` : 'healthy';
    return el(
      'tr',
      { 'data-schedule-id': s.id },
      td(s.id, 'mono'),
      td(`${s.cron}${s.timezone && s.timezone !== 'UTC' ? ` ${s.timezone}` : ''}`, 'mono'),
      td(target(s.target), 'mono'),
      el('td', {}, badge(status, status === 'active' ? 'active-schedule' : status)),
      el('td', { title: (st.lastFailure && st.lastFailure.reason) || '' }, badge(health, st.healthy === false ? 'unhealthy' : 'healthy')),
      td(time(s.nextRunAt)),
      el('td', { class: 'mono', title: st.lastJobId || '', text: st.lastJobId ? shortId(st.lastJobId) : '' }),
      el(
        'td',
        {},
        el('button', { type: 'button', class: 'small-btn', text: 'Run now', onclick: () => act(`/api/v1/schedules/${encodeURIComponent(s.id)}/trigger`) }),
        ' ',
        el('button', {
          type: 'button',
          class: 'small-btn secondary',
          text: st.paused ? 'Resume' : 'Pause',
          onclick: () => act(`/api/v1/schedules/${encodeURIComponent(s.id)}/${st.paused ? 'resume' : 'pause'}`, loadSchedules),
        }),
      ),
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
        : /retrying|stalled|skipped|pruned|exited/.test(e.event)
          ? 'warn'
          : 'info';
    let text = '';
    if (e.event === 'job.failed') text = `${d.final === false ? '(will retry) ' : ''}${String(d.reason || '').split('\n')[0]}`;
    else if (e.event === 'job.completed') text = resultText({ type: e.jobType, result: d.result });
    else if (e.event === 'restore.exited') text = `restored pid ${d.pid} exited ${d.afterMs} ms after its restore`;
    else if (e.event === 'checkpoint.pruned') text = `${d.checkpointId || ''} freed ${bytes(d.bytes)} (${d.reason || 'retention'})`;
    else if (d.reason) text = String(d.reason);
    else if (d.checkpointId) text = d.checkpointId;
    else if (d.jobId) text = `job ${d.jobId}`;
    const subject = e.scheduleId && (e.event.startsWith('schedule.') || !e.jobId) ? `schedule ${e.scheduleId}` : e.jobId ? `${e.jobType || 'job'} ${e.jobId}` : e.target || '';
    list.prepend(
      el('li', { 'data-event': e.event }, el('span', { class: 't', text: time(e.ts) }), el('span', { class: `n ${kind}`, text: e.event }), el('span', { text: `${subject} ${text}`.trim() })),
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
  const { items } = await api('GET', '/api/v1/jobs?limit=50');
  for (const j of items) mergeJob(j);
  render('jobs');
}

let checkpointsTimer = null;
async function loadCheckpoints() {
  const { items } = await api('GET', '/api/v1/checkpoints?limit=30');
  state.checkpoints = items;
  render('checkpoints');
}
let schedulesTimer = null;
async function loadSchedules() {
  const { items } = await api('GET', '/api/v1/schedules');
  state.schedules = items;
  render('schedules');
}
/** Coalesces bursts of events into one reload. */
function reloadSoon(which) {
  if (which === 'checkpoints') {
    clearTimeout(checkpointsTimer);
    checkpointsTimer = setTimeout(() => loadCheckpoints().catch(showLoadError), 150);
  } else {
    clearTimeout(schedulesTimer);
    schedulesTimer = setTimeout(() => loadSchedules().catch(showLoadError), 150);
  }
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
    j = { id: e.jobId, type: e.jobType, state: 'waiting', progress: { stage: 'queued', percent: 0, bytesWritten: 0, bytesExpected: 0 }, attemptsMade: 0, createdAt: e.ts };
    state.jobs.set(e.jobId, j);
    // Who made it and for what: the event does not say, the API does.
    fetchJob(e.jobId);
  }
  return j;
}

function applyEvent(e) {
  state.lastEventId = e.id;
  $('last-event').textContent = `event ${e.id}`;
  if (e.event !== 'job.progress') addEventLine(e);
  const d = e.data || {};
  if (e.event.startsWith('job.') && e.jobId) {
    const j = jobOf(e);
    switch (e.event) {
      case 'job.waiting':
        if (!TERMINAL.has(j.state)) j.state = 'waiting';
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
        j.attemptsMade = d.attemptsMade ?? j.attemptsMade;
        if (d.final === false) {
          j.retrying = true;
        } else {
          j.state = 'failed';
          j.failedReason = d.reason;
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
    if (TERMINAL.has(j.state) && (e.event === 'job.completed' || e.event === 'job.failed')) {
      fetchJob(j.id);
      if (j.id === state.selectedJobId) refreshLog();
    }
    render('jobs');
  }
  if (e.event.startsWith('checkpoint.')) reloadSoon('checkpoints');
  if (e.event.startsWith('schedule.') || e.event === 'checkpoint.created') reloadSoon('schedules');
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
      case 'hello': {
        const first = state.lastEventId === null;
        if (first) state.lastEventId = msg.lastEventId;
        ws.send(JSON.stringify({ op: 'subscribe', channels: ['job', 'schedule', 'checkpoint', 'restore'], since: state.lastEventId }));
        if (first) initialLoad();
        break;
      }
      case 'subscribed':
        reconnectDelay = 250;
        started = true;
        setConn('live', 'live');
        break;
      case 'event':
        if (held) held.push(msg);
        else applyEvent(msg);
        break;
      case 'reset':
        // The events since our last one are no longer kept: load the current state again.
        held = [];
        initialLoad();
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

async function initialLoad() {
  held = held || [];
  try {
    await Promise.all([loadJobs(), loadCheckpoints(), loadSchedules()]);
  } catch (err) {
    showLoadError(err);
  }
  const events = held;
  held = null;
  for (const e of events) applyEvent(e);
}

// ---- actions

async function act(path, after) {
  try {
    await api('POST', path);
    if (after) await after();
  } catch (err) {
    alert(describeError(err));
  }
}

async function restore(checkpointId) {
  const msg = $('dump-message');
  try {
    const { jobId } = await api('POST', '/api/v1/restores', { checkpointId });
    msg.className = 'message ok';
    msg.textContent = `restore job ${jobId} queued`;
    placeholder(jobId, 'restore', { checkpointId });
  } catch (err) {
    msg.className = 'message error';
    msg.textContent = describeError(err);
  }
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
  const msg = $('dump-message');
  const raw = $('dump-pid').value.trim();
  const pid = Number(raw);
  const body = { target: { pid: /^\d+$/.test(raw) ? pid : raw }, leaveRunning: !$('dump-stop').checked };
  const button = $('dump-submit');
  button.disabled = true;
  try {
    const { jobId } = await api('POST', '/api/v1/dumps', body);
    msg.className = 'message ok';
    msg.textContent = `dump job ${jobId} queued`;
    placeholder(jobId, 'dump', body);
    selectJob(jobId);
  } catch (err) {
    msg.className = 'message error';
    msg.textContent = describeError(err);
  } finally {
    button.disabled = false;
  }
});

$('log-close').addEventListener('click', () => {
  state.selectedJobId = null;
  render('jobs', 'log');
});

// Next-run times pass: ask for them again now and then.
setInterval(() => reloadSoon('schedules'), 30_000);

connect();
