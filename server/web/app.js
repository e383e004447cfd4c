// app.js: the inboxd web view. A ticket list (search, status filter, cursor paging) and
// the chat-like thread of one ticket (reply box, status), kept live by the change feed.
//
// Safety rules this file keeps (the page runs under a strict CSP, see server/web.c):
//  - mail content is only ever inserted as text (textContent, text nodes), never as markup;
//  - email HTML is shown only inside <iframe sandbox> (no allow-scripts, no
//    allow-same-origin) through srcdoc, after scripts, frames, remote loads and event
//    handler attributes are taken out, so it can neither run code nor call home;
//  - no inline styles or handlers: classes and the hidden attribute only.

const TOKEN_KEY = 'inboxd.token'; // sessionStorage: this tab only
const AGENT_KEY = 'inboxd.agent'; // localStorage: the agent's From address
const FILTER_KEY = 'inboxd.status';
const HEAD_SEQ = '9007199254740991'; // asks the feed for its newest seq
const LONG_POLL_S = 25;
const PAGE = 50;
const PREVIEW_MAX_BYTES = 8 << 20;
const RASTER = /^image\/(png|jpe?g|gif|webp|bmp|avif)$/i;
const MACHINE = { auto_reply: 'Auto-reply', bounce: 'Bounce', complaint: 'Complaint' };
const STATUS_LABEL = { open: 'Open', pending: 'Pending', closed: 'Closed' };

const $ = (id) => document.getElementById(id);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  q: '',
  status: localStorage.getItem(FILTER_KEY) || '',
  tickets: [],
  nextCursor: null,
  listReq: 0,
  ticketId: null,
  ticket: null,
  threadReq: 0,
  shown: new Map(), // message id -> <li> of the open thread
  objectUrls: [], // revoked when another ticket opens
  feedSeq: 0,
  feedStop: null,
  dirtyList: false,
  dirtyThread: false,
  refreshTimer: 0,
};

// ---- DOM helpers -------------------------------------------------------------------------

// h('a', {href: '#x', class: 'y'}, 'text', child...): strings become text nodes.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') || k === 'style') throw new Error(`no ${k} attributes`);
    el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function showError(el, err) {
  el.textContent = err ? err.message || String(err) : '';
  el.hidden = !err;
}

let announceTimer = 0;
function announce(text) {
  const el = $('announce');
  el.textContent = '';
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => (el.textContent = text), 50);
}

function setConn(text, live) {
  const el = $('conn');
  el.textContent = text;
  el.classList.toggle('live', !!live);
}

// ---- Times ----------------------------------------------------------------------------------

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto', style: 'short' });
const absFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

function relative(iso) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const s = (t - Date.now()) / 1000;
  const abs = Math.abs(s);
  if (abs < 45) return 'just now';
  if (abs < 2700) return rtf.format(Math.round(s / 60), 'minute');
  if (abs < 79200) return rtf.format(Math.round(s / 3600), 'hour');
  if (abs < 86400 * 26) return rtf.format(Math.round(s / 86400), 'day');
  if (abs < 86400 * 320) return rtf.format(Math.round(s / (86400 * 30.4)), 'month');
  return rtf.format(Math.round(s / (86400 * 365)), 'year');
}

function timeEl(iso, cls) {
  if (!iso) return null;
  const t = Date.parse(iso);
  return h('time', { class: cls, datetime: iso, title: Number.isNaN(t) ? iso : absFmt.format(t), 'data-rel': '' },
    relative(iso));
}

function tickTimes() {
  for (const el of document.querySelectorAll('time[data-rel]')) el.textContent = relative(el.getAttribute('datetime'));
}

