//! Cache keys: blake3 over a namespace, the method name and the canonical
//! form of the params, so that equal params in any spelling are one entry.

mod canonical;

use std::cell::RefCell;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// The blake3 context from which each namespace derives the key that its
/// entries' keys are hashed with: the namespace (long: it carries the catalog
/// version and the producer's digest) is hashed once, when the cache is
/// built, instead of with every key. Change it whenever the canonical form
/// changes, so that old disk entries can never be mistaken for new ones.
const NAMESPACE_CONTEXT: &str = "pybridge cache key v2: namespace";

/// The 256-bit blake3 digest that identifies a cache entry in both tiers.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    /// The raw digest bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, the name of the entry on disk.
    #[must_use]
    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        s
    }

    /// Parses the 64-character lowercase hex form written by [`KeyDigest::to_hex`].
    pub(crate) fn from_hex(s: &str) -> Option<Self> {
        fn nibble(c: u8) -> Option<u8> {
            match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                _ => None,
            }
        }
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(KeyDigest(out))
    }

    /// The first eight bytes, already uniformly distributed: a perfect hash.
    fn prefix_u64(&self) -> u64 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(first)
    }
}

impl Hash for KeyDigest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The digest is already a cryptographic hash; feeding the whole 32
        // bytes through another hash function would only cost time.
        state.write_u64(self.prefix_u64());
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyDigest({})", self.to_hex())
    }
}

impl fmt::Display for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A hasher for maps keyed by [`KeyDigest`]: it passes the digest prefix
/// through instead of hashing it again.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DigestHashBuilder;

impl BuildHasher for DigestHashBuilder {
    type Hasher = DigestHasher;

    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(0xcbf2_9ce4_8422_2325)
    }
}

/// See [`DigestHashBuilder`]. Anything other than a digest prefix is folded
/// in with FNV-1a so the hasher stays correct if it is ever fed other data.
#[derive(Debug)]
pub(crate) struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = fnv1a(self.0, bytes);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A short tag of a method name, stored with each memory entry so that
/// invalidation by method need not keep the name itself. A collision only
/// invalidates more than asked, never less.
pub(crate) fn method_tag(method: &str) -> u64 {
    fnv1a(0xcbf2_9ce4_8422_2325, method.as_bytes())
}

/// Raw JSON text accepted as key params: `&RawValue`, `&str`, bytes.
pub trait JsonText {
    /// The JSON text as bytes (it is checked to be UTF-8 when hashed, unless
    /// [`json_str`](JsonText::json_str) gives it as text).
    fn json_bytes(&self) -> &[u8];

    /// The JSON text, when its type guarantees UTF-8 already.
    fn json_str(&self) -> Option<&str> {
        None
    }
}

impl JsonText for RawValue {
    fn json_bytes(&self) -> &[u8] {
        self.get().as_bytes()
    }

    fn json_str(&self) -> Option<&str> {
        Some(self.get())
    }
}

impl JsonText for Box<RawValue> {
    fn json_bytes(&self) -> &[u8] {
        self.get().as_bytes()
    }

    fn json_str(&self) -> Option<&str> {
        Some(self.get())
    }
}

impl JsonText for str {
    fn json_bytes(&self) -> &[u8] {
        self.as_bytes()
    }

    fn json_str(&self) -> Option<&str> {
        Some(self)
    }
}

impl JsonText for String {
    fn json_bytes(&self) -> &[u8] {
        self.as_bytes()
    }

    fn json_str(&self) -> Option<&str> {
        Some(self)
    }
}

impl JsonText for [u8] {
    fn json_bytes(&self) -> &[u8] {
        self
    }
}

impl<const N: usize> JsonText for [u8; N] {
    fn json_bytes(&self) -> &[u8] {
        self
    }
}

impl JsonText for Vec<u8> {
    fn json_bytes(&self) -> &[u8] {
        self
    }
}

impl JsonText for bytes::Bytes {
    fn json_bytes(&self) -> &[u8] {
        self
    }
}

/// The identity of whatever produced cached values: blake3 of a worker's
/// manifest identity (its canonical JSON without pid or concurrency), or of
/// its command when it declares none. Mixed into
/// every key (through [`ProducerId::namespace`]), it makes two different
/// workers never share an entry, while the same worker across restarts and
/// processes (same manifest, or same command) finds its own entries again,
/// on disk too.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerId(KeyDigest);

/// The blake3 key for producer identities: a domain of its own, so that a
/// producer digest can never equal an entry digest.
const PRODUCER_KEY: [u8; 32] = *b"pybridge-cache-producer/v1......";

impl ProducerId {
    /// The identity of a worker that sent this canonical manifest text.
    #[must_use]
    pub fn from_manifest(canonical: &str) -> Self {
        Self::hash(b"manifest", &[canonical.as_bytes()])
    }

    /// The identity of a worker without a manifest: its program and
    /// arguments, each length-prefixed so that `["a b"]` and `["a", "b"]` differ.
    #[must_use]
    pub fn from_command<S: AsRef<[u8]>>(command: &[S]) -> Self {
        let parts: Vec<&[u8]> = command.iter().map(AsRef::as_ref).collect();
        Self::hash(b"command", &parts)
    }

    fn hash(kind: &[u8], parts: &[&[u8]]) -> Self {
        let mut out = Vec::new();
        push_len_prefixed(&mut out, kind);
        for part in parts {
            push_len_prefixed(&mut out, part);
        }
        ProducerId(KeyDigest(
            *blake3::keyed_hash(&PRODUCER_KEY, &out).as_bytes(),
        ))
    }

