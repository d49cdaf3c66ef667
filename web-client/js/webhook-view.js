// An institution's webhook in the administrators' console: where the institution's own systems
// (its HIS, a regional platform's relay) are told of referral steps, consultations and records.
// One folding panel per institution in the administration view (admin-view.js), read from the
// server when it is first opened: the URL and whether it is on, how many events wait and how
// many were not queued, the form that sets the URL or turns it off, the secret's rotation (the
// secret is shown once, right after creation or rotation, and never again), and the recent
// events with where each stands. The server decides who may and checks every URL; this view
// shows each refusal by its code.
//
// DOM contract (tests/browser/webhook-scenario.mjs relies on it): details.webhook-panel
// [data-institution-id][data-webhook="none"|"on"|"off"]; .webhook-status; the form
// .webhook-form (URL field, "Send events" checkbox, Save); .webhook-secret with the secret in
// <code>; the Rotate button; .webhook-deliveries with li.webhook-delivery[data-type][data-state]
// (a failed one with button.webhook-retry, "Send again");
// the error line .form-error carries the server's code in data-code.

import { ApiError } from "./api.js";
import { el } from "./dom.js";
import { errorKey } from "./errors.js";
import { clearText, hasKey, tr } from "./i18n.js";
import * as api from "./webhook-api.js";

/** @typedef {import("./i18n.js").MessageKey} MessageKey */
/** @typedef {import("./i18n.js").Params} Params */
/** @typedef {import("./webhook-api.js").Webhook} Webhook */
/** @typedef {import("./webhook-api.js").Delivery} Delivery */
/** @typedef {import("./webhook-api.js").DeliveryState} DeliveryState */

/**
 * What the console lends this view.
 * @typedef {object} Tools
 * @property {(err: unknown) => MessageKey} explain the catalogue's words for a failure (a lost
 *   session goes back to sign-in)
 * @property {(title: {key: MessageKey, params?: Params}, text: {key: MessageKey, params?: Params}, okLabel: {key: MessageKey, params?: Params}) => Promise<boolean>} confirm
 */

/** How many recent events the panel lists. */
const SHOWN_DELIVERIES = 20;

/**
 * An event type in words (its dot becomes an underscore under `webhook.event.`), or null for a
 * type this client does not know (a newer server).
 * @param {string} type
 * @returns {MessageKey | null}
 */
function eventKey(type) {
  const key = /** @type {MessageKey} */ (`webhook.event.${type.replace(".", "_")}`);
  return hasKey(key) ? key : null;
}

/** @type {Record<DeliveryState, MessageKey>} */
const STATES = {
  pending: "webhook.state.pending",
  delivered: "webhook.state.delivered",
  failed: "webhook.state.failed",
};

/**
 * The folding webhook panel of one institution.
 * @param {{id: string, name: string}} inst
 * @param {Tools} tools
 * @returns {HTMLDetailsElement}
 */
