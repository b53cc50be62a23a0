//! Test support: fresh PostgreSQL databases on the test server (`deploy/test-postgres.sh`
//! starts it; `HASHPOOL_TEST_POSTGRES` points elsewhere).

/// Environment variable with the test server's URL (a role allowed to create databases).
pub const TEST_POSTGRES_ENV: &str = "HASHPOOL_TEST_POSTGRES";

/// The URL `deploy/test-postgres.sh` sets up.
pub const TEST_POSTGRES_DEFAULT: &str =
    "postgresql://hashpool:hashpool@127.0.0.1:5432/postgres?sslmode=disable";

/// The test server's URL.
pub fn test_server_url() -> String {
    std::env::var(TEST_POSTGRES_ENV).unwrap_or_else(|_| TEST_POSTGRES_DEFAULT.to_string())
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

/// Drops and creates database `name` (letters, digits, `_`) on the test server; returns its
/// URL. Fails with the server's message when no server runs there.
pub async fn fresh_database(name: &str) -> Result<String, String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("bad test database name {name:?}"));
    }
    let url = test_server_url();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .map_err(|e| {
            format!("no PostgreSQL test server ({TEST_POSTGRES_ENV} or {TEST_POSTGRES_DEFAULT}; run deploy/test-postgres.sh): {e}")
        })?;
    let driver = tokio::spawn(connection);
    let mut done = Ok(());
    // One statement each: neither may run inside the implicit transaction of a batch.
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        if let Err(e) = client.batch_execute(&sql).await {
            done = Err(crate::epochs::store::postgres_message(&e));
            break;
        }
    }
    drop(client);
    let _ = driver.await;
    done.map(|()| with_database(&url, name))
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            super::with_database("postgresql://u:p@h:5432/postgres?sslmode=disable", "t1"),
            "postgresql://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(
            super::with_database("postgres://h", "t2"),
            "postgres://h/t2"
        );
    }
}
