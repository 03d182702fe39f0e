//! The hash chain that makes the audit trail tamper-evident. Pure: no I/O.
//!
//! Each entry's hash is SHA-256 over a domain tag and every stored field of the entry,
//! the previous entry's hash included, each field length-prefixed so that no two
//! different entries encode to the same bytes. Editing any field of any entry changes its
//! hash; deleting or inserting one breaks the `seq` run or the `prev_hash` link of the
//! next. What a chain alone cannot show is entries cut off the end: `verify` reports the
//! head (last seq and hash) so that it can be compared with a copy kept elsewhere (an
//! earlier export, a log line).

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const DOMAIN: &[u8] = b"switchyard-audit-v1\0";

/// One entry's fields exactly as stored (JSON columns as their stored text).
#[derive(Debug, Clone, Copy)]
pub struct Link<'a> {
    pub seq: i64,
    pub ts_ms: i64,
    pub actor: &'a str,
    pub source: Option<&'a str>,
    pub action: &'a str,
    pub target: &'a str,
    pub before: Option<&'a str>,
    pub after: Option<&'a str>,
    pub prev_hash: &'a str,
}

fn field(h: &mut Sha256, v: Option<&[u8]>) {
    match v {
        // The marker byte tells an absent field from an empty one.
        None => h.update([0u8]),
        Some(b) => {
            h.update([1u8]);
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        }
    }
}

/// The hash of an entry, lowercase hex.
pub fn entry_hash(l: &Link<'_>) -> String {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    field(&mut h, Some(&l.seq.to_be_bytes()));
    field(&mut h, Some(&l.ts_ms.to_be_bytes()));
    field(&mut h, Some(l.actor.as_bytes()));
    field(&mut h, l.source.map(str::as_bytes));
    field(&mut h, Some(l.action.as_bytes()));
    field(&mut h, Some(l.target.as_bytes()));
    field(&mut h, l.before.map(str::as_bytes));
    field(&mut h, l.after.map(str::as_bytes));
    field(&mut h, Some(l.prev_hash.as_bytes()));
    let digest = h.finalize();
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Where the chain first stops holding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Break {
    /// An entry is missing (deleted) or out of place.
    Gap { expected_seq: i64, found_seq: i64 },
    /// The entry does not link to the one before it.
    Link { seq: i64 },
    /// The entry's content is not what was hashed when it was written (edited).
    Content { seq: i64 },
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Break::Gap {
                expected_seq,
                found_seq,
            } => write!(
                f,
                "entry {expected_seq} is missing (the next entry is {found_seq}): entries were deleted"
            ),
            Break::Link { seq } => write!(
                f,
                "entry {seq} does not link to entry {}: entries were replaced or reordered",
                seq - 1
            ),
            Break::Content { seq } => {
                write!(f, "entry {seq} was altered after it was written")
            }
        }
    }
}

/// The outcome of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Entries checked (up to and including the first break).
    pub entries: u64,
    /// The last entry's seq and hash when the chain holds: compare with a copy kept
    /// elsewhere to detect entries cut off the end.
    pub head_seq: i64,
    pub head_hash: String,
    pub broken: Option<Break>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.broken.is_none()
    }
}

/// Checks entries one at a time, in `seq` order, stopping at the first break.
#[derive(Debug)]
pub struct Verifier {
    next_seq: i64,
    prev_hash: String,
    entries: u64,
    broken: Option<Break>,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier {
            next_seq: 1,
            prev_hash: GENESIS.to_string(),
            entries: 0,
            broken: None,
        }
    }
}

impl Verifier {
    /// Checks the next entry; returns `false` once the chain is broken (stop feeding it).
    pub fn check(&mut self, link: &Link<'_>, stored_hash: &str) -> bool {
        if self.broken.is_some() {
            return false;
        }
        self.entries += 1;
        let broken = if link.seq != self.next_seq {
            Some(Break::Gap {
                expected_seq: self.next_seq,
                found_seq: link.seq,
            })
        } else if link.prev_hash != self.prev_hash {
            Some(Break::Link { seq: link.seq })
        } else if entry_hash(link) != stored_hash {
            Some(Break::Content { seq: link.seq })
        } else {
            None
        };
        if broken.is_some() {
            self.broken = broken;
            return false;
        }
        self.next_seq += 1;
        self.prev_hash = stored_hash.to_string();
        true
    }

    pub fn finish(self) -> VerifyReport {
        VerifyReport {
            entries: self.entries,
            head_seq: self.next_seq - 1,
            head_hash: self.prev_hash,
            broken: self.broken,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Owned {
        seq: i64,
        actor: String,
        after: Option<String>,
        prev: String,
        hash: String,
    }

    fn link(o: &Owned) -> Link<'_> {
        Link {
            seq: o.seq,
            ts_ms: 1_700_000_000_000 + o.seq,
            actor: &o.actor,
            source: Some("127.0.0.1:5000"),
            action: "key.created",
            target: "key_1",
            before: None,
            after: o.after.as_deref(),
            prev_hash: &o.prev,
        }
    }

    fn chain(n: i64) -> Vec<Owned> {
        let mut out: Vec<Owned> = Vec::new();
        for seq in 1..=n {
            let prev = out
                .last()
                .map(|o| o.hash.clone())
                .unwrap_or_else(|| GENESIS.into());
            let mut o = Owned {
                seq,
                actor: "admin-token".into(),
                after: Some(format!("{{\"n\":{seq}}}")),
                prev,
                hash: String::new(),
            };
            o.hash = entry_hash(&link(&o));
            out.push(o);
        }
        out
    }

    fn verify(entries: &[Owned]) -> VerifyReport {
        let mut v = Verifier::default();
        for o in entries {
            if !v.check(&link(o), &o.hash) {
                break;
            }
        }
        v.finish()
    }

    #[test]
    fn an_intact_chain_verifies_and_reports_its_head() {
        let c = chain(5);
        let r = verify(&c);
        assert!(r.ok(), "{r:?}");
        assert_eq!((r.entries, r.head_seq), (5, 5));
        assert_eq!(r.head_hash, c[4].hash);
        assert!(verify(&[]).ok());
    }

    #[test]
    fn an_edited_field_is_detected() {
        let mut c = chain(4);
        c[2].actor = "someone-else".into();
        assert_eq!(verify(&c).broken, Some(Break::Content { seq: 3 }));
        let mut c = chain(4);
        c[1].after = None;
        assert_eq!(verify(&c).broken, Some(Break::Content { seq: 2 }));
    }

    #[test]
    fn a_deleted_entry_is_detected() {
        let mut c = chain(4);
        c.remove(1);
        assert_eq!(
            verify(&c).broken,
            Some(Break::Gap {
                expected_seq: 2,
                found_seq: 3
            })
        );
    }

    #[test]
    fn a_rehashed_edit_breaks_the_next_link() {
        // An attacker who edits an entry and recomputes its hash still breaks the link
        // of the entry after it.
        let mut c = chain(4);
        c[1].actor = "forged".into();
        c[1].hash = entry_hash(&link(&c[1]));
        assert_eq!(verify(&c).broken, Some(Break::Link { seq: 3 }));
    }

    #[test]
    fn absent_and_empty_fields_hash_differently() {
        let c = chain(1);
        let mut a = link(&c[0]);
        a.source = None;
        let mut b = a;
        b.source = Some("");
        assert_ne!(entry_hash(&a), entry_hash(&b));
    }
}
