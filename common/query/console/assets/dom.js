// Building the page from data. Every string becomes a text node (or an attribute set with
// setAttribute): nothing here ever parses a string as HTML, so document text, titles, file
// names and error messages are shown as they are, never run.

const SVG = "http://www.w3.org/2000/svg";

function build(el, props, children) {
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.setAttribute("class", value);
    else if (name === "text") el.textContent = String(value);
    else if (name === "on") {
      for (const [event, handler] of Object.entries(value)) el.addEventListener(event, handler);
    } else if (name.startsWith("on")) {
      throw new Error("event handlers go in `on`");
    } else if (name === "href" && !String(value).startsWith("#")) {
      throw new Error("only links within the console");
    } else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** An HTML element: h("p", {class: "x"}, "text", h("b", {}, "bold")). */
export function h(tag, props, ...children) {
  return build(document.createElement(tag), props, children);
}

/** An SVG element, for the usage charts. */
export function s(tag, props, ...children) {
  return build(document.createElementNS(SVG, tag), props, children);
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

export function show(el, visible) {
  el.hidden = !visible;
}

export const byId = (id) => document.getElementById(id);

/** A definition list's entries: [[term, value], ...]; values are text or nodes. */
export function fields(dl, entries) {
  replace(
    dl,
    entries
      .filter(([, value]) => value !== null && value !== undefined && value !== "")
      .map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]),
  );
}

export function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${unit ? value.toFixed(value < 10 ? 1 : 0) : value} ${units[unit]}`;
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

/** Text of an attribute value (lists joined, everything else as JSON shows it). */
export function valueText(value) {
  if (Array.isArray(value)) return value.map(valueText).join(", ");
  if (value !== null && typeof value === "object") return JSON.stringify(value);
  return String(value);
}

let announceTimer = 0;
/** Say something to screen readers without moving focus. */
export function announce(message) {
  const region = byId("announcer");
  if (!region) return;
  clearTimeout(announceTimer);
  region.textContent = "";
  announceTimer = setTimeout(() => {
    region.textContent = message;
  }, 50);
}
