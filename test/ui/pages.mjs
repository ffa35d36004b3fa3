// The pages end to end, in Chromium, against the real binary. The Go test
// (TestUIPages) made the users and uploaded the recordings through the
// API; this script does what people do with them and checks the result.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, check } from './browser.mjs';

const base = process.env.BASE;
const adminPW = process.env.ADMIN_PASSWORD, pw = process.env.PASSWORD;
const longId = process.env.LONG_ID;
const shortIds = process.env.SHORT_IDS.split(',');
const shots = process.env.SHOTS, downloads = process.env.DOWNLOADS;
const report = {};

// signIn opens a fresh context (own cookies) in language lang and signs
// in with the keyboard alone: type, Tab, type, Enter.
async function signIn(browser, user, password, lang = 'en') {
  const ctx = await browser.newContext({ locale: lang, extraHTTPHeaders: { 'Accept-Language': lang }, acceptDownloads: true, timezoneId: 'Europe/Zurich' });
  const page = await ctx.newPage();
  page.on('dialog', (d) => d.accept());
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error' && !/404|401|403/.test(m.text())) errors.push(m.text()); });
  page.errors = errors;
  await page.goto(base + '/login');
  await page.focus('#username');
  await page.keyboard.type(user);
  await page.keyboard.press('Tab');
  await page.keyboard.type(password);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#current-user');
  check((await page.textContent('#current-user')).trim() === user, `signed in as ${user}`);
  return page;
}

const ids = (page) => page.$$eval('#recordings tbody tr', (rows) => rows.map((r) => r.dataset.id));
const present = async (page, sel) => (await page.locator(sel).count()) > 0;

async function shot(page, name, lang) {
  await page.screenshot({ path: join(shots, `${name}-${lang}.png`), fullPage: true });
}

