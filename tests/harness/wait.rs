//! Bounded polling.

use std::future::Future;
use std::time::Duration;

use anyhow::{Result, bail};
use tokio::time::{Instant, sleep};

/// Calls `check` every `interval` until it yields `Some`, failing after `timeout` with the
/// last error `check` reported (so a timeout says what was still wrong).
///
/// # Errors
/// When `timeout` passes first, or `check` returns an error it marks fatal by returning `Err`.
pub async fn poll<T, F, Fut>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => String::from("condition not met"),
            Err(err) => format!("{err:#}"),
        };
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_first_value_and_times_out_with_the_last_error() {
        let mut calls = 0;
        let value = poll(
            "three calls",
            Duration::from_secs(5),
            Duration::from_millis(1),
            || {
                calls += 1;
                let done = calls >= 3;
                async move { Ok(done.then_some(calls)) }
            },
        )
        .await
        .expect("reached");
        assert_eq!(value, 3);

        let err = poll::<(), _, _>(
            "never",
            Duration::from_millis(20),
            Duration::from_millis(5),
            || async { bail!("still broken") },
        )
        .await
        .expect_err("times out");
        let text = err.to_string();
        assert!(
            text.contains("never") && text.contains("still broken"),
            "{text}"
        );
    }
}
