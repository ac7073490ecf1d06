// End to end in headless Chromium: log in, manage keys and proxy keys' limits, send
// requests through the app's own proxy route (to fake Gemini), and find them and their
// cost in logs, overview and usage.
// scripts/test-web.sh starts the servers and sets WEB_URL, ADMIN_PASSWORD, SCREENSHOT_DIR.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const WEB = process.env.WEB_URL;
const PASSWORD = process.env.ADMIN_PASSWORD;
const SHOTS = process.env.SCREENSHOT_DIR ?? 'screenshots';
const MODEL = 'gemini-2.0-flash';
// fake-gemini: `-r429m-` in a key means "per-minute quota exhausted", so one key cools down.
const KEYS = ['AIzaSyE2E-good-key-00000000000000000001', 'AIzaSyE2E-r429m-key-0000000000000000002'];

let browser;
let page;
const consoleErrors = [];

before(async () => {
  assert.ok(WEB && PASSWORD, 'WEB_URL and ADMIN_PASSWORD must be set');
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
});

after(async () => {
  await browser?.close();
});

const shot = (name) => page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });

async function login(p, password) {
  await p.goto(`${WEB}/login`);
  await p.fill('input[name=password]', password);
  await Promise.all([p.waitForLoadState('load'), p.click('button[type=submit]')]);
}

