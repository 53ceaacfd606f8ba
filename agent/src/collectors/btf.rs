//! Kernel struct member offsets from the running kernel's BTF (`/sys/kernel/btf/vmlinux`).
//!
//! Rust eBPF programs cannot carry CO-RE field relocations, so the agent does the lookup the
//! loader would do: it parses the kernel's BTF, finds each member's byte offset and writes them
//! into the programs' read-only `KERNEL_OFFSETS` global before load. One build thus runs on every
//! kernel with BTF, whatever its struct layouts.

use std::path::Path;

use crowsnest_ebpf_common::KernelOffsets;

/// Where the running kernel exposes its BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Why offsets could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    /// The BTF file could not be read (kernel without `CONFIG_DEBUG_INFO_BTF`).
    #[error("reading kernel BTF {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The data is not BTF or is truncated.
    #[error("malformed BTF: {0}")]
    Malformed(&'static str),
    /// A struct or member the programs need does not exist in this kernel.
    #[error("kernel BTF has no {0}")]
    Missing(String),
}

impl BtfError {
    /// Short kind for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Read { .. } => "btf_unreadable",
            Self::Malformed(_) => "btf_malformed",
            Self::Missing(_) => "btf_missing_member",
        }
    }
}

const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_TYPEDEF: u32 = 8;
const KIND_FUNC_PROTO: u32 = 13;

/// A parsed BTF blob, just enough to look up struct members.
pub struct Btf {
    data: Vec<u8>,
    strings: (usize, usize),
    /// Byte offset of each type record, indexed by type id (id 0 is `void`).
    types: Vec<usize>,
}

