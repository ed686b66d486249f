//! Writing results to stdout. A reader that stops reading (`| head`) ends the
//! output, not the program: a closed pipe is not an error here.

use std::io::Write;

/// Writes `text` to stdout and flushes it.
pub(crate) fn print(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
