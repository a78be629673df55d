//! Reading a request body: bounded in size and in time, then parsed as JSON with an error
//! that says what was wrong and where. A client that sends too much gets 413, one that
//! sends too slowly 408, one that sends something else 400; none of them reaches the daemon.

use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Reads at most `limit` bytes of `body` within `timeout`.
pub async fn read_limited(
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<u8>, ApiError> {
    let read = async {
        let mut out = Vec::new();
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::bad_request(
                    "body_unreadable",
                    format!("cannot read the request body: {e}"),
                )
            })?;
            if out.len() + chunk.len() > limit {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the request body is larger than {limit} bytes"),
                ));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(result) => result,
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!("the request body did not arrive within {timeout:?}"),
        )),
    }
}

/// Reads and parses a JSON body. An empty body is parsed as `{}`, so optional-only
/// requests can be sent without one.
pub async fn read_json<T: DeserializeOwned>(
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<T, ApiError> {
    let bytes = read_limited(body, limit, timeout).await?;
    parse_json(&bytes)
}

/// Parses `bytes` as JSON into `T`, naming the line and column of a syntax error and the
/// offending field of a shape error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| {
        let code = match e.classify() {
            serde_json::error::Category::Data => "invalid_request",
            _ => "bad_json",
        };
        let what = if code == "bad_json" {
            "the request body is not valid JSON"
        } else {
            "the request body does not have the expected fields"
        };
        ApiError::bad_request(code, format!("{what}: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Req {
        #[allow(dead_code)]
        reason: Option<String>,
    }

    #[tokio::test]
    async fn size_and_syntax() {
        let too_big = read_limited(Body::from(vec![b'x'; 11]), 10, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
        let bad = parse_json::<Req>(b"{\"reason\": ").unwrap_err();
        assert_eq!(
            (bad.status, bad.code),
            (StatusCode::BAD_REQUEST, "bad_json")
        );
        assert!(bad.message.contains("line 1"), "{}", bad.message);
        let unknown = parse_json::<Req>(b"{\"reson\": \"x\"}").unwrap_err();
        assert_eq!(unknown.code, "invalid_request");
        assert!(
            unknown.message.contains("unknown field `reson`"),
            "{}",
            unknown.message
        );
        assert!(parse_json::<Req>(b"  ").is_ok(), "empty body is {{}}");
    }
}
