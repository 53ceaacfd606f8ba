//! Free loopback ports.

use std::net::{SocketAddr, TcpListener};

use anyhow::{Context, Result};

/// A port on 127.0.0.1 that was free a moment ago: bound to port 0, then released so the
/// process under test can bind it. Another process could take it in between; tests accept
/// that small race rather than passing sockets to child processes.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(listener
        .local_addr()
        .context("local_addr of a bound socket")?
        .port())
}

/// `127.0.0.1:<free port>`.
pub fn free_addr() -> Result<SocketAddr> {
    Ok(SocketAddr::from(([127, 0, 0, 1], free_port()?)))
}
