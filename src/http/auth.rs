//! API keys: with `--api-key` set, every API route needs
//! `Authorization: Bearer <key>` (a browser's WebSocket gives it as a
//! subprotocol instead); the health checks, `/metrics` and the page itself
//! (which then asks for the key) stay open.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use crate::error::AppError;

/// Paths that answer without a key: probes, the scrape target, the page.
const OPEN_PATHS: [&str; 5] = ["/", "/healthz", "/readyz", "/metrics", "/static/"];

/// The keys a server accepts, kept as SHA-256 digests: comparing digests of
/// equal length in constant time tells a caller nothing about a key's length
/// or its first bytes, and the keys themselves are never kept or logged.
#[derive(Clone, Default)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.digests.len())
    }
}

impl ApiKeys {
    /// The keys given (empty ones ignored).
    pub fn new<S: AsRef<str>>(keys: impl IntoIterator<Item = S>) -> Self {
        let digests = keys
            .into_iter()
            .map(|k| k.as_ref().trim().to_string())
            .filter(|k| !k.is_empty())
            .map(|k| Sha256::digest(k.as_bytes()).into())
            .collect();
        Self { digests }
    }

    /// Whether any key is required.
    pub fn required(&self) -> bool {
        !self.digests.is_empty()
    }

    /// Whether `presented` is one of the keys; every key is compared, in constant time.
    pub fn accepts(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.digests
            .iter()
            .fold(subtle::Choice::from(0), |found, key| found | key.ct_eq(&digest))
            .into()
    }
}

/// Refuses API requests without a valid bearer key (401), when keys are set.
pub async fn require_key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let open = OPEN_PATHS.iter().any(|p| {
        if p.ends_with('/') && p.len() > 1 {
            path.starts_with(p)
        } else {
            path == *p
        }
    });
    if !state.limits.api_keys.required() || open {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .or_else(|| subprotocol_key(request.headers()));
    match presented {
        Some(key) if state.limits.api_keys.accepts(key) => next.run(request).await,
        Some(_) => {
            AppError::Unauthorized("the API key is not valid; check the key you were given".into()).into_response()
        }
        None => {
            AppError::Unauthorized("this server needs an API key: send the header Authorization: Bearer <key>".into())
                .into_response()
        }
    }
}

/// The key a browser's WebSocket carries, which cannot set headers: OpenAI's
/// form, a subprotocol `openai-insecure-api-key.<key>` beside `realtime`.
fn subprotocol_key(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix("openai-insecure-api-key."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_keys_pass() {
        let keys = ApiKeys::new(["alpha-key", " beta-key ", ""]);
        assert!(keys.required());
        assert!(keys.accepts("alpha-key") && keys.accepts("beta-key"));
        assert!(!keys.accepts("alpha") && !keys.accepts("") && !keys.accepts("alpha-key2"));
        assert!(!ApiKeys::new(Vec::<String>::new()).required());
        assert_eq!(format!("{keys:?}"), "ApiKeys(2 keys)", "keys never reach a log");
    }
}
