// web_view.test.mjs: the built-in web view in a real browser (ctest browser.web_view).
//
// Starts the real `inboxd serve` (INBOXD_BIN) on 127.0.0.1 with a temporary database,
// seeds mail through /inbound/raw, and drives Debian's Chromium with playwright-core:
// list, search, status filter, a thread with its bubbles, quoted text, the sandboxed HTML
// view with its inline image, attachments, a reply, and messages arriving live. Once
// without a token (EventSource) and once with --api-token (token form, long poll).
// Screenshots go to $INBOXD_BUILD_DIR/artifacts/browser/. Any console error, page error,
// CSP violation or request leaving the server's origin fails the test.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SRC = process.env.INBOXD_SOURCE_DIR || path.resolve(HERE, '../..');
const BUILD = process.env.INBOXD_BUILD_DIR || path.join(SRC, 'build');
const BIN = process.env.INBOXD_BIN || path.join(BUILD, 'inboxd');
const CHROMIUM = process.env.INBOXD_CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = path.join(BUILD, 'artifacts', 'browser');
const WAIT_MS = 15000; // for anything the page does after an action (sanitizer builds are slow)

const EXPECTED_CSP = "default-src 'none'; script-src 'self'; style-src 'self' data:; "
  + "img-src 'self' data: blob:; connect-src 'self'; frame-src 'self'; font-src 'self'; "
  + "form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

// 12x12 blue PNG, made for this test.
const PNG_B64 = 'iVBORw0KGgoAAAANSUhEUgAAAAwAAAAMCAIAAADZF8uwAAAAE0lEQVR42mNQDztGEDGMKhqMigBAH7WxLGboAwAAAABJRU5ErkJggg==';
const PDF_BYTES = Buffer.from('%PDF-1.4\n% synthetic test document\n%%EOF\n');

if (!fs.existsSync(CHROMIUM)) {
  throw new Error(`${CHROMIUM} is missing: install Debian's chromium (deploy/install-deps.sh --test)`);
}
if (!fs.existsSync(BIN)) throw new Error(`${BIN} is missing: build inboxd first, or set INBOXD_BIN`);

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'inboxd-browser-'));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
fs.mkdirSync(ARTIFACTS, { recursive: true });
for (const f of fs.readdirSync(ARTIFACTS)) {
  if (/\.(png|html)$/.test(f)) fs.rmSync(path.join(ARTIFACTS, f)); // this run's files only
}

// ---- Mail ------------------------------------------------------------------------------------

function b64lines(buf) {
  return buf.toString('base64').replace(/.{1,76}/g, '$&\r\n');
}

// A raw RFC 5322 message; BODY is the full MIME body after the headers given in HEADERS.
function mail(headers, body) {
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}`);
  return Buffer.from(`${lines.join('\r\n')}\r\nMIME-Version: 1.0\r\n${body.replace(/\r?\n/g, '\r\n')}`);
}

const MAILS = {
  printer: mail({
    From: '=?UTF-8?Q?Ay=C5=9Fe_Y=C4=B1lmaz?= <ayse@example.org>',
    To: 'Support <help@example.com>',
    Subject: 'Printer prints blank pages',
    'Message-ID': '<printer-1@example.org>',
    Date: 'Mon, 06 Jan 2025 10:00:00 +0000',
  }, `Content-Type: multipart/related; boundary="rel"

--rel
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8

Hello, my printer prints blank pages since Monday. A photo is attached.

--alt
Content-Type: text/html; charset=utf-8

