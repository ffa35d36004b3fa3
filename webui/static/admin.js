// Administration: the tenant's users (list, create, enable/disable, set a
// password). Groups, tenants, retention and storage tiers have no API
// route yet; the page says so instead of pretending.
import { t, api, el, say, failed } from './common.js';

const $ = (x) => document.getElementById(x);
const permNames = ['play', 'download', 'delete', 'preserve', 'notes', 'bulkDownload', 'upload'];

async function load() {
  try {
    const users = await api('GET', '/api/v1/users');
    users.sort((a, b) => a.username.localeCompare(b.username));
    $('users').tBodies[0].replaceChildren(...users.map(row));
  } catch (err) {
    failed(err);
  }
}

function row(u) {
  const perms = permNames.filter((p) => u.permissions[p]).map((p) => t('perm.' + p)).join(', ');
  const toggle = u.disabled
    ? el('button', { type: 'button', class: 'secondary', onclick: () => act(u, 'enable') }, t('admin.enable'))
    : el('button', { type: 'button', class: 'secondary', onclick: () => act(u, 'disable') }, t('admin.disable'));
  toggle.setAttribute('aria-label', toggle.textContent + ' ' + u.username);
  const pw = el('button', { type: 'button', class: 'secondary', 'aria-label': t('admin.setPassword') + ' ' + u.username, onclick: () => setPassword(u) }, t('admin.setPassword'));
  return el('tr', { dataset: { username: u.username } },
    el('td', {}, u.username), el('td', {}, u.displayName || ''), el('td', {}, t('role.' + u.role)),
    el('td', {}, u.groups.join(', ')), el('td', {}, u.supervisedGroups.join(', ')), el('td', {}, perms),
    el('td', {}, u.disabled ? t('admin.disabled') : t('admin.enabled')), el('td', { class: 'actions' }, toggle, ' ', pw));
}

async function act(u, verb) {
  try {
    await api('POST', '/api/v1/users/' + encodeURIComponent(u.id) + '/' + verb);
    say(t(verb === 'enable' ? 'admin.enabledDone' : 'admin.disabledDone', { name: u.username }));
    load();
  } catch (err) {
    failed(err);
  }
}

async function setPassword(u) {
  const pw = prompt(t('admin.newPasswordFor', { name: u.username }));
  if (!pw) return;
  try {
    await api('POST', '/api/v1/users/' + encodeURIComponent(u.id) + '/password', { password: pw });
    say(t('admin.passwordSet', { name: u.username }));
  } catch (err) {
    failed(err);
  }
}

const list = (v) => v.split(',').map((s) => s.trim()).filter(Boolean);

$('user-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const permissions = {};
  for (const box of e.target.querySelectorAll('input[name="perm"]')) permissions[box.value] = box.checked;
  const body = {
    username: $('u-name').value.trim(), displayName: $('u-display').value.trim(), password: $('u-password').value,
    role: $('u-role').value, groups: list($('u-groups').value), supervisedGroups: list($('u-supervised').value), permissions,
  };
  try {
    await api('POST', '/api/v1/users', body);
    say(t('admin.created', { name: body.username }));
    e.target.reset();
    load();
  } catch (err) {
    failed(err);
  }
});

load();