    /// `base` with this producer appended: the namespace to give
    /// [`CacheBuilder::namespace`](crate::CacheBuilder::namespace).
    #[must_use]
    pub fn namespace(&self, base: &str) -> String {
        format!("{base}|producer:{}", self.0.to_hex())
    }

    /// Lowercase hex of the digest.
    #[must_use]
    pub fn to_hex(&self) -> String {
        self.0.to_hex()
    }
}

impl fmt::Debug for ProducerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProducerId({})", self.0.to_hex())
    }
}

/// A namespace, hashed once: the blake3 key of its entries' key hashes.
/// Every namespace has its own, so equal methods and params in two
/// namespaces are two entries, and the method and params that follow need
/// no boundary against the namespace.
#[derive(Clone)]
pub(crate) struct NamespaceKey([u8; 32]);

impl NamespaceKey {
    pub(crate) fn new(namespace: &str) -> Self {
        NamespaceKey(blake3::derive_key(NAMESPACE_CONTEXT, namespace.as_bytes()))
    }
}

/// The identity of a cached result: a namespace (catalog version), a method
/// and its params in canonical form, hashed with blake3.
///
/// Object keys are sorted at every depth, whitespace is ignored, string
/// escapes are decoded, and numbers are compared by exact decimal value, so
/// `{"a":1,"b":[1.0]}` and `{ "b" : [1e0], "a" : 10e-1 }` are the same key.
/// A duplicated object member counts once, with its last value, as in
/// `serde_json` and Python's `json` module. Changing the namespace changes
/// every key, which is how a deploy invalidates everything at once.
#[derive(Clone)]
pub struct CacheKey {
    digest: KeyDigest,
    method: Arc<str>,
    method_tag: u64,
}

impl CacheKey {
    /// Hashes `namespace`, `method` and the canonical form of `params`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParams`] if `params` is not one valid JSON value.
    pub fn new<P: JsonText + ?Sized>(namespace: &str, method: &str, params: &P) -> Result<Self> {
        Self::in_namespace(&NamespaceKey::new(namespace), Arc::from(method), params)
    }

    /// [`CacheKey::new`] with the namespace already hashed (a cache keeps
    /// its own).
    pub(crate) fn in_namespace<P: JsonText + ?Sized>(
        namespace: &NamespaceKey,
        method: Arc<str>,
        params: &P,
    ) -> Result<Self> {
        let digest = with_scratch(|scratch| {
            let out = &mut scratch.out;
            out.clear();
            push_len_prefixed(out, method.as_bytes());
            match params.json_str() {
                Some(text) => canonical::canonicalize_str(text, scratch),
                None => canonical::canonicalize(params.json_bytes(), scratch),
            }
            .map_err(|(offset, problem)| Error::InvalidParams { offset, problem })?;
            // Hashing cost grows by 64-byte block; the compact prefix keeps a
            // 100-byte params key within two blocks.
            Ok(KeyDigest(
                *blake3::keyed_hash(&namespace.0, &scratch.out).as_bytes(),
            ))
        })?;
        Ok(CacheKey {
            digest,
            method_tag: method_tag(&method),
            method,
        })
    }

    /// The digest that names the entry in both tiers.
    #[must_use]
    pub fn digest(&self) -> &KeyDigest {
        &self.digest
    }

    /// The method name, as given.
    #[must_use]
    pub fn method(&self) -> &str {
        &self.method
    }

    pub(crate) fn method_arc(&self) -> &Arc<str> {
        &self.method
    }

    pub(crate) fn method_tag(&self) -> u64 {
        self.method_tag
    }
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest
    }
}

impl Eq for CacheKey {}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.digest.hash(state);
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheKey")
            .field("method", &self.method)
            .field("digest", &format_args!("{}", self.digest))
            .finish()
    }
}

/// A LEB128 length, then the bytes: prefix-free, so the boundary between
/// namespace, method and params is unambiguous.
fn push_len_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut len = bytes.len() as u64;
    loop {
        let low = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(low);
            break;
        }
        out.push(low | 0x80);
    }
    out.extend_from_slice(bytes);
}

/// Buffers reused across keys on one thread, so that building a key does not
/// allocate in the steady state.
#[derive(Default)]
pub(crate) struct Scratch {
    pub(crate) out: Vec<u8>,
    pub(crate) spans: Vec<canonical::Span>,
    pub(crate) members: Vec<u8>,
}

/// Buffers above this size are released after use rather than kept for the
/// life of the thread.
const SCRATCH_KEEP: usize = 64 * 1024;

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => {
            let r = f(&mut scratch);
            if scratch.out.capacity() > SCRATCH_KEEP || scratch.members.capacity() > SCRATCH_KEEP {
                *scratch = Scratch::default();
            }
            r
        }
        // Only reachable if `f` itself built a key; stay correct regardless.
        Err(_) => f(&mut Scratch::default()),
    })
}

#[cfg(test)]
pub(crate) fn canonical_for_test(
    params: &str,
) -> std::result::Result<Vec<u8>, crate::ParamsProblem> {
    let mut scratch = Scratch::default();
    canonical::canonicalize(params.as_bytes(), &mut scratch).map_err(|(_, p)| p)?;
    Ok(scratch.out)
}

#[cfg(test)]
mod tests;
