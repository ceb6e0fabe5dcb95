//! A member's space socket, written to by the change that produces an event rather than by a
//! task of its own.
//!
//! A selection in a space of a thousand members is a thousand small writes. Handing each to its
//! connection's task costs a channel message, a wake-up and a task switch per member, and the
//! last member waits for all of them; here the fan-out writes each member's frame straight into
//! its socket, without waiting: a socket that has room takes it at once (almost all do). What a socket cannot
//! take yet stays queued, in order, and the connection's task finishes it when the socket has room
//! ([`Outlet::poll_drain`]). A member whose queue passes [`MAX_PENDING`] is cut off; it resumes
//! from its last ack.
//!
//! tungstenite still reads the socket and writes its own frames (pong, close) through
//! [`OutletIo`], which queues them behind the events, so frames never interleave.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::telemetry::metrics::Metrics;

/// Bytes queued for a socket that does not keep up before its member is cut off: thousands of
/// events.
pub const MAX_PENDING: usize = 1 << 20;

/// Capacity a drained queue keeps for the next events.
const KEPT_CAPACITY: usize = 16 * 1024;

/// The socket of an upgraded HTTP connection.
pub type Upgraded = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;

/// Why an outlet stopped taking events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The server ends the conversation, for this reason.
    Closed(String),
    /// The member's queue passed [`MAX_PENDING`].
    Behind,
    /// Writing failed: the connection is gone.
    Lost,
}

/// A socket's write side, shared by whoever has an event for it and its connection's task.
pub struct Outlet<S = Upgraded> {
    inner: Mutex<Inner<S>>,
    metrics: Arc<Metrics>,
}

struct Inner<S> {
    socket: S,
    /// Bytes of whole frames not yet written, oldest first.
    pending: Vec<u8>,
    /// When the oldest event in `pending` was published.
    oldest: Option<Instant>,
    /// The socket refused the last write and the connection's task waits for room: only its
    /// writes may register for readiness now (a write from elsewhere would replace its waker).
    waiting: bool,
    /// The connection's task, woken when it has to finish a write or end.
    task: Option<Waker>,
    ended: Option<Ended>,
}

