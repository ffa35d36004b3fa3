// Administration of the admin's tenant, all through /api/v1: users
// (create, edit role, groups and permissions, enable/disable, set a
// password), groups (create, edit name, supervisors, members and the
// permissions they restrict), tenants (the installation's admins only:
// the server leaves that section out for everyone else), retention
// defaults per tenant and group, the storage tiers with their usage, and
// on a cluster member the cluster (cluster.js).
// A user's effective permissions are shown next to their own, because a
// group's restriction is otherwise invisible: a member may do what both
// allow (store/meta Group.Permissions).
import { t, has, api, el, say, failed, fmtNumber } from './common.js';

const $ = (x) => document.getElementById(x);
const permNames = ['play', 'download', 'delete', 'preserve', 'notes', 'bulkDownload', 'upload'];
const main = $('main');

let users = [];
let groups = [];

const byId = (list) => new Map(list.map((x) => [x.id, x]));
const permList = (p) => permNames.filter((n) => p && p[n]).map((n) => t('perm.' + n)).join(', ') || t('admin.nothing');

// effective is what a user may do after their groups' restrictions.
function effective(u, gmap) {
  const out = {};
  for (const n of permNames) {
    out[n] = !!u.permissions[n] && u.groups.every((g) => { const gr = gmap.get(g); return !gr || !gr.permissions || !!gr.permissions[n]; });
  }
  return out;
}

function options(select, list, label, chosen) {
  const want = new Set(chosen || []);
  select.replaceChildren(...list.map((x) => { const o = el('option', { value: x.id }, label(x)); o.selected = want.has(x.id); return o; }));
}

const chosen = (select) => [...select.selectedOptions].map((o) => o.value);

async function load() {
  try {
    [users, groups] = await Promise.all([api('GET', '/api/v1/users'), api('GET', '/api/v1/groups')]);
    users.sort((a, b) => a.username.localeCompare(b.username));
    groups.sort((a, b) => a.name.localeCompare(b.name));
    renderUsers();
    renderGroups();
    if ($('user-form').dataset.id === '') {
      options($('u-groups'), groups, (g) => g.name, chosen($('u-groups')));
      options($('u-supervised'), groups, (g) => g.name, chosen($('u-supervised')));
    }
    if ($('group-form').dataset.id === '') fillGroupPickers(null);
    const keep = $('r-group').value;
    $('r-group').replaceChildren($('r-group').options[0], ...groups.map((g) => el('option', { value: g.id }, g.name)));
    $('r-group').value = keep;
  } catch (err) {
    failed(err);
  }
}

function renderUsers() {
  const gmap = byId(groups);
  const gname = (id) => (gmap.get(id) || { name: id }).name;
  $('users').tBodies[0].replaceChildren(...users.map((u) => {
    const toggle = el('button', { type: 'button', class: 'secondary', onclick: () => act(u, u.disabled ? 'enable' : 'disable') },
      u.disabled ? t('admin.enable') : t('admin.disable'));
    toggle.setAttribute('aria-label', toggle.textContent + ' ' + u.username);
    const pw = el('button', { type: 'button', class: 'secondary', 'aria-label': t('admin.setPassword') + ' ' + u.username, onclick: () => setPassword(u) }, t('admin.setPassword'));
    const edit = el('button', { type: 'button', class: 'secondary edit', 'aria-label': t('admin.edit') + ' ' + u.username, onclick: () => editUser(u) }, t('admin.edit'));
    return el('tr', { dataset: { username: u.username, id: u.id } },
      el('td', {}, u.username), el('td', {}, u.displayName || ''), el('td', { class: 'role' }, t('role.' + u.role)),
      el('td', { class: 'groups' }, u.groups.map(gname).join(', ')), el('td', {}, u.supervisedGroups.map(gname).join(', ')),
      el('td', { class: 'perms' }, permList(u.permissions)), el('td', { class: 'effective' }, permList(effective(u, gmap))),
      el('td', { class: 'state' }, u.disabled ? t('admin.disabled') : t('admin.enabled')), el('td', { class: 'actions' }, edit, ' ', toggle, ' ', pw));
  }));
}