<html><head><style>.lead { color: #a01010; }</style></head><body>
<p class="lead" style="font-size: 19px; font-weight: bold" id="mail-marker">Hello, my printer prints blank pages since Monday.</p>
<p>A photo: <img alt="printer photo" src="cid:photo-1@example.org" width="48" height="48"></p>
<p><img alt="tracker" src="http://tracker.example.net/open.gif" width="1" height="1"></p>
<p><a href="https://example.com/manual" onclick="window.top.__pwned = 1">manual</a></p>
<img src="x" onerror="window.top.__pwned = 2">
<script>window.top.__pwned = 3;</script>
</body></html>
--alt--

--rel
Content-Type: image/png; name="photo.png"
Content-ID: <photo-1@example.org>
Content-Disposition: inline; filename="photo.png"
Content-Transfer-Encoding: base64

${b64lines(Buffer.from(PNG_B64, 'base64'))}--rel--
`),
  printerReply: mail({
    From: '=?UTF-8?Q?Ay=C5=9Fe_Y=C4=B1lmaz?= <ayse@example.org>',
    To: 'Support <help@example.com>',
    Subject: 'Re: Printer prints blank pages',
    'Message-ID': '<printer-2@example.org>',
    'In-Reply-To': '<printer-1@example.org>',
    References: '<printer-1@example.org>',
    Date: 'Mon, 06 Jan 2025 11:00:00 +0000',
  }, `Content-Type: multipart/mixed; boundary="mix"

--mix
Content-Type: text/plain; charset=utf-8

Still blank after a restart. The printer log is attached.

On Mon, 6 Jan 2025 at 10:30, Support <help@example.com> wrote:
> Have you tried switching it off and on again?
> Kind regards, Support

--mix
Content-Type: application/pdf; name="printer-log.pdf"
Content-Disposition: attachment; filename="printer-log.pdf"
Content-Transfer-Encoding: base64

${b64lines(PDF_BYTES)}--mix--
`),
  invoice: mail({
    From: '=?UTF-8?Q?Jonas_M=C3=BCller?= <jonas@example.net>',
    To: 'Support <help@example.com>',
    Subject: 'Rechnung fehlt',
    'Message-ID': '<invoice-1@example.net>',
    Date: 'Tue, 07 Jan 2025 09:00:00 +0000',
  }, `Content-Type: text/plain; charset=utf-8

Guten Tag, die Rechnung für Dezember fehlt in meinem Kundenkonto.
Grüße, Jonas
`),
  invoiceAuto: mail({
    From: '=?UTF-8?Q?Jonas_M=C3=BCller?= <jonas@example.net>',
    To: 'Support <help@example.com>',
    Subject: 'Automatische Antwort: Re: Rechnung fehlt',
    'Message-ID': '<invoice-auto@example.net>',
    'In-Reply-To': '<invoice-1@example.net>',
    References: '<invoice-1@example.net>',
    'Auto-Submitted': 'auto-replied',
    Date: 'Tue, 07 Jan 2025 09:05:00 +0000',
  }, `Content-Type: text/plain; charset=utf-8

Ich bin bis zum 10. Januar nicht im Büro.
`),
  shipping: mail({
    From: 'Chen Wei <chen@example.com>',
    To: 'Support <help@example.com>',
    Subject: 'Where is my parcel?',
    'Message-ID': '<parcel-1@example.com>',
    Date: 'Wed, 08 Jan 2025 08:00:00 +0000',
  }, `Content-Type: text/plain; charset=utf-8

My order 4711 has not arrived yet. Could you check the tracking?
`),
};

function liveReply(ticketSubject, refs, n) {
  return mail({
    From: '=?UTF-8?Q?Ay=C5=9Fe_Y=C4=B1lmaz?= <ayse@example.org>',
    To: 'Support <help@example.com>',
    Subject: `Re: ${ticketSubject}`,
    'Message-ID': `<live-${n}-${Date.now()}@example.org>`,
    'In-Reply-To': `<${refs[refs.length - 1]}>`,
    References: refs.map((r) => `<${r}>`).join(' '),
    Date: new Date().toUTCString().replace('GMT', '+0000'),
  }, `Content-Type: text/plain; charset=utf-8

Live message ${n}: the printer works again, thank you!
`);
}

// A few fixture emails too, when the repository has them: real-world shapes must render
// without a console error.
function fixtureMails(max) {
  const dir = path.join(SRC, 'fixtures');
  const found = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.eml') && fs.statSync(p).size < 256 * 1024) found.push(p);
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  found.sort();
  const step = Math.max(1, Math.floor(found.length / max));
  return found.filter((_, i) => i % step === 0).slice(0, max);
}

// ---- The server ----------------------------------------------------------------------------------

async function startServer(flags = []) {
  const dir = fs.mkdtempSync(path.join(tmpRoot, 'srv-'));
  const logPath = path.join(dir, 'server.log');
  const log = fs.openSync(logPath, 'w');
  const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--db', path.join(dir, 'inboxd.db'), ...flags],
    { stdio: ['ignore', 'pipe', log] });
  const lines = readline.createInterface({ input: proc.stdout });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('inboxd did not print its address in 30 s')), 30000);
    proc.once('exit', (code) => reject(new Error(`inboxd exited with ${code}: ${fs.readFileSync(logPath, 'utf8')}`)));
    lines.once('line', (line) => {
      clearTimeout(timer);
      const m = /^inboxd listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(line.trim());
      if (m) resolve(m[1]);
      else reject(new Error(`unexpected first line: ${line}`));
    });
  });
  proc.removeAllListeners('exit');
  lines.on('line', () => {}); // keep draining stdout
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    url,
    pid: proc.pid,
    logPath,
    async stop() {
      process.kill(proc.pid, 'SIGTERM');
      const timer = setTimeout(() => process.kill(proc.pid, 'SIGKILL'), 30000);
      const r = await exited;
      clearTimeout(timer);
      fs.closeSync(log);
      return r;
    },
  };
}

async function http(srv, method, p, { body, headers = {}, token } = {}) {
  const h = { ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  const res = await fetch(srv.url + p, { method, body, headers: h });
  const buf = Buffer.from(await res.arrayBuffer());
  let json = null;
  try { json = JSON.parse(buf.toString('utf8')); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, json, buf };
}

async function postMail(srv, raw) {
  const r = await http(srv, 'POST', '/inbound/raw', { body: raw, headers: { 'Content-Type': 'message/rfc822' } });
  assert.equal(r.status, 200, `inbound/raw: ${r.buf}`);
  return r.json;
}

async function getJson(srv, p, token) {
  const r = await http(srv, 'GET', p, { token });
  assert.equal(r.status, 200, `GET ${p}: ${r.buf}`);
  return r.json;
}

// Seeds the hand-made mails; returns ids and the API's view of them.
async function seed(srv) {
  const ids = {};
  for (const [name, raw] of Object.entries(MAILS)) ids[name] = await postMail(srv, raw);
  assert.equal(ids.printerReply.ticket_id, ids.printer.ticket_id, 'the reply threads into its ticket');
  assert.equal(ids.invoiceAuto.ticket_id, ids.invoice.ticket_id, 'the auto-reply threads into its ticket');
  assert.equal(ids.invoiceAuto.classification, 'auto_reply');
  return ids;
}

// ---- The browser --------------------------------------------------------------------------------

async function openBrowser(srv, name) {
  const userDataDir = fs.mkdtempSync(path.join(tmpRoot, `chromium-${name}-`));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1280, height: 860 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const s = { context, page, errors: [], requests: [], allow401: false, expected401: 0, shots: [] };
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = `${m.text()} (${m.location().url || 'page'})`;
    if (s.allow401 && /status of 401/.test(m.text())) s.expected401++;
    else s.errors.push(`console error: ${text}`);
  });
  page.on('pageerror', (e) => s.errors.push(`page error: ${e.message}`));
  page.on('request', (r) => s.requests.push({ url: r.url(), type: r.resourceType(), auth: r.headers().authorization || null }));
  // CSP violations of the page itself, also those that would not reach the console.
  await context.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  s.shot = async (file) => {
    const p = path.join(ARTIFACTS, file);
    await page.screenshot({ path: p, fullPage: false });
    s.shots.push(p);
    console.log(`# screenshot: ${p}`);
  };
  return s;
}

