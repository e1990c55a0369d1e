// The promoter portal in a real browser: Debian's Chromium driven by playwright-core (no
// browser is downloaded), against the local server that run.sh started with `make demo`'s month
// of activity for user-1. The test:
// - checks every figure the page shows against the API's own answers;
// - copies the link (clipboard and keyboard);
// - submits an invalid then a valid payout method and compares the page's message with the API's;
// - withdraws, and sees the payout and the disabled button with its reason;
// - opens the page as a new promoter (empty states), without a token and with a forged one
//   (errors in words), and framed by another origin;
// - runs axe-core (WCAG 2.1 A/AA and best practices) on each state and fails on a violation;
// - fails on any console error or uncaught exception but the expected 4xx answers;
// - saves screenshots at desktop and phone widths under target/portal/.
//
// Environment: API, ADMIN_KEY, SERVICE_KEY, PROMOTER_TOKEN (printed by the local server),
// CHROMIUM (default /usr/bin/chromium), SCREENSHOTS (default target/portal).

import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { chromium } from "playwright-core";

const { API, SERVICE_KEY, PROMOTER_TOKEN } = process.env;
const SCREENSHOTS = process.env.SCREENSHOTS || "target/portal";
const AXE = readFileSync(new URL("./node_modules/axe-core/axe.min.js", import.meta.url), "utf8");
const LOCALE = "en-US";
for (const name of ["API", "ADMIN_KEY", "SERVICE_KEY", "PROMOTER_TOKEN"]) {
  if (!process.env[name]) throw new Error(`${name} is not set: run through tests/portal/run.sh`);
}
mkdirSync(SCREENSHOTS, { recursive: true });

// ---- The API, as the truth the page is checked against ----------------------------------------

async function call(method, path, token, body) {
  const response = await fetch(`${API}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

async function get(path, token) {
  const { status, body } = await call("GET", path, token);
  assert.equal(status, 200, `GET ${path}: ${JSON.stringify(body)}`);
  return body;
}

function money(amount, currency) {
  const format = new Intl.NumberFormat(LOCALE, { style: "currency", currency });
  return format.format(amount / 10 ** format.resolvedOptions().maximumFractionDigits);
}
const count = (n) => new Intl.NumberFormat(LOCALE).format(n);

// ---- The browser -------------------------------------------------------------------------------

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // This machine's network is closed: no background connections, no component updates.
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

const steps = [];
function step(name) {
  steps.push(name);
  console.log(`portal: ${name}`);
}

// A page whose console errors and exceptions fail the test, but those `allowed` names (the
// browser logs every 4xx answer of a fetch as an error).
async function open(viewport, allowed = () => false) {
  const context = await browser.newContext({ locale: LOCALE, timezoneId: "UTC", viewport });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: API });
  const page = await context.newPage();
  page.problems = [];
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const text = `${message.text()} (${message.location().url})`;
    if (!allowed(message.text(), message.location().url)) page.problems.push(text);
  });
  page.on("pageerror", (error) => page.problems.push(`uncaught: ${error.message}`));
  return page;
}

async function load(page, token) {
  const response = await page.goto(`${API}/portal${token === null ? "" : `#token=${token}`}`);
  assert.equal(response.status(), 200);
  await page.waitForSelector("main:not([aria-busy])");
  return response;
}

async function accessible(page, what) {
  await page.evaluate(AXE);
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { runOnly: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] }),
  );
  const found = result.violations.map(
    (v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`,
  );
  assert.deepEqual(found, [], `axe-core on ${what}`);
  return result.passes.length;
}

function clean(page, what) {
  assert.deepEqual(page.problems, [], `console errors on ${what}`);
}

const text = (page, selector) => page.locator(selector).innerText();

const desktop = { width: 1280, height: 900 };
const phone = { width: 390, height: 844 };
let checks = 0;