impl Btf {
    /// Reads and parses a BTF file.
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let data = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(data)
    }

    /// Parses a raw (little-endian) BTF blob.
    pub fn parse(data: Vec<u8>) -> Result<Self, BtfError> {
        let u32_at = |off: usize| read_u32(&data, off);
        if data.get(0..2) != Some(&[0x9f, 0xeb]) {
            return Err(BtfError::Malformed("bad magic"));
        }
        let hdr_len = u32_at(4)? as usize;
        let (type_off, type_len) = (u32_at(8)? as usize, u32_at(12)? as usize);
        let (str_off, str_len) = (u32_at(16)? as usize, u32_at(20)? as usize);
        let types_start = hdr_len + type_off;
        let types_end = types_start + type_len;
        let strings = (hdr_len + str_off, hdr_len + str_off + str_len);
        if types_end > data.len() || strings.1 > data.len() {
            return Err(BtfError::Malformed("sections past end of data"));
        }
        let mut types = vec![0];
        let mut off = types_start;
        while off < types_end {
            types.push(off);
            let info = u32_at(off + 4)?;
            let vlen = (info & 0xffff) as usize;
            let extra = match (info >> 24) & 0x1f {
                1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
                3 => 12,                      // ARRAY
                4 | 5 | 15 | 19 => vlen * 12, // STRUCT, UNION, DATASEC, ENUM64
                6 | 13 => vlen * 8,           // ENUM, FUNC_PROTO
                2 | 7..=12 | 16 | 18 => 0, // PTR, FWD, TYPEDEF, qualifiers, FUNC, FLOAT, TYPE_TAG
                _ => return Err(BtfError::Malformed("unknown type kind")),
            };
            off += 12 + extra;
        }
        Ok(Self {
            data,
            strings,
            types,
        })
    }

    fn name(&self, name_off: u32) -> Option<&str> {
        let start = self.strings.0 + name_off as usize;
        let bytes = self.data.get(start..self.strings.1)?;
        let end = bytes.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&bytes[..end]).ok()
    }

    /// Byte offset of `member` in `struct name` (members of anonymous nested structs and unions
    /// are found too, with their offsets added up).
    pub fn member_offset(&self, name: &str, member: &str) -> Result<u64, BtfError> {
        let missing = || BtfError::Missing(format!("struct {name}.{member}"));
        let id = (1..self.types.len())
            .find(|&id| {
                self.kind(id) == Some(KIND_STRUCT)
                    && read_u32(&self.data, self.types[id])
                        .ok()
                        .and_then(|n| self.name(n))
                        == Some(name)
            })
            .ok_or_else(missing)?;
        let bits = self.find_member(id, member, 0).ok_or_else(missing)?;
        if bits % 8 != 0 {
            return Err(missing());
        }
        Ok(bits / 8)
    }

    /// Number of arguments of BTF tracepoint `name` (from its `btf_trace_<name>` typedef, a
    /// pointer to a prototype whose first parameter is the program context).
    pub fn tracepoint_arity(&self, name: &str) -> Result<u32, BtfError> {
        let missing = || BtfError::Missing(format!("tracepoint {name}"));
        let typedef = format!("btf_trace_{name}");
        let id = (1..self.types.len())
            .find(|&id| {
                self.kind(id) == Some(KIND_TYPEDEF)
                    && read_u32(&self.data, self.types[id])
                        .ok()
                        .and_then(|n| self.name(n))
                        == Some(typedef.as_str())
            })
            .ok_or_else(missing)?;
        let pointer = self.target(id).ok_or_else(missing)?;
        let proto = self.target(pointer).ok_or_else(missing)?;
        if self.kind(proto) != Some(KIND_FUNC_PROTO) {
            return Err(missing());
        }
        let info = read_u32(&self.data, self.types[proto] + 4)?;
        Ok((info & 0xffff).saturating_sub(1))
    }

    /// The type a typedef or pointer refers to.
    fn target(&self, id: usize) -> Option<usize> {
        let off = *self.types.get(id)?;
        read_u32(&self.data, off + 8).ok().map(|t| t as usize)
    }

    fn kind(&self, id: usize) -> Option<u32> {
        let off = *self.types.get(id)?;
        read_u32(&self.data, off + 4)
            .ok()
            .map(|info| (info >> 24) & 0x1f)
    }

    /// Bit offset of `member` inside composite type `id`, searching anonymous members.
    fn find_member(&self, id: usize, member: &str, depth: u32) -> Option<u64> {
        let off = *self.types.get(id)?;
        let info = read_u32(&self.data, off + 4).ok()?;
        let kind_flag = info >> 31 == 1;
        for i in 0..(info & 0xffff) as usize {
            let m = off + 12 + i * 12;
            let (name_off, ty, raw) = (
                read_u32(&self.data, m).ok()?,
                read_u32(&self.data, m + 4).ok()?,
                read_u32(&self.data, m + 8).ok()?,
            );
            // With kind_flag set, the top 8 bits hold a bitfield size.
            let bit_off = u64::from(if kind_flag { raw & 0x00ff_ffff } else { raw });
            if name_off != 0 {
                if self.name(name_off) == Some(member) {
                    return Some(bit_off);
                }
            } else if depth < 8 {
                let inner = self.resolve(ty as usize)?;
                if matches!(self.kind(inner), Some(KIND_STRUCT | KIND_UNION))
                    && let Some(found) = self.find_member(inner, member, depth + 1)
                {
                    return Some(bit_off + found);
                }
            }
        }
        None
    }

    /// Follows typedefs and qualifiers to the underlying type.
    fn resolve(&self, mut id: usize) -> Option<usize> {
        for _ in 0..16 {
            match self.kind(id)? {
                8..=11 | 18 => id = read_u32(&self.data, self.types[id] + 8).ok()? as usize,
                _ => return Some(id),
            }
        }
        None
    }
}

