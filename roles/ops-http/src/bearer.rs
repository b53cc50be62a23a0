//! Bearer tokens: the check every token-guarded surface (admin APIs, the wallet dashboard) uses.

use axum::http::{header, HeaderMap};

/// Whether `headers` carry `Authorization: Bearer <expected>`. The comparison has no early
/// exit, so the answer time does not reveal how much of a guess matched.
pub fn matches(headers: &HeaderMap, expected: &str) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    same(given.as_bytes(), expected.as_bytes())
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        let mut h = HeaderMap::new();
        assert!(!matches(&h, "abc"));
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert!(matches(&h, "abc"));
        assert!(!matches(&h, "abd"));
        assert!(!matches(&h, "abcd"));
        assert!(!matches(&h, "ab"));
    }
}
