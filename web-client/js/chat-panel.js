// Chat in the room. Messages are stored with the consultation by the server before anyone sees
// them, so what is shown here is what the record will say.

import { el, must, roleParam } from "./dom.js";

/** @typedef {import("./protocol.js").ChatInfo} ChatInfo */

const MAX_CHARS = 2000;

export class ChatPanel {
  /**
   * @param {HTMLElement} root the #chat-panel element
   * @param {(text: string) => void} send
   */
  constructor(root, send) {
    this.ui = {
      list: must(".chat-list", HTMLElement, root),
      form: must(".chat-form", HTMLFormElement, root),
      input: must(".chat-input", HTMLInputElement, root),
    };
    this.ui.input.maxLength = MAX_CHARS;
    this.ui.form.addEventListener("submit", (e) => {
      e.preventDefault();
      const text = this.ui.input.value.trim();
      if (!text) return;
      send(text);
      this.ui.input.value = "";
    });
  }

  /** @param {ChatInfo[]} messages */
  reset(messages) {
    this.ui.list.replaceChildren();
    for (const m of messages) this.add(m);
  }

  /** @param {ChatInfo} m */
  add(m) {
    this.ui.list.append(
      el(
        "li",
        { className: m.huddle ? "chat-item chat-huddle" : "chat-item", attrs: { "data-message-id": m.id } },
        el("span", {
          className: "chat-who",
          i18n: "chat.who",
          params: { name: m.name, role: roleParam(m.role), time: { at: m.at_ms, style: "time" } },
        }),
        // Written while the clinicians conferred: the server sent it to them alone.
        ...(m.huddle ? [el("span", { className: "chat-private", i18n: "chat.among_clinicians" })] : []),
        el("span", { className: "chat-text", user: m.text }),
      ),
    );
    this.ui.list.scrollTop = this.ui.list.scrollHeight;
  }
}