/// One generateContent call (or a streamed one) through the app's proxy route.
async function generate(secret, stream = false) {
  const op = stream ? 'streamGenerateContent?alt=sse' : 'generateContent';
  const res = await fetch(`${WEB}/v1beta/models/${MODEL}:${op}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-goog-api-key': secret },
    body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hello' }] }] }),
  });
  await res.arrayBuffer();
  return res.status;
}

async function eventually(what, check, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

let secret;

test('a wrong password is refused', async () => {
  await login(page, 'not-the-password');
  assert.match(await page.textContent('#login-error'), /Wrong password/);
  assert.ok(page.url().endsWith('/login'));
  await shot('login');
  // The 401 answer itself is logged by Chromium as a failed load: expected here.
  consoleErrors.length = 0;
});

test('logs in and adds upstream keys (bulk paste)', async () => {
  await login(page, PASSWORD);
  assert.equal(new URL(page.url()).pathname, '/');
  await page.goto(`${WEB}/keys`);
  await page.fill('input[name=name]', 'e2e');
  await page.fill('textarea[name=keys]', KEYS.join('\n'));
  await Promise.all([page.waitForURL(/msg=added/), page.click('form[action="/keys"] button')]);
  const table = await page.textContent('#keys');
  assert.match(table, /e2e-1/);
  assert.match(table, /e2e-2/);
  for (const key of KEYS) assert.ok(!table.includes(key), 'the key table must only show masked keys');
});

test('pasting keys already stored adds the others and says which lines were skipped', async () => {
  await page.goto(`${WEB}/keys`);
  const fresh = 'AIzaSyE2E-good-key-00000000000000000003';
  await page.fill('textarea[name=keys]', [KEYS[0], '', fresh, 'AIza key'].join('\n'));
  await Promise.all([page.waitForURL(/msg=added/), page.click('form[action="/keys"] button')]);
  assert.equal(
    (await page.textContent('#added-keys')).trim(),
    'Added 1 key. Already stored: line 1 (as #1). Not a key: line 4.',
  );
  const row = page.locator('#keys tr[data-key-id]', { hasText: 'key-0003' });
  assert.equal(await row.count(), 1, 'a key pasted without a name is named by its last four characters');
  assert.ok(!(await page.content()).includes(fresh), 'the page never shows an upstream key');

  // Delete asks first: dismissed, nothing happens; accepted, the key goes.
  let asked = '';
  page.once('dialog', (d) => { asked = d.message(); d.dismiss(); });
  await row.locator('form[action$="/delete"] button').click();
  assert.match(asked, /^Delete this upstream key\?/);
  assert.equal(await page.locator('#keys tr[data-key-id]', { hasText: 'key-0003' }).count(), 1);
  page.once('dialog', (d) => d.accept());
  await Promise.all([page.waitForURL(/msg=deleted/), row.locator('form[action$="/delete"] button').click()]);
  assert.equal(await page.locator('#keys tr[data-key-id]', { hasText: 'key-0003' }).count(), 0);
});

test('creates a proxy key and shows its secret once', async () => {
  await page.goto(`${WEB}/proxy-keys`);
  await page.fill('form[action="/proxy-keys"] input[name=name]', 'e2e client');
  await Promise.all([page.waitForLoadState('load'), page.click('form[action="/proxy-keys"] button')]);
  secret = (await page.textContent('#new-secret')).trim();
  assert.match(secret, /^gp-[0-9a-f]{48}$/);
  assert.ok(!page.url().includes(secret), 'never in a URL');
  await shot('proxy-keys');

  // Without a clipboard (plain http:// to another host), Copy selects the text instead.
  await page.evaluate(() => Object.defineProperty(navigator, 'clipboard', { value: undefined }));
  await page.click('[data-copy="new-secret"]');
  assert.match(await page.textContent('[data-copy="new-secret"]'), /Selected: press Ctrl\+C/);
  assert.equal((await page.evaluate(() => String(getSelection()))).trim(), secret);

  // Reloading the page after the creation creates no second key and shows no secret.
  const rows = async () => page.locator('#proxy-keys tr[data-proxy-key-id]', { hasText: 'e2e client' }).count();
  await page.reload();
  assert.equal(await rows(), 1, 'a reload creates no second key');
  assert.ok(!(await page.content()).includes(secret), 'the secret is shown only once');
  assert.match(await page.textContent('main'), /was shown once/);
  await page.goto(`${WEB}/proxy-keys`);
  assert.ok(!(await page.content()).includes(secret), 'the secret is shown only once');
});

const proxyKeyRow = (name) => page.locator('#proxy-keys tr[data-proxy-key-id]', { hasText: name });

test('creates a proxy key with limits through the form, lists them, edits one', async () => {
  await page.goto(`${WEB}/proxy-keys`);
  const form = '#create-proxy-key';
  await page.fill(`${form} input[name=name]`, 'e2e limited');
  await page.fill(`${form} input[name=models]`, 'gemini-2.0-*, gemini-2.5-flash');
  await page.fill(`${form} input[name=rpm]`, '100');
  await page.fill(`${form} input[name=tokens_per_day]`, '100000');
  await page.fill(`${form} input[name=budget_usd]`, '5');
  await page.selectOption(`${form} select[name=budget_period]`, 'day');
  await page.fill(`${form} input[name=expires]`, '2030-01-01');
  await Promise.all([page.waitForLoadState('load'), page.click(`${form} button[type=submit]`)]);
  assert.match((await page.textContent('#new-secret')).trim(), /^gp-[0-9a-f]{48}$/);
  await page.goto(`${WEB}/proxy-keys`);
  const row = proxyKeyRow('e2e limited');
  const listed = await row.textContent();
  assert.match(listed, /models: gemini-2\.0-\*, gemini-2\.5-flash/);
  assert.match(listed, /rpm: 100 per minute \(0 in the last 60 s\)/);
  assert.match(listed, /tokens per day: 100000, used 0, left 100000/);
  assert.match(listed, /budget: \$5\.00 per day, used \$0\.00, left \$5\.00/);
  assert.match(listed, /expires: 2030-01-01 00:00:00 UTC/);

  // Edit: the form opens filled with the key's policy; change one limit, clear another.
  await row.locator('details.edit summary').click();
  assert.equal(await row.locator('input[name=rpm]').inputValue(), '100');
  await row.locator('input[name=rpm]').fill('7');
  await row.locator('input[name=tokens_per_day]').fill('');
  await Promise.all([page.waitForURL(/msg=updated/), row.locator('details.edit button[type=submit]').click()]);
  const edited = await proxyKeyRow('e2e limited').textContent();
  assert.match(edited, /rpm: 7 per minute/);
  assert.doesNotMatch(edited, /tokens per day/);
  assert.match(edited, /budget: \$5\.00 per day/);

  // Bad input: the page again with the field named, the form still open as posted.
  const errorsBefore = consoleErrors.length;
  await proxyKeyRow('e2e limited').locator('details.edit summary').click();
  await proxyKeyRow('e2e limited').locator('input[name=budget_usd]').fill('-5');
  await Promise.all([
    page.waitForLoadState('load'),
    proxyKeyRow('e2e limited').locator('details.edit button[type=submit]').click(),
  ]);
  assert.match(await page.textContent('#form-error'), /^budget \(USD\): "-5" is not an amount/);
  assert.equal(await proxyKeyRow('e2e limited').locator('input[name=budget_usd]').inputValue(), '-5');
  await shot('proxy-keys-limits');
  // The 400 answer is logged by Chromium as a failed load: expected here.
  consoleErrors.splice(errorsBefore);
  await page.goto(`${WEB}/proxy-keys`);
  assert.match(await proxyKeyRow('e2e limited').textContent(), /budget: \$5\.00 per day/, 'nothing changed');
});

test('requests through the proxy route reach fake Gemini', async () => {
  // The store change wakes the proxy's refresher; allow it a moment.
  await eventually('the new proxy key to work', async () => (await generate(secret)) === 200);
  assert.equal(await generate(secret, true), 200);
  assert.equal(await generate(secret), 200);
  assert.equal(await generate('gp-wrong'), 401);
});

test('the favicon and a mistyped dashboard URL are the dashboard\'s, not logged as proxy requests', async () => {
  const icon = await page.request.get(`${WEB}/favicon.ico`);
  assert.equal(icon.status(), 200);
  assert.match(icon.headers()['content-type'], /^image\//);
  const errorsBefore = consoleErrors.length;
  const typo = await page.goto(`${WEB}/kyes`);
  assert.equal(typo.status(), 404);
  assert.match(await page.textContent('main'), /No page at \/kyes/);
  assert.ok(await page.locator('nav a[href="/keys"]').count(), 'the 404 page keeps the navigation');
  // The 404 answer is logged by Chromium as a failed load: expected here.
  consoleErrors.splice(errorsBefore);
  // A request after them, logged: once it shows, they would have too.
  const logged = async () => {
    await page.goto(`${WEB}/logs`);
    return (await page.locator('#logs tr').count()) - 1;
  };
  const before = await logged();
  assert.equal(await generate(secret), 200);
  await eventually('the marker request in the logs', async () => (await logged()) > before);
  const statuses = await page.$$eval('#logs tr', (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent.trim())));
  assert.ok(!statuses.some((cells) => cells[2] === '404'), `no dashboard 404 in the request log: ${JSON.stringify(statuses)}`);
});

test('the requests show in logs, with a detail view and no upstream key', async () => {
  await eventually('log records', async () => {
    await page.goto(`${WEB}/logs`);
    return ((await page.locator('#logs tr').count()) - 1) >= 3;
  });
  const table = await page.textContent('#logs');
  assert.match(table, new RegExp(MODEL));
  await shot('logs');
  await page.goto(`${WEB}/logs?stream=yes`);
  assert.equal((await page.locator('#logs tr').count()) - 1, 1);
  await page.click('#logs tr:nth-child(2) a');
  const detail = await page.textContent('#log-detail');
  assert.match(detail, /streamGenerateContent|generateContent/);
  assert.match(detail, /Total tokens/);
  assert.match(await page.textContent('#attempts'), /\(#\d+\)gemini-2\.0-flashok200/, 'the attempt that answered');
  for (const key of KEYS) assert.ok(!(await page.content()).includes(key));

  // The cooling key was tried once and failed over: its record lists both attempts.
  await page.goto(`${WEB}/logs`);
  const links = await page.$$eval('#logs tr', (rows) => rows
    .filter((r) => r.cells[6]?.textContent.trim() === '2')
    .map((r) => r.querySelector('a').getAttribute('href')));
  assert.ok(links.length >= 1, 'a request that failed over');
  await page.goto(`${WEB}${links[0]}`);
  const attempts = await page.$$eval('#attempts tr', (rows) => rows.slice(1).map((r) => r.cells[3].textContent.trim()));
  assert.deepEqual(attempts, ['rate_limited', 'ok'], 'the failover, attempt by attempt');
  await shot('log-detail');
});

test('logs filter by part of a model, status class, prompt hash and request id, and keep the filters back from a detail', async () => {
  const rows = async () => (await page.locator('#logs tr').count()) - 1;
  await page.goto(`${WEB}/logs?model=2.0-FL&status=2xx`);
  const matched = await rows();
  assert.ok(matched >= 3, `a part of the model, in any case, and 2xx: ${matched}`);
  await page.goto(`${WEB}/logs?status=4xx`);
  assert.ok((await page.textContent('#logs')).includes('401'), 'the refused key is a 4xx');
  await page.goto(`${WEB}/logs?status=5xx`);
  assert.equal(await rows(), 0);

  await page.goto(`${WEB}/logs?model=flash&stream=no`);
  await page.click('#logs tr:nth-child(2) a');
  const detail = await page.textContent('#log-detail');
  const hash = detail.match(/Prompt hash([0-9a-f]{64})/)?.[1];
  const id = detail.match(/^Id(\S+?)Started/)?.[1];
  assert.ok(hash && id, detail);
  await Promise.all([page.waitForURL(/\/logs\?/), page.click('#back-to-logs')]);
  const back = new URL(page.url());
  assert.equal(back.searchParams.get('model'), 'flash', 'the filters came back');
  assert.equal(back.searchParams.get('stream'), 'no');
  assert.equal(await page.inputValue('input[name=model]'), 'flash');

  await page.goto(`${WEB}/logs?prompt=${hash.toUpperCase()}`);
  assert.ok((await rows()) >= 3, 'every request with the same prompt');
  await page.goto(`${WEB}/logs?id=${encodeURIComponent(id)}`);
  assert.equal(await rows(), 1, 'one request id, one record');
});

test('cost shows per proxy key, per upstream key and per model', async () => {
  const cost = /\$0\.0*[1-9]\d*/;
  await page.goto(`${WEB}/?range=hour`);
  assert.match(await page.textContent('#totals'), /Cost\s*\$0\.0*[1-9]/);
  assert.match(await page.textContent('#top-models'), cost);
  assert.match(await page.textContent('#top-keys'), cost);
  await page.goto(`${WEB}/proxy-keys`);
  assert.match(await proxyKeyRow('e2e client').locator('.usage-today').textContent(), cost);
  assert.equal((await proxyKeyRow('e2e client').locator('.prefix').textContent()).trim(), `${secret.slice(0, 9)}…`, 'the secret\'s prefix');
  assert.match(await proxyKeyRow('e2e client').locator('.last-used').textContent(), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/, 'when it was last used');
  await page.goto(`${WEB}/keys`);
  assert.match(await page.textContent('#keys'), cost);
  await page.goto(`${WEB}/usage`);
  assert.match(await page.textContent('#usage'), cost);
});

test('overview shows totals, charts and the cooling key', async () => {
  await page.goto(`${WEB}/?range=month`);
  assert.equal((await page.textContent('a[aria-current=page]')).trim(), 'Last 30 days', 'the active range is marked');
  assert.equal(await page.locator('svg[aria-label="requests"] title').count(), 30, 'a bar a day');
  await page.goto(`${WEB}/?range=hour`);
  assert.equal((await page.textContent('a[aria-current=page]')).trim(), 'Last hour');
  const cards = await page.textContent('#totals');
  assert.match(cards, /Requests\s*\d+/);
  assert.match(cards, /Proxy overhead p50\s*[1-9]\d* µs/, 'the proxy\'s own time, measured, stored and aggregated');
  assert.ok((await page.locator('svg.chart').count()) >= 3);
  assert.match(await page.textContent('main'), /cooling: gemini-2\.0-flash/);
  await shot('overview');
  await page.click('#splits a:has-text("per model")');
  assert.match(await page.textContent('main'), /Requests per model/);
  assert.match(await page.textContent('svg[aria-label="requests"]'), /gemini-2\.0-flash: \d+/, 'a series per model, named on hover');
  await page.fill('.custom-range input[name=from]', '2026-01-01T00:00');
  await page.fill('.custom-range input[name=to]', '2026-01-02T00:00');
  await page.click('.custom-range button');
  assert.match(page.url(), /range=custom.*split=model|split=model.*range=custom/, 'the custom range keeps the split');
  assert.match(await page.textContent('main'), /No requests in this period/);
  await page.goto(`${WEB}/?range=custom&split=kind&from=${encodeURIComponent(new Date(Date.now() - 36e5).toISOString().slice(0, 16))}&to=${encodeURIComponent(new Date(Date.now() + 6e4).toISOString().slice(0, 16))}`);
  assert.equal(await page.locator('svg[aria-label="requests"] title').count(), 61, 'a bar a minute over the 61 minutes asked for');
  await page.goto(`${WEB}/keys`);
  await shot('keys');
  if (process.env.EXPECT_BUNDLE === '1') {
    // The wasm bundle mounts the shared KeyStatus component onto each status cell; it
    // counts cooldowns down every second.
    const cell = page.locator('[data-live-key]', { hasText: 'cooling' }).first();
    const first = await cell.textContent();
    await eventually('the cooldown to count down in the browser', async () => (await cell.textContent()) !== first, 5000);
  }
});

const bundleOnly = { skip: process.env.EXPECT_BUNDLE !== '1' && 'no browser bundle built (WEB_HYDRATE=1 builds it)' };

test('key states refresh in place from the key_rows server function', bundleOnly, async () => {
  await page.goto(`${WEB}/keys`);
  const csrf = await page.getAttribute('input[name=csrf]', 'value');
  const cell = page.locator('tr[data-key-id="1"] [data-live-key]');
  await eventually('the live cell to mount', async () => /ok/.test(await cell.textContent()));
  // Another operator's change, made outside this page: no reload here.
  const res = await page.request.post(`${WEB}/keys/1/disable`, { form: { csrf }, maxRedirects: 0 });
  assert.equal(res.status(), 303);
  await eventually('the status cell to show the change', async () => /disabled/.test(await cell.textContent()), 15000);
  const toggle = page.locator('tr[data-key-id="1"] [data-live-toggle] button');
  await eventually('the button to offer Enable', async () => (await toggle.textContent()) === 'Enable', 15000);
  const again = await page.request.post(`${WEB}/keys/1/enable`, { form: { csrf }, maxRedirects: 0 });
  assert.equal(again.status(), 303);
  await eventually('the status cell to recover', async () => /^ok$/.test((await cell.textContent()).trim()), 15000);
  await eventually('the button to offer Disable again', async () => (await toggle.textContent()) === 'Disable', 15000);
});

test('the overview refreshes in place, cards and charts together, from the overview_section server function', bundleOnly, async () => {
  await page.goto(`${WEB}/?range=hour`);
  const count = async () => Number((await page.textContent('#totals')).match(/Requests\s*(\d+)/)?.[1] ?? -1);
  // The requests chart's columns say their counts on hover: their sum is the card's.
  const charted = () => page.$$eval('svg[aria-label="requests"] title', (titles) => titles
    .map((t) => [...t.textContent.matchAll(/(?:ok|safety blocks \(HTTP 200\)|no key free|client mistakes|upstream errors): (\d+)/g)]
      .reduce((n, m) => n + Number(m[1]), 0))
    .reduce((a, b) => a + b, 0));
  const before = await count();
  assert.ok(before >= 3, `the totals show this hour's requests (${before})`);
  assert.equal(await charted(), before, 'the page renders cards and charts from one read');
  assert.equal(await generate(secret), 200);
  await eventually('the totals to count the new request', async () => (await count()) > before, 25000);
  assert.equal(await charted(), await count(), 'the chart refreshed with the cards');
});

