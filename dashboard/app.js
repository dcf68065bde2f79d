// The tenant dashboard: every page of it, on the public REST API and dashboard WebSocket.

import * as api from "./api.js";
import { startCall, voiceUrl } from "./voice.js";
import { badge, confirmDialog, copyButton, describe, field, h, invalid, loading, notice, when, wireForm } from "./ui.js";

const app = document.getElementById("app");
const nav = document.getElementById("nav");
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
const DOCUMENT_TYPES = [".txt", ".md", ".html", ".htm", ".csv", ".pdf"];
const MAX_DOCUMENT_BYTES = 10 * 1024 * 1024;
const MAX_DOCUMENTS = 20;

/** Keys created in this tab, by agent: a secret is shown once, and the try panel may use it. */
const freshKeys = new Map();

function go(path) {
  if (location.hash === `#${path}`) render();
  else location.hash = path;
}

function page(title, ...content) {
  document.title = `${title} · Oratio`;
  return h("section", { class: "page", "aria-labelledby": "page-title" }, h("h1", { id: "page-title", tabindex: "-1" }, title), ...content);
}

// ------------------------------------------------------------------ identity

function signUpView() {
  const email = h("input", { type: "email", autocomplete: "email", required: true });
  const password = h("input", { type: "password", autocomplete: "new-password", required: true, minlength: 12 });
  const organization = h("input", { type: "text", autocomplete: "organization" });
  const invitation = h("input", { type: "text", autocomplete: "off" });
  const form = h("form", { novalidate: true },
    field("Work email", email),
    field("Password", password, "At least 12 characters."),
    field("Organization name", organization, "Leave empty when you have an invitation code."),
    field("Invitation code (optional)", invitation),
    h("button", { type: "submit", class: "primary" }, "Create account"));
  wireForm(form, {
    check: () => [
      !EMAIL.test(email.value.trim()) && [email, "Enter an email address such as ada@example.com."],
      password.value.length < 12 && [password, "Use at least 12 characters."],
      !organization.value.trim() && !invitation.value.trim() && [organization, "Name your organization, or give an invitation code."],
    ].filter(Boolean),
    submit: async () => {
      const body = { email: email.value.trim(), password: password.value };
      if (invitation.value.trim()) body.invitation_code = invitation.value.trim();
      else body.organization_name = organization.value.trim();
      await api.request("POST", "/v1/auth/register", { json: body, auth: false });
      go(`/confirm?email=${encodeURIComponent(body.email)}`);
    },
  });
  return page("Create your account", form, h("p", {}, "Already registered? ", h("a", { href: "#/signin" }, "Sign in")));
}

function confirmView(params) {
  const email = h("input", { type: "email", autocomplete: "email", value: params.get("email") ?? "" });
  const code = h("input", { type: "text", inputmode: "numeric", autocomplete: "one-time-code" });
  const form = h("form", { novalidate: true },
    field("Email", email),
    field("Verification code", code, "We emailed it to you."),
    h("button", { type: "submit", class: "primary" }, "Confirm"));
  wireForm(form, {
    check: () => [
      !EMAIL.test(email.value.trim()) && [email, "Enter the email you registered with."],
      !code.value.trim() && [code, "Enter the code from the email."],
    ].filter(Boolean),
    submit: async () => {
      await api.request("POST", "/v1/auth/confirm", { json: { email: email.value.trim(), code: code.value.trim() }, auth: false });
      go(`/signin?email=${encodeURIComponent(email.value.trim())}&confirmed=1`);
    },
  });
  const resendStatus = h("span", { role: "status" });
  const resend = h("button", { type: "button", class: "secondary" }, "Send a new code");
  resend.addEventListener("click", async () => {
    resendStatus.textContent = "";
    try {
      await api.request("POST", "/v1/auth/resend-code", { json: { email: email.value.trim() }, auth: false });
      resendStatus.textContent = "A new code is on its way.";
    } catch (error) {
      resendStatus.textContent = describe(error);
    }
  });
  const extras = [h("p", {}, resend, " ", resendStatus)];
  if (api.config.local) extras.push(outboxPanel(email, code));
  return page("Confirm your email", form, ...extras);
}

/** Local mode: the platform's outbox, where the verification code "arrives". */
function outboxPanel(email, code) {
  const list = h("div", { class: "outbox", "aria-live": "polite" });
  const show = h("button", { type: "button", class: "secondary" }, "Show the local outbox");
  show.addEventListener("click", async () => {
    list.replaceChildren(loading("Reading the outbox…"));
    try {
      const to = email.value.trim();
      const { mails } = await api.request("GET", `/local/outbox?limit=5${to ? `&to=${encodeURIComponent(to)}` : ""}`, { auth: false });
      if (!mails.length) return list.replaceChildren(notice("info", "No mail yet for this address."));
      list.replaceChildren(...mails.map((mail) => {
        const found = mail.text.match(/code is (\d{6})/);
        return h("article", { class: "mail" },
          h("h3", {}, mail.subject), h("p", { class: "meta" }, `To ${mail.to}, ${when(mail.sent_at)}`),
          h("pre", {}, mail.text),
          found ? h("button", { type: "button", class: "small", onclick: () => { code.value = found[1]; code.focus(); } }, `Use code ${found[1]}`) : null);
      }));
    } catch (error) {
      list.replaceChildren(notice("error", describe(error)));
    }
  });
  return h("aside", { class: "card", "aria-label": "Local outbox" },
    h("h2", {}, "Running locally"), h("p", {}, "oratio up keeps mail in its outbox instead of sending it."), show, list);
}

function signInView(params) {
  const email = h("input", { type: "email", autocomplete: "email", value: params.get("email") ?? "" });
  const password = h("input", { type: "password", autocomplete: "current-password" });
  const form = h("form", { novalidate: true },
    field("Email", email), field("Password", password),
    h("button", { type: "submit", class: "primary" }, "Sign in"));
  wireForm(form, {
    check: () => [
      !EMAIL.test(email.value.trim()) && [email, "Enter your email address."],
      !password.value && [password, "Enter your password."],
    ].filter(Boolean),
    submit: async () => {
      await api.signIn(email.value.trim(), password.value);
      go("/agents");
    },
  });
  return page("Sign in",
    params.get("confirmed") ? notice("success", "Your email is confirmed. Sign in to continue.") : null,
    form,
    h("p", {}, "New to Oratio? ", h("a", { href: "#/signup" }, "Create an account")));
}

// ------------------------------------------------------------------ agents