try {
  // 1. The demo promoter: every figure against the API.
  const me = await get("/v1/promoters/me", PROMOTER_TOKEN);
  const stats = await get("/v1/promoters/me/stats", PROMOTER_TOKEN);
  const rewards = (await get("/v1/promoters/me/rewards?limit=100", PROMOTER_TOKEN)).items;
  const referrals = (await get("/v1/promoters/me/referrals?limit=100", PROMOTER_TOKEN)).results;
  const payouts = (await get("/v1/promoters/me/payouts?limit=50", PROMOTER_TOKEN)).items;
  const currency = me.currency;
  assert.ok(referrals.length > 0 && payouts.length > 0, "the demo month has referrals and a payout");
  assert.ok(new Set(rewards.map((r) => r.status)).size >= 2, "rewards in two statuses at least");
  // The demo clicks every day; the dispatcher counts each click on its own day (from the
  // stream, after the fact).
  assert.deepEqual(stats.days.filter((d) => d.clicks === 0), [], "a day without clicks");
  const later = [...rewards, ...referrals].filter((item) => new Date(item.created) > new Date());
  assert.deepEqual(later, [], "the demo wrote nothing in the future");

  const invalidAllowed = (message, url) =>
    message.includes("status of 400") && url.endsWith("/v1/promoters/me/payout-method");
  const page = await open(desktop, invalidAllowed);
  const response = await load(page, PROMOTER_TOKEN);
  await page.screenshot({ path: `${SCREENSHOTS}/desktop.png`, fullPage: true });
  const headers = response.headers();
  assert.match(headers["content-security-policy"], /script-src 'self'/);
  assert.match(headers["content-security-policy"], /frame-ancestors \*/);
  assert.equal(headers["referrer-policy"], "no-referrer");
  assert.ok(!page.url().includes("token"), `the token left the address bar: ${page.url()}`);
  const stored = await page.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie]);
  assert.deepEqual(stored, [0, 0, ""], "the page stores nothing: the token lives in memory");
  step("the page opened with the token in the fragment, dropped it from the URL and stored nothing");

  assert.equal(await page.inputValue("#link"), me.referral_link);
  assert.equal(await text(page, "#code"), me.referral_code);
  assert.equal(await text(page, '[data-figure="clicks"]'), count(stats.totals.clicks));
  assert.equal(await text(page, '[data-figure="signups"]'), count(stats.totals.signups));
  assert.equal(await text(page, '[data-figure="converted"]'), count(stats.totals.converted));
  assert.equal(await text(page, '[data-figure="earned"]'), money(stats.totals.earned[currency], currency));
  assert.equal(
    await text(page, '[data-figure="balance"]'),
    money(me.balances[currency].current_balance, currency),
  );
  assert.equal(await page.locator("#chart svg rect.bar").count(), stats.days.length);
  // Long lists show their first rows, the rest behind "Show all".
  for (const [list, total] of [["#referrals", referrals.length], ["#rewards", rewards.length]]) {
    assert.equal(await page.locator(`${list} tbody tr:visible`).count(), Math.min(total, 8));
    if (total > 8) await page.click(`${list} button.more`);
    assert.equal(await page.locator(`${list} tbody tr:visible`).count(), total);
  }
  assert.equal(await page.locator("#referrals tbody tr").count(), referrals.length);
  assert.equal(await page.locator("#rewards tbody tr").count(), rewards.length);
  assert.equal(await page.locator("#payouts tbody tr").count(), payouts.length);
  for (const reward of rewards) {
    const row = page.locator(`tr[data-reward="${reward.id}"]`);
    assert.equal(await row.locator("td").nth(2).innerText(), money(reward.amount, reward.currency));
    if (reward.status === "held" && reward.holds.includes("holding_period")) {
      assert.match(await row.locator("td.details").innerText(), /In the holding period until /);
    }
  }
  const paid = payouts.find((p) => p.status === "paid");
  assert.ok(paid, "the demo's payout was paid");
  assert.match(await text(page, "#payouts"), new RegExp(money(paid.amount, currency).replace("$", "\\$")));
  checks += 13 + rewards.length;
  step(
    `figures match the API: ${stats.totals.clicks} clicks, ${stats.totals.signups} sign-ups, ` +
      `${referrals.length} referrals, ${rewards.length} rewards, ${payouts.length} payout(s)`,
  );

  const passes = await accessible(page, "the demo promoter's page");
  step(`axe-core: no violation (${passes} rules passed); screenshot ${SCREENSHOTS}/desktop.png`);

  // At phone width (before the withdrawal, for a screenshot with a balance): no sideways scrolling of the page, and accessible.
  const small = await open(phone);
  await load(small, PROMOTER_TOKEN);
  const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px at phone width`);
  await small.screenshot({ path: `${SCREENSHOTS}/phone.png` });
  await accessible(small, "the page at phone width");
  clean(small, "the page at phone width");
  step(`phone width (${phone.width}px): fits, accessible; screenshot ${SCREENSHOTS}/phone.png`);

  // 2. Copy the link, by keyboard: Tab from the link field reaches the button; Enter copies.
  await page.focus("#link");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.id), "copy");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.getElementById("copy-status").textContent === "Link copied.");
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), me.referral_link);
  step("the link was copied by keyboard: the clipboard holds the API's referral_link");

  // 3. The payout method: the API's message for an invalid IBAN, then a valid one saved.
  const invalid = { method: "bank_transfer", payment_address: "GB00 1234" };
  const refused = await call("PATCH", "/v1/promoters/me/payout-method", PROMOTER_TOKEN, invalid);
  assert.equal(refused.status, 400);
  await page.selectOption("#method", invalid.method);
  await page.fill("#address", invalid.payment_address);
  await page.click("#method-form button[type=submit]");
  await page.waitForSelector("#address-error:not([hidden])");
  assert.equal(await page.locator("#address-error").textContent(), refused.body.error.message);
  assert.equal(await page.getAttribute("#address", "aria-invalid"), "true");
  assert.equal(await page.evaluate(() => document.activeElement.id), "address");
  await accessible(page, "the payout form with an error");
  await page.fill("#address", "GB82 WEST 1234 5698 7654 32");
  await page.click("#method-form button[type=submit]");
  await page.waitForFunction(() => document.getElementById("method-status").textContent === "Payout method saved.");
  assert.equal(await page.locator("#address-error").isHidden(), true);
  const saved = await get("/v1/promoters/me", PROMOTER_TOKEN);
  assert.deepEqual(saved.payout_method, { method: "bank_transfer", payment_address: "GB82WEST12345698765432" });
  step(`payout method: the page showed the API's "${refused.body.error.message}", then saved a valid IBAN`);

  // 4. Withdraw the balance.
  const balance = saved.balances[currency].current_balance;
  assert.ok(balance >= saved.min_withdrawal_balance, "the demo leaves a balance to withdraw");
  const button = page.locator(`#balances button[data-currency="${currency}"]`);
  assert.equal(await button.isEnabled(), true);
  await button.click();
  await page.waitForFunction(() => /requested/.test(document.getElementById("withdraw-status").textContent));
  assert.match(await text(page, "#withdraw-status"), new RegExp(`Withdrawal of \\${money(balance, currency)} requested`));
  const after = await get("/v1/promoters/me", PROMOTER_TOKEN);
  assert.equal(after.balances[currency].current_balance, 0);
  const latest = (await get("/v1/promoters/me/payouts?limit=1", PROMOTER_TOKEN)).items[0];
  assert.equal(latest.amount, balance);
  assert.equal(latest.status, "requested");
  await page.waitForFunction((n) => document.querySelectorAll("#payouts tbody tr").length === n, payouts.length + 1);
  assert.equal(await button.isDisabled(), true);
  assert.match(await text(page, "#balances"), /Nothing to withdraw yet/);
  step(`withdrew ${money(balance, currency)}: the payout is listed as requested and the button disabled with its reason`);
  clean(page, "the demo promoter's page");

  // 6. A new promoter: empty states, the withdraw button disabled with its reason.
  const session = await call("POST", "/v1/promoters/portal-newcomer/sessions", SERVICE_KEY, {});
  assert.equal(session.status, 201);
  const fresh = await open(desktop);
  await load(fresh, session.body.token);
  assert.match(await text(fresh, "#referrals"), /No referrals yet/);
  assert.match(await text(fresh, "#rewards"), /No rewards yet/);
  assert.match(await text(fresh, "#payouts"), /No payouts yet/);
  assert.match(await text(fresh, "#chart"), /No sign-ups or earnings in the last 30 days yet/);
  assert.equal(await fresh.locator("#balances button").isDisabled(), true);
  assert.match(await text(fresh, "#balances"), /Nothing to withdraw yet/);
  assert.match(await text(fresh, "#method-current"), /No payout method yet/);
  // No currency earned yet: zeros, not "0 points".
  assert.equal(await text(fresh, '[data-figure="earned"]'), "0");
  assert.equal(await text(fresh, '[data-figure="balance"]'), "0");
  await accessible(fresh, "a new promoter's page");
  clean(fresh, "a new promoter's page");
  step("a new promoter sees empty states, and why they cannot withdraw");

  // The viewer's locale: amounts and dates as a German reader writes them.
  const german = await browser.newContext({ locale: "de-DE", timezoneId: "UTC", viewport: desktop });
  const deutsch = await german.newPage();
  await load(deutsch, PROMOTER_TOKEN);
  const euros = new Intl.NumberFormat("de-DE", { style: "currency", currency }).format(
    stats.totals.earned[currency] / 100,
  );
  assert.equal(await text(deutsch, '[data-figure="earned"]'), euros);
  assert.equal(await text(deutsch, '[data-figure="clicks"]'), new Intl.NumberFormat("de-DE").format(stats.totals.clicks));
  await german.close();
  step(`in a German browser the same figures read ${euros}`);

  // Why a balance cannot be withdrawn: below the minimum, then without a payout method.
  const { ADMIN_KEY } = process.env;
  const reasonsProgram = await call("POST", "/v1/programs", ADMIN_KEY, {
    name: "Portal reasons",
    rewards: [{ recipient: "referrer", trigger: "signup", kind: "cash", amount: 1500, delivery: "payout" }],
  });
  assert.equal(reasonsProgram.status, 201, JSON.stringify(reasonsProgram.body));
  const reasons = await call("POST", "/v1/promoters/portal-reasons/sessions", SERVICE_KEY, {});
  const reasonsToken = reasons.body.token;
  const reasonsCode = (await get("/v1/promoters/me", reasonsToken)).referral_code;
  let reasonsPage;
  for (const [user, expected] of [
    ["reasons-1", /You can withdraw once your balance reaches \$20\.00\./],
    ["reasons-2", /Add a payout method below to withdraw\./],
  ]) {
    const signup = await call("POST", "/v1/referrals", SERVICE_KEY, {
      code: reasonsCode,
      referred_user_id: user,
      program_id: reasonsProgram.body.id,
    });
    assert.equal(signup.status, 201, JSON.stringify(signup.body));
    reasonsPage = await open(desktop);
    await load(reasonsPage, reasonsToken);
    assert.equal(await reasonsPage.locator("#balances button").isDisabled(), true);
    assert.match(await text(reasonsPage, "#balances"), expected);
  }
  await accessible(reasonsPage, "a balance that cannot be withdrawn");
  clean(reasonsPage, "a balance that cannot be withdrawn");
  step("a balance below the minimum, then one without a payout method: the button says why it is disabled");

  // 7. Errors in words, never a blank page: no token, a forged token.
  const unauthorizedAllowed = (message) => message.includes("status of 401");
  const missing = await open(desktop);
  await load(missing, null);
  assert.match(await text(missing, "#fatal"), /has no session/);
  clean(missing, "the page without a token");
  const forged = await open(desktop, unauthorizedAllowed);
  await load(forged, "eyJhbGciOiJIUzI1NiJ9.e30.forged");
  assert.match(await text(forged, "#fatal"), /Your session has ended/);
  await accessible(forged, "the page with a forged token");
  clean(forged, "the page with a forged token");
  step("without a token and with a forged one the page says so in words");

  // 8. Framed by the tenant's app, served from another origin (a port of its own): the page
  // loads, and tells its parent its height.
  const tenantApp = createServer((request, response) => {
    response.setHeader("content-type", "text/html");
    response.end(`<!doctype html><html lang="en"><title>Tenant app</title><body><h1>Refer a friend</h1>
      <iframe title="Referral portal" src="${API}/portal#token=${PROMOTER_TOKEN}" style="width:100%;height:600px"></iframe>
      <script>addEventListener("message", (e) => { if (e.data && e.data.type === "referral-portal:height") window.portalHeight = e.data.height; });</script>`);
  });
  await new Promise((resolve) => tenantApp.listen(0, "127.0.0.1", resolve));
  const host = await open(desktop);
  await host.goto(`http://127.0.0.1:${tenantApp.address().port}/app`);
  const frame = host.frameLocator("iframe");
  await frame.locator("main:not([aria-busy])").waitFor();
  assert.equal(await frame.locator("#link").inputValue(), me.referral_link);
  await host.waitForFunction(() => window.portalHeight > 600);
  clean(host, "the framed page");
  tenantApp.close();
  step("framed by another origin, the page loads and reports its height to its parent");

  console.log(`portal: passed (${steps.length} steps, ${checks} figure checks)`);
} finally {
  await browser.close();
}