test('the bundle is served gzipped and kept by the browser until it changes', bundleOnly, async () => {
  await page.goto(`${WEB}/keys`);
  const script = await page.textContent('script[type=module]');
  const wasm = script.match(/'(\/pkg\/[^']+\.wasm\?v=[0-9a-f]{16})'/)?.[1];
  assert.ok(wasm, `the bundle's URL carries its version: ${script}`);
  const res = await page.request.get(`${WEB}${wasm}`, { headers: { 'accept-encoding': 'gzip' } });
  assert.equal(res.status(), 200);
  assert.equal(res.headers()['content-encoding'], 'gzip');
  assert.equal(res.headers()['cache-control'], 'public, max-age=31536000, immutable');
});

test('usage shows day x model x key and downloads CSV', async () => {
  await page.goto(`${WEB}/usage`);
  assert.match(await page.textContent('#usage'), new RegExp(MODEL));
  await shot('usage');
  const csv = await page.request.get(`${WEB}/usage.csv?days=7`);
  assert.equal(csv.status(), 200);
  const text = await csv.text();
  assert.match(text, /^day,model,key,requests/);
  assert.match(text, new RegExp(MODEL));
});

test('a revoked proxy key is refused', async () => {
  await page.goto(`${WEB}/proxy-keys`);
  let asked = '';
  page.once('dialog', (d) => { asked = d.message(); d.accept(); });
  await Promise.all([page.waitForURL(/msg=revoked/), page.click('#proxy-keys form[action$="/revoke"] button')]);
  assert.match(asked, /^Revoke this proxy key\?/, 'revoking asks first');
  // The proxy answers a revoked key with 401 or 403 (it knows the key was revoked).
  await eventually('the revoked key to be refused', async () => [401, 403].includes(await generate(secret)));
});

