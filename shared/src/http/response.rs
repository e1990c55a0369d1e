//! Errors as HTTP answers: the status and the JSON envelope, logged once with their context.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::Error;

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Error::Internal(context) = &self {
            tracing::error!(error = %context, "internal error");
        } else if let Error::Unavailable(context) = &self {
            tracing::warn!(error = %context, "unavailable: answered 503 with Retry-After");
        } else {
            tracing::info!(code = self.code(), message = %self, "request refused");
        }
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self.envelope())).into_response();
        if matches!(self, Error::Unavailable(_)) {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(Error::RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}
