//! Decodes JSON-RPC messages, one per line on stdin (or the specification's
//! examples when stdin is a terminal or empty), and prints what each one is or the
//! error response a server would answer with.

use std::io::{BufRead, IsTerminal};

use pybridge_protocol::{Message, write_response};

const EXAMPLES: &[&str] = &[
    r#"{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}"#,
    r#"{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}"#,
    r#"{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]"#,
    r#"{"jsonrpc": "2.0", "method": 1, "params": "bar"}"#,
    r#"[]"#,
    r#"[1,2,3]"#,
    r#"{"jsonrpc": "2.0", "result": 19, "id": 1.5}"#,
];

fn describe(line: &str) -> String {
    match line.parse::<Message>() {
        Ok(Message::Request(r)) => format!("request {} {}", r.id, r.method),
        Ok(Message::Notification(n)) => format!("notification {}", n.method),
        Ok(Message::Response(r)) => format!("response {} ok={}", r.id, r.result.is_ok()),
        Ok(Message::Batch(entries)) => {
            let parts: Vec<String> = entries
                .iter()
                .map(|e| match e {
                    Ok(_) => "valid".to_string(),
                    Err(err) => format!("invalid ({err})"),
                })
                .collect();
            format!("batch of {}: [{}]", entries.len(), parts.join(", "))
        }
        Err(err) => {
            let mut answer = Vec::new();
            write_response(&mut answer, err.id(), Err(&err.to_error_object()));
            format!("{err}\n  answer: {}", String::from_utf8_lossy(&answer))
        }
    }
}

fn main() -> std::io::Result<()> {
    let stdin = std::io::stdin();
    let mut lines: Vec<String> = Vec::new();
    if !stdin.is_terminal() {
        lines = stdin.lock().lines().collect::<Result<_, _>>()?;
    }
    if lines.is_empty() {
        lines = EXAMPLES.iter().map(|s| s.to_string()).collect();
    }
    for line in lines.iter().filter(|l| !l.trim().is_empty()) {
        #[allow(clippy::print_stdout)] // An example's output is its point.
        {
            println!("{line}\n  => {}", describe(line));
        }
    }
    Ok(())
}
