// The launcher status page: polls /status.json and redraws in place.
//
// Everything is built with DOM calls and textContent, never innerHTML, so
// a request's requestor or a cloud's error message cannot inject markup.
// Strings arrive with control characters already escaped by the server
// (the function the CLI's tables use), so they are shown, not obeyed.
// A failed poll keeps the last data on screen and shows a banner; the next
// successful poll hides it.
"use strict";

const POLL_MS = 2000;
const page = { updates: 0, loadedAt: Date.now(), lastError: null };
window.nodepoolStatus = page;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "title") node.title = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function replace(id, ...children) {
  document.getElementById(id).replaceChildren(...children);
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "";
  let s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  const pad = (n) => String(n).padStart(2, "0");
  if (d) return `${d}d ${pad(h)}h`;
  if (h) return `${h}h ${pad(m)}m`;
  if (m) return `${m}m ${pad(s)}s`;
  return `${s}s`;
}

function num(value, digits = 2) {
  if (value === null || value === undefined) return "∞";
  return Number.isInteger(value) ? String(value) : value.toFixed(digits);
}

// "host-PoolWorker.<provider>-<pool>-<uuid>" -> "<provider>-<pool>"
function poolName(workerId) {
  const match = /PoolWorker\.(.+)-[0-9a-f]{32}$/.exec(workerId);
  return match ? match[1] : workerId;
}

function quotaCell(quota) {
  const keys = Object.keys(quota.limit).concat(
    Object.keys(quota.used).filter((k) => !(k in quota.limit)));
  if (!keys.length) return el("span", { class: "muted" }, "unlimited");
  const box = el("div", { class: "quota" });
  for (const key of keys.sort()) {
    const used = quota.used[key] || 0;
    const limit = quota.limit[key];
    const row = el("div", { class: "quota-row", "data-resource": key },
      el("span", { class: "quota-key" }, key),
      el("span", { class: "quota-num" },
        limit === undefined ? `${num(used)}` : `${num(used)} / ${num(limit)}`));
    if (limit !== undefined && limit > 0) {
      const bar = el("span", { class: "bar" });
      const fill = el("span", { class: used >= limit ? "fill full" : "fill" });
      fill.style.width = `${Math.min(100, (100 * used) / limit)}%`;
      bar.append(fill);
      row.append(bar);
    }
    box.append(row);
  }
  return box;
}

function table(headers, rows, attrs) {
  return el("table", attrs || {},
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows));
}

function poolTable(provider) {
  const rows = provider.pools.map((pool) => el("tr", {
      "data-pool": `${provider.name}/${pool.name}`,
      "data-paused": String(pool.paused) },
    el("td", {}, pool.name),
    el("td", {}, el("span", { class: pool.paused ? "badge warn" : "badge ok" },
      pool.paused ? "paused" : "running")),
    el("td", {}, pool.requests_in_progress),
    el("td", {}, pool.addressable_requests),
    el("td", {}, num(pool.max_servers)),
    el("td", {}, quotaCell(pool.quota)),
    el("td", {}, pool.labels.join(", "))));
  return table(["Pool", "State", "Requests", "Addressable", "Max servers",
                "Quota used / limit", "Labels"], rows, { class: "pools" });
}

function machinery(provider) {
  const parts = [];
  if (provider.rate_limiters.length) {
    parts.push(table(["Rate limiter", "Rate/s", "Effective/s", "Tokens",
                      "Next call in", "Calls", "Waits", "Waited", "Throttled"],
      provider.rate_limiters.map((x) => el("tr", { "data-limiter": x.name },
        el("td", {}, x.name), el("td", {}, x.rate ? num(x.rate) : "unlimited"),
        el("td", {}, x.effective_rate ? num(x.effective_rate) : "unlimited"),
        el("td", {}, x.tokens === null ? "unlimited" : num(x.tokens, 2)),
        el("td", {}, `${num(x.delay, 3)} s`), el("td", {}, x.calls),
        el("td", {}, x.waits), el("td", {}, `${num(x.wait_seconds)} s`),
        el("td", { class: x.throttled ? "warn-text" : "" }, x.throttled)))));
  }
  if (provider.create_pools.length) {
    parts.push(table(["Create pool", "Busy", "Workers", "Queued"],
      provider.create_pools.map((x) => el("tr", { "data-create-pool": x.name },
        el("td", {}, x.name), el("td", {}, x.busy), el("td", {}, x.workers),
        el("td", {}, x.queued)))));
  }
  if (provider.batchers.length) {
    parts.push(table(["Batcher", "Batches", "Items", "Retries", "Recent sizes"],
      provider.batchers.map((x) => el("tr", { "data-batcher": x.name },
        el("td", {}, x.name), el("td", {}, x.batches), el("td", {}, x.items),
        el("td", {}, x.retries), el("td", {}, x.recent_sizes.join(" "))))));
  }
  return el("div", { class: "machinery" }, ...parts);
}