await run(async (browser) => {
  // ---- What each role sees ----
  const expect = {
    admin: { yes: ['#nav-all', '#nav-admin', '#nav-audit', '#recordings', '#delete-selected', '#download-selected'], no: [] },
    sup: { yes: ['#nav-all', '#recordings', '#delete-selected'], no: ['#nav-admin', '#nav-audit'] },
    alice: { yes: ['#nav-mine', '#recordings', '#delete-selected'], no: ['#nav-all', '#nav-admin', '#nav-audit'] },
    rec: { yes: ['#no-access'], no: ['#recordings', '#nav-mine', '#nav-all', '#filters'] },
    aud: { yes: ['#nav-all', '#nav-audit', '#download-selected'], no: ['#nav-admin', '#delete-selected'] },
    viewer: { yes: ['#nav-mine', '#recordings'], no: ['#delete-selected', '#download-selected', '#nav-all'] },
  };
  const roles = {};
  for (const [user, want] of Object.entries(expect)) {
    const page = await signIn(browser, user, user === 'admin' ? adminPW : pw);
    for (const sel of want.yes) check(await present(page, sel), `${user} sees ${sel}`);
    for (const sel of want.no) check(!(await present(page, sel)), `${user} does not see ${sel}`);
    roles[user] = (await page.locator('#recordings tbody tr').count());
    if (user === 'viewer') {
      // Play only: the detail page has the player and nothing else to act with.
      await page.click('#recordings tbody tr a.open');
      await page.waitForSelector('#d-call dt');
      check(await present(page, '#play'), 'viewer has the player');
      for (const sel of ['#delete', '#dl-mp3', '#preserve', '#note-form', '#rating']) check(!(await present(page, sel)), `viewer's detail lacks ${sel}`);
    }
    check(page.errors.length === 0, `${user}: no script errors: ${page.errors}`);
    await page.context().close();
  }
  check(roles.alice === 7 && roles.admin === 8 && roles.viewer === 1 && roles.aud === 0, `rows per role ${JSON.stringify(roles)}`);
  report.rowsPerRole = roles;

  // ---- Filter, sort, page (admin, All recordings) ----
  const admin = await signIn(browser, 'admin', adminPW);
  await admin.goto(base + '/recordings/all?limit=3');
  const p1 = await ids(admin);
  check(p1.length === 3, 'first page of 3');
  await admin.click('#page-next');
  await admin.waitForFunction((first) => document.querySelector('#recordings tbody tr').dataset.id !== first, p1[0]);
  const p2 = await ids(admin);
  check(p2.length === 3 && !p2.some((id) => p1.includes(id)), 'second page differs');
  await admin.click('#page-prev');
  await admin.waitForFunction((first) => document.querySelector('#recordings tbody tr').dataset.id === first, p1[0]);
  // Sort: the date header flips to oldest first.
  await admin.click('#sort-start');
  await admin.waitForFunction(() => document.getElementById('th-start').getAttribute('aria-sort') === 'ascending');
  await admin.waitForFunction((first) => document.querySelector('#recordings tbody tr').dataset.id !== first, p1[0]);
  const starts = await admin.$$eval('#recordings tbody time', (ts) => ts.map((t) => t.getAttribute('datetime')));
  check(starts.every((s, i) => i === 0 || starts[i - 1] <= s), `oldest first ${starts}`);
  // Duration, direction, numbers and rating sort the whole result on the
  // server, across pages: 8 recordings in pages of 3.
  await admin.goto(base + '/recordings/all?limit=3');
  await admin.click('th[data-col="duration"] button');
  await admin.waitForFunction(() => location.search.includes('sort=duration') && document.querySelector('th[data-col="duration"]').getAttribute('aria-sort') === 'ascending');
  check(!(await admin.isVisible('#sort-note')), 'a server sort needs no page-only note');
  check((await admin.getAttribute('#th-start', 'aria-sort')) === 'none', 'start no longer marked as the sort');
  const secs = () => admin.$$eval('#recordings tbody tr td:nth-child(4)', (tds) => tds.map((td) => td.textContent.trim().split(':').reduce((a, x) => a * 60 + Number(x), 0)));
  const up = [];
  for (let page = 0; page < 5; page++) {
    up.push(...await secs());
    if (await admin.isDisabled('#page-next')) break;
    const first = (await ids(admin))[0];
    await admin.click('#page-next');
    await admin.waitForFunction((f) => document.querySelector('#recordings tbody tr').dataset.id !== f, first);
  }
  check(up.length === 8 && up.every((d, i) => i === 0 || up[i - 1] <= d) && up[7] > up[0], `ascending durations across pages ${up}`);
  // The header buttons work from the keyboard too: descending.
  await admin.focus('th[data-col="duration"] button');
  await admin.keyboard.press('Enter');
  await admin.waitForFunction(() => location.search.includes('sort=-duration'));
  await admin.waitForFunction((id) => document.querySelector('#recordings tbody tr').dataset.id === id, longId);
  check((await admin.getAttribute('th[data-col="duration"]', 'aria-sort')) === 'descending', 'descending: the one-hour call first');
  await admin.click('th[data-col="remote"] button');
  await admin.waitForFunction(() => location.search.includes('sort=remoteNumber'));
  // Columns the server does not sort (reference, user, group...) sort the
  // page on screen, and the page says so.
  await admin.goto(base + '/recordings/all');
  await admin.click('th[data-col="reference"] button');
  check((await admin.getAttribute('th[data-col="reference"]', 'aria-sort')) === 'ascending' && (await admin.isVisible('#sort-note')), 'page-only sort marked and explained');
  const refs = await admin.$$eval('#recordings tbody tr td.ref', (tds) => tds.map((td) => td.textContent.trim()));
  check(refs.every((r, i) => i === 0 || refs[i - 1].localeCompare(r, 'en', { numeric: true }) <= 0), `references ascending ${refs}`);
  await admin.click('#sort-clear');
  await admin.waitForFunction(() => document.getElementById('sort-note').hidden && document.getElementById('th-start').getAttribute('aria-sort') === 'descending');
  // Quick filter: a click on a direction cell narrows to it.
  await admin.goto(base + '/recordings/all');
  await admin.click('#recordings tbody tr:nth-child(1) button.qf[data-filter="direction"]');
  await admin.waitForSelector('#chips .chip');
  const dir = await admin.$eval('#f-direction', (s) => s.value);
  await admin.waitForFunction(() => document.querySelectorAll('#recordings tbody tr').length < 8);
  const dirs = await admin.$$eval('#recordings tbody button.qf[data-filter="direction"]', (bs) => bs.map((b) => b.dataset.value));
  check(dirs.length > 0 && dirs.every((d) => d === dir), `quick filter direction=${dir}: ${dirs}`);
  // Filters: a duration interval (the one-hour call only), then note content.
  await admin.click('#f-reset');
  await admin.fill('#f-min', '600');
  await admin.click('#f-search');
  await admin.waitForFunction(() => document.querySelectorAll('#recordings tbody tr').length === 1);
  check((await ids(admin))[0] === longId, 'duration filter finds the one-hour call');
  await admin.click('#f-reset');
  await admin.waitForFunction(() => document.querySelectorAll('#recordings tbody tr').length === 8);
  await admin.fill('#f-notes', 'upload');
  await admin.press('#f-notes', 'Enter');
  await admin.waitForFunction(() => document.querySelectorAll('#recordings tbody tr').length === 1);
  check((await ids(admin))[0] === longId, 'note filter finds the call with the note');
  await admin.click('#f-reset');
  await admin.waitForFunction(() => document.querySelectorAll('#recordings tbody tr').length === 8);

  // ---- Download a zip of three, and delete one (admin) ----
  const boxes = admin.locator('#recordings tbody input.sel');
  // Keyboard: Tab reaches a row's checkbox, Space ticks it.
  await boxes.nth(1).focus();
  await admin.keyboard.press('Space');
  await boxes.nth(2).check();
  await boxes.nth(3).check();
  check((await admin.textContent('#selection')).includes('3'), 'three selected');
  const selected = await admin.$$eval('#recordings tbody input.sel:checked', (bs) => bs.map((b) => b.value));
  // Auto-refresh keeps the selection and the scroll position.
  await admin.setViewportSize({ width: 900, height: 400 });
  await admin.evaluate(() => window.scrollTo(0, 300));
  const y0 = await admin.evaluate(() => window.scrollY);
  await admin.waitForFunction(() => document.getElementById('refreshed').dataset.count === '1', null, { timeout: 20000 });
  const kept = await admin.$$eval('#recordings tbody input.sel:checked', (bs) => bs.map((b) => b.value));
  check(JSON.stringify(kept) === JSON.stringify(selected), 'auto-refresh keeps the selection');
  check(Math.abs((await admin.evaluate(() => window.scrollY)) - y0) < 2, 'auto-refresh keeps the scroll position');
  await admin.setViewportSize({ width: 1280, height: 900 });
  const [zip] = await Promise.all([admin.waitForEvent('download'), admin.click('#download-selected')]);
  const zipPath = join(downloads, zip.suggestedFilename());
  await zip.saveAs(zipPath);
  const zb = readFileSync(zipPath);
  const eocd = zb.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  check(eocd > 0 && zb.readUInt16LE(eocd + 10) === 3, `zip has 3 entries (${zip.suggestedFilename()})`);
  report.zip = { name: zip.suggestedFilename(), bytes: zb.length };
  // Delete one of the selected from its detail page.
  const victim = selected[0];
  await admin.goto(base + '/recordings/' + victim);
  await admin.waitForSelector('#d-call dt');
  await admin.click('#delete');
  await admin.waitForFunction(() => /./.test(document.getElementById('message').textContent));
  report.deleted = victim;
  await admin.waitForURL(base + '/', { timeout: 5000 });
  check(!(await ids(admin)).includes(victim), 'deleted recording gone from the list');

  // ---- Administration through the pages (admin); others lack it ----
  for (const user of ['aud', 'alice']) {
    const p = await signIn(browser, user, pw);
    check(!(await present(p, '#nav-admin')), `${user} has no admin link`);
    const res = await p.goto(base + '/admin');
    check(res.status() === 404 && !(await present(p, '#users')) && !(await present(p, '#group-form')), `${user} gets no admin page (${res.status()})`);
    await p.context().close();
  }
  await admin.goto(base + '/admin');
  await admin.waitForFunction(() => document.getElementById('main').dataset.loaded === 'true');
  check(await present(admin, '#tenants') && await present(admin, '#roles tr[data-role="auditor"]'), 'global admin sees tenants and the role table');
  // A group with a supervisor and a member, restricted to play and notes.
  await admin.fill('#g-name', 'Night Shift');
  const uid = async (name) => admin.$eval(`#users tr[data-username="${name}"]`, (r) => r.dataset.id);
  await admin.selectOption('#g-supervisors', [await uid('sup')]);
  await admin.selectOption('#g-members', [await uid('sup')]);
  await admin.check('#g-restrict');
  for (const v of ['download', 'delete', 'preserve', 'bulkDownload', 'upload']) await admin.uncheck(`#g-perms input[value="${v}"]`);
  await admin.click('#g-submit');
  await admin.waitForSelector('#groups tr[data-id="night-shift"]');
  await admin.waitForFunction(() => /sup/.test(document.querySelector('#groups tr[data-id="night-shift"] .members').textContent));
  check((await admin.textContent('#groups tr[data-id="night-shift"] .supervisors')).includes('sup'), 'group lists its supervisor');
  await admin.waitForFunction(() => /Night Shift/.test(document.querySelector('#users tr[data-username="sup"] .groups').textContent));
  const eff = await admin.textContent('#users tr[data-username="sup"] .effective');
  check(!/Download/.test(eff) && /Play/.test(eff), `sup's effective permissions follow the group: ${eff}`);
  // A user in that group, made with the form (keyboard: Space ticks a box).
  await admin.fill('#u-name', 'newbie');
  await admin.fill('#u-display', 'New Agent');
  await admin.fill('#u-password', 'a new agent password');
  await admin.selectOption('#u-role', 'user');
  await admin.selectOption('#u-groups', ['night-shift']);
  await admin.click('#u-submit');
  await admin.waitForSelector('#users tr[data-username="newbie"]');
  check((await admin.textContent('#users tr[data-username="newbie"] .groups')).includes('Night Shift'), 'new user is in the group');
  // Edit: make newbie a supervisor, then disable.
  await admin.click('#users tr[data-username="newbie"] button.edit');
  check(await admin.inputValue('#u-name') === 'newbie' && !(await admin.isVisible('#u-password')), 'edit form filled, no password field');
  await admin.selectOption('#u-role', 'supervisor');
  await admin.click('#u-submit');
  await admin.waitForFunction(() => document.querySelector('#users tr[data-username="newbie"] .role').textContent !== document.querySelector('#users tr[data-username="alice"] .role').textContent);
  await admin.click('#users tr[data-username="newbie"] .actions button:nth-of-type(2)');
  await admin.waitForFunction(() => document.querySelector('#users tr[data-username="newbie"] .state').textContent !== document.querySelector('#users tr[data-username="alice"] .state').textContent);
  // Retention of the group, applied to its existing recordings too, then
  // removed again.
  await admin.selectOption('#r-group', 'night-shift');
  await admin.fill('#r-days', '400');
  await admin.check('#r-recompute');
  await admin.click('#retention-form button[type="submit"]');
  await admin.waitForSelector('#retention tr[data-group="night-shift"]');
  await admin.waitForFunction(() => /applied to \d+ existing recordings/.test(document.getElementById('message').textContent));
  await admin.click('#retention tr[data-group="night-shift"] button');
  await admin.waitForFunction(() => !document.querySelector('#retention tr[data-group="night-shift"]'));
  // A tenant.
  await admin.fill('#t-name', 'Acme Branch');
  await admin.click('#tenant-form button');
  await admin.waitForSelector('#tenants tr[data-id="acme-branch"]');
  // The real binary lists its hot tier (the data directory's recordings
  // folder) with the bytes used on its file system.
  await admin.waitForSelector('#storage tr[data-tier="hot"]');
  report.storageTiers = await admin.locator('#storage tbody tr').count();
  report.hotUsed = (await admin.textContent('#storage tr[data-tier="hot"] .used')).trim();
  report.hotPath = (await admin.textContent('#storage tr[data-tier="hot"] .ref')).trim();
  check(/^[1-9][0-9.,\s\u00a0\u202f]*\s?(B|KiB|MiB|GiB|TiB|PiB)$/.test(report.hotUsed), `hot tier shows bytes used: ${report.hotUsed}`);
  check(report.hotPath.endsWith('/data/recordings'), `hot tier is the data directory's recordings folder: ${report.hotPath}`);
  check(!await admin.isVisible('#no-storage'), 'no "no storage" note beside the tiers');
  check(admin.errors.length === 0, `admin page: no script errors: ${admin.errors}`);

  // ---- Audit log viewer: filter by user (typed by name), action, recording ----
  await admin.goto(base + '/audit');
  await admin.waitForSelector('#audit tbody tr');
  await admin.fill('#a-user', 'admin');
  await admin.selectOption('#a-action', 'user');
  await admin.click('#audit-filters button[type="submit"]');
  await admin.waitForFunction(() => [...document.querySelectorAll('#audit tbody tr')].every((r) => r.cells[2].textContent === document.querySelector('#a-action').selectedOptions[0].textContent));
  const who = await admin.$$eval('#audit tbody tr', (rs) => rs.map((r) => r.cells[1].textContent));
  check(who.length >= 3 && who.every((w) => w === 'admin'), `audit filtered to admin's user changes: ${who}`);
  await admin.fill('#a-user', '');
  await admin.selectOption('#a-action', '');
  await admin.fill('#a-recording', longId);
  await admin.click('#audit-filters button[type="submit"]');
  await admin.waitForFunction((id) => { const rs = [...document.querySelectorAll('#audit tbody tr')]; return rs.length > 0 && rs.every((r) => r.cells[4].textContent === id); }, longId);
  await admin.fill('#a-recording', '');
  await admin.fill('#a-from', '2000-01-01T00:00');
  await admin.fill('#a-to', '2000-01-02T00:00');
  await admin.click('#audit-filters button[type="submit"]');
  await admin.waitForSelector('#no-entries:not([hidden])');

  // ---- Evidence exports: selection handed over, job followed to done, zip ----
  await admin.goto(base + '/recordings/all');
  const exBoxes = admin.locator('#recordings tbody input.sel');
  for (const i of [0, 1]) await exBoxes.nth(i).check();
  const exIds = await admin.$$eval('#recordings tbody input.sel:checked', (bs) => bs.map((b) => b.value));
  await admin.click('#export-selected');
  await admin.waitForURL(/\/exports\?ids=/);
  check((await admin.inputValue('#x-ids')).split('\n').sort().join() === [...exIds].sort().join(), 'exports page pre-filled with the selection');
  await admin.click('#export-ids button[type="submit"]');
  await admin.waitForSelector('#jobs tbody tr[data-state="done"]', { timeout: 60000 });
  const [bundle] = await Promise.all([admin.waitForEvent('download'), admin.click('#jobs tbody tr[data-state="done"] a.download')]);
  const bundlePath = join(downloads, bundle.suggestedFilename());
  await bundle.saveAs(bundlePath);
  const bz = readFileSync(bundlePath);
  const bEnd = bz.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  check(bz.subarray(0, 4).equals(Buffer.from([0x50, 0x4b, 0x03, 0x04])) && bEnd > 0 && bz.readUInt16LE(bEnd + 10) >= 2, `export bundle is a zip with entries (${bz.length} bytes)`);
  report.exportBundle = { name: bundle.suggestedFilename(), bytes: bz.length, entries: bz.readUInt16LE(bEnd + 10) };
  // Remove the finished job.
  await admin.click('#jobs tbody tr[data-state="done"] button.remove');
  await admin.waitForFunction(() => !document.querySelector('#jobs tbody tr[data-state="done"]'));
  check(admin.errors.length === 0, `exports page: no script errors: ${admin.errors}`);

  // ---- Screenshots of every page in English and German ----
  for (const lang of ['en', 'de']) {
    const p = await signIn(browser, 'admin', adminPW, lang);
    check((await p.getAttribute('html', 'lang')) === lang, `page in ${lang}`);
    await shot(p, 'recordings-all', lang);
    await p.goto(base + '/recordings/' + longId);
    await p.waitForSelector('#wave[data-drawn="true"]', { timeout: 30000 });
    await shot(p, 'detail', lang);
    for (const name of ['account', 'admin', 'audit', 'exports']) {
      await p.goto(base + '/' + name);
      await p.waitForLoadState('networkidle');
      await shot(p, name, lang);
    }
    await p.context().close();
    const anon = await browser.newPage({ locale: lang, extraHTTPHeaders: { 'Accept-Language': lang } });
    await anon.goto(base + '/login');
    await shot(anon, 'login', lang);
    await anon.close();
  }
  await admin.context().close();

  // ---- The new pages right to left, in Arabic ----
  const ar = await signIn(browser, 'admin', adminPW, 'ar');
  for (const name of ['admin', 'exports']) {
    await ar.goto(base + '/' + name);
    await ar.waitForLoadState('networkidle');
    check((await ar.getAttribute('html', 'dir')) === 'rtl' && (await ar.getAttribute('html', 'lang')) === 'ar', `${name} in Arabic is rtl`);
    const box = await ar.locator('h1').boundingBox();
    check(box && box.x + box.width > 1280 / 2, `${name}: the heading sits on the right in Arabic`);
    await shot(ar, name, 'ar');
  }
  check(ar.errors.length === 0, `Arabic pages: no script errors: ${ar.errors}`);
  await ar.context().close();

  // ---- Play, bookmarks, note, rating, preserve, download (alice) ----
  const alice = await signIn(browser, 'alice', pw);
  await alice.goto(base + '/recordings/' + longId);
  await alice.waitForSelector('#d-call dt');
  await alice.waitForFunction(() => document.getElementById('audio').readyState >= 1);
  // The waveform is drawn from the server's peaks: the tone's second half
  // is louder (16000 against 6000), so its bars are taller.
  await alice.waitForSelector('#wave[data-drawn="true"]', { timeout: 30000 });
  const wave = await alice.evaluate(() => {
    const c = document.getElementById('wave');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height / 2).data;
    const height = (x) => { let n = 0; for (let y = 0; y < c.height / 2; y++) if (d[4 * (y * c.width + x) + 3] > 0) n++; return n; };
    return { buckets: Number(c.dataset.buckets), first: height(Math.floor(c.width / 4)), second: height(Math.floor((3 * c.width) / 4)) };
  });
  check(wave.buckets === 1200 && wave.first > 5 && wave.second > wave.first * 2, `waveform drawn from peaks ${JSON.stringify(wave)}`);
  report.waveform = wave;
  check((await alice.textContent('#ch-left')).includes('alice'), 'left channel names the local party');
  // Keyboard: focus the play button and press Enter.
  await alice.focus('#play');
  await alice.keyboard.press('Enter');
  await alice.waitForFunction(() => document.getElementById('audio').currentTime > 0.5, null, { timeout: 10000 });
  report.playbackStartMs = Number(await alice.getAttribute('#player', 'data-start-ms'));
  check(report.playbackStartMs >= 0, 'start-up time measured');
  // A bookmark marker on the bar seeks to its moment.
  await alice.locator('#markers .marker').nth(1).click();
  const at = await alice.evaluate(() => document.getElementById('audio').currentTime);
  check(Math.abs(at - 2400) < 2, `bookmark seeks to 2400 s (at ${at})`);
  // Speed and volume.
  await alice.selectOption('#speed', '1.5');
  check(await alice.evaluate(() => document.getElementById('audio').playbackRate) === 1.5, 'speed 1.5');
  await alice.fill('#volume', '0.5');
  check(await alice.evaluate(() => document.getElementById('audio').volume) === 0.5, 'volume 0.5');
  await alice.click('#play');
  // A note, and a rating chosen with the arrow keys.
  await alice.fill('#note-text', 'customer asked for a refund');
  await alice.click('#add-note');
  await alice.waitForSelector('#notes li:has-text("customer asked for a refund")');
  await alice.click('label[for="rating-3"]');
  await alice.waitForFunction(() => document.getElementById('message').textContent.length > 0);
  await alice.focus('#rating-3');
  await Promise.all([alice.waitForResponse((r) => r.url().endsWith('/rating') && r.ok()), alice.keyboard.press('ArrowRight')]);
  // Preserve.
  await alice.click('#preserve');
  await alice.waitForFunction(() => document.getElementById('d-preserved').dataset.preserved === 'true');
  await alice.reload();
  await alice.waitForSelector('#notes li:has-text("customer asked for a refund")');
  check(await alice.isChecked('#rating-4'), 'rating 4 after reload');
  check((await alice.getAttribute('#d-preserved', 'data-preserved')) === 'true', 'preserved after reload');
  check(!(await alice.isVisible('#preserve')) && (await alice.isVisible('#release')), 'release offered once preserved');
  // Download one as MP3.
  const [mp3] = await Promise.all([alice.waitForEvent('download'), alice.click('#dl-mp3')]);
  const mp3Path = join(downloads, mp3.suggestedFilename());
  await mp3.saveAs(mp3Path);
  const mb = readFileSync(mp3Path);
  check(/^\d{8}_\d{4}_[A-Za-z0-9_-]+\.mp3$/.test(mp3.suggestedFilename()), `MP3 name ${mp3.suggestedFilename()}`);
  check(mb.length > 100000 && (mb.subarray(0, 3).toString() === 'ID3' || (mb[0] === 0xff && (mb[1] & 0xe0) === 0xe0)), 'an MP3 file');
  report.mp3 = { name: mp3.suggestedFilename(), bytes: mb.length };
  check(alice.errors.length === 0, `alice: no script errors: ${alice.errors}`);

  // ---- The auditor exports every preserved recording (alice just held one) ----
  const aud = await signIn(browser, 'aud', pw);
  await aud.click('#nav-exports');
  await aud.waitForSelector('#export-preserved');
  await aud.click('#export-preserved button');
  await aud.waitForSelector('#jobs tbody tr[data-state="done"]', { timeout: 60000 });
  const audJob = await aud.textContent('#jobs tbody tr[data-state="done"] td:nth-child(4)');
  check(/1\s*\/\s*1|\d+\s*\/\s*\d+/.test(audJob), `auditor's job progressed to done: ${audJob}`);
  await aud.context().close();

  // ---- Arabic, right to left, picked in the page ----
  await alice.goto(base + '/recordings');
  await alice.selectOption('#lang-select', 'ar');
  await alice.waitForFunction(() => document.documentElement.dir === 'rtl');
  check((await alice.getAttribute('html', 'lang')) === 'ar', 'lang=ar');
  await shot(alice, 'recordings-mine', 'ar');
  await alice.reload();
  check((await alice.getAttribute('html', 'dir')) === 'rtl', 'the pick is remembered');
  await alice.context().close();
  return report;
});