export function webhookPanel(inst, tools) {
  const id = (/** @type {string} */ part) => `webhook-${part}-${inst.id}`;
  const status = el("p", { className: "webhook-status", attrs: { role: "status", "aria-live": "polite" } });
  const counts = el("p", { className: "hint webhook-counts" });
  counts.hidden = true;
  const error = el("p", { className: "form-error", attrs: { role: "alert" } });
  error.hidden = true;

  const url = el("input", {
    attrs: { id: id("url"), type: "url", maxlength: "2048", required: "", autocomplete: "off", spellcheck: "false", placeholder: "https://" },
  });
  const enabled = el("input", { attrs: { id: id("enabled"), type: "checkbox" } });
  enabled.checked = true;
  const save = el("button", { className: "btn btn-primary btn-small", i18n: "webhook.save", attrs: { type: "submit" } });
  const form = el(
    "form",
    { className: "form webhook-form", label: "webhook.form_of", labelParams: { name: inst.name } },
    el(
      "div",
      { className: "field" },
      el("label", { i18n: "webhook.url", attrs: { for: url.id } }),
      url,
      el("p", { className: "hint", i18n: "webhook.url_hint", attrs: { id: id("url-hint") } }),
    ),
    el("div", { className: "field field-check" }, enabled, el("label", { i18n: "webhook.enabled", attrs: { for: enabled.id } })),
    el("div", { className: "actions" }, save),
  );
  url.setAttribute("aria-describedby", id("url-hint"));

  // The secret is data, not words: shown as it is (marked so, like people's own words).
  const secretCode = el("code", { className: "mono", attrs: { id: id("secret"), "data-user-content": "" } });
  const copy = el("button", { className: "btn btn-small", i18n: "webhook.copy", attrs: { type: "button" } });
  const secret = el(
    "div",
    { className: "webhook-secret", attrs: { role: "group", "aria-labelledby": id("secret-title") } },
    el("p", { className: "webhook-secret-title", i18n: "webhook.secret_title", attrs: { id: id("secret-title") } }),
    el("p", { className: "hint", i18n: "webhook.secret_once" }),
    el("div", { className: "search-row" }, secretCode, copy),
  );
  secret.hidden = true;
  const rotate = el("button", { className: "btn btn-small btn-danger", i18n: "webhook.rotate", attrs: { type: "button" } });
  rotate.hidden = true;

  const filter = el("select", { attrs: { id: id("filter") } });
  filter.replaceChildren(
    el("option", { i18n: "webhook.filter_all", attrs: { value: "" } }),
    ...Object.entries(STATES).map(([value, key]) => el("option", { i18n: key, attrs: { value } })),
  );
  const refresh = el("button", { className: "btn btn-small", i18n: "webhook.refresh", attrs: { type: "button" } });
  const deliveriesStatus = el("p", { className: "hint" });
  const deliveries = el("ul", { className: "webhook-deliveries", attrs: { "aria-labelledby": id("events-title") } });
  const events = el(
    "section",
    { className: "webhook-events", attrs: { "aria-labelledby": id("events-title") } },
    el("div", { className: "section-head" }, el("h5", { i18n: "webhook.events", attrs: { id: id("events-title") } }), refresh),
    el("div", { className: "field" }, el("label", { i18n: "webhook.filter", attrs: { for: filter.id } }), filter),
    deliveriesStatus,
    deliveries,
  );
  events.hidden = true;

  const panel = el(
    "details",
    { className: "webhook-panel" },
    el("summary", { i18n: "webhook.title" }),
    el("p", { className: "hint", i18n: "webhook.intro" }),
    status,
    counts,
    form,
    rotate,
    secret,
    error,
    events,
  );
  panel.dataset.institutionId = inst.id;

  /** @type {Webhook | null} */
  let current = null;
  let loaded = false;

  /** @param {unknown} err */
  function showError(err) {
    if (err instanceof ApiError && (err.status === 401 || err.code === "unauthenticated")) {
      tr(error, tools.explain(err));
    } else if (err instanceof ApiError) {
      tr(error, "error.with_code", { text: { key: errorKey(err.code) }, code: err.code });
    } else {
      tr(error, "error.unknown");
    }
    error.dataset.code = err instanceof ApiError ? err.code : "";
    error.hidden = false;
  }

  function clearError() {
    clearText(error);
    error.hidden = true;
    delete error.dataset.code;
    url.removeAttribute("aria-invalid");
  }

  /** @param {Webhook | null} w */
  function show(w) {
    current = w;
    panel.dataset.webhook = w ? (w.enabled ? "on" : "off") : "none";
    if (!w) {
      tr(status, "webhook.none");
      counts.hidden = true;
      rotate.hidden = true;
      events.hidden = true;
      return;
    }
    tr(status, w.enabled ? "webhook.on" : "webhook.off", { url: w.url });
    tr(counts, "webhook.counts", { pending: w.pending, max: w.max_pending, dropped: w.dropped });
    counts.hidden = false;
    url.value = w.url;
    enabled.checked = w.enabled;
    rotate.hidden = false;
    events.hidden = false;
    if (w.secret) {
      secretCode.textContent = w.secret;
      secret.hidden = false;
    }
  }

  async function load() {
    clearError();
    tr(status, "common.loading");
    try {
      show(await api.webhook(inst.id));
      await loadDeliveries();
    } catch (err) {
      if (err instanceof ApiError && err.code === "no_webhook") show(null);
      else {
        clearText(status);
        showError(err);
      }
    }
  }

  /**
   * Sends a failed event again, then shows the list as it stands.
   * @param {Delivery} d
   * @param {HTMLButtonElement} button
   */
  async function retry(d, button) {
    button.disabled = true;
    try {
      await api.retryDelivery(inst.id, d.id);
      await loadDeliveries();
    } catch (err) {
      showError(err);
      button.disabled = false;
    }
  }

  async function loadDeliveries() {
    if (!current) return;
    refresh.disabled = true;
    try {
      const list = await api.deliveries(inst.id, /** @type {DeliveryState | ""} */ (filter.value), SHOWN_DELIVERIES);
      deliveries.replaceChildren(...list.map((d) => renderDelivery(d, retry)));
      tr(deliveriesStatus, list.length ? "webhook.events_shown" : "webhook.no_events", { n: list.length });
    } catch (err) {
      showError(err);
    } finally {
      refresh.disabled = false;
    }
  }

  panel.addEventListener("toggle", () => {
    if (panel.open && !loaded) {
      loaded = true;
      void load();
    }
  });
  refresh.addEventListener("click", () => void load());
  filter.addEventListener("change", () => void loadDeliveries());
  copy.addEventListener("click", () => {
    void navigator.clipboard?.writeText(secretCode.textContent ?? "").catch(() => undefined);
    window.getSelection()?.selectAllChildren(secretCode);
  });

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    save.disabled = true;
    clearError();
    // A secret shown earlier has been seen: it goes when anything else is done.
    secret.hidden = true;
    secretCode.textContent = "";
    try {
      const next = url.value.trim();
      /** @type {{url?: string, enabled?: boolean}} */
      const change = { enabled: enabled.checked };
      if (!current || next !== current.url) change.url = next;
      show(await api.setWebhook(inst.id, change));
      tr(status, current?.secret ? "webhook.created" : "webhook.saved", { url: current?.url ?? "" });
      await loadDeliveries();
    } catch (err) {
      showError(err);
      if (err instanceof ApiError && err.status === 400) {
        url.setAttribute("aria-invalid", "true");
        url.focus();
      }
    } finally {
      save.disabled = false;
    }
  });

  rotate.addEventListener("click", async () => {
    const ok = await tools.confirm(
      { key: "webhook.rotate_title", params: { name: inst.name } },
      { key: "webhook.rotate_text" },
      { key: "webhook.rotate" },
    );
    if (!ok) return;
    rotate.disabled = true;
    clearError();
    try {
      show(await api.rotateSecret(inst.id));
      tr(status, "webhook.rotated");
      secretCode.focus();
    } catch (err) {
      showError(err);
    } finally {
      rotate.disabled = false;
    }
  });
  secretCode.tabIndex = -1;
  return panel;
}

