//! The connection stream, wrapped to remember TLS errors.
//!
//! HTTP/2 (the h2 crate) keeps I/O errors as kind + text, dropping the typed
//! `rustls::Error` — so a TLS 1.3 server rejecting our client certificate
//! (the alert arrives after the handshake, while the request is in flight)
//! would classify as plain I/O. The stream records the last TLS error in a
//! slot that hyper-util hands back with the request error (`Connected::extra`).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::MaybeHttpsStream;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The last TLS error of one connection.
#[derive(Clone, Default)]
pub(crate) struct TlsErrorSlot(Arc<Mutex<Option<rustls::Error>>>);

impl TlsErrorSlot {
    fn record(&self, err: &io::Error) {
        if let Some(tls) = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(tls.clone());
        }
    }

    /// The recorded error, if any.
    pub(crate) fn get(&self) -> Option<rustls::Error> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A pooled connection's byte stream.
pub(crate) struct Stream {
    inner: MaybeHttpsStream<TokioIo<TcpStream>>,
    slot: TlsErrorSlot,
}

impl Stream {
    pub(crate) fn new(inner: MaybeHttpsStream<TokioIo<TcpStream>>) -> Self {
        Self {
            inner,
            slot: TlsErrorSlot::default(),
        }
    }

    /// Where this stream records its TLS errors.
    pub(crate) fn slot(&self) -> TlsErrorSlot {
        self.slot.clone()
    }

    fn observe<T>(&self, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if let Poll::Ready(Err(e)) = &poll {
            self.slot.record(e);
        }
        poll
    }
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        self.inner.connected().extra(self.slot.clone())
    }
}

impl Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.observe(poll)
    }
}

impl Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.observe(poll)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.observe(poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.observe(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.observe(poll)
    }
}