function renderGroups() {
  const umap = byId(users);
  const uname = (id) => (umap.get(id) || { username: id }).username;
  $('groups').tBodies[0].replaceChildren(...groups.map((g) => {
    const members = users.filter((u) => u.groups.includes(g.id)).map((u) => u.username);
    const edit = el('button', { type: 'button', class: 'secondary edit', 'aria-label': t('admin.edit') + ' ' + g.name, onclick: () => editGroup(g) }, t('admin.edit'));
    return el('tr', { dataset: { id: g.id } },
      el('td', { class: 'ref' }, g.id), el('td', {}, g.name), el('td', { class: 'supervisors' }, g.supervisors.map(uname).join(', ')),
      el('td', { class: 'members' }, members.join(', ')), el('td', { class: 'restricts' }, g.permissions ? permList(g.permissions) : t('admin.noRestriction')),
      el('td', { class: 'actions' }, edit));
  }));
  $('no-groups').hidden = groups.length > 0;
  $('groups').hidden = groups.length === 0;
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

// ---- user form: create, or edit the user picked in the table ----

function setMode(form, heading, submit, cancel, id) {
  form.dataset.id = id;
  $(heading).textContent = id ? $(heading).dataset.edit : $(heading).dataset.new;
  $(submit).textContent = id ? $(submit).dataset.edit : $(submit).dataset.new;
  $(cancel).hidden = !id;
}

function editUser(u) {
  setMode($('user-form'), 'h-user-form', 'u-submit', 'u-cancel', u.id);
  $('u-name').value = u.username;
  $('u-name').readOnly = true;
  $('u-display').value = u.displayName || '';
  // A password is set with its own button; the edit route does not take one.
  $('u-password').hidden = $('u-password-label').hidden = true;
  $('u-password').required = false;
  $('u-role').value = u.role;
  options($('u-groups'), groups, (g) => g.name, u.groups);
  options($('u-supervised'), groups, (g) => g.name, u.supervisedGroups);
  for (const box of $('user-form').querySelectorAll('input[name="perm"]')) box.checked = !!u.permissions[box.value];
  $('u-display').focus();
}

function resetUserForm() {
  $('user-form').reset();
  setMode($('user-form'), 'h-user-form', 'u-submit', 'u-cancel', '');
  $('u-name').readOnly = false;
  $('u-password').hidden = $('u-password-label').hidden = false;
  $('u-password').required = true;
  options($('u-groups'), groups, (g) => g.name, []);
  options($('u-supervised'), groups, (g) => g.name, []);
}

function formPerms(form, name) {
  const out = {};
  for (const box of form.querySelectorAll(`input[name="${name}"]`)) out[box.value] = box.checked;
  return out;
}

// userBody is the full body PUT /api/v1/users/{id} wants, from a listed user.
const userBody = (u, change) => ({ displayName: u.displayName || '', role: u.role, groups: u.groups, supervisedGroups: u.supervisedGroups, permissions: u.permissions, ...change });

$('u-cancel').addEventListener('click', resetUserForm);
$('user-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const id = e.target.dataset.id;
  const body = {
    displayName: $('u-display').value.trim(), role: $('u-role').value, groups: chosen($('u-groups')),
    supervisedGroups: chosen($('u-supervised')), permissions: formPerms(e.target, 'perm'),
  };
  const name = $('u-name').value.trim();
  try {
    if (id) {
      await api('PUT', '/api/v1/users/' + encodeURIComponent(id), body);
      say(t('admin.userSaved', { name }));
    } else {
      // The admin chose the password: the user replaces it at the first sign-in.
      await api('POST', '/api/v1/users', { ...body, username: name, password: $('u-password').value, mustChangePassword: true });
      say(t('admin.created', { name }));
    }
    resetUserForm();
    load();
  } catch (err) {
    failed(err);
  }
});

// ---- group form ----

function fillGroupPickers(g) {
  // Supervisors are people who can search recordings: admins and supervisors.
  const sups = users.filter((u) => u.role === 'supervisor' || u.role === 'admin');
  options($('g-supervisors'), sups, (u) => u.username, g ? g.supervisors : chosen($('g-supervisors')));
  options($('g-members'), users, (u) => u.username, g ? users.filter((u) => u.groups.includes(g.id)).map((u) => u.id) : chosen($('g-members')));
}

function setRestrict(on) {
  $('g-restrict').checked = on;
  $('g-perms').disabled = !on;
}

function editGroup(g) {
  setMode($('group-form'), 'h-group-form', 'g-submit', 'g-cancel', g.id);
  $('g-name').value = g.name;
  $('g-id').value = g.id;
  $('g-id').readOnly = true;
  fillGroupPickers(g);
  setRestrict(!!g.permissions);
  for (const box of $('group-form').querySelectorAll('input[name="gperm"]')) box.checked = g.permissions ? !!g.permissions[box.value] : box.defaultChecked;
  $('g-name').focus();
}

function resetGroupForm() {
  $('group-form').reset();
  setMode($('group-form'), 'h-group-form', 'g-submit', 'g-cancel', '');
  $('g-id').readOnly = false;
  setRestrict(false);
  fillGroupPickers({ supervisors: [], id: '\0' });
}

