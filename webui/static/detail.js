// A recording's page: the player (play/pause, seek, speed, volume), a
// waveform drawn from the peaks the server computes (…/peaks), channel
// labels, bookmark markers that seek, and the recording's details and
// annotations. Controls the user may not use are not in the HTML at all
// (the server left them out); this module only wires what is there.
import { t, has, api, el, say, failed, fmtDateTime, fmtDate, fmtDuration, fmtNumber, zone } from './common.js';

const main = document.getElementById('main');
const id = main.dataset.id;
const $ = (x) => document.getElementById(x);
const base = '/api/v1/recordings/' + encodeURIComponent(id);
let rec = null;

function dl(target, pairs) {
  if (!target) return;
  const items = [];
  for (const [key, value] of pairs) {
    if (value === undefined || value === null || value === '') continue;
    items.push(el('dt', {}, t(key)), el('dd', {}, value instanceof Node ? value : String(value)));
  }
  target.replaceChildren(...items);
}

function timeEl(iso) {
  return el('time', { datetime: iso }, fmtDateTime(iso));
}

function party(p) {
  const parts = [p.name, p.username && p.username !== p.name ? p.username : '', p.number].filter(Boolean);
  return parts.join(' · ');
}

function render(r) {
  rec = r;
  $('d-ref').textContent = r.reference ? '· ' + r.reference : '';
  dl($('d-call'), [
    ['col.start', timeEl(r.start)],
    ['col.duration', fmtDuration(r.durationMs) + (r.durationFlagged ? ' ⚠ ' + t('detail.durationFlagged') : '')],
    ['col.direction', t('dir.' + r.direction)],
    ['detail.local', party(r.localParty)],
    ['detail.remote', party(r.remoteParty)],
    ['col.group', r.group],
    ['detail.status', t('status.' + r.status)],
    ['detail.source', r.source],
    ['detail.codecs', r.codecs.join(', ')],
    ['detail.channels', r.channels ? String(r.channels) : ''],
    ['detail.tier', r.tier],
  ]);
  dl($('d-platform'), [
    ['detail.technology', r.technology || r.source],
    ['detail.pbxCallId', r.pbxCallId],
    ['detail.sipIn', r.sipCallIdIngress],
    ['detail.sipOut', r.sipCallIdEgress],
    ['detail.session', r.sessionId],
  ]);
  dl($('d-ids'), [['detail.reference', r.reference], ['detail.id', r.id]]);

  const qb = $('d-quality').tBodies[0];
  qb.replaceChildren(...r.quality.map((q) => el('tr', {},
    el('td', {}, q.label), el('td', { class: 'num' }, fmtNumber(q.lossPct) + ' %'),
    el('td', { class: 'num' }, fmtNumber(q.jitterMs) + ' ms'), el('td', {}, q.oneWay ? t('common.yes') : t('common.no')))));
  $('d-quality').hidden = r.quality.length === 0;
  $('no-quality').hidden = r.quality.length > 0;

  $('d-retention').textContent = r.deleteAfter ? t('detail.deletePlanned', { date: fmtDate(r.deleteAfter) }) : t('detail.keepForever');
  $('d-preserved').textContent = r.preserved
    ? t('detail.preservedBy', { by: r.preserved.by, date: fmtDate(r.preserved.at) }) + (r.preserved.until ? ' ' + t('detail.preservedUntil', { date: fmtDate(r.preserved.until) }) : '')
    : t('detail.notPreserved');
  $('d-preserved').dataset.preserved = r.preserved ? 'true' : 'false';
  if ($('preserve')) $('preserve').hidden = !!r.preserved;
  if ($('release')) $('release').hidden = !r.preserved;

  $('notes').replaceChildren(...r.notes.map((n) => el('li', {},
    el('p', { class: 'note-meta' }, el('strong', {}, n.author), ' · ', timeEl(n.time)), el('p', { class: 'note-text' }, n.text))));
  $('no-notes').hidden = r.notes.length > 0;

  const fields = Object.entries(r.customFields).sort(([a], [b]) => a.localeCompare(b));
  $('fields').replaceChildren(...fields.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));

  if (main.dataset.canNotes === 'true') {
    for (const radio of document.querySelectorAll('input[name="rating"]')) radio.checked = Number(radio.value) === r.rating;
    $('category').value = r.category || '';
    $('complete').checked = r.completeTransaction;
    $('review').value = String(r.reviewMinutes);
    $('transcript').value = r.transcript || '';
  } else {
    dl($('annotations-ro'), [
      ['detail.rating', r.rating ? t('detail.stars', { n: r.rating }) : t('detail.unrated')],
      ['detail.category', r.category],
      ['detail.complete', r.completeTransaction ? t('common.yes') : t('common.no')],
      ['detail.reviewMinutes', String(r.reviewMinutes)],
    ]);
    $('transcript-ro').textContent = r.transcript || t('detail.noTranscript');
  }

  $('related').replaceChildren(...r.related.map((x) => el('li', {},
    el('a', { href: '/recordings/' + x.id }, x.reference || x.id), ' · ', (has('relation.' + x.relation) ? t('relation.' + x.relation) : x.relation) , ' · ', timeEl(x.start))));
  $('no-related').hidden = r.related.length > 0;

  $('ch-left').textContent = t('player.left', { who: party(r.localParty) || t('detail.local') });
  $('ch-right') && ($('ch-right').textContent = t('player.right', { who: party(r.remoteParty) || t('detail.remote') }));
  renderBookmarks();
}

