// An institution's webhook over the HTTP API (docs/openapi.json, tag "webhooks"), for the
// administrators' console (webhook-view.js): the endpoint and whether it is on, the signing
// secret's rotation, and the recent deliveries. The server decides who may (the network's
// administrator for any institution, an institution's administrator for their own) and checks
// every URL; the secret comes back only when a webhook is created or its secret rotated.

import { call } from "./api.js";

/** @typedef {"pending" | "delivered" | "failed"} DeliveryState */

/**
 * @typedef {object} Webhook
 * @property {string} institution_id
 * @property {string} url
 * @property {boolean} enabled
 * @property {number} pending events queued, not yet delivered or given up
 * @property {number} max_pending the outbox's limit
 * @property {number} dropped events not queued because the outbox was full
 * @property {number} created_at Unix seconds
 * @property {number} updated_at Unix seconds
 * @property {number} secret_rotated_at Unix seconds
 * @property {string} [secret] only just after creation or rotation
 */

/**
 * @typedef {object} Delivery
 * @property {string} id the event's id, the receiver's idempotency key
 * @property {string} type the event type (docs/openapi.json, `WebhookDelivery`)
 * @property {string} consultation_id
 * @property {number} sequence within its consultation
 * @property {DeliveryState} state
 * @property {number} attempts
 * @property {number | null} next_attempt_at_ms
 * @property {number | null} last_status the receiver's last HTTP status
 * @property {string | null} last_error what went wrong at the last attempt (technical)
 * @property {number} created_at Unix seconds
 * @property {number | null} finished_at Unix seconds
 */

/** @param {string} institutionId */
function base(institutionId) {
  return `/api/v1/institutions/${encodeURIComponent(institutionId)}/webhook`;
}

/**
 * The institution's webhook (404 `no_webhook` when none is set).
 * @param {string} institutionId
 * @returns {Promise<Webhook>}
 */
export async function webhook(institutionId) {
  return /** @type {Webhook} */ (await call("GET", base(institutionId)));
}

/**
 * Sets the URL (creating the webhook, whose answer carries the secret once) or turns it on or
 * off. The URL's refusals come back by code (`url_not_https`, `url_address_not_allowed`, …).
 * @param {string} institutionId
 * @param {{url?: string, enabled?: boolean}} change
 * @returns {Promise<Webhook>}
 */
export async function setWebhook(institutionId, change) {
  return /** @type {Webhook} */ (await call("PUT", base(institutionId), change));
}

/**
 * A new signing secret (the old one stops signing at once); the answer carries it once.
 * @param {string} institutionId
 * @returns {Promise<Webhook>}
 */
export async function rotateSecret(institutionId) {
  return /** @type {Webhook} */ (await call("POST", `${base(institutionId)}/rotate`));
}

/**
 * Sends a failed event again (it keeps its sequence): the delivery as it stands now.
 * @param {string} institutionId
 * @param {string} eventId
 * @returns {Promise<Delivery>}
 */
export async function retryDelivery(institutionId, eventId) {
  return /** @type {Delivery} */ (await call("POST", `${base(institutionId)}/deliveries/${encodeURIComponent(eventId)}/retry`));
}

/**
 * The most recent events, newest first.
 * @param {string} institutionId
 * @param {DeliveryState | ""} state "" for every state
 * @param {number} limit 1-200
 * @returns {Promise<Delivery[]>}
 */
export async function deliveries(institutionId, state, limit) {
  const query = new URLSearchParams({ limit: String(limit) });
  if (state) query.set("state", state);
  return /** @type {{deliveries: Delivery[]}} */ (await call("GET", `${base(institutionId)}/deliveries?${query}`)).deliveries;
}
