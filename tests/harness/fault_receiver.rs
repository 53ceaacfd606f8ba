//! A fault-injecting remote write receiver on 127.0.0.1: decodes both the
//! 1.0 (`prometheus.WriteRequest`) and 2.0 (`io.prometheus.write.v2.Request`)
//! messages, and answers as its current [`Fault`] says (switchable at run
//! time), recording which samples it accepted and in what order.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use prost::Message;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::exporter::serve_http1;

/// How the receiver answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 204, with `-Written` headers for 2.0 requests.
    None,
    /// This status (500, 503, 400, 413, ...), with `Retry-After` seconds if given.
    Status(u16, Option<u64>),
    /// Holds the request this long, then answers 204.
    Slow(Duration),
    /// Closes the connection without answering.
    Reset,
}

/// `io.prometheus.write.v2.Request` (the fields the receiver checks).
#[derive(Clone, PartialEq, Message)]
pub struct RequestV2 {
    /// String table.
    #[prost(string, repeated, tag = "4")]
    pub symbols: Vec<String>,
    /// Series.
    #[prost(message, repeated, tag = "5")]
    pub timeseries: Vec<TimeSeriesV2>,
}

/// `io.prometheus.write.v2.TimeSeries` (subset).
#[derive(Clone, PartialEq, Message)]
pub struct TimeSeriesV2 {
    /// (name, value) symbol refs.
    #[prost(uint32, repeated, tag = "1")]
    pub labels_refs: Vec<u32>,
    /// Samples.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<crate::remote_write::Sample>,
}

#[derive(Default)]
struct State {
    fault: Option<Fault>,
    /// Per series (`name{a="b",...}` text), accepted timestamps in arrival order.
    accepted: HashMap<String, Vec<i64>>,
    /// 1.0 label bytes as sent -> text key, so a series seen before costs
    /// no label decoding (soak runs push hundreds of thousands of samples/s).
    keys: HashMap<Vec<u8>, String>,
    requests: u64,
    v2_requests: u64,
    errors: Vec<String>,
}

/// The receiver; stops when dropped.
pub struct FaultReceiver {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for FaultReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultReceiver {
    /// Starts on a free port, answering as `fault` says.
    ///
    /// # Errors
    /// When it cannot bind.
    pub async fn start(fault: Fault) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("bind")?;
        let addr = listener.local_addr().context("addr")?;
        let state = Arc::new(Mutex::new(State {
            fault: Some(fault),
            ..State::default()
        }));
        let st = Arc::clone(&state);
        let task = tokio::spawn(serve_http1(listener, move |req| {
            handle(Arc::clone(&st), req)
        }));
        Ok(Self { addr, state, task })
    }

    /// The write URL.
    pub fn url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }

    /// Answers from now on as `fault` says.
    pub fn set(&self, fault: Fault) {
        self.lock().fault = Some(fault);
    }

    /// Per series, the accepted timestamps in arrival order.
    pub fn accepted(&self) -> HashMap<String, Vec<i64>> {
        self.lock().accepted.clone()
    }

    /// Requests received, and how many of them were 2.0.
    pub fn requests(&self) -> (u64, u64) {
        let s = self.lock();
        (s.requests, s.v2_requests)
    }

    /// Undecodable or structurally invalid requests, with why.
    pub fn errors(&self) -> Vec<String> {
        self.lock().errors.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Series of a 1.0 request: their `labels` fields as sent, and timestamps.
type WireSeries = Vec<(Vec<u8>, Vec<i64>)>;

/// A request's series: text keys, or 1.0 label bytes to look up in `State::keys`.
enum Series {
    Text(Vec<(String, Vec<i64>)>),
    Wire(WireSeries),
}

/// The `labels` fields (as sent) and sample timestamps of each `TimeSeries`
/// of a 1.0 `WriteRequest`, read without building the label strings.
fn walk_v1(mut buf: &[u8]) -> Result<WireSeries, String> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (tag, body) = field(&mut buf)?;
        let (1, Some(mut ts)) = (tag, body) else {
            continue;
        };
        let (mut labels, mut stamps) = (Vec::new(), Vec::new());
        while !ts.is_empty() {
            match field(&mut ts)? {
                (1, Some(label)) => {
                    prost::encoding::encode_varint(label.len() as u64, &mut labels);
                    labels.extend_from_slice(label);
                }
                (2, Some(mut sample)) => {
                    let mut timestamp = 0;
                    while !sample.is_empty() {
                        let (key, wire) = key(&mut sample)?;
                        if key == 2 && wire == 0 {
                            let v = prost::encoding::decode_varint(&mut sample)
                                .map_err(|e| e.to_string())?;
                            timestamp = v as i64;
                        } else {
                            skip(&mut sample, wire)?;
                        }
                    }
                    stamps.push(timestamp);
                }
                _ => {}
            }
        }
        out.push((labels, stamps));
    }
    Ok(out)
}

