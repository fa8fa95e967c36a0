// The /ops page: GET /v1/ops/summary every few seconds with the admin key typed into
// the page (kept in this tab's sessionStorage, sent only as a bearer token), drawn
// with DOM and SVG calls only: no inline script or style, no innerHTML, no CDN.
"use strict";

(function () {
  const KEY_STORE = "booking.ops.adminKey";
  const REFRESH_MS = 3000;
  // Relative to /ops, so the page also works behind a proxy's path prefix.
  const SUMMARY_URL = "v1/ops/summary";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const STATUSES = ["succeeded", "rejected", "failed"];
  const PERCENTILES = ["p50", "p95", "p99"];

  const $ = (id) => document.getElementById(id);
  let timer = null;
  let replayNote = "";

  function storedKey() {
    return sessionStorage.getItem(KEY_STORE);
  }

  function api(method, path) {
    return fetch(path, {
      method,
      headers: { Authorization: "Bearer " + storedKey(), Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
    });
  }

  function showState(text, isError) {
    $("state").textContent = text;
    $("state").classList.toggle("error", Boolean(isError));
  }

  function askForKey(message) {
    clearTimeout(timer);
    sessionStorage.removeItem(KEY_STORE);
    $("dashboard").hidden = true;
    $("forget").hidden = true;
    $("key-form").hidden = false;
    $("key").focus();
    showState(message || "Type an admin API key.", Boolean(message));
  }

  async function refresh() {
    clearTimeout(timer);
    let response;
    try {
      response = await api("GET", SUMMARY_URL);
    } catch (error) {
      showState("Cannot reach the service (" + error.message + "); retrying.", true);
      timer = setTimeout(refresh, REFRESH_MS);
      return;
    }
    if (response.status === 401 || response.status === 403) {
      askForKey(response.status === 401 ? "That key is not valid." : "That key is not an admin key.");
      return;
    }
    if (!response.ok) {
      showState("The summary answered " + response.status + "; retrying.", true);
    } else {
      render(await response.json());
      showState("Updated " + new Date().toLocaleTimeString() + replayNote, false);
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  // --- rendering ------------------------------------------------------------------

  function el(tag, attributes, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svg(tag, attributes, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function seconds(value) {
    if (value === null || value === undefined) return "–";
    if (value < 1) return Math.round(value * 1000) + " ms";
    if (value < 120) return value.toFixed(1) + " s";
    if (value < 7200) return (value / 60).toFixed(1) + " min";
    return (value / 3600).toFixed(1) + " h";
  }

  function render(summary) {
    $("key-form").hidden = true;
    $("dashboard").hidden = false;
    $("forget").hidden = false;
    $("queue-depth").textContent = String(summary.queue_depth);
    $("oldest-age").textContent = seconds(summary.oldest_queued_age_seconds);
    $("webhook-backlog").textContent = String(summary.webhook_backlog);
    renderWorkers(summary.live_workers);
    renderTotals(summary.decisions_total);
    renderDecisionsChart(summary.decisions_per_minute);
    renderLatency(summary.decision_latency);
    renderLatencyChart(summary.decisions_per_minute);
    renderFailures(summary.failed_deliveries);
  }

  function renderWorkers(byQueue) {
    const list = $("live-workers");
    if (byQueue === null) {
      list.replaceChildren(el("dt", {}, "unknown"), el("dd", {}, "Redis unreachable"));
      return;
    }
    list.replaceChildren(...Object.entries(byQueue).flatMap(([queue, count]) => [
      el("dt", {}, queue),
      el("dd", { "data-queue": queue, class: count === 0 ? "none" : "" }, count),
    ]));
  }

  function renderTotals(totals) {
    $("decision-totals").replaceChildren(...STATUSES.map(
      (status) => el("span", { class: status }, totals[status] + " " + status)));
  }

  // Stacked bars, one per minute, oldest on the left.
  function renderDecisionsChart(minutes) {
    const width = 600, height = 120, left = 34, bottom = 16;
    const most = Math.max(1, ...minutes.map((m) => STATUSES.reduce((sum, s) => sum + m[s], 0)));
    const slot = (width - left) / minutes.length;
    const scale = (height - bottom - 8) / most;
    const nodes = axes(width, height, left, bottom, String(most), minutes);
    minutes.forEach((minute, index) => {
      let top = height - bottom;
      for (const status of STATUSES) {
        const tall = minute[status] * scale;
        if (tall > 0) {
          top -= tall;
          const bar = svg("rect", { class: status, x: left + index * slot + 2, y: top,
                                    width: Math.max(1, slot - 4), height: tall });
          bar.appendChild(svg("title", {}, minuteLabel(minute.minute) + ": " + minute[status] + " " + status));
          nodes.push(bar);
        }
      }
    });
    $("decisions-chart").replaceChildren(...nodes);
  }

  function renderLatency(latency) {
    for (const row of document.querySelectorAll("#latency tbody tr")) {
      const figures = latency[row.dataset.window];
      const cells = row.querySelectorAll("td");
      cells[0].textContent = String(figures.count);
      PERCENTILES.forEach((p, index) => { cells[index + 1].textContent = seconds(figures[p]); });
    }
  }

  // p50, p95 and p99 of each minute's decisions: a dot per minute that had any, joined
  // across consecutive ones.
  function renderLatencyChart(minutes) {
    const width = 600, height = 160, left = 34, bottom = 16;
    const values = minutes.flatMap((m) => (m.latency_seconds ? PERCENTILES.map((p) => m.latency_seconds[p]) : []));
    const most = Math.max(0.001, ...values);
    const slot = (width - left) / minutes.length;
    const x = (index) => (left + (index + 0.5) * slot).toFixed(1);
    const y = (value) => (height - bottom - (value / most) * (height - bottom - 8)).toFixed(1);
    const nodes = axes(width, height, left, bottom, seconds(most), minutes);
    for (const p of PERCENTILES) {
      let run = [];
      minutes.forEach((minute, index) => {
        if (minute.latency_seconds) {
          const value = minute.latency_seconds[p];
          run.push(x(index) + "," + y(value));
          const dot = svg("circle", { class: p, cx: x(index), cy: y(value), r: 2.5 });
          dot.appendChild(svg("title", {}, minuteLabel(minute.minute) + " " + p + ": " + seconds(value)));
          nodes.push(dot);
        }
        if ((!minute.latency_seconds || index === minutes.length - 1) && run.length) {
          nodes.push(svg("polyline", { class: p, points: run.join(" ") }));
          run = [];
        }
      });
    }
    $("latency-chart").replaceChildren(...nodes);
  }

  function axes(width, height, left, bottom, topLabel, minutes) {
    return [
      svg("line", { class: "axis", x1: left, y1: height - bottom, x2: width, y2: height - bottom }),
      svg("line", { class: "axis", x1: left, y1: 4, x2: left, y2: height - bottom }),
      svg("text", { x: 2, y: 14 }, topLabel),
      svg("text", { x: 2, y: height - bottom }, "0"),
      svg("text", { x: left, y: height - 3 }, minutes.length ? minuteLabel(minutes[0].minute) : ""),
      svg("text", { x: width - 30, y: height - 3 }, "now"),
    ];
  }

  function minuteLabel(iso) {
    return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function renderFailures(failures) {
    $("no-failures").hidden = failures.length > 0;
    $("failed-deliveries").hidden = failures.length === 0;
    $("failed-deliveries").tBodies[0].replaceChildren(...failures.map(failureRow));
  }

  function failureRow(delivery) {
    const answer = delivery.last_status_code !== null ? "HTTP " + delivery.last_status_code
      : (delivery.last_error || "–");
    const row = el("tr", { "data-delivery-id": delivery.id });
    row.append(
      el("td", { title: delivery.created_at }, new Date(delivery.created_at).toLocaleString()),
      el("td", {}, delivery.type),
      el("td", {}, delivery.url_host),
      el("td", {}, delivery.attempts),
      el("td", { class: "error", title: delivery.last_error || "" }, answer),
    );
    const request = el("td");
    request.appendChild(el("code", {}, delivery.request_id || "–"));
    row.appendChild(request);
    const action = el("td");
    if (delivery.request_id) {
      const button = el("button", { type: "button", class: "replay" }, "Replay");
      button.addEventListener("click", () => replay(delivery, button));
      action.appendChild(button);
    }
    row.appendChild(action);
    return row;
  }

  async function replay(delivery, button) {
    button.disabled = true;
    const path = "v1/booking-requests/" + encodeURIComponent(delivery.request_id)
      + "/deliveries/" + encodeURIComponent(delivery.id) + "/retry";
    try {
      const response = await api("POST", path);
      if (!response.ok) throw new Error("HTTP " + response.status);
      replayNote = " · delivery " + delivery.id + " re-sent";
      button.textContent = "Re-sent";
      button.classList.add("replayed");
    } catch (error) {
      button.disabled = false;
      showState("Replay failed: " + error.message, true);
      return;
    }
    refresh();
  }

  // --- wiring -----------------------------------------------------------------------

  function start() {
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("key").value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY_STORE, key);
      $("key").value = "";
      showState("Loading…", false);
      refresh();
    });
    $("forget").addEventListener("click", () => askForKey());
    if (storedKey()) {
      refresh();
    } else {
      askForKey();
    }
  }

  document.addEventListener("DOMContentLoaded", start);
}());