async function until(fn, what, timeout = WAIT_MS) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function listIds(page) {
  return page.$$eval('#tickets .ticket', (as) => as.map((a) => Number(a.dataset.id)));
}

async function bubbles(page) {
  return page.$$eval('#messages > .msg', (lis) => lis.map((li) => {
    const r = li.getBoundingClientRect();
    const text = li.querySelector('.msg-text:not(.full)');
    return {
      id: Number(li.dataset.id),
      direction: li.dataset.direction,
      classification: li.dataset.classification,
      machine: li.classList.contains('machine'),
      badge: li.querySelector('.machine-badge')?.textContent || null,
      text: text ? text.textContent : '', // the stripped text (hidden while the quote is unfolded)
      head: li.querySelector('.msg-head')?.textContent || '',
      center: r.x + r.width / 2,
    };
  }));
}

// The list shows what the API says, in its order, with subject, status and count.
async function checkList(s, srv, token, query = '') {
  const api = await getJson(srv, `/api/tickets${query}`, token);
  await until(async () => JSON.stringify(await listIds(s.page)) === JSON.stringify(api.tickets.map((t) => t.id)),
    `the list to show ${api.tickets.map((t) => t.id)} for "${query}"`);
  for (const t of api.tickets) {
    const item = s.page.locator(`#tickets .ticket[data-id="${t.id}"]`);
    assert.equal(await item.locator('.t-subject').textContent(), t.subject || '(no subject)');
    assert.equal((await item.locator('.badge').textContent()).toLowerCase(), t.status);
    assert.match(await item.locator('.t-count').textContent(), new RegExp(`^${t.message_count} messages?$`));
    assert.ok(await item.locator('time').getAttribute('datetime'), 'a time on each ticket');
    if (t.customer && t.customer.address) assert.match(await item.locator('.t-customer').textContent(), new RegExp(t.customer.address));
    if (t.last_message && t.last_message.snippet) assert.ok((await item.locator('.t-snippet').textContent()).includes(t.last_message.snippet));
  }
  return api.tickets;
}

