// The admin page's cluster section (issue 8), present only when the
// server rendered it: the installation's admins on a cluster member
// (webui/pages.go handleAdmin). Everything goes through the same routes as
// `callvault cluster status|token|remove`: GET /api/v1/cluster, POST
// /api/v1/cluster/tokens, DELETE /api/v1/cluster/nodes/{id}.
//
// The status is polled every 5 s, but only while the section is on screen
// and the tab is visible: a status call asks every member over the network
// (1 s each at worst), so an admin page left open in a background tab must
// not keep the cluster busy. A poll is scheduled only after the previous one
// answered, so slow answers never pile up.
//
// A join token is shown once, as the API hands it out (the server keeps
// only its hash), with the command line to run on the new node, built from
// the fields above it; it is cleared when it expires.
import { t, has, api, el, say, failed, fmtNumber, fmtDateTime } from './common.js';

const $ = (x) => document.getElementById(x);
const section = $('cluster');
const refreshMs = 5000;

const stateText = (s) => (has(`cluster.state-${s}`) ? t(`cluster.state-${s}`) : s);
const num = (n) => (n === undefined || n === null ? '' : fmtNumber(n));

let timer = 0;
let onScreen = false;
let busy = false;
let tokenExpires = null;

// shq quotes a word for a POSIX shell when it needs it.
function shq(s) {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(s) ? s : "'" + s.replace(/'/g, "'\\''") + "'";
}

function render(st) {
  $('c-leader').textContent = st.leader || t('cluster.noLeader');
  $('c-term').textContent = num(st.term);
  $('c-commit').textContent = num(st.commit_index);
  $('c-applied').textContent = num(st.applied_index);
  const self = (st.nodes || []).find((n) => n.id === st.id);
  $('c-replicas').textContent = self && self.files ? num(self.files.replicas) : '';
  $('cluster-nodes').tBodies[0].replaceChildren(...(st.nodes || []).map((n) => {
    const leader = n.id === st.leader;
    const f = n.files;
    let rm = '';
    if (!leader) {
      rm = el('button', { type: 'button', class: 'secondary remove', 'aria-label': t('cluster.remove') + ' ' + n.id, onclick: () => remove(n.id) }, t('cluster.remove'));
    }
    // The ID is left to right even on an Arabic page; the marks after it
    // follow the page's direction.
    const id = el('td', {}, el('span', { class: 'ref', dir: 'ltr' }, n.id));
    if (leader) id.append(' ', el('strong', { class: 'leader-mark' }, '★ ' + t('cluster.isLeader')));
    if (n.id === st.id) id.append(' ', el('span', { class: 'muted self-mark' }, '(' + t('cluster.thisNode') + ')'));
    return el('tr', { dataset: { id: n.id, state: n.state, voter: String(!!n.voter), leader: String(leader) }, class: leader ? 'leader' : null },
      id, el('td', { class: 'ref', dir: 'ltr' }, n.address),
      el('td', { class: 'state' }, stateText(n.state)),
      el('td', { class: 'voter' }, n.voter ? t('common.yes') : t('common.no')),
      el('td', { class: 'contact' }, leader ? '—' : (n.last_contact || '')),
      el('td', { class: 'num' }, num(n.commit_index)), el('td', { class: 'num' }, num(n.applied_index)),
      el('td', { class: 'num backlog' }, f ? num(f.backlog) : ''), el('td', { class: 'num under' }, f ? num(f.under_replicated) : ''),
      el('td', { class: 'num' }, f ? num(f.copied) + (f.failed ? ' / ' + t('cluster.failed', { n: num(f.failed) }) : '') : ''),
      el('td', { class: 'actions' }, rm));
  }));
  $('c-updated').textContent = t('cluster.updated', { time: fmtDateTime(new Date().toISOString()) });
}

async function refresh() {
  if (busy) return;
  busy = true;
  try {
    render(await api('GET', '/api/v1/cluster'));
    section.dataset.loaded = 'true';
  } catch (err) {
    if (err.status === 404 || err.status === 501) {
      // No longer (or never) a cluster member: the section has nothing to say.
      section.hidden = true;
      stop();
      return;
    }
    failed(err);
  } finally {
    busy = false;
  }
  if (tokenExpires && Date.now() >= tokenExpires) clearToken();
  schedule();
}

function schedule() {
  clearTimeout(timer);
  timer = 0;
  if (onScreen && document.visibilityState === 'visible' && !section.hidden) timer = setTimeout(refresh, refreshMs);
}

function stop() {
  clearTimeout(timer);
  timer = 0;
}

async function remove(id) {
  if (!confirm(t('cluster.removeConfirm', { id }))) return;
  try {
    await api('DELETE', '/api/v1/cluster/nodes/' + encodeURIComponent(id));
    say(t('cluster.removed', { id }));
  } catch (err) {
    failed(err);
  }
  refresh();
}

// command is what the admin runs on the new node.
function command(token) {
  const dataDir = $('c-new-data').value.trim() || '/var/lib/callvault';
  const httpAddr = $('c-new-http').value.trim() || 'HOST:8080';
  const clusterAddr = $('c-new-cluster').value.trim() || 'HOST:PORT';
  return ['callvault', 'serve', '--data-dir', shq(dataDir), '--http', shq(httpAddr), '--cluster-addr', shq(clusterAddr),
    '--join', shq(location.origin), '--join-token', shq(token)].join(' ');
}

function clearToken() {
  tokenExpires = null;
  $('c-token-value').value = '';
  $('c-command').value = '';
  $('c-token-box').hidden = true;
}

$('cluster-join-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    const tok = await api('POST', '/api/v1/cluster/tokens');
    tokenExpires = new Date(tok.expires).getTime();
    $('c-token-value').value = tok.token;
    $('c-command').value = command(tok.token);
    $('c-expires').textContent = t('cluster.expires', { time: fmtDateTime(tok.expires) });
    $('c-token-box').hidden = false;
    say(t('cluster.tokenCreated'));
    $('c-command').focus();
    $('c-command').select();
  } catch (err) {
    failed(err);
  }
});

// The fields of the new node change the command line of a token on screen.
for (const id of ['c-new-data', 'c-new-http', 'c-new-cluster']) {
  $(id).addEventListener('input', () => { if ($('c-token-value').value) $('c-command').value = command($('c-token-value').value); });
}

// copy uses the clipboard API where the browser allows it (https or
// localhost) and falls back to selecting the text and the copy command,
// so it works on an appliance served over plain http on the LAN too.
async function copy(field) {
  const text = field.value;
  try {
    await navigator.clipboard.writeText(text);
  } catch (e) {
    field.focus();
    field.select();
    if (!document.execCommand('copy')) {
      say(t('cluster.copyManual'), true);
      return;
    }
  }
  say(t('cluster.copiedDone'));
}

$('c-copy-token').addEventListener('click', () => copy($('c-token-value')));
$('c-copy-command').addEventListener('click', () => copy($('c-command')));

new IntersectionObserver((entries) => {
  const was = onScreen;
  onScreen = entries.some((x) => x.isIntersecting);
  if (onScreen && !was) refresh();
  else if (!onScreen) stop();
}).observe(section);

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && onScreen) refresh();
  else stop();
});

// The first status at once, wherever the section is on the page.
refresh();
