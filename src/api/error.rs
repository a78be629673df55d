//! How the API says no: JSON errors under `/api/`, plain text elsewhere (big_brother's
//! routes, metrics, the status page), each with a status that tells the client whether
//! to fix its request (4xx) or to try again later (5xx).
//!
//! An error response never echoes request headers (the token) and quotes at most a short,
//! escaped piece of what the client sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Whether `path` belongs to the JSON API (errors there are JSON).
pub fn is_json_path(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// A JSON error: `{"error": "<for people>", "code": "<for programs>", ...}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// More fields merged into the object (for example `errors` of a refused reload).
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn unknown_cluster(name: &str) -> ApiError {
        ApiError::not_found(
            "unknown_cluster",
            format!(
                "no cluster is named {}; GET /api/v1/clusters lists them",
                quote(name)
            ),
        )
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn with(mut self, key: &str, value: serde_json::Value) -> ApiError {
        self.extra
            .get_or_insert_with(serde_json::Map::new)
            .insert(key.to_string(), value);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::Map::new();
        body.insert("error".into(), self.message.into());
        body.insert("code".into(), self.code.into());
        if let Some(extra) = self.extra {
            body.extend(extra);
        }
        json_response(self.status, &body)
    }
}

/// A JSON body with the right content type and a final newline (friendly to curl).
pub fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec_pretty(value) {
        Ok(mut bytes) => {
            bytes.push(b'\n');
            (
                status,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                bytes,
            )
                .into_response()
        }
        Err(e) => text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the answer as JSON: {e}\n"),
        ),
    }
}

/// A plain-text body.
pub fn text_response(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body.into(),
    )
        .into_response()
}

/// An error in the format the path calls for.
pub fn error_for_path(
    path: &str,
    status: StatusCode,
    code: &'static str,
    message: &str,
) -> Response {
    if is_json_path(path) {
        ApiError::new(status, code, message).into_response()
    } else {
        text_response(status, format!("{message}\n"))
    }
}

/// `"text"`, escaped and cut to 80 characters, for quoting client input in messages.
pub fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for (i, c) in text.chars().enumerate() {
        if i == 80 {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_escaped_and_short() {
        assert_eq!(quote("a\"b\n"), r#""a\"b\n""#);
        let long = "x".repeat(200);
        assert_eq!(quote(&long).chars().count(), 83);
    }

    #[test]
    fn json_paths() {
        assert!(is_json_path("/api/v1/clusters"));
        assert!(is_json_path("/api"));
        assert!(!is_json_path("/apis"));
        assert!(!is_json_path("/cluster/api"));
    }
}
