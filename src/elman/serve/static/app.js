// The playground of `elman serve`: plain browser JavaScript over the JSON API of docs/serve.md.
// No build step and nothing fetched from elsewhere: the page must work offline, next to the server.
"use strict";

const $ = (selector) => document.querySelector(selector);
const state = { models: [], limits: {} };
const tips = new WeakMap(); // element -> function building its tooltip's content

// ---- small helpers ----

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function svg(tag, attrs = {}, text = "") {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

// four significant digits, without trailing zeros: 205.1, -21.3, 0.9631
function fmt(x) {
  if (typeof x !== "number" || !Number.isFinite(x)) return String(x);
  return Math.abs(x) >= 1000 ? x.toFixed(0) : String(Number(x.toPrecision(4)));
}

// probabilities span many orders of magnitude: percent while readable, then scientific
const fmtProb = (p) => (p >= 0.001 ? `${Number((100 * p).toPrecision(3))}%` : p.toExponential(1));

// ---- the API and its errors ----

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new Error(`Network error: the server cannot be reached (${err.message}).`);
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    // not JSON (a proxy's error page, say): reported below with the status
  }
  if (!response.ok) {
    const e = data && data.error;
    throw new Error(e ? `${e.message} (${e.code}, HTTP ${response.status})`
      : `HTTP ${response.status} ${response.statusText} from ${path}`);
  }
  if (data === null) throw new Error(`The answer of ${path} is not JSON.`);
  return data;
}

function showError(message) {
  $("#error").hidden = false; // shown before it is filled, so screen readers announce the text
  $("#error-text").textContent = message;
}

// Every form runs through here, so no failure can leave a blank view: the message is shown,
// and the button is off while a request runs (a second Enter does not send it twice).
function onSubmit(form, handler) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    try {
      await handler();
      $("#error").hidden = true;
    } catch (err) {
      showError(err.message);
    } finally {
      button.disabled = false;
      form.removeAttribute("aria-busy");
    }
  });
}

// ---- tabs (the WAI-ARIA pattern: buttons, arrow keys move between them) ----

function selectTab(tab) {
  for (const other of document.querySelectorAll("[role=tab]")) {
    const on = other === tab;
    other.setAttribute("aria-selected", String(on));
    other.tabIndex = on ? 0 : -1;
    document.getElementById(other.getAttribute("aria-controls")).hidden = !on;
  }
  hideTip();
  history.replaceState(null, "", `#${tab.id.slice(4)}`);
  if (tab.id === "tab-results") loadResults();
}

function setupTabs() {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = tabs[(i + step + tabs.length) % tabs.length];
      next.focus();
      selectTab(next);
    });
  });
  const start = tabs.find((tab) => `#${tab.id.slice(4)}` === location.hash);
  if (start) selectTab(start);
}

// ---- one tooltip for the whole page, on hover and on keyboard focus alike ----

function showTip(target) {
  const tip = $("#tooltip");
  tip.replaceChildren(...tips.get(target)());
  tip.hidden = false;
  target.setAttribute("aria-describedby", "tooltip");
  // below the target, but kept inside the viewport: a tooltip must not make a phone scroll sideways
  const box = target.getBoundingClientRect();
  const width = document.documentElement.clientWidth;
  const left = Math.max(4, Math.min(box.left, width - tip.offsetWidth - 4));
  tip.style.left = `${left + window.scrollX}px`;
  tip.style.top = `${box.bottom + window.scrollY + 4}px`;
}

function hideTip() {
  $("#tooltip").hidden = true;
  for (const node of document.querySelectorAll("[aria-describedby=tooltip]")) {
    node.removeAttribute("aria-describedby");
  }
}

function setupTips() {
  const owner = (event) => {
    const node = event.target.closest && event.target.closest("[data-tip]");
    return node && tips.has(node) ? node : null;
  };
  for (const type of ["mouseover", "focusin"]) {
    document.addEventListener(type, (event) => owner(event) && showTip(owner(event)));
  }
  for (const type of ["mouseout", "focusout"]) {
    document.addEventListener(type, (event) => {
      const node = owner(event);
      // moving onto a child of the same element is not leaving it
      if (node && !(event.relatedTarget && node.contains(event.relatedTarget))) hideTip();
    });
  }
  document.addEventListener("keydown", (event) => event.key === "Escape" && hideTip());
}

