//! The mutual challenge on a new connection to a remote worker, before the
//! protocol starts: each side proves it knows the shared secret with an
//! HMAC-SHA256 over both sides' nonces; the secret never crosses the wire.
//!
//! The exchange is four NDJSON lines, whatever framing follows (see
//! `docs/protocol.md`, "Sockets and authentication"):
//!
//! ```text
//! < {"jsonrpc":"2.0","method":"$/hello","params":{"auth":"hmac-sha256","nonce":"<64 hex>"}}
//! > {"jsonrpc":"2.0","method":"$/auth","params":{"nonce":"<64 hex>","proof":"<64 hex>"}}
//! < {"jsonrpc":"2.0","method":"$/auth","params":{"proof":"<64 hex>"}}
//! ```
//!
//! A side whose peer's proof is wrong sends `$/authFailed` with a message and
//! closes the connection.

use std::fmt;

use bytes::BytesMut;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::Secret;

#[cfg(test)]
mod tests;

/// What the bridge's proof is computed over, before the nonces.
pub(crate) const BRIDGE_LABEL: &[u8] = b"pybridge-auth-v1 bridge";
/// What the worker's proof is computed over, before the nonces.
pub(crate) const WORKER_LABEL: &[u8] = b"pybridge-auth-v1 worker";
/// The nonce length in bytes (hex on the wire: twice as many characters).
const NONCE_LEN: usize = 32;
/// The longest line accepted during the exchange.
const MAX_LINE: usize = 4096;

/// Why a connection to a remote worker was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectError {
    /// The connection could not be made.
    Dial(String),
    /// The worker closed the connection before the exchange was done.
    Closed,
    /// The first line was not a `$/hello` greeting (not a pybridge listener?).
    Greeting(String),
    /// The worker requires a secret and the bridge has none.
    SecretRequired,
    /// A secret is configured but the TCP worker authenticates nobody.
    WorkerUnauthenticated,
    /// The worker rejected the bridge's proof: the secrets differ.
    RejectedByWorker(String),
    /// The worker's proof does not match the bridge's secret.
    WrongWorkerProof,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Dial(err) => write!(f, "cannot connect: {err}"),
            ConnectError::Closed => {
                f.write_str("the worker closed the connection during authentication")
            }
            ConnectError::Greeting(seen) => write!(
                f,
                "the worker did not greet with $/hello (is it a pybridge worker started with --listen?); it sent: {seen}"
            ),
            ConnectError::SecretRequired => f.write_str(
                "the worker requires a secret and none is configured (worker.secret_file or PYBRIDGE_WORKER_SECRET)",
            ),
            ConnectError::WorkerUnauthenticated => f.write_str(
                "the worker accepts connections without a secret (started with --insecure?) but a secret is configured; refused",
            ),
            ConnectError::RejectedByWorker(message) => write!(
                f,
                "wrong secret: the worker rejected the bridge's proof ({message})"
            ),
            ConnectError::WrongWorkerProof => f.write_str(
                "wrong secret: the worker's proof does not match the bridge's secret",
            ),
        }
    }
}

impl std::error::Error for ConnectError {}

#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: serde_json::Value,
}

/// The worker's proof, or the bridge's: HMAC-SHA256(secret, label || 0x00 ||
/// worker nonce || bridge nonce).
pub(crate) fn proof(
    secret: &Secret,
    label: &[u8],
    worker_nonce: &[u8],
    bridge_nonce: &[u8],
) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.bytes())
        .expect("HMAC takes a key of any length");
    mac.update(label);
    mac.update(&[0]);
    mac.update(worker_nonce);
    mac.update(bridge_nonce);
    mac.finalize().into_bytes().into()
}

/// Whether `claimed` (hex) is the proof expected, compared in constant time.
fn verify(
    secret: &Secret,
    label: &[u8],
    worker_nonce: &[u8],
    bridge_nonce: &[u8],
    claimed: &str,
) -> bool {
    let Some(claimed) = from_hex(claimed) else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.bytes())
        .expect("HMAC takes a key of any length");
    mac.update(label);
    mac.update(&[0]);
    mac.update(worker_nonce);
    mac.update(bridge_nonce);
    mac.verify_slice(&claimed).is_ok()
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

