// The pool dashboard: polls /api/status every 2 s and /api/epochs every 5 s.
"use strict";

const statusBadge = { pending: "warn", matured: "ok", orphaned: "bad", open: "warn", closed: "muted", final: "ok" };

async function refreshStatus() {
  const s = await hp.get("/api/status");
  const p = s.pool;
  hp.text("hashrate", hp.hashrate(p.hashrate));
  hp.text("channels", hp.int(p.channels));
  hp.text("accepted", hp.int(p.shares_accepted));
  hp.text("rejected", hp.int(p.shares_rejected));
  hp.text("signed", hp.int(p.ehash_signed));
  hp.text("blocks-found", hp.int(s.blocks.length));
  hp.text("height", hp.int(s.services.node.height));
  hp.chart("hashrate-chart", s.history, hp.hashrate);

  const services = [
    ["Template provider", s.services.template_provider, s.services.template_provider.address +
      (s.services.template_provider.failovers ? " · " + s.services.template_provider.failovers + " failovers" : "")],
    ["Mint", s.services.mint, s.services.mint.url ? s.services.mint.url + " · keyset " + hp.short(s.services.mint.keyset) : s.services.mint.address],
    ["Bitcoin node", s.services.node, s.services.node.configured ? "height " + hp.int(s.services.node.height) : "no chain_rpc configured"],
  ];
  hp.fill("services", services, [
    ["", r => r[0]],
    ["", r => r[1].up ? hp.badge("up", "ok") : hp.badge("down", "bad")],
    ["", r => r[1].since_ms ? hp.ago(r[1].since_ms) : "–"],
    ["", r => hp.ago(r[1].last_seen_ms)],
    ["mono", r => r[2] || ""],
  ]);

  hp.fill("channel-rows", s.channels, [
    ["num", c => c.channel_id],
    ["num", c => c.connection],
    ["", c => c.user],
    ["mono", c => c.peer],
    ["", c => c.kind],
    ["", c => c.ehash ? hp.badge("yes", "ok") : hp.badge("no", "muted")],
    ["num", c => "2^" + c.share_work_log2],
    ["num", c => hp.hashrate(c.hashrate)],
    ["num", c => hp.int(c.shares_accepted)],
    ["num", c => hp.int(c.shares_rejected)],
    ["", c => hp.ago(c.last_share_ms)],
  ], "no channels open");

  hp.fill("block-rows", s.blocks, [
    ["num", b => hp.int(b.height)],
    ["mono", b => hp.short(b.hash)],
    ["num", b => hp.btc(b.reward)],
    ["", b => hp.badge(b.status, statusBadge[b.status] || "muted")],
    ["num", b => b.status === "orphaned" ? "–" : hp.int(b.confirmations) + " / " + s.maturity],
    ["", b => hp.ago(b.found_at * 1000)],
  ], "no blocks found yet");
}

async function refreshEpochs() {
  let l;
  try {
    l = await hp.get("/api/epochs");
  } catch (e) {
    hp.text("epochs-summary", "Epochs unavailable: " + e.message);
    hp.fill("epoch-rows", [], [["", () => ""]], "–");
    return;
  }
  hp.text("epochs-summary", "Current epoch " + l.current_epoch + " · " + l.epoch_blocks + " blocks per epoch · " +
    l.accrual_epochs + " epochs share each block · pool fee " + (l.pool_fee_ppm / 1e4) + " % · matured rewards " +
    hp.btc(l.matured_rewards_sat) + " · owed " + hp.int(Math.floor(l.owed_msat / 1000)) + " sat · " +
    (l.solvent ? "solvent" : "NOT SOLVENT"));
  hp.fill("epoch-rows", l.epochs.slice().reverse(), [
    ["num", e => e.epoch],
    ["mono", e => hp.short(e.keyset_id)],
    ["num", e => hp.int(e.start_height)],
    ["", e => hp.badge(e.status, statusBadge[e.status] || "muted")],
    ["num", e => hp.int(e.issued)],
    ["num", e => hp.int(e.outstanding)],
    ["num", e => hp.int(e.redeemed)],
    ["num", e => e.rate_msat_per_hash === null || e.rate_msat_per_hash === undefined ? "–" : e.rate_msat_per_hash.toFixed(3)],
    ["num", e => hp.int(Math.floor((e.credit_msat ?? e.expected_credit_msat) / 1000)) + (e.credit_msat === null || e.credit_msat === undefined ? " (expected)" : "")],
    ["num", e => e.blocks.length],
  ], "no epochs yet");
}

hp.every(2000, refreshStatus);
hp.every(5000, refreshEpochs);
