//! The challenge against a scripted worker on an in-memory pipe.

use bytes::BytesMut;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::*;

fn secret(s: &str) -> Secret {
    Secret::new(s).expect("not empty")
}

#[test]
fn the_proof_matches_the_known_answer_the_python_side_checks_too() {
    // The same vector is in python/pybridge-worker/tests/test_listen.py.
    let worker: Vec<u8> = (0..32).collect();
    let bridge: Vec<u8> = (32..64).collect();
    let proof = proof(&secret("secret"), BRIDGE_LABEL, &worker, &bridge);
    assert_eq!(
        to_hex(&proof),
        "d034cba148025b244c0570d72a33741549542339059ab0b771a9b96ad0edf154"
    );
    assert_eq!(from_hex(&to_hex(&proof)).as_deref(), Some(&proof[..]));
    assert_eq!(from_hex("abc"), None);
    assert_eq!(from_hex("zz"), None);
}

/// Runs the bridge's side against a worker that greets with `hello` and then
/// answers as `respond` says (given the bridge's `$/auth` params); returns
/// the outcome and what is left in the buffer.
async fn check(
    hello: Value,
    client_secret: Option<&str>,
    tcp: bool,
    respond: impl FnOnce(&Value) -> Vec<Value> + Send + 'static,
) -> (Result<(), ConnectError>, BytesMut) {
    let (bridge_side, worker_side) = tokio::io::duplex(64 * 1024);
    let (worker_read, mut worker_write) = tokio::io::split(worker_side);
    let worker = tokio::spawn(async move {
        let mut line = format!("{hello}\n");
        worker_write.write_all(line.as_bytes()).await.unwrap();
        let mut lines = BufReader::new(worker_read).lines();
        let auth = match lines.next_line().await.unwrap() {
            Some(text) => serde_json::from_str::<Value>(&text).unwrap(),
            None => return,
        };
        for message in respond(&auth["params"]) {
            line = format!("{message}\n");
            worker_write.write_all(line.as_bytes()).await.unwrap();
        }
        // Keep the pipe open until the bridge is done.
        let _ = lines.next_line().await;
    });
    let (mut read, mut write) = tokio::io::split(bridge_side);
    let mut buf = BytesMut::new();
    let secret = client_secret.map(secret);
    let outcome = client(&mut read, &mut write, &mut buf, secret.as_ref(), tcp).await;
    drop((read, write));
    worker.abort();
    (outcome, buf)
}

fn hmac_hello(nonce: &[u8]) -> Value {
    json!({"jsonrpc": "2.0", "method": "$/hello", "params": {"auth": "hmac-sha256", "nonce": to_hex(nonce)}})
}

/// A worker that knows `secret`: checks the bridge's proof and proves its own.
fn honest(secret_text: &'static str, nonce: Vec<u8>) -> impl FnOnce(&Value) -> Vec<Value> + Send {
    move |params| {
        let bridge_nonce = from_hex(params["nonce"].as_str().unwrap()).unwrap();
        let claimed = params["proof"].as_str().unwrap();
        let s = secret(secret_text);
        if !verify(&s, BRIDGE_LABEL, &nonce, &bridge_nonce, claimed) {
            return vec![json!({"jsonrpc": "2.0", "method": "$/authFailed",
                               "params": {"message": "wrong secret: the bridge's proof does not match the worker's secret"}})];
        }
        let mine = proof(&s, WORKER_LABEL, &nonce, &bridge_nonce);
        vec![
            json!({"jsonrpc": "2.0", "method": "$/auth", "params": {"proof": to_hex(&mine)}}),
            json!({"jsonrpc": "2.0", "method": "$/ready", "params": {"pid": 1}}),
        ]
    }
}

#[tokio::test]
async fn both_proofs_verify_with_the_same_secret_and_what_follows_stays_buffered() {
    let nonce = vec![7u8; 32];
    let (outcome, buf) = check(
        hmac_hello(&nonce),
        Some("s"),
        true,
        honest("s", nonce.clone()),
    )
    .await;
    assert_eq!(outcome, Ok(()));
    // The $/ready after the worker's proof is the protocol reader's, not ours.
    let rest = String::from_utf8_lossy(&buf);
    assert!(rest.contains("$/ready"), "{rest}");
}

#[tokio::test]
async fn a_wrong_secret_is_reported_as_such() {
    let nonce = vec![7u8; 32];
    let (outcome, _) = check(
        hmac_hello(&nonce),
        Some("wrong"),
        true,
        honest("s", nonce.clone()),
    )
    .await;
    let err = outcome.unwrap_err();
    assert!(matches!(err, ConnectError::RejectedByWorker(_)));
    assert!(err.to_string().starts_with("wrong secret"), "{err}");
}

#[tokio::test]
async fn a_worker_that_cannot_prove_the_secret_is_refused() {
    let nonce = vec![7u8; 32];
    let (outcome, _) = check(hmac_hello(&nonce), Some("s"), true, |_| {
        vec![json!({"jsonrpc": "2.0", "method": "$/auth", "params": {"proof": "00".repeat(32)}})]
    })
    .await;
    assert_eq!(outcome, Err(ConnectError::WrongWorkerProof));
}

#[tokio::test]
async fn auth_none_is_refused_over_tcp_when_a_secret_is_configured_but_not_over_unix() {
    let hello = json!({"jsonrpc": "2.0", "method": "$/hello", "params": {"auth": "none"}});
    let (tcp, _) = check(hello.clone(), Some("s"), true, |_| vec![]).await;
    assert_eq!(tcp, Err(ConnectError::WorkerUnauthenticated));
    let (unix, _) = check(hello.clone(), Some("s"), false, |_| vec![]).await;
    assert_eq!(unix, Ok(()));
    let (open, _) = check(hello, None, true, |_| vec![]).await;
    assert_eq!(open, Ok(()));
}

#[tokio::test]
async fn a_missing_secret_or_a_foreign_greeting_says_what_is_wrong() {
    let (outcome, _) = check(hmac_hello(&[1; 32]), None, true, |_| vec![]).await;
    assert_eq!(outcome, Err(ConnectError::SecretRequired));
    let ready = json!({"jsonrpc": "2.0", "method": "$/ready", "params": {"pid": 1}});
    let (outcome, _) = check(ready, Some("s"), true, |_| vec![]).await;
    assert!(
        matches!(&outcome, Err(ConnectError::Greeting(_))),
        "{outcome:?}"
    );
    let short_nonce = hmac_hello(&[1; 4]);
    let (outcome, _) = check(short_nonce, Some("s"), true, |_| vec![]).await;
    assert!(matches!(outcome, Err(ConnectError::Greeting(_))));
}
