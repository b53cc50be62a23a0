//! The synthetic clients of a pipeline run: open the channels, send shares at the offered
//! rate within each channel's window, and collect verdicts, signatures and latencies.

use super::client::{self, BenchClient, ClientCounters, InFlight, Latencies};
use super::{cpu_seconds, PipelineOptions};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use sv2_io::AuthorityPublicKey;

/// What the clients saw.
pub struct Driven {
    /// Shares sent, accepted, signed, refused.
    pub counters: Arc<ClientCounters>,
    /// Latencies measured.
    pub latencies: Arc<Mutex<Latencies>>,
    /// Seconds from the first share to the last answer.
    pub elapsed: f64,
    /// CPU seconds of the whole process over that time.
    pub cpu: f64,
}

/// Runs the clients against the pool at `pool_addr` until every answer came (or timed out).
pub async fn drive(
    o: &PipelineOptions,
    pool_addr: &str,
    authority: &AuthorityPublicKey,
) -> anyhow::Result<Driven> {
    let mut clients = Vec::with_capacity(o.channels as usize);
    for i in 0..o.channels {
        clients.push(BenchClient::open(pool_addr, authority, i).await?);
    }
    let counters = Arc::new(ClientCounters::default());
    let latencies = Arc::new(Mutex::new(Latencies::default()));
    let per = o.shares / u64::from(o.channels);
    let extra = o.shares % u64::from(o.channels);
    for (i, c) in clients.iter_mut().enumerate() {
        c.prepare(per + u64::from((i as u64) < extra))?;
    }
    let interval = (o.rate > 0.0).then(|| Duration::from_secs_f64(f64::from(o.channels) / o.rate));
    let (start, cpu0) = (Instant::now(), cpu_seconds());
    let mut collectors = Vec::new();
    let mut senders = Vec::new();
    for (i, mut c) in clients.into_iter().enumerate() {
        let n = per + u64::from((i as u64) < extra);
        let in_flight: InFlight = Arc::new(Mutex::new(Default::default()));
        let window = Arc::new(tokio::sync::Semaphore::new(o.window.max(1) as usize));
        let reader = c
            .take_reader()
            .ok_or_else(|| anyhow::anyhow!("reader taken"))?;
        collectors.push(tokio::spawn(client::collect(
            reader,
            in_flight.clone(),
            counters.clone(),
            latencies.clone(),
            window.clone(),
            n,
        )));
        let counters = counters.clone();
        let channels = o.channels;
        senders.push(tokio::spawn(async move {
            // Spread the channels' send times evenly over one interval.
            let offset = interval
                .map(|iv| iv.mul_f64(i as f64 / f64::from(channels)))
                .unwrap_or_default();
            for k in 0..n {
                if let Some(iv) = interval {
                    tokio::time::sleep_until((start + offset + iv.mul_f64(k as f64)).into()).await;
                }
                let Ok(permit) = window.acquire().await else {
                    return c;
                };
                permit.forget();
                let sent = c
                    .submit_next(|seq| {
                        if let Ok(mut f) = in_flight.lock() {
                            f.insert(seq, Instant::now());
                        }
                    })
                    .await;
                match sent {
                    Ok(_) => {
                        counters.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "bench client stopped");
                        return c;
                    }
                }
            }
            // Kept open until the collectors have every answer.
            c
        }));
    }
    let mut open = Vec::with_capacity(senders.len());
    for s in senders {
        open.push(s.await?);
    }
    let wait = Duration::from_secs(60 + o.shares / 500);
    for c in collectors {
        if tokio::time::timeout(wait, c).await.is_err() {
            tracing::error!("signatures still missing after {wait:?}");
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    drop(open);
    Ok(Driven {
        counters,
        latencies,
        elapsed,
        cpu,
    })
}
