// The search page: sends queries to POST /api/search and shows the hits as a grid.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const status = $("status"), results = $("results"), queryBox = $("query");

  function k() {
    const value = parseInt($("k-input").value, 10);
    return Number.isFinite(value) ? value : parseInt(document.body.dataset.defaultK, 10);
  }

  function say(message, isError) {
    status.textContent = message;
    status.className = isError ? "error" : "";
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function showQuery(query, previewUrl) {
    queryBox.replaceChildren();
    if (previewUrl) {
      const img = element("img");
      img.src = previewUrl;
      img.alt = "query image";
      queryBox.appendChild(img);
    }
    let text = "";
    if (query.kind === "text") text = "Text: \u201c" + query.text + "\u201d";
    else if (query.caption) text = "Generated caption: \u201c" + query.caption + "\u201d";
    queryBox.appendChild(element("p", "query-text", text));
  }

  function showResults(data, previewUrl) {
    showQuery(data.query, previewUrl);
    results.replaceChildren();
    for (const hit of data.results) {
      const card = element("figure", "result");
      card.dataset.id = hit.id;
      card.title = "Search by this image";
      const img = element("img");
      img.src = hit.image_url;
      img.alt = hit.caption;
      img.loading = "lazy";
      card.appendChild(img);
      const caption = element("figcaption");
      caption.appendChild(element("span", "score", hit.score.toFixed(3)));
      caption.appendChild(element("p", "caption", hit.caption));
      if (hit.captions && hit.captions.length) caption.appendChild(element("p", "refs", hit.captions.join(" / ")));
      card.appendChild(caption);
      card.addEventListener("click", () => searchById(hit.id, hit.image_url));
      results.appendChild(card);
    }
    say(data.results.length + " results", false);
  }

  async function send(body, headers, previewUrl) {
    say("Searching\u2026", false);
    try {
      const response = await fetch("/api/search", { method: "POST", body: body, headers: headers || {} });
      let data = null;
      try { data = await response.json(); } catch (e) { data = null; }
      if (!response.ok) {
        say((data && data.error) || ("Error " + response.status), true);
        return;
      }
      showResults(data, previewUrl);
    } catch (e) {
      say("The server did not answer: " + e, true);
    }
  }

  function searchImage(file) {
    if (!file) return;
    const form = new FormData();
    form.append("image", file);
    form.append("k", String(k()));
    send(form, null, URL.createObjectURL(file));
  }

  function searchById(id, imageUrl) {
    send(JSON.stringify({ id: id, k: k() }), { "Content-Type": "application/json" }, imageUrl);
  }

  $("text-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("text-input").value.trim();
    if (!text) { say("Type some words to search for.", true); return; }
    send(JSON.stringify({ text: text, k: k() }), { "Content-Type": "application/json" }, null);
  });

  $("image-input").addEventListener("change", (event) => searchImage(event.target.files[0]));

  const zone = $("image-form");
  zone.addEventListener("submit", (event) => event.preventDefault());
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    searchImage(event.dataTransfer.files[0]);
  });
})();
