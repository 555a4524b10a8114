// The few DOM helpers every part of the page uses. Strings always become text nodes, never markup.

export const $ = (id) => document.getElementById(id);

// An element with attributes (`on...` ones are listeners; false or null ones are left out) and children.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value == null) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  node.append(...children.filter((child) => child != null));
  return node;
}

// The page's one status line.
export function say(text, isError = false) {
  $('message').textContent = text;
  $('message').className = isError ? 'error' : '';
}
