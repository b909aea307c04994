// gpt-oss web chat, served by `gpt-oss serve` at `/` (crates/server/web/).
// Plain JavaScript, no build step, no external requests: it talks only to
// this server's /v1/models and /v1/responses (streamed, server-sent events).
//
// Safety rule: text from the model (or from local storage, which anyone with
// the browser can edit) reaches the DOM only through textContent and
// createTextNode, inside elements made with createElement. Nothing here
// parses HTML. The server's Content-Security-Policy also forbids inline
// script and enforces Trusted Types, so an HTML sink would throw.
//
// Conversations live in localStorage. Each turn sends the whole history as
// Responses input items (user and assistant `message` items; reasoning and
// tool items stay in the browser), not previous_response_id: the server's
// response store is in memory and bounded, so a conversation kept in the
// browser must survive a server restart. The server's prefix cache makes
// re-sending the history cheap.

"use strict";

(() => {
  const STORE_KEY = "gptoss.chat.conversations.v1";
  const CURRENT_KEY = "gptoss.chat.current";
  const EFFORT_KEY = "gptoss.chat.effort";
  const API_KEY_KEY = "gptoss.chat.apiKey"; // sessionStorage
  const EFFORTS = ["low", "medium", "high"];

  const $ = (id) => document.getElementById(id);
  const ui = {
    app: $("app"),
    sidebar: $("sidebar"),
    scrim: $("scrim"),
    toggleSidebar: $("toggle-sidebar"),
    newChat: $("new-chat"),
    list: $("conversations"),
    modelName: $("model-name"),
    effort: $("effort"),
    messages: $("messages"),
    empty: $("empty"),
    input: $("input"),
    send: $("send"),
    stop: $("stop"),
    status: $("status"),
    keyOverlay: $("key-overlay"),
    keyForm: $("key-form"),
    keyInput: $("api-key"),
    keyError: $("key-error"),
  };

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // ---------------------------------------------------------------------
  // Markdown: a small CommonMark subset, built as DOM nodes.
  // Blocks: paragraphs, ATX headings, fenced code, lists (nested by
  // indentation), block quotes, pipe tables, rules. Inline: code spans,
  // bold, italic, strikethrough, links and bare URLs (http and https only).
  // ---------------------------------------------------------------------

  const LIST_RE = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
  const FENCE_RE = /^(\s*)(`{3,}|~{3,})\s*([^`\s]*)/;
  const TABLE_SEP_RE = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;
  const BLANK_RE = /^\s*$/;

  function indentOf(line) {
    const m = /^[ \t]*/.exec(line);
    return m ? m[0].replace(/\t/g, "    ").length : 0;
  }

  function isBlockStart(line) {
    return (
      FENCE_RE.test(line) ||
      /^ {0,3}#{1,6}\s/.test(line) ||
      /^ {0,3}>/.test(line) ||
      /^ {0,3}([-*_])(\s*\1){2,}\s*$/.test(line) ||
      LIST_RE.test(line)
    );
  }

  function renderMarkdown(text) {
    const root = el("div", "md");
    appendBlocks(root, String(text).replace(/\r\n?/g, "\n").split("\n"));
    return root;
  }

  function appendBlocks(parent, lines) {
    let i = 0;
    let para = [];
    const flushPara = () => {
      if (para.length) {
        const p = el("p");
        appendInlineLines(p, para);
        parent.appendChild(p);
        para = [];
      }
    };
    while (i < lines.length) {
      const line = lines[i];
      let m;
      if (FENCE_RE.test(line)) {
        flushPara();
        const [node, next] = parseFence(lines, i);
        parent.appendChild(node);
        i = next;
        continue;
      }
      if (BLANK_RE.test(line)) {
        flushPara();
        i++;
        continue;
      }
      if ((m = /^ {0,3}(#{1,6})\s+(.*?)(\s+#+)?\s*$/.exec(line))) {
        flushPara();
        const h = el("h" + m[1].length);
        appendInline(h, m[2]);
        parent.appendChild(h);
        i++;
        continue;
      }
      if (/^ {0,3}([-*_])(\s*\1){2,}\s*$/.test(line) && para.length === 0) {
        parent.appendChild(el("hr"));
        i++;
        continue;
      }
      if (/^ {0,3}>/.test(line)) {
        flushPara();
        const inner = [];
        while (i < lines.length && /^ {0,3}>/.test(lines[i])) {
          inner.push(lines[i].replace(/^ {0,3}> ?/, ""));
          i++;
        }
        const quote = el("blockquote");
        appendBlocks(quote, inner);
        parent.appendChild(quote);
        continue;
      }
      if (line.includes("|") && i + 1 < lines.length && TABLE_SEP_RE.test(lines[i + 1]) && lines[i + 1].includes("-")) {
        flushPara();
        const [table, next] = parseTable(lines, i);
        parent.appendChild(table);
        i = next;
        continue;
      }
      if (LIST_RE.test(line)) {
        flushPara();
        const [list, next] = parseList(lines, i);
        parent.appendChild(list);
        i = next;
        continue;
      }
      para.push(line);
      i++;
    }
    flushPara();
  }

  // A fenced code block from lines[start]; an unclosed fence (an answer
  // still streaming) runs to the end.
  function parseFence(lines, start) {
    const m = FENCE_RE.exec(lines[start]);
    const indent = m[1].length;
    const fence = m[2];
    const lang = m[3] || "";
    const body = [];
    let i = start + 1;
    const closing = new RegExp("^\\s*" + (fence[0] === "`" ? "`" : "~") + "{" + fence.length + ",}\\s*$");
    while (i < lines.length && !closing.test(lines[i])) {
      let line = lines[i];
      // Drop the fence's own indentation from the body.
      const strip = Math.min(indent, indentOf(line));
      line = line.slice(strip);
      body.push(line);
      i++;
    }
    return [codeBlock(body.join("\n"), lang), Math.min(i + 1, lines.length)];
  }

  function codeBlock(code, lang) {
    const wrap = el("div", "codeblock");
    if (lang) wrap.appendChild(el("span", "code-lang", lang));
    const pre = el("pre");
    pre.appendChild(el("code", null, code));
    wrap.appendChild(pre);
    return wrap;
  }

  function splitRow(line) {
    let s = line.trim();
    if (s.startsWith("|")) s = s.slice(1);
    if (s.endsWith("|") && !s.endsWith("\\|")) s = s.slice(0, -1);
    const cells = [];
    let cell = "";
    let inCode = false;
    for (let i = 0; i < s.length; i++) {
      const c = s[i];
      if (c === "\\" && s[i + 1] === "|") {
        cell += "|";
        i++;
      } else if (c === "`") {
        inCode = !inCode;
        cell += c;
      } else if (c === "|" && !inCode) {
        cells.push(cell.trim());
        cell = "";
      } else {
        cell += c;
      }
    }
    cells.push(cell.trim());
    return cells;
  }

  function parseTable(lines, start) {
    const header = splitRow(lines[start]);
    const aligns = splitRow(lines[start + 1]).map((c) => {
      const left = c.startsWith(":");
      const right = c.endsWith(":");
      return left && right ? "center" : right ? "right" : left ? "left" : "";
    });
    const table = el("table");
    const thead = el("thead");
    const tr = el("tr");
    header.forEach((cell, idx) => {
      const th = el("th");
      if (aligns[idx]) th.style.textAlign = aligns[idx];
      appendInline(th, cell);
      tr.appendChild(th);
    });
    thead.appendChild(tr);
    table.appendChild(thead);
    const tbody = el("tbody");
    let i = start + 2;
    while (i < lines.length && !BLANK_RE.test(lines[i]) && lines[i].includes("|")) {
      const row = el("tr");
      const cells = splitRow(lines[i]);
      for (let idx = 0; idx < header.length; idx++) {
        const td = el("td");
        if (aligns[idx]) td.style.textAlign = aligns[idx];
        appendInline(td, cells[idx] || "");
        row.appendChild(td);
      }
      tbody.appendChild(row);
      i++;
    }
    table.appendChild(tbody);
    return [table, i];
  }

  function parseList(lines, start) {
    const first = LIST_RE.exec(lines[start]);
    const indent = indentOf(lines[start]);
    const ordered = /\d/.test(first[2]);
    const list = el(ordered ? "ol" : "ul");
    if (ordered) {
      const n = parseInt(first[2], 10);
      if (Number.isFinite(n) && n !== 1) list.start = n;
    }
    let item = null;
    const flushText = () => {
      if (item && item.text.length) {
        appendInlineLines(item.li, item.text);
        item.text = [];
      }
    };
    let i = start;
    while (i < lines.length) {
      const line = lines[i];
      if (BLANK_RE.test(line)) {
        // A blank line continues the list only if what follows belongs to it.
        let j = i + 1;
        while (j < lines.length && BLANK_RE.test(lines[j])) j++;
        if (j < lines.length) {
          const mj = LIST_RE.exec(lines[j]);
          const ind = indentOf(lines[j]);
          if ((mj && ind >= indent && /\d/.test(mj[2]) === ordered) || (!mj && ind > indent && item)) {
            if (item && item.text.length) item.text.push("");
            i = j;
            continue;
          }
        }
        break;
      }
      const m = LIST_RE.exec(line);
      const ind = indentOf(line);
      if (m && ind < indent) break;
      if (m && ind <= indent + 1) {
        if (/\d/.test(m[2]) !== ordered) break;
        flushText();
        item = { li: el("li"), text: [m[3]] };
        list.appendChild(item.li);
        i++;
        continue;
      }
      if (m && item) {
        flushText();
        const [sub, next] = parseList(lines, i);
        item.li.appendChild(sub);
        i = next;
        continue;
      }
      if (item && FENCE_RE.test(line) && ind > indent) {
        flushText();
        const [node, next] = parseFence(lines, i);
        item.li.appendChild(node);
        i = next;
        continue;
      }
      if (item && (ind > indent || !isBlockStart(line))) {
        item.text.push(line.trim());
        i++;
        continue;
      }
      break;
    }
    flushText();
    return [list, i];
  }

  // Lines of one paragraph: single newlines become line breaks (chat models
  // use them as such); blank lines inside list items separate paragraphs.
  function appendInlineLines(parent, lines) {
    lines.forEach((line, idx) => {
      if (idx > 0) parent.appendChild(el("br"));
      appendInline(parent, line.replace(/\s+$/, ""));
    });
  }

  // Only absolute http(s) URLs become links; anything else stays text.
  function safeUrl(href) {
    if (!/^https?:/i.test(href)) return null;
    try {
      const url = new URL(href);
      if (url.protocol === "http:" || url.protocol === "https:") return url.href;
    } catch (_) {
      // not a URL: stays text
    }
    return null;
  }

  function makeLink(labelText, href, labelIsMarkdown) {
    const url = safeUrl(href);
    if (!url) return null;
    const a = el("a");
    a.href = url;
    a.rel = "noopener noreferrer nofollow";
    a.target = "_blank";
    a.title = url;
    if (labelIsMarkdown) appendInline(a, labelText);
    else a.textContent = labelText;
    return a;
  }

  const ESCAPABLE = "\\`*_{}[]()#+-.!~|<>";

  // Index of the closing single `*`/`_` for an opening at from-1, or -1.
  function closingEmphasis(text, from, c) {
    for (let j = from + 1; j < text.length; j++) {
      if (text[j] === "\\") {
        j++;
        continue;
      }
      if (text[j] === "`") {
        const end = text.indexOf("`", j + 1);
        if (end === -1) return -1;
        j = end;
        continue;
      }
      if (text[j] !== c) continue;
      if (text[j + 1] === c) {
        j++;
        continue;
      }
      if (/\s/.test(text[j - 1])) continue;
      if (c === "_" && /\w/.test(text[j + 1] || "")) continue;
      return j;
    }
    return -1;
  }

  // Index of a closing `**`/`__`/`~~` at or after `from`, or -1: it must
  // follow a non-space, and `__` must not run into a word (`a__b`).
  function closingDouble(text, from, c) {
    let j = text.indexOf(c + c, from);
    while (j !== -1) {
      const before = text[j - 1] || "";
      const after = text[j + 2] || "";
      if (!/\s/.test(before) && !(c === "_" && /\w/.test(after))) return j;
      j = text.indexOf(c + c, j + 1);
    }
    return -1;
  }

  function appendInline(parent, text) {
    let buf = "";
    const flush = () => {
      if (buf) {
        parent.appendChild(document.createTextNode(buf));
        buf = "";
      }
    };
    let i = 0;
    while (i < text.length) {
      const c = text[i];
      const rest = text.slice(i);
      if (c === "\\" && i + 1 < text.length && ESCAPABLE.includes(text[i + 1])) {
        buf += text[i + 1];
        i += 2;
        continue;
      }
      if (c === "`") {
        let n = 1;
        while (text[i + n] === "`") n++;
        const fence = "`".repeat(n);
        const end = text.indexOf(fence, i + n);
        if (end !== -1) {
          flush();
          let code = text.slice(i + n, end);
          if (code.length > 2 && code.startsWith(" ") && code.endsWith(" ")) code = code.slice(1, -1);
          parent.appendChild(el("code", "inline", code));
          i = end + n;
          continue;
        }
        buf += fence;
        i += n;
        continue;
      }
      if ((c === "*" || c === "_" || c === "~") && text[i + 1] === c) {
        const end = closingDouble(text, i + 2, c);
        const leftOk = c !== "_" || !/\w/.test(text[i - 1] || "");
        if (end > i + 2 && leftOk && !/\s/.test(text[i + 2])) {
          flush();
          const node = el(c === "~" ? "del" : "strong");
          appendInline(node, text.slice(i + 2, end));
          parent.appendChild(node);
          i = end + 2;
          continue;
        }
        buf += c + c;
        i += 2;
        continue;
      }
      if ((c === "*" || c === "_") && text[i + 1] && !/\s/.test(text[i + 1]) && (c === "*" || !/\w/.test(text[i - 1] || ""))) {
        const end = closingEmphasis(text, i, c);
        if (end !== -1) {
          flush();
          const em = el("em");
          appendInline(em, text.slice(i + 1, end));
          parent.appendChild(em);
          i = end + 1;
          continue;
        }
      }
      if (c === "[") {
        const m = /^\[([^\]\n]*)\]\(\s*<?([^\s()<>]*(?:\([^\s()]*\)[^\s()<>]*)*)>?(?:\s+"[^"\n]*")?\s*\)/.exec(rest);
        if (m) {
          const link = makeLink(m[1], m[2], true);
          flush();
          if (link) parent.appendChild(link);
          else parent.appendChild(document.createTextNode(m[0]));
          i += m[0].length;
          continue;
        }
      }
      if ((c === "h" || c === "H") && !/\w/.test(text[i - 1] || "")) {
        const m = /^https?:\/\/[^\s<>"'`]+/i.exec(rest);
        if (m) {
          let url = m[0];
          // Trailing punctuation ends the sentence, not the URL.
          while (/[.,;:!?'")\]]$/.test(url) && !(url.endsWith(")") && url.includes("("))) url = url.slice(0, -1);
          const link = makeLink(url, url, false);
          if (link) {
            flush();
            parent.appendChild(link);
            i += url.length;
            continue;
          }
        }
      }
      buf += c;
      i++;
    }
    flush();
  }

  // ---------------------------------------------------------------------
  // Conversations (localStorage)
  // ---------------------------------------------------------------------

  function newId() {
    const bytes = new Uint8Array(8);
    crypto.getRandomValues(bytes);
    return "c_" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // Anything read back from storage is treated as untrusted input.
  function sanitizeConversation(c) {
    if (!c || typeof c !== "object" || !Array.isArray(c.turns)) return null;
    const turns = [];
    for (const t of c.turns) {
      if (!t || typeof t !== "object") continue;
      if (t.role === "user") turns.push({ role: "user", text: String(t.text ?? "") });
      else if (t.role === "assistant") {
        turns.push({
          role: "assistant",
          items: Array.isArray(t.items) ? t.items.filter((x) => x && typeof x === "object") : [],
          status: t.status === "streaming" ? "stopped" : String(t.status || "completed"),
          error: t.error ? String(t.error) : undefined,
          stats: t.stats && typeof t.stats === "object" ? t.stats : undefined,
          effort: EFFORTS.includes(t.effort) ? t.effort : undefined,
        });
      }
    }
    return {
      id: typeof c.id === "string" && c.id ? c.id : newId(),
      title: String(c.title ?? ""),
      created: Number(c.created) || Date.now(),
      updated: Number(c.updated) || Date.now(),
      turns,
    };
  }

  function loadConversations() {
    try {
      const raw = JSON.parse(localStorage.getItem(STORE_KEY) || "[]");
      if (!Array.isArray(raw)) return [];
      return raw.map(sanitizeConversation).filter(Boolean);
    } catch (_) {
      return [];
    }
  }

  let conversations = loadConversations();
  let current = null;
  let busy = null; // { controller, conv, turn, view, stopped }
  let modelId = null;
  let lastSave = 0;

  function save() {
    lastSave = Date.now();
    try {
      localStorage.setItem(STORE_KEY, JSON.stringify(conversations));
      if (current) localStorage.setItem(CURRENT_KEY, current.id);
      else localStorage.removeItem(CURRENT_KEY);
    } catch (e) {
      setStatus("Could not save the conversation in local storage: " + e.message, true);
    }
  }

  function setStatus(text, isError) {
    ui.status.textContent = text || "";
    ui.status.classList.toggle("error", Boolean(isError));
  }

  // ---------------------------------------------------------------------
  // Rendering turns
  // ---------------------------------------------------------------------

  function partsText(content) {
    if (typeof content === "string") return content;
    if (!Array.isArray(content)) return "";
    return content
      .map((p) => (p && typeof p === "object" ? String(p.text ?? "") : typeof p === "string" ? p : ""))
      .join("");
  }

  function answerText(turn) {
    return turn.items
      .filter((it) => it.type === "message")
      .map((it) => partsText(it.content))
      .join("\n\n");
  }

  function renderUserTurn(turn) {
    const wrap = el("div", "turn user");
    wrap.appendChild(el("div", "user-bubble", turn.text));
    return wrap;
  }

  function pretty(value) {
    if (typeof value === "string") {
      try {
        return JSON.stringify(JSON.parse(value), null, 2);
      } catch (_) {
        return value;
      }
    }
    try {
      return JSON.stringify(value, null, 2);
    } catch (_) {
      return String(value);
    }
  }

  function labelled(card, label, text, asCode) {
    if (text === undefined || text === null || text === "") return;
    card.appendChild(el("div", "tool-label", label));
    if (asCode) {
      const pre = el("pre");
      pre.appendChild(el("code", null, text));
      card.appendChild(pre);
    } else {
      card.appendChild(el("div", "tool-value", text));
    }
  }

  function isHandoff(item) {
    const names = [item.type, item.name, item.recipient, item.tool].map((x) => String(x || ""));
    return names.some((n) => n.startsWith("handoff") || n.includes("handoff"));
  }

  // A tool item as a compact card. Known shapes get a tailored view; any
  // other `*_call` item shows its fields, so new server-side tools appear
  // without a page change.
  function fillToolCard(card, item, outputs) {
    card.replaceChildren();
    card.className = "tool-card";
    const head = el("div", "tool-head");
    const kind = el("span", "tool-kind");
    const status = el("span", "tool-status", item.status ? String(item.status) : "");
    head.appendChild(kind);
    card.appendChild(head);
    const shown = new Set(["type", "id", "status", "call_id"]);
    const type = String(item.type || "tool");
    card.dataset.type = type;
    if (isHandoff(item)) {
      card.classList.add("handoff");
      const target = item.model || item.target || item.remote_model || item.destination || item.server_label || "remote model";
      kind.textContent = "Handoff \u2014 sent to " + String(target);
      ["model", "target", "remote_model", "destination", "server_label", "name", "recipient"].forEach((k) => shown.add(k));
      const args = item.arguments ?? item.task ?? item.input;
      labelled(card, "sent", args === undefined ? "" : pretty(args), true);
      ["arguments", "task", "input"].forEach((k) => shown.add(k));
    } else if (type === "function_call") {
      kind.textContent = "Function call \u00b7 " + String(item.name || "?");
      labelled(card, "arguments", pretty(item.arguments ?? ""), true);
      ["name", "arguments"].forEach((k) => shown.add(k));
    } else if (type === "web_search_call") {
      const action = item.action && typeof item.action === "object" ? item.action : {};
      kind.textContent = "Browser \u00b7 " + String(action.type || "search");
      labelled(card, "query", action.query, false);
      labelled(card, "page", action.url, false);
      labelled(card, "find", action.pattern, false);
      if (Array.isArray(action.sources) && action.sources.length) {
        card.appendChild(el("div", "tool-label", "sources"));
        card.appendChild(citationList(action.sources));
      }
      shown.add("action");
    } else if (type === "code_interpreter_call") {
      kind.textContent = "Python";
      labelled(card, "code", item.code, true);
      shown.add("code");
      shown.add("container_id");
      if (Array.isArray(item.outputs)) {
        shown.add("outputs");
        item.outputs.forEach((o) => {
          if (o && typeof o === "object") labelled(card, "output", o.logs ?? o.output ?? o.text ?? pretty(o), true);
        });
      }
    } else {
      kind.textContent = type.replace(/_call$/, "").replace(/_/g, " ") || "tool";
      if (item.name) kind.textContent += " \u00b7 " + String(item.name);
      shown.add("name");
    }
    // Whatever else the item carries (results, errors, new fields).
    for (const [key, value] of Object.entries(item)) {
      if (shown.has(key) || value === null || value === undefined || value === "") continue;
      if (Array.isArray(value) && value.length === 0) continue;
      labelled(card, key, typeof value === "string" ? value : pretty(value), true);
    }
    for (const out of outputs) {
      labelled(card, "result", pretty(out.output ?? ""), true);
    }
    head.appendChild(status);
  }

  function citationList(sources) {
    const ul = el("ul", "citations");
    sources.forEach((s) => {
      if (!s || typeof s !== "object") return;
      const li = el("li");
      const title = String(s.title || s.url || "source");
      const link = s.url ? makeLink(title, String(s.url), false) : null;
      li.appendChild(link || document.createTextNode(title));
      ul.appendChild(li);
    });
    return ul;
  }

  function messageCitations(item) {
    const found = [];
    if (!Array.isArray(item.content)) return found;
    for (const part of item.content) {
      if (!part || !Array.isArray(part.annotations)) continue;
      for (const a of part.annotations) {
        if (a && a.type === "url_citation" && a.url && !found.some((f) => f.url === a.url)) found.push(a);
      }
    }
    return found;
  }

  // The view of one assistant turn; `update()` re-renders it from the items.
  class AssistantView {
    constructor(turn) {
      this.turn = turn;
      this.root = el("div", "turn assistant");
      this.body = el("div", "assistant-items");
      this.meta = el("div", "answer-meta");
      this.root.appendChild(this.body);
      this.root.appendChild(this.meta);
      this.nodes = []; // per item index: { kind, node, ... }
      this.answerStarted = false;
      this.live = false;
      this.pending = false;
    }

    schedule() {
      if (this.pending) return;
      this.pending = true;
      requestAnimationFrame(() => {
        this.pending = false;
        this.update();
      });
    }

    update() {
      const items = this.turn.items;
      const outputsByCall = new Map();
      for (const it of items) {
        if (it && it.type === "function_call_output" && it.call_id) {
          const list = outputsByCall.get(it.call_id) || [];
          list.push(it);
          outputsByCall.set(it.call_id, list);
        }
      }
      items.forEach((item, idx) => {
        if (!item || typeof item !== "object") return;
        const type = String(item.type || "");
        if (type === "function_call_output" && item.call_id && items.some((x) => x && x.type === "function_call" && x.call_id === item.call_id)) {
          return; // shown in its call's card
        }
        let view = this.nodes[idx];
        const kind = type === "reasoning" ? "reasoning" : type === "message" ? "message" : "tool";
        if (!view || view.kind !== kind) {
          view = this.makeNode(kind);
          if (this.nodes[idx]) this.nodes[idx].node.replaceWith(view.node);
          else this.body.appendChild(view.node);
          this.nodes[idx] = view;
        }
        if (kind === "reasoning") {
          const text = partsText(item.content) || partsText(item.summary);
          if (view.text.textContent !== text) view.text.textContent = text;
          view.node.classList.toggle("live", this.live && !this.answerStarted);
          view.summary.textContent = this.live && !this.answerStarted ? "Thinking" : "Reasoning";
        } else if (kind === "message") {
          const text = partsText(item.content);
          if (view.rendered !== text) {
            view.rendered = text;
            view.body.replaceChildren(renderMarkdown(text));
            const cites = messageCitations(item);
            if (cites.length) {
              view.body.appendChild(el("div", "tool-label", "Sources"));
              view.body.appendChild(citationList(cites));
            }
          }
        } else {
          fillToolCard(view.node, item, outputsByCall.get(item.call_id) || []);
        }
      });
      this.updateMeta();
      this.root.dataset.status = this.turn.status;
    }

    makeNode(kind) {
      if (kind === "reasoning") {
        const node = el("details", "reasoning");
        const summary = el("summary", null, "Reasoning");
        const text = el("div", "reasoning-text");
        node.appendChild(summary);
        node.appendChild(text);
        // Live reasoning is shown open until the answer starts.
        node.open = this.live && !this.answerStarted;
        return { kind, node, summary, text };
      }
      if (kind === "message") {
        const body = el("div", "assistant-body");
        return { kind, node: body, body, rendered: null };
      }
      return { kind, node: el("div", "tool-card") };
    }

    collapseReasoning() {
      this.answerStarted = true;
      for (const v of this.nodes) if (v && v.kind === "reasoning") v.node.open = false;
    }

    updateMeta() {
      const t = this.turn;
      const parts = [];
      this.meta.className = "answer-meta";
      if (t.status === "streaming") {
        this.meta.textContent = "";
        return;
      }
      if (t.status === "stopped") {
        this.meta.classList.add("stopped");
        parts.push("stopped");
      } else if (t.status === "incomplete") {
        parts.push("incomplete (token limit)");
      } else if (t.status === "failed") {
        this.meta.classList.add("stopped");
        parts.push("failed");
      }
      const s = t.stats;
      if (s && typeof s === "object") {
        if (Number.isFinite(s.outputTokens)) parts.push(s.outputTokens + " tokens");
        if (Number.isFinite(s.tokensPerSecond)) parts.push(s.tokensPerSecond.toFixed(1) + " tok/s");
        if (Number.isFinite(s.seconds)) parts.push(s.seconds.toFixed(1) + " s");
      }
      if (t.effort) parts.push(t.effort + " effort");
      this.meta.textContent = parts.join(" \u00b7 ");
      if (t.error) {
        let err = this.root.querySelector(".answer-error");
        if (!err) {
          err = el("div", "answer-error");
          this.root.insertBefore(err, this.meta);
        }
        err.textContent = t.error;
      }
    }
  }

  function renderConversation() {
    ui.messages.replaceChildren();
    if (!current || current.turns.length === 0) {
      ui.messages.appendChild(ui.empty);
      return;
    }
    for (const turn of current.turns) {
      if (turn.role === "user") ui.messages.appendChild(renderUserTurn(turn));
      else {
        const view = busy && busy.turn === turn ? busy.view : new AssistantView(turn);
        view.update();
        ui.messages.appendChild(view.root);
      }
    }
    scrollToBottom(true);
  }

  function renderList() {
    ui.list.replaceChildren();
    const sorted = [...conversations].sort((a, b) => b.updated - a.updated);
    for (const c of sorted) {
      const li = el("li");
      if (current && c.id === current.id) li.classList.add("active");
      const title = el("button", "conv-title", c.title || "New chat");
      title.type = "button";
      title.title = c.title || "New chat";
      title.addEventListener("click", () => openConversation(c.id));
      const del = el("button", "conv-delete", "\u00d7");
      del.type = "button";
      del.title = "Delete conversation";
      del.setAttribute("aria-label", "Delete conversation");
      del.addEventListener("click", () => deleteConversation(c.id));
      li.appendChild(title);
      li.appendChild(del);
      ui.list.appendChild(li);
    }
  }

  function nearBottom() {
    const m = ui.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
  }

  function scrollToBottom(force) {
    if (force || nearBottom()) ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  function openConversation(id) {
    if (busy) stopGeneration();
    current = conversations.find((c) => c.id === id) || null;
    save();
    renderList();
    renderConversation();
    closeSidebar();
  }

  function newChat() {
    if (busy) stopGeneration();
    current = null;
    save();
    renderList();
    renderConversation();
    closeSidebar();
    setStatus("");
    ui.input.focus();
  }

  function deleteConversation(id) {
    if (busy && busy.conv.id === id) stopGeneration();
    conversations = conversations.filter((c) => c.id !== id);
    if (current && current.id === id) current = null;
    save();
    renderList();
    renderConversation();
  }

  // ---------------------------------------------------------------------
  // API
  // ---------------------------------------------------------------------

  function authHeaders() {
    const headers = {};
    let key = null;
    try {
      key = sessionStorage.getItem(API_KEY_KEY);
    } catch (_) {
      key = null;
    }
    if (key) headers.Authorization = "Bearer " + key;
    return headers;
  }

  async function errorMessage(resp) {
    try {
      const body = await resp.json();
      if (body && body.error && body.error.message) return String(body.error.message);
    } catch (_) {
      // not JSON
    }
    return "HTTP " + resp.status;
  }

  let keyPrompt = null; // the pending promise while the key dialog is open

  // Ask for the API key once; resolves when a key the server accepts is saved.
  function askForKey(message) {
    if (keyPrompt) return keyPrompt;
    ui.keyError.hidden = !message;
    ui.keyError.textContent = message || "";
    ui.keyOverlay.hidden = false;
    ui.keyInput.value = "";
    ui.keyInput.focus();
    keyPrompt = new Promise((resolve) => {
      const onSubmit = async (e) => {
        e.preventDefault();
        const key = ui.keyInput.value.trim();
        if (!key) return;
        const resp = await fetch("/v1/models", { headers: { Authorization: "Bearer " + key } }).catch(() => null);
        if (!resp) {
          ui.keyError.hidden = false;
          ui.keyError.textContent = "The server cannot be reached.";
          return;
        }
        if (resp.status === 401) {
          ui.keyError.hidden = false;
          ui.keyError.textContent = "The server refused this key.";
          return;
        }
        try {
          sessionStorage.setItem(API_KEY_KEY, key);
        } catch (_) {
          // storage disabled: the key is lost on reload, which is safe
        }
        ui.keyForm.removeEventListener("submit", onSubmit);
        ui.keyOverlay.hidden = true;
        keyPrompt = null;
        ui.input.focus();
        resolve(key);
      };
      ui.keyForm.addEventListener("submit", onSubmit);
    });
    return keyPrompt;
  }

  async function loadModel() {
    let resp;
    try {
      resp = await fetch("/v1/models", { headers: authHeaders() });
    } catch (_) {
      setStatus("The server cannot be reached.", true);
      return;
    }
    if (resp.status === 401) {
      try {
        sessionStorage.removeItem(API_KEY_KEY);
      } catch (_) {
        // nothing stored
      }
      await askForKey("");
      return loadModel();
    }
    if (!resp.ok) {
      setStatus(await errorMessage(resp), true);
      return;
    }
    try {
      const body = await resp.json();
      const first = body && Array.isArray(body.data) ? body.data[0] : null;
      if (first && first.id) {
        modelId = String(first.id);
        ui.modelName.textContent = modelId;
        document.title = modelId + " \u00b7 gpt-oss chat";
        ui.input.placeholder = "Message " + modelId + " (Enter sends, Shift+Enter new line)";
      }
    } catch (_) {
      setStatus("Unexpected /v1/models answer.", true);
    }
  }

  function inputItems(conv, upTo) {
    const items = [];
    for (const t of conv.turns) {
      if (t === upTo) break;
      if (t.role === "user") items.push({ type: "message", role: "user", content: t.text });
      else {
        const text = answerText(t);
        if (text) items.push({ type: "message", role: "assistant", content: text });
      }
    }
    return items;
  }

  // SSE framing: `event:`/`data:` lines, events end at a blank line.
  function sseParser(onEvent) {
    let buf = "";
    let data = [];
    let type = "";
    return (chunk, final) => {
      buf += chunk;
      for (;;) {
        const idx = buf.search(/[\r\n]/);
        if (idx === -1) break;
        if (buf[idx] === "\r" && idx === buf.length - 1 && !final) break; // \r\n may be split
        const line = buf.slice(0, idx);
        buf = buf.slice(idx + (buf[idx] === "\r" && buf[idx + 1] === "\n" ? 2 : 1));
        if (line === "") {
          if (data.length) onEvent(type || "message", data.join("\n"));
          data = [];
          type = "";
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let value = colon === -1 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") data.push(value);
        else if (field === "event") type = value;
      }
    };
  }

  function setBusy(on) {
    ui.send.hidden = on;
    ui.stop.hidden = !on;
    ui.app.dataset.state = on ? "streaming" : "idle";
  }

  async function sendMessage() {
    const text = ui.input.value;
    if (!text.trim() || busy) return;
    if (keyPrompt) {
      await keyPrompt;
    }
    if (!current) {
      current = { id: newId(), title: "", created: Date.now(), updated: Date.now(), turns: [] };
      conversations.push(current);
    }
    if (!current.title) current.title = text.trim().replace(/\s+/g, " ").slice(0, 60);
    current.turns.push({ role: "user", text });
    ui.input.value = "";
    autosize();
    const turn = { role: "assistant", items: [], status: "streaming", effort: ui.effort.value };
    current.turns.push(turn);
    current.updated = Date.now();
    save();
    renderList();
    await generate(current, turn);
  }

  async function generate(conv, turn) {
    const view = new AssistantView(turn);
    view.live = true;
    const controller = new AbortController();
    busy = { controller, conv, turn, view };
    renderConversation();
    setBusy(true);
    setStatus("");
    const body = {
      input: inputItems(conv, turn),
      reasoning: { effort: turn.effort },
      stream: true,
      store: false,
    };
    if (modelId) body.model = modelId;
    const started = performance.now();
    let firstToken = null;
    let needKey = false;
    const touch = () => {
      if (firstToken === null) firstToken = performance.now();
    };
    const items = turn.items;
    const itemAt = (idx) => {
      if (!Number.isInteger(idx) || idx < 0 || idx > 10000) return null;
      return items[idx] || null;
    };
    const appendPart = (item, delta, partType) => {
      if (!item) return;
      if (!Array.isArray(item.content) || item.content.length === 0) item.content = [{ type: partType, text: "" }];
      const part = item.content[0];
      part.text = String(part.text ?? "") + String(delta ?? "");
    };
    const onEvent = (_name, data) => {
      let ev;
      try {
        ev = JSON.parse(data);
      } catch (_) {
        return;
      }
      if (!ev || typeof ev !== "object") return;
      const type = String(ev.type || _name);
      const idx = ev.output_index;
      switch (type) {
        case "response.output_item.added":
          if (ev.item && typeof ev.item === "object" && Number.isInteger(idx) && idx >= 0 && idx <= 10000) {
            items[idx] = JSON.parse(JSON.stringify(ev.item));
          }
          break;
        case "response.reasoning_text.delta":
        case "response.reasoning_summary_text.delta":
          touch();
          appendPart(itemAt(idx), ev.delta, "reasoning_text");
          break;
        case "response.output_text.delta":
          touch();
          if (!view.answerStarted) view.collapseReasoning();
          appendPart(itemAt(idx), ev.delta, "output_text");
          break;
        case "response.output_text.annotation.added": {
          const item = itemAt(idx);
          if (item && ev.annotation) {
            if (!Array.isArray(item.content) || !item.content.length) item.content = [{ type: "output_text", text: "" }];
            const part = item.content[0];
            if (!Array.isArray(part.annotations)) part.annotations = [];
            part.annotations.push(ev.annotation);
          }
          break;
        }
        case "response.function_call_arguments.delta": {
          touch();
          const item = itemAt(idx);
          if (item) item.arguments = String(item.arguments ?? "") + String(ev.delta ?? "");
          break;
        }
        case "response.code_interpreter_call_code.delta": {
          touch();
          const item = itemAt(idx);
          if (item) item.code = String(item.code ?? "") + String(ev.delta ?? "");
          break;
        }
        case "response.output_item.done":
          if (ev.item && typeof ev.item === "object" && Number.isInteger(idx) && idx >= 0 && idx <= 10000) {
            items[idx] = JSON.parse(JSON.stringify(ev.item));
          }
          break;
        case "response.completed":
        case "response.incomplete": {
          const r = ev.response || {};
          if (Array.isArray(r.output) && r.output.length >= items.filter(Boolean).length) {
            items.length = 0;
            r.output.forEach((it) => items.push(it));
          }
          turn.status = type === "response.completed" ? "completed" : "incomplete";
          const end = performance.now();
          const outputTokens = r.usage && Number.isFinite(r.usage.output_tokens) ? r.usage.output_tokens : null;
          const genSeconds = (end - (firstToken ?? started)) / 1000;
          turn.stats = {
            outputTokens: outputTokens ?? undefined,
            seconds: (end - started) / 1000,
            tokensPerSecond: outputTokens && genSeconds > 0 ? outputTokens / genSeconds : undefined,
          };
          break;
        }
        case "response.failed": {
          const r = ev.response || {};
          turn.status = "failed";
          turn.error = r.error && r.error.message ? String(r.error.message) : "The generation failed.";
          break;
        }
        case "error":
          turn.status = "failed";
          turn.error = String(ev.message || (ev.error && ev.error.message) || "Server error.");
          break;
        default: {
          // Tool progress events (response.web_search_call.searching, ...).
          const m = /^response\.([a-z_]+_call)\.([a-z_]+)$/.exec(type);
          const item = itemAt(idx);
          if (m && item) item.status = m[2];
        }
      }
      view.schedule();
      if (Date.now() - lastSave > 1000) save();
    };

    try {
      const resp = await fetch("/v1/responses", {
        method: "POST",
        headers: Object.assign({ "Content-Type": "application/json", Accept: "text/event-stream" }, authHeaders()),
        body: JSON.stringify(body),
        signal: controller.signal,
      });
      if (resp.status === 401) {
        needKey = true;
        turn.status = "failed";
        turn.error = "The server needs an API key.";
      } else if (!resp.ok || !resp.body) {
        turn.status = "failed";
        turn.error = await errorMessage(resp);
      } else {
        const parse = sseParser(onEvent);
        const reader = resp.body.getReader();
        const decoder = new TextDecoder();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parse(decoder.decode(value, { stream: true }), false);
        }
        parse(decoder.decode() + "\n\n", true);
        if (turn.status === "streaming") {
          turn.status = "failed";
          turn.error = "The stream ended before the response was complete.";
        }
      }
    } catch (e) {
      if (busy && busy.stopped) {
        turn.status = "stopped";
        turn.stats = { seconds: (performance.now() - started) / 1000 };
      } else {
        turn.status = "failed";
        turn.error = "Connection error: " + (e && e.message ? e.message : String(e));
      }
    }
    busy = null;
    view.live = false;
    view.collapseReasoning();
    conv.updated = Date.now();
    view.update();
    setBusy(false);
    save();
    renderList();
    scrollToBottom(false);
    if (needKey) {
      try {
        sessionStorage.removeItem(API_KEY_KEY);
      } catch (_) {
        // nothing stored
      }
      await askForKey("The server needs an API key.");
      // Retry the same turn with the key.
      const at = conv.turns.indexOf(turn);
      if (at !== -1) {
        const again = { role: "assistant", items: [], status: "streaming", effort: turn.effort };
        conv.turns[at] = again;
        await generate(conv, again);
      }
    }
  }

  function stopGeneration() {
    if (!busy) return;
    busy.stopped = true;
    busy.controller.abort();
  }

  // ---------------------------------------------------------------------
  // Wiring
  // ---------------------------------------------------------------------

  function autosize() {
    ui.input.style.height = "auto";
    ui.input.style.height = Math.min(ui.input.scrollHeight + 2, 200) + "px";
  }

  function closeSidebar() {
    ui.app.classList.remove("sidebar-open");
  }

  ui.input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      sendMessage();
    } else if (e.key === "Escape" && busy) {
      stopGeneration();
    }
  });
  ui.input.addEventListener("input", autosize);
  ui.send.addEventListener("click", () => sendMessage());
  ui.stop.addEventListener("click", () => stopGeneration());
  ui.newChat.addEventListener("click", () => newChat());
  ui.toggleSidebar.addEventListener("click", () => ui.app.classList.toggle("sidebar-open"));
  ui.scrim.addEventListener("click", closeSidebar);
  ui.effort.addEventListener("change", () => {
    try {
      localStorage.setItem(EFFORT_KEY, ui.effort.value);
    } catch (_) {
      // not persisted
    }
  });
  window.addEventListener("storage", (e) => {
    // Another tab changed the conversations: pick them up when idle.
    if (e.key === STORE_KEY && !busy) {
      conversations = loadConversations();
      current = current ? conversations.find((c) => c.id === current.id) || null : null;
      renderList();
      renderConversation();
    }
  });

  try {
    const effort = localStorage.getItem(EFFORT_KEY);
    if (EFFORTS.includes(effort)) ui.effort.value = effort;
  } catch (_) {
    // default effort
  }
  let currentId = null;
  try {
    currentId = localStorage.getItem(CURRENT_KEY);
  } catch (_) {
    currentId = null;
  }
  current = conversations.find((c) => c.id === currentId) || null;
  setBusy(false);
  renderList();
  renderConversation();
  autosize();
  ui.input.focus();
  loadModel().then(() => {
    ui.app.dataset.ready = "1";
  });
})();
