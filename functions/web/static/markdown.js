// A small, safe Markdown subset rendered straight into DOM nodes.
//
// The answer's text is never parsed as HTML: every piece becomes a text node inside an
// element we chose, so "<script>" in an answer is shown as the characters "<script>".
// Blocks: paragraphs, headings, bullet and numbered lists, quotes, fenced code.
// Inline: `code`, **bold**, *italic*, [text](https://link), and [n] references to sources.

import { el } from "./common.js";

const INLINE = new RegExp(
  [
    "`([^`\\n]+)`", // 1: code
    "\\*\\*([^*\\n]+)\\*\\*", // 2: bold
    "\\*([^*\\s][^*\\n]*)\\*", // 3: italic
    "\\[([^\\]\\n]+)\\]\\((https?://[^\\s)]+)\\)", // 4, 5: link
    "\\[(\\d{1,3})\\]", // 6: a reference to a source
  ].join("|"),
  "g",
);

function safeLink(href) {
  try {
    const url = new URL(href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

/** Inline pieces of one line; ref(n) gives the node for a reference [n], or null. */
function inline(text, ref) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    last = m.index + m[0].length;
    if (m[1] !== undefined) out.push(el("code", { text: m[1] }));
    else if (m[2] !== undefined) out.push(el("strong", {}, inline(m[2], ref)));
    else if (m[3] !== undefined) out.push(el("em", {}, inline(m[3], ref)));
    else if (m[4] !== undefined) {
      const href = safeLink(m[5]);
      out.push(href
        ? el("a", { href, target: "_blank", rel: "noopener noreferrer nofollow", text: m[4] })
        : m[0]);
    } else {
      out.push(ref(Number(m[6])) ?? m[0]);
    }
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

function withBreaks(lines, ref) {
  const out = [];
  lines.forEach((line, i) => {
    if (i) out.push(el("br"));
    out.push(...inline(line, ref));
  });
  return out;
}

const BULLET = /^\s*[-*+]\s+(.*)$/;
const NUMBERED = /^\s*\d{1,3}[.)]\s+(.*)$/;
const HEADING = /^(#{1,6})\s+(.*)$/;
const QUOTE = /^>\s?(.*)$/;
const FENCE = /^\s*```/;

/** The blocks of `text` as a DocumentFragment. */
export function renderMarkdown(text, ref = () => null) {
  const fragment = document.createDocumentFragment();
  const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i += 1;
    } else if (FENCE.test(line)) {
      const code = [];
      i += 1;
      while (i < lines.length && !FENCE.test(lines[i])) code.push(lines[i++]);
      i += 1; // the closing fence (or the end of a still-streaming answer)
      fragment.append(el("pre", {}, el("code", { text: code.join("\n") })));
    } else if (HEADING.test(line)) {
      const [, hashes, title] = HEADING.exec(line);
      // Headings inside an answer sit below the page's own: h3 at most.
      fragment.append(el(`h${Math.min(6, hashes.length + 2)}`, {}, inline(title, ref)));
      i += 1;
    } else if (BULLET.test(line) || NUMBERED.test(line)) {
      const pattern = BULLET.test(line) ? BULLET : NUMBERED;
      const list = el(pattern === BULLET ? "ul" : "ol");
      while (i < lines.length && pattern.test(lines[i])) {
        list.append(el("li", {}, inline(pattern.exec(lines[i])[1], ref)));
        i += 1;
      }
      fragment.append(list);
    } else if (QUOTE.test(line)) {
      const quoted = [];
      while (i < lines.length && QUOTE.test(lines[i])) quoted.push(QUOTE.exec(lines[i++])[1]);
      fragment.append(el("blockquote", {}, withBreaks(quoted, ref)));
    } else {
      const para = [];
      while (i < lines.length && lines[i].trim() && !FENCE.test(lines[i]) &&
             !HEADING.test(lines[i]) && !BULLET.test(lines[i]) && !NUMBERED.test(lines[i]) &&
             !QUOTE.test(lines[i])) {
        para.push(lines[i++]);
      }
      fragment.append(el("p", {}, withBreaks(para, ref)));
    }
  }
  return fragment;
}