function formatSize(n) {
  if (typeof n !== 'number') return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} kB`;
  return `${(n / 1048576).toFixed(1)} MB`;
}

function person(p, fallback) {
  if (!p) return fallback;
  if (p.name && p.address) return `${p.name} <${p.address}>`;
  return p.name || p.address || fallback;
}

// ---- API --------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// One request to the API with the token, if any. A 401 asks for the token (once for all
// requests waiting on it) and tries again. Resolves to the parsed JSON, or to a Blob with
// {blob: true}; rejects with ApiError.
async function api(path, { method = 'GET', body, signal, blob = false } = {}) {
  for (;;) {
    const headers = { Accept: blob ? '*/*' : 'application/json' };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-cache', // revalidate with the ETag: cheap 304s
      credentials: 'same-origin',
      signal,
    });
    if (res.status === 401) {
      await askToken(state.token ? 'That token was not accepted. Check it and try again.' : '');
      continue;
    }
    if (!res.ok) {
      let code = 'http_error';
      let message = `The server answered ${res.status}.`;
      try {
        const e = (await res.json()).error;
        if (e) ({ code, message } = e);
      } catch { /* not JSON */ }
      if (res.status === 403 && !/read-only/.test(message)) message = `${message} (the API token may be read-only)`;
      throw new ApiError(res.status, code, message);
    }
    return blob ? res.blob() : res.json();
  }
}

// ---- API token ---------------------------------------------------------------------------------

let tokenWait = null;

function askToken(message) {
  if (tokenWait) return tokenWait;
  const dialog = $('token-dialog');
  const input = $('token-input');
  showError($('token-error'), message ? new Error(message) : null);
  input.value = '';
  setConn('Waiting for the API token', false);
  tokenWait = new Promise((resolve) => {
    const form = $('token-form');
    const onSubmit = (ev) => {
      ev.preventDefault();
      const t = input.value.trim();
      if (!t) {
        showError($('token-error'), new Error('Enter the token.'));
        input.focus();
        return;
      }
      form.removeEventListener('submit', onSubmit);
      state.token = t;
      sessionStorage.setItem(TOKEN_KEY, t);
      $('forget-token').hidden = false;
      dialog.close();
      tokenWait = null;
      setConn('Connecting…', false);
      resolve();
    };
    form.addEventListener('submit', onSubmit);
  });
  if (!dialog.open) dialog.showModal();
  input.focus();
  return tokenWait;
}

// ---- Ticket list ---------------------------------------------------------------------------------

function listQuery(extra) {
  const p = new URLSearchParams();
  if (state.q) p.set('q', state.q);
  if (state.status) p.set('status', state.status);
  for (const [k, v] of Object.entries(extra)) p.set(k, v);
  return `/api/tickets?${p}`;
}

function statusBadge(status) {
  return h('span', { class: `badge status-${status}` }, STATUS_LABEL[status] || status);
}

function ticketItem(t) {
  const current = t.id === state.ticketId;
  const count = t.message_count ?? 0;
  const last = t.last_message || {};
  const snippetPrefix = last.direction === 'outbound' ? 'Agent: ' : '';
  return h('li', { class: 'ticket-item' },
    h('a', { class: 'ticket', href: `#ticket=${t.id}`, 'data-id': t.id, 'aria-current': current ? 'true' : false },
      h('span', { class: 't-top' },
        h('span', { class: 't-subject' }, t.subject || '(no subject)'),
        timeEl(last.at || t.updated_at, 't-time')),
      h('span', { class: 't-customer' }, person(t.customer, 'Unknown customer')),
      h('span', { class: 't-snippet' }, last.snippet ? snippetPrefix + last.snippet : ''),
      h('span', { class: 't-meta' },
        statusBadge(t.status),
        h('span', { class: 't-count' }, `${count} ${count === 1 ? 'message' : 'messages'}`),
        (t.tags || []).slice(0, 3).map((tag) => h('span', { class: 'tag' }, tag)))));
}

function renderList() {
  const ul = $('tickets');
  const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest('.ticket');
  const focusedId = focused && ul.contains(focused) ? focused.dataset.id : null;
  ul.replaceChildren(...state.tickets.map(ticketItem));
  ul.setAttribute('aria-busy', 'false');
  $('list-empty').hidden = state.tickets.length > 0;
  $('load-more').hidden = !state.nextCursor;
  if (focusedId) {
    const again = ul.querySelector(`.ticket[data-id="${CSS.escape(focusedId)}"]`);
    if (again) again.focus();
  }
}

