//! The invalidation messages published on the deployment's channel.
//!
//! Text, one message per invalidation: `v1 <sender> k <method tag> <key hex>`,
//! `v1 <sender> m <method>` or `v1 <sender> a`. The sender is a random nonce
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
    Key { digest: KeyDigest, method_tag: u64 },
    Method(Arc<str>),
    All,
}

impl Invalidation {
    /// Whether a write of `digest` (of the method with `method_tag` and name
    /// `method`) is covered by this invalidation.
    pub(crate) fn covers(&self, digest: &KeyDigest, method: &str) -> bool {
        match self {
            Invalidation::Key { digest: d, .. } => d == digest,
            Invalidation::Method(m) => &**m == method,
            Invalidation::All => true,
        }
    }
}

pub(crate) fn encode(sender: u64, target: &Invalidation) -> String {
    match target {
        Invalidation::Key { digest, method_tag } => {
            format!("v1 {sender:016x} k {method_tag:016x} {}", digest.to_hex())
        }
        Invalidation::Method(method) => format!("v1 {sender:016x} m {method}"),
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
        Some(("m", method)) if !method.is_empty() => Invalidation::Method(Arc::from(method)),
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
