// Shared by every page: the catalog, the API client, formatting and the
// language picker. No framework and no build step: this file is served as
// it is written.

const messagesEl = document.getElementById('messages');
const messages = messagesEl ? JSON.parse(messagesEl.textContent) : {};

// lang is the page's language (the server picked it).
export const lang = document.documentElement.lang || 'en';

// t returns the message for key with {name} placeholders filled from vars.
export function t(key, vars) {
  let m = Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : '[' + key + ']';
  if (vars) {
    m = m.replace(/\{(\w+)\}/g, (all, name) => (name in vars ? String(vars[name]) : all));
  }
  return m;
}

// has reports whether the catalog has key (for values such as relation
// names that may come from outside the known set).
export function has(key) {
  return Object.prototype.hasOwnProperty.call(messages, key);
}

// keys lists the catalog's keys that start with prefix, in catalog order.
export function keys(prefix) {
  return Object.keys(messages).filter((k) => k.startsWith(prefix));
}

// csrf is the session's token; the API wants it in X-CSRF-Token on every
// state-changing request.
export function csrf() {
  const m = document.querySelector('meta[name="csrf-token"]');
  return m ? m.content : '';
}

// APIError carries the status and the API's message.
export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// request calls the API and returns the Response; a non-2xx answer throws
// an APIError with the API's message.
export async function request(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = csrf();
  const init = { method, headers, credentials: 'same-origin' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (res.status === 401) {
    location.assign('/login');
    throw new APIError(401, t('common.signedOut'));
  }
  if (!res.ok) {
    let msg = res.statusText;
    try {
      const j = await res.json();
      if (j && j.message) msg = j.message;
    } catch (e) { /* not JSON */ }
    throw new APIError(res.status, msg);
  }
  return res;
}

// api is request for JSON answers (null for 204).
export async function api(method, path, body) {
  const res = await request(method, path, body);
  if (res.status === 204) return null;
  return res.json();
}

const dateTimeFmt = new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'medium' });
const dateFmt = new Intl.DateTimeFormat(lang, { dateStyle: 'long' });
const numFmt = new Intl.NumberFormat(lang, { maximumFractionDigits: 2 });

// zone is the browser's IANA time zone.
export const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';

export function fmtDateTime(iso) {
  const d = new Date(iso);
  return isNaN(d) ? '' : dateTimeFmt.format(d);
}

export function fmtDate(iso) {
  const d = new Date(iso);
  return isNaN(d) ? '' : dateFmt.format(d);
}

export function fmtNumber(n) {
  return numFmt.format(n);
}

// fmtDuration is m:ss or h:mm:ss (the server renders the same).
export function fmtDuration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const two = (n) => String(n).padStart(2, '0');
  if (s >= 3600) return `${Math.floor(s / 3600)}:${two(Math.floor(s / 60) % 60)}:${two(s % 60)}`;
  return `${Math.floor(s / 60)}:${two(s % 60)}`;
}

// localizeTimes rewrites every <time datetime> under root in the user's
// language and time zone.
export function localizeTimes(root) {
  for (const el of root.querySelectorAll('time[datetime]')) {
    const s = fmtDateTime(el.getAttribute('datetime'));
    if (s) el.textContent = s;
  }
}

// el builds an element: el('a', {href: '/x', class: 'y'}, 'text', child).
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v === true) e.setAttribute(k, '');
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

// say shows a message in the page's status line.
export function say(text, isError) {
  const m = document.getElementById('message');
  if (!m) return;
  m.textContent = text;
  m.classList.toggle('error', !!isError);
  m.setAttribute('role', isError ? 'alert' : 'status');
}

// failed reports an API error in the status line.
export function failed(err) {
  say(t('common.error', { msg: err && err.message ? err.message : String(err) }), true);
}

// saveBlob hands a fetched file to the browser as a download.
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = el('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

// fileName reads the file name of a Content-Disposition header.
export function fileName(res, fallback) {
  const cd = res.headers.get('Content-Disposition') || '';
  const m = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(cd);
  return m ? decodeURIComponent(m[1]) : fallback;
}

// toLocalInput turns an ISO time into a datetime-local value in the
// browser's zone; fromLocalInput the other way round.
export function toLocalInput(d) {
  const two = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}T${two(d.getHours())}:${two(d.getMinutes())}`;
}

export function fromLocalInput(v) {
  if (!v) return '';
  const d = new Date(v);
  return isNaN(d) ? '' : d.toISOString();
}

// The language picker applies at once; its button is there for browsers
// without script and for keyboard users who prefer to confirm.
const langSelect = document.getElementById('lang-select');
if (langSelect) langSelect.addEventListener('change', () => langSelect.form.submit());

// Tell the server our time zone so it renders the first table page in it.
document.cookie = 'callvault_tz=' + encodeURIComponent(zone) + '; path=/; max-age=31536000; SameSite=Lax';

localizeTimes(document);
