// The proxy (translator) dashboard: wallet, miners and pool pages, chosen by <body data-page>.
"use strict";

const statusKind = { open: "warn", closed: "muted", final: "ok", unknown: "muted" };

function show(id, message, ok) {
  const e = document.getElementById(id);
  e.textContent = message;
  e.className = "result " + (ok ? "ok" : "error");
}

// Runs an action from a form: disables its button while it runs and reports the outcome.
function action(formId, resultId, run) {
  const form = document.getElementById(formId);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    show(resultId, "working…", true);
    try {
      show(resultId, await run(), true);
      await refreshWallet();
    } catch (e) {
      show(resultId, e.message, false);
    } finally {
      button.disabled = false;
    }
  });
}

function fillEpochSelect(id, epochs, wanted) {
  const select = document.getElementById(id);
  const keep = select.value;
  select.replaceChildren(...epochs.filter(wanted).map(e =>
    hp.el("option", { value: String(e.epoch) }, "epoch " + e.epoch + " (" + hp.int(e.amount) + " HASH)")));
  if ([...select.options].some(o => o.value === keep)) select.value = keep;
}

async function refreshWallet() {
  const w = await hp.get("/api/wallet");
  if (!w.ready) {
    hp.text("mint", "waiting for the pool to announce its mint");
    return;
  }
  hp.text("balance", hp.int(w.ehash));
  hp.text("sat", hp.int(w.sat));
  hp.text("mint", w.mint_url);
  hp.text("redeemable", hp.int(w.epochs.reduce((s, e) => s + (e.value_sat || 0), 0)));
  hp.fill("epoch-rows", w.epochs, [
    ["num", e => e.epoch ?? "–"],
    ["mono", e => hp.short(e.keyset_id)],
    ["", e => hp.badge(e.status, statusKind[e.status] || "muted")],
    ["num", e => hp.int(e.amount)],
    ["num", e => hp.int(e.proofs)],
    ["num", e => e.value_sat === null ? "–" : hp.int(e.value_sat)],
    ["num", e => e.buyback_sat === null ? "–" : hp.int(e.buyback_sat)],
  ], "no ehash yet");
  const held = e => e.epoch !== null && e.amount > 0;
  fillEpochSelect("send-epoch", w.epochs, held);
  fillEpochSelect("sell-epoch", w.epochs, e => held(e) && e.status !== "final");
  document.getElementById("faucet-section").hidden = !w.faucet;
}

function walletPage() {
  action("send-form", "send-result", async () => {
    const epoch = Number(document.getElementById("send-epoch").value);
    const amount = Number(document.getElementById("send-amount").value);
    const r = await hp.post("/api/wallet/send", { epoch, amount });
    const token = document.getElementById("send-token");
    token.value = r.token;
    token.hidden = false;
    const qr = document.getElementById("send-qr");
    qr.replaceChildren(new DOMParser().parseFromString(r.qr_svg, "image/svg+xml").documentElement);
    qr.hidden = false;
    return "Token for " + hp.int(r.amount) + " HASH of epoch " + r.epoch + ": copy it or scan the code.";
  });
  action("receive-form", "receive-result", async () => {
    const token = document.getElementById("receive-token").value.trim();
    const r = await hp.post("/api/wallet/receive", { token });
    document.getElementById("receive-token").value = "";
    return "Received " + hp.int(r.received) + " HASH.";
  });
  action("redeem-form", "redeem-result", async () => {
    const r = await hp.post("/api/wallet/redeem", {});
    return r.hash ? "Redeemed " + hp.int(r.hash) + " HASH of epochs " + r.epochs.join(", ") + " for " + hp.int(r.sat) + " sat."
                  : "Nothing to redeem: no ehash of a final epoch.";
  });
  action("sell-form", "sell-result", async () => {
    const epoch = Number(document.getElementById("sell-epoch").value);
    const amount = Number(document.getElementById("sell-amount").value);
    const r = await hp.post("/api/wallet/sell", { epoch, amount });
    return "Sold " + hp.int(r.hash) + " HASH for " + hp.int(r.sat) + " sat.";
  });
  action("faucet-form", "faucet-result", async () => {
    const r = await hp.post("/api/wallet/faucet", {});
    return "Received " + hp.int(r.received) + " HASH of epoch " + r.epoch + " from the devnet faucet.";
  });
  hp.every(3000, refreshWallet);
}