function withTip(node, build) {
  node.dataset.tip = "";
  tips.set(node, build);
  return node;
}

// ---- the models, and the views they make possible ----

const able = (ability) => state.models.filter((m) => (m.abilities || []).includes(ability));

async function loadModels() {
  try {
    const data = await api("api/models");
    state.models = data.models || [];
    state.limits = data.limits || {};
  } catch (err) {
    showError(`Cannot list the models: ${err.message}`);
  }
  $("#models").textContent = state.models.length
    ? `Models: ${state.models.map((m) => `${m.name} (${m.kind})`).join(", ")}`
    : "No models are loaded.";
  enableViews();
  document.body.dataset.ready = "true"; // for tests: the forms now reflect the models
}

// A view whose ability no loaded model has says so and turns its form off, instead of
// failing on submit.
function enable(form, models, note, select) {
  form.querySelector("fieldset").disabled = models.length === 0;
  note.hidden = models.length > 0;
  if (select) select.replaceChildren(...models.map((m) => el("option", { text: m.name })));
}

function enableViews() {
  enable($("#lm-form"), able("score"), $("#view-lm > .unavailable"));
  enable($("#gen-form"), able("generate"), $("#gen-form .unavailable"), $("#gen-model"));
  enable($("#tr-form"), able("translate"), $("#view-translate > .unavailable"), $("#tr-model"));
  enable($("#tag-form"), able("tag"), $("#view-tag > .unavailable"), $("#tag-model"));
  const { max_generate_tokens: maxTokens, max_beam: maxBeam } = state.limits;
  if (maxTokens) $("#gen-tokens").max = maxTokens;
  if (maxBeam) $("#tr-nbest").max = maxBeam;
}

// ---- language models: surprisal of each token ----

// The colour scale tops out at 16 bits (a 1-in-65536 token): the same scale for every model,
// so the cards can be compared side by side.
const MAX_BITS = 16;

function surprisalColour(bits) {
  const x = Math.min(Math.max(bits, 0) / MAX_BITS, 1);
  return `hsl(${120 - 120 * x}, 75%, ${88 - 18 * x}%)`; // green (expected) to red (surprising)
}

function drawLegend() {
  const stops = [0, 4, 8, 12, 16];
  const swatches = stops.map((b) => {
    const swatch = el("span", { class: "swatch", text: b === MAX_BITS ? `${b}+` : String(b) });
    swatch.style.background = surprisalColour(b);
    return swatch;
  });
  $("#lm-legend").replaceChildren(
    el("span", { text: "surprisal (bits):" }), ...swatches,
    el("span", { class: "token unknown", text: "unk" }), el("span", { text: "unknown to the model" }),
  );
  $("#lm-legend").hidden = false;
}

function tokenTip(t) {
  const top = (t.top || []).map((a) => el("li", {}, el("span", { text: a.token }),
    el("span", { class: "num", text: fmtProb(a.prob) })));
  return [
    el("strong", { text: t.token }),
    el("div", { text: `P = ${fmtProb(Math.exp(t.logprob))} · ${fmt(t.surprisal)} bits` }),
    ...(t.unknown ? [el("div", { text: "unknown to this model (scored as <unk>)" })] : []),
    el("div", { class: "muted", text: `expected here (top ${top.length}):` }),
    el("ol", { class: "top" }, ...top),
  ];
}

function tokenSpan(t) {
  const span = el("span", {
    class: t.unknown ? "token unknown" : "token", tabindex: "0", "data-testid": "token",
    "aria-label": `${t.token}: ${fmt(t.surprisal)} bits${t.unknown ? ", unknown" : ""}`,
  }, t.token);
  span.style.background = surprisalColour(t.surprisal);
  return withTip(span, () => tokenTip(t));
}