// The open thread shows every message of the API, oldest first, on its side, marked when
// a machine sent it, with the stripped text.
async function checkThread(s, srv, token, ticketId) {
  const api = await getJson(srv, `/api/tickets/${ticketId}`, token);
  // The same ids, not just as many: the previous ticket's bubbles may still be shown.
  const want = JSON.stringify(api.messages.map((m) => m.id));
  await until(async () => JSON.stringify((await bubbles(s.page)).map((b) => b.id)) === want
    && (await s.page.locator('#thread-title').textContent()) === (api.ticket.subject || '(no subject)'),
  `the bubbles ${want} of ticket ${ticketId}`);
  const shown = await bubbles(s.page);
  assert.equal(await s.page.locator('#thread-title').textContent(), api.ticket.subject || '(no subject)');
  await until(async () => (await s.page.locator('#ticket-status').inputValue()) === api.ticket.status,
    `the status menu at ${api.ticket.status}`);
  api.messages.forEach((m, i) => {
    const b = shown[i];
    assert.equal(b.id, m.id, 'oldest first');
    assert.equal(b.direction, m.direction);
    const machine = ['auto_reply', 'bounce', 'complaint'].includes(m.classification);
    assert.equal(b.machine, machine, `message ${m.id} (${m.classification}) marked as machine mail or not`);
    if (machine) assert.ok(b.badge, 'a visible badge on machine mail');
    const text = (m.stripped_text || '').trim() || (m.text || '').trim();
    if (text) assert.equal(b.text.trim(), text, `message ${m.id} shows its stripped text`);
    if (m.from && m.from.address) assert.ok(b.head.includes(m.from.name || m.from.address), 'the sender is shown');
  });
  const ins = shown.filter((b) => b.direction === 'inbound');
  const outs = shown.filter((b) => b.direction === 'outbound');
  for (const i of ins) for (const o of outs) assert.ok(i.center < o.center, 'customer bubbles left, agent replies right');
  return api;
}

function checkClean(s, what) {
  assert.deepEqual(s.errors, [], `${what}: no console errors, page errors or CSP violations`);
}

async function checkNoViolations(s) {
  const v = await s.page.evaluate(() => window.__cspViolations);
  assert.deepEqual(v, [], 'no CSP violations in the page');
  const pwned = await s.page.evaluate(() => window.__pwned);
  assert.equal(pwned, undefined, 'no script of a mail ever ran');
}

// Every request stays on the server's origin (or data:/blob:/about:): a remote image in a
// mail must not be fetched.
function checkRequests(s, srv) {
  const away = s.requests.filter((r) => !r.url.startsWith(`${srv.url}/`) && !/^(data|blob|about):/.test(r.url));
  assert.deepEqual(away.map((r) => r.url), [], 'no request leaves the server');
}

async function download(s, locator) {
  const [dl] = await Promise.all([s.page.waitForEvent('download'), locator.click()]);
  return { name: dl.suggestedFilename(), bytes: fs.readFileSync(await dl.path()) };
}

// ---- The flows ----------------------------------------------------------------------------------

