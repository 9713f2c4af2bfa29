//! Names are bytes, not text: names that are not valid UTF-8 are created,
//! listed, stat'ed, renamed and deleted through the mount and through the
//! client library, and each side sees what the other did.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use tessera_tests::Cluster;

/// Invalid UTF-8: a lone continuation byte, an overlong form, a bare 0xff.
const NAMES: [&[u8]; 3] = [b"caf\xe9", b"\xc0\xafslash-lookalike", b"\xff\xfe-bom"];

fn listing(d: &std::path::Path) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> =
        std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().as_bytes().to_vec()).collect();
    v.sort();
    v
}

#[test]
fn names_that_are_not_utf8_work_through_the_mount_and_the_library() {
    let c = Cluster::start(1, 3);
    let m = c.mount(&[]);
    let root = m.path().join("bytes");
    std::fs::create_dir(&root).unwrap();
    // Through the mount: create, stat, list, rename, a directory too.
    for (i, n) in NAMES.iter().enumerate() {
        let p = root.join(OsStr::from_bytes(n));
        std::fs::write(&p, vec![i as u8; 1000 + i]).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 1000 + i as u64);
    }
    let dir = root.join(OsStr::from_bytes(b"dir-\x80"));
    std::fs::create_dir(&dir).unwrap();
    let mut want: Vec<Vec<u8>> = NAMES.iter().map(|n| n.to_vec()).collect();
    want.push(b"dir-\x80".to_vec());
    want.sort();
    assert_eq!(listing(&root), want);
    let renamed = root.join(OsStr::from_bytes(b"renamed-\xfa"));
    std::fs::rename(root.join(OsStr::from_bytes(NAMES[0])), &renamed).unwrap();
    assert_eq!(std::fs::read(&renamed).unwrap(), vec![0u8; 1000]);

    // Through the library, which sees the mount's names byte for byte.
    let fs = c.client();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let top = fs.resolve("/bytes").await.unwrap();
        let mut names: Vec<Vec<u8>> =
            fs.readdir(top.ino, false).await.unwrap().into_iter().map(|e| e.name.to_vec()).collect();
        names.sort();
        let mut expect = vec![b"renamed-\xfa".to_vec(), NAMES[1].to_vec(), NAMES[2].to_vec(), b"dir-\x80".to_vec()];
        expect.sort();
        assert_eq!(names, expect);
        let a = fs.lookup(top.ino, NAMES[1]).await.unwrap();
        assert_eq!(a.size, 1001);
        // Library changes: a directory, a rename, a symlink, a link, removals.
        let made = fs.mkdir_at(top.ino, b"lib-\xee", 0o755).await.unwrap();
        fs.rename_at(top.ino, NAMES[1], made.attr.ino, b"moved-\xc3").await.unwrap();
        fs.symlink_at(top.ino, b"link-\xa0", b"target-\xa1").await.unwrap();
        fs.link(a.ino, top.ino, b"hard-\xb0").await.unwrap();
        fs.unlink(top.ino, NAMES[2]).await.unwrap();
        let inner = fs.lookup(top.ino, b"dir-\x80").await.unwrap();
        assert!(fs.lookup(inner.ino, b"none-\x81").await.unwrap_err().is_not_found());
        fs.rmdir(top.ino, b"dir-\x80").await.unwrap();
        let linked = fs.lookup(top.ino, b"hard-\xb0").await.unwrap();
        assert_eq!((linked.ino, linked.nlink), (a.ino, 2));
        assert_eq!(
            fs.readlink(fs.lookup(top.ino, b"link-\xa0").await.unwrap().ino).await.unwrap(),
            &b"target-\xa1"[..]
        );
    });

    // The mount sees the library's changes (its leases were revoked).
    let mut want: Vec<Vec<u8>> =
        vec![b"renamed-\xfa".to_vec(), b"lib-\xee".to_vec(), b"link-\xa0".to_vec(), b"hard-\xb0".to_vec()];
    want.sort();
    assert_eq!(listing(&root), want);
    let moved = root.join(OsStr::from_bytes(b"lib-\xee")).join(OsStr::from_bytes(b"moved-\xc3"));
    assert_eq!(std::fs::read(&moved).unwrap(), vec![1u8; 1001]);
    let target = std::fs::read_link(root.join(OsStr::from_bytes(b"link-\xa0"))).unwrap();
    assert_eq!(target.as_os_str().as_bytes(), b"target-\xa1");
    // And deletes through the mount.
    std::fs::remove_file(&moved).unwrap();
    std::fs::remove_file(root.join(OsStr::from_bytes(b"hard-\xb0"))).unwrap();
    std::fs::remove_dir(root.join(OsStr::from_bytes(b"lib-\xee"))).unwrap();
    assert_eq!(listing(&root), vec![b"link-\xa0".to_vec(), b"renamed-\xfa".to_vec()]);
}
