//! One shard's loop: take a batch, encode it, send it until it is delivered,
//! rejected or abandoned, acknowledge it, repeat. A shard has one batch in
//! flight at a time and a retried batch blocks the ones behind it, which is
//! what keeps every series in timestamp order (spec 1.0 §Ordering).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::watch;

use super::encode::{EncodeError, Encoded, Encoder, build_request};
use super::encode_v2::EncoderV2;
use super::endpoint::EndpointShared;
use super::metrics::DropReason;
use super::negotiate::{Negotiated, Wire};
use super::retry::{Backoff, Verdict, retry_after, verdict};

/// Error bodies are logged verbatim up to this many bytes.
pub(crate) const MAX_ERROR_BODY: usize = 1024;

/// Response bodies are read up to this size. The client fails a longer body
/// without telling the status, so the limit is generous (receivers send empty
/// or short bodies); such a failure is retried like a network error.
const MAX_RESPONSE_BODY: u64 = 1024 * 1024;

/// Warnings inside the loop are emitted at most this often.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// How a batch ended.
enum Delivery {
    Delivered,
    Rejected,
    Abandoned,
    /// The receiver does not speak 2.0: encode as 1.0 and send again.
    FallBack,
}

/// Both encoders, 1.0 and 2.0.
#[derive(Default)]
struct Encoders {
    v1: Encoder,
    v2: EncoderV2,
}

/// The encoders of an endpoint's shards. An encoder keeps buffers the size
/// of the largest request (~1 MB at 2000 samples); encoding is synchronous,
/// so the shards share as many as encode at once (one per worker thread)
/// instead of holding one each (up to `max_shards` during a backlog drain).
#[derive(Default)]
pub(crate) struct EncoderPool(Mutex<Vec<Encoders>>);

impl EncoderPool {
    /// Encodes `samples` for `wire`. A 1.0 request is final (only 2.0 falls
    /// back), so its samples are released once written; a 2.0 request keeps
    /// them for the 1.0 encoding a fallback needs.
    fn encode(
        &self,
        wire: Wire,
        samples: &mut Vec<crate::model::Sample>,
    ) -> Result<Encoded, EncodeError> {
        let idle = || self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut encoders = idle().pop().unwrap_or_default();
        let encoded = match wire {
            Wire::V1 => encoders.v1.encode(samples),
            Wire::V2 => encoders.v2.encode(samples),
        };
        idle().push(encoders);
        encoded
    }
}

/// How far an endpoint's senders are asked to stop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stop {
    /// Keep sending.
    #[default]
    No,
    /// Finish the request in flight and acknowledge it if it lands, but
    /// start no other and wait out no backoff: a successor takes the
    /// durable queue over. Cutting a request off mid-flight would make the
    /// successor send again what the receiver may already have stored.
    AfterInFlight,
    /// Give up at once, in-flight request included.
    Now,
}

/// Resolves once the endpoint gives up on unsent data (or is dropped).
pub(crate) async fn abandoned(rx: &mut watch::Receiver<Stop>) {
    // An error means the sender is gone: nobody will wait for us any more.
    let _ = rx.wait_for(|s| *s == Stop::Now).await;
}

/// Resolves once the senders are asked to stop, at any level.
pub(crate) async fn stopping(rx: &mut watch::Receiver<Stop>) {
    let _ = rx.wait_for(|s| *s != Stop::No).await;
}

/// Runs shard `shard` until its queue is closed and drained, or abandoned.
pub(crate) async fn run(
    shared: Arc<EndpointShared>,
    shard: usize,
    mut abandon: watch::Receiver<Stop>,
) {
    let mut last_invalid_warn: Option<Instant> = None;
    let q = &shared.config.queue;
    loop {
        let next = shared
            .queue
            .next_batch(shard, q.max_samples_per_send, q.batch_send_deadline);
        let batch = tokio::select! {
            biased;
            () = stopping(&mut abandon) => {
                tracing::debug!(shard, "shard stopped: asked to");
                return;
            }
            b = next => b,
        };
        let Some(mut batch) = batch else {
            tracing::debug!(shard, "shard stopped: queue closed and drained");
            return;
        };
        if deliver(&shared, &mut batch, &mut abandon, &mut last_invalid_warn).await {
            // Not acknowledged: the endpoint counts what is left (or it stays on disk).
            return;
        }
        // Released here, not under the queue's lock (a 1.0 request's
        // samples are released by its encoding already).
        batch.samples.clear();
        shared.queue.ack(batch);
        shared.update_queue_gauge();
    }
}