fn key(buf: &mut &[u8]) -> Result<(u64, u64), String> {
    let k = prost::encoding::decode_varint(buf).map_err(|e| e.to_string())?;
    Ok((k >> 3, k & 7))
}

/// The next field: its number and, when length-delimited, its bytes.
fn field<'a>(buf: &mut &'a [u8]) -> Result<(u64, Option<&'a [u8]>), String> {
    let (tag, wire) = key(buf)?;
    if wire == 2 {
        let n = usize::try_from(prost::encoding::decode_varint(buf).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        let bytes = buf.get(..n).ok_or("truncated field")?;
        *buf = &buf[n..];
        return Ok((tag, Some(bytes)));
    }
    skip(buf, wire)?;
    Ok((tag, None))
}

fn skip(buf: &mut &[u8], wire: u64) -> Result<(), String> {
    let n = match wire {
        0 => {
            prost::encoding::decode_varint(buf).map_err(|e| e.to_string())?;
            0
        }
        1 => 8,
        5 => 4,
        2 => usize::try_from(prost::encoding::decode_varint(buf).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?,
        w => return Err(format!("unexpected wire type {w}")),
    };
    *buf = buf.get(n..).ok_or("truncated field")?;
    Ok(())
}

/// The text key of 1.0 label bytes from [`walk_v1`].
fn wire_text(mut labels: &[u8]) -> Result<String, String> {
    let mut pairs = Vec::new();
    while !labels.is_empty() {
        let n = usize::try_from(
            prost::encoding::decode_varint(&mut labels).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let l = crate::remote_write::Label::decode(labels.get(..n).ok_or("truncated label")?)
            .map_err(|e| e.to_string())?;
        labels = &labels[n..];
        pairs.push((l.name, l.value));
    }
    Ok(text(pairs))
}

/// `name{a="b",...}`, the key tests look series up by.
fn text(pairs: Vec<(String, String)>) -> String {
    let name = pairs
        .iter()
        .find(|(n, _)| n == "__name__")
        .map(|p| p.1.clone())
        .unwrap_or_default();
    let rest: Vec<String> = pairs
        .iter()
        .filter(|(n, _)| n != "__name__")
        .map(|(n, v)| format!("{n}=\"{v}\""))
        .collect();
    format!("{name}{{{}}}", rest.join(","))
}

/// Decoded series; 1.0 series are keyed by their label bytes until stored.
fn decode(v2: bool, raw: &[u8]) -> Result<Series, String> {
    if v2 {
        let req = RequestV2::decode(raw).map_err(|e| e.to_string())?;
        if req.symbols.first().map(String::as_str) != Some("") {
            return Err("symbols[0] is not empty".into());
        }
        let mut out = Vec::new();
        for ts in req.timeseries {
            let mut pairs = Vec::new();
            for p in ts.labels_refs.chunks(2) {
                let get = |i: u32| {
                    req.symbols
                        .get(i as usize)
                        .cloned()
                        .ok_or(format!("ref {i} out of range"))
                };
                pairs.push((get(p[0])?, get(*p.get(1).ok_or("odd labels_refs")?)?));
            }
            if pairs.windows(2).any(|w| w[0].0 >= w[1].0) {
                return Err("label refs not sorted".into());
            }
            out.push((
                text(pairs),
                ts.samples.iter().map(|s| s.timestamp).collect(),
            ));
        }
        Ok(Series::Text(out))
    } else {
        // The walk checks the framing; labels are decoded (and checked) by
        // prost the first time a series is seen.
        walk_v1(raw).map(Series::Wire)
    }
}

async fn handle(
    st: Arc<Mutex<State>>,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, std::io::Error> {
    let fault = st
        .lock()
        .map_err(|_| std::io::Error::other("lock"))?
        .fault
        .clone()
        .unwrap_or(Fault::None);
    if fault == Fault::Reset {
        return Err(std::io::Error::other("reset"));
    }
    let v2 = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("io.prometheus.write.v2.Request"));
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if let Fault::Slow(d) = fault {
        tokio::time::sleep(d).await;
    }
    let decoded = snap::raw::Decoder::new()
        .decompress_vec(&body)
        .map_err(|e| e.to_string())
        .and_then(|raw| decode(v2, &raw));
    let mut s = st.lock().map_err(|_| std::io::Error::other("lock"))?;
    s.requests += 1;
    s.v2_requests += u64::from(v2);
    let response = |status: u16| http::Response::builder().status(status);
    let series = match decoded {
        Ok(series) => series,
        Err(e) => {
            s.errors.push(e.clone());
            return response(400)
                .body(Full::new(Bytes::from(e)))
                .map_err(std::io::Error::other);
        }
    };
    match fault {
        Fault::Status(code, retry_after) => {
            let mut r = response(code);
            if let Some(secs) = retry_after {
                r = r.header("retry-after", secs.to_string());
            }
            r.body(Full::new(Bytes::from_static(b"injected failure")))
                .map_err(std::io::Error::other)
        }
        _ => {
            let mut n = 0;
            match series {
                Series::Text(series) => {
                    for (key, ts) in series {
                        n += ts.len();
                        s.accepted.entry(key).or_default().extend(ts);
                    }
                }
                Series::Wire(series) => {
                    let State { accepted, keys, .. } = &mut *s;
                    for (wire, ts) in series {
                        n += ts.len();
                        let key = match keys.get(&wire) {
                            Some(key) => key,
                            None => {
                                let key = wire_text(&wire).map_err(std::io::Error::other)?;
                                keys.entry(wire).or_insert(key)
                            }
                        };
                        match accepted.get_mut(key) {
                            Some(all) => all.extend(ts),
                            None => {
                                accepted.insert(key.clone(), ts);
                            }
                        }
                    }
                }
            }
            let mut r = response(204);
            if v2 {
                r = r.header("x-prometheus-remote-write-samples-written", n.to_string());
            }
            r.body(Full::default()).map_err(std::io::Error::other)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote_write::{Label, Sample, TimeSeries, WriteRequest};

    #[test]
    fn the_1_0_walk_reads_what_prost_wrote() {
        let label = |n: &str, v: &str| Label {
            name: n.into(),
            value: v.into(),
        };
        let sample = |t: i64| Sample {
            value: -0.5,
            timestamp: t,
        };
        let req = WriteRequest {
            timeseries: vec![
                TimeSeries {
                    labels: vec![label("__name__", "up"), label("job", "a")],
                    samples: vec![sample(-1), sample(1_700_000_000_000)],
                },
                TimeSeries {
                    labels: vec![label("__name__", "m"), label("x", "\"q\"")],
                    samples: vec![sample(0)],
                },
            ],
        };
        let Series::Wire(got) = decode(false, &req.encode_to_vec()).expect("walks") else {
            panic!("1.0 is walked");
        };
        let got: Vec<(String, Vec<i64>)> = got
            .into_iter()
            .map(|(wire, ts)| (wire_text(&wire).expect("labels"), ts))
            .collect();
        assert_eq!(
            got,
            [
                ("up{job=\"a\"}".to_owned(), vec![-1, 1_700_000_000_000]),
                ("m{x=\"\"q\"\"}".to_owned(), vec![0]),
            ]
        );
        assert!(decode(false, &[0x0a, 0x05, 0x0a]).is_err(), "truncated");
    }
}
