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
        let (s, t) = (pos, pos + e.len);
        pos = t;
        if t <= cursor {
            continue;
        }
        if s >= to {
            break;
        }
        let a = cursor.max(s);
        let b = to.min(t);
        let offset = if e.id.is_empty() { 0 } else { e.offset + (a - s) };
        push(&mut out, Extent { id: e.id.clone(), offset, len: b - a });
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
        if last.id == e.id && (e.id.is_empty() || last.offset + last.len == e.offset) {
            last.len += e.len;
            return;
        }
    }
    out.push(e);
}

pub fn hole(len: u64) -> Extent {
    Extent { id: Bytes::new(), offset: 0, len }
}

/// Total bytes covered, or None past 2^64.
pub fn covered(list: &[Extent]) -> Option<u64> {
    list.iter().try_fold(0u64, |t, e| t.checked_add(e.len))
}

/// The file `base` cut at `keep`, grown (with a hole) or cut to `size`,
/// with each patch's extents laid over the bytes from its offset on.
/// None if a patch reaches past `size`.
pub fn splice(base: &[Extent], keep: u64, size: u64, patches: &[(u64, Vec<Extent>)]) -> Option<Vec<Extent>> {
    let mut list = slice(base, 0, keep.min(size));
    if size > keep.min(size) {
        push(&mut list, hole(size - keep.min(size)));
    }
    for (offset, exts) in patches {
        let end = offset.checked_add(covered(exts)?)?;
        if end > size {
            return None;
        }
        let mut next = slice(&list, 0, *offset);
        for e in exts {
            push(&mut next, e.clone());
        }
        for e in slice(&list, end, size) {
            push(&mut next, e);
        }
        list = next;
    }
    Some(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(id: u8, offset: u64, len: u64) -> Extent {
        Extent { id: if id == 0 { Bytes::new() } else { Bytes::from(vec![id; 32]) }, offset, len }
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
        // Later patches win over earlier ones.
        let p = splice(&base, 20, 20, &[(0, vec![ext(3, 0, 20)]), (5, vec![ext(0, 0, 5)])]).unwrap();
        assert_eq!(p, vec![ext(3, 0, 5), ext(0, 0, 5), ext(3, 10, 10)]);
    }
}