// Loads the first page again (as many tickets as are shown, at most 200), or the next
// page with MORE. Late answers of superseded requests are dropped.
async function loadList(more = false) {
  const req = ++state.listReq;
  const limit = more ? PAGE : Math.min(200, Math.max(PAGE, state.tickets.length));
  const url = listQuery(more ? { limit, cursor: state.nextCursor } : { limit });
  $('tickets').setAttribute('aria-busy', 'true');
  try {
    const doc = await api(url);
    if (req !== state.listReq) return;
    showError($('list-error'), null);
    if (more) {
      const seen = new Set(state.tickets.map((t) => t.id));
      state.tickets.push(...doc.tickets.filter((t) => !seen.has(t.id)));
    } else {
      state.tickets = doc.tickets;
    }
    state.nextCursor = doc.next_cursor || null;
    renderList();
  } catch (err) {
    if (req !== state.listReq) return;
    $('tickets').setAttribute('aria-busy', 'false');
    showError($('list-error'), err);
  }
}

// ---- Email HTML in a sandboxed frame ----------------------------------------------------------------

function cidKey(s) {
  let v = s.trim().replace(/^cid:/i, '');
  try {
    v = decodeURIComponent(v);
  } catch { /* keep as is */ }
  return v.replace(/^<|>$/g, '').trim().toLowerCase();
}

function blobToDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.readAsDataURL(blob);
  });
}

// cid -> data: URL of the message's raster image parts, fetched with the token.
async function cidImages(m) {
  const map = new Map();
  await Promise.all((m.attachments || []).map(async (a) => {
    if (!a.content_id || !RASTER.test(a.content_type || '') || a.size > PREVIEW_MAX_BYTES) return;
    try {
      const blob = await api(`/api/attachments/${a.id}`, { blob: true });
      map.set(cidKey(a.content_id), await blobToDataUrl(new Blob([blob], { type: a.content_type })));
    } catch { /* shown without it */ }
  }));
  return map;
}

// A URL an image may keep inside the frame: data: images and cid: parts (as data: URLs);
// anything remote would leak that the mail was read, and the CSP would block it anyway.
function safeImageUrl(url, cids) {
  const u = (url || '').trim();
  if (/^data:image\/(png|jpe?g|gif|webp|bmp|avif);/i.test(u)) return u;
  if (/^cid:/i.test(u)) return cids.get(cidKey(u)) || null;
  return null;
}