async function agentsView() {
  const { agents } = await api.request("GET", "/v1/agents?limit=100");
  const create = api.can("manage_agents") ? h("a", { class: "button primary", href: "#/agents/new" }, "New agent") : null;
  if (!agents.length) {
    return page("Agents", notice("info", "No agents yet.", create ? " Create one from your procedure and documents." : ""), create);
  }
  const rows = agents.map((agent) => h("tr", {},
    h("td", {}, h("a", { href: `#/agents/${agent.agent_id}` }, agent.name)),
    h("td", {}, agent.kind), h("td", {}, badge(agent.status)), h("td", {}, when(agent.updated_at))));
  return page("Agents", create,
    h("table", { class: "list" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Kind"), h("th", { scope: "col" }, "Status"), h("th", { scope: "col" }, "Updated"))),
      h("tbody", {}, rows)));
}

const SOP_EXAMPLE = `Front desk procedure for Bright Smile Dental
Tone: warm, professional and concise.

1. Greet the caller and ask how you can help.
2. If they want to book an appointment, collect their full name, phone number and preferred date.
3. Confirm the booking details back to the caller.

Escalate to a human if the caller reports severe pain or bleeding.
Never give a medical diagnosis.`;

function voiceFields(voice = { voice: "matthew", language: "en-US", speaking_rate: 1 }) {
  const name = h("input", { type: "text", value: voice.voice });
  const language = h("input", { type: "text", value: voice.language });
  const rate = h("input", { type: "number", min: "0.5", max: "2", step: "0.1", value: String(voice.speaking_rate) });
  return {
    element: h("fieldset", {}, h("legend", {}, "Voice"),
      field("Voice", name), field("Language", language, "A language tag such as en-US."), field("Speaking rate", rate, "0.5 (slow) to 2 (fast).")),
    check: () => [
      !/^[A-Za-z0-9_-]{1,40}$/.test(name.value.trim()) && [name, "A voice name: letters, digits, - and _."],
      !/^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$/.test(language.value.trim()) && [language, "A language tag such as en-US."],
      !(Number(rate.value) >= 0.5 && Number(rate.value) <= 2) && [rate, "Between 0.5 and 2."],
    ].filter(Boolean),
    value: () => ({ voice: name.value.trim(), language: language.value.trim(), speaking_rate: Number(rate.value) }),
  };
}

const lines = (text) => text.split("\n").map((l) => l.trim()).filter(Boolean);

function newAgentView() {
  if (!api.can("manage_agents")) return page("New agent", notice("error", "Only operators and admins create agents."));
  const name = h("input", { type: "text", required: true, maxlength: 80 });
  const kind = h("select", {}, h("option", { value: "text" }, "Text"), h("option", { value: "voice" }, "Voice"), h("option", { value: "both" }, "Text and voice"));
  const sop = h("textarea", { rows: 12, spellcheck: "true", class: "sop" });
  const sopCount = h("p", { class: "hint", "aria-live": "polite" }, "0 steps");
  sop.addEventListener("input", () => {
    const steps = sop.value.split("\n").filter((l) => /^\s*(\d+[.)]|[-*•])\s+\S/.test(l)).length;
    sopCount.textContent = `${steps} step${steps === 1 ? "" : "s"}`;
  });
  const example = h("button", { type: "button", class: "secondary small", onclick: () => { sop.value = SOP_EXAMPLE; sop.dispatchEvent(new Event("input")); } }, "Start from an example");
  const files = h("input", { type: "file", multiple: true, accept: DOCUMENT_TYPES.join(",") });
  const fileList = h("ul", { class: "files", "aria-live": "polite" });
  const greeting = h("input", { type: "text", maxlength: 500 });
  const handoff = h("textarea", { rows: 3 });
  const voice = voiceFields();
  const rows = new Map();
  const problemOf = (file) => {
    const lower = file.name.toLowerCase();
    if (!DOCUMENT_TYPES.some((ext) => lower.endsWith(ext))) return `${file.name}: use ${DOCUMENT_TYPES.join(", ")}`;
    if (file.size === 0) return `${file.name} is empty`;
    if (file.size > MAX_DOCUMENT_BYTES) return `${file.name} is over 10 MB`;
    return null;
  };
  files.addEventListener("change", () => {
    rows.clear();
    fileList.replaceChildren(...[...files.files].map((file) => {
      const progress = h("progress", { max: 100, value: 0, "aria-label": `Upload of ${file.name}` });
      const problem = problemOf(file);
      const row = h("li", { class: problem ? "bad" : "" }, h("span", {}, `${file.name} (${Math.ceil(file.size / 1024)} KB)`), progress, problem ? h("span", { class: "field-error" }, problem) : null);
      rows.set(file, progress);
      return row;
    }));
    invalid(files, null);
  });
  const form = h("form", { novalidate: true },
    field("Name", name),
    field("Kind", kind),
    h("div", { class: "field" }, h("div", { class: "label-row" }, h("label", { for: "sop" }, "Standard operating procedure"), example),
      h("p", { class: "hint", id: "sop-hint" }, "Write the procedure your staff follow, as numbered steps. Say when to hand over to a person, and what the agent must never do."),
      Object.assign(sop, { id: "sop" }), sopCount, h("p", { class: "field-error", id: "sop-error", role: "alert" })),
    field("Knowledge documents", files, `Up to ${MAX_DOCUMENTS} files: ${DOCUMENT_TYPES.join(", ")}; 10 MB each.`),
    fileList,
    field("Greeting (optional)", greeting, "What the agent says first."),
    field("Handoff conditions (optional)", handoff, "One per line, e.g. “the caller asks for a refund”."),
    voice.element,
    h("button", { type: "submit", class: "primary" }, "Create agent"));
  sop.setAttribute("aria-describedby", "sop-hint sop-error");
  wireForm(form, {
    check: () => {
      const chosen = [...files.files];
      const badFile = chosen.map(problemOf).find(Boolean);
      return [
        !name.value.trim() && [name, "Give the agent a name."],
        sop.value.trim().length < 40 && [sop, "Write the procedure: at least a few numbered steps."],
        chosen.length > MAX_DOCUMENTS && [files, `At most ${MAX_DOCUMENTS} documents.`],
        badFile && [files, badFile],
        ...voice.check(),
      ].filter(Boolean);
    },
    submit: async () => {
      const config = { name: name.value.trim(), kind: kind.value, sop: sop.value, voice: voice.value(), handoff_conditions: lines(handoff.value) };
      if (greeting.value.trim()) config.greeting = greeting.value.trim();
      const body = new FormData();
      body.append("config", new Blob([JSON.stringify(config)], { type: "application/json" }));
      const chosen = [...files.files];
      for (const file of chosen) body.append("documents", file, file.name);
      const total = chosen.reduce((sum, f) => sum + f.size, 0) || 1;
      const created = await api.upload("/v1/agents", body, (loaded, all) => {
        // One request carries every file, in order: share its progress out among them.
        let sent = loaded * (total / all);
        for (const file of chosen) {
          rows.get(file).value = Math.round(100 * Math.max(0, Math.min(1, sent / file.size)));
          sent -= file.size;
        }
      });
      go(`/agents/${created.agent_id}`);
    },
  });
  return page("New agent", form);
}

const TABS = [["overview", "Overview"], ["try", "Try it"], ["conversations", "Conversations"], ["keys", "API keys"], ["endpoints", "Endpoints"], ["configure", "Configuration"], ["code", "Generated code"]];

async function agentView(id, tab = "overview") {
  const agent = await api.request("GET", `/v1/agents/${id}`);
  const tabs = h("nav", { class: "tabs", "aria-label": "Agent" }, TABS.map(([key, label]) =>
    h("a", { href: `#/agents/${id}/${key}`, "aria-current": key === tab ? "page" : null }, label)));
  const views = { overview: overviewTab, try: tryTab, conversations: conversationsTab, keys: keysTab, endpoints: endpointsTab, configure: configureTab, code: codeTab };
  const body = await (views[tab] ?? overviewTab)(agent);
  return page(agent.name, h("p", { class: "subtitle" }, badge(agent.status), ` ${agent.kind} agent`), tabs, body);
}

const STEP_NAMES = { validate: "Check the SOP", knowledge: "Index the documents", agent_creator: "Write and review the agent", deploy: "Deploy", activate: "Go live", failed: "Failed" };

/** One line per step, showing where it got to. */
function progressList(steps) {
  const latest = new Map();
  for (const step of steps) latest.set(step.step, step);
  return h("ol", { class: "progress", "aria-live": "polite" }, [...latest.values()].map((step) =>
    h("li", { class: step.status }, h("strong", {}, STEP_NAMES[step.step] ?? step.step), ` — ${step.status} at ${when(step.at)}`,
      step.detail ? h("p", {}, step.detail) : null)));
}

function overviewTab(agent) {
  const status = h("div", { class: "live-status" });
  const steps = [...agent.progress];
  let list = progressList(steps);
  const show = (current) => {
    status.replaceChildren(...[
      current === "creating" && notice("info", "Creating your agent. The steps appear here as they happen."),
      current === "active" && notice("success", "Your agent is live. ", h("a", { href: `#/agents/${agent.agent_id}/try` }, "Try it"), " or ", h("a", { href: `#/agents/${agent.agent_id}/keys` }, "create an API key"), "."),
      current === "failed" && notice("error", "Creation failed: ", agent.failure_reason ?? "no reason given"),
    ].filter(Boolean));
  };
  show(agent.status);
  const unsubscribe = api.socket.subscribe((event) => {
    if (event.type !== "agent.progress" || event.agent_id !== agent.agent_id) return;
    steps.push(event.step);
    const updated = progressList(steps);
    list.replaceWith(updated);
    list = updated;
    agent.status = event.status;
    if (event.status === "failed") agent.failure_reason = event.step.detail;
    if (event.status !== "creating") render(); else show(event.status);
  });
  onLeave(unsubscribe);
  const actions = api.can("manage_agents") ? lifecycleActions(agent) : null;
  return h("div", {}, status, actions, h("h2", {}, "Creation progress"), list,
    h("h2", {}, "Documents"),
    agent.documents.length ? h("ul", {}, agent.documents.map((d) => h("li", {}, `${d.title} (${Math.ceil(d.size / 1024)} KB)`))) : h("p", {}, "No documents."));
}