function resultCard(r) {
  const name = r.weights ? `${r.model} (weights ${r.weights.map(fmt).join(", ")})` : r.model;
  const stats = el("p", { class: "stats" },
    "perplexity ", el("strong", { id: `lm-ppl-${r.model}`, "data-testid": "ppl", text: fmt(r.ppl) }),
    " · log-prob ", el("span", { id: `lm-logprob-${r.model}`, text: fmt(r.logprob) }),
    ` nats · ${r.tokens} tokens${r.oovs ? ` · ${r.oovs} unknown` : ""}`);
  return el("article", { class: "card", "data-model": r.model },
    el("h3", { text: name }), stats, el("p", { class: "tokens" }, ...r.per_token.map(tokenSpan)));
}

// The word LMs are scored (and mixed, when there are two or more); other levels only alone.
function lmChoice() {
  const scorers = able("score");
  const words = scorers.filter((m) => (m.level || "word") === "word");
  return words.length ? { models: words, mix: words.length >= 2 } : { models: scorers, mix: false };
}

async function scoreText() {
  const { models, mix } = lmChoice();
  const data = await api("api/score", {
    text: $("#lm-input").value, models: models.map((m) => m.name), mix, top_k: 5,
  });
  drawLegend();
  $("#lm-results").replaceChildren(...data.results.map(resultCard));
}

async function generate() {
  const seed = $("#gen-seed").value;
  const data = await api("api/generate", {
    model: $("#gen-model").value, prompt: $("#gen-prompt").value,
    tokens: Number($("#gen-tokens").value), temperature: Number($("#gen-temp").value),
    seed: seed === "" ? null : Number(seed),
  });
  const rest = data.text.startsWith(data.prompt) ? data.text.slice(data.prompt.length) : ` ${data.text}`;
  $("#gen-output").replaceChildren(el("strong", { text: data.prompt }), rest);
}

// ---- translation: the n-best list and the attention heat map ----

async function translate() {
  const model = $("#tr-model").value;
  const info = state.models.find((m) => m.name === model) || {};
  const nBest = Number($("#tr-nbest").value);
  const data = await api("api/translate", {
    model, text: $("#tr-input").value, n_best: nBest,
    beam: Math.min(Math.max(nBest, 5), state.limits.max_beam || 20), attention: info.attention !== false,
  });
  $("#tr-nbest-list").replaceChildren(...data.translations.map((t) => el("li", { class: "translation" },
    el("span", { class: "text", text: t.text }),
    el("span", { class: "muted", text: ` score ${fmt(t.score)} · log-prob ${fmt(t.logprob)}` }))));
  const best = data.translations[0];
  $("#tr-heatmap").replaceChildren(...(data.attention && best
    ? heatmap(best.pieces, data.source_pieces, data.attention)
    : [el("p", { class: "muted", text: "This model has no attention to show." })]));
}

// An SVG grid: one row per target piece, one column per source piece, darker = more weight.
// Sizes are in pixels, so a long sentence scrolls inside its box rather than shrinking unreadably.
function heatmap(rows, cols, weights) {
  const cell = 28;
  const charWidth = 7.5;
  const longest = (pieces) => Math.max(1, ...pieces.map((p) => p.length));
  const left = 10 + charWidth * longest(rows);
  const top = 10 + charWidth * longest(cols);
  const map = svg("svg", {
    width: left + cell * cols.length + 4, height: top + cell * rows.length + 4, role: "img",
    "aria-label": `Attention: ${rows.length} English pieces by ${cols.length} German pieces`,
  });
  cols.forEach((piece, j) => {
    const x = left + j * cell + cell / 2 + 4;
    map.append(svg("text", { x, y: top - 6, transform: `rotate(-90 ${x} ${top - 6})`, class: "col" }, piece));
  });
  rows.forEach((piece, i) => {
    const y = top + i * cell + cell / 2;
    map.append(svg("text", { x: left - 6, y, "text-anchor": "end", "dominant-baseline": "middle" }, piece));
    cols.forEach((source, j) => {
      const w = (weights[i] || [])[j] || 0;
      const rect = svg("rect", { x: left + j * cell, y: top + i * cell, width: cell - 1, height: cell - 1,
        fill: `hsl(220, 70%, ${97 - 62 * w}%)`, class: "cell", "data-testid": "heat-cell" });
      rect.append(svg("title", {}, `${piece} ← ${source}: ${fmt(w)}`));
      map.append(rect);
    });
  });
  const caption = "Attention of the best translation: rows its pieces, columns the German pieces; darker = more weight.";
  return [el("p", { class: "muted", text: caption }), map];
}

