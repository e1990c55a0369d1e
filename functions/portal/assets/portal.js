// The promoter portal: one module, no library, no build step. It reads the promoter's session
// token from the URL fragment (`/portal#token=eyJ...`), removes it from the address bar, keeps it
// in memory only, and calls the `/v1/promoters/me...` routes of the API it is served by.
//
// Embedded in a tenant's app (an iframe), the page tells its parent its height and when the
// session ended (`referral-portal:height`, `referral-portal:expired`), and takes a new token from
// it (`{type: "referral-portal:token", token}`).

const locale = navigator.language || "en";
const state = { token: null, me: null, referrals: [], rewards: [] };

// ---- The API -----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

// Words for failures that are not about one field.
function explain(error) {
  if (!(error instanceof ApiError)) return "Something went wrong on this page. Reload it to try again.";
  switch (error.code) {
    case "network":
      return "The server could not be reached. Check your connection, then reload the page.";
    case "unauthorized":
      return "Your session has ended. Open your referral page again from the app to continue.";
    case "tenant_suspended":
      return "This referral program is not available right now.";
    case "unavailable":
      return "The service is busy. Try again in a moment.";
    default:
      return error.message;
  }
}

async function api(method, path, body) {
  const headers = { authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new ApiError(0, "network", "The server could not be reached.");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    // An answer without JSON: its status says enough.
  }
  if (!response.ok) {
    const error = data && data.error;
    if (response.status === 401) tellParent({ type: "referral-portal:expired" });
    throw new ApiError(
      response.status,
      (error && error.code) || `http_${response.status}`,
      (error && error.message) || `The server answered ${response.status}.`,
      error && error.field,
    );
  }
  return data;
}

// ---- Formatting (the viewer's locale) ----------------------------------------------------------

const numberFormat = new Intl.NumberFormat(locale);
const percentFormat = new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 1 });
const dateFormat = new Intl.DateTimeFormat(locale, { dateStyle: "medium" });
const dayFormat = new Intl.DateTimeFormat(locale, { month: "short", day: "numeric", timeZone: "UTC" });

// Amounts are integers in the currency's minor units (cents), or points (the currency
// `POINTS`). Before anything is earned there is no currency to name: a bare 0.
function money(amount, currency, kind) {
  if (kind === "points" || currency === "POINTS") return `${numberFormat.format(amount)} points`;
  if (!currency) return numberFormat.format(amount);
  try {
    const format = new Intl.NumberFormat(locale, { style: "currency", currency });
    const digits = format.resolvedOptions().maximumFractionDigits;
    return format.format(amount / 10 ** digits);
  } catch {
    return `${numberFormat.format(amount)} ${currency}`;
  }
}

const when = (timestamp) => (timestamp ? dateFormat.format(new Date(timestamp)) : "");
const day = (date) => dayFormat.format(new Date(`${date}T00:00:00Z`));

// ---- The DOM -----------------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

// An element with attributes and children (text is always text: names and emails come from
// users).
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") element.className = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  for (const child of children.flat()) element.append(child);
  return element;
}

function empty(text) {
  return h("p", { class: "empty" }, text);
}

// A table that scrolls sideways on a narrow screen (a focusable region, for keyboards); past
// `limit` rows, the rest wait behind a "Show all" button.
function table(label, headings, rows, limit = Infinity) {
  const region = h(
    "div",
    { class: "scroll", role: "region", "aria-label": label, tabindex: "0" },
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, headings.map((text) => h("th", { scope: "col" }, text)))),
      h("tbody", {}, rows),
    ),
  );
  // Phones show each row as a card: every cell names its column.
  for (const row of rows) {
    [...row.children].forEach((cell, index) => {
      cell.setAttribute("data-label", headings[index]);
      cell.replaceChildren(h("div", {}, [...cell.childNodes]));
    });
  }
  if (rows.length <= limit) return region;
  rows.forEach((row, index) => {
    row.hidden = index >= limit;
  });
  const more = h("button", { type: "button", class: "more" }, `Show all ${rows.length} ${label.toLowerCase()}`);
  more.addEventListener("click", () => {
    for (const row of rows) row.hidden = false;
    more.remove();
    region.focus();
  });
  return h("div", {}, region, more);
}

// Rows shown before "Show all".
const FIRST_ROWS = 8;