function lifecycleActions(agent) {
  const result = h("div", { role: "status" });
  const act = (label, path, className = "secondary") => h("button", { type: "button", class: className, onclick: async (event) => {
    event.target.disabled = true;
    try {
      await api.request("POST", `/v1/agents/${agent.agent_id}/${path}`);
      render();
    } catch (error) {
      result.replaceChildren(notice("error", describe(error)));
      event.target.disabled = false;
    }
  } }, label);
  const remove = h("button", { type: "button", class: "danger", onclick: async () => {
    if (!(await confirmDialog(`Delete ${agent.name}?`, "The agent is archived, stops answering, and all its API keys stop working. This cannot be undone.", "Delete agent"))) return;
    try {
      await api.request("DELETE", `/v1/agents/${agent.agent_id}`);
      go("/agents");
    } catch (error) {
      result.replaceChildren(notice("error", describe(error)));
    }
  } }, "Delete");
  return h("div", { class: "actions" },
    agent.status === "active" ? act("Pause", "pause") : null,
    agent.status === "paused" ? act("Resume", "resume") : null,
    agent.needs_redeploy || agent.status === "failed" ? act("Redeploy", "redeploy", "primary") : null,
    agent.needs_redeploy ? h("span", { class: "hint" }, "The SOP changed since the last deployment.") : null,
    remove, result);
}

