// Your own picture in the room, on a small screen: a small tile beside the others' pictures
// (the layout in app.css keeps it off the active speaker), which you can hide to a button
// ("Hide" / "Show me") and, on a phone, move anywhere on the screen: dragged with a finger or
// a mouse, or from the keyboard.
//
// From the keyboard (phone layouts): the tile is focusable ("Your picture"), and a hint shows
// while it has focus: the arrow keys move it by a step (a bigger one with Shift), Enter or Space
// puts it in the next corner of the screen (clockwise from the top left), Home puts it back
// where the layout has it. A polite status says which corner it went to. It is always kept
// whole inside the window. "Hide me", a stop of the Tab key inside it, minimises it (and puts it
// back in its place).
//
// It only decorates the local tile that room-view.js makes (`.tile-local` in #tiles): it adds
// the hide button when the tile appears and moves the tile by fixing it to the window. Whether
// you are shown at all to the others does not change: that is the camera button's job.
//
// DOM contract (tests/browser relies on it): `.self-toggle` in `.tile-local` (aria-pressed true
// while hidden), `#tiles[data-self-hidden]`, `.tile-local[data-moved]` once moved,
// `.tile-local[tabindex]` while it can be moved from the keyboard, its hint `.self-hint` and
// status `.self-status`, `.tile-local[data-corner]` after Enter (top-left, top-right,
// bottom-right, bottom-left).

import { tr, trAttr } from "./i18n.js";

/** The layouts where the picture can be dragged: the phone layouts of app.css. */
export const PHONE_LAYOUT = "(max-width: 600px), (max-height: 500px) and (orientation: landscape)";
/** Movement below this (CSS px) is a tap, not a drag. */
const DRAG_SLOP = 6;
/** One arrow key's move (CSS px), and with Shift. */
const KEY_STEP = 24;
const KEY_STEP_LARGE = 96;
/** How far from the window's edges a corner is (CSS px). */
const CORNER_MARGIN = 8;
/** The corners Enter goes through, clockwise. */
const CORNERS = /** @type {const} */ (["top-left", "top-right", "bottom-right", "bottom-left"]);
/** @type {Record<(typeof CORNERS)[number], import("./i18n.js").MessageKey>} */
const CORNER_KEYS = {
  "top-left": "room.self.corner_top_left",
  "top-right": "room.self.corner_top_right",
  "bottom-right": "room.self.corner_bottom_right",
  "bottom-left": "room.self.corner_bottom_left",
};

export class SelfView {
  /** @type {HTMLElement} */
  #tiles;
  #hidden = false;
  /** @type {{x: number, y: number}} how far the tile was moved from where the layout puts it */
  #offset = { x: 0, y: 0 };
  /** @type {DOMRect | null} the tile's place in the layout, while it is moved away from it */
  #home = null;
  #phone = window.matchMedia(PHONE_LAYOUT);