test('every page reads on a phone (390 px, nothing sideways) and follows a dark system setting', async () => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: 'dark' });
  const p = await context.newPage();
  await login(p, PASSWORD);
  for (const path of ['/', '/keys', '/proxy-keys', '/logs', '/usage']) {
    await p.goto(`${WEB}${path}`);
    const [scroll, width] = await p.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    assert.ok(scroll <= width, `${path} scrolls sideways on a phone: ${scroll} > ${width}`);
    const navBottom = await p.evaluate(() => document.querySelector('nav').getBoundingClientRect().right);
    assert.ok(navBottom <= width, `${path}: the navigation overflows`);
    // Table headers are hidden on a phone: every cell with a value names its column.
    const unlabelled = await p.$$eval('main table td', (cells) => cells
      .filter((td) => td.textContent.trim() && !td.querySelector('form, button'))
      .filter((td) => !/[a-z#]/i.test(getComputedStyle(td, '::before').content.replace(/^none$/, '')))
      .map((td) => td.textContent.trim().slice(0, 30)));
    assert.deepEqual(unlabelled, [], `${path}: cells without a label on a phone`);
    assert.match(await p.textContent('#time-rule'), /Times are UTC.*Pacific day/s, `${path} states the time rule`);
  }
  await p.goto(`${WEB}/`);
  await p.screenshot({ path: `${SHOTS}/overview-phone-dark.png`, fullPage: true });
  const background = await p.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const [r, g, b] = background.match(/\d+/g).map(Number);
  assert.ok(r + g + b < 150, `a dark system setting gets a dark page: ${background}`);
  await context.close();
});

