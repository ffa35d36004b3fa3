// The account page: change one's own password (the API wants the current
// one) and manage one's API tokens. A user who must change a generated or
// admin-set password sees only the password form and, once it is changed,
// goes on to the recordings.
import { t, api, el, say, failed, fmtDateTime } from './common.js';

const $ = (x) => document.getElementById(x);
const me = document.getElementById('main').dataset.userId;
const mustChange = document.getElementById('main').dataset.mustChange === '1';

$('password-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  if ($('pw-new').value !== $('pw-repeat').value) {
    say(t('account.mismatch'), true);
    return;
  }
  try {
    await api('POST', '/api/v1/users/' + encodeURIComponent(me) + '/password', { password: $('pw-new').value, currentPassword: $('pw-current').value });
    e.target.reset();
    if (mustChange) {
      location.assign('/');
      return;
    }
    say(t('account.changed'));
  } catch (err) {
    failed(err);
  }
});

async function loadTokens() {
  try {
    const tokens = await api('GET', '/api/v1/tokens');
    $('tokens').tBodies[0].replaceChildren(...tokens.map((tk) => el('tr', {},
      el('td', {}, tk.label),
      el('td', {}, el('time', { datetime: tk.created }, fmtDateTime(tk.created))),
      el('td', {}, tk.expires ? el('time', { datetime: tk.expires }, fmtDateTime(tk.expires)) : t('tokens.never')),
      el('td', {}, el('button', { type: 'button', class: 'secondary', 'aria-label': t('tokens.revoke') + ' ' + tk.label, onclick: () => revoke(tk) }, t('tokens.revoke'))))));
    $('no-tokens').hidden = tokens.length > 0;
    $('tokens').hidden = tokens.length === 0;
  } catch (err) {
    failed(err);
  }
}

async function revoke(tk) {
  if (!confirm(t('tokens.confirmRevoke', { label: tk.label }))) return;
  try {
    await api('DELETE', '/api/v1/tokens/' + encodeURIComponent(tk.id));
    say(t('tokens.revoked'));
    loadTokens();
  } catch (err) {
    failed(err);
  }
}

$('token-form')?.addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    const out = await api('POST', '/api/v1/tokens', { label: $('token-label').value.trim(), expiresInDays: Number($('token-days').value) || 0 });
    $('token-value').textContent = out.token;
    $('token-secret').hidden = false;
    e.target.reset();
    loadTokens();
  } catch (err) {
    failed(err);
  }
});

if (!mustChange) loadTokens();
