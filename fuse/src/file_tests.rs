use super::*;
use tessera_proto::pb::Attr;

#[test]
fn small_files_may_be_cut_into_more_pieces_per_slot() {
    let mib = 1u64 << 20;
    assert_eq!(piece_limit(0, 4 * mib), 128);
    assert_eq!(piece_limit(64 * mib, 4 * mib), 64, "16 slots share the budget");
    assert_eq!(piece_limit(1 << 30, 4 * mib), 16, "never below the floor");
    assert_eq!(piece_limit(u64::MAX, 4 * mib), 16);
}

#[test]
fn pieces_are_counted_by_search() {
    let ends = [10, 20, 30];
    assert_eq!(pieces_in(&ends, 0, 10), 1);
    assert_eq!(pieces_in(&ends, 5, 25), 3);
    assert_eq!(pieces_in(&ends, 10, 20), 1);
    assert_eq!(pieces_in(&ends, 25, 40), 2, "the last extent and a hole past it");
    assert_eq!(pieces_in(&ends, 35, 40), 1);
    assert_eq!(pieces_in(&ends, 7, 7), 0);
    assert_eq!(pieces_in(&[], 0, 5), 1);
}

fn file(size: u64) -> FileData {
    FileData::new(7, 64, &Attr { size, version: 1, ..Default::default() }, Vec::new())
}

fn held(f: &FileData, s: u64) -> Option<(u64, Vec<u8>)> {
    match f.slots.get(&s) {
        Some(Slot::Buf { lo, bytes }) => Some((*lo, bytes.clone())),
        _ => None,
    }
}

#[test]
fn small_writes_are_buffered_without_io() {
    let mut f = file(0);
    assert!(f.write_buffered(0, b"hello"));
    assert!(f.write_buffered(5, b" world"), "contiguous: grows the held range");
    assert!(f.write_buffered(2, b"LL"), "inside: overwrites");
    assert_eq!(held(&f, 0), Some((0, b"heLLo world".to_vec())));
    assert_eq!(f.size, 11);
    assert!(f.is_dirty() && f.modified.is_some());
    // In a later slot, from its middle: a new held range.
    assert!(f.write_buffered(64 + 10, b"x"));
    assert_eq!(held(&f, 1), Some((10, b"x".to_vec())));
    assert_eq!(f.size, 75);
}

#[test]
fn writes_needing_io_are_left_to_write() {
    let mut f = file(0);
    assert!(f.write_buffered(10, b"abc"));
    let before = held(&f, 0);
    // A gap before or after the held range would be read from the
    // committed view; a write across slots, or one filling a slot (an
    // upload), is not done here either. None of them changes anything.
    assert!(!f.write_buffered(2, b"z"));
    assert!(!f.write_buffered(20, b"z"));
    assert!(!f.write_buffered(60, b"0123456789"));
    assert!(!f.write_buffered(64, &[1u8; 64]));
    assert!(!f.write_buffered(0, b""));
    assert_eq!((held(&f, 0), f.size), (before, 13));
    let mut g = file(0);
    assert!(g.write_buffered(0, &[1u8; 60]));
    assert!(!g.write_buffered(60, &[2u8; 4]), "would fill the slot");
    assert_eq!(held(&g, 0).map(|(_, b)| b.len()), Some(60));
}