async function keysTab(agent) {
  const { keys } = await api.request("GET", `/v1/agents/${agent.agent_id}/keys`);
  const shown = h("div", { "aria-live": "polite" });
  const rows = keys.map((key) => h("tr", {},
    h("td", {}, key.name), h("td", {}, h("code", {}, `${key.prefix}…`)), h("td", {}, badge(key.status)),
    h("td", {}, String(key.use_count ?? 0)), h("td", {}, when(key.last_used_at)),
    h("td", {}, key.status === "active" && api.can("manage_keys") ? h("button", { type: "button", class: "danger small", onclick: async () => {
      if (!(await confirmDialog(`Revoke “${key.name}”?`, "Applications using this key stop working at once.", "Revoke key"))) return;
      try {
        await api.request("DELETE", `/v1/agents/${agent.agent_id}/keys/${key.key_id}`);
        if (freshKeys.get(agent.agent_id)?.key_id === key.key_id) freshKeys.delete(agent.agent_id);
        render();
      } catch (error) {
        shown.replaceChildren(notice("error", describe(error)));
      }
    } }, "Revoke") : null)));
  const list = keys.length
    ? h("table", { class: "list" }, h("thead", {}, h("tr", {}, ...["Name", "Key", "Status", "Uses", "Last used", ""].map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows))
    : notice("info", "No keys yet. A key lets your application talk to this agent.");
  if (!api.can("manage_keys")) return h("div", {}, list, h("p", { class: "hint" }, "Admins create and revoke keys."));
  const name = h("input", { type: "text", maxlength: 80 });
  const form = h("form", { novalidate: true, class: "inline" }, field("New key name", name), h("button", { type: "submit", class: "primary" }, "Create key"));
  wireForm(form, {
    check: () => [!name.value.trim() && [name, "Name the key after the application that uses it."]].filter(Boolean),
    submit: async () => {
      const key = await api.request("POST", `/v1/agents/${agent.agent_id}/keys`, { json: { name: name.value.trim() } });
      freshKeys.set(agent.agent_id, key);
      await render();
      document.querySelector("#new-secret")?.focus();
    },
  });
  const fresh = freshKeys.get(agent.agent_id);
  const secret = fresh?.secret && !fresh.seen
    ? notice("success", h("p", {}, "Copy this key now: it is shown only once."), h("code", { id: "new-secret", tabindex: "-1", class: "secret" }, fresh.secret), " ", copyButton(fresh.secret))
    : null;
  if (fresh) fresh.seen = true;
  return h("div", {}, secret, shown, form, list);
}

function endpointsTab(agent) {
  const base = api.config.api;
  const message = `curl -s ${base}/v1/agents/${agent.agent_id}/messages \\\n  -H "X-Api-Key: $ORATIO_KEY" -H 'Content-Type: application/json' \\\n  -d '{"message":"Hello"}'`;
  const stream = `curl -N ${base}/v1/agents/${agent.agent_id}/messages \\\n  -H "X-Api-Key: $ORATIO_KEY" -H 'Accept: text/event-stream' \\\n  -H 'Content-Type: application/json' -d '{"message":"Hello"}'`;
  const block = (title, text) => h("div", { class: "snippet" }, h("div", { class: "label-row" }, h("h3", {}, title), copyButton(text)), h("pre", {}, h("code", {}, text)));
  return h("div", {},
    h("p", {}, "Your application sends each customer message with an API key of this agent. Continue a conversation by sending the ", h("code", {}, "session_id"), " of the previous answer."),
    block("Send a message", message), block("Stream the reply (Server-Sent Events)", stream),
    agent.kind === "text" ? null : block("Talk (WebSocket, protocol oratio.voice.v1; messages in the README)",
      `${voiceUrl(agent.agent_id)}\n  X-Api-Key: $ORATIO_KEY   (browsers: subprotocols ["oratio.voice.v1", "oratio-key.<key>"])\n  first message: {"type":"session.start","audio":{"encoding":"pcm16","sample_rate":16000}}`),
    h("p", {}, "Every route is described in the ", h("a", { href: `${base}/openapi.json` }, "OpenAPI document"), "."));
}

function tryTab(agent) {
  if (agent.status !== "active") return notice("info", `The agent is ${agent.status}: it answers once it is active.`);
  const fresh = freshKeys.get(agent.agent_id);
  const key = h("input", { type: "password", autocomplete: "off", value: fresh?.secret ?? "" });
  const log = h("ol", { class: "chat", "aria-live": "polite", "aria-label": "Conversation" });
  const message = h("input", { type: "text", autocomplete: "off", maxlength: 4000 });
  let sessionId = null;
  const say = (role, text, sources = [], handoff = null) => log.append(h("li", { class: role },
    h("p", {}, text),
    sources.length ? h("details", { open: true }, h("summary", {}, `Sources (${sources.length})`),
      h("ul", { class: "sources" }, sources.map((s) => h("li", {}, h("strong", {}, s.title), ` — ${s.location}`, h("blockquote", {}, s.excerpt))))) : null,
    handoff ? notice("warning", `Handed to a person: ${handoff.reason}`, handoff.summary ? ` — ${handoff.summary}` : "") : null));
  const form = h("form", { novalidate: true, class: "chat-form" },
    fresh ? null : field("API key of this agent", key, "Create one under API keys; it stays in this tab only."),
    field("Your message", message),
    h("button", { type: "submit", class: "primary" }, "Send"));
  wireForm(form, {
    check: () => [
      !key.value.trim() && [key, "Paste an API key of this agent."],
      !message.value.trim() && [message, "Write a message."],
    ].filter(Boolean),
    submit: async () => {
      const text = message.value.trim();
      say("customer", text);
      message.value = "";
      const body = { message: text, customer: { channel: "dashboard" } };
      if (sessionId) body.session_id = sessionId;
      try {
        const reply = await api.request("POST", `/v1/agents/${agent.agent_id}/messages`, { json: body, auth: false, headers: { "x-api-key": key.value.trim() } });
        sessionId = reply.session_id;
        say("agent", reply.reply, reply.sources, reply.handoff);
      } catch (error) {
        if (error.code === "session_ended") sessionId = null;
        throw error;
      } finally {
        message.focus();
      }
    },
  });
  const restart = h("button", { type: "button", class: "secondary small", onclick: () => { sessionId = null; log.replaceChildren(); } }, "New conversation");
  const voice = agent.kind === "text" ? null : talkControls(agent, () => (fresh?.secret ?? key.value).trim(), log);
  return h("div", { class: "try" }, h("div", { class: "label-row" }, h("p", {}, "Talk to the agent as a customer would."), restart), log, voice, form);
}

/** *Talk*: a voice call from the microphone, its transcript growing in `log`. */
function talkControls(agent, secret, log) {
  const status = h("p", { class: "call-status", role: "status" });
  let call = null;
  let caller = null;
  let reply = null;
  const line = (role) => {
    const item = h("li", { class: role }, h("p", {}));
    log.append(item);
    return item;
  };
  const onEvent = (event) => {
    switch (event.type) {
      case "session.created": status.textContent = "Listening…"; break;
      case "input_audio_buffer.speech_started": status.textContent = "Hearing you…"; break;
      case "conversation.item.input_audio_transcription.delta": (caller ??= line("customer")).firstChild.textContent = event.text; break;
      case "conversation.item.input_audio_transcription.completed":
        (caller ?? line("customer")).firstChild.textContent = event.transcript;
        caller = null;
        status.textContent = "The agent is answering…";
        break;
      case "response.audio_transcript.delta": {
        reply ??= line("agent");
        reply.firstChild.textContent = `${reply.firstChild.textContent} ${event.text}`.trim();
        status.textContent = "The agent is speaking…";
        break;
      }
      case "response.interrupted":
        reply?.append(h("p", { class: "muted" }, "(interrupted)"));
        break;
      case "response.done":
        (reply ?? line("agent")).firstChild.textContent = event.transcript;
        reply = null;
        status.textContent = "Listening…";
        break;
      case "handoff.requested": log.append(h("li", { class: "agent" }, notice("warning", `Handed to a person: ${event.reason}`))); break;
      case "error": status.textContent = `${event.code}: ${event.message}`; break;
    }
  };
  const button = h("button", { type: "button", class: "secondary" }, "Talk");
  button.onclick = async () => {
    if (call) return call.hangUp();
    if (!secret()) { status.textContent = "Paste an API key of this agent to talk."; return; }
    button.disabled = true;
    try {
      call = await startCall({ agentId: agent.agent_id, key: secret(), onEvent, onClose: (close) => {
        call = null;
        button.textContent = "Talk";
        status.textContent = close.code === 1000 ? "Call ended." : `The call closed (${close.code}${close.reason ? `: ${close.reason}` : ""}).`;
      } });
      button.textContent = "Hang up";
      status.textContent = "Connecting…";
    } catch (error) {
      status.textContent = `The call could not start: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  };
  return h("div", { class: "label-row talk" }, button, status);
}

/** The agent's sessions, newest first, and one transcript; both follow the live events. */
async function conversationsTab(agent) {
  const selected = route().params.get("session");
  const { sessions } = await api.request("GET", `/v1/agents/${agent.agent_id}/sessions?limit=50`);
  const link = (s) => `#/agents/${agent.agent_id}/conversations?session=${s.session_id}`;
  const list = sessions.length
    ? h("table", { class: "list" },
      h("thead", {}, h("tr", {}, ...["Started", "Customer", "Status", "Turns", "Last activity"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, sessions.map((s) => h("tr", { "aria-current": s.session_id === selected ? "true" : null },
        h("td", {}, h("a", { href: link(s) }, when(s.started_at))),
        h("td", {}, s.customer.name ?? s.customer.id ?? (s.customer.channel ? `via ${s.customer.channel}` : "anonymous")), h("td", {}, badge(s.status)),
        h("td", {}, String(s.turns)), h("td", {}, when(s.last_activity_at))))))
    : notice("info", "No conversations yet. Try the agent, or send a message with an API key.");
  let transcript = null;
  if (selected) {
    const { session, turns } = await api.request("GET", `/v1/agents/${agent.agent_id}/sessions/${selected}`);
    const log = h("ol", { class: "chat", "aria-label": "Transcript" }, turns.map(turnItem));
    transcript = h("section", { "aria-labelledby": "transcript-title" },
      h("h2", { id: "transcript-title" }, `Conversation of ${when(session.started_at)}`),
      h("p", { class: "subtitle" }, badge(session.status), session.handoff_reason ? ` handoff: ${session.handoff_reason}` : ""),
      session.handoff_summary ? notice("warning", h("strong", {}, "For the colleague taking over: "), session.handoff_summary) : null,
      detailsList(session.details),
      log);
    onLeave(api.socket.subscribe((event) => {
      if (event.type === "turn.added" && event.session_id === selected) log.append(turnItem(event.turn));
    }));
  }
  onLeave(api.socket.subscribe((event) => {
    if (event.type === "session.started" && event.agent_id === agent.agent_id) render();
  }));
  return h("div", {}, list, transcript);
}

/** What the customer gave the agent in a session, by name. */
function detailsList(details = {}) {
  const entries = Object.entries(details);
  if (!entries.length) return null;
  return h("section", { class: "collected", "aria-label": "Collected details" },
    h("h3", {}, "Collected details"),
    h("dl", {}, entries.flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, value)])));
}

/** The tools the agent used for a reply: name, arguments, result and time. */
function toolCalls(calls = []) {
  if (!calls.length) return null;
  return h("details", { class: "tools" }, h("summary", {}, `Tools used (${calls.map((c) => c.name).join(", ")})`),
    h("ol", {}, calls.map((c) => h("li", {},
      h("strong", {}, c.name), ` · ${c.duration_ms} ms${c.is_error ? " · failed" : ""}`,
      h("pre", {}, h("code", {}, `arguments: ${JSON.stringify(c.arguments, null, 2)}\nresult: ${JSON.stringify(c.result, null, 2)}`))))));
}

function turnItem(turn) {
  const model = turn.model ? ` · ${turn.model}${turn.fallback_used ? " (fallback)" : ""}` : "";
  const who = turn.author ? ` · ${turn.author}` : "";
  return h("li", { class: turn.role, "data-turn": String(turn.turn) },
    turn.role === "operator" ? h("p", { class: "meta" }, `${turn.author} (person)`) : null,
    h("p", {}, turn.interrupted ? `${turn.text} …` : turn.text),
    turn.sources?.length ? h("p", { class: "meta" }, `Sources: ${turn.sources.map((s) => `${s.title} (${s.location})`).join(", ")}`) : null,
    toolCalls(turn.tool_calls),
    h("p", { class: "meta" }, `${when(turn.at)}${turn.latency_ms !== undefined ? ` · ${turn.latency_ms} ms` : ""}${model}${turn.role === "system" ? who : ""}`));
}

/** Puts a turn in a transcript in its place, replacing the one of its number (a turn
 *  cut by a barge-in comes again). */
function placeTurn(log, turn) {
  const item = turnItem(turn);
  const same = log.querySelector(`li[data-turn="${turn.turn}"]`);
  if (same) return same.replaceWith(item);
  const after = [...log.children].find((li) => Number(li.dataset.turn) > turn.turn);
  log.insertBefore(item, after ?? null);
  log.scrollTop = log.scrollHeight;
}

// ------------------------------------------------------------------ one session (the operator's console)

/** A session across agents: who the customer is, what they gave, the whole conversation
 *  kept live, and the take-over: take it from the agent, write to the customer, hand it
 *  back. A gap in the live events reloads it from the API. */
async function sessionView(id) {
  const head = h("div", {});
  const controls = h("div", { class: "takeover" });
  const log = h("ol", { class: "chat", "aria-label": "Transcript", "aria-live": "polite" });
  const hearing = h("p", { class: "partial", hidden: true });
  const writable = api.can("manage_agents");
  let session = null;
  const act = async (path, json = {}) => {
    const done = await api.request("POST", `/v1/sessions/${id}/${path}`, { json });
    session = done.session;
    placeTurn(log, done.turn);
    draw();
  };
  const draw = () => {
    const s = session;
    const customer = s.customer ?? {};
    head.replaceChildren(...[
      h("p", { class: "subtitle" }, badge(s.status), ` ${s.channel} · started ${when(s.started_at)} · ${s.turns} turns`,
        s.taken_over_by ? ` · with ${s.taken_over_by}` : "", s.end_reason ? ` · ended (${s.end_reason}) after ${duration(s.duration_ms)}` : "",
        " · ", h("a", { href: `#/agents/${s.agent_id}/conversations?session=${s.session_id}` }, "the agent's view")),
      h("dl", { class: "customer", "aria-label": "Customer" },
        h("dt", {}, "Customer"), h("dd", {}, customer.name ?? customer.id ?? "anonymous"),
        customer.channel ? [h("dt", {}, "Came from"), h("dd", {}, customer.channel)] : null,
        Object.entries(customer.attributes ?? {}).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      s.handoff_reason ? notice("warning", h("strong", {}, `Handoff: ${s.handoff_reason}. `), s.handoff_summary ?? "",
        s.handoff_outcome ? h("span", {}, h("br"), h("strong", {}, "Outcome: "), s.handoff_outcome) : null) : null,
      detailsList(s.details)].filter(Boolean));
    if (!writable || s.status === "ended") return controls.replaceChildren();
    if (s.status !== "taken_over") {
      return controls.replaceChildren(h("button", { type: "button", onclick: () => act("takeover").catch(showError) }, "Take over"));
    }
    const text = h("textarea", { rows: "2", maxlength: "4000", placeholder: "Write to the customer" });
    const form = h("form", { class: "inline" }, field("Message to the customer", text), h("button", { type: "submit" }, "Send"));
    wireForm(form, {
      check: () => [!text.value.trim() && [text, "Write something first."]].filter(Boolean),
      submit: async () => { await act("messages", { text: text.value.trim() }); text.value = ""; },
    });
    controls.replaceChildren(form,
      h("button", { type: "button", class: "secondary", onclick: () => act("release").catch(showError) }, "Hand back to the agent"));
  };
  const problem = h("div", { role: "alert" });
  const showError = (error) => problem.replaceChildren(notice("error", describe(error)));
  const load = async () => {
    const view = await api.request("GET", `/v1/sessions/${id}/messages`);
    session = view.session;
    log.replaceChildren(...view.turns.map(turnItem));
    draw();
  };
  await load();
  const exports = h("p", {},
    h("button", { type: "button", class: "secondary small", onclick: () => api.download(`/v1/sessions/${id}/messages?download=true`, `session-${id}.json`).catch(showError) }, "Download JSON"));
  const recording = h("div", {});
  const showRecording = async () => {
    if (session.channel === "text" || session.status !== "ended") return;
    try {
      const links = await api.request("GET", `/v1/agents/${session.agent_id}/sessions/${id}/recording`);
      recording.replaceChildren(h("p", {}, "Recording: ", h("audio", { controls: true, preload: "none", src: links.recording_url }),
        " ", h("a", { href: links.recording_url, download: `session-${id}.wav` }, "download")));
    } catch { /* no recording yet */ }
  };
  await showRecording();
  const CHANGES = new Set(["session.status", "handoff.requested", "session.ended"]);
  onLeave(api.socket.subscribe((event) => {
    if (event.type === "socket.open" && event.resumed) return load().catch(showError);
    if (event.session_id !== id) return;
    if (event.type === "transcript.partial") {
      hearing.textContent = `The caller is saying: “${event.text}…”`;
      hearing.hidden = false;
    }
    if (event.type === "turn.added") {
      if (event.turn.role === "customer") hearing.hidden = true;
      placeTurn(log, event.turn);
      session.turns = Math.max(session.turns, event.turn.turn);
    }
    if (CHANGES.has(event.type)) load().catch(showError);
  }));
  return page("Conversation", head, problem, recording, log, hearing, controls, exports);
}

// ------------------------------------------------------------------ history

const CHANNELS = ["text", "voice", "phone"];
const END_REASONS = ["customer", "agent", "idle", "disconnected", "failed", "shutdown"];
const duration = (ms) => ms === undefined || ms === null ? "—" : ms < 60000 ? `${Math.round(ms / 1000)} s` : `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;

/** Agents by id, for names in lists. */
async function agentNames() {
  const { agents } = await api.request("GET", "/v1/agents?limit=100");
  return agents;
}

function select(name, options, value, any = "Any") {
  return h("select", { name }, h("option", { value: "" }, any),
    options.map(([v, label]) => h("option", { value: v, selected: v === value ? true : null }, label)));
}

/** Ended sessions across the agents, filtered and sorted by the API (an index per
 *  request), paged with cursors; the filters live in the address, so a view can be shared. */
async function historyView(params) {
  const agents = await agentNames();
  const names = new Map(agents.map((a) => [a.agent_id, a.name]));
  const keys = ["agent_id", "from", "to", "channel", "end_reason", "handoff", "outcome", "customer", "sort", "order"];
  const query = new URLSearchParams({ status: "ended", limit: "25" });
  for (const key of keys) if (params.get(key)) query.set(key, params.get(key));
  if (params.get("cursor")) query.set("cursor", params.get("cursor"));
  const value = (key) => params.get(key) ?? "";
  const input = (name, type, label, attrs = {}) => field(label, h("input", { name, type, value: value(name), ...attrs }));
  const form = h("form", { class: "filters", "aria-label": "Filters" },
    field("Agent", select("agent_id", agents.map((a) => [a.agent_id, a.name]), value("agent_id"), "All agents")),
    input("from", "date", "Started from"), input("to", "date", "Started until"),
    field("Channel", select("channel", CHANNELS.map((c) => [c, c]), value("channel"))),
    field("Ended by", select("end_reason", END_REASONS.map((r) => [r, r]), value("end_reason"))),
    field("Handoff", select("handoff", [["yes", "Handed to a person"], ["no", "Kept by the agent"]], value("handoff"))),
    input("outcome", "text", "Handoff outcome", { placeholder: "e.g. Refunded" }),
    input("customer", "text", "Customer id"),
    field("Sort by", select("sort", [["started", "Start"], ["duration", "Duration"]], value("sort") || "started", "Start")),
    field("Order", select("order", [["desc", "Newest / longest first"], ["asc", "Oldest / shortest first"]], value("order") || "desc", "Newest / longest first")),
    h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [key, v] of new FormData(form)) if (v) next.set(key, v);
    go(`/history?${next}`);
  });
  const problem = h("div", { role: "alert" });
  let list;
  try {
    const { sessions, next_cursor } = await api.request("GET", `/v1/sessions?${query}`);
    const more = new URLSearchParams(params);
    if (next_cursor) more.set("cursor", next_cursor);
    list = h("div", {},
      sessions.length
        ? h("table", { class: "list history" },
          h("thead", {}, h("tr", {}, ...["Started", "Agent", "Channel", "Customer", "Duration", "Messages", "Ended by", "Handoff"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, sessions.map((s) => h("tr", { "data-session": s.session_id },
            h("td", {}, h("a", { href: `#/sessions/${s.session_id}` }, when(s.started_at))),
            h("td", {}, names.get(s.agent_id) ?? s.agent_id), h("td", {}, s.channel),
            h("td", {}, s.customer.name ?? s.customer.id ?? "anonymous"), h("td", {}, duration(s.duration_ms)),
            h("td", {}, String(s.turns)), h("td", {}, s.end_reason ?? "—"),
            h("td", {}, s.handoff_reason ? `${s.handoff_reason}${s.handoff_outcome ? ` → ${s.handoff_outcome}` : ""}` : "—")))))
        : notice("info", "No ended conversation matches these filters."),
      h("p", {},
        next_cursor ? h("a", { href: `#/history?${more}`, class: "button secondary small" }, "Next page") : null, " ",
        h("button", { type: "button", class: "secondary small", onclick: () => {
          const csv = new URLSearchParams(query);
          csv.delete("cursor"); csv.delete("limit"); csv.set("format", "csv");
          api.download(`/v1/sessions?${csv}`, "sessions.csv").catch((e) => problem.replaceChildren(notice("error", describe(e))));
        } }, "Download CSV")));
  } catch (error) {
    list = notice("error", describe(error));
  }
  return page("History", form, problem, list);
}

