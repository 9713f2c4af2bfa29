//! Extent lists: a file's bytes in order as pieces of chunks (`id`, `offset`,
//! `len`) or holes (empty `id`). The mount and the master splice them the
//! same way, so both sides of a splice commit build the same list.

use crate::pb::Extent;
use bytes::Bytes;

/// Bytes `[from, to)` of a file made of `base` extents, as extents (holes
/// past the end of `base`).
pub fn slice(base: &[Extent], from: u64, to: u64) -> Vec<Extent> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    let mut cursor = from;
    for e in base {
        // Saturating throughout: a list from outside may claim more than
        // 2^64 bytes or a piece past a chunk's end (callers refuse those;
        // nothing here may panic on one first).
        let (s, t) = (pos, pos.saturating_add(e.len));
        pos = t;
        if t <= cursor {
            continue;
        }
        if s >= to {
            break;
        }
        let a = cursor.max(s);
        let b = to.min(t);
        let offset = if e.id.is_empty() { 0 } else { e.offset.saturating_add(a - s) };
        push(&mut out, Extent { id: e.id.clone(), offset, len: b - a, token: e.token.clone() });
        cursor = b;
    }
    if cursor < to {
        push(&mut out, hole(to - cursor));
    }
    out
}

/// Appends, merging adjacent holes and contiguous pieces of the same chunk.
pub fn push(out: &mut Vec<Extent>, e: Extent) {
    if e.len == 0 {
        return;
    }
    if let Some(last) = out.last_mut() {
        if last.id == e.id && (e.id.is_empty() || last.offset.checked_add(last.len) == Some(e.offset)) {
            last.len = last.len.saturating_add(e.len);
            return;
        }
    }
    out.push(e);
}

pub fn hole(len: u64) -> Extent {
    Extent { id: Bytes::new(), offset: 0, len, token: Bytes::new() }
}

/// Total bytes covered, or None past 2^64.
pub fn covered(list: &[Extent]) -> Option<u64> {
    list.iter().try_fold(0u64, |t, e| t.checked_add(e.len))
}

/// The file `base` cut at `keep`, grown (with a hole) or cut to `size`,
/// with each patch's extents laid over the bytes from its offset on.
/// None if a patch reaches past `size`. Patches in offset order that do not
/// overlap (a mount's flush) take one pass over `base`; others are laid one
/// after the other, later ones winning.
pub fn splice(base: &[Extent], keep: u64, size: u64, patches: &[(u64, Vec<Extent>)]) -> Option<Vec<Extent>> {
    let cut = keep.min(size);
    let mut ends = Vec::with_capacity(patches.len());
    for (offset, exts) in patches {
        let end = offset.checked_add(covered(exts)?)?;
        if end > size {
            return None;
        }
        ends.push(end);
    }
    let in_order = patches.iter().skip(1).zip(&ends).all(|((next, _), end)| *end <= *next);
    if !in_order {
        let mut list = splice(base, keep, size, &[])?;
        for (offset, exts) in patches {
            list = splice(&list, size, size, &[(*offset, exts.clone())])?;
        }
        return Some(list);
    }
    let mut walk = Walk { base, i: 0, at: 0 };
    let mut list = Vec::new();
    let mut pos = 0;
    for ((offset, exts), end) in patches.iter().zip(&ends) {
        walk.copy(pos, *offset, cut, &mut list);
        for e in exts {
            push(&mut list, e.clone());
        }
        pos = *end;
    }
    walk.copy(pos, size, cut, &mut list);
    Some(list)
}

/// A cursor over an extent list read in increasing offsets.
struct Walk<'a> {
    base: &'a [Extent],
    i: usize,
    /// File offset where `base[i]` starts.
    at: u64,
}