// Everything one agent does in a session; TOKEN is undefined without --api-token.
async function agentSession(s, srv, ids, token, tag) {
  const { page } = s;
  const printer = ids.printer.ticket_id;

  // List, search, status filter.
  const all = await checkList(s, srv, token);
  assert.ok(all.length >= 3, 'the seeded tickets are listed');
  await s.shot(`${tag}-list.png`);

  await page.keyboard.press('/');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'search', '"/" focuses the search box');
  await page.keyboard.type('Rechnung');
  await page.keyboard.press('Enter');
  const found = await checkList(s, srv, token, '?q=Rechnung');
  const foundIds = found.map((t) => t.id);
  assert.ok(foundIds.includes(ids.invoice.ticket_id), 'search finds the German ticket');
  assert.ok(!foundIds.includes(ids.printer.ticket_id) && !foundIds.includes(ids.shipping.ticket_id), 'and not the others');
  await s.shot(`${tag}-search.png`);
  await page.fill('#search', '');
  await page.press('#search', 'Enter');
  await checkList(s, srv, token);

  await page.selectOption('#status-filter', 'closed');
  const closed = await checkList(s, srv, token, '?status=closed');
  assert.ok(closed.every((t) => t.status === 'closed'));
  assert.equal(await page.locator('#list-empty').isVisible(), closed.length === 0, '"No tickets match" on an empty list');
  await page.selectOption('#status-filter', '');
  await checkList(s, srv, token);

  // The invoice ticket by mouse: the out-of-office answer is marked as machine mail.
  await page.click(`#tickets .ticket[data-id="${ids.invoice.ticket_id}"]`);
  await checkThread(s, srv, token, ids.invoice.ticket_id);
  const auto = page.locator(`#msg-${ids.invoiceAuto.message_id}`);
  assert.equal(await auto.locator('.machine-badge').textContent(), 'Auto-reply');
  assert.match(await auto.getAttribute('class'), /\bmachine\b/);
  assert.equal(await auto.locator('article').getAttribute('aria-label'), 'Auto-reply from Jonas Müller <jonas@example.net>');
  assert.match(await page.locator(`#msg-${ids.invoice.message_id} .msg-text`).first().textContent(), /Rechnung für Dezember/);

  // Open the printer ticket with the keyboard: focus its link, Enter.
  await page.focus(`#tickets .ticket[data-id="${printer}"]`);
  await page.keyboard.press('Enter');
  await until(async () => page.url().endsWith(`#ticket=${printer}`), 'the ticket in the address');
  const thread = await checkThread(s, srv, token, printer);
  await until(async () => (await page.evaluate(() => document.activeElement.id)) === 'thread-title', 'focus on the thread title');
  assert.equal(await page.locator(`.ticket[data-id="${printer}"]`).getAttribute('aria-current'), 'true');

  // Quoted history folded, one click away.
  const replyMsg = thread.messages.find((m) => m.id === ids.printerReply.message_id);
  assert.ok(replyMsg, "the customer's answer is in the thread");
  const replyLi = page.locator(`#msg-${replyMsg.id}`);
  const visible = await replyLi.locator('.msg-text:not(.full)').textContent();
  assert.match(visible, /Still blank after a restart/);
  assert.doesNotMatch(visible, /switching it off/, 'the quoted history is folded');
  const toggle = replyLi.locator(`button[aria-controls="msg-${replyMsg.id}-full"]`);
  assert.equal(await toggle.textContent(), 'Show quoted text');
  assert.equal(await toggle.getAttribute('aria-expanded'), 'false');
  await toggle.click();
  assert.equal(await toggle.textContent(), 'Hide quoted text');
  assert.equal(await toggle.getAttribute('aria-expanded'), 'true');
  assert.ok(await replyLi.locator('.msg-text.full').isVisible());
  assert.match(await replyLi.locator('.msg-text.full').textContent(), /switching it off and on again/);

  // Attachments: links that download through the API (with the token when there is one).
  const pdf = (replyMsg.attachments || []).find((a) => a.filename === 'printer-log.pdf');
  assert.ok(pdf, 'the API lists the PDF');
  const link = replyLi.locator('a.att', { hasText: 'printer-log.pdf' });
  assert.equal(await link.getAttribute('href'), `/api/attachments/${pdf.id}`);
  const got = await download(s, link);
  assert.equal(got.name, 'printer-log.pdf');
  assert.deepEqual(got.bytes, PDF_BYTES, 'the downloaded attachment is byte for byte the part');

  // The inline image: previewed under the text, fetched through the API as a blob.
  const first = thread.messages.find((m) => m.id === ids.printer.message_id);
  const firstLi = page.locator(`#msg-${first.id}`);
  const photo = (first.attachments || []).find((a) => a.content_id);
  assert.ok(photo, 'the inline image is an attachment with a Content-ID');
  const preview = firstLi.locator('img.preview');
  await until(() => preview.evaluate((img) => img.complete && img.naturalWidth === 12), 'the image preview');
  assert.match(await preview.getAttribute('src'), /^blob:/);

  // The HTML view: a sandboxed srcdoc frame with the mail's own styles and its cid: image,
  // no script, nothing remote, and nothing of it in the page itself.
  assert.ok(first.html, 'the first message has HTML');
  await firstLi.getByRole('button', { name: 'Show formatted' }).click();
  const frameEl = firstLi.locator('iframe.mail-frame');
  await frameEl.waitFor();
  assert.equal(await frameEl.getAttribute('sandbox'), '', 'sandbox with no permission at all');
  assert.equal(await frameEl.getAttribute('src'), null, 'srcdoc only');
  const frame = await (await frameEl.elementHandle()).contentFrame();
  await until(() => frame.evaluate(() => document.readyState === 'complete'), 'the frame to load');
  assert.equal(await frame.evaluate(() => document.querySelectorAll('script').length), 0);
  assert.equal(await frame.evaluate(() => document.getElementById('mail-marker')?.textContent.trim()),
    'Hello, my printer prints blank pages since Monday.');
  assert.equal(await page.evaluate(() => document.getElementById('mail-marker')), null, 'mail HTML never enters the page');
  const lead = await frame.evaluate(() => {
    const cs = getComputedStyle(document.getElementById('mail-marker'));
    return [cs.color, cs.fontSize, cs.fontWeight];
  });
  assert.deepEqual(lead, ['rgb(160, 16, 16)', '19px', '700'], "the mail's own styles apply inside the frame");
  await until(() => frame.evaluate(() => {
    const img = document.querySelector('img[alt="printer photo"]');
    return img && img.complete && img.naturalWidth === 12 && img.src.startsWith('data:image/png');
  }), 'the cid: image in the HTML view');
  assert.equal(await frame.evaluate(() => document.querySelector('img[alt="tracker"]').getAttribute('src')), null,
    'the remote tracker image is not loaded');
  assert.match(await firstLi.locator('.msg-note').textContent(), /remote image/);
  await s.shot(`${tag}-html-view.png`);
  await firstLi.getByRole('button', { name: 'Hide formatted' }).click();
  await s.shot(`${tag}-thread.png`);

  // Reply: posted, shown at once on the agent's side, agent address remembered.
  const before = (await bubbles(page)).length;
  const replyText = `Thanks Ayşe, a technician (${tag}) comes tomorrow.`;
  await page.fill('#reply-from', 'Ana Agent <ana@example.com>');
  await page.fill('#reply-text', replyText);
  await page.press('#reply-text', 'Control+Enter');
  await until(async () => (await bubbles(page)).length === before + 1, 'the reply bubble');
  const mine = (await bubbles(page)).at(-1);
  assert.equal(mine.direction, 'outbound');
  await until(async () => (await page.locator('#reply-status').textContent()) === 'Reply sent.', 'the reply to be confirmed');
  assert.equal(await page.inputValue('#reply-text'), '', 'the reply box is emptied');
  const afterReply = await checkThread(s, srv, token, printer);
  const stored = afterReply.messages.at(-1);
  assert.equal(stored.direction, 'outbound');
  assert.equal((stored.text || '').trim(), replyText);
  assert.ok(mine.text.includes(replyText), 'the reply shows its text at once');
  await until(async () => (await page.locator('#ticket-status').inputValue()) === afterReply.ticket.status, 'the status after the reply');
  await s.shot(`${tag}-reply.png`);

  // Status selector: PATCH, and the list follows.
  await page.selectOption('#ticket-status', 'closed');
  await until(async () => (await getJson(srv, `/api/tickets/${printer}`, token)).ticket.status === 'closed', 'the ticket closed');
  await until(async () => ((await page.locator(`.ticket[data-id="${printer}"] .badge`).textContent()) || '').toLowerCase() === 'closed', 'the closed badge');
  await page.selectOption('#ticket-status', 'open');
  await until(async () => (await getJson(srv, `/api/tickets/${printer}`, token)).ticket.status === 'open', 'the ticket open again');

  // Live: no reload from here on.
  await page.evaluate(() => { window.__sameDocument = 'yes'; });

  // A message to another ticket: the list re-sorts by itself.
  // (The invoice ticket: older than the printer ticket, which has just been answered.)
  const other = ids.invoice.ticket_id;
  assert.notEqual((await listIds(page))[0], other);
  const r1 = await postMail(srv, mail({
    From: '=?UTF-8?Q?Jonas_M=C3=BCller?= <jonas@example.net>',
    To: 'Support <help@example.com>',
    Subject: 'Re: Rechnung fehlt',
    'Message-ID': `<live-other-${tag}@example.net>`,
    'In-Reply-To': '<invoice-1@example.net>',
    References: '<invoice-1@example.net>',
  }, 'Content-Type: text/plain; charset=utf-8\n\nAny news?\n'));
  assert.equal(r1.ticket_id, other, 'the follow-up threads into its ticket');
  await until(async () => (await listIds(page))[0] === r1.ticket_id, `ticket ${r1.ticket_id} to move to the top of the list live`);
  await checkList(s, srv, token);

  // A new inbound message in the open thread appears without a reload.
  const refs = ['printer-1@example.org', 'printer-2@example.org'];
  const r2 = await postMail(srv, liveReply(thread.ticket.subject, refs, tag));
  assert.equal(r2.ticket_id, printer, 'the customer answer threads into the open ticket');
  await until(async () => (await bubbles(page)).some((b) => b.id === r2.message_id), 'the new inbound bubble, live');
  const live = (await bubbles(page)).find((b) => b.id === r2.message_id);
  assert.equal(live.direction, 'inbound');
  assert.match(live.text, /Live message .*: the printer works again/);
  await until(async () => (await page.locator('#announce').textContent()).startsWith('New message from'), 'the screen-reader announcement');
  // Another agent answers the open ticket through the API: it appears here live too.
  const byOther = await http(srv, 'POST', `/api/tickets/${printer}/messages`, {
    token,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ from: 'Bo Agent <bo@example.com>', text: `Second agent here (${tag}).` }),
  });
  assert.equal(byOther.status, 201, `POST messages: ${byOther.buf}`);
  await until(async () => (await bubbles(page)).some((b) => b.id === byOther.json.id && b.direction === 'outbound'),
    "the other agent's reply, live");
  await checkThread(s, srv, token, printer);
  await checkList(s, srv, token);
  assert.equal(await page.evaluate(() => window.__sameDocument), 'yes', 'all of it without a reload');
  await s.shot(`${tag}-live.png`);

  // Deep link after a reload; the agent address is remembered.
  await page.reload();
  await checkThread(s, srv, token, printer);
  assert.equal(await page.inputValue('#reply-from'), 'Ana Agent <ana@example.com>');
}