/// Encodes and sends one batch until it is delivered or rejected, in the
/// message the endpoint negotiates. True when abandoned.
async fn deliver(
    shared: &EndpointShared,
    batch: &mut super::queue::Batch,
    abandon: &mut watch::Receiver<Stop>,
    last_invalid_warn: &mut Option<Instant>,
) -> bool {
    loop {
        let wire = shared.negotiator.wire();
        let encoded = match shared.encoders.encode(wire, &mut batch.samples) {
            Ok(encoded) => encoded,
            Err(e) => {
                shared.metrics.drop_samples(DropReason::Encode, batch.taken);
                tracing::error!(error = %e, kind = e.kind(), samples = batch.taken, "could not encode a batch; dropped");
                return false;
            }
        };
        if encoded.samples > 0 {
            match send(shared, wire, encoded.body, encoded.samples, abandon).await {
                Delivery::Delivered | Delivery::Rejected => {}
                Delivery::Abandoned => return true,
                // Invalid samples are counted by the 1.0 encoding that follows.
                Delivery::FallBack => continue,
            }
        }
        // Counted once the batch is settled, so a re-encoding never counts twice.
        shared
            .metrics
            .drop_samples(DropReason::InvalidLabels, encoded.invalid);
        if encoded.invalid > 0 && last_invalid_warn.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            *last_invalid_warn = Some(Instant::now());
            tracing::warn!(
                samples = encoded.invalid,
                first = %encoded.first_invalid.as_ref().map(ToString::to_string).unwrap_or_default(),
                "dropped samples whose labels break the remote write label rules"
            );
        }
        return false;
    }
}

/// Sends one request body until it is delivered, rejected or abandoned.
async fn send(
    shared: &EndpointShared,
    wire: Wire,
    body: Bytes,
    samples: usize,
    abandon: &mut watch::Receiver<Stop>,
) -> Delivery {
    let cfg = &shared.config;
    let m = &shared.metrics;
    let mut backoff = Backoff::new(cfg.queue.min_backoff, cfg.queue.max_backoff);
    let mut failures: u32 = 0;
    loop {
        let headers = match wire {
            Wire::V1 => &shared.headers,
            Wire::V2 => &shared.headers_v2,
        };
        let req = match build_request(&shared.uri, headers, body.clone()) {
            Ok(r) => r,
            Err(e) => {
                m.drop_samples(DropReason::Encode, samples);
                tracing::error!(error = %e, samples, "could not build the request; dropped");
                return Delivery::Rejected;
            }
        };
        let started = Instant::now();
        let result = tokio::select! {
            r = shared.client.send(req, cfg.remote_timeout, MAX_RESPONSE_BODY) => r,
            () = abandoned(abandon) => return Delivery::Abandoned,
        };
        let took = started.elapsed();
        m.duration.observe(took.as_secs_f64());
        let ok = matches!(&result, Ok(r) if r.status.is_success());
        if ok {
            shared.busy_nanos.fetch_add(
                u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
        } else {
            shared.failures.fetch_add(1, Ordering::Relaxed);
        }
        let (error, delay) = match result {
            Ok(resp) => {
                m.request(resp.status);
                if shared
                    .negotiator
                    .on_response(wire, resp.status, &resp.headers)
                    == Negotiated::FallBack
                {
                    m.retried.inc_by(samples as u64);
                    return Delivery::FallBack;
                }
                match verdict(resp.status, cfg.queue.retry_on_http_429) {
                    Verdict::Delivered => {
                        let now = SystemTime::now();
                        m.sent.inc_by(samples as u64);
                        m.bytes.inc_by(body.len() as u64);
                        m.last_success.set(
                            now.duration_since(UNIX_EPOCH)
                                .map_or(0.0, |d| d.as_secs_f64()),
                        );
                        shared.record_success(now);
                        if failures > 0 {
                            tracing::info!(failures, samples, "batch delivered after retries");
                        }
                        return Delivery::Delivered;
                    }
                    Verdict::Reject => {
                        m.failed.inc_by(samples as u64);
                        m.drop_samples(DropReason::Rejected, samples);
                        let text = truncated_body(&resp.body);
                        // Spec: do not interpret the message, log it as is.
                        tracing::warn!(status = resp.status.as_u16(), samples, body = %text, "receiver rejected the batch; dropped, not retried");
                        shared.record_error(format!("HTTP {}", resp.status.as_u16()));
                        return Delivery::Rejected;
                    }
                    Verdict::Retry => {
                        let backoff_delay = backoff.next_delay();
                        let delay =
                            retry_after(&resp.headers, SystemTime::now()).unwrap_or(backoff_delay);
                        (format!("HTTP {}", resp.status.as_u16()), delay)
                    }
                }
            }
            Err(e) => {
                m.request_error();
                (e.kind().to_owned(), backoff.next_delay())
            }
        };
        failures = failures.saturating_add(1);
        m.retried.inc_by(samples as u64);
        if failures == 1 {
            tracing::warn!(error = %error, samples, retry_in = ?delay, "send failed; retrying with backoff");
        } else {
            tracing::debug!(error = %error, samples, failures, retry_in = ?delay, "send failed again");
        }
        shared.record_error(error);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stopping(abandon) => return Delivery::Abandoned,
        }
    }
}

/// At most [`MAX_ERROR_BODY`] bytes of a response body as text.
fn truncated_body(body: &[u8]) -> String {
    let cut = &body[..body.len().min(MAX_ERROR_BODY)];
    String::from_utf8_lossy(cut).into_owned()
}
