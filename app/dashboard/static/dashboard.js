// The Voxcast dashboard: signs in with an API key and polls the service's own JSON API.
// The key lives in sessionStorage and leaves only as the Authorization header; everything the
// API says is put into the page as text (textContent), never as markup.
"use strict";

(function () {
  const KEY_ITEM = "voxcast.apiKey";
  const POLL_MS = 1000;
  const TRUNK_POLLS = 10;     // trunks change rarely: every tenth poll
  const LIST_PATH = "/voice/calls";

  let timer = null;
  let polling = false;
  let polls = 0;
  let pagePath = LIST_PATH;   // the broadcasts page shown, with its filters
  let newerPages = [];        // the paths of the pages before it, for "Newer"
  let olderPath = null;       // the API's `next`
  let selected = null;        // {requestId, reportId}
  let records = null;         // the selected broadcast's records, once its report is ready

  const $ = (id) => document.getElementById(id);

  function signedIn() { return sessionStorage.getItem(KEY_ITEM) !== null; }

  async function api(path) {
    const headers = { Accept: "application/json" };
    const key = sessionStorage.getItem(KEY_ITEM);
    if (key) { headers.Authorization = "Bearer " + key; }
    const response = await fetch(path, { headers: headers, cache: "no-store",
                                         credentials: "omit", redirect: "error" });
    let body = null;
    try { body = await response.json(); } catch (ignored) { body = null; }
    return { status: response.status, body: body };
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    row.appendChild(td);
    return td;
  }

  function clear(element) { while (element.firstChild) { element.removeChild(element.firstChild); } }

  function message(body, fallback) {
    return body && typeof body.message === "string" ? body.message : fallback;
  }

  function bar(value, max) {
    const progress = document.createElement("progress");
    progress.max = Math.max(max, 1);
    progress.value = value;
    progress.setAttribute("aria-label", value + " of " + max);
    return progress;
  }

  // --- sign-in ------------------------------------------------------------------------------

  async function signIn(event) {
    event.preventDefault();
    const key = $("api-key").value.trim();
    sessionStorage.setItem(KEY_ITEM, key);
    $("api-key").value = "";
    const answer = await api(LIST_PATH + "?limit=1");
    if (answer.status !== 200) {
      sessionStorage.removeItem(KEY_ITEM);
      $("sign-in-error").textContent = answer.status === 401
        ? "That key was refused: " + message(answer.body, "unauthorized")
        : "The service answered " + answer.status + ": " + message(answer.body, "no details");
      return;
    }
    $("sign-in-error").textContent = "";
    show();
  }

  function signOut() {
    sessionStorage.removeItem(KEY_ITEM);
    if (timer !== null) { clearInterval(timer); timer = null; }
    selected = null;
    records = null;
    polls = 0;
    show();
  }

  function show() {
    const inside = signedIn();
    $("sign-in").hidden = inside;
    $("board").hidden = !inside;
    $("sign-out").hidden = !inside;
    $("signed-in-as").hidden = !inside;
    if (!inside) { $("api-key").focus(); return; }
    $("signed-in-as").textContent = sessionStorage.getItem(KEY_ITEM)
      ? "signed in with an API key" : "open service (no key)";
    refresh();
    if (timer === null) { timer = setInterval(refresh, POLL_MS); }
  }

  // --- polling ------------------------------------------------------------------------------

  async function refresh() {
    if (polling || !signedIn()) { return; }
    polling = true;
    try {
      const work = [broadcasts(), health(), monitor(), detail()];
      if (polls % TRUNK_POLLS === 0) { work.push(trunks()); }
      polls += 1;
      await Promise.all(work);
      $("problem").textContent = "";
    } catch (error) {
      $("problem").textContent = "The service did not answer: " + error.message;
    } finally {
      polling = false;
    }
  }

  function unauthorized(answer) {
    if (answer.status !== 401) { return false; }
    signOut();
    $("sign-in-error").textContent = "The key is no longer accepted; sign in again.";
    return true;
  }

  async function broadcasts() {
    const answer = await api(pagePath);
    if (unauthorized(answer)) { return; }
    if (answer.status !== 200) {
      $("problem").textContent = "Broadcasts: " + message(answer.body, "HTTP " + answer.status);
      return;
    }
    const body = $("broadcasts").tBodies[0];
    clear(body);
    let live = 0;
    for (const item of answer.body.broadcasts) {
      const p = item.progress;
      live += p.in_progress;
      const row = document.createElement("tr");
      row.className = "selectable";
      row.dataset.requestId = item.request_id;
      row.dataset.completed = String(p.completed);
      if (selected && selected.requestId === item.request_id) { row.classList.add("selected"); }
      cell(row, item.created_time);
      cell(row, item.request_id);
      cell(row, item.from);
      cell(row, item.cancelled ? item.status + " (cancelled)" : item.status).className = "status";
      const progressCell = cell(row, "");
      progressCell.appendChild(bar(p.completed, p.total));
      const text = document.createElement("span");
      text.className = "progress-text";
      text.textContent = " " + p.completed + "/" + p.total + " ended, " + p.in_progress +
        " live, " + p.queued + " queued";
      progressCell.appendChild(text);
      cell(row, item.answered);
      row.addEventListener("click", () => select(item));
      body.appendChild(row);
      if (selected && selected.requestId === item.request_id) { showProgress(item); }
    }
    $("broadcasts-empty").hidden = answer.body.broadcasts.length > 0;
    olderPath = typeof answer.body.next === "string" && answer.body.next.startsWith(LIST_PATH + "?")
      ? answer.body.next : null;
    $("older-page").disabled = olderPath === null;
    $("newer-page").disabled = newerPages.length === 0;
    $("live-calls").dataset.tenantLive = String(live);
    liveCalls();
  }

  function liveCalls() {
    const servers = $("live-calls").dataset.serverLive;
    $("live-calls").textContent = "In your broadcasts on this page: " +
      ($("live-calls").dataset.tenantLive || "0") +
      (servers === undefined ? "" : "; on this node's media servers (every tenant): " + servers);
  }

  async function health() {
    const answer = await api("/ready");
    const body = $("servers").tBodies[0];
    clear(body);
    if (answer.status === 200) {
      $("ready-state").textContent = "Ready.";
      $("ready-state").className = "ok";
    } else {
      $("ready-state").textContent = "Not ready: " + message(answer.body, "HTTP " + answer.status);
      $("ready-state").className = "down";
    }
    const servers = answer.body && Array.isArray(answer.body.media_servers)
      ? answer.body.media_servers : [];
    let live = 0;
    for (const server of servers) {
      live += server.live_calls || 0;
      const row = document.createElement("tr");
      cell(row, server.name);
      cell(row, server.connected ? "connected" : "disconnected").className =
        server.connected ? "ok" : "down";
      cell(row, server.live_calls);
      cell(row, server.capacity);
      body.appendChild(row);
    }
    if (answer.status === 200) { $("live-calls").dataset.serverLive = String(live); }
    liveCalls();
  }

  async function monitor() {
    const answer = await api("/monitor");
    const place = $("monitor");
    clear(place);
    if (answer.status !== 200) {
      place.textContent = "Not shown: this key's tenant is not an operator.";
      return;
    }
    const ami = answer.body.monitor.ami || {};
    const codes = ami.by_sip_code || {};
    const names = Object.keys(codes).sort();
    if (names.length === 0) { place.textContent = "No hang-ups seen yet."; return; }
    place.appendChild(outcomeTable(names.map((code) => [code, codes[code]])));
  }

  // A trunk field as text: plain values, lists of plain values, and {name: value} maps; other
  // shapes (lists of objects) are left out of the table.
  function fieldText(value) {
    const plain = (v) => v === null || typeof v !== "object";
    if (plain(value)) { return value === null ? "" : String(value); }
    if (Array.isArray(value)) { return value.every(plain) ? value.join(", ") : null; }
    const entries = Object.entries(value);
    return entries.every(([, v]) => plain(v))
      ? entries.map(([k, v]) => k + ": " + v).join(", ") : null;
  }

  async function trunks() {
    const answer = await api("/trunks");
    const place = $("trunks");
    clear(place);
    if (answer.status === 404) {
      place.textContent = "No trunks configured (or none shown to this key).";
      return;
    }
    if (answer.status !== 200 || !answer.body) {
      place.textContent = "Trunks: " + message(answer.body, "HTTP " + answer.status);
      return;
    }
    const list = Array.isArray(answer.body.trunks) ? answer.body.trunks : [];
    if (list.length === 0) { place.textContent = "No trunks configured."; return; }
    const columns = Object.keys(list[0]).filter((name) => fieldText(list[0][name]) !== null);
    const table = document.createElement("table");
    const head = table.createTHead().insertRow();
    for (const name of columns) {
      const th = document.createElement("th");
      th.textContent = name.replace(/_/g, " ");
      head.appendChild(th);
    }
    const body = table.createTBody();
    for (const trunk of list) {
      const row = body.insertRow();
      row.dataset.trunk = String(trunk.name);
      for (const name of columns) { cell(row, fieldText(trunk[name])); }
    }
    place.appendChild(table);
  }

  // --- one broadcast --------------------------------------------------------------------------

  function select(item) {
    selected = { requestId: item.request_id, reportId: item.report.id, location: item.report.location };
    records = null;
    $("detail").hidden = false;
    $("detail-request").textContent = item.request_id;
    clear($("calls").tBodies[0]);
    clear($("detail-outcomes").tBodies[0]);
    for (const row of $("broadcasts").tBodies[0].rows) {
      row.classList.toggle("selected", row.dataset.requestId === item.request_id);
    }
    showProgress(item);
    detail();
  }

  function showProgress(item) {
    const p = item.progress;
    $("detail-progress").textContent = item.status + ": " + p.completed + " of " + p.total +
      " calls ended, " + p.in_progress + " live, " + p.queued + " queued; " + item.answered +
      " answered";
  }

  async function detail() {
    if (selected === null || records !== null) { return; }
    const answer = await api(selected.location);
    if (unauthorized(answer) || answer.status !== 200) { return; }
    if (answer.body.report_status !== "ready") {
      $("calls-note").textContent = "Each call's record appears once every call has ended.";
      return;
    }
    records = answer.body.records;
    $("calls-note").textContent = "";
    const counts = new Map();
    for (const record of records) {
      const code = record.disconnect_cause_code || "none";
      counts.set(code, (counts.get(code) || 0) + 1);
    }
    const body = $("detail-outcomes").tBodies[0];
    clear(body);
    for (const [code, count] of [...counts.entries()].sort()) {
      const row = body.insertRow();
      row.dataset.sipCode = code;
      cell(row, code === "none" ? "none (no SIP answer)" : code);
      cell(row, count);
      row.insertCell().appendChild(bar(count, records.length));
    }
    showCalls();
  }

  function outcomeTable(pairs) {
    const table = document.createElement("table");
    const head = table.createTHead().insertRow();
    for (const name of ["SIP code", "hang-ups", ""]) {
      const th = document.createElement("th"); th.textContent = name; head.appendChild(th);
    }
    const total = pairs.reduce((sum, pair) => sum + pair[1], 0);
    const body = table.createTBody();
    for (const [code, count] of pairs) {
      const row = body.insertRow();
      cell(row, code);
      cell(row, count);
      row.insertCell().appendChild(bar(count, total));
    }
    return table;
  }

  function showCalls() {
    const body = $("calls").tBodies[0];
    clear(body);
    if (records === null) { return; }
    const result = $("result-filter").value;
    const answered = $("answered-filter").value;
    const code = $("sip-code-filter").value.trim();
    let shown = 0;
    for (const record of records) {
      if (result && record.result !== result) { continue; }
      if (answered && String(record.answered) !== answered) { continue; }
      if (code && (record.disconnect_cause_code || "") !== code) { continue; }
      const row = body.insertRow();
      row.dataset.callId = record.id;
      cell(row, record.to);
      cell(row, record.result);
      cell(row, record.disconnect_cause_code);
      cell(row, record.disconnect_cause_text);
      cell(row, record.answered ? "yes" : "no");
      cell(row, record.duration);
      cell(row, record.attempt);
      cell(row, record.media_server);
      shown += 1;
    }
    $("calls-note").textContent = shown + " of " + records.length + " calls shown.";
  }

  // --- filters and pages -------------------------------------------------------------------

  function utc(value) { return value ? value + (value.length === 16 ? ":00Z" : "Z") : ""; }

  function applyFilters(event) {
    event.preventDefault();
    const query = new URLSearchParams();
    if ($("status-filter").value) { query.set("status", $("status-filter").value); }
    if ($("created-after").value) { query.set("created_after", utc($("created-after").value)); }
    if ($("created-before").value) { query.set("created_before", utc($("created-before").value)); }
    const text = query.toString();
    pagePath = text ? LIST_PATH + "?" + text : LIST_PATH;
    newerPages = [];
    refresh();
  }

  function older() {
    if (olderPath === null) { return; }
    newerPages.push(pagePath);
    pagePath = olderPath;
    refresh();
  }

  function newer() {
    if (newerPages.length === 0) { return; }
    pagePath = newerPages.pop();
    refresh();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("sign-in-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", signOut);
    $("broadcast-filters").addEventListener("submit", applyFilters);
    $("older-page").addEventListener("click", older);
    $("newer-page").addEventListener("click", newer);
    for (const id of ["result-filter", "answered-filter", "sip-code-filter"]) {
      $(id).addEventListener("input", showCalls);
    }
    show();
  });
})();