impl<S: AsyncWrite + Unpin> Outlet<S> {
    pub fn new(socket: S, metrics: Arc<Metrics>) -> Self {
        Self {
            inner: Mutex::new(Inner {
                socket,
                pending: Vec::new(),
                oldest: None,
                waiting: false,
                task: None,
                ended: None,
            }),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<S>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues the event `text` (one text message) published at `published`; nothing is written
    /// yet (see [`Outlet::flush`]). False if the outlet no longer takes events.
    pub fn queue(&self, text: &str, published: Instant) -> bool {
        self.queue_text(text, Some(published))
    }

    /// Queues `text` and writes it, as [`Outlet::queue`] and [`Outlet::flush`], for a message
    /// that is not an event (its delivery is not timed).
    pub fn send(&self, text: &str) -> bool {
        let queued = self.queue_text(text, None);
        self.flush();
        queued
    }

    /// Writes `text` if the socket keeps up (nothing is waiting to be written), and drops it if
    /// not: for what the next message supersedes (presence), which must never put a member
    /// behind. True if it was written or queued.
    pub fn offer(&self, text: &str) -> bool {
        if !self.lock().pending.is_empty() {
            return false;
        }
        self.send(text)
    }

    fn queue_text(&self, text: &str, published: Option<Instant>) -> bool {
        let mut inner = self.lock();
        if inner.ended.is_some() {
            return false;
        }
        if inner.pending.len() + text.len() > MAX_PENDING {
            inner.end(Ended::Behind);
            return false;
        }
        let header = FrameHeader {
            opcode: OpCode::Data(Data::Text),
            ..FrameHeader::default()
        };
        // Writing into a Vec cannot fail.
        let _ = header.format(text.len() as u64, &mut inner.pending);
        inner.pending.extend_from_slice(text.as_bytes());
        if inner.oldest.is_none() {
            inner.oldest = published;
        }
        true
    }

    /// Writes what is queued as far as the socket takes it now, without waiting; the
    /// connection's task writes the rest when the socket has room.
    pub fn flush(&self) {
        let mut inner = self.lock();
        if inner.waiting || inner.ended.is_some() {
            return;
        }
        let mut cx = Context::from_waker(Waker::noop());
        match inner.write_pending(&mut cx) {
            Poll::Ready(Ok(Some(oldest))) => self.metrics.delivered(oldest.elapsed()),
            Poll::Ready(Ok(None)) => {}
            Poll::Ready(Err(_)) => inner.end(Ended::Lost),
            Poll::Pending => {
                inner.waiting = true;
                inner.wake_task();
            }
        }
    }

    /// The server ends the conversation: what is queued is still written, then the close.
    pub fn close(&self, reason: String) {
        self.lock().end(Ended::Closed(reason));
    }

    /// The connection's task: writes what others could not, and is ready once the outlet ended.
    pub fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<Ended> {
        let mut inner = self.lock();
        if !inner.task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
            inner.task = Some(cx.waker().clone());
        }
        if let Some(ended) = &inner.ended {
            return Poll::Ready(ended.clone());
        }
        match inner.write_pending(cx) {
            Poll::Ready(Ok(written)) => {
                inner.waiting = false;
                if let Some(oldest) = written {
                    self.metrics.delivered(oldest.elapsed());
                }
                Poll::Pending
            }
            Poll::Ready(Err(_)) => {
                inner.end(Ended::Lost);
                Poll::Ready(Ended::Lost)
            }
            Poll::Pending => {
                inner.waiting = true;
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> Inner<S> {
    /// Writes `pending` until it is empty (ready, with when its oldest event was published, if
    /// one was written) or the socket has no room (pending; `cx` is woken when it has).
    fn write_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Instant>>> {
        let mut written = 0;
        let result = loop {
            if written == self.pending.len() {
                break Poll::Ready(Ok(()));
            }
            match Pin::new(&mut self.socket).poll_write(cx, &self.pending[written..]) {
                Poll::Ready(Ok(0)) => break Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => written += n,
                Poll::Ready(Err(e)) => break Poll::Ready(Err(e)),
                Poll::Pending => break Poll::Pending,
            }
        };
        self.pending.drain(..written);
        if self.pending.is_empty() && self.pending.capacity() > KEPT_CAPACITY {
            // A backlog that is gone: an idle member does not keep its memory.
            self.pending = Vec::new();
        }
        // A TLS stream takes bytes into its records and may hold the last of them until it is
        // flushed (a plain socket's flush does nothing): an event is delivered only when flushed.
        let result = match result {
            Poll::Ready(Ok(())) => Pin::new(&mut self.socket).poll_flush(cx),
            other => other,
        };
        result.map_ok(|()| self.oldest.take())
    }

    fn end(&mut self, ended: Ended) {
        if self.ended.is_none() {
            if ended == Ended::Lost {
                self.pending = Vec::new();
            }
            self.ended = Some(ended);
        }
        self.wake_task();
    }

    fn wake_task(&mut self) {
        if let Some(task) = self.task.take() {
            task.wake();
        }
    }
}

/// The socket as tungstenite sees it: reads go straight through; writes (its pongs and close
/// frames) queue behind the events and are written by the connection's task.
pub struct OutletIo<S = Upgraded>(pub Arc<Outlet<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for OutletIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0.lock().socket).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for OutletIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut inner = self.0.lock();
        if inner.pending.len() > MAX_PENDING {
            match inner.write_pending(cx) {
                Poll::Ready(Ok(_)) => inner.waiting = false,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    inner.waiting = true;
                    return Poll::Pending;
                }
            }
        }
        inner.pending.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut inner = self.0.lock();
        match inner.write_pending(cx) {
            Poll::Ready(Ok(_)) => {
                inner.waiting = false;
                Pin::new(&mut inner.socket).poll_flush(cx)
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                inner.waiting = true;
                Poll::Pending
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.0.lock().socket).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::DuplexStream;
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

    use super::*;

    /// An outlet on one end of an in-memory socket that holds `room` bytes, and a WebSocket
    /// client on the other end.
    async fn pair(room: usize) -> (Arc<Outlet<DuplexStream>>, WebSocketStream<DuplexStream>) {
        let (server, client) = tokio::io::duplex(room);
        let outlet = Arc::new(Outlet::new(server, Arc::default()));
        let client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        (outlet, client)
    }

    async fn next_text(client: &mut WebSocketStream<DuplexStream>) -> String {
        match client.next().await {
            Some(Ok(Message::Text(text))) => text.to_string(),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    fn event(n: usize) -> String {
        format!(r#"{{"seq":{n},"padding":"{}"}}"#, "x".repeat(40))
    }

    #[tokio::test]
    async fn a_socket_with_room_has_every_event_at_once_in_order() {
        let (outlet, mut client) = pair(64 * 1024).await;
        for n in 0..10 {
            assert!(outlet.queue(&event(n), Instant::now()));
            outlet.flush();
        }
        for n in 0..10 {
            assert_eq!(next_text(&mut client).await, event(n));
        }
    }

    #[tokio::test]
    async fn what_a_full_socket_cannot_take_is_written_by_the_connections_task_in_order() {
        // Room for about one event: the rest waits for the reader.
        let (outlet, mut client) = pair(80).await;
        for n in 0..50 {
            assert!(outlet.queue(&event(n), Instant::now()));
            outlet.flush();
        }
        let task = {
            let outlet = outlet.clone();
            tokio::spawn(async move { std::future::poll_fn(|cx| outlet.poll_drain(cx)).await })
        };
        for n in 0..50 {
            assert_eq!(next_text(&mut client).await, event(n));
        }
        // tungstenite's own frames queue behind the events.
        outlet.queue(&event(50), Instant::now());
        outlet.close("bye".into());
        assert_eq!(task.await.unwrap(), Ended::Closed("bye".into()));
        let mut ws =
            WebSocketStream::from_raw_socket(OutletIo(outlet.clone()), Role::Server, None).await;
        let closing = tokio::spawn(async move {
            let frame = CloseFrame {
                code: 1000.into(),
                reason: "bye".into(),
            };
            ws.send(Message::Close(Some(frame))).await
        });
        assert_eq!(next_text(&mut client).await, event(50));
        match client.next().await {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.reason.as_str(), "bye"),
            other => panic!("expected the close frame, got {other:?}"),
        }
        closing.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_member_that_stops_reading_is_cut_off_once_its_queue_is_full() {
        let (outlet, _client) = pair(1024).await;
        let text = "x".repeat(64 * 1024);
        let mut queued = 0;
        while outlet.queue(&text, Instant::now()) {
            outlet.flush();
            queued += 1;
            assert!(queued <= MAX_PENDING / text.len() + 1, "never cut off");
        }
        let ended = std::future::poll_fn(|cx| outlet.poll_drain(cx)).await;
        assert_eq!(ended, Ended::Behind);
        assert!(
            !outlet.queue("{}", Instant::now()),
            "no more events once behind"
        );
    }

    #[tokio::test]
    async fn a_lost_connection_ends_the_outlet() {
        let (outlet, client) = pair(1024).await;
        drop(client);
        outlet.queue(&event(0), Instant::now());
        outlet.flush();
        let ended = std::future::poll_fn(|cx| outlet.poll_drain(cx)).await;
        assert_eq!(ended, Ended::Lost);
    }
}
