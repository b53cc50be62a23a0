//! Calls to the mint's ehash endpoints (`/hashpool/v1/...`), JSON over HTTP.

use super::WalletError;
use ehash_api::ApiError;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Largest answer read from the mint.
const MAX_BODY: usize = 16 << 20;

/// The mint's ehash API at `base` (the ehash mint URL).
#[derive(Debug, Clone)]
pub struct MintApi {
    base: String,
}

impl MintApi {
    /// API of the mint at `base`.
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// Base URL of the mint's `sat` view.
    pub fn sat_url(&self) -> String {
        format!("{}{}", self.base, ehash_api::SAT_MINT_PATH)
    }

    /// GET `path`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, WalletError> {
        let request = bitreq::get(format!("{}{path}", self.base)).with_timeout(30);
        self.send(path, request).await
    }

    /// POST `body` to `path`.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, WalletError> {
        let json = serde_json::to_string(body)
            .map_err(|e| WalletError::Mint(format!("{path}: encoding the request: {e}")))?;
        let request = bitreq::post(format!("{}{path}", self.base))
            .with_header("Content-Type", "application/json")
            .with_body(json)
            .with_timeout(60);
        self.send(path, request).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        path: &str,
        request: bitreq::Request,
    ) -> Result<T, WalletError> {
        let response = request
            .with_max_body_size(Some(MAX_BODY))
            .send_async()
            .await
            .map_err(|e| WalletError::Mint(format!("{path}: {e}")))?;
        let body = response.as_bytes();
        if (200..300).contains(&response.status_code) {
            return serde_json::from_slice(body)
                .map_err(|e| WalletError::Mint(format!("{path}: unexpected answer: {e}")));
        }
        match serde_json::from_slice::<ApiError>(body) {
            Ok(e) => Err(WalletError::Refused {
                code: e.code,
                detail: e.detail,
            }),
            Err(_) => Err(WalletError::Mint(format!(
                "{path}: HTTP {}: {}",
                response.status_code,
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ))),
        }
    }
}
