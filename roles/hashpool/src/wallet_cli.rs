//! `hashpool wallet -c translator.toml ...`: the translator's ehash wallet for operators and
//! holders — balance by epoch, send, receive, redeem, sell, restore. Every command can print one
//! JSON object (`--json`).

use anyhow::Context;
use hashpool_translator::{EhashWallet, TranslatorConfig};
use serde::Serialize;
use std::sync::Arc;

/// What to do with the wallet.
#[derive(clap::Subcommand, Debug)]
pub enum WalletAction {
    /// Ehash by epoch (with its value if the epoch is final, or the mint's buyback offer) and
    /// sats; `--offline` reads only the wallet database.
    Balance {
        /// One JSON object.
        #[arg(long)]
        json: bool,
        /// Do not contact the mint (no epochs, values or quotes).
        #[arg(long)]
        offline: bool,
    },
    /// Print a `cashuB` token worth `--amount` HASH of epoch `--epoch`.
    Send {
        /// Epoch whose ehash to send.
        #[arg(long)]
        epoch: u32,
        /// HASH to send.
        #[arg(long)]
        amount: u64,
        /// Memo written into the token.
        #[arg(long)]
        memo: Option<String>,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Take ownership of a `cashuB` ehash token (swapped for new proofs of the same epoch).
    Receive {
        /// The token.
        token: String,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Turn all ehash of final epochs into sats at their rates.
    Redeem {
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Sell `--amount` HASH of a non-final epoch to the mint at its buyback quote.
    Sell {
        /// Epoch whose ehash to sell.
        #[arg(long)]
        epoch: u32,
        /// HASH to sell.
        #[arg(long)]
        amount: u64,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Recover everything the mint signed for this wallet's seed (NUT-09), then print the
    /// balance. On a new machine, put the old `wallet.seed` into the data dir and give the mint.
    Restore {
        /// The mint's URL (needed when the data dir has only the seed, no wallet database).
        #[arg(long)]
        mint_url: Option<String>,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
}

fn print<T: Serialize>(value: &T, json: bool, text: String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(value)?);
    } else {
        println!("{text}");
    }
    Ok(())
}

async fn open(config: &TranslatorConfig) -> anyhow::Result<Arc<EhashWallet>> {
    open_at(config, None).await
}

async fn open_at(
    config: &TranslatorConfig,
    mint_url: Option<&str>,
) -> anyhow::Result<Arc<EhashWallet>> {
    match mint_url.or(config.mint_url.as_deref()) {
        Some(url) => Ok(EhashWallet::open(&config.data_dir, url).await?),
        None => Ok(EhashWallet::open_existing(&config.data_dir)
            .await
            .context("no wallet database yet: pass --mint-url")?),
    }
}

/// Runs one wallet command.
pub async fn run(config: &TranslatorConfig, action: WalletAction) -> anyhow::Result<()> {
    match action {
        WalletAction::Balance {
            json,
            offline: true,
        } => {
            let s = EhashWallet::summarize_offline(&config.data_dir).await?;
            let text = format!("ehash={} proofs={} sat={}", s.balance, s.proofs, s.sat);
            print(&s, json, text)
        }
        WalletAction::Balance {
            json,
            offline: false,
        } => {
            let s = EhashWallet::summarize_offline(&config.data_dir).await?;
            let w = open(config).await?;
            let holdings = w.holdings(true).await.context("asking the mint")?;
            let mut text = format!("ehash={} sat={}", holdings.ehash, holdings.sat);
            for e in &holdings.epochs {
                let epoch = e.epoch.map_or("?".into(), |n| n.to_string());
                let worth = match (e.value_sat, e.buyback_sat) {
                    (Some(v), _) => format!("worth {v} sat"),
                    (None, Some(b)) => format!("buyback offer {b} sat"),
                    (None, None) => "no price".into(),
                };
                text.push_str(&format!(
                    "\nepoch {epoch} ({}): {} HASH in {} proofs, {worth}",
                    e.status, e.amount, e.proofs
                ));
            }
            #[derive(Serialize)]
            struct Balance {
                balance: u64,
                proofs: u64,
                sat: u64,
                epochs: Vec<hashpool_translator::wallet::EpochHolding>,
            }
            let b = Balance {
                balance: s.balance,
                proofs: s.proofs,
                sat: holdings.sat,
                epochs: holdings.epochs,
            };
            print(&b, json, text)
        }
        WalletAction::Send {
            epoch,
            amount,
            memo,
            json,
        } => {
            let w = open(config).await?;
            let keyset = w.keyset_of_epoch(epoch).await?;
            let token = w.send(keyset, amount, memo).await?;
            #[derive(Serialize)]
            struct Sent {
                epoch: u32,
                amount: u64,
                token: String,
            }
            let text = token.clone();
            print(
                &Sent {
                    epoch,
                    amount,
                    token,
                },
                json,
                text,
            )
        }
        WalletAction::Receive { token, json } => {
            let w = open(config).await?;
            let amount = w.receive(&token).await?;
            #[derive(Serialize)]
            struct Received {
                received: u64,
            }
            print(
                &Received { received: amount },
                json,
                format!("received {amount} HASH"),
            )
        }
        WalletAction::Redeem { json } => {
            let w = open(config).await?;
            let r = w.redeem_final().await?;
            let text = format!(
                "redeemed {} HASH of epochs {:?} for {} sat",
                r.hash, r.epochs, r.sat
            );
            print(&r, json, text)
        }
        WalletAction::Sell {
            epoch,
            amount,
            json,
        } => {
            let w = open(config).await?;
            let keyset = w.keyset_of_epoch(epoch).await?;
            let r = w.sell(keyset, amount).await?;
            let text = format!("sold {} HASH of epoch {epoch} for {} sat", r.hash, r.sat);
            print(&r, json, text)
        }
        WalletAction::Restore { mint_url, json } => {
            let w = open_at(config, mint_url.as_deref()).await?;
            let r = w.restore().await.context("restore from the mint")?;
            let sat = w.sat().restore().await.context("restoring sats")?;
            let s = EhashWallet::summarize_offline(&config.data_dir).await?;
            #[derive(Serialize)]
            struct Restore {
                balance: u64,
                proofs: u64,
                sat: u64,
                restored: hashpool_translator::wallet::Restored,
                restored_sat: u64,
            }
            let text = format!("ehash={} proofs={} sat={}", s.balance, s.proofs, s.sat);
            let out = Restore {
                balance: s.balance,
                proofs: s.proofs,
                sat: s.sat,
                restored: r,
                restored_sat: u64::from(sat.unspent),
            };
            print(&out, json, text)
        }
    }
}