// ------------------------------------------------------------------ analytics

let charting = null;
/** Chart.js (vendored, MIT), loaded the first time a chart is drawn. */
function chartLibrary() {
  charting ??= new Promise((resolve, reject) => {
    const script = h("script", { src: "/vendor/chart.umd.min.js" });
    script.onload = () => resolve(window.Chart);
    script.onerror = () => { charting = null; reject(new Error("the charting library did not load")); };
    document.head.append(script);
  });
  return charting;
}

/** A period's figures for the organization or one agent, from the API's rollups: the
 *  numbers, and charts of them (sessions per day by channel, top handoff reasons). */
async function analyticsView(params) {
  const agents = await agentNames();
  const query = new URLSearchParams();
  for (const key of ["from", "to", "agent_id"]) if (params.get(key)) query.set(key, params.get(key));
  const [report, Chart] = await Promise.all([api.request("GET", `/v1/analytics?${query}`), chartLibrary()]);
  const form = h("form", { class: "filters", "aria-label": "Period" },
    field("Agent", select("agent_id", agents.map((a) => [a.agent_id, a.name]), params.get("agent_id") ?? "", "All agents")),
    field("From", h("input", { name: "from", type: "date", value: report.from })),
    field("To", h("input", { name: "to", type: "date", value: report.to })),
    h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [key, v] of new FormData(form)) if (v) next.set(key, v);
    go(`/analytics?${next}`);
  });
  const pct = (x) => x === null || x === undefined ? "—" : `${Math.round(x * 1000) / 10} %`;
  const ms = (x) => x === null || x === undefined ? "—" : `${x} ms`;
  const figures = [
    ["Sessions", String(report.sessions)],
    ["By channel", Object.entries(report.by_channel).map(([c, n]) => `${c} ${n}`).join(", ") || "—"],
    ["Average duration", duration(report.average_duration_ms)],
    ["95th percentile duration", duration(report.p95_duration_ms)],
    ["Messages per session", report.messages_per_session ?? "—"],
    ["Handoff rate", pct(report.handoff_rate)],
    ["Containment", pct(report.containment_rate)],
    ["Agent latency p50", ms(report.p50_latency_ms)],
    ["Agent latency p95", ms(report.p95_latency_ms)],
  ];
  const numbers = h("dl", { class: "figures", "aria-label": "Figures" }, figures.flatMap(([name, v]) => [h("dt", {}, name), h("dd", { "data-figure": name }, v)]));
  const perDay = h("canvas", { id: "sessions-per-day", role: "img", "aria-label": "Sessions per day by channel" });
  const reasonsChart = h("canvas", { id: "handoff-reasons", role: "img", "aria-label": "Top handoff reasons" });
  const colours = { text: "#3b6fd8", voice: "#d8843b", phone: "#3bab6f" };
  const channels = [...new Set(report.days.flatMap((d) => Object.keys(d.by_channel)).concat(Object.keys(report.by_channel)))];
  const charts = [
    new Chart(perDay, {
      type: "bar",
      data: { labels: report.days.map((d) => d.date),
        datasets: channels.map((c) => ({ label: c, data: report.days.map((d) => d.by_channel[c] ?? 0), backgroundColor: colours[c] ?? "#888" })) },
      options: { animation: false, responsive: true, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } },
    }),
    new Chart(reasonsChart, {
      type: "bar",
      data: { labels: report.top_handoff_reasons.map((r) => r.reason), datasets: [{ label: "Handoffs", data: report.top_handoff_reasons.map((r) => r.count), backgroundColor: "#c0392b" }] },
      options: { animation: false, indexAxis: "y", responsive: true, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
    }),
  ];
  onLeave(() => charts.forEach((c) => c.destroy()));
  const reasons = report.top_handoff_reasons.length
    ? h("table", { class: "list" }, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Reason"), h("th", { scope: "col" }, "Handoffs"))),
      h("tbody", {}, report.top_handoff_reasons.map((r) => h("tr", {}, h("td", {}, r.reason), h("td", {}, String(r.count))))))
    : h("p", { class: "subtitle" }, "No handoffs in this period.");
  const unanswered = report.unanswered.length
    ? h("ul", { class: "unanswered", "aria-label": "Questions the agent could not answer" }, report.unanswered.map((u) =>
      h("li", {}, h("a", { href: `#/sessions/${u.session_id}` }, u.question), h("span", { class: "subtitle" }, ` · ${when(u.at)}`))))
    : h("p", { class: "subtitle" }, "None in this period.");
  return page("Analytics", form,
    h("section", { class: "analytics" },
      h("div", {}, h("h2", {}, "Figures"), numbers),
      h("div", {}, h("h2", {}, "Sessions per day"), perDay)),
    h("section", { class: "analytics" },
      h("div", {}, h("h2", {}, "Top handoff reasons"), reasons),
      h("div", {}, h("h2", { class: "sr-only" }, "Handoff reasons chart"), reasonsChart)),
    h("h2", {}, "Questions the agent could not answer"), unanswered);
}