function badge(text, tone) {
  return h("span", { class: `badge ${tone}` }, text);
}

function sectionError(container, error) {
  container.replaceChildren(h("p", { class: "error", role: "alert" }, explain(error)));
}

function tellParent(message) {
  if (window.parent !== window) window.parent.postMessage(message, "*");
}

// ---- The link ----------------------------------------------------------------------------------

function renderLink(me) {
  const link = me.referral_link;
  $("link").value = link;
  $("code").textContent = me.referral_code;
  const text = "Join me: sign up with my link and we both get a reward.";
  $("share-email").href = `mailto:?subject=${encodeURIComponent("An invitation")}&body=${encodeURIComponent(`${text}\n${link}`)}`;
  $("share-x").href = `https://twitter.com/intent/tweet?text=${encodeURIComponent(text)}&url=${encodeURIComponent(link)}`;
  $("share-linkedin").href = `https://www.linkedin.com/sharing/share-offsite/?url=${encodeURIComponent(link)}`;
  $("share-whatsapp").href = `https://wa.me/?text=${encodeURIComponent(`${text} ${link}`)}`;
  for (const id of ["share-email", "share-x", "share-linkedin", "share-whatsapp"]) {
    $(id).setAttribute("aria-label", `Share your link by ${$(id).textContent} (opens a new window)`);
  }
  if (navigator.share) {
    $("share-native").parentElement.hidden = false;
    $("share-native").onclick = () => navigator.share({ text, url: link }).catch(() => {});
  }
}

async function copyLink() {
  const link = $("link").value;
  try {
    await navigator.clipboard.writeText(link);
    $("copy-status").textContent = "Link copied.";
  } catch {
    // No clipboard permission (some embeds): select it for the viewer to copy.
    $("link").select();
    $("copy-status").textContent = "Press Ctrl+C (⌘C on a Mac) to copy the selected link.";
  }
}

// ---- Figures -----------------------------------------------------------------------------------

function mainCurrency(me, stats) {
  return me.currency || Object.keys(me.balances || {})[0] || Object.keys(stats.totals.earned)[0] || null;
}

function renderCards(me, stats) {
  const totals = stats.totals;
  const rate = (value) => (value === null || value === undefined ? null : percentFormat.format(value));
  const earned = Object.entries(totals.earned);
  const balances = Object.entries(me.balances || {});
  const card = (figure, label, value, note) =>
    h(
      "div",
      { class: "stat" },
      h("dt", {}, label),
      h("dd", { "data-figure": figure }, value),
      note ? h("dd", { class: "note" }, note) : null,
    );
  $("cards").replaceChildren(
    card("clicks", "Clicks", numberFormat.format(totals.clicks), `${numberFormat.format(me.link_clicks)} all time`),
    card(
      "signups",
      "Sign-ups",
      numberFormat.format(totals.signups),
      rate(stats.signup_rate) ? `${rate(stats.signup_rate)} of clicks` : "No clicks yet",
    ),
    card(
      "converted",
      "Paying customers",
      numberFormat.format(totals.converted),
      rate(stats.paid_rate) ? `${rate(stats.paid_rate)} of sign-ups` : "No sign-ups yet",
    ),
    card(
      "earned",
      "Earned",
      earned.length ? earned.map(([currency, amount]) => money(amount, currency)).join(" · ") : money(0, mainCurrency(me, stats)),
      null,
    ),
    card(
      "balance",
      "Balance",
      balances.length
        ? balances.map(([currency, figures]) => money(figures.current_balance, currency)).join(" · ")
        : money(0, mainCurrency(me, stats)),
      "Available to withdraw",
    ),
  );
}

