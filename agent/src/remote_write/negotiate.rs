//! Which protobuf message an endpoint sends (`protobuf_message`), and the
//! `auto` fallback: try 2.0; on 415, or a 2xx without any
//! `X-Prometheus-Remote-Write-*-Written` header (a 1.0 receiver that decoded
//! the 2.0 body as an empty 1.0 request, spec 2.0 §Required Written
//! Response Headers), switch to 1.0, resend the batch, remember the choice,
//! and probe 2.0 again only after [`REPROBE_AFTER`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::{HeaderMap, StatusCode};

use crate::config::ProtobufMessage;

/// How long an `auto` endpoint stays on 1.0 before trying 2.0 again.
pub(crate) const REPROBE_AFTER: Duration = Duration::from_secs(3600);

/// The message of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    /// `prometheus.WriteRequest`.
    V1,
    /// `io.prometheus.write.v2.Request`.
    V2,
}

impl Wire {
    /// For status output.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::V1 => "prometheus.WriteRequest (remote write 1.0)",
            Self::V2 => "io.prometheus.write.v2.Request (remote write 2.0)",
        }
    }
}

/// What a response means for the protocol choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Negotiated {
    /// Judge the response as usual.
    Keep,
    /// The receiver does not speak 2.0: resend the batch as 1.0.
    FallBack,
}

/// The per-endpoint protocol state.
#[derive(Debug)]
pub(crate) struct Negotiator {
    mode: ProtobufMessage,
    /// `auto` only: sending 2.0 now.
    v2: AtomicBool,
    fell_back_at: Mutex<Option<Instant>>,
    reprobe_after: Duration,
}

impl Negotiator {
    /// A negotiator for `mode`, re-probing after `reprobe_after`.
    pub(crate) fn new(mode: ProtobufMessage, reprobe_after: Duration) -> Self {
        Self {
            mode,
            v2: AtomicBool::new(true),
            fell_back_at: Mutex::new(None),
            reprobe_after,
        }
    }

    /// The message to send now.
    pub(crate) fn wire(&self) -> Wire {
        match self.mode {
            ProtobufMessage::V1 => Wire::V1,
            ProtobufMessage::V2 => Wire::V2,
            ProtobufMessage::Auto => {
                if self.v2.load(Ordering::Acquire) {
                    return Wire::V2;
                }
                let mut at = self
                    .fell_back_at
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if at.is_none_or(|t| t.elapsed() >= self.reprobe_after) {
                    *at = None;
                    self.v2.store(true, Ordering::Release);
                    tracing::info!("probing remote write 2.0 again");
                    Wire::V2
                } else {
                    Wire::V1
                }
            }
        }
    }

    /// Looks at the answer to a request sent as `wire`.
    pub(crate) fn on_response(
        &self,
        wire: Wire,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Negotiated {
        if self.mode != ProtobufMessage::Auto || wire != Wire::V2 {
            return Negotiated::Keep;
        }
        let unsupported = status == StatusCode::UNSUPPORTED_MEDIA_TYPE
            || (status.is_success() && !has_written_headers(headers));
        if !unsupported {
            return Negotiated::Keep;
        }
        if self.v2.swap(false, Ordering::AcqRel) {
            *self
                .fell_back_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
            tracing::info!(
                status = status.as_u16(),
                "receiver does not speak remote write 2.0; falling back to 1.0"
            );
        }
        Negotiated::FallBack
    }

    /// What the endpoint sends now, for status.
    pub(crate) fn current(&self) -> Wire {
        match self.mode {
            ProtobufMessage::V1 => Wire::V1,
            ProtobufMessage::V2 => Wire::V2,
            ProtobufMessage::Auto if self.v2.load(Ordering::Acquire) => Wire::V2,
            ProtobufMessage::Auto => Wire::V1,
        }
    }
}

/// True when any `X-Prometheus-Remote-Write-*-Written` header is present.
fn has_written_headers(headers: &HeaderMap) -> bool {
    headers.keys().any(|k| {
        let k = k.as_str();
        k.starts_with("x-prometheus-remote-write-") && k.ends_with("-written")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "x-prometheus-remote-write-samples-written",
            "3".parse().expect("value"),
        );
        h
    }

    #[test]
    fn decision_table() {
        let ok = StatusCode::NO_CONTENT;
        let ufm = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        let bad = StatusCode::BAD_REQUEST;
        let none = HeaderMap::new();
        let cases = [
            (
                ProtobufMessage::Auto,
                Wire::V2,
                ok,
                written(),
                Negotiated::Keep,
            ),
            (
                ProtobufMessage::Auto,
                Wire::V2,
                ok,
                none.clone(),
                Negotiated::FallBack,
            ),
            (
                ProtobufMessage::Auto,
                Wire::V2,
                ufm,
                none.clone(),
                Negotiated::FallBack,
            ),
            (
                ProtobufMessage::Auto,
                Wire::V2,
                bad,
                none.clone(),
                Negotiated::Keep,
            ),
            (
                ProtobufMessage::Auto,
                Wire::V1,
                ufm,
                none.clone(),
                Negotiated::Keep,
            ),
            (
                ProtobufMessage::V2,
                Wire::V2,
                ok,
                none.clone(),
                Negotiated::Keep,
            ),
            (
                ProtobufMessage::V2,
                Wire::V2,
                ufm,
                none.clone(),
                Negotiated::Keep,
            ),
            (
                ProtobufMessage::V1,
                Wire::V1,
                ufm,
                none.clone(),
                Negotiated::Keep,
            ),
        ];
        for (mode, wire, status, headers, want) in cases {
            let n = Negotiator::new(mode, REPROBE_AFTER);
            assert_eq!(
                n.on_response(wire, status, &headers),
                want,
                "{mode:?} {wire:?} {status}"
            );
        }
    }

    #[test]
    fn auto_remembers_the_fallback_and_reprobes_later() {
        let n = Negotiator::new(ProtobufMessage::Auto, Duration::from_millis(50));
        assert_eq!(n.wire(), Wire::V2);
        n.on_response(
            Wire::V2,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &HeaderMap::new(),
        );
        assert_eq!((n.wire(), n.current()), (Wire::V1, Wire::V1));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(n.wire(), Wire::V2, "re-probed");
        assert_eq!(
            n.on_response(Wire::V2, StatusCode::OK, &written()),
            Negotiated::Keep
        );
        assert_eq!(n.wire(), Wire::V2);
    }
}
