// Sign in through the real sign-in page, as a person would: type the
// credentials, press Enter, see the signed-in page; a wrong password is
// refused with a message; sign-out returns to the sign-in page.
import { run, check } from './browser.mjs';

const base = process.env.BASE, user = process.env.USER_NAME, password = process.env.PASSWORD;

await run(async (browser) => {
  const page = await browser.newPage();
  await page.goto(base + '/');
  check(await page.locator('form[action="/login"]').count() === 1, 'anonymous / shows the sign-in form');

  await page.fill('input[name="username"]', user);
  await page.fill('input[name="password"]', 'not the password');
  await page.press('input[name="password"]', 'Enter');
  await page.waitForLoadState();
  check(await page.locator('form[action="/login"]').count() === 1, 'a wrong password stays on the sign-in page');
  const refused = await page.locator('[role="alert"], .error').first().textContent().catch(() => '');
  check(refused && refused.trim().length > 0, 'a wrong password shows a message');

  await page.fill('input[name="username"]', user);
  await page.fill('input[name="password"]', password);
  await page.press('input[name="password"]', 'Enter');
  await page.waitForSelector('#current-user');
  const shown = (await page.textContent('#current-user')).trim();
  check(shown === user, `signed-in page names the user (shows "${shown}")`);
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'callvault_session');
  check(session && session.httpOnly && session.sameSite === 'Strict', 'session cookie is HttpOnly and SameSite=Strict');

  await page.click('form[action="/logout"] button, form[action="/logout"] input[type="submit"]');
  await page.waitForSelector('form[action="/login"]');
  return { user: shown };
});
