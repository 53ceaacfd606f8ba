//! Free loopback ports.

use std::future::Future;
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

/// How many times a server is restarted on a new port after losing its port to a race.
const PORT_ATTEMPTS: usize = 3;

/// Runs `start` with a free port, and again with another one if the process lost the port
/// to another process between [`free_port`] and its own bind (the error mentions
/// "address already in use"). Other errors are returned at once.
///
/// # Errors
/// The last error from `start`.
pub async fn with_free_port<T, F, Fut>(mut start: F) -> Result<T>
where
    F: FnMut(u16) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 1;
    loop {
        match start(free_port()?).await {
            Err(err) if attempt < PORT_ATTEMPTS && is_port_clash(&err) => {
                eprintln!("port taken before the server bound it, retrying: {err:#}");
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn is_port_clash(err: &anyhow::Error) -> bool {
    format!("{err:#}")
        .to_ascii_lowercase()
        .contains("address already in use")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_port_clash_is_retried_and_other_errors_are_not() {
        let mut calls = 0;
        let port = with_free_port(|port| {
            calls += 1;
            let clash = calls == 1;
            async move {
                if clash {
                    anyhow::bail!("bind: Address already in use (os error 98)");
                }
                Ok(port)
            }
        })
        .await
        .expect("second attempt works");
        assert!(port > 0);
        assert_eq!(calls, 2);

        let mut calls = 0;
        let err = with_free_port::<(), _, _>(|_| {
            calls += 1;
            async { anyhow::bail!("bad config") }
        })
        .await
        .expect_err("not retried");
        assert_eq!(calls, 1);
        assert!(err.to_string().contains("bad config"));
    }
}
