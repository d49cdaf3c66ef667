// Tiny DOM helpers. Text is always set with textContent, never innerHTML, so names and titles
// typed by people can never inject markup.

/**
 * Creates an element.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {{className?: string, text?: string, attrs?: Record<string, string>}} [opts]
 * @param {...(Node | string)} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, opts = {}, ...children) {
  const node = document.createElement(tag);
  if (opts.className) node.className = opts.className;
  if (opts.text !== undefined) node.textContent = opts.text;
  for (const [name, value] of Object.entries(opts.attrs ?? {})) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

/**
 * Looks up an element that the page markup must contain, with its expected type, so a missing
 * or renamed element fails loudly at start-up instead of as a null dereference later.
 * @template {Element} T
 * @param {string} selector
 * @param {new (...args: any[]) => T} type
 * @param {ParentNode} [root]
 * @returns {T}
 */
export function must(selector, type, root = document) {
  const node = root.querySelector(selector);
  if (!(node instanceof type)) throw new Error(`page markup is missing ${selector}`);
  return node;
}

/**
 * Human label for a room role.
 * @param {string} role
 * @returns {string}
 */
export function roleLabel(role) {
  switch (role) {
    case "doctor":
      return "Doctor";
    case "specialist":
      return "Specialist";
    case "patient":
      return "Patient";
    case "observer":
      return "Observer";
    default:
      return role;
  }
}

/**
 * Saves an object URL's content as a file named `name`, then releases the URL.
 * @param {string} href
 * @param {string} name
 */
export function saveObjectUrl(href, name) {
  const a = document.createElement("a");
  a.href = href;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(href), 10_000);
}
