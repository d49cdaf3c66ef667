// The console's "Signing PIN" dialog, for doctors and specialists: set a PIN (with their
// password, the PIN twice) to confirm signatures with instead of the password, or erase it.
// What the client can tell before asking (a field left empty, a PIN that is not 6 to 12
// digits, typed differently twice) it says at once; the server's refusals (wrong password, a
// PIN too easy to guess, too many attempts) are said in the user's language from their codes.
// Nothing typed is kept after the dialog closes.
//
// DOM contract (tests/browser relies on it): #signing-pin opens #pin-dialog, with
// #pin-state (`data-set`: "true" or "false"), #pin-password, #pin-new, #pin-repeat, #pin-save,
// #pin-erase (shown when a PIN is set), #pin-cancel; #pin-error (`data-code`: the server's
// error code, or the client's check); the outcome in #account-notice (`data-pin`: "set" or
// "erased").

import * as api from "./api.js";
import { must } from "./dom.js";
import { errorCodeOf, errorKey, showFormError } from "./errors.js";
import { tr } from "./i18n.js";

/** @typedef {import("./i18n.js").MessageKey} MessageKey */

/**
 * Wires the dialog to its button.
 * @param {{explain: (err: unknown) => MessageKey, account: () => import("./api.js").Account | null}} deps
 *   `explain` turns a failure into words (and signs out on a lost session); `account` is the
 *   signed-in account, whose `signing_pin` the dialog keeps up to date
 */
export function mountPinDialog({ explain, account }) {
  const ui = {
    open: must("#signing-pin", HTMLButtonElement),
    dialog: must("#pin-dialog", HTMLDialogElement),
    form: must("#pin-form", HTMLFormElement),
    state: must("#pin-state", HTMLElement),
    password: must("#pin-password", HTMLInputElement),
    next: must("#pin-new", HTMLInputElement),
    repeat: must("#pin-repeat", HTMLInputElement),
    save: must("#pin-save", HTMLButtonElement),
    erase: must("#pin-erase", HTMLButtonElement),
    cancel: must("#pin-cancel", HTMLButtonElement),
    error: must("#pin-error", HTMLElement),
    notice: must("#account-notice", HTMLElement),
  };

  /**
   * @param {MessageKey | null} key
   * @param {string} [code]
   */
  const showError = (key, code = "") => showFormError(ui.error, key, code);
  const forget = () => {
    ui.password.value = "";
    ui.next.value = "";
    ui.repeat.value = "";
  };
  const showState = () => {
    const set = account()?.signing_pin === true;
    tr(ui.state, set ? "pin.state_set" : "pin.state_none");
    ui.state.dataset.set = String(set);
    ui.erase.hidden = !set;
  };
  /**
   * @param {boolean} set
   * @param {MessageKey} key
   */
  const done = (set, key) => {
    const me = account();
    if (me) me.signing_pin = set;
    ui.dialog.close();
    tr(ui.notice, key);
    ui.notice.dataset.pin = set ? "set" : "erased";
    ui.notice.hidden = false;
  };

  ui.open.addEventListener("click", () => {
    forget();
    showError(null);
    showState();
    ui.notice.hidden = true;
    ui.dialog.showModal();
    ui.password.focus();
  });
  ui.cancel.addEventListener("click", () => ui.dialog.close());
  ui.dialog.addEventListener("close", forget);

  ui.erase.addEventListener("click", async () => {
    ui.erase.disabled = true;
    try {
      await api.clearSigningPin();
      done(false, "pin.erased_done");
    } catch (err) {
      showError(explain(err), errorCodeOf(err));
    } finally {
      ui.erase.disabled = false;
    }
  });

  ui.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const password = ui.password.value;
    const pin = ui.next.value;
    /** @type {[MessageKey, string, HTMLInputElement] | null} */
    let wrong = null;
    if (!password) wrong = ["pin.password_required", "password_required", ui.password];
    else if (!api.PIN_SHAPE.test(pin)) wrong = ["error.pin_rule", "pin_rule", ui.next];
    else if (pin !== ui.repeat.value) wrong = ["pin.mismatch", "mismatch", ui.repeat];
    if (wrong) {
      showError(wrong[0], wrong[1]);
      wrong[2].focus();
      return;
    }
    showError(null);
    ui.save.disabled = true;
    tr(ui.save, "pin.saving");
    try {
      await api.setSigningPin(password, pin);
      done(true, "pin.set_done");
    } catch (err) {
      const code = errorCodeOf(err);
      // The PIN rules' refusals name the PIN; the rest (wrong password, throttled) as usual.
      showError(code === "weak_pin" || code === "pin_rule" ? errorKey(code) : explain(err), code);
      if (code === "wrong_password") {
        ui.password.select();
        ui.password.focus();
      } else if (code === "weak_pin") {
        ui.next.value = "";
        ui.repeat.value = "";
        ui.next.focus();
      }
    } finally {
      ui.save.disabled = false;
      tr(ui.save, "pin.save");
    }
  });
}
