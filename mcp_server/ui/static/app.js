// FleetForge dashboard: confirmations, and a run page that follows its events live (SSE).
// Stored text is only ever set with textContent: never as markup.
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) event.preventDefault();
});

function followRun(root) {
  const runId = root.getAttribute("data-run");
  const live = document.getElementById("live");
  const body = document.querySelector("#events tbody");
  const graph = document.getElementById("graph");
  const base = "/ui/runs/" + encodeURIComponent(runId);
  const source = new EventSource(base + "/stream?after=" + root.getAttribute("data-after"));
  let refreshing = null;

  function refreshGraph() {
    if (refreshing) return;
    refreshing = setTimeout(async () => {
      refreshing = null;
      const reply = await fetch(graph.getAttribute("data-src"), { credentials: "same-origin" });
      if (!reply.ok) return;
      const text = await reply.text();
      const doc = new DOMParser().parseFromString(text, "image/svg+xml");
      const svg = doc.documentElement;
      if (svg.nodeName !== "svg") return;
      graph.replaceChildren(document.importNode(svg, true));
      const status = svg.getAttribute("data-run-status");
      const badge = document.querySelector("#run-status .badge");
      if (status && badge) {
        badge.textContent = status;
        badge.className = "badge st-" + status;
      }
    }, 150);
  }

  source.onopen = () => {
    live.textContent = "(live)";
    document.body.setAttribute("data-live", "open");
  };
  source.onerror = () => {
    live.textContent = "(reconnecting…)";
    document.body.setAttribute("data-live", "closed");
  };
  source.addEventListener("fleet", (message) => {
    const event = JSON.parse(message.data);
    if (body.querySelector('tr[data-seq="' + event.seq + '"]')) return;
    const row = document.createElement("tr");
    row.setAttribute("data-seq", String(event.seq));
    row.className = "new";
    for (const value of [String(event.seq), event.at.slice(11, 23), event.type]) {
      const cell = document.createElement("td");
      cell.textContent = value;
      row.appendChild(cell);
    }
    row.children[1].title = event.at;
    const data = document.createElement("td");
    const code = document.createElement("code");
    code.textContent = event.summary;
    data.appendChild(code);
    row.appendChild(data);
    body.appendChild(row);
    if (/^(step_|run_|task_leased|receipt_)/.test(event.type)) refreshGraph();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("run");
  if (root) followRun(root);
});