async function load() {
  try {
    render(await api('GET', base));
  } catch (err) {
    failed(err);
  }
}

// change sends an annotation and shows the answer (the API returns the
// recording as it is now).
async function change(method, path, body, doneKey) {
  try {
    const r = await api(method, base + path, body);
    if (r) render(r); else await load();
    say(t(doneKey || 'common.saved'));
  } catch (err) {
    failed(err);
  }
}

function on(elId, ev, fn) {
  const e = $(elId);
  if (e) e.addEventListener(ev, fn);
}

on('note-form', 'submit', async (e) => {
  e.preventDefault();
  const text = $('note-text').value.trim();
  if (!text) return;
  await change('POST', '/notes', { text }, 'detail.noteAdded');
  $('note-text').value = '';
});
for (const radio of document.querySelectorAll('input[name="rating"]')) {
  radio.addEventListener('change', () => change('PUT', '/rating', { rating: Number(radio.value) }, 'detail.rated'));
}
on('category-form', 'submit', (e) => { e.preventDefault(); change('PUT', '/category', { category: $('category').value.trim() }); });
on('complete', 'change', () => change('PUT', '/complete', { complete: $('complete').checked }));
on('review-form', 'submit', (e) => { e.preventDefault(); change('PUT', '/review-minutes', { minutes: Number($('review').value) || 0 }); });
on('field-form', 'submit', (e) => {
  e.preventDefault();
  change('PUT', '/fields/' + encodeURIComponent($('field-key').value.trim()), { value: $('field-value').value });
});
on('transcript-form', 'submit', (e) => { e.preventDefault(); change('PUT', '/transcript', { transcript: $('transcript').value }); });
on('preserve', 'click', () => change('POST', '/preserve', undefined, 'detail.preservedDone'));
on('release', 'click', () => change('POST', '/release', undefined, 'detail.releasedDone'));
on('delete', 'click', async () => {
  if (!confirm(t('detail.confirmDelete'))) return;
  try {
    await api('DELETE', base);
    say(t('detail.deleted'));
    for (const b of main.querySelectorAll('button, a.button, audio')) b.remove();
    setTimeout(() => location.assign('/'), 1500);
  } catch (err) {
    failed(err);
  }
});
for (const a of [$('dl-mp3'), $('dl-wav')]) {
  if (a) a.href += '&tz=' + encodeURIComponent(zone);
}

// ---- Player ----

const audio = $('audio');
const seek = $('seek');
let clickedAt = 0;

function duration() {
  if (audio && isFinite(audio.duration) && audio.duration > 0) return audio.duration;
  return rec ? rec.durationMs / 1000 : 0;
}

function showTime() {
  const d = duration();
  seek.max = String(d);
  if (!seek.matches(':active')) seek.value = String(audio.currentTime);
  $('time').textContent = fmtDuration(audio.currentTime * 1000) + ' / ' + fmtDuration(d * 1000);
  $('progress').style.width = (d ? Math.min(100, (audio.currentTime / d) * 100) : 0) + '%';
}

function jump(seconds) {
  audio.currentTime = Math.max(0, Math.min(seconds, duration()));
  showTime();
}