// Runs FN; on failure keeps a screenshot and the page's DOM beside the others.
async function failureShot(s, tag, fn) {
  try {
    return await fn();
  } catch (err) {
    await s.shot(`${tag}-FAILED.png`).catch(() => {});
    const html = await s.page.content().catch(() => '');
    fs.writeFileSync(path.join(ARTIFACTS, `${tag}-FAILED.html`), html);
    if (s.errors.length) console.log(`# errors so far:\n#   ${s.errors.join('\n#   ')}`);
    throw err;
  }
}

async function checkPageHeaders(srv) {
  for (const p of ['/', '/static/app.js', '/static/app.css']) {
    const r = await http(srv, 'GET', p);
    assert.equal(r.status, 200, `GET ${p}`);
    assert.equal(r.headers.get('content-security-policy'), EXPECTED_CSP, `CSP on ${p}`);
  }
  const index = (await http(srv, 'GET', '/')).buf.toString('utf8');
  assert.doesNotMatch(index, /<script(?![^>]*\bsrc=)[^>]*>/i, 'no inline script');
  assert.doesNotMatch(index, /\sstyle=|<style|\son[a-z]+=/i, 'no inline style or handler');
  assert.doesNotMatch(index, /https?:\/\/(?!127\.0\.0\.1)/i, 'no remote resource');
}