function cleanCss(css, cids, counter) {
  return css
    .replace(/<!--|-->/g, '')
    .replace(/@import[^;]*;?/gi, '')
    .replace(/url\(\s*(['"]?)(.*?)\1\s*\)/gi, (all, q, url) => {
      const safe = safeImageUrl(url, cids);
      if (safe) return `url("${safe}")`;
      counter.blocked++;
      return 'none';
    })
    .replace(/expression\s*\(/gi, '(');
}

// The declarations of a style="" attribute, each made !important so that it still wins
// over the mail's <style> rules once it lives in a stylesheet.
function declarations(text) {
  const out = [];
  let cur = '';
  let depth = 0;
  let quote = '';
  for (const ch of text) {
    if (quote) {
      if (ch === quote) quote = '';
    } else if (ch === '"' || ch === "'") {
      quote = ch;
    } else if (ch === '(') {
      depth++;
    } else if (ch === ')') {
      depth = Math.max(0, depth - 1);
    } else if (ch === ';' && depth === 0) {
      out.push(cur);
      cur = '';
      continue;
    }
    cur += ch;
  }
  out.push(cur);
  return out.map((d) => d.trim().replace(/[{}]/g, ''))
    .filter((d) => /^-?[a-z][-a-z0-9]*\s*:/i.test(d))
    .map((d) => `${d.replace(/\s*!\s*important\s*$/i, '')} !important`);
}

const DROP = 'ib-script, noscript, base, meta, link, iframe, frame, frameset, object, embed, applet, portal, '
  + 'video, audio, source, track, input[type="image"]';
const URL_ATTRS = ['src', 'background', 'poster', 'lowsrc', 'dynsrc'];

// Before the browser parses the mail (even an inert DOMParser document is checked against
// the page's CSP, which would report every inline style and handler): <style> blocks are
// taken out whole, <script> renamed, and inline style and on* attributes renamed to data-
// attributes. A tag this misses is still harmless: the frame runs no script.
function neutralize(html, rules, cids, counter) {
  return html
    .replace(/<style\b[^>]*>([\s\S]*?)<\/style\s*>/gi, (all, css) => {
      rules.push(cleanCss(css, cids, counter));
      return '';
    })
    .replace(/<(\/?)(script|style)\b/gi, '<$1ib-$2')
    .replace(/<[a-z][^>]*>/gi, (tag) => tag.replace(/([\s"'/])(on[a-z]+|style)(\s*=)/gi, '$1data-ib-$2$3'));
}

// The email's HTML as a standalone document for srcdoc: no scripts, no handlers, no
// frames, no remote loads; cid: images as data: URLs; <style> blocks and inline styles
// moved into one stylesheet (the inherited CSP forbids inline styles), linked as a data:
// URL. Returns {html, blocked}: blocked counts the remote images left out.
function sanitizeMailHtml(html, cids) {
  const counter = { blocked: 0 };
  const rules = [];
  const doc = new DOMParser().parseFromString(neutralize(html, rules, cids, counter), 'text/html'); // inert
  doc.querySelectorAll(DROP).forEach((el) => el.remove());
  let n = 0;
  for (const el of doc.querySelectorAll('*')) {
    for (const attr of [...el.attributes]) {
      const name = attr.name.toLowerCase();
      if (name === 'data-ib-style') {
        const decls = declarations(attr.value);
        el.removeAttribute(attr.name);
        if (decls.length) {
          el.setAttribute('data-ib-s', String(++n));
          rules.push(`[data-ib-s="${n}"]{${cleanCss(decls.join(';'), cids, counter)}}`);
        }
      } else if (name.startsWith('data-ib-on') || name.startsWith('on') || name === 'srcset' || name === 'ping'
        || name === 'action' || name === 'formaction' || name === 'http-equiv' || name === 'nonce') {
        el.removeAttribute(attr.name);
      } else if (URL_ATTRS.includes(name) || ((name === 'href' || name === 'xlink:href') && el.namespaceURI !== 'http://www.w3.org/1999/xhtml')) {
        const safe = safeImageUrl(attr.value, cids);
        if (safe) {
          el.setAttribute(attr.name, safe);
        } else {
          if (attr.value.trim()) counter.blocked++;
          el.removeAttribute(attr.name);
          if (el.localName === 'img' && !el.getAttribute('alt')) el.setAttribute('alt', '[image not loaded]');
        }
      } else if (name === 'href' && !/^(https?:|mailto:|#)/i.test(attr.value.trim())) {
        el.removeAttribute(attr.name);
      }
    }
  }
  // Our base sheet first, the mail's own rules after it: a data: URL, since the frame's
  // opaque origin cannot read blob: URLs of this page and the CSP allows no inline styles.
  const sheets = [new URL('/static/mail.css', location.href).href];
  const css = rules.join('\n');
  if (css.trim()) sheets.push(`data:text/css;charset=utf-8,${encodeURIComponent(css)}`);
  doc.head.prepend(...sheets.map((href) => {
    const link = doc.createElement('link');
    link.rel = 'stylesheet';
    link.href = href;
    return link;
  }));
  return { html: `<!doctype html>\n${doc.documentElement.outerHTML}`, blocked: counter.blocked };
}

async function showHtml(m, frameBox, note) {
  note.hidden = true;
  const cids = await cidImages(m);
  const clean = sanitizeMailHtml(m.html, cids);
  frameBox.hidden = false;
  const frame = h('iframe', {
    sandbox: '',
    referrerpolicy: 'no-referrer',
    title: `Formatted message from ${person(m.from, 'the sender')}`,
    class: 'mail-frame',
  });
  frame.srcdoc = clean.html;
  frameBox.replaceChildren(frame);
  if (clean.blocked) {
    note.textContent = `${clean.blocked} remote image${clean.blocked === 1 ? ' was' : 's were'} not loaded (privacy).`;
    note.hidden = false;
  }
}

// ---- Thread -------------------------------------------------------------------------------------------

function revokeObjectUrls() {
  for (const u of state.objectUrls) URL.revokeObjectURL(u);
  state.objectUrls = [];
}

async function downloadAttachment(ev, a) {
  if (!state.token) return; // same origin, no header needed: the browser downloads it
  ev.preventDefault();
  try {
    const blob = await api(`/api/attachments/${a.id}`, { blob: true });
    const url = URL.createObjectURL(blob);
    const link = h('a', { href: url, download: a.filename || `attachment-${a.id}` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (err) {
    announce(`Download failed: ${err.message}`);
  }
}

function attachmentList(m) {
  const atts = m.attachments || [];
  if (!atts.length) return null;
  const ul = h('ul', { class: 'attachments', 'aria-label': 'Attachments' });
  for (const a of atts) {
    const name = a.filename || `attachment-${a.id}`;
    const link = h('a', { href: `/api/attachments/${a.id}`, download: name, class: 'att' },
      h('span', { class: 'att-name' }, name),
      h('span', { class: 'att-size' }, [a.content_type, formatSize(a.size)].filter(Boolean).join(', ')));
    link.addEventListener('click', (ev) => downloadAttachment(ev, a));
    const li = h('li', { class: a.disposition === 'inline' ? 'inline' : null }, link);
    if (RASTER.test(a.content_type || '') && (a.size ?? 0) <= PREVIEW_MAX_BYTES) {
      const img = h('img', { class: 'preview', alt: name, decoding: 'async' });
      img.hidden = true;
      li.prepend(img);
      api(`/api/attachments/${a.id}`, { blob: true }).then((blob) => {
        const url = URL.createObjectURL(new Blob([blob], { type: a.content_type }));
        state.objectUrls.push(url);
        img.src = url;
        img.hidden = false;
      }).catch(() => {});
    }
    ul.append(li);
  }
  return ul;
}

function machineNote(m) {
  if (m.classification === 'bounce' && m.bounce) {
    const rcpts = (m.bounce.recipients || []).map((r) => [r.address, r.status, r.diagnostic].filter(Boolean).join(' ')).join('; ');
    return `Delivery failed (${m.bounce.kind || 'unknown'})${rcpts ? `: ${rcpts}` : ''}`;
  }
  if (m.classification === 'complaint' && m.complaint) {
    const r = (m.complaint.recipients || []).join(', ');
    return `Complaint (${m.complaint.feedback_type || 'abuse'})${r ? ` about ${r}` : ''}`;
  }
  if (m.classification === 'auto_reply') return 'Sent automatically (out of office or similar)';
  return null;
}

function messageItem(m) {
  const inbound = m.direction !== 'outbound';
  const machine = MACHINE[m.classification];
  const from = person(m.from, inbound ? 'Unknown sender' : 'Agent');
  const stripped = (m.stripped_text || '').trim();
  const full = (m.text || '').trim();
  const shown = stripped || full;
  const headId = `msg-${m.id}-head`;
  const bodyId = `msg-${m.id}-full`;

  const body = h('div', { class: 'msg-text' }, shown || (m.html ? '' : '(no text)'));
  if (!shown && m.html) body.hidden = true;
  const fullText = h('div', { class: 'msg-text full', id: bodyId }, full);
  fullText.hidden = true;

  const actions = h('div', { class: 'msg-actions' });
  if (full && stripped && full !== stripped) {
    const btn = h('button', { type: 'button', class: 'link', 'aria-expanded': 'false', 'aria-controls': bodyId },
      'Show quoted text');
    btn.addEventListener('click', () => {
      const open = fullText.hidden;
      fullText.hidden = !open;
      body.hidden = open;
      btn.setAttribute('aria-expanded', String(open));
      btn.textContent = open ? 'Hide quoted text' : 'Show quoted text';
    });
    actions.append(btn);
  }
  // The HTML view: a note (remote images left out, errors) and the resizable frame box.
  const note = h('p', { class: 'msg-note' });
  note.hidden = true;
  const frameBox = h('div', { class: 'msg-frame-box' });
  const htmlBox = h('div', { class: 'msg-html', id: `msg-${m.id}-html` }, note, frameBox);
  htmlBox.hidden = true;
  if (m.html) {
    const btn = h('button', { type: 'button', class: 'link', 'aria-expanded': 'false', 'aria-controls': htmlBox.id },
      'Show formatted');
    let built = false;
    const toggle = async () => {
      const open = htmlBox.hidden;
      if (open && !built) {
        built = true;
        try {
          await showHtml(m, frameBox, note);
        } catch (err) {
          built = false;
          note.textContent = `Cannot show the formatted message: ${err.message}`;
          note.hidden = false;
          frameBox.hidden = true;
        }
      }
      htmlBox.hidden = !open;
      btn.setAttribute('aria-expanded', String(open));
      btn.textContent = open ? 'Hide formatted' : 'Show formatted';
    };
    btn.addEventListener('click', toggle);
    actions.append(btn);
    if (!shown) queueMicrotask(toggle); // HTML-only mail without text: show the frame at once
  }

  const label = machine ? `${machine} from ${from}` : inbound ? `Customer message from ${from}` : `Reply by ${from}`;
  const li = h('li', {
    class: ['msg', inbound ? 'inbound' : 'outbound', machine ? `machine ${m.classification}` : ''].join(' ').trim(),
    id: `msg-${m.id}`,
    'data-id': m.id,
    'data-direction': inbound ? 'inbound' : 'outbound',
    'data-classification': m.classification || '',
  },
  h('article', { 'aria-label': label },
    h('header', { class: 'msg-head', id: headId },
      h('span', { class: 'msg-from' }, m.from && m.from.name ? m.from.name : from),
      m.from && m.from.name && m.from.address ? h('span', { class: 'msg-addr' }, m.from.address) : null,
      machine ? h('span', { class: `badge machine-badge ${m.classification}` }, machine) : null,
      timeEl(m.date || m.created_at, 'msg-time')),
    machine ? h('p', { class: 'msg-machine' }, machineNote(m)) : null,
    body, fullText, actions, htmlBox, attachmentList(m)));
  return li;
}

function renderThreadHead(t) {
  state.ticket = t;
  $('thread-title').textContent = t.subject || '(no subject)';
  const count = t.message_count ?? 0;
  $('thread-meta').replaceChildren(
    h('span', { class: 'customer' }, person(t.customer, 'Unknown customer')),
    ` · Ticket #${t.id} · ${count} ${count === 1 ? 'message' : 'messages'} · opened `,
    timeEl(t.created_at, 'opened'));
  $('thread-tags').replaceChildren(...(t.tags || []).map((tag) => h('li', { class: 'tag' }, tag)));
  $('thread-tags').hidden = !(t.tags || []).length;
  const sel = $('ticket-status');
  if (!sel.disabled) sel.value = t.status;
  document.title = `${t.subject || 'Ticket'} · inboxd`;
}

function scrollToEnd(smooth) {
  const ol = $('messages');
  const calm = matchMedia('(prefers-reduced-motion: reduce)').matches;
  ol.scrollTo({ top: ol.scrollHeight, behavior: smooth && !calm ? 'smooth' : 'auto' });
}

// Adds the messages not yet shown, oldest first. LIVE: marks them, says so to screen
// readers, and follows them down unless the agent has scrolled up to read.
function addMessages(messages, live) {
  const ol = $('messages');
  const atEnd = ol.scrollHeight - ol.scrollTop - ol.clientHeight < 120;
  const fresh = [];
  for (const m of messages) {
    if (state.shown.has(m.id)) continue;
    const li = messageItem(m);
    state.shown.set(m.id, li);
    ol.append(li);
    fresh.push(m);
  }
  if (live && fresh.length) {
    for (const m of fresh) state.shown.get(m.id).classList.add('fresh');
    const incoming = fresh.filter((m) => m.direction !== 'outbound');
    if (incoming.length) announce(`New message from ${person(incoming[incoming.length - 1].from, 'the customer')}`);
    if (atEnd) scrollToEnd(true);
  }
  return fresh;
}

async function openTicket(id, { focus = false, live = false } = {}) {
  const req = ++state.threadReq;
  const switching = id !== state.ticketId;
  if (switching) {
    state.ticketId = id;
    state.ticket = null;
    state.shown.clear();
    revokeObjectUrls();
    $('messages').replaceChildren();
    $('reply-status').textContent = '';
    showError($('thread-error'), null);
    document.body.classList.add('has-ticket');
    for (const a of document.querySelectorAll('.ticket')) {
      if (Number(a.dataset.id) === id) a.setAttribute('aria-current', 'true');
      else a.removeAttribute('aria-current');
    }
  }
  try {
    const doc = await api(`/api/tickets/${id}`);
    if (req !== state.threadReq || id !== state.ticketId) return;
    $('thread-empty').hidden = true;
    $('thread').hidden = false;
    renderThreadHead(doc.ticket);
    addMessages(doc.messages, live && !switching);
    if (switching) {
      scrollToEnd(false);
      if (focus) $('thread-title').focus();
    }
  } catch (err) {
    if (req !== state.threadReq) return;
    $('thread-empty').hidden = true;
    $('thread').hidden = false;
    showError($('thread-error'), err.status === 404 ? new Error(`Ticket #${id} does not exist.`) : err);
  }
}

function closeTicket() {
  state.ticketId = null;
  state.ticket = null;
  state.threadReq++;
  state.shown.clear();
  revokeObjectUrls();
  $('messages').replaceChildren();
  $('thread').hidden = true;
  $('thread-empty').hidden = false;
  document.body.classList.remove('has-ticket');
  document.title = 'inboxd';
  for (const a of document.querySelectorAll('.ticket[aria-current]')) a.removeAttribute('aria-current');
}

// #ticket=ID opens a ticket, no hash closes it; other hashes are not ours.
function route({ focus = false } = {}) {
  const m = /^#ticket=(\d+)$/.exec(location.hash);
  if (m) openTicket(Number(m[1]), { focus });
  else if (location.hash === '' || location.hash === '#') closeTicket();
}

// ---- Status and reply ------------------------------------------------------------------------------------

async function changeStatus() {
  const sel = $('ticket-status');
  const id = state.ticketId;
  const before = state.ticket ? state.ticket.status : null;
  const status = sel.value;
  if (!id || status === before) return;
  sel.disabled = true;
  try {
    const doc = await api(`/api/tickets/${id}`, { method: 'PATCH', body: { status } });
    sel.disabled = false;
    showError($('thread-error'), null);
    if (id === state.ticketId) renderThreadHead(doc.ticket);
    announce(`Ticket marked ${STATUS_LABEL[status].toLowerCase()}`);
    loadList();
  } catch (err) {
    sel.disabled = false;
    if (before) sel.value = before;
    showError($('thread-error'), err);
  }
}

async function sendReply(ev) {
  ev.preventDefault();
  const fromEl = $('reply-from');
  const textEl = $('reply-text');
  const statusEl = $('reply-status');
  const from = fromEl.value.trim();
  const text = textEl.value;
  const id = state.ticketId;
  if (!from) {
    statusEl.textContent = 'Enter your agent address first.';
    fromEl.focus();
    return;
  }
  if (!text.trim()) {
    statusEl.textContent = 'Write a message first.';
    textEl.focus();
    return;
  }
  localStorage.setItem(AGENT_KEY, from);
  const body = { from, text };
  if ($('reply-close').checked) body.status = 'closed';
  $('reply-send').disabled = true;
  statusEl.textContent = 'Sending…';
  try {
    const msg = await api(`/api/tickets/${id}/messages`, { method: 'POST', body });
    if (id === state.ticketId) {
      addMessages([msg], false);
      scrollToEnd(true);
      textEl.value = '';
      $('reply-close').checked = false;
      statusEl.textContent = 'Reply sent.';
      openTicket(id); // the status may have changed
    }
    loadList();
  } catch (err) {
    statusEl.textContent = `Not sent: ${err.message}`;
  } finally {
    $('reply-send').disabled = false;
  }
}

// ---- Change feed ------------------------------------------------------------------------------------------

function onEvent(ev) {
  if (typeof ev.seq === 'number') state.feedSeq = Math.max(state.feedSeq, ev.seq);
  state.dirtyList = true;
  if (ev.ticket_id === state.ticketId) state.dirtyThread = true;
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(() => {
    if (state.dirtyList) loadList();
    if (state.dirtyThread && state.ticketId) openTicket(state.ticketId, { live: true });
    state.dirtyList = state.dirtyThread = false;
  }, 50); // one refresh for a burst of events
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

// Server-Sent Events when no token is needed (EventSource cannot send headers), the
// long poll otherwise, or when the stream fails for good.
function startFeed() {
  if (state.feedStop) state.feedStop();
  const ctl = new AbortController();
  state.feedStop = () => ctl.abort();
  if (!state.token && typeof EventSource === 'function') {
    const es = new EventSource(`/api/events?after=${state.feedSeq}`);
    for (const type of ['ticket.created', 'message.created', 'ticket.updated']) {
      es.addEventListener(type, (e) => {
        try { onEvent(JSON.parse(e.data)); } catch { /* ignore a bad event */ }
      });
    }
    es.onopen = () => setConn('Live', true);
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) { // refused (e.g. a token is now needed)
        es.close();
        longPoll(ctl.signal);
      } else {
        setConn('Reconnecting…', false);
      }
    };
    ctl.signal.addEventListener('abort', () => es.close(), { once: true });
    return;
  }
  longPoll(ctl.signal);
}

async function longPoll(signal) {
  let failures = 0;
  setConn('Live', true);
  while (!signal.aborted) {
    try {
      const doc = await api(`/api/events?after=${state.feedSeq}&wait=${LONG_POLL_S}`, { signal });
      failures = 0;
      setConn('Live', true);
      for (const ev of doc.events) onEvent(ev);
      if (typeof doc.last_seq === 'number' && !doc.events.length) state.feedSeq = Math.max(state.feedSeq, doc.last_seq);
    } catch (err) {
      if (signal.aborted) return;
      failures++;
      setConn('Reconnecting…', false);
      await sleep(Math.min(30000, 1000 * 2 ** Math.min(failures, 5)), signal);
    }
  }
}

// ---- Start -----------------------------------------------------------------------------------------------

function bind() {
  let searchTimer = 0;
  const search = $('search');
  const runSearch = () => {
    clearTimeout(searchTimer);
    const q = search.value.trim();
    if (q === state.q) return;
    state.q = q;
    state.tickets = [];
    state.nextCursor = null;
    loadList();
  };
  $('search-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    runSearch();
  });
  search.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(runSearch, 300);
  });
  const filter = $('status-filter');
  filter.value = state.status;
  filter.addEventListener('change', () => {
    state.status = filter.value;
    localStorage.setItem(FILTER_KEY, state.status);
    state.tickets = [];
    state.nextCursor = null;
    loadList();
  });
  $('load-more').addEventListener('click', () => loadList(true));
  $('tickets').addEventListener('click', (ev) => {
    const a = ev.target.closest('.ticket');
    // The same ticket again: hashchange does not fire, so focus the thread by hand.
    if (a && location.hash === a.getAttribute('href')) {
      ev.preventDefault();
      $('thread-title').focus();
    }
  });
  window.addEventListener('hashchange', () => route({ focus: true }));
  $('skip').addEventListener('click', (ev) => {
    ev.preventDefault(); // keep #ticket=ID in the address
    (state.ticketId ? $('thread-title') : $('thread-pane')).focus();
  });
  $('back').addEventListener('click', () => {
    const id = state.ticketId;
    history.pushState(null, '', location.pathname + location.search);
    closeTicket();
    const a = document.querySelector(`.ticket[data-id="${id}"]`);
    (a || $('search')).focus();
  });
  $('ticket-status').addEventListener('change', changeStatus);
  $('reply-form').addEventListener('submit', sendReply);
  $('reply-text').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) $('reply-form').requestSubmit();
  });
  $('reply-from').value = localStorage.getItem(AGENT_KEY) || '';
  $('token-dialog').addEventListener('cancel', (ev) => ev.preventDefault()); // nothing works without it
  $('forget-token').hidden = !state.token;
  $('forget-token').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    location.reload();
  });
  document.addEventListener('keydown', (ev) => {
    const t = ev.target;
    const typing = t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement;
    if (ev.key === '/' && !typing && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
      ev.preventDefault();
      search.focus();
    }
  });
  setInterval(tickTimes, 30000);
}

async function start() {
  bind();
  // The feed's newest seq before anything is read, so no change in between is missed.
  try {
    state.feedSeq = (await api(`/api/events?after=${HEAD_SEQ}&limit=1`)).last_seq || 0;
  } catch (err) {
    showError($('list-error'), err);
  }
  await loadList();
  route();
  startFeed();
}

start();
