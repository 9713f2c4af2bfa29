//! Damage for the fuzz tests of every decoder that reads bytes from
//! outside (a peer, a disk): bit flips, cuts, spliced-in garbage and
//! length fields made huge, laid over a real encoding so that the decoder
//! gets past its first checks. Only with the `fuzz` feature (tests).

use proptest::prelude::*;

#[derive(Debug, Clone)]
pub enum Damage {
    Flip {
        at: usize,
        mask: u8,
    },
    Cut {
        at: usize,
    },
    Splice {
        at: usize,
        bytes: Vec<u8>,
    },
    /// Eight bytes of 0xff: a length prefix (u32 or u64 little-endian, or
    /// a varint made overlong) made huge.
    Huge {
        at: usize,
    },
}

pub fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(at, mask)| Damage::Flip { at, mask }),
        any::<usize>().prop_map(|at| Damage::Cut { at }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..48))
            .prop_map(|(at, bytes)| Damage::Splice { at, bytes }),
        any::<usize>().prop_map(|at| Damage::Huge { at }),
    ]
}

/// `b` with each of `damages` applied in order (positions taken modulo
/// the length at that point).
pub fn apply(mut b: Vec<u8>, damages: &[Damage]) -> Vec<u8> {
    for d in damages {
        if b.is_empty() {
            break;
        }
        let n = b.len();
        match d {
            Damage::Flip { at, mask } => b[at % n] ^= mask,
            Damage::Cut { at } => b.truncate(at % n),
            Damage::Splice { at, bytes } => {
                let i = at % n;
                b.splice(i..i, bytes.iter().copied());
            }
            Damage::Huge { at } => {
                let i = at % n;
                let end = (i + 8).min(n);
                b[i..end].fill(0xff);
            }
        }
    }
    b
}
