//! The OTLP/HTTP span exporter: protobuf bodies from [`super::otlp`], sent
//! with the blocking HTTP client from the batch processor's own thread,
//! retried as the OTLP specification asks, and counted.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use reqwest::StatusCode;
use reqwest::header::{
    CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue,
    RETRY_AFTER, TRANSFER_ENCODING, USER_AGENT,
};

use super::otlp::{self, EncodedResource};
use super::{Gate, count_dropped, metrics};

/// Retries after the first attempt, for answers that ask for one (429,
/// 502, 503, 504) and for a collector that cannot be reached; all within
/// the export timeout.
const RETRIES: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_millis(1600);
/// The longest `Retry-After` obeyed (the export timeout bounds it too).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// The most of a collector's answer that is read (for a partial success).
const MAX_ANSWER: u64 = 64 * 1024;

/// Why an export failed, for the caller's error.
type Failure = String;

/// Sends finished spans to one OTLP/HTTP traces URL.
#[derive(Debug)]
pub(super) struct Exporter {
    client: reqwest::blocking::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    timeout: Duration,
    resource: EncodedResource,
    gate: Arc<Gate>,
    shut_down: AtomicBool,
}

/// What an [`Exporter`] needs besides its [`Gate`].
pub(super) struct Target<'a> {
    /// The full traces URL.
    pub(super) url: &'a str,
    /// The headers of every export, checked ([`headers`]).
    pub(super) headers: HeaderMap,
    /// The longest one export may take, retries included.
    pub(super) timeout: Duration,
}

impl Exporter {
    pub(super) fn new(target: Target<'_>, gate: Arc<Gate>) -> Result<Exporter, Failure> {
        let url = reqwest::Url::parse(target.url)
            .map_err(|e| format!("endpoint `{}`: {e}", target.url))?;
        if url.scheme() != "http" {
            return Err(format!(
                "endpoint `{}`: must be an http:// URL; pybridge is built without TLS \
                 (send to a collector on the host or in the cluster, which forwards over TLS)",
                target.url
            ));
        }
        let timeout = target.timeout;
        // The blocking client starts its own runtime, which cannot be done
        // from inside an async one: build it on a thread of its own.
        let client = std::thread::Builder::new()
            .name("pybridge-otlp-client".into())
            .spawn(move || {
                reqwest::blocking::Client::builder()
                    .timeout(timeout)
                    // A collector does not redirect; following one would
                    // hand the export's headers (API keys) to another host.
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("pybridge/", env!("CARGO_PKG_VERSION")))
                    .build()
            })
            .map_err(|e| format!("starting the HTTP client: {e}"))?
            .join()
            .map_err(|_| "building the HTTP client panicked".to_string())?
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Exporter {
            client,
            url,
            headers: target.headers,
            timeout,
            resource: EncodedResource::default(),
            gate,
            shut_down: AtomicBool::new(false),
        })
    }

    /// Posts `body`, retrying what the specification calls retryable until
    /// the export timeout; returns what the collector rejected, if anything.
    fn send(&self, body: Bytes) -> Result<Option<(u64, String)>, Failure> {
        let deadline = Instant::now() + self.timeout;
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err("the export timeout passed".into());
            }
            let sent = self
                .client
                .post(self.url.clone())
                .headers(self.headers.clone())
                .header(CONTENT_TYPE, "application/x-protobuf")
                .body(body.clone())
                .timeout(remaining)
                .send();
            let (failure, retry_after) = match sent {
                Ok(response) if response.status().is_success() => {
                    let mut answer = Vec::new();
                    // An unreadable answer still means the spans arrived.
                    let _ = response.take(MAX_ANSWER).read_to_end(&mut answer);
                    return Ok(otlp::rejected_spans(&answer));
                }
                Ok(response) => {
                    let status = response.status();
                    let failure = format!("the collector answered {status}");
                    if !retryable(status) {
                        return Err(failure);
                    }
                    (failure, retry_after(response.headers()))
                }
                Err(e) if e.is_timeout() => return Err(format!("no answer in time: {e}")),
                Err(e) => (format!("sending: {e}"), None),
            };
            attempt += 1;
            if attempt > RETRIES {
                return Err(failure);
            }
            // A collector's Retry-After replaces the backoff, which keeps
            // doubling: an answer without one waits longer than the last.
            let jitter = Duration::from_millis(super::random() % 100);
            let delay = retry_after.map_or(backoff + jitter, |d| d.min(MAX_RETRY_AFTER));
            // No time left for another attempt after the wait: give up now
            // rather than hold the export thread for nothing.
            if delay >= deadline.saturating_duration_since(Instant::now()) {
                return Err(failure);
            }
            std::thread::sleep(delay);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// The answers after which the OTLP specification asks to retry.
fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

/// A `Retry-After` in seconds (a date is left to the backoff).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

/// Gives the spans of one export back to the [`Gate`], even if the export
/// is abandoned half-way.
pub(super) struct Release<'a> {
    pub(super) gate: &'a Gate,
    pub(super) n: usize,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.gate.release(self.n);
    }
}

impl SpanExporter for Exporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len();
        let _release = Release {
            gate: &self.gate,
            n,
        };
        if self.shut_down.load(Ordering::Acquire) {
            count_dropped("export_failed", n);
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let mut body = Vec::with_capacity(256 * n + 256);
        otlp::encode_request(&self.resource, &batch, &mut body);
        drop(batch);
        match self.send(Bytes::from(body)) {
            Ok(partial) => {
                if let Some((spans, message)) = &partial {
                    // Once per export at most, from the export thread.
                    tracing::warn!(
                        rejected_spans = spans,
                        message = %message,
                        "the OTLP collector accepted an export only in part"
                    );
                }
                let rejected = partial.map_or(0, |(spans, _)| spans).min(n as u64);
                if rejected > 0 {
                    count_dropped("rejected", rejected as usize);
                }
                ::metrics::counter!(metrics::SPANS_EXPORTED_TOTAL).increment(n as u64 - rejected);
                Ok(())
            }
            Err(failure) => {
                count_dropped("export_failed", n);
                Err(OTelSdkError::InternalFailure(failure))
            }
        }
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = EncodedResource::new(resource);
    }
}

/// The headers of every export: those of `from_env` (the value of
/// `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, else `OTEL_EXPORTER_OTLP_HEADERS`:
/// `key=value` pairs separated by commas, values percent-encoded), then
/// `configured` (`telemetry.headers`), which wins for a name in both.
pub(super) fn headers(
    from_env: Option<(&str, &str)>,
    configured: &BTreeMap<String, String>,
) -> Result<HeaderMap, Failure> {
    let mut headers = HeaderMap::new();
    if let Some((variable, value)) = from_env {
        let pairs = value.split(',').map(str::trim).filter(|p| !p.is_empty());
        for (n, pair) in pairs.enumerate() {
            // Not quoted: a pair without `=` is often a secret written as
            // `Authorization: Bearer …`, and errors end up in logs.
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("{variable}: entry {} is not a key=value pair", n + 1))?;
            let value = percent_decode(value.trim()).ok_or_else(|| {
                format!(
                    "{variable}: the value of `{}` is not valid percent-encoded UTF-8",
                    name.trim()
                )
            })?;
            insert(&mut headers, name.trim(), &value).map_err(|e| format!("{variable}: {e}"))?;
        }
    }
    for (name, value) in configured {
        insert(&mut headers, name, value).map_err(|e| format!("telemetry.headers: {e}"))?;
    }
    Ok(headers)
}

fn insert(headers: &mut HeaderMap, name: &str, value: &str) -> Result<(), Failure> {
    let header = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not a valid header name"))?;
    if [
        CONTENT_TYPE,
        CONTENT_LENGTH,
        TRANSFER_ENCODING,
        CONNECTION,
        HOST,
        USER_AGENT,
    ]
    .contains(&header)
    {
        return Err(format!("`{name}` is set by pybridge"));
    }
    let mut value = HeaderValue::from_str(value)
        .map_err(|_| format!("the value of `{name}` is not a valid header value"))?;
    value.set_sensitive(true);
    headers.insert(header, value);
    Ok(())
}

fn percent_decode(value: &str) -> Option<String> {
    let mut out = Vec::with_capacity(value.len());
    let mut bytes = value.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = char::from(bytes.next()?).to_digit(16)?;
            let lo = char::from(bytes.next()?).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// Fails for a compression or protocol this exporter does not speak, from
/// the standard variables' values (`OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION`
/// and `…_PROTOCOL`, each given as `(variable, value)`).
pub(super) fn check_wire(
    compression: Option<(&str, &str)>,
    protocol: Option<(&str, &str)>,
) -> Result<(), Failure> {
    if let Some((variable, value)) = compression
        && !value.trim().eq_ignore_ascii_case("none")
    {
        return Err(format!(
            "{variable}={value}: spans are sent uncompressed; unset it or set `none`"
        ));
    }
    if let Some((variable, value)) = protocol
        && value.trim() != "http/protobuf"
    {
        return Err(format!(
            "{variable}={value}: pybridge exports OTLP over HTTP with protobuf; unset it or set `http/protobuf`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
