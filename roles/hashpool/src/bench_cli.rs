//! `hashpool bench …`: the soak, fan-out and pipeline benchmarks, each printing its numbers
//! (one JSON object as the last line with `--json`).

use crate::print_report;
use anyhow::Context;
use clap::Subcommand;
use std::path::PathBuf;
use std::time::Duration;

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchAction {
    /// Hold many SV1 connections on one translator process (the stack runs as separate
    /// processes) while each submits shares; report memory per connection, latency, errors.
    Soak {
        /// SV1 connections.
        #[arg(long, default_value_t = 10_000)]
        connections: u32,
        /// Seconds to hold them once all are open.
        #[arg(long, default_value_t = 600)]
        duration: u64,
        /// Seconds between two shares of one connection.
        #[arg(long, default_value_t = 10.0)]
        share_interval: f64,
        /// Directory for configs, data and logs (default: a fresh temp dir, removed after).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Print one JSON object as the last line.
        #[arg(long)]
        json: bool,
    },
    /// Open many SV2 channels on a pool process, then time how fast a new block reaches the
    /// last of them; report the pool's memory per channel.
    Fanout {
        /// Channels to open.
        #[arg(long, default_value_t = 10_000)]
        channels: u32,
        /// Channels per Noise connection (at most 64).
        #[arg(long, default_value_t = 64)]
        per_connection: u32,
        /// New blocks to time.
        #[arg(long, default_value_t = 5)]
        rounds: u32,
        /// Directory for configs, data and logs (default: a fresh temp dir, removed after).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Print one JSON object as the last line.
        #[arg(long)]
        json: bool,
    },
    /// Drive the real pool and mint (in this process) with synthetic SV2 clients submitting
    /// valid shares; report shares/s, signatures/s, latency, CPU, and the lean signing limit.
    Pipeline {
        /// Shares to submit.
        #[arg(long, default_value_t = 50_000)]
        shares: u64,
        /// Channels (one Noise connection each).
        #[arg(long, default_value_t = 8)]
        channels: u32,
        /// Threads the mint signs with.
        #[arg(long, default_value_t = 1)]
        sign_threads: u32,
        /// Offered shares per second over all channels (0: as fast as accepted).
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Shares one channel may have waiting for a signature.
        #[arg(long, default_value_t = 512)]
        window: u32,
        /// Data directory (default: a fresh temp dir, removed after).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Put the mint on this (empty) PostgreSQL database instead of SQLite files.
        #[arg(long, value_name = "URL")]
        mint_db: Option<String>,
        /// Give each signing thread a core of its own; every other thread shares the rest.
        #[arg(long)]
        pin: bool,
        /// Print one JSON object as the last line.
        #[arg(long)]
        json: bool,
    },
}

/// Runs one benchmark and prints its report.
pub async fn run(action: BenchAction) -> anyhow::Result<()> {
    match action {
        BenchAction::Soak {
            connections,
            duration,
            share_interval,
            data_dir,
            json,
        } => {
            let keep = data_dir.is_some();
            let data_dir = data_dir.unwrap_or_else(crate::soak::default_data_dir);
            let opts = crate::soak::SoakOptions {
                binary: std::env::current_exe().context("locate the hashpool binary")?,
                connections,
                duration: Duration::from_secs(duration),
                share_interval: Duration::from_secs_f64(share_interval.max(0.01)),
                data_dir: data_dir.clone(),
            };
            let report = crate::soak::run(&opts).await;
            if !keep {
                crate::soak::remove_data_dir(&data_dir);
            }
            let r = report?;
            let text = format!(
                "connected={}/{} submitted={} accepted={} rejected={} errors={} p50={}us p99={}us rss_per_connection={}B",
                r.connected, r.connections, r.submitted, r.accepted, r.rejected, r.errors,
                r.p50_us, r.p99_us, r.rss_per_connection_bytes
            );
            print_report(&r, json, &text)
        }

        BenchAction::Fanout {
            channels,
            per_connection,
            rounds,
            data_dir,
            json,
        } => {
            let keep = data_dir.is_some();
            let data_dir = data_dir.unwrap_or_else(crate::soak::default_data_dir);
            let opts = crate::fanout::FanoutOptions {
                binary: std::env::current_exe().context("locate the hashpool binary")?,
                channels,
                per_connection,
                rounds,
                data_dir: data_dir.clone(),
            };
            let report = crate::fanout::run(&opts).await;
            if !keep {
                crate::soak::remove_data_dir(&data_dir);
            }
            let r = report?;
            let text = format!(
                "{} channels on {} connections (opened in {:.1}s); pool memory {} -> {} KiB = {} B per channel; new block to last channel: {:?} ms (median channel {:?} ms, first {:?} ms)",
                r.channels, r.connections, r.open_secs, r.rss_before_kib, r.rss_after_kib,
                r.bytes_per_channel, r.last_channel_ms, r.median_channel_ms, r.first_channel_ms
            );
            print_report(&r, json, &text)
        }

        BenchAction::Pipeline {
            shares,
            channels,
            sign_threads,
            rate,
            window,
            data_dir,
            mint_db,
            pin,
            json,
        } => {
            let keep = data_dir.is_some();
            let data_dir = data_dir.unwrap_or_else(crate::soak::default_data_dir);
            let opts = crate::pipeline::PipelineOptions {
                shares,
                channels,
                sign_threads,
                rate,
                window,
                data_dir: data_dir.clone(),
                mint_db,
                pin,
            };
            let report = crate::pipeline::run(&opts).await;
            if !keep {
                crate::soak::remove_data_dir(&data_dir);
            }
            let r = report?;
            let text = format!(
                "accepted={} signed={} rejected={} refused={} in {:.2}s: {:.0} shares/s, {:.0} signatures/s, p50={}us p99={}us (ack p50={}us p99={}us), cpu={:.2} cores; lean limit {:.0}/s, ratio {:.3}",
                r.accepted, r.signed, r.rejected, r.refused, r.elapsed_s, r.shares_per_s,
                r.signatures_per_s, r.p50_us, r.p99_us, r.ack_p50_us, r.ack_p99_us, r.cpu_cores,
                r.limit_per_s, r.ratio
            );
            print_report(&r, json, &text)
        }
    }
}
