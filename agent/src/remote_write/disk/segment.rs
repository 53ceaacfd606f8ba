//! Segment files: naming, listing, and reading frames with damage handling.
//!
//! Reads use positional I/O (`read_at`), so the writer's handle and the
//! reader's never share a file offset.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::record::{HEADER_LEN, Header, MAGIC};

/// Segment files are named by a zero-padded sequence number with this suffix.
const SUFFIX: &str = ".seg";

/// Resynchronisation scans this many bytes per read.
const SCAN_CHUNK: usize = 64 * 1024;

/// The path of segment `seq` in `dir`.
pub(crate) fn path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}{SUFFIX}"))
}

/// Sequence numbers of the segments in `dir`, ascending. Other files are ignored.
pub(crate) fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = name.strip_suffix(SUFFIX).and_then(|s| s.parse().ok()) {
            out.push(seq);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// One step through a segment.
#[derive(Debug)]
pub(crate) enum Item {
    /// An intact frame.
    Record {
        /// Offset just past the frame.
        end: u64,
        /// Samples it carries.
        samples: u32,
        /// The checked payload.
        payload: Vec<u8>,
    },
    /// Bytes that are not an intact frame, followed by a valid frame header
    /// at `end`. `samples` is what a readable header said was lost (0 when
    /// the header itself is damaged).
    Damaged {
        /// Where the next valid frame starts.
        end: u64,
        /// Samples known to be lost.
        samples: u32,
    },
    /// No valid frame from here to the limit: a torn tail (or damage to the
    /// end). `samples`: what a readable header here said was lost.
    Torn {
        /// Samples known to be lost.
        samples: u32,
    },
}

/// Reads the item at `pos` of `file`, looking only at bytes before `limit`.
/// `None` at the limit.
pub(crate) fn read_item(file: &File, pos: u64, limit: u64) -> io::Result<Option<Item>> {
    if pos >= limit {
        return Ok(None);
    }
    let header = read_header(file, pos, limit)?;
    if let Some(h) = header {
        let end = pos + (HEADER_LEN + h.payload_len) as u64;
        let mut payload = vec![0; h.payload_len];
        file.read_exact_at(&mut payload, pos + HEADER_LEN as u64)?;
        if crc32c::crc32c(&payload) == h.payload_crc {
            return Ok(Some(Item::Record {
                end,
                samples: h.samples,
                payload,
            }));
        }
        // The header is intact: its length tells where the next frame is.
        let samples = h.samples;
        return Ok(Some(match next_frame(file, end, limit)? {
            Some(next) => Item::Damaged { end: next, samples },
            None => Item::Torn { samples },
        }));
    }
    // A header that is valid but runs past the limit is a torn write: its
    // samples are known.
    let torn_samples = partial_header_samples(file, pos, limit)?;
    Ok(Some(match next_frame(file, pos + 1, limit)? {
        Some(next) => Item::Damaged {
            end: next,
            samples: torn_samples,
        },
        None => Item::Torn {
            samples: torn_samples,
        },
    }))
}

/// A valid header at `pos` whose frame fits before `limit`.
fn read_header(file: &File, pos: u64, limit: u64) -> io::Result<Option<Header>> {
    if limit - pos < HEADER_LEN as u64 {
        return Ok(None);
    }
    let mut b = [0u8; HEADER_LEN];
    file.read_exact_at(&mut b, pos)?;
    Ok(Header::parse(&b).filter(|h| pos + (HEADER_LEN + h.payload_len) as u64 <= limit))
}

/// The sample count of a valid header at `pos` whose frame does not fit.
fn partial_header_samples(file: &File, pos: u64, limit: u64) -> io::Result<u32> {
    if limit - pos < HEADER_LEN as u64 {
        return Ok(0);
    }
    let mut b = [0u8; HEADER_LEN];
    file.read_exact_at(&mut b, pos)?;
    Ok(Header::parse(&b).map_or(0, |h| h.samples))
}

/// The offset of the first valid frame header at or after `from`.
fn next_frame(file: &File, mut from: u64, limit: u64) -> io::Result<Option<u64>> {
    let magic = MAGIC.to_le_bytes();
    let mut buf = vec![0u8; SCAN_CHUNK];
    while from < limit {
        let n = usize::try_from((limit - from).min(SCAN_CHUNK as u64)).unwrap_or(SCAN_CHUNK);
        let chunk = &mut buf[..n];
        file.read_exact_at(chunk, from)?;
        for i in 0..n {
            if chunk[i..].starts_with(&magic) || (n - i < 4 && chunk[i] == magic[0]) {
                let at = from + i as u64;
                if read_header(file, at, limit)?.is_some() {
                    return Ok(Some(at));
                }
            }
        }
        // Overlap is unnecessary: a magic split by the boundary is caught by
        // the short-tail check above, which reads the header directly.
        from += n as u64;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::super::record::frame;
    use super::*;

    fn frames(payloads: &[&[u8]]) -> (Vec<u8>, Vec<u64>) {
        let mut out = Vec::new();
        let mut ends = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            frame(&mut out, i as u32 + 1, p);
            ends.push(out.len() as u64);
        }
        (out, ends)
    }

    fn items(bytes: &[u8]) -> Vec<String> {
        let mut f = tempfile::tempfile().expect("tempfile");
        f.write_all(bytes).expect("write");
        let mut pos = 0;
        let mut out = Vec::new();
        while let Some(item) = read_item(&f, pos, bytes.len() as u64).expect("read") {
            match item {
                Item::Record {
                    end,
                    samples,
                    payload,
                } => {
                    out.push(format!(
                        "rec {samples} {}",
                        String::from_utf8_lossy(&payload)
                    ));
                    pos = end;
                }
                Item::Damaged { end, samples } => {
                    out.push(format!("damaged {samples}"));
                    pos = end;
                }
                Item::Torn { samples } => {
                    out.push(format!("torn {samples}"));
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn damage_table() {
        let (good, ends) = frames(&[b"aaaa", b"bbbb", b"cccc"]);
        let e0 = usize::try_from(ends[0]).expect("fits");
        let e1 = usize::try_from(ends[1]).expect("fits");
        let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
            (
                "intact",
                good.clone(),
                vec!["rec 1 aaaa", "rec 2 bbbb", "rec 3 cccc"],
            ),
            (
                "torn mid-payload",
                good[..good.len() - 2].to_vec(),
                vec!["rec 1 aaaa", "rec 2 bbbb", "torn 3"],
            ),
            (
                "torn mid-header",
                good[..e1 + 7].to_vec(),
                vec!["rec 1 aaaa", "rec 2 bbbb", "torn 0"],
            ),
            (
                "payload byte flipped",
                {
                    let mut b = good.clone();
                    b[e0 + HEADER_LEN + 1] ^= 1;
                    b
                },
                vec!["rec 1 aaaa", "damaged 2", "rec 3 cccc"],
            ),
            (
                "header byte flipped",
                {
                    let mut b = good.clone();
                    b[e0 + 5] ^= 1;
                    b
                },
                vec!["rec 1 aaaa", "damaged 0", "rec 3 cccc"],
            ),
            (
                "magic flipped",
                {
                    let mut b = good.clone();
                    b[e0] ^= 1;
                    b
                },
                vec!["rec 1 aaaa", "damaged 0", "rec 3 cccc"],
            ),
            (
                "garbage between",
                {
                    let mut b = good[..e1].to_vec();
                    b.extend_from_slice(b"xxCNQ1yyy");
                    b.extend_from_slice(&good[e1..]);
                    b
                },
                vec!["rec 1 aaaa", "rec 2 bbbb", "damaged 0", "rec 3 cccc"],
            ),
            (
                "last payload flipped",
                {
                    let mut b = good.clone();
                    let n = b.len();
                    b[n - 1] ^= 1;
                    b
                },
                vec!["rec 1 aaaa", "rec 2 bbbb", "torn 3"],
            ),
            ("empty", Vec::new(), vec![]),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(items(&bytes), want, "{name}");
        }
    }

    #[test]
    fn list_sorts_and_ignores_other_files() {
        let dir = tempfile::tempdir().expect("dir");
        for seq in [10, 2, 33] {
            File::create(path(dir.path(), seq)).expect("create");
        }
        File::create(dir.path().join("position")).expect("create");
        assert_eq!(list(dir.path()).expect("list"), [2, 10, 33]);
    }
}
