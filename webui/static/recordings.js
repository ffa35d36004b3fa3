// The recordings table: filters, quick filters, sorting (start time in
// the store; the other columns within the page shown), cursor paging,
// auto-refresh every 15 s that keeps the selection and the scroll
// position, and multi-select download (zip) and delete. The server
// rendered the first page; this module takes over from there and builds
// rows with the same markup.
import { t, api, request, el, say, failed, fmtDuration, localizeTimes, saveBlob, fileName,
  toLocalInput, fromLocalInput, zone } from './common.js';

const main = document.getElementById('main');
const table = document.getElementById('recordings');
if (table) init();

function init() {
  const mine = main.dataset.mine === 'true';
  const me = main.dataset.userId;
  const tbody = table.tBodies[0];
  const form = document.getElementById('filters');
  const $ = (id) => document.getElementById(id);
  const selected = new Set();
  const REFRESH_MS = 15000;
  const MAX_ZIP = 20;

  // The query the rows answer: API parameter names, without the cursor.
  const initial = new URLSearchParams(table.dataset.query || '');
  let cursor = initial.get('cursor') || '';
  initial.delete('cursor');
  let params = initial;
  // Columns the API sorts (see "Sorting" below) and the sort key of each.
  const SERVER_SORT = { direction: 'direction', duration: 'duration', user: 'user', group: 'group', local: 'localNumber', remote: 'remoteNumber', preserved: 'preserved', rating: 'rating' };
  // The server-side sort other than by time, from the page's own query:
  // { col (the table column), key (the API's sort key), dir }.
  let serverSort = null;
  {
    const s = initial.get('sort') || '';
    const key = s.replace(/^-/, '');
    const col = Object.keys(SERVER_SORT).find((c) => SERVER_SORT[c] === key);
    if (col) serverSort = { col, key, dir: s.startsWith('-') ? -1 : 1 };
  }
  let next = table.dataset.next || '';
  const back = []; // cursors of the pages before this one
  let busy = false;
  let refreshes = 0;

  // Fill the interval fields: the page's own, else the default window
  // (the last 7 days, as the API's default).
  const fromInput = $('f-from'), toInput = $('f-to');
  const defaultFrom = toLocalInput(new Date(Date.now() - 7 * 24 * 3600 * 1000));
  fromInput.value = fromInput.dataset.value ? toLocalInput(new Date(fromInput.dataset.value)) : defaultFrom;
  if (toInput.dataset.value) toInput.value = toLocalInput(new Date(toInput.dataset.value));
  let fromTouched = !!fromInput.dataset.value;
  fromInput.addEventListener('input', () => { fromTouched = true; });

  function readForm() {
    const p = new URLSearchParams();
    const exact = $('f-idref').value.trim() || $('f-callid').value.trim();
    // An exact lookup searches all time unless the user set an interval.
    if (fromInput.value && (fromTouched || !exact)) p.set('from', fromLocalInput(fromInput.value));
    if (toInput.value) p.set('to', fromLocalInput(toInput.value));
    const min = $('f-min').value.trim(), max = $('f-max').value.trim();
    if (min) p.set('minDurationMs', String(Math.round(Number(min) * 1000)));
    if (max) p.set('maxDurationMs', String(Math.round(Number(max) * 1000)));
    if ($('f-callid').value.trim()) p.set('callId', $('f-callid').value.trim());
    const idref = $('f-idref').value.trim();
    if (idref) p.set(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(idref) ? 'recordingId' : 'reference', idref);
    if ($('f-notes').value.trim()) p.set('notes', $('f-notes').value.trim());
    if ($('f-direction').value) p.set('direction', $('f-direction').value);
    const remote = $('f-remote').value.trim();
    if (remote) p.set(/\p{L}/u.test(remote) ? 'remoteName' : 'remoteNumber', remote);
    if ($('f-user').value) p.set('localUser', $('f-user').value);
    if (serverSort) p.set('sort', (serverSort.dir < 0 ? '-' : '') + serverSort.key);
    else if ($('f-sort').value === 'oldest') p.set('sort', 'oldest');
    return p;
  }

  function apiQuery(p, c) {
    const q = new URLSearchParams(p);
    if (mine) q.set('localUser', me);
    if (c) q.set('cursor', c);
    return q;
  }

  function cell(...children) { return el('td', {}, ...children); }

  function quick(filter, value, label) {
    return el('button', { type: 'button', class: 'qf', dataset: { filter, value }, title: t('quick.apply') }, label);
  }

  function row(r) {
    const ref = r.reference || '';
    const remote = r.remoteParty.name ? r.remoteParty.name + (r.remoteParty.number ? ' (' + r.remoteParty.number + ')' : '') : (r.remoteParty.number || '');
    const user = r.localParty.name || r.localParty.username || '';
    const box = el('input', { type: 'checkbox', class: 'sel', value: r.id, 'aria-label': t('rec.selectRow') + ' ' + ref });
    box.checked = selected.has(r.id);
    return el('tr', { dataset: { id: r.id } },
      cell(box),
      cell(quick('direction', r.direction, t('dir.' + r.direction))),
      cell(el('a', { class: 'open', href: '/recordings/' + r.id }, el('time', { datetime: r.start }, r.start))),
      el('td', { class: 'num' }, fmtDuration(r.durationMs)),
      cell(r.localParty.user ? quick('localUser', r.localParty.user, user) : user),
      cell(r.group || ''),
      cell(r.localParty.number || ''),
      cell(r.remoteParty.number ? quick('remoteNumber', r.remoteParty.number, remote) : remote),
      el('td', { class: 'ref' }, ref),
      cell(r.preserved ? el('span', { class: 'badge' }, t('common.yes')) : ''),
      el('td', { class: 'num' }, r.rating ? el('span', { class: 'stars', title: r.rating + '/5' }, '★ ' + r.rating) : ''),
      el('td', { class: 'num' }, r.bookmarks.length ? String(r.bookmarks.length) : ''));
  }

  function render(recs) {
    tbody.replaceChildren(...recs.map(row));
    localizeTimes(tbody);
    $('empty').hidden = recs.length > 0;
    $('page-next').disabled = !next;
    $('page-prev').disabled = back.length === 0;
    $('page-first').disabled = back.length === 0;
    applyPageSort();
    syncSelection();
  }

  // Sorting. The store sorts by start time, and by duration, direction,
  // user, group, local and remote number, hold and rating (SERVER_SORT: the
  // whole result, up to 50,000 matches, paged by the API; more and it asks
  // for a narrower time range). The reference (issued in creation order)
  // and bookmark columns sort the rows of the page on screen, in the
  // browser, and the page says so (#sort-note); an auto-refresh or a new
  // page keeps that column's order.
  let pageSort = null; // { key, col, num, dir: 1 ascending | -1 descending }
  const headers = [...table.tHead.rows[0].cells];
  const collator = new Intl.Collator(document.documentElement.lang, { numeric: true, sensitivity: 'base' });

  function cellValue(tr, col, num) {
    const text = tr.cells[col].textContent.trim();
    if (!num) return text;
    if (text.includes(':')) return text.split(':').reduce((acc, part) => acc * 60 + Number(part), 0);
    return Number(text.replace(/[^0-9.]/g, '')) || 0;
  }

  function applyPageSort() {
    const active = pageSort || (serverSort && { key: serverSort.col, dir: serverSort.dir });
    for (const th of headers) {
      if (th.dataset.col) th.setAttribute('aria-sort', active && active.key === th.dataset.col ? (active.dir > 0 ? 'ascending' : 'descending') : 'none');
    }
    $('th-start').setAttribute('aria-sort', active ? 'none' : (params.get('sort') === 'oldest' ? 'ascending' : 'descending'));
    $('sort-note').hidden = !pageSort;
    if (!pageSort) return;
    const { col, num, dir } = pageSort;
    // Array sort is stable: equal values keep the store's time order.
    const rows = [...tbody.rows].sort((a, b) => {
      const x = cellValue(a, col, num), y = cellValue(b, col, num);
      return dir * (num ? x - y : collator.compare(x, y));
    });
    tbody.append(...rows);
  }

  for (const b of table.tHead.querySelectorAll('button.sort')) {
    b.addEventListener('click', () => {
      const th = b.closest('th');
      const key = b.dataset.key;
      if (SERVER_SORT[key]) {
        pageSort = null;
        serverSort = serverSort && serverSort.col === key ? { ...serverSort, dir: -serverSort.dir } : { col: key, key: SERVER_SORT[key], dir: 1 };
        search();
        return;
      }
      pageSort = pageSort && pageSort.key === key ? { ...pageSort, dir: -pageSort.dir } : { key, col: headers.indexOf(th), num: b.dataset.kind === 'num', dir: 1 };
      applyPageSort();
    });
  }
  $('sort-clear').addEventListener('click', () => {
    pageSort = null;
    load(cursor, true);
  });
  // A sort the server refused (too many matches): back to time order, with
  // the server's explanation shown.
  function sortRefused(err) {
    if (!serverSort || !err || err.status !== 400 || !/sort/.test(err.message || '')) return false;
    serverSort = null;
    params = readForm();
    applyPageSort();
    say(t('sort.tooMany'), true);
    load('', false);
    return true;
  }

  // load shows the page at cursor c. keepView keeps the scroll position
  // (auto-refresh); the selection is kept always.
  // A newer request wins: a search typed while a refresh is under way is
  // not dropped, and the refresh's late answer is ignored.
  let seq = 0;
  async function load(c, keepView) {
    const mySeq = ++seq;
    busy = true;
    const x = window.scrollX, y = window.scrollY;
    const wrap = $('table-wrap'), wx = wrap.scrollLeft, wy = wrap.scrollTop;
    try {
      const page = await api('GET', '/api/v1/recordings?' + apiQuery(params, c));
      if (mySeq !== seq) return;
      cursor = c;
      next = page.next;
      render(page.recordings);
      const shown = apiQuery(params, c);
      if (mine) shown.delete('localUser');
      history.replaceState(null, '', location.pathname + (shown.toString() ? '?' + shown : ''));
      if (keepView) {
        window.scrollTo(x, y);
        wrap.scrollLeft = wx;
        wrap.scrollTop = wy;
      }
    } catch (err) {
      if (mySeq === seq && !sortRefused(err)) failed(err);
    } finally {
      if (mySeq === seq) busy = false;
    }
  }

  function search() {
    params = readForm();
    back.length = 0;
    say('');
    renderChips();
    applyPageSort();
    return load('', false);
  }

  // Quick filters: a click on a direction, user or remote party in the
  // table narrows the search to it; chips show them and take them off.
  function applyQuick(filter, value) {
    if (filter === 'direction') $('f-direction').value = value;
    if (filter === 'remoteNumber') $('f-remote').value = value;
    if (filter === 'localUser') $('f-user').value = value;
    search();
  }

  function renderChips() {
    const chips = [];
    const add = (label, clear) => chips.push(el('button', { type: 'button', class: 'chip', 'aria-label': t('quick.remove') + ': ' + label,
      onclick: () => { clear(); search(); } }, label + ' ×'));
    if ($('f-direction').value) add(t('quick.direction') + ': ' + t('dir.' + $('f-direction').value), () => { $('f-direction').value = ''; });
    if ($('f-remote').value) add(t('quick.remote') + ': ' + $('f-remote').value, () => { $('f-remote').value = ''; });
    if ($('f-user').value) {
      const b = tbody.querySelector(`button.qf[data-filter="localUser"][data-value="${CSS.escape($('f-user').value)}"]`);
      add(t('quick.user') + ': ' + (b ? b.textContent : $('f-user').value), () => { $('f-user').value = ''; });
    }
    $('chips').replaceChildren(...chips);
  }

  function syncSelection() {
    const boxes = tbody.querySelectorAll('input.sel');
    for (const b of boxes) b.checked = selected.has(b.value);
    const all = $('select-all');
    all.checked = boxes.length > 0 && [...boxes].every((b) => b.checked);
    all.indeterminate = !all.checked && [...boxes].some((b) => b.checked);
    $('selection').textContent = selected.size ? t('rec.selected', { n: selected.size }) : '';
    const dl = $('download-selected'), del = $('delete-selected'), ex = $('export-selected');
    if (dl) dl.disabled = selected.size === 0;
    if (ex) ex.disabled = selected.size === 0;
    if (del) del.disabled = selected.size === 0;
  }

  form.addEventListener('submit', (e) => { e.preventDefault(); search(); });
  $('f-reset').addEventListener('click', () => {
    form.reset();
    fromInput.value = defaultFrom;
    toInput.value = '';
    fromTouched = false;
    $('f-user').value = '';
    search();
  });
  $('sort-start').addEventListener('click', () => {
    pageSort = null;
    serverSort = null;
    $('f-sort').value = $('f-sort').value === 'oldest' ? 'newest' : 'oldest';
    search();
  });
  $('page-next').addEventListener('click', () => { if (next) { back.push(cursor); load(next, false); } });
  $('page-prev').addEventListener('click', () => { if (back.length) load(back.pop(), false); });
  $('page-first').addEventListener('click', () => { back.length = 0; load('', false); });
  tbody.addEventListener('click', (e) => {
    const b = e.target.closest('button.qf');
    if (b) applyQuick(b.dataset.filter, b.dataset.value);
  });
  tbody.addEventListener('change', (e) => {
    const b = e.target.closest('input.sel');
    if (!b) return;
    if (b.checked) selected.add(b.value); else selected.delete(b.value);
    syncSelection();
  });
  $('select-all').addEventListener('change', (e) => {
    for (const b of tbody.querySelectorAll('input.sel')) {
      if (e.target.checked) selected.add(b.value); else selected.delete(b.value);
    }
    syncSelection();
  });

  const dl = $('download-selected');
  if (dl) dl.addEventListener('click', async () => {
    if (selected.size > MAX_ZIP) { say(t('rec.tooMany', { n: MAX_ZIP }), true); return; }
    try {
      say(t('common.loading'));
      const res = await request('POST', '/api/v1/recordings/download', { ids: [...selected], format: 'mp3', tz: zone });
      saveBlob(await res.blob(), fileName(res, 'recordings.zip'));
      say(t('rec.downloaded', { n: selected.size }));
    } catch (err) { failed(err); }
  });

  const del = $('delete-selected');
  if (del) del.addEventListener('click', async () => {
    if (!confirm(t('rec.confirmDelete', { n: selected.size }))) return;
    try {
      const out = await api('POST', '/api/v1/recordings/delete', { ids: [...selected] });
      const results = (out && out.results) || [];
      const ok = results.filter((r) => r.status === 'deleted').length;
      for (const r of results) if (r.status === 'deleted' || r.status === 'not-found') selected.delete(r.id);
      say(t('rec.deleteResult', { ok, failed: results.length - ok }), results.length - ok > 0);
      await load(cursor, true);
    } catch (err) { failed(err); }
  });

  // Evidence exports (admins and auditors): hand the selection or the
  // search to the exports page, where the job is confirmed and followed.
  const exSel = $('export-selected');
  if (exSel) exSel.addEventListener('click', () => location.assign('/exports?ids=' + encodeURIComponent([...selected].join(','))));
  const exSearch = $('export-search');
  if (exSearch) exSearch.addEventListener('click', () => location.assign('/exports?query=' + encodeURIComponent(apiQuery(params, '').toString())));

  // Auto-refresh: the same page again, every 15 s, while the tab is seen.
  setInterval(async () => {
    if (document.visibilityState !== 'visible' || busy) return;
    await load(cursor, true);
    refreshes++;
    const r = $('refreshed');
    r.dataset.count = String(refreshes);
    r.textContent = t('rec.refreshed', { time: new Date().toLocaleTimeString(document.documentElement.lang) });
  }, REFRESH_MS);

  renderChips();
  syncSelection();
}
