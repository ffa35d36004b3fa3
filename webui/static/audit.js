// The audit log viewer: filters by user, recording, action and time,
// newest first, "load more" follows the API's cursor.
import { t, keys, api, el, failed, fmtDateTime, fromLocalInput } from './common.js';

const $ = (x) => document.getElementById(x);
// The actions are the catalog's auditAction.* messages; a test checks
// they cover every action the API knows.
for (const k of keys('auditAction.')) $('a-action').append(el('option', { value: k.slice('auditAction.'.length) }, t(k)));

let query = new URLSearchParams();
let next = '';
// The API filters by the actor's ID; the people seen in the entries so far
// are offered by name (a datalist of ID → name), so nobody has to copy IDs.
const actors = new Map();

function rememberActors(entries) {
  let added = false;
  for (const e of entries) {
    if (e.actor && e.actorName && !actors.has(e.actor)) { actors.set(e.actor, e.actorName); added = true; }
  }
  if (added) $('a-user-list').replaceChildren(...[...actors].map(([id, name]) => el('option', { value: id, label: name }, name)));
}

function read() {
  const q = new URLSearchParams();
  const set = (k, v) => { if (v) q.set(k, v); };
  // A name typed instead of an ID is looked up among the actors seen.
  const who = $('a-user').value.trim();
  const byName = [...actors].find(([, name]) => name === who);
  set('user', byName ? byName[0] : who);
  set('recording', $('a-recording').value.trim());
  set('action', $('a-action').value);
  set('from', fromLocalInput($('a-from').value));
  set('to', fromLocalInput($('a-to').value));
  return q;
}

async function load(append) {
  const q = new URLSearchParams(query);
  q.set('limit', '100');
  if (append && next) q.set('cursor', next);
  try {
    const page = await api('GET', '/api/v1/audit?' + q);
    next = page.next;
    rememberActors(page.entries);
    const rows = page.entries.map((e) => el('tr', {},
      el('td', {}, el('time', { datetime: e.time }, fmtDateTime(e.time))),
      el('td', {}, e.actorName || e.actor),
      el('td', {}, t('auditAction.' + e.action)),
      el('td', {}, t('auditOutcome.' + e.outcome)),
      el('td', {}, e.recording ? el('a', { href: '/recordings/' + e.recording }, e.recording) : ''),
      el('td', {}, e.address || ''),
      el('td', { class: 'detail' }, e.detail || '')));
    const body = $('audit').tBodies[0];
    if (append) body.append(...rows); else body.replaceChildren(...rows);
    $('no-entries').hidden = body.rows.length > 0;
    $('more').hidden = !next;
  } catch (err) {
    failed(err);
  }
}

$('audit-filters').addEventListener('submit', (e) => {
  e.preventDefault();
  query = read();
  load(false);
});
$('more').addEventListener('click', () => load(true));
load(false);