$('g-restrict').addEventListener('change', () => setRestrict($('g-restrict').checked));
$('g-cancel').addEventListener('click', resetGroupForm);
$('group-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const editing = e.target.dataset.id;
  const body = { name: $('g-name').value.trim(), supervisors: chosen($('g-supervisors')) };
  if ($('g-restrict').checked) body.permissions = formPerms(e.target, 'gperm');
  const members = new Set(chosen($('g-members')));
  try {
    let g;
    if (editing) {
      g = await api('PUT', '/api/v1/groups/' + encodeURIComponent(editing), body);
    } else {
      if ($('g-id').value.trim()) body.id = $('g-id').value.trim();
      g = await api('POST', '/api/v1/groups', body);
    }
    // Membership is kept on the user: change those whose membership differs.
    for (const u of users) {
      const isIn = u.groups.includes(g.id);
      if (isIn === members.has(u.id)) continue;
      const groupsNow = isIn ? u.groups.filter((x) => x !== g.id) : [...u.groups, g.id];
      await api('PUT', '/api/v1/users/' + encodeURIComponent(u.id), userBody(u, { groups: groupsNow }));
    }
    say(t(editing ? 'admin.groupSaved' : 'admin.groupCreated', { name: g.name }));
    resetGroupForm();
    await load();
    loadRetention();
  } catch (err) {
    failed(err);
    load();
  }
});

// ---- tenants (present only for the installation's admins) ----

async function loadTenants() {
  if (!$('tenants')) return;
  try {
    const ts = await api('GET', '/api/v1/tenants');
    $('tenants').tBodies[0].replaceChildren(...ts.map((x) => el('tr', { dataset: { id: x.id } }, el('td', { class: 'ref' }, x.id || '—'), el('td', {}, x.name))));
  } catch (err) {
    failed(err);
  }
}

if ($('tenant-form')) $('tenant-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const body = { name: $('t-name').value.trim(), id: $('t-id').value.trim() };
  try {
    const x = await api('POST', '/api/v1/tenants', body);
    say(t('admin.tenantCreated', { name: x.name }));
    e.target.reset();
    loadTenants();
  } catch (err) {
    failed(err);
  }
});

// ---- retention ----

const daysText = (d) => (d === 0 ? t('admin.keepForever') : t('admin.days', { n: fmtNumber(d) }));

async function loadRetention() {
  try {
    const r = await api('GET', '/api/v1/retention');
    $('ret-tenant').textContent = r.tenantDays === null || r.tenantDays === undefined ? t('admin.retentionNone') : t('admin.retentionNow', { days: daysText(r.tenantDays) });
    const gmap = byId(groups);
    $('retention').tBodies[0].replaceChildren(...r.policies.map((p) => {
      const scope = p.group ? (gmap.get(p.group) || { name: p.group }).name : t('admin.retentionTenant');
      const rm = el('button', { type: 'button', class: 'secondary', 'aria-label': t('admin.remove') + ' ' + scope, onclick: () => setRetention(p.group || '', -1) }, t('admin.remove'));
      return el('tr', { dataset: { group: p.group || '' } }, el('td', {}, scope), el('td', { class: 'num' }, daysText(p.days)), el('td', {}, rm));
    }));
  } catch (err) {
    failed(err);
  }
}

async function setRetention(group, days, recompute) {
  try {
    const r = await api('PUT', '/api/v1/retention', { group, days, recompute });
    say(recompute ? t('admin.retentionRecomputed', { count: fmtNumber(r.recomputed || 0) }) : t('admin.retentionSaved'));
    loadRetention();
  } catch (err) {
    failed(err);
  }
}

$('retention-form').addEventListener('submit', (e) => {
  e.preventDefault();
  setRetention($('r-group').value, Number($('r-days').value), $('r-recompute').checked);
});

// ---- storage tiers ----

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
function bytes(n) {
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return fmtNumber(i ? Math.round(n * 10) / 10 : n) + ' ' + units[i];
}

async function loadStorage() {
  try {
    const tiers = await api('GET', '/api/v1/storage');
    $('storage').tBodies[0].replaceChildren(...tiers.map((x) => {
      const total = x.bytesUsed + x.bytesFree;
      const pct = total > 0 ? Math.round((100 * x.bytesUsed) / total) : 0;
      const bar = el('meter', { min: '0', max: '100', value: String(pct), 'aria-label': t('storage.usage') + ' ' + x.name }, pct + ' %');
      return el('tr', { dataset: { tier: x.name } },
        el('td', {}, has(`storage.tier-${x.name}`) ? t(`storage.tier-${x.name}`) : x.name), el('td', { class: 'ref' }, x.path),
        el('td', { class: 'num used' }, x.error ? '' : bytes(x.bytesUsed)), el('td', { class: 'num free' }, x.error ? '' : bytes(x.bytesFree)),
        el('td', {}, x.error ? '' : bar, x.error ? '' : ' ' + pct + ' %'),
        el('td', { class: 'num' }, x.recordings === undefined || x.recordings === null ? '' : fmtNumber(x.recordings)),
        el('td', { class: 'state' }, x.error ? t('storage.unavailable') + ': ' + x.error : t('storage.ok')));
    }));
    $('no-storage').hidden = tiers.length > 0;
    $('storage').hidden = tiers.length === 0;
  } catch (err) {
    failed(err);
  }
}

// The cluster section exists only on a cluster member (pages.go): its
// module is loaded only then.
if ($('cluster')) import('./cluster.js').catch(failed);

main.dataset.loaded = 'false';
Promise.all([load(), loadTenants(), loadStorage()]).then(loadRetention).then(() => { main.dataset.loaded = 'true'; });
