//! Keys do not depend on member order, whitespace, escapes or number spelling,
//! and do depend on everything else.

use proptest::prelude::*;
use pybridge_cache::{Cache, CacheKey, Error, ParamsProblem};

use crate::support::memory_cache;

/// A JSON value whose numbers are `mantissa × 10^exp`, so that each can be
/// spelled several ways.
#[derive(Debug, Clone, PartialEq)]
enum J {
    Null,
    Bool(bool),
    Num(i64, i32),
    Str(String),
    Arr(Vec<J>),
    /// Unique keys, in sorted order.
    Obj(Vec<(String, J)>),
}

fn arb_json() -> impl Strategy<Value = J> {
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        (-1_000_000i64..1_000_000, -8i32..8).prop_map(|(m, e)| J::Num(m, e)),
        "[a-z\"\\\\/ é\u{1F600}\n\t]{0,6}".prop_map(J::Str),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(J::Arr),
            prop::collection::btree_map("[a-e\"é]{0,3}", inner, 0..6)
                .prop_map(|m| J::Obj(m.into_iter().collect())),
        ]
    })
}

/// The same value with trailing zeros folded into the exponent.
fn norm(v: &J) -> J {
    match v {
        J::Num(0, _) => J::Num(0, 0),
        J::Num(m, e) => {
            let (mut m, mut e) = (*m, *e);
            while m % 10 == 0 {
                m /= 10;
                e += 1;
            }
            J::Num(m, e)
        }
        J::Arr(items) => J::Arr(items.iter().map(norm).collect()),
        J::Obj(members) => J::Obj(members.iter().map(|(k, v)| (k.clone(), norm(v))).collect()),
        other => other.clone(),
    }
}

/// A tiny deterministic generator for spelling choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn ws(rng: &mut Rng, out: &mut String) {
    out.push_str([" ", "", "\n", "\t ", "", "\r\n"][rng.next(6)]);
}

fn spell_number(m: i64, e: i32, rng: &mut Rng, out: &mut String) {
    if m == 0 {
        out.push_str(["0", "0.000", "0e3", "0.0E-2"][rng.next(4)]);
        return;
    }
    if m < 0 {
        out.push('-');
    }
    let digits = m.unsigned_abs().to_string();
    match rng.next(4) {
        0 => out.push_str(&format!("{digits}e{e}")),
        1 => out.push_str(&format!("{digits}0E{}", e - 1)),
        2 => out.push_str(&format!("{digits}.000e{e:+}")),
        _ if e >= 0 => {
            out.push_str(&digits);
            out.push_str(&"0".repeat(e as usize));
        }
        _ => {
            let shift = (-e) as usize;
            let padded = format!("{digits:0>width$}", width = shift + 1);
            let (int, frac) = padded.split_at(padded.len() - shift);
            out.push_str(&format!("{int}.{frac}"));
        }
    }
}

fn spell_string(s: &str, rng: &mut Rng, out: &mut String) {
    if rng.next(2) == 0 {
        out.push_str(&serde_json::to_string(s).expect("string"));
        return;
    }
    out.push('"');
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04X}"));
            }
        }
    }
    out.push('"');
}

fn render(v: &J, rng: &mut Rng, out: &mut String) {
    ws(rng, out);
    match v {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Num(m, e) => spell_number(*m, *e, rng, out),
        J::Str(s) => spell_string(s, rng, out),
        J::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                render(item, rng, out);
            }
            ws(rng, out);
            out.push(']');
        }
        J::Obj(members) => {
            let mut order: Vec<usize> = (0..members.len()).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.next(i + 1));
            }
            out.push('{');
            for (n, &i) in order.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                ws(rng, out);
                spell_string(&members[i].0, rng, out);
                ws(rng, out);
                out.push(':');
                render(&members[i].1, rng, out);
            }
            ws(rng, out);
            out.push('}');
        }
    }
    ws(rng, out);
}

fn text(v: &J, seed: u64) -> String {
    let mut out = String::new();
    render(v, &mut Rng(seed | 1), &mut out);
    out
}

fn key_of(text: &str) -> CacheKey {
    CacheKey::new("ns", "method", text).unwrap_or_else(|e| panic!("{text:?} is JSON: {e}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn key_order_whitespace_and_spelling_do_not_matter(v in arb_json(), a: u64, b: u64) {
        let (ta, tb) = (text(&v, a), text(&v, b));
        // Both spellings are JSON that serde_json agrees on (up to numbers).
        prop_assert!(serde_json::from_str::<serde_json::Value>(&ta).is_ok(), "{}", ta);
        prop_assert_eq!(key_of(&ta), key_of(&tb), "{} vs {}", ta, tb);
    }

    #[test]
    fn different_values_give_different_keys(v in arb_json(), w in arb_json(), a: u64, b: u64) {
        prop_assume!(norm(&v) != norm(&w));
        let (tv, tw) = (text(&v, a), text(&w, b));
        prop_assert_ne!(key_of(&tv), key_of(&tw), "{} vs {}", tv, tw);
    }
}

#[test]
fn the_issue_examples_are_one_key() {
    assert_eq!(key_of(r#"{"a":1,"b":2}"#), key_of(r#"{"b":2,"a":1}"#));
    assert_eq!(key_of("[1]"), key_of("[1.0]"));
    assert_eq!(key_of("[1]"), key_of("[1e0]"));
}

#[test]
fn the_namespace_is_part_of_the_key() {
    let v1 = pybridge_cache::CacheBuilder::new()
        .namespace("v1")
        .memory_only()
        .build()
        .expect("valid");
    let v2 = pybridge_cache::CacheBuilder::new()
        .namespace("v2")
        .memory_only()
        .build()
        .expect("valid");
    let k1 = v1.key("m", "{}").expect("valid");
    assert_eq!(k1, CacheKey::new("v1", "m", "{}").expect("valid"));
    assert_ne!(k1, v2.key("m", "{}").expect("valid"));
    assert_eq!(v1.namespace(), "v1");
}

#[test]
fn params_that_are_not_json_are_an_error() {
    let cache: Cache = memory_cache();
    let err = cache.key("m", r#"{"a":}"#).expect_err("not JSON");
    assert!(
        matches!(
            err,
            Error::InvalidParams {
                offset: 5,
                problem: ParamsProblem::Syntax
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(
        err.to_string(),
        "cache key params are not valid JSON at byte 5: unexpected character"
    );
}