impl Walk<'_> {
    /// Appends bytes `[from, to)` of the list cut at `cut` (zeros past it);
    /// `from` is at least the `to` of the previous call.
    fn copy(&mut self, from: u64, to: u64, cut: u64, out: &mut Vec<Extent>) {
        let mut cursor = from;
        let stop = to.min(cut);
        while cursor < stop && self.i < self.base.len() {
            let e = &self.base[self.i];
            let (s, t) = (self.at, self.at.saturating_add(e.len));
            if t <= cursor {
                self.i += 1;
                self.at = t;
                continue;
            }
            let b = stop.min(t);
            let offset = if e.id.is_empty() { 0 } else { e.offset.saturating_add(cursor - s) };
            push(out, Extent { id: e.id.clone(), offset, len: b - cursor, token: e.token.clone() });
            cursor = b;
        }
        if cursor < to {
            push(out, hole(to - cursor));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(id: u8, offset: u64, len: u64) -> Extent {
        Extent { id: if id == 0 { Bytes::new() } else { Bytes::from(vec![id; 32]) }, offset, len, token: Bytes::new() }
    }

    #[test]
    fn slicing_splits_and_pads() {
        let base = vec![ext(1, 0, 10), ext(2, 0, 10)];
        assert_eq!(slice(&base, 5, 15), vec![ext(1, 5, 5), ext(2, 0, 5)]);
        assert_eq!(slice(&base, 15, 25), vec![ext(2, 5, 5), ext(0, 0, 5)]);
        assert_eq!(slice(&base, 30, 40), vec![ext(0, 0, 10)]);
        assert_eq!(slice(&base, 0, 20), base);
    }

    #[test]
    fn contiguous_pieces_merge() {
        let mut v = Vec::new();
        push(&mut v, ext(1, 0, 5));
        push(&mut v, ext(1, 5, 5));
        push(&mut v, ext(0, 0, 3));
        push(&mut v, ext(0, 0, 3));
        assert_eq!(v, vec![ext(1, 0, 10), ext(0, 0, 6)]);
    }

    #[test]
    fn splice_cuts_grows_and_lays_patches_over() {
        let base = vec![ext(1, 0, 10), ext(2, 0, 10)];
        // Patch in the middle of chunk 1.
        let p = splice(&base, 20, 20, &[(3, vec![ext(3, 0, 4)])]).unwrap();
        assert_eq!(p, vec![ext(1, 0, 3), ext(3, 0, 4), ext(1, 7, 3), ext(2, 0, 10)]);
        // Cut at 5 then grown to 30: bytes 5..30 are a hole but for the patch.
        let p = splice(&base, 5, 30, &[(25, vec![ext(4, 0, 5)])]).unwrap();
        assert_eq!(p, vec![ext(1, 0, 5), ext(0, 0, 20), ext(4, 0, 5)]);
        // Cut to a smaller size without patches.
        assert_eq!(splice(&base, 20, 12, &[]).unwrap(), vec![ext(1, 0, 10), ext(2, 0, 2)]);
        // A patch past the size is refused.
        assert_eq!(splice(&base, 20, 20, &[(18, vec![ext(3, 0, 4)])]), None);
        // In-order patches (one pass) give what laying them one by one gives.
        let patches: Vec<(u64, Vec<Extent>)> =
            vec![(2, vec![ext(5, 0, 3)]), (9, vec![ext(0, 0, 4)]), (16, vec![ext(6, 0, 2)])];
        let mut one_by_one = splice(&base, 20, 20, &[]).unwrap();
        for p in &patches {
            one_by_one = splice(&one_by_one, 20, 20, std::slice::from_ref(p)).unwrap();
        }
        assert_eq!(splice(&base, 20, 20, &patches).unwrap(), one_by_one);
        let cut = splice(&base, 7, 25, &patches).unwrap();
        assert_eq!(cut, vec![ext(1, 0, 2), ext(5, 0, 3), ext(1, 5, 2), ext(0, 0, 9), ext(6, 0, 2), ext(0, 0, 7)]);
        // Later patches win over earlier ones.
        let p = splice(&base, 20, 20, &[(0, vec![ext(3, 0, 20)]), (5, vec![ext(0, 0, 5)])]).unwrap();
        assert_eq!(p, vec![ext(3, 0, 5), ext(0, 0, 5), ext(3, 10, 10)]);
    }

    proptest::proptest! {
        /// The one-pass splice of in-order patches equals laying them one
        /// by one, for any base, cut and size.
        #[test]
        fn one_pass_equals_one_by_one(
            lens in proptest::collection::vec((0u8..4, 1u64..9), 0..8),
            cuts in proptest::collection::vec((0u64..6, 1u64..6, 0u8..4), 0..6),
            keep in 0u64..60,
            size in 0u64..60,
        ) {
            let base: Vec<Extent> = lens.iter().enumerate().map(|(i, (id, len))| ext(*id, i as u64, *len)).collect();
            let keep = keep.min(covered(&base).unwrap());
            let mut patches = Vec::new();
            let mut at = 0;
            for (gap, len, id) in cuts {
                let off = at + gap;
                if off + len > size {
                    break;
                }
                patches.push((off, vec![ext(id, 0, len)]));
                at = off + len;
            }
            let mut one_by_one = splice(&base, keep, size, &[]).unwrap();
            for p in &patches {
                one_by_one = splice(&one_by_one, size, size, std::slice::from_ref(p)).unwrap();
            }
            proptest::prop_assert_eq!(splice(&base, keep, size, &patches).unwrap(), one_by_one);
        }
    }

    #[test]
    fn hostile_lists_never_panic() {
        // Found by the masters' command fuzzer: a patch naming a piece of a
        // chunk at offset 2^64-1, spliced out of order, overflowed here.
        let evil = vec![ext(1, u64::MAX, 120_647)];
        let _ = splice(&[], 0, 263_473, &[(142_826, evil.clone()), (77_359, vec![ext(0, 0, 65_468)])]);
        let _ = slice(&[ext(1, u64::MAX, 10), ext(0, 0, u64::MAX), ext(2, 5, u64::MAX)], 3, u64::MAX);
        let mut v = vec![ext(0, 0, u64::MAX)];
        push(&mut v, ext(0, 0, 5));
        assert_eq!(v[0].len, u64::MAX);
    }
}
