// Small DOM helpers: elements, forms that validate before sending and show the server's
// refusal, status badges, notices, and a confirmation dialog.

/** `h("button", {class: "primary", onclick}, "Save")`: an element with attributes and children. */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, value);
  }
  element.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}

let ids = 0;

/** A labelled input (or select / textarea) with room for its error message. */
export function field(label, control, hint) {
  const id = control.id || `f${++ids}`;
  control.id = id;
  const error = h("p", { class: "field-error", id: `${id}-error`, role: "alert" });
  control.setAttribute("aria-describedby", `${id}-error${hint ? ` ${id}-hint` : ""}`);
  return h("div", { class: "field" },
    h("label", { for: id }, label),
    hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null,
    control, error);
}

/** Marks a control invalid with `message` (or clears it). */
export function invalid(control, message) {
  const error = document.getElementById(`${control.id}-error`);
  if (error) error.textContent = message ?? "";
  control.toggleAttribute("aria-invalid", Boolean(message));
}

/**
 * Wires a form: `check()` returns {control: message} of what is wrong, or nothing; then
 * `submit()` runs with the button busy; a refusal shows the server's message.
 */
export function wireForm(form, { check, submit }) {
  const button = form.querySelector("button[type=submit]");
  const notice = h("div", { class: "form-notice", role: "alert" });
  form.append(notice);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    notice.textContent = "";
    notice.className = "form-notice";
    for (const control of form.querySelectorAll("[aria-invalid]")) invalid(control, null);
    const problems = check?.() ?? [];
    if (problems.length) {
      for (const [control, message] of problems) invalid(control, message);
      problems[0][0].focus();
      return;
    }
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      await submit();
    } catch (error) {
      notice.className = "form-notice error";
      notice.textContent = describe(error);
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  });
  return notice;
}

/** A person's sentence for an error, with the request id when there is one. */
export function describe(error) {
  const message = error?.message || "Something went wrong.";
  return error?.requestId ? `${message} (request ${error.requestId})` : message;
}

export function badge(status) {
  return h("span", { class: `badge ${status}` }, status.replace("_", " "));
}

export function notice(kind, ...content) {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, ...content);
}

export function loading(what = "Loading…") {
  return h("p", { class: "loading", role: "status" }, what);
}

/** Asks before something that cannot be undone; resolves true when confirmed. */
export function confirmDialog(title, message, confirmLabel) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm", "aria-labelledby": "confirm-title" },
      h("h2", { id: "confirm-title" }, title),
      h("p", {}, message),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "secondary", onclick: () => dialog.close("cancel") }, "Cancel"),
        h("button", { type: "button", class: "danger", onclick: () => dialog.close("confirm") }, confirmLabel)));
    dialog.addEventListener("close", () => { dialog.remove(); resolve(dialog.returnValue === "confirm"); });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** A button that copies `text`, and says so. */
export function copyButton(text, label = "Copy") {
  const button = h("button", { type: "button", class: "secondary small" }, label);
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Select and copy";
    }
    setTimeout(() => { button.textContent = label; }, 2000);
  });
  return button;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}
