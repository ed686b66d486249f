//! A worker's write half (a process's stdin, or a connection), shared by its
//! writer task and by a caller that finds the worker otherwise idle.
//!
//! Handing a request to the writer task costs a wake-up of another task,
//! often on another thread, before the worker sees a byte: for one call at a
//! time that hop is most of the pool's latency over a bare pipe. So a call
//! that is alone on its worker writes its frame itself, with one
//! non-blocking write, when the writer task is idle. Under load calls go
//! through the writer task, which puts many frames in one system call.
//!
//! Frames never interleave: the write half is only ever used by whoever took
//! it out of the [`Pipe`] (the writer task, across its awaits) or under the
//! pipe's lock (a caller, for one non-blocking write). A caller whose frame
//! went out only in part leaves the rest in the pipe, and the writer task
//! writes it before anything else. The order of whole frames does not matter:
//! each answer names its request.

use std::fmt;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use tokio::io::AsyncWrite;

use crate::worker::lock;

/// A worker's write half.
pub(crate) type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Where a worker's write half waits while nobody writes.
#[derive(Default)]
pub(crate) struct Pipe {
    parked: Mutex<Parked>,
}

#[derive(Default)]
struct Parked {
    writer: Option<Writer>,
    /// The unwritten end of a frame a caller began: it goes first.
    rest: Option<Bytes>,
}

/// What became of a caller's attempt to write its frame itself.
pub(crate) enum Direct {
    /// The whole frame is written.
    Written,
    /// Part of it is written; the writer task must be woken to finish it.
    Started,
    /// Nothing is written: the writer task is busy (or the pipe full, or
    /// failing); the frame goes through the writer task.
    Queue(Bytes),
}

impl Pipe {
    /// Parks the write half, for the writer task to take.
    pub(crate) fn put(&self, writer: Writer) {
        lock(&self.parked).writer = Some(writer);
    }

    /// Takes the write half and the rest of a frame a caller began, for the
    /// writer task; `None` once the pipe is closed.
    pub(crate) fn take(&self) -> Option<(Writer, Option<Bytes>)> {
        let mut parked = lock(&self.parked);
        let writer = parked.writer.take()?;
        Some((writer, parked.rest.take()))
    }

    /// Drops the write half, which closes it (end of input for the worker).
    pub(crate) fn close(&self) {
        let writer = lock(&self.parked).writer.take();
        drop(writer);
    }

    /// Writes `frame` now, without waiting, if the writer task is idle and
    /// the pipe has room.
    pub(crate) fn try_write(&self, frame: Bytes) -> Direct {
        let mut parked = lock(&self.parked);
        let Parked { writer, rest } = &mut *parked;
        let Some(writer) = writer.as_mut().filter(|_| rest.is_none()) else {
            return Direct::Queue(frame);
        };
        // A write that would block registers this no-op waker; that is
        // harmless, as the writer task registers its own the next time it
        // writes, and it alone ever waits on the pipe.
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(writer).poll_write(&mut cx, &frame) {
            Poll::Ready(Ok(n)) if n == frame.len() => Direct::Written,
            Poll::Ready(Ok(n)) if n > 0 => {
                *rest = Some(frame.slice(n..));
                Direct::Started
            }
            // Nothing written: the writer task writes it, and meets the
            // failure, if any, itself.
            Poll::Ready(_) | Poll::Pending => Direct::Queue(frame),
        }
    }
}

impl fmt::Debug for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parked = lock(&self.parked);
        f.debug_struct("Pipe")
            .field("parked", &parked.writer.is_some())
            .field("rest", &parked.rest.as_ref().map(Bytes::len))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Weak};

    use bytes::Bytes;
    use tokio::io::AsyncReadExt;
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    use super::{Direct, Pipe};
    use crate::process::write_loop;
    use crate::worker::Outgoing;

    /// A frame a caller wrote only in part is finished by the writer task
    /// before the frames queued with the wake-up, and nothing is lost.
    #[tokio::test]
    async fn the_rest_of_a_frame_a_caller_began_goes_first() {
        let (ours, mut theirs) = tokio::io::duplex(16);
        let pipe = Arc::new(Pipe::default());
        pipe.put(Box::new(ours));
        let first = Bytes::from(format!("{}\n", "a".repeat(99)));
        assert!(matches!(pipe.try_write(first.clone()), Direct::Started));
        // Nobody may write while the rest waits.
        let second = Bytes::from_static(b"bbbb\n");
        assert!(matches!(pipe.try_write(second.clone()), Direct::Queue(_)));
        let (outbox, inbox) = mpsc::channel(8);
        for frame in [Bytes::new(), second.clone()] {
            outbox.try_send(Outgoing { id: None, frame }).expect("room");
        }
        drop(outbox);
        let writer = tokio::spawn(write_loop(
            Arc::clone(&pipe),
            inbox,
            CancellationToken::new(),
            Weak::new(),
        ));
        let mut seen = Vec::new();
        theirs.read_to_end(&mut seen).await.expect("read");
        assert_eq!(seen, [&first[..], &second[..]].concat());
        assert!(writer.await.expect("writer").is_empty());
        // The loop is over: the pipe is closed, and a caller queues.
        assert!(matches!(pipe.try_write(second), Direct::Queue(_)));
    }

    /// A caller's empty wake-up that ends a batch after a whole frame needs
    /// no write (one of nothing returns 0, which used to read as a closed
    /// pipe and end the writer, and with it the worker).
    #[tokio::test]
    async fn a_wake_up_at_the_end_of_a_batch_leaves_the_writer_running() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let pipe = Arc::new(Pipe::default());
        pipe.put(Box::new(ours));
        let (outbox, inbox) = mpsc::channel(8);
        let first = Bytes::from_static(b"{\"id\":1}\n");
        for frame in [first.clone(), Bytes::new()] {
            outbox.try_send(Outgoing { id: None, frame }).expect("room");
        }
        let writer = tokio::spawn(write_loop(
            Arc::clone(&pipe),
            inbox,
            CancellationToken::new(),
            Weak::new(),
        ));
        let mut seen = vec![0; first.len()];
        theirs.read_exact(&mut seen).await.expect("the first frame");
        // The batch is written; the writer must still take frames.
        let second = Bytes::from_static(b"{\"id\":2}\n");
        outbox
            .send(Outgoing {
                id: Some(2),
                frame: second.clone(),
            })
            .await
            .expect("the writer is still running");
        drop(outbox);
        let mut rest = Vec::new();
        theirs.read_to_end(&mut rest).await.expect("read");
        assert_eq!(rest, &second[..]);
        assert!(
            writer.await.expect("writer").is_empty(),
            "nothing unwritten"
        );
    }

    /// A whole frame that fits is written at once, by the caller.
    #[tokio::test]
    async fn a_frame_that_fits_is_written_by_its_caller() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let pipe = Pipe::default();
        assert!(matches!(
            pipe.try_write(Bytes::from_static(b"x\n")),
            Direct::Queue(_)
        ));
        pipe.put(Box::new(ours));
        assert!(matches!(
            pipe.try_write(Bytes::from_static(b"{}\n")),
            Direct::Written
        ));
        pipe.close();
        let mut seen = Vec::new();
        theirs.read_to_end(&mut seen).await.expect("read");
        assert_eq!(seen, b"{}\n");
    }
}