function minersPage() {
  hp.every(2000, async () => {
    const m = await hp.get("/api/miners");
    hp.text("hashrate", hp.hashrate(m.hashrate));
    hp.text("miner-count", hp.int(m.miners.length));
    hp.text("accepted", hp.int(m.miners.reduce((s, x) => s + x.accepted, 0)));
    hp.text("rejected", hp.int(m.miners.reduce((s, x) => s + x.rejected, 0)));
    hp.chart("hashrate-chart", m.history, hp.hashrate);
    hp.fill("miner-rows", m.miners, [
      ["num", x => x.id],
      ["", x => x.user || "(not authorized)"],
      ["mono", x => x.peer],
      ["num", x => x.difficulty === null ? "–" : Number(x.difficulty.toPrecision(4)).toString()],
      ["num", x => hp.hashrate(x.hashrate)],
      ["num", x => hp.int(x.accepted)],
      ["num", x => hp.int(x.rejected)],
      ["", x => hp.ago(x.last_share_ms)],
      ["", x => hp.ago(x.connected_ms)],
    ], "no miners connected");
  });
}

function facts(id, pairs) {
  const dl = document.getElementById(id);
  dl.replaceChildren();
  for (const [k, v] of pairs) dl.append(hp.el("dt", {}, k), hp.el("dd", { class: "mono" }, v === null || v === undefined ? "–" : String(v)));
}

function poolPage() {
  hp.every(2000, async () => {
    const u = await hp.get("/api/upstream");
    document.getElementById("link").replaceChildren(u.up ? hp.badge("up", "ok") : hp.badge("down", "bad"));
    hp.text("latency", u.latency_ms === null ? "–" : u.latency_ms.toFixed(1) + " ms");
    hp.text("submitted", hp.int(u.shares_submitted));
    hp.text("accepted", hp.int(u.shares_accepted));
    hp.text("rejected", hp.int(u.shares_rejected));
    hp.text("blocks", hp.int(u.blocks.length));
    const c = u.channel || {};
    facts("upstream-facts", [
      ["Pool", u.pool_address + (u.pool_failovers ? " (after " + u.pool_failovers + " failovers)" : "")],
      ["Status", (u.up ? "up" : "down") + (u.since_ms ? " since " + hp.ago(u.since_ms) : "")],
      ["Last message", hp.ago(u.last_seen_ms)],
      ["Round trip (avg / last)", u.latency_ms === null ? "–" : u.latency_ms.toFixed(2) + " ms / " + u.latency_last_ms.toFixed(2) + " ms"],
      ["Channel", c.channel_id],
      ["Channel difficulty", c.work_log2 === undefined ? null : "2^" + c.work_log2 + " hashes per share"],
      ["Extranonce prefix", c.extranonce_prefix],
      ["Ehash", u.ehash ? "negotiated" : "no"],
      ["Mint", u.mint_url],
      ["Keyset", u.keyset],
    ]);
    const j = u.job || {};
    facts("job-facts", [
      ["Job id", j.job_id],
      ["Previous block", j.prev_hash],
      ["nBits", j.nbits],
      ["Version", j.version],
      ["Time", j.ntime],
      ["Merkle branches", j.merkle_branches],
      ["Coinbase bytes", j.coinbase_bytes],
      ["Received", j.received_ms ? hp.ago(j.received_ms) : null],
    ]);
    hp.fill("block-rows", u.blocks.slice().reverse(), [
      ["num", b => hp.int(b.height)],
      ["mono", b => b.hash],
      ["num", b => hp.int(b.reward_sat)],
      ["", b => hp.badge(b.status, { pending: "warn", matured: "ok", orphaned: "bad" }[b.status] || "muted")],
      ["num", b => hp.int(b.confirmations)],
      ["num", b => b.found_in_epoch],
    ], "none yet");
    hp.text("blocks-error", u.blocks_error ? "Blocks unavailable: " + u.blocks_error : "");
  });
}

({ wallet: walletPage, miners: minersPage, pool: poolPage })[document.body.dataset.page]();
