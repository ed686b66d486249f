//! Counting a batch before it is built.

use super::batch_len;

#[test]
fn a_batch_is_counted_without_building_it_and_anything_else_is_left_to_the_parser() {
    let million = format!("[{}]", vec!["1"; 1_000_000].join(","));
    for (body, expected) in [
        ("[]", Some(0)),
        (" \n[1, {\"a\": [2, 3]}, \"x\"]", Some(3)),
        (million.as_str(), Some(1_000_000)),
        (r#"{"jsonrpc":"2.0","method":"m","id":1}"#, None),
        ("[1, 2", None),
        ("", None),
    ] {
        assert_eq!(batch_len(body.as_bytes()), expected, "{:.40}", body);
    }
}
