// The dashboard in a real browser (the system Chromium, driven by Playwright's library),
// against a running platform at ORATIO_URL. Screenshots of every step go to
// ORATIO_SCREENSHOTS/<test>/.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";

const URL = process.env.ORATIO_URL ?? "http://127.0.0.1:8600";
const OUT = process.env.ORATIO_SCREENSHOTS ?? "output/browser";
const CHROMIUM = process.env.ORATIO_CHROMIUM ?? "/usr/bin/chromium";
const PASSWORD = "Correct-Horse-Battery-9";
const SOP = `Front desk procedure for Bright Smile Dental
Tone: warm, professional and concise.

1. Greet the caller and ask how you can help.
2. If they want to book an appointment, collect their full name, phone number and preferred date.
3. Confirm the booking details back to the caller.

Escalate to a human if the caller reports severe pain, bleeding or swelling.
Never give a medical diagnosis.`;

let browser;
before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
});
after(async () => browser?.close());

/** A page that fails the test on any script error, and a numbered screenshot taker. */
async function open(folder, viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  mkdirSync(`${OUT}/${folder}`, { recursive: true });
  let n = 0;
  const shot = (name) => page.screenshot({ path: `${OUT}/${folder}/${String(++n).padStart(2, "0")}-${name}.png`, fullPage: true });
  return { page, shot, errors, context };
}