/**
 * One event: what it was, for which consultation (its sequence there), where it stands, the
 * attempts and the receiver's last answer; a failed one can be sent again.
 * @param {Delivery} d
 * @param {(d: Delivery, button: HTMLButtonElement) => Promise<void>} retry
 * @returns {HTMLLIElement}
 */
function renderDelivery(d, retry) {
  const what = eventKey(d.type);
  const item = el(
    "li",
    { className: "webhook-delivery" },
    el(
      "div",
      { className: "account-head" },
      el("span", { className: "member-name", ...(what ? { i18n: what } : { text: d.type }) }),
      el("span", { className: `status status-${d.state}`, i18n: STATES[d.state] ?? "webhook.state.pending" }),
    ),
    el("p", {
      className: "account-line hint",
      i18n: "webhook.delivery_line",
      params: {
        time: { at: d.created_at * 1000, style: "datetime" },
        consultation: d.consultation_id.slice(0, 12),
        sequence: d.sequence,
        attempts: d.attempts,
      },
    }),
  );
  if (d.last_status !== null) item.append(el("p", { className: "account-line", i18n: "webhook.last_status", params: { status: d.last_status } }));
  // The receiver's or the network's own words: technical, not translated.
  if (d.last_error) item.append(el("p", { className: "account-line" }, el("code", { className: "mono", user: d.last_error })));
  if (d.state === "failed") {
    const again = el("button", { className: "btn btn-small webhook-retry", i18n: "webhook.retry", attrs: { type: "button" } });
    again.addEventListener("click", () => void retry(d, again));
    item.append(el("div", { className: "actions" }, again));
  }
  item.dataset.type = d.type;
  item.dataset.state = d.state;
  item.dataset.eventId = d.id;
  return item;
}