// Sign-ups as bars, earnings (in the main currency) as a line, one point per UTC day.
function renderChart(stats, currency) {
  const days = stats.days;
  // As wide as the space it has (its text stays legible on a phone), at most 640 units.
  const width = Math.round(Math.max(300, Math.min(640, $("chart").clientWidth || 640)));
  const height = 220;
  const pad = { left: 36, right: 56, top: 16, bottom: 28 };
  const plotWidth = width - pad.left - pad.right;
  const plotHeight = height - pad.top - pad.bottom;
  const step = plotWidth / days.length;
  const signups = days.map((d) => d.signups);
  const earnings = days.map((d) => (currency && d.earned[currency]) || 0);
  // A day whose refunds took back more than it earned is drawn at 0 (the table says how much).
  const drawn = earnings.map((value) => Math.max(0, value));
  const maxSignups = Math.max(1, ...signups);
  const maxEarned = Math.max(1, ...drawn);
  const y = (value, max) => pad.top + plotHeight - (value / max) * plotHeight;

  const bars = days.map((d, i) => {
    const top = y(d.signups, maxSignups);
    return s(
      "rect",
      {
        class: "bar",
        x: (pad.left + i * step + step * 0.15).toFixed(1),
        y: top.toFixed(1),
        width: (step * 0.7).toFixed(1),
        height: (pad.top + plotHeight - top).toFixed(1),
      },
      s("title", {}, `${day(d.date)}: ${d.signups} sign-ups, ${money(earnings[i], currency)} earned`),
    );
  });
  const points = drawn
    .map((value, i) => `${(pad.left + i * step + step / 2).toFixed(1)},${y(value, maxEarned).toFixed(1)}`)
    .join(" ");
  const label = (x, yPos, text, anchor, cls = "axis") =>
    s("text", { x, y: yPos, "text-anchor": anchor, class: cls }, text);
  const base = pad.top + plotHeight;
  const totalSignups = signups.reduce((a, b) => a + b, 0);
  const totalEarned = earnings.reduce((a, b) => a + b, 0);
  const description = `${numberFormat.format(totalSignups)} sign-ups and ${money(totalEarned, currency)} earned from ${day(days[0].date)} to ${day(days[days.length - 1].date)}.`;

  const svg = s(
    "svg",
    { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": "chart-svg-title chart-svg-desc", class: "chart" },
    s("title", { id: "chart-svg-title" }, "Sign-ups and earnings per day"),
    s("desc", { id: "chart-svg-desc" }, description),
    s("line", { x1: pad.left, x2: width - pad.right, y1: base, y2: base, class: "baseline" }),
    s("line", { x1: pad.left, x2: width - pad.right, y1: pad.top, y2: pad.top, class: "grid" }),
    bars,
    s("polyline", { points, class: "earnings" }),
    label(pad.left - 6, pad.top + 4, numberFormat.format(maxSignups), "end"),
    label(pad.left - 6, base, "0", "end"),
    label(width - pad.right + 6, pad.top + 4, money(maxEarned === 1 && totalEarned === 0 ? 0 : maxEarned, currency), "start"),
    label(pad.left, height - 8, day(days[0].date), "start"),
    label(width - pad.right, height - 8, day(days[days.length - 1].date), "end"),
  );
  const legend = h(
    "p",
    { class: "legend" },
    h("span", { class: "key bars-key", "aria-hidden": "true" }),
    " Sign-ups (left scale)  ",
    h("span", { class: "key line-key", "aria-hidden": "true" }),
    ` Earnings${currency ? ` in ${currency}` : ""} (right scale)`,
  );
  const rows = days
    .filter((d, i) => d.signups || earnings[i] || d.clicks)
    .map((d, i) => h("tr", {}, h("td", {}, day(d.date)), h("td", {}, numberFormat.format(d.clicks)), h("td", {}, numberFormat.format(d.signups)), h("td", {}, money((currency && d.earned[currency]) || 0, currency))));
  const details = h(
    "details",
    {},
    h("summary", {}, "Show the figures as a table"),
    rows.length ? table("Figures per day", ["Day", "Clicks", "Sign-ups", "Earned"], rows) : empty("No activity in these 30 days."),
  );
  const quiet = empty("No sign-ups or earnings in the last 30 days yet: share your link to get started.");
  $("chart").replaceChildren(...(totalSignups || totalEarned ? [] : [quiet]), svg, legend, details);
}

// ---- Balances, withdrawals, payouts ------------------------------------------------------------

const METHODS = {
  paypal: { name: "PayPal", hint: "The email address of your PayPal account." },
  wise: { name: "Wise", hint: "The email address of your Wise account." },
  bank_transfer: { name: "Bank transfer (IBAN)", hint: "Your IBAN, e.g. GB82 WEST 1234 5698 7654 32." },
  crypto: { name: "Crypto wallet", hint: "Your wallet address: Ethereum (0x…), Bitcoin or Solana." },
};

// Why a balance cannot be withdrawn now, or null.
function withdrawBlocker(me, currency, figures) {
  if (currency === "POINTS") return "Points are spent in the app, not paid out.";
  if (me.status === "suspended") return "Withdrawals are paused while your account is on hold.";
  if (!figures || figures.current_balance <= 0) return "Nothing to withdraw yet: your earnings appear here.";
  if (figures.current_balance < me.min_withdrawal_balance) {
    return `You can withdraw once your balance reaches ${money(me.min_withdrawal_balance, currency)}.`;
  }
  if (!me.payout_method) return "Add a payout method below to withdraw.";
  return null;
}

function renderBalances(me) {
  const balances = Object.entries(me.balances || {});
  if (!balances.length) balances.push([me.currency, null]);
  $("balances").replaceChildren(
    ...balances.map(([currency, figures], index) => {
      const blocker = withdrawBlocker(me, currency, figures);
      const reasonId = `withdraw-reason-${index}`;
      const button = h(
        "button",
        {
          type: "button",
          class: "primary",
          "data-currency": currency || "",
          disabled: blocker !== null,
          "aria-describedby": blocker ? reasonId : null,
        },
        figures && figures.current_balance > 0 ? `Withdraw ${money(figures.current_balance, currency)}` : "Withdraw",
      );
      button.addEventListener("click", () => withdraw(currency, button));
      return h(
        "div",
        { class: "balance" },
        h(
          "p",
          { class: "amount" },
          h("span", { class: "big", "data-balance": currency || "" }, money(figures ? figures.current_balance : 0, currency)),
          " available",
        ),
        figures
          ? h("p", { class: "muted" }, `Earned ${money(figures.total_earned, currency)} · paid out ${money(figures.total_paid, currency)}`)
          : null,
        button,
        blocker ? h("p", { id: reasonId, class: "hint" }, blocker) : null,
      );
    }),
  );
}

async function withdraw(currency, button) {
  button.disabled = true;
  $("withdraw-status").textContent = "Requesting your withdrawal…";
  try {
    const payout = await api("POST", "/v1/promoters/me/payouts", currency ? { currency } : {});
    $("withdraw-status").textContent = `Withdrawal of ${money(payout.amount, payout.currency)} requested: it is paid to your ${METHODS[payout.payout_method.method].name} account.`;
  } catch (error) {
    $("withdraw-status").textContent = explain(error);
  }
  await Promise.all([loadMe(), loadPayouts()]);
  // The button was drawn again: keyboard focus goes to what happened.
  $("withdraw-status").focus();
}

function renderPayouts(payouts) {
  if (!payouts.length) {
    $("payouts").replaceChildren(empty("No payouts yet. When you withdraw, your payouts are listed here."));
    return;
  }
  $("payouts").replaceChildren(
    table(
      "Payouts",
      ["Requested", "Amount", "To", "Status"],
      payouts.map((payout) =>
        h(
          "tr",
          {},
          h("td", { class: "date" }, when(payout.created)),
          h("td", { class: "num" }, money(payout.amount, payout.currency)),
          h("td", {}, METHODS[payout.payout_method.method].name),
          h(
            "td",
            {},
            payout.status === "paid" ? badge(`Paid ${when(payout.paid_at)}`, "good") : badge("Requested", "wait"),
          ),
        ),
      ),
    ),
  );
}

// ---- The payout method -------------------------------------------------------------------------

function renderMethod(me) {
  const current = me.payout_method;
  $("method-current").textContent = current
    ? `Payouts go to ${METHODS[current.method].name}: ${current.payment_address}`
    : "No payout method yet: add one to withdraw your earnings.";
  if (current && !$("method-form").dataset.touched) {
    $("method").value = current.method;
    $("address").value = current.payment_address;
  }
  $("address-hint").textContent = METHODS[$("method").value].hint;
}

function showAddressError(message) {
  const error = $("address-error");
  error.textContent = message || "";
  error.hidden = !message;
  if (message) $("address").setAttribute("aria-invalid", "true");
  else $("address").removeAttribute("aria-invalid");
}

async function saveMethod(event) {
  event.preventDefault();
  $("method-form").dataset.touched = "true";
  showAddressError(null);
  $("method-status").textContent = "Saving…";
  try {
    // The API checks the address for its method; its messages are shown as they are.
    state.me = await api("PATCH", "/v1/promoters/me/payout-method", {
      method: $("method").value,
      payment_address: $("address").value,
    });
    $("method-status").textContent = "Payout method saved.";
    delete $("method-form").dataset.touched;
    renderMethod(state.me);
    renderBalances(state.me);
  } catch (error) {
    $("method-status").textContent = "";
    if (error instanceof ApiError && error.field && error.field.startsWith("payment_address")) {
      showAddressError(error.message);
      $("address").focus();
    } else {
      $("method-status").textContent = explain(error);
    }
  }
}

// ---- Referrals and rewards ---------------------------------------------------------------------

const REFERRAL_STATUS = {
  signup: ["Signed up", "wait"],
  verified: ["Verified", "wait"],
  converted: ["Paying customer", "good"],
  completed: ["Completed", "good"],
};

const REWARD_STATUS = {
  held: ["On hold", "wait"],
  pending: ["Being paid", "wait"],
  credited: ["Earned", "good"],
  failed: ["Delayed", "bad"],
  reversed: ["Reversed", "bad"],
};

const REASONS = {
  signup: "Sign-up",
  verified: "Verified identity",
  paid_threshold: "Paid threshold reached",
  each_invoice: "Invoice paid",
  completion: "Completed",
};

// Why a held reward waits, in the promoter's words. Fraud checks say only that a person looks.
function holdText(hold, reward) {
  switch (hold) {
    case "verification":
      return "Waits for the referred customer's identity check.";
    case "min_referrals":
      return "Unlocks once you have enough qualified referrals.";
    case "holding_period":
      return reward.due_at ? `In the holding period until ${when(reward.due_at)}.` : "In the holding period.";
    case "awaiting_approval":
      return "Waits for the program team's approval.";
    case "budget_exhausted":
      return "The program's budget is used up for now; the team will review it.";
    case "earnings_cap_reached":
      return "You reached this program's earnings limit; the team will review it.";
    case "promoter_suspended":
      return "Your account is on hold.";
    default:
      return "Under review by the program team.";
  }
}

function rewardDetails(reward) {
  if (reward.reverses) return "Taken back after a refund.";
  if (reward.status === "held") return (reward.holds || []).map((hold) => holdText(hold, reward)).join(" ");
  if (reward.status === "reversed") return reward.denial ? `Not approved: ${reward.denial}` : "Reversed after a refund.";
  if (reward.status === "failed") return "The payment is being retried.";
  if (reward.reduced) return "Reduced after a refund.";
  if (reward.status === "credited" && reward.delivery === "payout") return "Added to your balance.";
  if (reward.status === "credited") return "Credited to your account.";
  return "";
}

function renderReferrals(referrals) {
  if (!referrals.length) {
    $("referrals").replaceChildren(empty("No referrals yet. Share your link: people who sign up through it appear here."));
    return;
  }
  const earnedBy = new Map();
  for (const reward of state.rewards) {
    if (reward.status === "reversed") continue;
    const sums = earnedBy.get(reward.referral_id) || new Map();
    const key = `${reward.kind}:${reward.currency}`;
    sums.set(key, (sums.get(key) || 0) + reward.amount);
    earnedBy.set(reward.referral_id, sums);
  }
  $("referrals").replaceChildren(
    table(
      "Referrals",
      ["Who", "Joined", "Status", "You earned"],
      referrals.map((referral) => {
        const [label, tone] = REFERRAL_STATUS[referral.status] || [referral.status, "wait"];
        const sums = [...(earnedBy.get(referral.referral_id) || new Map())].map(([key, amount]) => {
          const [kind, currency] = key.split(":");
          return money(amount, currency === "null" ? null : currency, kind);
        });
        return h(
          "tr",
          {},
          h("td", {}, referral.email || referral.user_id),
          h("td", { class: "date" }, when(referral.created)),
          h("td", {}, badge(label, tone)),
          h("td", { class: "num" }, sums.length ? sums.join(" · ") : "—"),
        );
      }),
      FIRST_ROWS,
    ),
  );
}

function renderRewards(rewards) {
  if (!rewards.length) {
    $("rewards").replaceChildren(empty("No rewards yet. You earn when the people you refer sign up and pay."));
    return;
  }
  const referred = new Map(state.referrals.map((r) => [r.referral_id, r.email || r.user_id]));
  $("rewards").replaceChildren(
    table(
      "Rewards",
      ["Date", "For", "Amount", "Status", "Details"],
      rewards.map((reward) => {
        const [label, tone] = REWARD_STATUS[reward.status] || [reward.status, "wait"];
        const who = referred.get(reward.referral_id);
        const what = REASONS[reward.reason] || reward.reason;
        return h(
          "tr",
          { "data-reward": reward.id },
          h("td", { class: "date" }, when(reward.created)),
          h("td", {}, who ? `${what} · ${who}` : what, reward.program_name ? h("br") : null, reward.program_name ? h("span", { class: "muted" }, reward.program_name) : null),
          h("td", { class: "num" }, money(reward.amount, reward.currency, reward.kind)),
          h("td", {}, badge(label, tone)),
          h("td", { class: "details" }, rewardDetails(reward)),
        );
      }),
      FIRST_ROWS,
    ),
  );
}

// ---- Loading -----------------------------------------------------------------------------------

function renderMe(me) {
  $("who").textContent = `Signed in as ${me.email || me.user_id}`;
  if (me.status === "suspended") {
    $("who").textContent += " · Your account is on hold: your link takes no new sign-ups and withdrawals are paused.";
  }
  renderLink(me);
  renderBalances(me);
  renderMethod(me);
}

async function loadMe() {
  try {
    state.me = await api("GET", "/v1/promoters/me");
    renderMe(state.me);
  } catch (error) {
    $("withdraw-status").textContent = explain(error);
  }
}

async function loadPayouts() {
  try {
    renderPayouts((await api("GET", "/v1/promoters/me/payouts?limit=50")).items);
  } catch (error) {
    sectionError($("payouts"), error);
  }
}

function fatal(message) {
  $("content").hidden = true;
  $("fatal").hidden = false;
  $("fatal").replaceChildren(h("p", {}, message));
  $("who").textContent = "";
  $("main").removeAttribute("aria-busy");
}

async function load() {
  if (!state.token) {
    fatal("This page opens from your app's referral section: the link you followed has no session. Open it again from the app.");
    return;
  }
  // Every call at once: the page waits for the slowest, not for the sum.
  const requests = [
    api("GET", "/v1/promoters/me"),
    api("GET", "/v1/promoters/me/stats"),
    api("GET", "/v1/promoters/me/referrals?limit=100"),
    api("GET", "/v1/promoters/me/rewards?limit=100"),
    api("GET", "/v1/promoters/me/payouts?limit=50"),
  ];
  const [mine, stats, referrals, rewards, payouts] = await Promise.allSettled(requests);
  if (mine.status === "rejected") {
    fatal(explain(mine.reason));
    return;
  }
  const me = mine.value;
  state.me = me;
  $("fatal").hidden = true;
  $("content").hidden = false;
  renderMe(me);
  if (payouts.status === "fulfilled") renderPayouts(payouts.value.items);
  else sectionError($("payouts"), payouts.reason);
  if (stats.status === "fulfilled") {
    renderCards(me, stats.value);
    renderChart(stats.value, mainCurrency(me, stats.value));
  } else {
    $("stats-error").hidden = false;
    $("stats-error").textContent = explain(stats.reason);
    sectionError($("chart"), stats.reason);
  }
  state.referrals = referrals.status === "fulfilled" ? referrals.value.results : [];
  state.rewards = rewards.status === "fulfilled" ? rewards.value.items : [];
  if (referrals.status === "fulfilled") renderReferrals(state.referrals);
  else sectionError($("referrals"), referrals.reason);
  if (rewards.status === "fulfilled") renderRewards(state.rewards);
  else sectionError($("rewards"), rewards.reason);
  $("main").removeAttribute("aria-busy");
}

function start() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  state.token = fragment.get("token");
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);

  $("copy").addEventListener("click", copyLink);
  $("method").addEventListener("change", () => {
    $("address-hint").textContent = METHODS[$("method").value].hint;
    showAddressError(null);
  });
  $("method-form").addEventListener("submit", saveMethod);
  window.addEventListener("message", (event) => {
    if (event.source === window.parent && event.data && event.data.type === "referral-portal:token") {
      state.token = String(event.data.token);
      load();
    }
  });
  if (window.parent !== window && "ResizeObserver" in window) {
    new ResizeObserver(() =>
      tellParent({ type: "referral-portal:height", height: document.documentElement.scrollHeight }),
    ).observe(document.body);
  }
  load();
}

start();
