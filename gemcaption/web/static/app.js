// The search page: sends queries to POST /api/search and shows the hits as a grid of cards.
// A search is kept in the URL (?q=words or ?id=N, with &label= and &per_page=): links can be shared
// and Back/Forward restore earlier searches (their results are kept in the history state).
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const status = $("status"), results = $("results"), queryBox = $("query"), moreButton = $("more");
  const viewer = $("viewer"), labelFilter = $("label-filter"), perPageInput = $("per-page");
  const defaultK = parseInt(document.body.dataset.defaultK, 10);
  const maxK = parseInt(document.body.dataset.maxK, 10);
  const uploads = new Map(); // upload key -> {file, preview}: files cannot go into the URL
  let current = null; // {request, label, perPage, data}: the search on screen
  let sequence = 0; // answers to an older request than the latest are dropped
  let viewed = -1; // index in current.data.results of the result in the full-size view
  let opener = null; // the card that opened the full-size view (focus returns to it)

  function perPage() {
    const value = parseInt(perPageInput.value, 10);
    return Number.isFinite(value) ? Math.min(Math.max(value, 1), maxK) : defaultK;
  }

  function label() {
    return labelFilter ? labelFilter.value : "";
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function say(message, kind) {
    status.replaceChildren();
    status.className = kind || "";
    if (kind === "busy") status.appendChild(element("span", "spinner"));
    status.appendChild(element("span", null, message));
    results.setAttribute("aria-busy", kind === "busy" ? "true" : "false");
  }

  // -- the URL and the history -----------------------------------------------------------------
  function urlFor(request, labelValue, count) {
    const params = new URLSearchParams();
    if (request.kind === "text") params.set("q", request.text);
    else if (request.kind === "id") params.set("id", String(request.id));
    else params.set("upload", request.name);
    if (labelValue) params.set("label", labelValue);
    if (count !== defaultK) params.set("per_page", String(count));
    return location.pathname + "?" + params.toString();
  }

  const pageTitle = document.title;

  function titleFor(request) {
    if (!request) return pageTitle;
    if (request.kind === "text") return "\u201c" + request.text + "\u201d \u2013 " + pageTitle;
    return (request.kind === "id" ? "Images like " + request.id : "Images like " + request.name) + " \u2013 " + pageTitle;
  }

  function remember(mode) {
    document.title = titleFor(current.request);
    const state = { request: current.request, label: current.label, perPage: current.perPage, data: current.data };
    const url = urlFor(current.request, current.label, current.perPage);
    if (mode === "push") history.pushState(state, "", url);
    else history.replaceState(state, "", url);
  }

  function setControls(state) {
    perPageInput.value = String(state.perPage || defaultK);
    if (labelFilter) labelFilter.value = state.label || "";
    $("text-input").value = state.request && state.request.kind === "text" ? state.request.text : "";
  }

  function requestFromUrl() {
    const params = new URLSearchParams(location.search);
    const count = parseInt(params.get("per_page"), 10);
    const state = { label: params.get("label") || "", perPage: Number.isFinite(count) ? count : defaultK };
    if (params.get("q")) state.request = { kind: "text", text: params.get("q") };
    else if (/^[0-9]+$/.test(params.get("id") || "")) state.request = { kind: "id", id: parseInt(params.get("id"), 10) };
    else if (params.get("upload")) state.upload = params.get("upload");
    return state;
  }

  // -- showing results -------------------------------------------------------------------------
  function previewOf(request) {
    if (request.kind === "id") return "/images/" + request.id;
    const upload = uploads.get(request.key);
    return upload ? upload.preview : null;
  }

  function showQuery(request, data) {
    queryBox.replaceChildren();
    const preview = request.kind === "text" ? null : previewOf(request);
    if (preview) {
      const img = element("img");
      img.src = preview;
      img.alt = request.kind === "id" ? "the indexed image searched by" : "your image";
      queryBox.appendChild(img);
    }
    const words = element("div", "query-text");
    if (request.kind === "text") words.appendChild(element("p", "query-title", "Results for \u201c" + request.text + "\u201d"));
    else {
      const title = request.kind === "id" ? "Images like indexed image " + request.id : "Images like " + request.name;
      words.appendChild(element("p", "query-title", title));
      if (data.query && data.query.caption) {
        const what = request.kind === "id" ? "Its caption" : "Generated caption";
        words.appendChild(element("p", "muted", what + ": \u201c" + data.query.caption + "\u201d"));
      }
    }
    if (data.label) words.appendChild(element("p", "muted", "Only images labelled \u201c" + data.label + "\u201d"));
    queryBox.appendChild(words);
  }

  function card(hit, position) {
    const node = element("figure", "result");
    node.tabIndex = 0;
    node.setAttribute("role", "button");
    node.setAttribute("aria-label", "Result " + hit.rank + ": " + hit.caption + ". Open full size");
    node.dataset.id = hit.id;
    const img = element("img");
    img.src = hit.image_url;
    img.alt = hit.caption;
    img.loading = "lazy";
    img.width = 200;
    img.height = 200;
    node.appendChild(img);
    const caption = element("figcaption");
    const meta = element("p", "meta");
    meta.appendChild(element("span", "rank", "#" + hit.rank));
    const score = element("span", "score", hit.score.toFixed(3));
    score.title = "similarity to your search (1 is the most similar)";
    meta.appendChild(score);
    if (hit.label) meta.appendChild(element("span", "label", hit.label));
    caption.appendChild(meta);
    caption.appendChild(element("p", "caption", hit.caption));
    node.appendChild(caption);
    node.addEventListener("click", () => openViewer(position, node));
    node.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        openViewer(position, node);
      }
    });
    return node;
  }

  function summary(data) {
    if (data.warning) return { text: data.warning.charAt(0).toUpperCase() + data.warning.slice(1) + ": try other words.", kind: "warning" };
    if (!data.results.length) return { text: data.label ? "No image labelled \u201c" + data.label + "\u201d matches." : "No results.", kind: "" };
    const count = data.results.length + (data.results.length === 1 ? " result" : " results");
    return { text: count + (data.has_more ? " shown; more below." : "."), kind: "" };
  }

  function render(append) {
    const data = current.data;
    showQuery(current.request, data);
    const start = append ? results.children.length : 0;
    if (!append) results.replaceChildren();
    data.results.slice(start).forEach((hit, i) => results.appendChild(card(hit, start + i)));
    moreButton.hidden = !data.has_more;
    const line = summary(data);
    say(line.text, line.kind);
  }

  // -- asking the server -----------------------------------------------------------------------
  function body(request, offset, count, labelValue) {
    if (request.kind === "image") {
      const form = new FormData();
      form.append("image", uploads.get(request.key).file);
      form.append("k", String(count));
      form.append("offset", String(offset));
      if (labelValue) form.append("label", labelValue);
      return { body: form, headers: {} };
    }
    const json = request.kind === "text" ? { text: request.text } : { id: request.id };
    Object.assign(json, { k: count, offset: offset });
    if (labelValue) json.label = labelValue;
    return { body: JSON.stringify(json), headers: { "Content-Type": "application/json" } };
  }

  async function ask(request, offset, count, labelValue) {
    const mine = ++sequence;
    const slow = request.kind === "image" ? " (the first image search can take several seconds)" : "";
    say((request.kind === "image" ? "Captioning your image and searching\u2026" : "Searching\u2026") + slow, "busy");
    moreButton.disabled = true;
    try {
      const sent = body(request, offset, count, labelValue);
      const response = await fetch("/api/search", { method: "POST", body: sent.body, headers: sent.headers });
      let data = null;
      try { data = await response.json(); } catch (e) { data = null; }
      if (mine !== sequence) return null;
      if (!response.ok) {
        say((data && data.error) || "Error " + response.status, "error");
        return null;
      }
      return data;
    } catch (e) {
      if (mine === sequence) say("The server did not answer: " + e, "error");
      return null;
    } finally {
      if (mine === sequence) moreButton.disabled = false;
    }
  }

  async function search(request, mode) {
    if (request.kind === "image" && !uploads.has(request.key)) {
      say("Drop or pick " + request.name + " again to search by it.", "error");
      return;
    }
    const count = perPage(), labelValue = label();
    showQuery(request, { label: labelValue }); // the new query on top at once, its results to come
    results.replaceChildren();
    moreButton.hidden = true;
    const data = await ask(request, 0, count, labelValue);
    if (!data) return;
    current = { request: request, label: labelValue, perPage: count, data: data };
    render(false);
    remember(mode);
  }

  async function showMore() {
    if (!current) return;
    if (current.request.kind === "image" && !uploads.has(current.request.key)) {
      say("Drop or pick " + current.request.name + " again to see more results.", "error");
      return;
    }
    const shown = current.data.results.length;
    const data = await ask(current.request, shown, current.perPage, current.label);
    if (!data) return;
    current.data = Object.assign({}, data, { results: current.data.results.concat(data.results) });
    render(true);
    remember("replace");
    const next = results.children[shown];
    if (next) next.focus();
  }

  // -- the full-size view ----------------------------------------------------------------------
  function showInViewer(position) {
    const hits = current.data.results;
    viewed = position;
    const hit = hits[position];
    $("viewer-image").src = hit.image_url;
    $("viewer-image").alt = hit.caption;
    const meta = ["Result " + hit.rank, "score " + hit.score.toFixed(3), "id " + hit.id];
    if (hit.label) meta.push("label " + hit.label);
    $("viewer-meta").textContent = meta.join(" \u00b7 ");
    $("viewer-caption").textContent = hit.caption;
    const refs = $("viewer-references");
    refs.replaceChildren();
    if (hit.captions && hit.captions.length) {
      refs.appendChild(element("p", "muted", "Reference captions:"));
      const list = element("ul");
      hit.captions.forEach((text) => list.appendChild(element("li", null, text)));
      refs.appendChild(list);
    }
    $("viewer-previous").disabled = position === 0;
    $("viewer-next").disabled = position === hits.length - 1;
  }

  function openViewer(position, from) {
    opener = from;
    showInViewer(position);
    if (!viewer.open) viewer.showModal();
    $("viewer-close").focus();
  }

  viewer.addEventListener("close", () => {
    if (opener && document.body.contains(opener)) opener.focus();
  });
  viewer.addEventListener("keydown", (event) => {
    if (event.key === "ArrowLeft" && viewed > 0) showInViewer(viewed - 1);
    else if (event.key === "ArrowRight" && viewed < current.data.results.length - 1) showInViewer(viewed + 1);
  });
  viewer.addEventListener("click", (event) => { // a click on the backdrop, beside the view, closes it
    const box = viewer.getBoundingClientRect();
    const inside = event.clientX >= box.left && event.clientX <= box.right && event.clientY >= box.top && event.clientY <= box.bottom;
    if (event.target === viewer && !inside) viewer.close();
  });
  $("viewer-close").addEventListener("click", () => viewer.close());
  $("viewer-previous").addEventListener("click", () => showInViewer(viewed - 1));
  $("viewer-next").addEventListener("click", () => showInViewer(viewed + 1));
  $("viewer-similar").addEventListener("click", () => {
    const hit = current.data.results[viewed];
    opener = null;
    viewer.close();
    search({ kind: "id", id: hit.id }, "push");
  });

  // -- the controls ----------------------------------------------------------------------------
  $("text-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("text-input").value.trim();
    if (!text) { say("Type some words to search for.", "error"); return; }
    search({ kind: "text", text: text }, "push");
  });

  function searchImage(file) {
    if (!file) return;
    const key = String(uploads.size + 1) + ":" + file.name;
    uploads.set(key, { file: file, preview: URL.createObjectURL(file) });
    search({ kind: "image", key: key, name: file.name || "your image" }, "push");
  }

  $("image-input").addEventListener("change", (event) => {
    searchImage(event.target.files[0]);
    event.target.value = ""; // picking the same file again searches again
  });
  const zone = $("image-form");
  zone.addEventListener("submit", (event) => event.preventDefault());
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    searchImage(event.dataTransfer.files[0]);
  });
  moreButton.addEventListener("click", showMore);
  if (labelFilter) labelFilter.addEventListener("change", () => { if (current) search(current.request, "push"); });
  perPageInput.addEventListener("change", () => { if (current) search(current.request, "push"); });

  // -- arriving on the page, Back and Forward --------------------------------------------------
  function restore(state) {
    if (viewer.open) { opener = null; viewer.close(); }
    sequence++; // an answer still on its way belongs to the page we left
    if (state && state.data) {
      setControls(state);
      current = { request: state.request, label: state.label, perPage: state.perPage, data: state.data };
      document.title = titleFor(current.request);
      render(false);
      return;
    }
    const wanted = requestFromUrl();
    setControls(wanted);
    current = null;
    document.title = pageTitle;
    results.replaceChildren();
    queryBox.replaceChildren();
    moreButton.hidden = true;
    if (wanted.request) search(wanted.request, "replace");
    else if (wanted.upload) say("This link was a search by an uploaded image (" + wanted.upload + "): drop or pick it again.", "");
    else say("", "");
  }

  window.addEventListener("popstate", (event) => restore(event.state));
  restore(requestFromUrl().request ? null : history.state); // a shared link runs its search again
})();