function configureTab(agent) {
  const writable = api.can("manage_agents");
  const name = h("input", { type: "text", value: agent.name, maxlength: 80, disabled: !writable });
  const greeting = h("input", { type: "text", value: agent.greeting ?? "", maxlength: 500, disabled: !writable });
  const handoff = h("textarea", { rows: 3, disabled: !writable }, agent.handoff_conditions.join("\n"));
  const sop = h("textarea", { rows: 12, class: "sop", disabled: !writable }, agent.sop);
  const voice = voiceFields(agent.voice);
  if (!writable) for (const input of voice.element.querySelectorAll("input")) input.disabled = true;
  const form = h("form", { novalidate: true },
    field("Name", name), field("Greeting", greeting),
    field("Handoff conditions", handoff, "One per line. Applies to new sessions at once."),
    voice.element,
    field("Standard operating procedure", sop, "A new SOP takes effect after a redeploy."),
    writable ? h("button", { type: "submit", class: "primary" }, "Save changes") : h("p", { class: "hint" }, "Viewers cannot change agents."));
  if (writable) {
    wireForm(form, {
      check: () => [!name.value.trim() && [name, "Give the agent a name."], ...voice.check()].filter(Boolean),
      submit: async () => {
        const change = { name: name.value.trim(), greeting: greeting.value.trim(), handoff_conditions: lines(handoff.value), voice: voice.value() };
        if (sop.value !== agent.sop) change.sop = sop.value;
        const saved = await api.request("PATCH", `/v1/agents/${agent.agent_id}`, { json: change });
        go(`/agents/${agent.agent_id}/${saved.needs_redeploy ? "overview" : "configure"}`);
      },
    });
  }
  return form;
}

async function codeTab(agent) {
  let code;
  try {
    code = await api.request("GET", `/v1/agents/${agent.agent_id}/code`);
  } catch (error) {
    if (error.status === 404) return notice("info", "No code yet: it is written when the agent is created.");
    throw error;
  }
  const block = (name, text) => h("details", {}, h("summary", {}, name), h("pre", {}, h("code", {}, text)));
  return h("div", {},
    h("p", {}, `Version ${code.version}. AgentCreator's artifacts show how it read your SOP and what its reviews changed.`),
    h("h2", {}, "Artifacts"), Object.entries(code.artifacts).map(([name, value]) => block(name, JSON.stringify(value, null, 2))),
    h("h2", {}, "Files"), Object.entries(code.files).map(([name, text]) => block(name, text)));
}

// ------------------------------------------------------------------ members

