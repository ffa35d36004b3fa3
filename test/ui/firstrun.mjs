// The first run: the admin signs in with the password the appliance
// generated and printed, is held on the account page (with the reason)
// until choosing a new one, and then lands on the recordings; the
// generated password no longer works, the new one does and leads straight
// to the recordings.
import { run, check } from './browser.mjs';

const base = process.env.BASE, generated = process.env.GENERATED, chosen = process.env.NEW_PASSWORD;

async function signIn(page, password) {
  await page.goto(base + '/login');
  await page.fill('input[name="username"]', 'admin');
  await page.fill('input[name="password"]', password);
  await page.press('input[name="password"]', 'Enter');
  await page.waitForLoadState();
}

await run(async (browser) => {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await signIn(page, generated);
  await page.waitForSelector('#must-change');
  check(new URL(page.url()).pathname === '/account', `the first sign-in lands on the account page (at ${page.url()})`);
  const reason = (await page.textContent('#must-change')).trim();
  check(/administrator or generated|generated or set by an administrator/.test(reason), `the page says why: ${reason}`);
  check(await page.locator('#nav-mine, #nav-all, #nav-admin').count() === 0, 'no navigation to other pages');
  check(await page.locator('#token-form').count() === 0, 'no token form while the password must change');

  // Any other page leads back to the account page.
  for (const path of ['/recordings/all', '/admin', '/audit']) {
    await page.goto(base + path);
    check(new URL(page.url()).pathname === '/account', `${path} leads to the account page (at ${page.url()})`);
  }
  // The API says no as well.
  const status = await page.evaluate(async () => (await fetch('/api/v1/recordings')).status);
  check(status === 403, `the API answers ${status} before the change, want 403`);

  // Change it with the keyboard alone: type, Tab, type, Tab, type, Enter.
  await page.focus('#pw-current');
  await page.keyboard.type(generated);
  await page.keyboard.press('Tab');
  await page.keyboard.type(chosen);
  await page.keyboard.press('Tab');
  await page.keyboard.type(chosen);
  await page.keyboard.press('Enter');
  // The landing page (/) is the recordings table.
  await page.waitForURL((u) => u.pathname !== '/account');
  await page.waitForSelector('#recordings');
  const landed = new URL(page.url()).pathname;
  check(await page.locator('#must-change').count() === 0, 'no must-change notice on the recordings page');

  // Sign out; the generated password is dead, the chosen one goes straight in.
  await page.click('form[action="/logout"] button');
  await page.waitForSelector('form[action="/login"]');
  await signIn(page, generated);
  check(await page.locator('form[action="/login"]').count() === 1, 'the generated password no longer signs in');
  await signIn(page, chosen);
  await page.waitForSelector('#recordings');
  check(new URL(page.url()).pathname !== '/account', `the new password leads to the recordings (at ${page.url()})`);
  check(errors.length === 0, `no script errors: ${errors}`);
  return { landed, reason };
});
