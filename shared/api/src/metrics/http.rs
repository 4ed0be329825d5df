//! HTTP responses by route, method and status class: a middleware on every
//! finished router (`routes::catch_panics`), outside the panic catcher so that a
//! handler's panic is counted as the 500 it answers.

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::HTTP_RESPONSES;

/// The route label of a request no route matched (unknown paths are unbounded:
/// they must not become label values).
pub const UNMATCHED: &str = "unmatched";

/// Counts the response under the route *template* axum matched
/// (`/sessions/{session_id}/reconcile`), never the path with its ids.
pub async fn count_responses(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let method = method_label(request.method());
    let response = next.run(request).await;
    metrics::counter!(
        HTTP_RESPONSES,
        "route" => route.unwrap_or_else(|| UNMATCHED.to_owned()),
        "method" => method,
        "status" => status_class(response.status()),
    )
    .increment(1);
    response
}

/// A client may send any token as a method: only the standard ones are labels.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

pub fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_fall_in_their_class() {
        assert_eq!(status_class(StatusCode::OK), "2xx");
        assert_eq!(status_class(StatusCode::ACCEPTED), "2xx");
        assert_eq!(status_class(StatusCode::NOT_MODIFIED), "3xx");
        assert_eq!(status_class(StatusCode::PRECONDITION_FAILED), "4xx");
        assert_eq!(status_class(StatusCode::SERVICE_UNAVAILABLE), "5xx");
    }

    #[test]
    fn unknown_methods_share_one_label() {
        let odd = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&odd), "other");
        assert_eq!(method_label(&Method::POST), "POST");
    }
}