function renderBookmarks() {
  if (!audio || !rec) return;
  const d = duration();
  const marks = [], items = [];
  for (const b of rec.bookmarks) {
    const at = b.offsetMs / 1000;
    const label = t('bookmark.' + b.type) + (b.label ? ': ' + b.label : '') + ' · ' + fmtDuration(b.offsetMs);
    const go = () => jump(at);
    marks.push(el('button', { type: 'button', class: 'marker', title: label, 'aria-label': t('player.jump', { what: label }),
      tabindex: '-1', dataset: { offsetMs: String(b.offsetMs) }, onclick: go }));
    marks[marks.length - 1].style.left = (d ? (at / d) * 100 : 0) + '%';
    items.push(el('li', {}, el('button', { type: 'button', class: 'link bookmark', dataset: { offsetMs: String(b.offsetMs) }, onclick: go }, label)));
  }
  $('markers').replaceChildren(...marks);
  $('bookmarks').replaceChildren(...items);
  if (!items.length) $('bookmarks').append(el('li', { class: 'muted' }, t('player.noBookmarks')));
}

if (audio) {
  const play = $('play');
  const setPlayLabel = () => {
    const key = audio.paused ? 'player.play' : 'player.pause';
    play.textContent = t(key);
    play.setAttribute('aria-label', t(key));
  };
  play.addEventListener('click', () => {
    if (audio.paused) {
      clickedAt = performance.now();
      audio.play().catch(failed);
    } else {
      audio.pause();
    }
  });
  audio.addEventListener('playing', () => {
    if (clickedAt) {
      // How long playback took to start, for the browser tests and for
      // anyone looking: data-start-ms on the player.
      $('player').dataset.startMs = String(Math.round(performance.now() - clickedAt));
      clickedAt = 0;
    }
  });
  for (const ev of ['play', 'pause', 'ended']) audio.addEventListener(ev, setPlayLabel);
  for (const ev of ['timeupdate', 'durationchange', 'loadedmetadata', 'seeked']) audio.addEventListener(ev, showTime);
  audio.addEventListener('loadedmetadata', renderBookmarks);
  audio.addEventListener('error', () => say(t('player.error'), true));
  seek.addEventListener('input', () => jump(Number(seek.value)));
  $('speed').addEventListener('change', () => { audio.playbackRate = Number($('speed').value); });
  $('volume').addEventListener('input', () => { audio.volume = Number($('volume').value); });
  $('wave-wrap').addEventListener('click', (e) => {
    if (e.target.closest('.marker')) return;
    const box = $('wave-wrap').getBoundingClientRect();
    jump(((e.clientX - box.left) / box.width) * duration());
  });
  // Keyboard on the page: space plays and pauses, arrows step 5 s, when
  // focus is not in a field.
  document.addEventListener('keydown', (e) => {
    if (e.target.closest('input, textarea, select, button, a')) return;
    if (e.key === ' ') { e.preventDefault(); play.click(); }
    if (e.key === 'ArrowRight') jump(audio.currentTime + 5);
    if (e.key === 'ArrowLeft') jump(audio.currentTime - 5);
  });
  setPlayLabel();
  drawWaveform();
}

// drawWaveform asks the server for the peaks (GET …/peaks: min and max
// per bucket and channel, a few kilobytes) instead of streaming the whole
// WAV into the browser (115 MB for a one-hour stereo call). Left channel
// (local party) on top, right (remote) below.
async function drawWaveform() {
  const canvas = $('wave');
  const ctx = canvas.getContext('2d');
  const W = canvas.width, H = canvas.height;
  try {
    const pk = await api('GET', base + '/peaks?n=' + W);
    if (!pk.buckets) return;
    ctx.clearRect(0, 0, W, H);
    const lane = H / pk.channels;
    const colors = ['#1f5fbf', '#2e8b57'];
    const step = W / pk.buckets;
    for (let c = 0; c < pk.channels; c++) {
      ctx.fillStyle = colors[c % colors.length];
      const mid = lane * c + lane / 2;
      const scale = (lane / 2 - 2) / 32768;
      for (let b = 0; b < pk.buckets; b++) {
        const top = mid - Math.max(0, pk.max[c][b]) * scale;
        const bottom = mid - Math.min(0, pk.min[c][b]) * scale;
        ctx.fillRect(b * step, top, Math.max(1, step), Math.max(1, bottom - top));
      }
    }
    canvas.dataset.buckets = String(pk.buckets);
    canvas.dataset.drawn = 'true';
  } catch (err) {
    // The waveform is an aid; playback works without it.
  }
}

load();