test('upstream keys are searched, sorted and re-checked all at once, with progress', async () => {
  await page.goto(`${WEB}/keys`);
  const total = await page.locator('#keys tr[data-key-id]').count();
  const enabled = (await page.getAttribute('#recheck-all', 'data-ids')).split(',').length;
  await page.goto(`${WEB}/keys?q=E2E-2`);
  assert.equal(await page.locator('#keys tr[data-key-id]').count(), 1, 'a search by name, in any case');
  assert.match(await page.textContent('#key-listing'), new RegExp(`1 of ${total} keys match`));
  const names = async () => page.$$eval('#keys tr[data-key-id]', (rows) => rows.map((r) => r.cells[1].textContent.trim()));
  await page.goto(`${WEB}/keys?sort=requests`);
  const byUse = await names();
  await page.goto(`${WEB}/keys?sort=name`);
  const byName = await names();
  assert.deepEqual(byName, [...byName].sort((a, b) => a.localeCompare(b)), 'sorted by name');
  assert.deepEqual([...byUse].sort(), [...byName].sort(), 'every key either way');
  assert.equal(await page.inputValue('#key-listing select[name=sort]'), 'name', 'the choice stays selected');

  // Re-check all: the first upstream call is held until the page says how far it got.
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  await page.route('**/keys/*/recheck', async (route) => { await held; await route.continue(); });
  const done = page.waitForURL(/rechecked=/);
  await page.click('#recheck-all button');
  await eventually('the progress to show', async () => new RegExp(`^Re-checking 1 of ${enabled} \\(key #\\d+\\)…$`).test(await page.textContent('#recheck-progress')));
  release();
  await done;
  await page.unroute('**/keys/*/recheck');
  assert.match((await page.textContent('#added-keys')).trim(), new RegExp(`^Re-checked ${enabled} keys?: .*valid`));
});

test('forms work with JavaScript off', async () => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const p = await context.newPage();
  await login(p, PASSWORD);
  await p.goto(`${WEB}/keys`);
  await Promise.all([p.waitForURL(/rechecked=/), p.click('#recheck-all button')]);
  assert.match((await p.textContent('#added-keys')).trim(), /^Re-checked \d+ keys?: .*valid/, 'the form\'s own answer');
  await p.goto(`${WEB}/keys`);
  await Promise.all([p.waitForURL(/msg=disabled/), p.click('#keys form[action$="/disable"] button >> nth=0')]);
  assert.match(await p.textContent('#keys'), /disabled/);
  await context.close();
});

test('a mutation without the CSRF token is refused', async () => {
  const res = await page.request.post(`${WEB}/keys/1/enable`, { form: { csrf: 'forged' } });
  assert.equal(res.status(), 403);
});

test('no console errors', () => {
  assert.deepEqual(consoleErrors, []);
});
