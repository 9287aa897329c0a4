// el(tag, attrs, ...children): one DOM element. attrs: "class" -> className, "dataset" -> data-*
// attributes, "onX" -> an event listener for X, anything else an attribute; children are nodes
// or text (null skipped). Text is set as text, never parsed as HTML.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  children.flat().forEach((c) => { if (c != null) node.append(c instanceof Node ? c : String(c)); });
  return node;
}
