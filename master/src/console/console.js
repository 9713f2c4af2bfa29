// Refreshes the overview from /api/status every two seconds and plots the
// master's samples of the last minutes. No libraries: it must work offline.
"use strict";

function draw(id, series, colors) {
  const c = document.getElementById(id);
  if (!c) return;
  const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  g.strokeStyle = "#ddd";
  g.strokeRect(0, 0, c.width, c.height);
  series.forEach((values, k) => {
    const max = Math.max(1e-9, ...values.map(Math.abs));
    g.strokeStyle = colors[k];
    g.beginPath();
    values.forEach((v, i) => {
      const x = values.length < 2 ? 0 : (i / (values.length - 1)) * (c.width - 4) + 2;
      const y = c.height - 14 - (Math.max(0, v) / max) * (c.height - 24);
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.stroke();
    g.fillStyle = colors[k];
    g.font = "11px sans-serif";
    const last = values.length ? values[values.length - 1] : 0;
    g.fillText((k ? "" : "now ") + last.toFixed(1) + "  max " + max.toFixed(1), 4 + k * 160, c.height - 2);
  });
}

function setText(id, text) {
  const e = document.getElementById(id);
  if (e) e.textContent = text;
}

async function refresh() {
  try {
    const r = await fetch("/api/status", { cache: "no-store" });
    if (!r.ok) throw new Error("status " + r.status);
    const s = await r.json();
    setText("role", s.role);
    setText("files", String(s.files));
    setText("chunks", String(s.chunks));
    for (const cs of s.chunkservers) {
      const row = document.querySelector('tr[data-id="' + CSS.escape(cs.id) + '"] td.state');
      if (row) {
        const state = cs.alive ? cs.state : (cs.state === "alive" ? "dead" : cs.state);
        row.textContent = state;
        row.className = "state state-" + state;
      }
    }
    if (s.repair) {
      setText("r-chunks", String(s.repair.chunks));
      setText("r-under", String(s.repair.under_replicated));
      setText("r-missing", String(s.repair.missing));
      setText("r-settled", s.repair.settled ? "yes" : "no");
      setText("r-eta", s.repair.eta_s == null ? "-" : s.repair.eta_s.toFixed(0) + " s");
    }
    const h = s.history;
    draw("c-changes", [h.map((x) => x.rpcs_per_s), h.map((x) => x.changes_per_s)], ["#4a90d9", "#6a3d9a"]);
    draw("c-stored", [h.map((x) => x.stored_bytes_per_s / 1e6)], ["#1b7a2f"]);
    draw("c-repair", [h.map((x) => x.repair_bytes_per_s / 1e6), h.map((x) => x.under_replicated)], ["#a05a00", "#b00020"]);
    setText("updated", "Updated " + new Date().toLocaleTimeString() + " (every 2 s).");
  } catch (e) {
    setText("updated", "Could not refresh: " + e.message);
  }
}

if (document.getElementById("c-changes")) {
  refresh();
  setInterval(refresh, 2000);
}