// ---- tagging ----

function tagItem(t) {
  const bar = el("span", { class: "bar" }, el("span"));
  bar.firstChild.style.width = `${Math.round(100 * t.prob)}%`;
  const word = el("span", { class: t.unknown ? "word unseen" : "word", text: t.word });
  const item = el("li", { class: "tagged-word", tabindex: "0", "data-testid": "tagged" },
    word, el("span", { class: "tag", text: t.tag }), bar, el("span", { class: "num", text: fmtProb(t.prob) }));
  return withTip(item, () => [
    el("strong", { text: t.word + (t.unknown ? " (unseen in training)" : "") }),
    el("ol", { class: "top" }, ...(t.top || []).map((a) => el("li", {},
      el("span", { text: a.tag }), el("span", { class: "num", text: fmtProb(a.prob) })))),
  ]);
}

async function tagText() {
  const data = await api("api/tag", { model: $("#tag-model").value, text: $("#tag-input").value });
  $("#tag-output").replaceChildren(...data.tokens.map(tagItem));
  $("#tag-legend").hidden = false;
}

// ---- results: the committed table and its plots, fetched when the tab is first opened ----

const MAIN_METRICS = ["ppl", "bpc", "bleu", "chrf", "accuracy", "unseen_accuracy", "mse"];

function mainMetrics(metrics) {
  const m = (metrics && (metrics.test || metrics.valid)) || metrics || {};
  // two decimals as in the results tables of the docs (BLEU 40.00, not 40); small ones by precision
  const show = (x) => (Math.abs(x) >= 1 ? x.toFixed(2) : String(Number(x.toPrecision(3))));
  return MAIN_METRICS.filter((k) => typeof m[k] === "number").map((k) => `${k} ${show(m[k])}`).join(" · ");
}

let resultsLoaded = false;

async function loadResults() {
  if (resultsLoaded) return;
  resultsLoaded = true;
  try {
    const data = await api("api/results");
    const heads = ["Recipe", "Task", "Dataset", "Metrics"]; // data-label: the heading on phones
    const rows = (data.results || []).map((r) => el("tr", {},
      ...[r.recipe, r.task, r.dataset, mainMetrics(r.metrics)].map((v, i) => el("td",
        { text: v || "—", "data-label": heads[i] }))));
    $("#results-table tbody").replaceChildren(...rows);
    $("#results-table").hidden = rows.length === 0;
    $("#results-status").textContent = rows.length ? `${rows.length} results.` : "No committed results.";
    $("#plots").replaceChildren(...(data.plots || []).map((name) => el("figure", {},
      el("img", { src: `api/plots/${encodeURIComponent(name)}`, alt: `plot: ${name}`, loading: "lazy" }),
      el("figcaption", { text: name }))));
  } catch (err) {
    resultsLoaded = false; // opening the tab again retries
    $("#results-status").textContent = "The results could not be loaded.";
    showError(err.message);
  }
}

// ---- start ----

function init() {
  setupTabs();
  setupTips();
  $("#error-close").addEventListener("click", () => { $("#error").hidden = true; });
  $("#gen-temp").addEventListener("input", () => {
    $("#gen-temp-value").textContent = Number($("#gen-temp").value).toFixed(1);
  });
  onSubmit($("#lm-form"), scoreText);
  onSubmit($("#gen-form"), generate);
  onSubmit($("#tr-form"), translate);
  onSubmit($("#tag-form"), tagText);
  loadModels();
}

init();