test('web view without a token: list, search, thread, HTML view, reply, live by EventSource', async () => {
  const srv = await startServer();
  let s;
  try {
    await checkPageHeaders(srv);
    // Fixtures first: the hand-made tickets are then the newest, on the list's first page.
    const fixtures = fixtureMails(Number(process.env.INBOXD_BROWSER_FIXTURES || 8));
    const fixtureTickets = new Set();
    for (const f of fixtures) fixtureTickets.add((await postMail(srv, fs.readFileSync(f))).ticket_id);
    const ids = await seed(srv);
    console.log(`# seeded ${Object.keys(MAILS).length} hand-made mails and ${fixtures.length} fixtures`);

    s = await openBrowser(srv, 'plain');
    await s.page.goto(`${srv.url}/`);
    await until(async () => (await s.page.locator('#conn').textContent()) === 'Live', 'the change feed to connect');
    await failureShot(s, 'plain', () => agentSession(s, srv, ids, undefined, 'plain'));
    assert.ok(s.requests.some((r) => r.type === 'eventsource' && r.url.includes('/api/events')), 'EventSource is used without a token');

    // Fixture mail of every shape renders, HTML views included, without an error.
    for (const id of fixtureTickets) {
      if (id === ids.printer.ticket_id) continue;
      await s.page.goto(`${srv.url}/#ticket=${id}`);
      await checkThread(s, srv, undefined, id);
      // Open every HTML view (a clicked button is renamed "Hide formatted").
      const show = s.page.getByRole('button', { name: 'Show formatted' });
      for (let n = await show.count(); n > 0; n = await show.count()) await show.first().click();
      await until(async () => (await s.page.locator('iframe.mail-frame').count())
        === (await getJson(srv, `/api/tickets/${id}`)).messages.filter((m) => m.html).length, 'every HTML view');
    }
    if (fixtureTickets.size) await s.shot('plain-fixture.png');
    await checkNoViolations(s);
    checkClean(s, 'no token');
    checkRequests(s, srv);
  } finally {
    if (s) await s.context.close();
    const r = await srv.stop();
    assert.deepEqual(r, { code: 0, signal: null }, `inboxd stops cleanly (log: ${srv.logPath})`);
  }
});