fn read_u32(data: &[u8], off: usize) -> Result<u32, BtfError> {
    data.get(off..off + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or(BtfError::Malformed("truncated"))
}

/// Resolves every offset the programs use from the running kernel's BTF.
pub fn kernel_offsets(btf: &Btf) -> Result<KernelOffsets, BtfError> {
    Ok(KernelOffsets {
        task_pid: btf.member_offset("task_struct", "pid")?,
        task_cgroups: btf.member_offset("task_struct", "cgroups")?,
        css_set_dfl_cgrp: btf.member_offset("css_set", "dfl_cgrp")?,
        cgroup_kn: btf.member_offset("cgroup", "kn")?,
        kernfs_node_id: btf.member_offset("kernfs_node", "id")?,
        sock_cgroup: btf.member_offset("sock", "sk_cgrp_data")?
            + btf.member_offset("sock_cgroup_data", "cgroup")?,
        sock_protocol: btf.member_offset("sock", "sk_protocol")?,
        skb_head: btf.member_offset("sk_buff", "head")?,
        skb_end: btf.member_offset("sk_buff", "end")?,
        shinfo_gso_segs: btf.member_offset("skb_shared_info", "gso_segs")?,
        retransmit_has_err: u64::from(btf.tracepoint_arity("tcp_retransmit_skb")? >= 3),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a tiny BTF blob: `struct outer { int a; union { int pad; long b; }; }` with
    /// `a` at byte 0 and the anonymous union at byte 8.
    fn fixture() -> Vec<u8> {
        let strings = b"\0int\0outer\0a\0pad\0b\0long\0btf_trace_tp\0".to_vec();
        let s = |name: &str| {
            let needle = format!("\0{name}\0");
            (strings
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .expect("test setup")
                + 1) as u32
        };
        let mut types = Vec::new();
        let mut push = |words: &[u32]| words.iter().for_each(|w| types.extend(w.to_le_bytes()));
        push(&[s("int"), 1 << 24, 4, 32]); // 1: int
        push(&[s("long"), 1 << 24, 8, 64]); // 2: long
        push(&[0, (5 << 24) | 2, 8, s("pad"), 1, 0, s("b"), 2, 0]); // 3: anonymous union
        push(&[s("outer"), (4 << 24) | 2, 16, s("a"), 1, 0, 0, 3, 64]); // 4: struct outer
        push(&[0, (13 << 24) | 3, 0, 0, 2, 0, 1, 0, 1]); // 5: void (*)(long, int, int)
        push(&[0, 2 << 24, 5]); // 6: pointer to 5
        push(&[s("btf_trace_tp"), 8 << 24, 6]); // 7: typedef btf_trace_tp
        let mut data = Vec::new();
        for w in [
            0xeb9f_u32 | (1 << 16),
            24,
            0,
            types.len() as u32,
            types.len() as u32,
        ] {
            data.extend(w.to_le_bytes());
        }
        data.extend((strings.len() as u32).to_le_bytes());
        data.extend(types);
        data.extend(strings);
        data
    }

    #[test]
    fn finds_direct_and_anonymous_members() {
        let btf = Btf::parse(fixture()).expect("test setup");
        assert_eq!(btf.member_offset("outer", "a").expect("test setup"), 0);
        assert_eq!(btf.member_offset("outer", "b").expect("test setup"), 8);
        assert!(matches!(
            btf.member_offset("outer", "nope"),
            Err(BtfError::Missing(_))
        ));
        assert!(matches!(
            btf.member_offset("nope", "a"),
            Err(BtfError::Missing(_))
        ));
        assert_eq!(btf.tracepoint_arity("tp").expect("arity"), 2);
        assert!(matches!(
            btf.tracepoint_arity("nope"),
            Err(BtfError::Missing(_))
        ));
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            Btf::parse(vec![1, 2, 3]),
            Err(BtfError::Malformed(_))
        ));
    }

    #[test]
    fn running_kernel_has_every_offset() {
        let path = Path::new(VMLINUX_BTF);
        if !path.exists() {
            eprintln!("skip: {VMLINUX_BTF} absent (kernel without BTF)");
            return;
        }
        let offsets =
            kernel_offsets(&Btf::from_file(path).expect("test setup")).expect("test setup");
        // Non-zero everywhere except members that may legitimately sit first.
        assert!(offsets.task_pid > 0 && offsets.task_cgroups > 0 && offsets.cgroup_kn > 0);
        let btf = Btf::from_file(path).expect("test setup");
        assert_eq!(
            btf.tracepoint_arity("sched_switch").expect("sched_switch"),
            4
        );
        assert!(
            btf.tracepoint_arity("crowsnest_no_such_tracepoint")
                .is_err()
        );
    }
}