pub(crate) fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Reads one `\n`-terminated line, keeping whatever follows it in `buf`.
async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
) -> Result<Line, ConnectError> {
    loop {
        if let Some(end) = memchr::memchr(b'\n', buf) {
            let line = buf.split_to(end + 1);
            let text = line[..end].trim_ascii();
            return serde_json::from_slice::<Line>(text)
                .map_err(|_| ConnectError::Greeting(crate::process::quote_head(text)));
        }
        if buf.len() > MAX_LINE {
            return Err(ConnectError::Greeting(crate::process::quote_head(buf)));
        }
        buf.reserve(1024);
        match reader.read_buf(buf).await {
            Ok(0) => return Err(ConnectError::Closed),
            Ok(_) => {}
            Err(err) => return Err(ConnectError::Dial(err.to_string())),
        }
    }
}

async fn write_line<W: AsyncWrite + Unpin>(
    writer: &mut W,
    value: &serde_json::Value,
) -> Result<(), ConnectError> {
    let mut line = value.to_string();
    line.push('\n');
    writer
        .write_all(line.as_bytes())
        .await
        .map_err(|err| ConnectError::Dial(err.to_string()))?;
    writer
        .flush()
        .await
        .map_err(|err| ConnectError::Dial(err.to_string()))
}

/// Runs the bridge's side of the exchange. `buf` keeps any bytes the worker
/// sent after its last authentication line (its `$/ready`, usually): the
/// protocol reader starts from them. `tcp` says whether the connection is
/// TCP: over a Unix socket, whose file mode guards it, a worker without a
/// secret is accepted even when the bridge has one.
pub(crate) async fn client<R, W>(
    reader: &mut R,
    writer: &mut W,
    buf: &mut BytesMut,
    secret: Option<&Secret>,
    tcp: bool,
) -> Result<(), ConnectError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let hello = read_line(reader, buf).await?;
    if hello.method.as_deref() != Some("$/hello") {
        return Err(ConnectError::Greeting(format!(
            "a message with method {:?}",
            hello.method.as_deref().unwrap_or("(none)")
        )));
    }
    let auth = hello.params.get("auth").and_then(|a| a.as_str());
    match (auth, secret) {
        (Some("none"), Some(_)) if tcp => Err(ConnectError::WorkerUnauthenticated),
        (Some("none"), _) => Ok(()),
        (Some("hmac-sha256"), None) => Err(ConnectError::SecretRequired),
        (Some("hmac-sha256"), Some(secret)) => {
            let worker_nonce = hello
                .params
                .get("nonce")
                .and_then(|n| n.as_str())
                .and_then(from_hex)
                .filter(|n| n.len() >= 16)
                .ok_or_else(|| {
                    ConnectError::Greeting("a $/hello without a hex nonce of 16+ bytes".into())
                })?;
            let bridge_nonce: [u8; NONCE_LEN] = rand::random();
            let ours = proof(secret, BRIDGE_LABEL, &worker_nonce, &bridge_nonce);
            write_line(
                writer,
                &json!({"jsonrpc": "2.0", "method": "$/auth",
                        "params": {"nonce": to_hex(&bridge_nonce), "proof": to_hex(&ours)}}),
            )
            .await?;
            let answer = read_line(reader, buf).await?;
            match answer.method.as_deref() {
                Some("$/auth") => {}
                Some("$/authFailed") => {
                    let message = answer
                        .params
                        .get("message")
                        .and_then(|m| m.as_str())
                        .unwrap_or("no reason given");
                    return Err(ConnectError::RejectedByWorker(message.to_string()));
                }
                other => {
                    return Err(ConnectError::Greeting(format!(
                        "a message with method {:?} instead of $/auth",
                        other.unwrap_or("(none)")
                    )));
                }
            }
            let claimed = answer
                .params
                .get("proof")
                .and_then(|p| p.as_str())
                .unwrap_or_default();
            if verify(secret, WORKER_LABEL, &worker_nonce, &bridge_nonce, claimed) {
                return Ok(());
            }
            // Tell the worker too, so its log says why the bridge left.
            let _ = write_line(
                writer,
                &json!({"jsonrpc": "2.0", "method": "$/authFailed",
                        "params": {"message": "wrong secret: the worker's proof does not match the bridge's secret"}}),
            )
            .await;
            Err(ConnectError::WrongWorkerProof)
        }
        (other, _) => Err(ConnectError::Greeting(format!(
            "a $/hello with unknown auth {:?}",
            other.unwrap_or("(none)")
        ))),
    }
}
