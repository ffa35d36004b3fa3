// The admin page's cluster section (issue 8) on a real single-node cluster
// (TestUIClusterAdmin started `callvault serve --cluster-addr`): the admin
// sees the node as leader and voter with the term and indexes, the status
// refreshes by itself, a join token is created with the keyboard and shown
// with the command line to run on a new node; screenshots in en and ar.
import { join } from 'node:path';
import { run, check } from './browser.mjs';

const base = process.env.BASE, pw = process.env.ADMIN_PASSWORD, shots = process.env.SHOTS;
// The new node the English run makes the command line for (the Go test
// then runs it); PHASE=remove is the second run, with that node joined.
const newData = process.env.NEW_DATA, newHTTP = process.env.NEW_HTTP, newCluster = process.env.NEW_CLUSTER;

async function signIn(browser, lang) {
  const ctx = await browser.newContext({ locale: lang, extraHTTPHeaders: { 'Accept-Language': lang }, viewport: { width: 1400, height: 900 } });
  const page = await ctx.newPage();
  page.on('dialog', (d) => d.accept());
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  // The browser's own favicon request is the only 404 expected.
  page.on('response', (r) => { if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) errors.push(`${r.status()} ${r.url()}`); });
  page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) errors.push(m.text()); });
  page.errors = errors;
  await page.goto(base + '/login');
  await page.fill('#username', 'admin');
  await page.fill('#password', pw);
  await page.press('#password', 'Enter');
  await page.waitForSelector('#current-user');
  return page;
}

// removeFollower: two members now; the follower has a Remove button, the
// leader none; Remove (confirmed) takes it out and the table follows.
async function removeFollower(browser) {
  const page = await signIn(browser, 'en');
  await page.goto(base + '/admin#h-cluster');
  await page.waitForFunction(() => document.querySelectorAll('#cluster-nodes tbody tr').length === 2, null, { timeout: 15000 });
  const follower = page.locator('#cluster-nodes tbody tr[data-leader="false"]');
  check(await follower.count() === 1, 'one follower');
  const id = await follower.getAttribute('data-id');
  check(await page.locator('#cluster-nodes tbody tr[data-leader="true"] button.remove').count() === 0, 'no Remove for the leader');
  await page.waitForFunction(() => document.querySelector('#cluster-nodes tbody tr[data-leader="false"]').dataset.state === 'Follower', null, { timeout: 15000 });
  await page.locator('#cluster').screenshot({ path: join(shots, 'admin-cluster-two-en.png') });
  let asked = '';
  page.removeAllListeners('dialog');
  page.on('dialog', (d) => { asked = d.message(); d.accept(); });
  // Keyboard: focus the button and press Enter.
  await follower.locator('button.remove').focus();
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelectorAll('#cluster-nodes tbody tr').length === 1, null, { timeout: 15000 });
  check(asked.includes(id), `the confirm names the node: ${asked}`);
  check((await page.textContent('#message')).includes(id), `removal reported: ${await page.textContent('#message')}`);
  check(page.errors.length === 0, `no script errors: ${page.errors}`);
  return { removed: id, confirm: asked };
}

await run(async (browser) => {
  if (process.env.PHASE === 'remove') return removeFollower(browser);
  const report = {};
  for (const lang of ['en', 'ar']) {
    const page = await signIn(browser, lang);
    await page.goto(base + '/admin#h-cluster');
    await page.waitForSelector('#cluster[data-loaded="true"]');
    if (lang === 'ar') check(await page.getAttribute('html', 'dir') === 'rtl', 'the Arabic page is right to left');

    const rows = page.locator('#cluster-nodes tbody tr');
    check(await rows.count() === 1, `one member, got ${await rows.count()}`);
    const row = rows.first();
    const id = await row.getAttribute('data-id');
    check(await row.getAttribute('data-leader') === 'true' && await row.getAttribute('data-voter') === 'true' && await row.getAttribute('data-state') === 'Leader',
      `the node is leader and voter: ${await row.evaluate((r) => JSON.stringify(r.dataset))}`);
    check((await page.textContent('#c-leader')).trim() === id, 'the summary names it as leader');
    check(await row.locator('.leader-mark').count() === 1, 'the leader is marked in the table');
    check(await row.locator('button.remove').count() === 0, 'no Remove button for the leader');
    const term = Number((await page.textContent('#c-term')).replace(/[^\d٠-٩]/g, '').replace(/[٠-٩]/g, (d) => '٠١٢٣٤٥٦٧٨٩'.indexOf(d)));
    check(term >= 1, `term shown: ${await page.textContent('#c-term')}`);
    check((await page.textContent('#c-commit')).trim() !== '' && (await page.textContent('#c-applied')).trim() !== '', 'commit and applied index shown');
    check((await row.locator('.backlog').textContent()).trim() !== '', 'the file backlog is shown');

    // Auto-refresh: the "last update" line changes without a reload.
    const before = await page.textContent('#c-updated');
    await page.waitForFunction((b) => document.getElementById('c-updated').textContent !== b, before, { timeout: 12000 });
    report['refreshed_' + lang] = true;

    // A join token with the keyboard: focus the new node's web address,
    // type it, Tab to the cluster address, type it, Enter submits.
    // English: the node the Go test will start; Arabic: a data directory
    // with a space, which the command line must quote.
    const [d, h, c] = lang === 'en' ? [newData, newHTTP, newCluster] : ['/srv/callvault node2', '10.0.0.2:8080', '10.0.0.2:7000'];
    await page.fill('#c-new-data', d);
    await page.focus('#c-new-http');
    await page.keyboard.type(h);
    await page.keyboard.press('Tab');
    await page.keyboard.type(c);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#c-token-box:not([hidden])');
    const token = await page.inputValue('#c-token-value');
    const cmd = await page.inputValue('#c-command');
    check(token.length > 20, `a token: ${token}`);
    const q = (x) => (x.includes(' ') ? `'${x}'` : x);
    const want = `callvault serve --data-dir ${q(d)} --http ${h} --cluster-addr ${c} --join ${base} --join-token ${token}`;
    check(cmd === want, `command line\n got ${cmd}\nwant ${want}`);
    check((await page.textContent('#c-expires')).trim() !== '', 'the expiry is shown');
    // The copy button answers (clipboard, or the select-and-copy fallback).
    await page.click('#c-copy-command');
    await page.waitForFunction(() => document.getElementById('message').textContent !== '');
    check(!(await page.getAttribute('#message', 'class') || '').includes('error'), `copy: ${await page.textContent('#message')}`);
    report['token_' + lang] = token.slice(0, 8) + '…';
    // The Go test runs the English one (the token is single use: the
    // Arabic one is never used).
    if (lang === 'en') report.command = cmd;

    await page.locator('#cluster').screenshot({ path: join(shots, `admin-cluster-${lang}.png`) });
    check(page.errors.length === 0, `${lang}: no script errors: ${page.errors}`);
    await page.context().close();
  }
  return report;
});