test('web view with --api-token: token form, blob downloads, live by long poll', async () => {
  const token = 'web-view-test-token';
  const srv = await startServer(['--api-token', token]);
  let s;
  try {
    await checkPageHeaders(srv);
    const fillers = 52; // more than one page of the list (50)
    for (let i = 1; i <= fillers; i++) {
      await postMail(srv, mail({
        From: `Customer ${i} <customer${i}@example.com>`,
        To: 'Support <help@example.com>',
        Subject: `Older question ${i}`,
        'Message-ID': `<filler-${i}@example.com>`,
      }, `Content-Type: text/plain; charset=utf-8\n\nQuestion number ${i}.\n`));
    }
    const ids = await seed(srv);
    assert.equal((await http(srv, 'GET', '/api/tickets')).status, 401, 'the API needs the token');

    s = await openBrowser(srv, 'token');
    s.allow401 = true; // the page learns that a token is needed from a 401
    await s.page.goto(`${srv.url}/`);
    const dialog = s.page.getByRole('dialog', { name: 'API token' });
    await dialog.waitFor();
    assert.equal(await s.page.evaluate(() => document.activeElement.id), 'token-input', 'focus in the token form');
    await s.shot('token-form.png');
    await s.page.fill('#token-input', 'not-the-token');
    await s.page.press('#token-input', 'Enter');
    await until(async () => /not accepted/.test(await s.page.locator('#token-error').textContent()), 'the wrong token refused');
    await s.page.fill('#token-input', token);
    const tokenAt = s.requests.length;
    await s.page.click('#token-form button[type="submit"]');
    await until(async () => !(await dialog.isVisible()), 'the token form to close');
    await until(async () => (await listIds(s.page)).length > 0, 'the list after the token');
    s.allow401 = false;
    assert.ok(s.expected401 >= 2, 'a 401 before the token and one for the wrong token');
    assert.equal(await s.page.evaluate(() => sessionStorage.getItem('inboxd.token')), token, 'kept in sessionStorage');
    assert.equal(await s.page.evaluate(() => localStorage.getItem('inboxd.token')), null, 'never in localStorage');

    await failureShot(s, 'token', () => agentSession(s, srv, ids, token, 'token'));

    // Paging: "Load more" follows next_cursor to the older tickets.
    await failureShot(s, 'token-paging', async () => {
      const page1 = await getJson(srv, '/api/tickets', token);
      assert.ok(page1.next_cursor, 'more than one page');
      const page2 = await getJson(srv, `/api/tickets?cursor=${encodeURIComponent(page1.next_cursor)}`, token);
      const want = [...page1.tickets, ...page2.tickets].map((t) => t.id);
      assert.ok(want.length > fillers);
      const more = s.page.getByRole('button', { name: 'Load more' });
      await more.click();
      await until(async () => JSON.stringify(await listIds(s.page)) === JSON.stringify(want), 'the second page appended');
      assert.equal(await more.isVisible(), !!page2.next_cursor);
    });

    const api = s.requests.filter((r) => new URL(r.url).pathname.startsWith('/api/'));
    assert.ok(!api.some((r) => r.type === 'eventsource'), 'no EventSource with a token');
    assert.ok(api.some((r) => /\/api\/events\?.*wait=/.test(r.url)), 'the long poll is used');
    assert.equal(await dialog.isVisible(), false, 'the token survives the reload (sessionStorage)');
    const withToken = s.requests.slice(tokenAt).filter((r) => new URL(r.url).pathname.startsWith('/api/'));
    assert.ok(withToken.length > 10);
    assert.deepEqual(withToken.filter((r) => r.auth !== `Bearer ${token}`).map((r) => r.url), [],
      'every API request after the form carries the token');
    await checkNoViolations(s);
    checkClean(s, 'token');
    checkRequests(s, srv);
  } finally {
    if (s) await s.context.close();
    const r = await srv.stop();
    assert.deepEqual(r, { code: 0, signal: null }, `inboxd stops cleanly (log: ${srv.logPath})`);
  }
});