  /** @param {HTMLElement} tiles #tiles */
  constructor(tiles) {
    this.#tiles = tiles;
    new MutationObserver(() => this.#decorate()).observe(tiles, { childList: true });
    // Turning the phone, or leaving the phone layout (a wider window), puts the picture back
    // in its place: where it was put may be off the screen now.
    const reset = () => {
      this.#move(null, { x: 0, y: 0 });
      this.#keyboardable();
    };
    this.#phone.addEventListener("change", reset);
    window.matchMedia("(orientation: landscape)").addEventListener("change", reset);
  }

  #decorate() {
    const tile = this.#tiles.querySelector(".tile-local");
    if (!(tile instanceof HTMLElement) || tile.querySelector(".self-toggle")) return;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "btn self-toggle";
    button.addEventListener("click", () => this.setHidden(!this.#hidden));
    const hint = document.createElement("p");
    hint.className = "self-hint";
    hint.id = "self-hint";
    tr(hint, "room.self.move_hint");
    const status = document.createElement("span");
    status.className = "self-status visually-hidden";
    status.setAttribute("role", "status");
    tile.append(button, hint, status);
    this.#render(button);
    this.#home = null;
    this.#move(tile, { x: 0, y: 0 });
    this.#dragging(tile);
    this.#keys(tile);
    this.#keyboardable();
  }

  /**
   * The tile takes focus only where it can be moved (the phone layouts) and while it is shown:
   * elsewhere a stop of the Tab key that does nothing would only be in the way.
   */
  #keyboardable() {
    const tile = this.#tiles.querySelector(".tile-local");
    if (!(tile instanceof HTMLElement)) return;
    if (this.#phone.matches && !this.#hidden) {
      tile.tabIndex = 0;
      trAttr(tile, "aria-label", "room.self.label");
      tile.setAttribute("aria-describedby", "self-hint");
      tile.setAttribute("aria-keyshortcuts", "ArrowUp ArrowDown ArrowLeft ArrowRight Enter Home");
    } else {
      tile.removeAttribute("tabindex");
      tile.removeAttribute("aria-label");
      tile.removeAttribute("data-i18n-aria-label");
      tile.removeAttribute("aria-describedby");
      tile.removeAttribute("aria-keyshortcuts");
    }
  }

  /** @param {boolean} hidden */
  setHidden(hidden) {
    this.#hidden = hidden;
    // Hidden, it is a button back in the strip of pictures.
    if (hidden) this.#move(null, { x: 0, y: 0 });
    const button = this.#tiles.querySelector(".tile-local .self-toggle");
    if (button instanceof HTMLElement) this.#render(button);
    this.#keyboardable();
  }

  /** @param {HTMLElement} button */
  #render(button) {
    // The visible words are the button's name: no aria-label that would differ from them.
    tr(button, this.#hidden ? "room.self.show" : "room.self.hide");
    button.setAttribute("aria-pressed", String(this.#hidden));
    if (this.#hidden) this.#tiles.dataset.selfHidden = "true";
    else delete this.#tiles.dataset.selfHidden;
  }

  /**
   * Puts the tile `offset` away from its place in the layout. A moved tile is fixed to the
   * window (at its place plus the offset, its size kept): inside the pictures' strip, which
   * scrolls by itself and so clips what it holds, it would vanish wherever it left the strip
   * (over the header, the tabs, the controls). Back at offset 0 it returns to the layout.
   * @param {HTMLElement | null} tile null: the current local tile, if any
   * @param {{x: number, y: number}} offset
   */
  #move(tile, offset) {
    const node = tile ?? this.#tiles.querySelector(".tile-local");
    this.#offset = offset;
    if (!(node instanceof HTMLElement)) return;
    const moved = offset.x !== 0 || offset.y !== 0;
    if (moved) {
      // Measured while it still is in the layout: where "back in its place" is.
      this.#home ??= node.getBoundingClientRect();
      const home = this.#home;
      node.style.position = "fixed";
      node.style.left = `${home.left + offset.x}px`;
      node.style.top = `${home.top + offset.y}px`;
      node.style.width = `${home.width}px`;
      node.style.height = `${home.height}px`;
      node.dataset.moved = "true";
    } else {
      this.#home = null;
      for (const prop of ["position", "left", "top", "width", "height"]) node.style.removeProperty(prop);
      delete node.dataset.moved;
      delete node.dataset.corner;
    }
  }

  /**
   * Moves the tile by (dx, dy), as far as the window allows: the whole picture stays on the
   * screen.
   * @param {HTMLElement} tile
   * @param {number} dx
   * @param {number} dy
   */
  #nudge(tile, dx, dy) {
    const rect = tile.getBoundingClientRect();
    const cx = Math.min(Math.max(dx, -rect.left), window.innerWidth - rect.right);
    const cy = Math.min(Math.max(dy, -rect.top), window.innerHeight - rect.bottom);
    // A window smaller than the picture: its top left corner stays in view.
    this.#move(tile, { x: this.#offset.x + Math.max(cx, -rect.left), y: this.#offset.y + Math.max(cy, -rect.top) });
  }

  /**
   * The keyboard: arrows move, Enter or Space goes to the next corner, Home puts it back.
   * Only on the tile itself (not its Hide button), on the phone layouts, while shown.
   * @param {HTMLElement} tile
   */
  #keys(tile) {
    tile.addEventListener("keydown", (ev) => {
      if (ev.target !== tile || !this.#phone.matches || this.#hidden || ev.altKey || ev.ctrlKey || ev.metaKey) return;
      const step = ev.shiftKey ? KEY_STEP_LARGE : KEY_STEP;
      /** @type {Record<string, [number, number]>} */
      const arrows = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
      const arrow = arrows[ev.key];
      if (arrow) {
        delete tile.dataset.corner;
        this.#nudge(tile, arrow[0], arrow[1]);
      } else if (ev.key === "Enter" || ev.key === " ") {
        const at = CORNERS.indexOf(/** @type {(typeof CORNERS)[number]} */ (tile.dataset.corner ?? ""));
        const corner = CORNERS[(at + 1) % CORNERS.length];
        const rect = tile.getBoundingClientRect();
        const left = corner.endsWith("left") ? CORNER_MARGIN : window.innerWidth - rect.width - CORNER_MARGIN;
        const top = corner.startsWith("top") ? CORNER_MARGIN : window.innerHeight - rect.height - CORNER_MARGIN;
        this.#nudge(tile, left - rect.left, top - rect.top);
        tile.dataset.corner = corner;
        const status = tile.querySelector(".self-status");
        if (status) tr(status, CORNER_KEYS[corner]);
      } else if (ev.key === "Home") {
        delete tile.dataset.corner;
        this.#move(tile, { x: 0, y: 0 });
        const status = tile.querySelector(".self-status");
        if (status) tr(status, "room.self.back_in_place");
      } else {
        return;
      }
      // The keys move the picture, not the page or the pictures' strip behind it.
      ev.preventDefault();
    });
  }

  /**
   * Pointer dragging, on the phone layouts only; the picture stays whole on the screen.
   * @param {HTMLElement} tile
   */
  #dragging(tile) {
    tile.addEventListener("pointerdown", (down) => {
      if (!this.#phone.matches || this.#hidden || (down.target instanceof Element && down.target.closest("button"))) return;
      const start = { x: down.clientX, y: down.clientY, offset: { ...this.#offset }, rect: tile.getBoundingClientRect() };
      let dragging = false;
      /** @param {PointerEvent} ev */
      const onMove = (ev) => {
        const dx = ev.clientX - start.x;
        const dy = ev.clientY - start.y;
        if (!dragging && Math.hypot(dx, dy) < DRAG_SLOP) return;
        dragging = true;
        delete tile.dataset.corner;
        // Clamped so that the whole picture stays in the window.
        const cx = Math.min(Math.max(dx, -start.rect.left), window.innerWidth - start.rect.right);
        const cy = Math.min(Math.max(dy, -start.rect.top), window.innerHeight - start.rect.bottom);
        this.#move(tile, { x: start.offset.x + cx, y: start.offset.y + cy });
        ev.preventDefault();
      };
      const onUp = () => {
        tile.removeEventListener("pointermove", onMove);
        tile.removeEventListener("pointerup", onUp);
        tile.removeEventListener("pointercancel", onUp);
      };
      tile.setPointerCapture(down.pointerId);
      tile.addEventListener("pointermove", onMove);
      tile.addEventListener("pointerup", onUp);
      tile.addEventListener("pointercancel", onUp);
    });
  }
}
