// The console's "Change password" dialog: the current password and the new one twice. The
// server checks the current one under the sign-in throttle, changes it and ends the account's
// other sessions (this one goes on); the console says how many it ended. What the client can
// tell before asking (a field left empty, a new password too short, typed differently twice,
// or the same as the current one) it says at once; the server's refusals (wrong password, too
// many attempts) are said in the user's language from their codes. Nothing typed is kept after
// the dialog closes.
//
// DOM contract (tests/browser relies on it): #change-password opens #password-dialog, with
// #password-current, #password-new, #password-repeat, #password-save and #password-cancel;
// #password-error (`data-code`: the server's error code, or the client's check); the outcome in
// #account-notice (`data-sessions-revoked`).

import * as api from "./api.js";
import { must } from "./dom.js";
import { errorCodeOf, showFormError } from "./errors.js";
import { tr } from "./i18n.js";

/** @typedef {import("./i18n.js").MessageKey} MessageKey */

/** The server's rule for a new password (`auth::check_new_password`). */
const MIN_CHARS = 8;
const MAX_BYTES = 4096;

/**
 * Wires the dialog to its button.
 * @param {{explain: (err: unknown) => MessageKey, changed: () => void}} deps `explain` turns a
 *   failure into words (and signs out on a lost session); `changed` is told once the password
 *   changed (which also erased any signing PIN)
 */
export function mountPasswordDialog({ explain, changed }) {
  const ui = {
    open: must("#change-password", HTMLButtonElement),
    dialog: must("#password-dialog", HTMLDialogElement),
    form: must("#password-form", HTMLFormElement),
    current: must("#password-current", HTMLInputElement),
    next: must("#password-new", HTMLInputElement),
    repeat: must("#password-repeat", HTMLInputElement),
    save: must("#password-save", HTMLButtonElement),
    cancel: must("#password-cancel", HTMLButtonElement),
    error: must("#password-error", HTMLElement),
    notice: must("#account-notice", HTMLElement),
  };

  /**
   * @param {MessageKey | null} key
   * @param {string} [code]
   */
  const showError = (key, code = "") => showFormError(ui.error, key, code);
  const forget = () => {
    ui.current.value = "";
    ui.next.value = "";
    ui.repeat.value = "";
  };

  ui.open.addEventListener("click", () => {
    forget();
    showError(null);
    ui.notice.hidden = true;
    ui.dialog.showModal();
    ui.current.focus();
  });
  ui.cancel.addEventListener("click", () => ui.dialog.close());
  ui.dialog.addEventListener("close", forget);

  ui.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const current = ui.current.value;
    const next = ui.next.value;
    /** @type {[MessageKey, string, HTMLInputElement] | null} */
    let wrong = null;
    if (!current) wrong = ["password.current_required", "current_required", ui.current];
    else if ([...next].length < MIN_CHARS || new TextEncoder().encode(next).length > MAX_BYTES) wrong = ["password.too_short", "too_short", ui.next];
    else if (next !== ui.repeat.value) wrong = ["password.mismatch", "mismatch", ui.repeat];
    else if (next === current) wrong = ["password.same", "same", ui.next];
    if (wrong) {
      showError(wrong[0], wrong[1]);
      wrong[2].focus();
      return;
    }
    showError(null);
    ui.save.disabled = true;
    tr(ui.save, "password.saving");
    try {
      const done = await api.changePassword(current, next);
      changed();
      ui.dialog.close();
      tr(ui.notice, "password.changed", { count: done.sessions_revoked });
      ui.notice.dataset.sessionsRevoked = String(done.sessions_revoked);
      ui.notice.hidden = false;
    } catch (err) {
      const code = errorCodeOf(err);
      // The server's rule, in the words of the field it is about.
      showError(code === "invalid_request" ? "password.too_short" : explain(err), code);
      if (code === "wrong_password") {
        ui.current.select();
        ui.current.focus();
      }
    } finally {
      ui.save.disabled = false;
      tr(ui.save, "password.save");
    }
  });
}
