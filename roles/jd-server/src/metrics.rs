//! The jd-server's metric families (served by the standalone jd-server, and by the pool when
//! the jd-server runs inside it).

use crate::JdServerStats;
use hashpool_ops_http::{counter, labelled_counter};
use prometheus::proto::MetricFamily;
use std::sync::atomic::Ordering;

/// The jd-server's counters as metric families.
pub fn families(stats: &JdServerStats) -> Vec<MetricFamily> {
    let refused: Vec<(String, u64)> = stats.refused_by_code().into_iter().collect();
    [
        counter(
            "hashpool_jds_declared_jobs_total",
            "Jobs declared and signed",
            stats.declared_jobs.load(Ordering::Relaxed),
        ),
        labelled_counter(
            "hashpool_jds_declarations_refused_total",
            "Declarations refused, by SV2 error code",
            "reason",
            &refused,
        ),
        counter(
            "hashpool_jds_solutions_pushed_total",
            "Block solutions pushed by job declarator clients",
            stats.solutions_pushed.load(Ordering::Relaxed),
        ),
        counter(
            "hashpool_jds_blocks_submitted_total",
            "Pushed blocks the node accepted",
            stats.blocks_submitted.load(Ordering::Relaxed),
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}