function offeringTable(provider, now) {
  const offerings = (provider.offerings_unavailable || [])
    .map((o) => ({ ...o, kind: "unavailable" }))
    .concat((provider.offerings_short || [])
      .map((o) => ({ ...o, kind: "short" })));
  if (!offerings.length) return null;
  return table(["Offering short of capacity", "State", "Until in",
                "Strikes", "Pools", "Cloud said"],
    offerings.map((o) => el("tr", { "data-offering": o.offering },
      el("td", {}, o.offering),
      el("td", {}, o.kind),
      el("td", {}, age(o.until - now)),
      el("td", {}, o.strikes),
      el("td", {}, Object.entries(o.pools)
        .map(([pool, labels]) => `${pool}: ${labels.join(", ")}`).join("; ")),
      el("td", { class: "warn-text" }, o.reason))),
    { class: "offerings" });
}

function launchSummary(launches) {
  const results = Object.keys(launches).sort();
  if (!results.length) return el("span", { class: "muted" }, "no launches yet");
  return el("span", { class: "chips" }, ...results.map((result) => el("span", {
      class: result === "ready" ? "chip ok" : "chip bad",
      "data-result": result,
      title: `mean ${num(launches[result].mean_seconds, 3)} s` },
    `${result}: ${launches[result].count}`)));
}

function renderProviders(providers, now) {
  replace("provider-list", ...providers.map((p) => el("article", {
      class: "provider", "data-provider": p.name },
    el("h3", {}, p.name, el("span", { class: "driver" }, p.driver)),
    el("dl", {},
      el("dt", {}, "Launching"), el("dd", { "data-field": "active" },
        p.active_launches),
      el("dt", {}, "Launches"), el("dd", {}, launchSummary(p.launches)),
      el("dt", {}, "Quota used / cloud limit"),
      el("dd", {}, quotaCell(p.quota))),
    poolTable(p), offeringTable(p, now), machinery(p))));
}

function renderNodes(nodes) {
  document.getElementById("node-total").textContent = `(${nodes.total})`;
  replace("node-states", ...nodes.states.map((state) => el("span", {
    class: `chip state-${state}`, "data-state": state },
    `${state}: ${nodes.by_state[state]}`)));
  replace("node-head", el("th", {}, "Label"),
    ...nodes.states.map((s) => el("th", {}, s)));
  replace("node-rows", ...Object.entries(nodes.by_label).map(
    ([label, counts]) => el("tr", { "data-label": label },
      el("td", {}, label),
      ...nodes.states.map((s) => el("td", { "data-state": s },
        counts[s] || 0)))));
}

function renderRequests(requests, total) {
  document.getElementById("request-total").textContent =
    requests.length < total ? `(${requests.length} of ${total})` : `(${total})`;
  replace("request-rows", ...requests.map((r) => el("tr", {
      "data-request": r.id, "data-state": r.state },
    el("td", {}, r.id),
    el("td", {}, `${r.priority} / ${r.relative_priority}`),
    el("td", {}, el("span", { class: `badge req-${r.state}` }, r.state)),
    el("td", {}, r.requestor || ""),
    el("td", {}, r.node_types.join(", ")),
    el("td", {}, r.nodes.join(", ")),
    el("td", {}, age(r.age)),
    el("td", { class: "declined" }, ...r.declined_by.map((id) => el("span", {
      class: "chip", title: id, "data-declined-by": id }, poolName(id)))),
    el("td", { class: "waits" }, ...r.waits.map((w) => el("div", {
      class: "wait", "data-wait-kind": w.kind,
      title: `${w.kind}, ${w.provider || "any"}/${w.pool || "any"}` +
        (w.hostname ? ` on ${w.hostname}` : "") },
      `${w.text} (${age(w.waiting)})`))))));
}

function renderErrors(errors) {
  replace("error-rows", ...errors.map((e) => el("tr", { "data-result": e.result },
    el("td", {}, new Date(e.time * 1000).toLocaleTimeString()),
    el("td", {}, e.provider), el("td", {}, e.node || ""),
    el("td", {}, e.result), el("td", { class: "message" }, e.message))));
  if (!errors.length) {
    replace("error-rows", el("tr", {}, el("td", { colspan: "5", class: "muted" },
      "none")));
  }
}

function render(status) {
  const launcher = status.launcher;
  document.getElementById("launcher-name").textContent = launcher.hostname;
  document.getElementById("version").textContent = `version ${launcher.version}`;
  const ready = document.getElementById("ready-badge");
  ready.dataset.ready = String(launcher.ready);
  ready.textContent = launcher.ready ? "ready" : "starting";
  ready.className = launcher.ready ? "badge ok" : "badge warn";
  const zk = document.getElementById("zk-badge");
  zk.dataset.connected = String(launcher.zookeeper_connected);
  zk.textContent = launcher.zookeeper_connected ? "ZooKeeper connected"
    : "ZooKeeper disconnected";
  zk.className = launcher.zookeeper_connected ? "badge ok" : "badge bad";
  renderProviders(status.providers, status.generated);
  renderNodes(status.nodes);
  renderRequests(status.requests, status.requests_total);
  renderErrors(status.errors);
}

async function poll() {
  try {
    const response = await fetch("/status.json", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
    page.updates += 1;
    page.lastError = null;
    const updated = document.getElementById("updated");
    updated.dataset.updates = String(page.updates);
    updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.getElementById("conn-error").hidden = true;
  } catch (err) {
    page.lastError = String(err);
    document.getElementById("conn-error").hidden = false;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
