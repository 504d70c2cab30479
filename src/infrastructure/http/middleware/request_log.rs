//! What the edge records of each request: the request metrics, and the bounded text of the
//! log line.

use std::collections::HashMap;

use axum::extract::MatchedPath;
use axum::http::{Method, StatusCode};

/// The longest method and path a log line shows.
pub(super) const LOGGED_METHOD_BYTES: usize = 32;
pub(super) const LOGGED_PATH_BYTES: usize = 1024;

/// Text shown in a log line cut to a number of bytes (on a character boundary), the cut marked
/// with the full length. Control characters are escaped by the log formatter.
pub(super) struct Bounded<'a>(pub(super) &'a str, pub(super) usize);

impl std::fmt::Display for Bounded<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self(text, max) = *self;
        if text.len() <= max {
            return f.write_str(text);
        }
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "{}...({} bytes)", &text[..end], text.len())
    }
}

/// The request counter and latency histogram of one (method, route, status), resolved once per
/// worker thread: building the label strings and looking the key up in the registry on every
/// request cost more than recording.
type RequestMetrics = (metrics::Counter, metrics::Histogram);
/// (route template address, method label, status) → the template, kept alive, and its metrics.
type RequestMetricsCache =
    HashMap<(usize, &'static str, u16), (Option<MatchedPath>, RequestMetrics)>;

/// The `method` label: the methods of RFC 9110 and PATCH as themselves, any other (a client
/// may send any token, of any length) as `other`, so the label values are a closed set.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::PATCH, "PATCH"),
        (Method::DELETE, "DELETE"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    KNOWN
        .iter()
        .find(|(known, _)| known == method)
        .map_or("other", |(_, label)| label)
}

thread_local! {
    /// Keyed by the route template's address: the cached entry holds the template itself, so
    /// that address cannot be reused by another template while the entry lives.
    static REQUEST_METRICS: std::cell::RefCell<RequestMetricsCache> =
        std::cell::RefCell::new(HashMap::new());
}

/// Counts a request. Every label comes from a closed set, so a client cannot add series (each
/// kept for the life of the process and rendered on every scrape): the method as
/// [`method_label`], the route template matched (`unmatched` for the fallback, never the
/// path), and the status code (the router's own responses).
pub(super) fn record_request(
    method: &Method,
    route: Option<&MatchedPath>,
    status: StatusCode,
    seconds: f64,
) {
    let address = route.map_or(0, |route| route.as_str().as_ptr() as usize);
    let method = method_label(method);
    let key = (address, method, status.as_u16());
    REQUEST_METRICS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() > 4096 {
            cache.clear(); // cannot happen with closed label sets; a guard all the same
        }
        let (_, (counter, histogram)) = cache.entry(key).or_insert_with(|| {
            let labels = [
                ("method", method.to_owned()),
                (
                    "route",
                    route.map_or("unmatched", MatchedPath::as_str).to_owned(),
                ),
                ("status", status.as_u16().to_string()),
            ];
            (
                route.cloned(),
                (
                    metrics::counter!("http_requests_total", &labels),
                    metrics::histogram!("http_request_duration_seconds", &labels),
                ),
            )
        });
        counter.increment(1);
        histogram.record(seconds);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let long = format!("R1{}", "Z".repeat(60 * 1024));
        for made_up in ["BREW", "get", long.as_str()] {
            let method = Method::from_bytes(made_up.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other", "{made_up}");
        }
    }

    #[test]
    fn logged_text_is_cut_on_a_character_boundary_and_says_how_long_it_was() {
        assert_eq!(Bounded("GET", 32).to_string(), "GET");
        let long = "Z".repeat(60 * 1024);
        let shown = Bounded(&long, 32).to_string();
        assert_eq!(shown, format!("{}...(61440 bytes)", "Z".repeat(32)));
        assert_eq!(Bounded("ééé", 3).to_string(), "é...(6 bytes)");
    }
}