async function membersView() {
  const { members, invitations } = await api.request("GET", "/v1/members");
  const admin = api.can("manage_members");
  const result = h("div", { "aria-live": "polite" });
  const roleSelect = (member) => {
    const select = h("select", { "aria-label": `Role of ${member.email}` }, ["admin", "operator", "viewer"].map((r) => h("option", { value: r, selected: r === member.role }, r)));
    select.addEventListener("change", async () => {
      try {
        await api.request("PATCH", `/v1/members/${member.user_id}`, { json: { role: select.value } });
        result.replaceChildren(notice("success", `${member.email} is now ${select.value}.`));
      } catch (error) {
        select.value = member.role;
        result.replaceChildren(notice("error", describe(error)));
      }
    });
    return select;
  };
  // Whether handoffs are emailed to a member: theirs to change, or an admin's.
  const emailsBox = (member) => {
    const box = h("input", { type: "checkbox", checked: member.handoff_emails ? true : null, "aria-label": `Email handoffs to ${member.email}`,
      disabled: admin || member.user_id === api.me().user.id ? null : true });
    box.addEventListener("change", async () => {
      try {
        await api.request("PATCH", `/v1/members/${member.user_id}`, { json: { handoff_emails: box.checked } });
        result.replaceChildren(notice("success", `Handoffs are ${box.checked ? "now" : "no longer"} emailed to ${member.email}.`));
      } catch (error) {
        box.checked = !box.checked;
        result.replaceChildren(notice("error", describe(error)));
      }
    });
    return box;
  };
  const rows = members.map((m) => h("tr", {}, h("td", {}, m.email),
    h("td", {}, admin && m.user_id !== api.me().user.id ? roleSelect(m) : m.role), h("td", {}, emailsBox(m)), h("td", {}, when(m.joined_at)),
    h("td", {}, admin && m.user_id !== api.me().user.id ? h("button", { type: "button", class: "danger small", onclick: async () => {
      if (!(await confirmDialog(`Remove ${m.email}?`, "They lose access to this organization at once.", "Remove member"))) return;
      try { await api.request("DELETE", `/v1/members/${m.user_id}`); render(); } catch (error) { result.replaceChildren(notice("error", describe(error))); }
    } }, "Remove") : null)));
  const content = [result, h("table", { class: "list" },
    h("thead", {}, h("tr", {}, ...["Email", "Role", "Handoff emails", "Joined", ""].map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows))];
  if (invitations.length) {
    content.push(h("h2", {}, "Pending invitations"), h("ul", {}, invitations.map((i) => h("li", {}, `${i.email} as ${i.role}, until ${when(i.expires_at)}`))));
  }
  if (admin) {
    const email = h("input", { type: "email" });
    const role = h("select", {}, h("option", { value: "operator" }, "operator"), h("option", { value: "viewer" }, "viewer"));
    const form = h("form", { novalidate: true, class: "inline" }, field("Invite by email", email), field("Role", role), h("button", { type: "submit", class: "primary" }, "Invite"));
    wireForm(form, {
      check: () => [!EMAIL.test(email.value.trim()) && [email, "Enter an email address."]].filter(Boolean),
      submit: async () => {
        await api.request("POST", "/v1/members", { json: { email: email.value.trim(), role: role.value } });
        await render();
        document.querySelector("main [role=status], main .notice")?.focus?.();
      },
    });
    content.unshift(form);
  }
  return page("Members", ...content);
}

// ------------------------------------------------------------------ phone numbers

/** The organization's numbers and the voice agents that answer them; admins assign and
 *  remove them (the Twilio auth token is sent once and never shown again). */
async function phoneNumbersView() {
  const [{ numbers }, { agents }] = await Promise.all([api.request("GET", "/v1/phone-numbers"), api.request("GET", "/v1/agents?limit=100")]);
  const names = new Map(agents.map((a) => [a.agent_id, a.name]));
  const admin = api.can("manage_integrations");
  const result = h("div", { "aria-live": "polite" });
  const content = [result];
  if (numbers.length) {
    content.push(h("p", {}, "In Twilio, set each number's ", h("strong", {}, "A call comes in"), " webhook (HTTP POST) to ",
      h("code", {}, numbers[0].voice_webhook_url), " ", copyButton(numbers[0].voice_webhook_url, "Copy the webhook URL")));
    content.push(h("table", { class: "list numbers" },
      h("thead", {}, h("tr", {}, ...["Number", "Agent", "Label", "Twilio account", "Added", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, numbers.map((n) => h("tr", { "data-number": n.number },
        h("td", {}, n.number), h("td", {}, h("a", { href: `#/agents/${n.agent_id}` }, names.get(n.agent_id) ?? n.agent_id)),
        h("td", {}, n.label ?? ""), h("td", {}, n.account_sid), h("td", {}, when(n.created_at)),
        h("td", {}, admin ? h("button", { type: "button", class: "danger small", onclick: async () => {
          if (!(await confirmDialog(`Remove ${n.number}?`, "Calls to it will hear that it is not in service.", "Remove number"))) return;
          try { await api.request("DELETE", `/v1/phone-numbers/${encodeURIComponent(n.number)}`); render(); } catch (error) { result.replaceChildren(notice("error", describe(error))); }
        } }, "Remove") : null))))));
  } else {
    content.push(notice("info", "No phone number answers an agent yet."));
  }
  const voiceAgents = agents.filter((a) => a.kind !== "text");
  if (admin && voiceAgents.length) {
    const number = h("input", { type: "tel", placeholder: "+1 415 555 0100", autocomplete: "off" });
    const agent = h("select", {}, voiceAgents.map((a) => h("option", { value: a.agent_id }, a.name)));
    const label = h("input", { type: "text", maxlength: 80 });
    const sid = h("input", { type: "text", placeholder: "AC…", autocomplete: "off", spellcheck: "false" });
    const token = h("input", { type: "password", autocomplete: "off" });
    const form = h("form", { novalidate: true }, h("h2", {}, "Assign a number"),
      field("Number (with its country code)", number), field("Agent", agent), field("Label (optional)", label),
      field("Twilio account SID", sid), field("Twilio auth token", token, "Stored encrypted; used to check that calls come from Twilio."),
      h("button", { type: "submit", class: "primary" }, "Assign"));
    wireForm(form, {
      check: () => [
        !/^(\+|00)[\d\s().-]{7,}$/.test(number.value.trim()) && [number, "Write the number with its country code, like +44 20 7946 0958."],
        !/^AC[0-9a-fA-F]{32}$/.test(sid.value.trim()) && [sid, "The account SID is AC and 32 hexadecimal digits."],
        token.value.trim().length < 16 && [token, "Paste the account's auth token."],
      ].filter(Boolean),
      submit: async () => {
        await api.request("POST", "/v1/phone-numbers", { json: { number: number.value, agent_id: agent.value, label: label.value || null,
          twilio: { account_sid: sid.value.trim(), auth_token: token.value.trim() } } });
        await render();
      },
    });
    content.push(form);
  } else if (admin) {
    content.push(notice("info", "Numbers are answered by voice agents: create an agent of kind voice (or both) first."));
  }
  return page("Phone numbers", ...content);
}

// ------------------------------------------------------------------ tools

/** The organization's tools (webhooks such as n8n's that agents call) and their latest
 *  executions with status and attempts. */
async function toolsView(params) {
  const status = params.get("status") ?? "";
  const [{ tools }, { executions }] = await Promise.all([api.request("GET", "/v1/tools"),
    api.request("GET", `/v1/tool-executions?limit=25${status ? `&status=${encodeURIComponent(status)}` : ""}`)]);
  const admin = api.can("manage_integrations");
  const result = h("div", { "aria-live": "polite" });
  const content = [result];
  content.push(tools.length
    ? h("table", { class: "list tools" },
      h("thead", {}, h("tr", {}, ...["Name", "What it does", "Endpoint", "Timeout", "Retries", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, tools.map((t) => h("tr", { "data-tool": t.tool_id },
        h("td", {}, h("code", {}, t.name)), h("td", {}, t.description), h("td", {}, `${t.method} ${t.url}`),
        h("td", {}, `${t.timeout_ms} ms`), h("td", {}, String(t.retries)),
        h("td", {}, admin ? h("button", { type: "button", class: "danger small", onclick: async () => {
          if (!(await confirmDialog(`Remove ${t.name}?`, "Agents stop being offered it from their next message.", "Remove tool"))) return;
          try { await api.request("DELETE", `/v1/tools/${t.tool_id}`); render(); } catch (error) { result.replaceChildren(notice("error", describe(error))); }
        } }, "Remove") : null)))))
    : notice("info", "No tool yet. A tool is an HTTPS endpoint (an n8n Webhook node, for one) your agents can call."));
  if (admin) {
    const name = h("input", { type: "text", placeholder: "order_status", spellcheck: "false" });
    const description = h("textarea", { rows: 2, placeholder: "Look up where a customer's order is. Use it when a customer asks where their order is." });
    const url = h("input", { type: "url", placeholder: "https://n8n.example.com/webhook/order-status" });
    const schema = h("textarea", { rows: 5, spellcheck: "false" },
      JSON.stringify({ type: "object", properties: { order_id: { type: "string", description: "the order number" } }, required: ["order_id"] }, null, 2));
    const timeout = h("input", { type: "number", min: 100, max: 20000, value: 5000 });
    const retries = h("input", { type: "number", min: 0, max: 4, value: 2 });
    const form = h("form", { novalidate: true }, h("h2", {}, "Add a tool"), field("Name (what the model calls it)", name),
      field("What it does, and when to use it", description), field("Endpoint URL", url),
      field("Arguments (JSON Schema)", schema), field("Timeout per attempt (ms)", timeout), field("Retries", retries),
      h("button", { type: "submit", class: "primary" }, "Add tool"));
    let parsed = null;
    wireForm(form, {
      check: () => {
        try { parsed = JSON.parse(schema.value); } catch { parsed = null; }
        return [
          !/^[A-Za-z0-9_-]{1,64}$/.test(name.value.trim()) && [name, "Letters, digits, _ and -, up to 64."],
          !description.value.trim() && [description, "Say what it does: the model decides by it."],
          !/^https?:\/\//.test(url.value.trim()) && [url, "An https:// URL."],
          !parsed && [schema, "This is not JSON."],
        ].filter(Boolean);
      },
      submit: async () => {
        const made = await api.request("POST", "/v1/tools", { json: { name: name.value.trim(), description: description.value.trim(),
          url: url.value.trim(), input_schema: parsed, timeout_ms: Number(timeout.value), retries: Number(retries.value) } });
        await render();
        if (made.secret) {
          document.querySelector("main [aria-live]")?.replaceChildren(notice("success", `${made.name} was added. Its signing secret (shown once): `),
            h("code", {}, made.secret), copyButton(made.secret, "Copy the secret"));
        }
      },
    });
    content.push(form);
  }
  const filter = h("select", { "aria-label": "Show executions" }, ["", "succeeded", "failed", "timed_out", "pending"].map((v) =>
    h("option", { value: v, selected: v === status }, v ? v.replace("_", " ") : "all")));
  filter.addEventListener("change", () => go(`/tools${filter.value ? `?status=${filter.value}` : ""}`));
  content.push(h("h2", {}, "Latest executions"), filter, executions.length
    ? h("table", { class: "list executions" },
      h("thead", {}, h("tr", {}, ...["When", "Tool", "Status", "Attempts", "Duration", "HTTP", "Conversation", "Error"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, executions.map((x) => h("tr", { "data-execution": x.execution_id },
        h("td", {}, when(x.started_at)), h("td", {}, h("code", {}, x.tool_name)), h("td", {}, badge(x.status)),
        h("td", {}, String(x.attempts.length)), h("td", {}, `${x.duration_ms} ms`), h("td", {}, x.status_code ? String(x.status_code) : ""),
        h("td", {}, x.session_id ? h("a", { href: `#/sessions/${x.session_id}` }, "open") : ""),
        h("td", {}, x.error ? `${x.error.code}: ${x.error.message}` : "")))))
    : notice("info", "No execution yet."));
  return page("Tools", ...content);
}

// ------------------------------------------------------------------ live sessions

/** Every session going on now across the agents; any live event reloads it from the API,
 *  so what is shown is the table's state, never a stale guess. */
async function liveView() {
  const { agents } = await api.request("GET", "/v1/agents?limit=100");
  const names = new Map(agents.map((a) => [a.agent_id, a.name]));
  const body = h("div", { "aria-live": "polite" });
  const load = async () => {
    const { sessions } = await api.request("GET", "/v1/sessions?status=active&limit=100");
    body.replaceChildren(sessions.length
      ? h("table", { class: "list live" },
        h("thead", {}, h("tr", {}, ...["Started", "Agent", "Channel", "Customer", "Status", "Turns", "Last activity"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, sessions.map((s) => h("tr", { "data-session": s.session_id },
          h("td", {}, h("a", { href: `#/sessions/${s.session_id}` }, when(s.started_at))),
          h("td", {}, names.get(s.agent_id) ?? s.agent_id), h("td", {}, s.channel),
          h("td", {}, s.customer.name ?? s.customer.id ?? "anonymous"), h("td", {}, badge(s.status)),
          h("td", { class: "turns" }, String(s.turns)), h("td", {}, when(s.last_activity_at))))))
      : notice("info", "No conversation is going on right now."));
  };
  await load();
  // Sessions that ended while the page was open, with why (the last ten).
  const ended = h("ul", { class: "ended", "aria-label": "Just ended" });
  const endedBox = h("section", { hidden: true }, h("h2", {}, "Just ended"), ended);
  onLeave(api.socket.subscribe((event) => {
    if (event.type !== "session.ended") return;
    ended.prepend(h("li", {}, h("a", { href: `#/sessions/${event.session_id}` }, `${names.get(event.agent_id) ?? event.agent_id}`),
      ` · ended (${event.reason}) ${when(event.at)}`));
    while (ended.children.length > 10) ended.lastChild.remove();
    endedBox.hidden = false;
  }));
  let pending = null;
  const LIVE = new Set(["session.started", "turn.added", "handoff.requested", "session.status", "session.ended"]);
  onLeave(api.socket.subscribe((event) => {
    const resync = event.type === "socket.open" && event.resumed;
    if (!(LIVE.has(event.type) || resync) || pending) return;
    pending = setTimeout(async () => { pending = null; try { await load(); } catch { /* the next event retries */ } }, 150);
  }));
  onLeave(() => clearTimeout(pending));
  return page("Live", body, endedBox);
}

// ------------------------------------------------------------------ handoffs

/** The unread handoff notifications' count in the navigation; kept by the live events. */
const unread = { count: 0, element: h("span", { class: "count", "aria-label": "unread" }) };

async function refreshUnread() {
  if (!api.me()) return;
  try {
    const { notifications } = await api.request("GET", "/v1/notifications?status=unread&limit=100");
    unread.count = notifications.length;
  } catch { /* the badge waits for the next event */ }
  unread.element.textContent = unread.count ? String(unread.count) : "";
  unread.element.hidden = !unread.count;
}

/** Handoffs: unread first (or all), each acknowledged and resolved by an operator. */
async function notificationsView(params) {
  const all = params.get("status") === "all";
  const { notifications } = await api.request("GET", `/v1/notifications?status=${all ? "all" : "unread"}&limit=100`);
  const writable = api.can("manage_agents");
  const item = (n) => {
    const conversation = `#/sessions/${n.session_id}`;
    const acknowledge = h("button", { type: "button", class: "secondary small", onclick: async () => {
      await api.request("POST", `/v1/notifications/${n.notification_id}/ack`, { json: {} });
      await refreshUnread();
      render();
    } }, "Acknowledge");
    const outcome = h("input", { type: "text", maxlength: "500", placeholder: "What was done, e.g. refund approved by phone" });
    const resolve = h("form", { class: "inline" }, field("Outcome", outcome),
      h("button", { type: "submit", class: "small" }, "Resolve"));
    wireForm(resolve, {
      check: () => [!outcome.value.trim() && [outcome, "Say what was done."]].filter(Boolean),
      submit: async () => {
        await api.request("POST", `/v1/notifications/${n.notification_id}/resolve`, { json: { outcome: outcome.value.trim() } });
        await refreshUnread();
        render();
      },
    });
    return h("li", { class: `handoff ${n.status}`, "data-notification": n.notification_id },
      h("p", {}, badge(n.status), " ", h("strong", {}, n.reason), ` · ${n.channel} · ${when(n.created_at)} · `,
        h("a", { href: conversation }, "Open the conversation")),
      n.summary ? h("p", {}, n.summary) : null,
      detailsList(n.details),
      n.acknowledged_by ? h("p", { class: "subtitle" }, `Acknowledged by ${n.acknowledged_by} ${when(n.acknowledged_at)}`) : null,
      n.outcome ? h("p", { class: "subtitle" }, `Resolved by ${n.resolved_by}: ${n.outcome}`) : null,
      writable && n.status === "unread" ? acknowledge : null,
      writable && n.status !== "resolved" ? resolve : null);
  };
  onLeave(api.socket.subscribe((event) => { if (event.type === "handoff.requested") render(); }));
  return page("Handoffs",
    h("p", {}, all ? h("a", { href: "#/notifications" }, "Show the unread only") : h("a", { href: "#/notifications?status=all" }, "Show all")),
    notifications.length
      ? h("ul", { class: "handoffs", "aria-label": "Handoff notifications" }, notifications.map(item))
      : notice("info", all ? "No handoffs yet." : "Nothing unread: no customer is waiting for a person."));
}

// ------------------------------------------------------------------ shell and routing

let leaving = [];
function onLeave(cleanup) {
  leaving.push(cleanup);
}

const PUBLIC = new Set(["signup", "confirm", "signin"]);

function route() {
  const [path, query] = location.hash.slice(1).split("?");
  const parts = path.split("/").filter(Boolean);
  return { parts, params: new URLSearchParams(query ?? "") };
}

function shell() {
  const who = api.me();
  const link = (href, label) => h("a", { href, "aria-current": location.hash.startsWith(href) ? "page" : null }, label);
  nav.replaceChildren(...(who
    ? [link("#/agents", "Agents"), link("#/live", "Live"), link("#/history", "History"), link("#/analytics", "Analytics"), h("a", { href: "#/notifications", "aria-current": location.hash.startsWith("#/notifications") ? "page" : null }, "Handoffs ", unread.element),
      link("#/phone-numbers", "Phone numbers"), link("#/tools", "Tools"),
      api.can("manage_members") ? link("#/members", "Members") : null,
      h("span", { class: "who" }, `${who.user.email} · ${who.tenant.organization_name} · ${who.role}`),
      h("button", { type: "button", class: "secondary small", onclick: async () => { await api.signOut(); go("/signin"); } }, "Sign out")]
    : [link("#/signin", "Sign in"), link("#/signup", "Create account")]).filter(Boolean));
}

let rendering = 0;
async function render() {
  const ticket = ++rendering;
  for (const cleanup of leaving.splice(0)) cleanup();
  const { parts, params } = route();
  const [first = api.me() ? "agents" : "signin", second, third] = parts;
  if (!PUBLIC.has(first) && !api.me()) return go(`/signin`);
  shell();
  app.replaceChildren(loading());
  let view;
  try {
    if (first === "signup") view = signUpView();
    else if (first === "confirm") view = confirmView(params);
    else if (first === "signin") view = signInView(params);
    else if (first === "agents" && second === "new") view = newAgentView();
    else if (first === "agents" && second) view = await agentView(second, third);
    else if (first === "agents") view = await agentsView();
    else if (first === "members") view = await membersView();
    else if (first === "phone-numbers") view = await phoneNumbersView();
    else if (first === "tools") view = await toolsView(params);
    else if (first === "notifications") view = await notificationsView(params);
    else if (first === "live") view = await liveView();
    else if (first === "sessions" && second) view = await sessionView(second);
    else if (first === "history") view = await historyView(params);
    else if (first === "analytics") view = await analyticsView(params);
    else view = page("Not found", h("p", {}, "There is no such page. ", h("a", { href: "#/agents" }, "Go to your agents")));
  } catch (error) {
    view = page("Something went wrong", notice("error", error.status === 404 ? "It does not exist, or it is not your organization's." : describe(error)),
      h("button", { type: "button", class: "secondary", onclick: render }, "Try again"));
  }
  if (ticket !== rendering) return; // a newer navigation won
  app.replaceChildren(view);
  view.querySelector("#page-title")?.focus({ preventScroll: true });
}

api.onAuthChange(() => { shell(); refreshUnread(); });
// A handoff anywhere in the organization: the badge counts it at once.
api.socket.subscribe((event) => {
  if (event.type === "handoff.requested" || (event.type === "socket.open" && event.resumed)) refreshUnread();
});
// The page says when live updates are not coming.
const offline = h("p", { class: "offline", role: "status", hidden: true }, "Offline: reconnecting… what you see may be out of date.");
document.querySelector("header.top").append(offline);
api.socket.subscribe((event) => {
  if (event.type === "socket.closed") offline.hidden = false;
  if (event.type === "socket.open") offline.hidden = true;
});
window.addEventListener("hashchange", render);
await api.resume();
refreshUnread();
render();
