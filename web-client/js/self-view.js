// Your own picture in the room, on a small screen: a small tile beside the others' pictures
// (the layout in app.css keeps it off the active speaker), which you can hide to a button
// ("Hide" / "Show me") and, on a phone, drag anywhere on the screen.
//
// It only decorates the local tile that room-view.js makes (`.tile-local` in #tiles): it adds
// the hide button when the tile appears and moves the tile with a CSS translate. Whether you
// are shown at all to the others does not change: that is the camera button's job.
//
// DOM contract (tests/browser relies on it): `.self-toggle` in `.tile-local` (aria-pressed true
// while hidden), `#tiles[data-self-hidden]`, `.tile-local[data-moved]` once dragged.

import { tr } from "./i18n.js";

/** The layouts where the picture can be dragged: the phone layouts of app.css. */
export const PHONE_LAYOUT = "(max-width: 600px), (max-height: 500px) and (orientation: landscape)";
/** Movement below this (CSS px) is a tap, not a drag. */
const DRAG_SLOP = 6;

export class SelfView {
  /** @type {HTMLElement} */
  #tiles;
  #hidden = false;
  /** @type {{x: number, y: number}} how far the tile was moved from where the layout puts it */
  #offset = { x: 0, y: 0 };
  #phone = window.matchMedia(PHONE_LAYOUT);

  /** @param {HTMLElement} tiles #tiles */
  constructor(tiles) {
    this.#tiles = tiles;
    new MutationObserver(() => this.#decorate()).observe(tiles, { childList: true });
    // Turning the phone, or leaving the phone layout (a wider window), puts the picture back
    // in its place: where it was put may be off the screen now.
    const reset = () => this.#move(null, { x: 0, y: 0 });
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
    tile.append(button);
    this.#render(button);
    this.#offset = { x: 0, y: 0 };
    this.#move(tile, this.#offset);
    this.#dragging(tile);
  }

  /** @param {boolean} hidden */
  setHidden(hidden) {
    this.#hidden = hidden;
    const button = this.#tiles.querySelector(".tile-local .self-toggle");
    if (button instanceof HTMLElement) this.#render(button);
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
   * @param {HTMLElement | null} tile null: the current local tile, if any
   * @param {{x: number, y: number}} offset
   */
  #move(tile, offset) {
    const node = tile ?? this.#tiles.querySelector(".tile-local");
    this.#offset = offset;
    if (!(node instanceof HTMLElement)) return;
    const moved = offset.x !== 0 || offset.y !== 0;
    node.style.translate = moved ? `${offset.x}px ${offset.y}px` : "";
    if (moved) node.dataset.moved = "true";
    else delete node.dataset.moved;
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
