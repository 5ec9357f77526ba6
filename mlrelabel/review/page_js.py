"""The review page's script (inline in the page; see `page`). Decisions are records `{image, class, action,
kind, time[, replacement]}`; the standing decision of a row is the replay of every record in order ('undo'
clears it), the same rule as `mlrelabel.decisions.read_decisions`."""

JS = r"""
'use strict';
const D = JSON.parse(document.getElementById('data').textContent);
const KINDS = ['add', 'remove', 'replace'];
const PAGE = 60;
const N = D.img.length;
const params = new URLSearchParams(location.search);
const TOKEN = params.get('token');
const SERVED = location.protocol !== 'file:' && TOKEN !== null;
const STORE_KEY = 'mlrelabel-review:' + D.title + ':' + N;
const keyOf = i => D.images[D.img[i]].path + '\t' + D.cls[i];
const rowOfKey = new Map();
for (let i = 0; i < N; i++) rowOfKey.set(keyOf(i), i);
let records = [];         // every decision record, in order (server's file, or localStorage)
let state = new Map();    // row index -> 'accept' | 'reject'
let order = [];           // filtered, sorted row indices
let page = 0, cursor = 0;
const history = [];       // rows decided in this tab, for undo
const mine = new Set();   // rows decided in this tab: they stay listed under 'undecided'
let storage = null;

function banner(text, error) {
  const b = document.getElementById('banner');
  b.textContent = text; b.hidden = !text; b.className = 'banner' + (error ? ' error' : '');
}
function replay() {
  state = new Map();
  for (const r of records) {
    const i = rowOfKey.get(r.image + '\t' + r.class);
    if (i === undefined) continue;
    if (r.action === 'undo') state.delete(i); else state.set(i, r.action);
  }
}
function openStorage() {
  try {
    const s = window.localStorage;
    const probe = STORE_KEY + ':probe';
    s.setItem(probe, '1'); s.removeItem(probe);
    return s;
  } catch (e) { return null; }
}
async function load() {
  if (SERVED) {
    try {
      const res = await fetch('api/decisions?token=' + encodeURIComponent(TOKEN), {cache: 'no-store'});
      if (!res.ok) throw new Error('HTTP ' + res.status);
      records = await res.json();
    } catch (e) { banner('Could not read decisions from the server (' + e.message + ').', true); return; }
  } else if (storage) {
    try { records = JSON.parse(storage.getItem(STORE_KEY) || '[]'); } catch (e) { records = []; }
  }
  replay();
}
async function save(record) {
  if (SERVED) {
    const res = await fetch('api/decisions?token=' + encodeURIComponent(TOKEN), {
      method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(record)});
    if (!res.ok) throw new Error('HTTP ' + res.status + ': ' + await res.text());
    records = await res.json();
  } else {
    records.push(record);
    if (storage) storage.setItem(STORE_KEY, JSON.stringify(records));
  }
  replay();
}
function recordFor(i, action) {
  const r = {image: D.images[D.img[i]].path, class: D.cls[i], action: action, kind: KINDS[D.kind[i]],
             time: new Date().toISOString()};
  if (D.rep[i] >= 0) r.replacement = D.rep[i];
  return r;
}
async function decide(i, action) {
  try {
    const prev = state.get(i);
    if (prev === action) return;
    if (prev) await save(recordFor(i, 'undo'));
    await save(recordFor(i, action));
    history.push(i); mine.add(i);
    banner(storage || SERVED ? '' : STORAGE_WARNING, true);
  } catch (e) { banner('Decision not saved: ' + e.message, true); }
  render(); move(1);
}
async function undo() {
  const i = history.pop();
  if (i === undefined || !state.has(i)) return;
  try { await save(recordFor(i, 'undo')); } catch (e) { banner('Undo not saved: ' + e.message, true); }
  render(); select(order.indexOf(i) >= 0 ? order.indexOf(i) : cursor);
}
const uncertainty = i => Math.abs(D.score[i] - 0.5);
function compute() {
  const kind = document.getElementById('f-kind').value, cls = document.getElementById('f-class').value;
  const lo = parseFloat(document.getElementById('f-min').value || '0');
  const hi = parseFloat(document.getElementById('f-max').value || '1');
  const show = document.getElementById('f-show').value, sort = document.getElementById('f-sort').value;
  const out = [];
  for (let i = 0; i < N; i++) {
    if (kind !== '' && D.kind[i] !== +kind) continue;
    if (cls !== '' && D.cls[i] !== +cls && D.rep[i] !== +cls) continue;
    if (D.score[i] < lo || D.score[i] > hi) continue;
    const done = state.has(i);
    if ((show === 'todo' && done && !mine.has(i)) || (show === 'done' && !done)) continue;
    out.push(i);
  }
  if (sort === 'uncertain') out.sort((a, b) => uncertainty(a) - uncertainty(b) || a - b);
  else if (sort === 'score') out.sort((a, b) => D.score[b] - D.score[a] || a - b);
  else out.sort((a, b) => D.img[a] - D.img[b] || D.cls[a] - D.cls[b]);
  order = out;
}
function text(tag, cls, value) {
  const e = document.createElement(tag); if (cls) e.className = cls; e.textContent = value; return e;
}
function card(i, pos) {
  const c = document.createElement('div');
  const s = state.get(i);
  c.className = 'card' + (s ? ' ' + s : '') + (pos === cursor ? ' current' : '');
  c.dataset.row = i; c.dataset.pos = pos;
  const pic = document.createElement('div'); pic.className = 'pic';
  const img = document.createElement('img');
  img.loading = 'lazy'; img.alt = D.images[D.img[i]].path;
  img.src = 'img/' + D.img[i] + '.png' + (SERVED ? '?token=' + encodeURIComponent(TOKEN) : '');
  pic.appendChild(img);
  const b = D.box[i];
  if (b) {
    const box = document.createElement('div'); box.className = 'box';
    box.style.top = (100 * b[0]) + '%'; box.style.left = (100 * b[1]) + '%';
    box.style.height = (100 * (b[2] - b[0])) + '%'; box.style.width = (100 * (b[3] - b[1])) + '%';
    pic.appendChild(box);
  }
  c.appendChild(pic);
  const what = document.createElement('div'); what.className = 'what';
  const name = D.classes[D.cls[i]], kind = KINDS[D.kind[i]];
  what.appendChild(text('span', kind, kind));
  what.append(' ' + name + (D.kind[i] === 2 ? ' \u2192 ' + D.classes[D.rep[i]] : ''));
  c.appendChild(what);
  c.appendChild(text('div', 'meta', 'score ' + D.score[i].toFixed(3) + ' \u00b7 given ' + (D.given[i] || 'none')));
  const others = D.images[D.img[i]].labels.filter(x => x !== D.cls[i]).map(x => D.classes[x]);
  c.appendChild(text('div', 'meta', 'other labels: ' + (others.join(', ') || 'none')));
  c.appendChild(text('div', 'meta', D.images[D.img[i]].path));
  c.appendChild(text('div', 'state', s ? (s === 'accept' ? '\u2713 accepted' : '\u2717 rejected') : ''));
  const buttons = document.createElement('div'); buttons.className = 'buttons';
  for (const [label, action] of [['Accept (a)', 'accept'], ['Reject (r)', 'reject']]) {
    const btn = text('button', '', label); btn.type = 'button'; btn.dataset.action = action;
    buttons.appendChild(btn);
  }
  c.appendChild(buttons);
  return c;
}
function render() {
  const pages = Math.max(1, Math.ceil(order.length / PAGE));
  page = Math.min(page, pages - 1);
  const main = document.getElementById('cards');
  const frag = document.createDocumentFragment();
  const start = page * PAGE;
  for (let p = start; p < Math.min(order.length, start + PAGE); p++) frag.appendChild(card(order[p], p));
  main.replaceChildren(frag);
  if (!order.length) main.appendChild(text('p', '', 'No proposals match the filters.'));
  document.getElementById('pageinfo').textContent = 'page ' + (page + 1) + ' of ' + pages +
    ' (' + order.length + ' shown)';
  const decided = state.size;
  document.getElementById('counts').textContent = decided + ' decided \u00b7 ' + (N - decided) + ' remaining';
}
function select(pos) {
  if (!order.length) return;
  cursor = Math.max(0, Math.min(order.length - 1, pos));
  const p = Math.floor(cursor / PAGE);
  if (p !== page) { page = p; render(); }
  for (const e of document.querySelectorAll('.card.current')) e.classList.remove('current');
  const el = document.querySelector('.card[data-pos="' + cursor + '"]');
  if (el) { el.classList.add('current'); el.scrollIntoView({block: 'nearest'}); }
}
function move(step) { select(cursor + step); }
function refresh() { compute(); render(); select(cursor); }
function exportDecisions() {
  const blob = new Blob(records.map(r => JSON.stringify(r) + '\n'), {type: 'application/x-ndjson'});
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob); a.download = 'decisions.jsonl';
  document.body.appendChild(a); a.click(); a.remove();
}
const STORAGE_WARNING = 'Browser storage is unavailable here (file:// in a strict browser): decisions are kept ' +
  'only in this tab and are lost on reload. Use "Export decisions" before closing.';
document.addEventListener('keydown', e => {
  if (e.target.tagName === 'INPUT' || e.target.tagName === 'SELECT' || e.ctrlKey || e.metaKey || e.altKey) return;
  const i = order[cursor];
  const k = e.key;
  if (k === 'a' && i !== undefined) decide(i, 'accept');
  else if (k === 'r' && i !== undefined) decide(i, 'reject');
  else if (k === 's' || k === 'j' || k === 'ArrowRight') move(1);
  else if (k === 'k' || k === 'ArrowLeft') move(-1);
  else if (k === 'u') undo();
  else if (k === ']') select((page + 1) * PAGE);
  else if (k === '[') select((page - 1) * PAGE);
  else return;
  e.preventDefault();
});
document.getElementById('cards').addEventListener('click', e => {
  const c = e.target.closest('.card'); if (!c) return;
  select(+c.dataset.pos);
  if (e.target.dataset.action) decide(+c.dataset.row, e.target.dataset.action);
});
for (const id of ['f-kind', 'f-class', 'f-min', 'f-max', 'f-show', 'f-sort'])
  document.getElementById(id).addEventListener('change', () => { page = 0; cursor = 0; refresh(); });
document.getElementById('prev').addEventListener('click', () => select((page - 1) * PAGE));
document.getElementById('next').addEventListener('click', () => select((page + 1) * PAGE));
document.getElementById('export').addEventListener('click', exportDecisions);
async function start() {
  const classSelect = document.getElementById('f-class');
  D.classes.forEach((name, c) => { const o = document.createElement('option'); o.value = c; o.textContent = name;
    classSelect.appendChild(o); });
  if (!SERVED) {
    storage = openStorage();
    if (!storage) banner(STORAGE_WARNING, true);
  }
  await load();
  refresh();
  if (SERVED) {  // another tab's decisions: re-read them now and then, and whenever this tab is shown
    const sync = async () => { await load(); compute(); render(); select(cursor); };
    setInterval(sync, 5000);
    document.addEventListener('visibilitychange', () => { if (!document.hidden) sync(); });
  }
  window.reviewReady = true;
}
start();
"""
