// Evidence exports (issue 7's API): start a job for the recordings named,
// for a search or for every preserved recording, then follow the jobs:
// the page polls GET /api/v1/exports every second while one is queued or
// running, and offers the bundle once done (a plain link: the browser
// downloads the zip itself, with its own progress and resume) and
// cancelling or removing a job.
import { t, api, el, say, failed, fmtDateTime, fmtNumber } from './common.js';

const $ = (x) => document.getElementById(x);
const POLL_MS = 1000;
let timer = 0;

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
function bytes(n) {
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return fmtNumber(i ? Math.round(n * 10) / 10 : n) + ' ' + units[i];
}

function row(j) {
  const link = '/api/v1/exports/' + encodeURIComponent(j.id);
  const bar = el('progress', { max: String(Math.max(j.total, 1)), value: String(j.done), 'aria-label': t('exports.progress') }, j.done + '/' + j.total);
  const actions = [];
  if (j.state === 'done') actions.push(el('a', { class: 'button download', href: link + '/download', download: 'callvault-export-' + j.id + '.zip' }, t('exports.download')), ' ');
  const running = j.state === 'queued' || j.state === 'running';
  actions.push(el('button', { type: 'button', class: running ? 'secondary cancel' : 'secondary remove', onclick: () => remove(j, running) },
    running ? t('exports.cancel') : t('exports.remove')));
  return el('tr', { dataset: { id: j.id, state: j.state } },
    el('td', {}, el('time', { datetime: j.created }, fmtDateTime(j.created))), el('td', {}, j.by),
    el('td', { class: 'state' }, t('exportState.' + j.state) + (j.error ? ': ' + j.error : '')),
    el('td', {}, bar, ' ', fmtNumber(j.done) + ' / ' + fmtNumber(j.total)),
    el('td', { class: 'num' }, bytes(j.bytes)), el('td', { class: 'ref' }, j.fingerprint || ''), el('td', { class: 'actions' }, ...actions));
}

async function load() {
  clearTimeout(timer);
  try {
    const jobs = await api('GET', '/api/v1/exports');
    jobs.sort((a, b) => (a.created < b.created ? 1 : -1));
    $('jobs').tBodies[0].replaceChildren(...jobs.map(row));
    $('no-jobs').hidden = jobs.length > 0;
    $('jobs').hidden = jobs.length === 0;
    if (jobs.some((j) => j.state === 'queued' || j.state === 'running')) timer = setTimeout(load, POLL_MS);
  } catch (err) {
    failed(err);
  }
}

async function start(body) {
  try {
    const j = await api('POST', '/api/v1/exports', body);
    say(t('exports.started', { n: j.total }));
    load();
  } catch (err) {
    failed(err);
  }
}

async function remove(j, running) {
  if (!confirm(t(running ? 'exports.confirmCancel' : 'exports.confirmRemove'))) return;
  try {
    await api('DELETE', '/api/v1/exports/' + encodeURIComponent(j.id));
    say(t(running ? 'exports.cancelled' : 'exports.removed'));
    load();
  } catch (err) {
    failed(err);
  }
}

$('export-preserved').addEventListener('submit', (e) => { e.preventDefault(); start({ preserved: true }); });
$('export-query').addEventListener('submit', (e) => {
  e.preventDefault();
  start({ query: $('x-query').value.trim().replace(/^\?/, '') });
});
$('export-ids').addEventListener('submit', (e) => {
  e.preventDefault();
  const ids = $('x-ids').value.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
  start({ ids });
});

load();
