//! The invalidation messages published on the deployment's channel.
//!
//! Text, one message per invalidation: `v1 <sender> k <method tag> <key hex>`,
//! `v1 <sender> m <method>` (one method), `v1 <sender> M <JSON array of
//! methods>` (several at once: a write drops every read it made stale in one
//! message, so a receiver that applied it has dropped them all) or
//! `v1 <sender> a`. The sender is a random nonce
//! per cache instance, so a process recognises and skips its own messages.
//! A message that does not parse is ignored (a newer layout included: the
//! sender has already deleted the entries from Redis, and an older process
//! cannot apply what it does not understand).

use std::sync::Arc;

use crate::key::KeyDigest;

/// What an invalidation removes, with what the shared tier needs to find the
/// entries in Redis (a key's Redis name includes its method's tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Invalidation {
    Key {
        digest: KeyDigest,
        method_tag: u64,
    },
    /// One or more methods, never none.
    Methods(Arc<[Arc<str>]>),
    All,
}

impl Invalidation {
    /// Whether a write of `digest` (of the method with `method_tag` and name
    /// `method`) is covered by this invalidation.
    pub(crate) fn covers(&self, digest: &KeyDigest, method: &str) -> bool {
        match self {
            Invalidation::Key { digest: d, .. } => d == digest,
            Invalidation::Methods(methods) => methods.iter().any(|m| &**m == method),
            Invalidation::All => true,
        }
    }
}

pub(crate) fn encode(sender: u64, target: &Invalidation) -> String {
    match target {
        Invalidation::Key { digest, method_tag } => {
            format!("v1 {sender:016x} k {method_tag:016x} {}", digest.to_hex())
        }
        // One method keeps the layout processes of the previous version read.
        Invalidation::Methods(methods) => match &methods[..] {
            [method] => format!("v1 {sender:016x} m {method}"),
            _ => {
                let names: Vec<&str> = methods.iter().map(|m| &**m).collect();
                let list = serde_json::to_string(&names).expect("a list of strings is JSON");
                format!("v1 {sender:016x} M {list}")
            }
        },
        Invalidation::All => format!("v1 {sender:016x} a"),
    }
}

/// The sender and target of a message, or `None` if it is not one we know.
pub(crate) fn decode(text: &str) -> Option<(u64, Invalidation)> {
    let rest = text.strip_prefix("v1 ")?;
    let (sender, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let sender = hex_u64(sender)?;
    let target = match rest.split_once(' ') {
        Some(("k", tail)) => {
            let (tag, hex) = tail.split_once(' ')?;
            Invalidation::Key {
                method_tag: hex_u64(tag)?,
                digest: KeyDigest::from_hex(hex)?,
            }
        }
        Some(("m", method)) if !method.is_empty() => {
            Invalidation::Methods(Arc::from([Arc::from(method)]))
        }
        Some(("M", list)) => {
            let names: Vec<String> = serde_json::from_str(list).ok()?;
            if names.is_empty() || names.iter().any(String::is_empty) {
                return None;
            }
            Invalidation::Methods(names.into_iter().map(Arc::from).collect())
        }
        None if rest == "a" => Invalidation::All,
        _ => return None,
    };
    Some((sender, target))
}

fn hex_u64(s: &str) -> Option<u64> {
    if s.len() != 16 {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}