/** The latest mail to `to` matching `pattern`, from the local outbox. */
async function mailed(to, pattern) {
  for (let i = 0; i < 50; i++) {
    const { mails } = await (await fetch(`${URL}/local/outbox?to=${encodeURIComponent(to)}`)).json();
    const found = mails.map((m) => m.text.match(pattern)).find(Boolean);
    if (found) return found[1];
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no mail to ${to} matching ${pattern}`);
}

async function call(method, path, { token, json, form } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (json) headers["content-type"] = "application/json";
  const response = await fetch(URL + path, { method, headers, body: json ? JSON.stringify(json) : form });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** A text agent from `config` and one document, live, with a key: `{ agent, key }`. */
async function liveAgent(token, config, document) {
  const form = new FormData();
  form.append("config", JSON.stringify({ kind: "text", sop: SOP, ...config }));
  form.append("documents", new Blob([document]), "notes.txt");
  const agent = (await call("POST", "/v1/agents", { token, form })).body.agent_id;
  for (let i = 0; i < 600 && (await call("GET", `/v1/agents/${agent}`, { token })).body.status !== "active"; i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const key = (await call("POST", `/v1/agents/${agent}/keys`, { token, json: { name: "site" } })).body.secret;
  return { agent, key };
}

/** A customer's message to the agent, with its key; the reply. */
async function say(agent, key, body) {
  const response = await fetch(`${URL}/v1/agents/${agent}/messages`, {
    method: "POST", headers: { "x-api-key": key, "content-type": "application/json" }, body: JSON.stringify(body),
  });
  return response.json();
}

/** Signs in through the dashboard's form and waits for the agents list to show `agentName`. */
async function signIn(page, email, agentName) {
  await page.goto(`${URL}/#/signin`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("link", { name: agentName }).waitFor();
}

/** Registers (or joins with `invitation_code`), confirms and signs in through the API. */
async function account(email, extra) {
  const registered = await call("POST", "/v1/auth/register", { json: { email, password: PASSWORD, ...extra } });
  assert.equal(registered.status, 201, JSON.stringify(registered.body));
  const code = await mailed(email, /code is (\d{6})/);
  assert.equal((await call("POST", "/v1/auth/confirm", { json: { email, code } })).status, 200);
  const login = await call("POST", "/v1/auth/login", { json: { email, password: PASSWORD } });
  return login.body.access_token;
}

test("a tenant goes from sign-up to a working agent without writing code", async () => {
  const { page, shot, errors } = await open("tenant-journey");
  const email = `ada.${Date.now()}@example.com`;

  await page.goto(`${URL}/#/signup`);
  await page.getByLabel("Work email").fill(email);
  await page.getByLabel("Password").fill("short");
  await page.getByRole("button", { name: "Create account" }).click();
  await page.getByText("Use at least 12 characters.").waitFor();
  await shot("sign-up-validation");
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByLabel("Organization name").fill("Bright Smile Dental");
  await shot("sign-up");
  await page.getByRole("button", { name: "Create account" }).click();

  await page.waitForURL(/#\/confirm/);
  await page.getByRole("button", { name: "Show the local outbox" }).click();
  await page.getByRole("button", { name: /Use code \d{6}/ }).click();
  await shot("confirm-with-outbox");
  await page.getByRole("button", { name: "Confirm" }).click();

  await page.waitForURL(/#\/signin/);
  await page.getByText("Your email is confirmed").waitFor();
  await page.getByLabel("Password").fill(PASSWORD);
  await shot("sign-in");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Agents" }).waitFor();
  await page.getByText("No agents yet.").waitFor();
  await shot("agents-empty");

  await page.getByRole("link", { name: "New agent" }).click();
  await page.getByLabel("Name", { exact: true }).fill("Front desk");
  await page.getByLabel("Standard operating procedure").fill(SOP);
  await page.getByLabel("Knowledge documents").setInputFiles([
    { name: "faq.md", mimeType: "text/markdown", buffer: Buffer.from("# Opening hours\nWe open Monday to Friday 8am to 6pm and Saturdays 9am to 1pm.\n") },
    { name: "prices.csv", mimeType: "text/csv", buffer: Buffer.from("service,price\nCheck-up,45\nWhitening,250\n") },
  ]);
  await page.getByLabel("Handoff conditions (optional)").fill("the caller asks for a refund");
  await shot("new-agent");
  await page.getByRole("button", { name: "Create agent" }).click();

  await page.waitForURL(/#\/agents\/agt_/);
  await page.getByText("Your agent is live").waitFor({ timeout: 60_000 });
  for (const step of ["Check the SOP", "Index the documents", "Write and review the agent", "Deploy", "Go live"]) {
    await page.locator("ol.progress li", { hasText: step }).first().waitFor();
  }
  await shot("agent-active");

  await page.getByRole("link", { name: "API keys" }).click();
  await page.getByLabel("New key name").fill("Website widget");
  await page.getByRole("button", { name: "Create key" }).click();
  const secret = await page.locator("#new-secret").textContent();
  assert.match(secret, /^ora_[A-Za-z0-9]{40}$/);
  await page.getByRole("button", { name: "Copy" }).waitFor();
  await shot("key-created");

  await page.getByRole("link", { name: "Try it" }).click();
  await page.getByLabel("Your message").fill("What time do you open on Saturdays?");
  await page.getByRole("button", { name: "Send" }).click();
  const answer = page.locator("ol.chat li.agent").first();
  await answer.waitFor();
  assert.match(await answer.textContent(), /9am/);
  await answer.getByText("faq.md").first().waitFor();
  await shot("try-answer-with-source");
  await page.getByLabel("Your message").fill("I'd like to book a check-up please, I'm Ada Lovelace and my number is 020 7946 0000");
  await page.getByRole("button", { name: "Send" }).click();
  const readBack = page.locator("ol.chat li.agent").nth(1);
  await readBack.waitFor();
  assert.match(await readBack.textContent(), /Ada Lovelace/);

  await page.getByRole("link", { name: "Conversations" }).click();
  await page.locator("table.list tbody tr").first().getByRole("link").click();
  const transcript = page.getByRole("list", { name: "Transcript" });
  await transcript.getByText("What time do you open on Saturdays?", { exact: true }).waitFor();
  assert.equal(await transcript.locator(":scope > li").count(), 4);
  // What the agent collected, and the tools behind each reply.
  const collected = page.getByRole("region", { name: "Collected details" });
  assert.match(await collected.textContent(), /full name\s*Ada Lovelace/);
  assert.match(await collected.textContent(), /020 7946 0000/);
  await transcript.getByText(/Tools used \(search_knowledge/).first().waitFor();
  await transcript.getByText(/Tools used \(save_details/).first().click();
  await transcript.getByText(/"full_name": "Ada Lovelace"|"full name": "Ada Lovelace"/).first().waitFor();
  await shot("conversation-transcript");

  await page.getByRole("link", { name: "Endpoints" }).click();
  await page.getByText("/messages").first().waitFor();
  await shot("endpoints");

  await page.getByRole("link", { name: "API keys" }).click();
  await page.getByRole("button", { name: "Revoke" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Revoke key" }).click();
  await page.locator("table .badge.revoked").waitFor();
  assert.equal((await call("POST", `/v1/agents/${page.url().split("/agents/")[1].split("/")[0]}/messages`, {})).status, 401);
  await shot("key-revoked");

  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByRole("link", { name: "Overview" }).click();
  await page.getByText("Your agent is live").waitFor();
  await shot("agent-on-a-phone");
  await page.setViewportSize({ width: 1280, height: 900 });

  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/#\/signin/);
  assert.equal(await page.evaluate(() => sessionStorage.getItem("oratio.refresh")), null);
  await page.goto(`${URL}/#/agents`);
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  await shot("signed-out");
  assert.deepEqual(errors, []);
});

test("a viewer sees no write controls, and the API refuses a viewer's writes", async () => {
  const stamp = Date.now();
  const admin = await account(`grace.${stamp}@example.com`, { organization_name: "Viewer Clinic" });
  const form = new FormData();
  form.append("config", JSON.stringify({ name: "Reception", kind: "text", greeting: "Hello!" }));
  const agent = (await call("POST", "/v1/agents", { token: admin, form })).body.agent_id;
  const viewerEmail = `vic.${stamp}@example.com`;
  assert.equal((await call("POST", "/v1/members", { token: admin, json: { email: viewerEmail, role: "viewer" } })).status, 201);
  const invitation = await mailed(viewerEmail, /invitation code:\s+(\S+)/);
  const viewer = await account(viewerEmail, { invitation_code: invitation });

  const { page, shot, errors } = await open("viewer");
  await page.goto(`${URL}/#/signin`);
  await page.getByLabel("Email").fill(viewerEmail);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("link", { name: "Reception" }).waitFor();
  assert.equal(await page.getByRole("link", { name: "New agent" }).count(), 0);
  assert.equal(await page.getByRole("link", { name: "Members" }).count(), 0);
  await shot("agents-as-viewer");

  await page.getByRole("link", { name: "Reception" }).click();
  await page.getByRole("heading", { name: "Reception" }).waitFor();
  for (const action of ["Pause", "Resume", "Redeploy", "Delete"]) {
    assert.equal(await page.getByRole("button", { name: action }).count(), 0, action);
  }
  await shot("agent-as-viewer");
  await page.getByRole("link", { name: "Configuration" }).click();
  await page.getByLabel("Name").waitFor();
  assert.equal(await page.getByLabel("Name").isDisabled(), true);
  assert.equal(await page.getByRole("button", { name: "Save changes" }).count(), 0);
  await shot("configuration-as-viewer");
  await page.getByRole("link", { name: "API keys" }).click();
  await page.getByText("Admins create and revoke keys.").waitFor();
  assert.equal(await page.getByRole("button", { name: "Create key" }).count(), 0);
  await shot("keys-as-viewer");
  await page.goto(`${URL}/#/agents/new`);
  await page.getByText("Only operators and admins create agents.").waitFor();
  await shot("new-agent-refused");

  // Forced through the API with the viewer's own token, every write is refused.
  const forced = [
    await call("POST", "/v1/agents", { token: viewer, form: (() => { const f = new FormData(); f.append("config", JSON.stringify({ name: "x", kind: "text" })); return f; })() }),
    await call("PATCH", `/v1/agents/${agent}`, { token: viewer, json: { name: "stolen" } }),
    await call("POST", `/v1/agents/${agent}/keys`, { token: viewer, json: { name: "k" } }),
    await call("DELETE", `/v1/agents/${agent}`, { token: viewer }),
    await call("POST", "/v1/members", { token: viewer, json: { email: "x@example.com", role: "admin" } }),
  ];
  for (const answer of forced) {
    assert.equal(answer.status, 403, JSON.stringify(answer.body));
    assert.ok(answer.body.code && answer.body.request_id, JSON.stringify(answer.body));
  }
  assert.equal((await call("GET", `/v1/agents/${agent}`, { token: admin })).body.name, "Reception");
  assert.deepEqual(errors, []);
});

test("a tenant talks to a voice agent from Try it, through the microphone", async () => {
  const stamp = Date.now();
  const admin = await account(`voice.${stamp}@example.com`, { organization_name: "Voice Clinic" });
  const form = new FormData();
  form.append("config", JSON.stringify({ name: "Phone desk", kind: "voice", sop: SOP }));
  form.append("documents", new Blob(["# Opening hours\nWe open Monday to Friday 8am to 6pm and Saturdays 9am to 1pm.\n"], { type: "text/markdown" }), "faq.md");
  const agent = (await call("POST", "/v1/agents", { token: admin, form })).body.agent_id;
  for (let i = 0; i < 600; i++) {
    const { body } = await call("GET", `/v1/agents/${agent}`, { token: admin });
    if (body.status === "active") break;
    assert.equal(body.status, "creating", JSON.stringify(body));
    await new Promise((r) => setTimeout(r, 100));
  }
  const key = (await call("POST", `/v1/agents/${agent}/keys`, { token: admin, json: { name: "talk" } })).body.secret;

  // A browser whose microphone says the caller's question once.
  const voiceBrowser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
      `--use-file-for-fake-audio-capture=${process.env.ORATIO_CALLER_WAV}%noloop`, "--autoplay-policy=no-user-gesture-required"],
  });
  try {
    const context = await voiceBrowser.newContext({ viewport: { width: 1280, height: 900 }, permissions: ["microphone"] });
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (error) => errors.push(error.message));
    mkdirSync(`${OUT}/talk`, { recursive: true });
    const shot = (name) => page.screenshot({ path: `${OUT}/talk/${name}.png`, fullPage: true });
    await page.goto(`${URL}/#/signin`);
    await page.getByLabel("Email").fill(`voice.${stamp}@example.com`);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("link", { name: "Phone desk" }).click();
    await page.getByRole("link", { name: "Try it" }).first().click();
    await page.getByLabel("API key of this agent").fill(key);
    await page.getByRole("button", { name: "Talk" }).click();
    await page.getByRole("button", { name: "Hang up" }).waitFor();
    const caller = page.locator("ol.chat li.customer").first();
    await caller.getByText(/saturday/i).waitFor({ timeout: 30_000 });
    const answer = page.locator("ol.chat li.agent").first();
    await answer.getByText(/9am/).waitFor({ timeout: 30_000 });
    await page.getByRole("status").getByText("Listening…").waitFor({ timeout: 30_000 });
    await shot("talk-answered");
    await page.getByRole("button", { name: "Hang up" }).click();
    await page.getByRole("status").getByText("Call ended.").waitFor({ timeout: 15_000 });
    await shot("talk-ended");
    assert.deepEqual(errors, []);

    // The call is a voice session with both turns, and its audio was played: the agent's
    // chunks were marked as heard, so its stored turn is whole, not cut.
    const { body } = await call("GET", `/v1/agents/${agent}/sessions`, { token: admin });
    const session = body.sessions[0];
    assert.equal(session.channel, "voice");
    const transcript = (await call("GET", `/v1/agents/${agent}/sessions/${session.session_id}`, { token: admin })).body;
    assert.equal(transcript.turns.length, 2, JSON.stringify(transcript));
    assert.match(transcript.turns[1].text, /9am/);
    assert.equal(transcript.turns[1].interrupted, undefined);
  } finally {
    await voiceBrowser.close();
  }
});

test("an operator sees a handoff arrive, acknowledges it and resolves it", async () => {
  const stamp = Date.now();
  const email = `lead.${stamp}@example.com`;
  const admin = await account(email, { organization_name: "Handoff Dental" });
  const { agent, key } = await liveAgent(admin, { name: "Front desk", handoff_conditions: ["the caller asks for a refund"] },
    "Opening hours: Monday to Friday 8:00 to 17:00. A check-up costs 65 euros.");

  const { page, shot, errors } = await open("handoffs");
  await signIn(page, email, "Front desk");
  await page.getByRole("link", { name: /^Handoffs/ }).click();
  await page.getByText("Nothing unread").waitFor();

  // A customer asks for their money back: the badge counts it and the list shows it, live.
  const asked = await say(agent, key, { message: "You charged me twice for the check-up, I want a refund of one of them." });
  assert.equal(asked.status, "handoff_requested");
  await page.locator("nav .count", { hasText: "1" }).waitFor();
  const item = page.locator("ul.handoffs li.unread");
  await item.waitFor();
  await shot("unread-handoff");

  await item.getByRole("button", { name: "Acknowledge" }).click();
  await page.getByText("Nothing unread").waitFor();
  assert.equal(await page.locator("nav .count").isHidden(), true);
  await page.getByRole("link", { name: "Show all" }).click();
  const acknowledged = page.locator("ul.handoffs li.acknowledged");
  await acknowledged.getByText(`Acknowledged by ${email}`).waitFor();
  await acknowledged.getByLabel("Outcome").fill("Refunded the second charge by bank transfer.");
  await acknowledged.getByRole("button", { name: "Resolve" }).click();
  await page.locator("ul.handoffs li.resolved").getByText("Refunded the second charge").waitFor();
  await shot("resolved-handoff");

  // The lead stops the emails for themself, on Members.
  await page.getByRole("link", { name: "Members" }).click();
  const box = page.getByLabel(`Email handoffs to ${email}`);
  assert.equal(await box.isChecked(), true);
  await box.uncheck();
  await page.getByText(`Handoffs are no longer emailed to ${email}.`).waitFor();
  const members = await call("GET", "/v1/members", { token: admin });
  assert.equal(members.body.members.find((m) => m.email === email).handoff_emails, false);
  assert.deepEqual(errors, []);
});

test("an operator watches a conversation appear on Live, grow, and leave when it ends", async () => {
  const stamp = Date.now();
  const email = `watch.${stamp}@example.com`;
  const admin = await account(email, { organization_name: "Live Dental" });
  const { agent, key } = await liveAgent(admin, { name: "Reception" }, "We are open Monday to Friday, 8:00 to 17:00.");

  const { page, shot, errors } = await open("live");
  await signIn(page, email, "Reception");
  await page.getByRole("link", { name: "Live", exact: true }).click();
  await page.getByText("No conversation is going on right now.").waitFor();

  const first = await say(agent, key, { message: "hello, are you open on fridays?", customer: { name: "Tomasz" } });
  const row = page.locator(`tr[data-session="${first.session_id}"]`);
  await row.getByText("Tomasz").waitFor();
  await row.locator("td.turns", { hasText: "2" }).waitFor();
  await say(agent, key, { message: "and until what time", session_id: first.session_id });
  await row.locator("td.turns", { hasText: "4" }).waitFor();
  await shot("live-session");
  await fetch(`${URL}/v1/agents/${agent}/sessions/${first.session_id}/end`, { method: "POST", headers: { "x-api-key": key } });
  await page.getByText("No conversation is going on right now.").waitFor();
  await page.getByRole("list", { name: "Just ended" }).getByText("ended (customer)").waitFor();
  assert.deepEqual(errors, []);
});

/** The customer's application following a session (SSE with its key): resolves with the
 *  first `turn` event of `role`. */
async function followUntil(agent, key, session, role) {
  const response = await fetch(`${URL}/v1/agents/${agent}/sessions/${session}/events`, { headers: { "x-api-key": key } });
  assert.equal(response.status, 200);
  const reader = response.body.getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    assert.ok(!done, `the stream ended before a ${role} turn`);
    buffer += new TextDecoder().decode(value);
    for (const block of buffer.split("\n\n").slice(0, -1)) {
      const data = block.split("\n").find((l) => l.startsWith("data:"));
      if (block.includes("event: turn") && data) {
        const turn = JSON.parse(data.slice(5));
        if (turn.role === role) { reader.cancel(); return turn; }
      }
    }
    buffer = buffer.slice(buffer.lastIndexOf("\n\n") + 2);
  }
}

test("an operator takes a handed-over conversation, writes to the customer and hands it back, through a dropped connection", async () => {
  const stamp = Date.now();
  const email = `desk.${stamp}@example.com`;
  const admin = await account(email, { organization_name: "Takeover Bikes" });
  const { agent, key } = await liveAgent(admin, { name: "Workshop", handoff_conditions: ["the customer wants their money back"] },
    "Repairs: a puncture costs 15 euros, a brake service 40 euros. We open at 9:00.");

  const { page, shot, errors } = await open("takeover");
  await signIn(page, email, "Workshop");
  await page.getByRole("link", { name: "Live", exact: true }).click();
  const first = await say(agent, key, { message: "hi there, how much is a brake service", customer: { id: "ines-77", name: "Ines", attributes: { plan: "gold" } } });
  const session = first.session_id;
  await page.locator(`tr[data-session="${session}"]`).getByRole("link").click();
  await page.locator('dl.customer dd', { hasText: "gold" }).waitFor();
  const transcript = page.getByRole("list", { name: "Transcript" });
  await transcript.locator("li.agent").first().waitFor();

  // The handoff: the badge, and its link back to this console.
  const asked = await say(agent, key, { message: "the brakes still rub after your service, I want my money back", session_id: session });
  assert.equal(asked.status, "handoff_requested");
  await page.locator("nav .count", { hasText: "1" }).waitFor();
  await page.locator(".notice", { hasText: "Handoff" }).waitFor();
  // The lead was emailed with a link; on Handoffs they acknowledge it and come back here.
  assert.equal(await mailed(email, /Open it: \S+\/#\/sessions\/(\S+)/), session);
  await page.getByRole("link", { name: /^Handoffs/ }).click();
  await page.locator("ul.handoffs li.unread").getByRole("button", { name: "Acknowledge" }).click();
  await page.getByText("Nothing unread").waitFor();
  await page.getByRole("link", { name: "Show all" }).click();
  await page.locator("ul.handoffs li.acknowledged").getByRole("link", { name: "Open the conversation" }).click();
  await page.getByRole("button", { name: "Take over" }).click();
  await page.locator(".badge.taken_over").first().waitFor();
  await transcript.locator("li.system", { hasText: "took the conversation over" }).waitFor();
  assert.doesNotMatch(await page.locator("main").innerText(), /\b(null|undefined)\b/);

  // What the operator writes reaches the customer's stream.
  const heard = followUntil(agent, key, session, "operator");
  await page.getByLabel("Message to the customer").fill("Hi Ines, I'm Piet. Bring it by tomorrow and we'll adjust it for free.");
  await page.getByRole("button", { name: "Send" }).click();
  assert.match((await heard).text, /adjust it for free/);
  await transcript.locator("li.operator", { hasText: "Piet" }).waitFor();

  // The live connection drops: the page says so, and what came meanwhile is there once it is back.
  await page.evaluate(() => import("/api.js").then((api) => api.socket.drop()));
  await page.getByText("Offline: reconnecting").waitFor();
  const held = await say(agent, key, { message: "great, see you at 9 then", session_id: session });
  assert.equal(held.status, "taken_over");
  assert.equal(held.reply, "");
  await page.getByText("Offline: reconnecting").waitFor({ state: "hidden" });
  await transcript.locator("li.customer", { hasText: "see you at 9" }).waitFor();
  await shot("taken-over");

  await page.getByRole("button", { name: "Hand back to the agent" }).click();
  await transcript.locator("li.system", { hasText: "handed the conversation back" }).waitFor();
  const back = await say(agent, key, { message: "oh and how much is a puncture?", session_id: session });
  assert.equal(back.status, "active");
  assert.ok(back.reply.length > 0);
  await transcript.locator("li.agent").last().waitFor();

  // It ends: History finds it by its filters, and Analytics counts it, in figures and charts.
  await fetch(`${URL}/v1/agents/${agent}/sessions/${session}/end`, { method: "POST", headers: { "x-api-key": key } });
  await page.getByRole("link", { name: "History", exact: true }).click();
  await page.locator(`tr[data-session="${session}"]`).waitFor();
  await page.getByLabel("Handoff", { exact: true }).selectOption("no");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByText("No ended conversation matches these filters.").waitFor();
  await page.getByLabel("Handoff", { exact: true }).selectOption("yes");
  await page.getByLabel("Customer id").fill("ines-77");
  await page.getByLabel("Channel").selectOption("text");
  await page.getByRole("button", { name: "Search" }).click();
  const found = page.locator(`tr[data-session="${session}"]`);
  await found.waitFor();
  assert.match(await found.innerText(), /money back/);
  await shot("history");
  await page.getByRole("link", { name: "Analytics", exact: true }).click();
  await page.locator('dd[data-figure="Sessions"]', { hasText: "1" }).waitFor();
  assert.equal(await page.locator('dd[data-figure="Handoff rate"]').innerText(), "100 %");
  const charted = await page.evaluate(() => {
    const perDay = window.Chart.getChart("sessions-per-day");
    const reasons = window.Chart.getChart("handoff-reasons");
    return { sessions: perDay.data.datasets.flatMap((d) => d.data).reduce((a, b) => a + b, 0), reasons: reasons.data.datasets[0].data };
  });
  assert.deepEqual(charted, { sessions: 1, reasons: [1] });
  await page.locator("ul.unanswered li", { hasText: "money back" }).waitFor();
  await shot("analytics");
  assert.deepEqual(errors, []);
});

test("an admin gives a voice agent a phone number and registers a tool, and sees its executions", async () => {
  const stamp = Date.now();
  const email = `it.${stamp}@example.com`;
  const admin = await account(email, { organization_name: "Phone Dental" });
  const { agent: textAgent } = await liveAgent(admin, { name: "Chat desk" }, "A check-up costs 65 euros.");
  const form = new FormData();
  form.append("config", JSON.stringify({ name: "Phone desk", kind: "voice" }));
  assert.equal((await call("POST", "/v1/agents", { token: admin, form })).status, 201);

  const { page, shot, errors } = await open("integrations");
  await signIn(page, email, "Chat desk");
  await page.getByRole("link", { name: "Phone numbers" }).click();
  await page.getByText("No phone number answers an agent yet.").waitFor();
  // Only voice agents are offered; a number without its country code is caught first.
  assert.deepEqual(await page.getByLabel("Agent").locator("option").allTextContents(), ["Phone desk"]);
  await page.getByLabel("Number (with its country code)").fill("020 7946 0958");
  await page.getByLabel("Twilio account SID").fill("AC0123456789abcdef0123456789abcdef");
  await page.getByLabel("Twilio auth token").fill("f0e1d2c3b4a5968778695a4b3c2d1e0f");
  await page.getByRole("button", { name: "Assign" }).click();
  await page.getByText("Write the number with its country code").waitFor();
  await page.getByLabel("Number (with its country code)").fill("+44 20 7946 0958");
  await page.getByRole("button", { name: "Assign" }).click();
  await page.locator('tr[data-number="+442079460958"]').waitFor();
  await page.getByText("/telephony/twilio/voice").first().waitFor();
  await shot("number-assigned");
  const numbers = await call("GET", "/v1/phone-numbers", { token: admin });
  assert.equal(numbers.body.numbers[0].number, "+442079460958");
  assert.ok(!JSON.stringify(numbers.body).includes("f0e1d2c3b4a5968778695a4b3c2d1e0f"), "the auth token is never shown");

  await page.getByRole("link", { name: "Tools" }).click();
  await page.getByLabel("Name (what the model calls it)").fill("booking_lookup");
  await page.getByLabel("What it does, and when to use it").fill("Look up a patient's next appointment. Use it when a patient asks when their appointment is.");
  await page.getByLabel("Endpoint URL").fill("http://169.254.169.254/latest/meta-data/");
  await page.getByRole("button", { name: "Add tool" }).click();
  await page.getByText("loopback, link-local or private").waitFor();
  await page.getByLabel("Endpoint URL").fill("http://127.0.0.1:9/webhook/booking");
  await page.getByRole("button", { name: "Add tool" }).click();
  await page.locator("tr[data-tool]").getByText("booking_lookup").waitFor();
  await page.getByText("Its signing secret (shown once)").waitFor();
  await shot("tool-added");
  const tools = await call("GET", "/v1/tools", { token: admin });
  assert.equal(tools.body.tools[0].name, "booking_lookup");
  // The agent calls it for a patient; nothing listens on port 9, so the call fails after its
  // retries, the patient is told, and the executions list says so.
  const key = (await call("POST", `/v1/agents/${textAgent}/keys`, { token: admin, json: { name: "site" } })).body.secret;
  const reply = await say(textAgent, key, { message: "Hi, when is my next appointment? The number is 4471." });
  assert.match(reply.reply, /couldn't check that just now/);
  await page.reload();
  const row = page.locator("tr[data-execution]").first();
  await row.getByText("failed").waitFor();
  await row.getByText("unreachable").waitFor();
  assert.equal(await row.locator("td").nth(3).textContent(), "3");
  await shot("executions");
  assert.deepEqual(errors, []);
});
