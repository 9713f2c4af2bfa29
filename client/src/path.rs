//! Remote path parsing. Tessera paths are absolute, `/`-separated; each
//! component is a non-empty name of at most NAME_MAX bytes without NUL, and
//! `.`/`..` are refused rather than interpreted (a remote path is a name, not
//! a walk).

use crate::error::{ClientError, Result};
use tessera_proto::NAME_MAX;

pub const PATH_MAX: usize = 4096;

pub fn validate_name(path: &str, name: &str) -> Result<()> {
    name_problem(name.as_bytes()).map_or(Ok(()), |(why, errno)| Err(ClientError::invalid_path(path, &why, errno)))
}

/// `validate_name` for a name that need not be UTF-8 (a mount's).
pub fn validate_name_bytes(name: &[u8]) -> Result<()> {
    name_problem(name)
        .map_or(Ok(()), |(why, errno)| Err(ClientError::invalid_path(&String::from_utf8_lossy(name), &why, errno)))
}

/// What is wrong with a name, and the errno it earns.
fn name_problem(name: &[u8]) -> Option<(String, i32)> {
    let bad = |why: &str| Some((why.to_string(), libc::EINVAL));
    if name.is_empty() {
        return bad("empty name");
    }
    if name == b"." || name == b".." {
        return bad("'.' and '..' components are not allowed");
    }
    if name.contains(&0) {
        return bad("name contains NUL");
    }
    if name.contains(&b'/') {
        return bad("name contains '/'");
    }
    if name.len() > NAME_MAX {
        return Some((format!("name of {} bytes is too long (max {NAME_MAX})", name.len()), libc::ENAMETOOLONG));
    }
    None
}

/// Splits an absolute path into validated components (empty for `/`).
pub fn components(path: &str) -> Result<Vec<String>> {
    if !path.starts_with('/') {
        return Err(ClientError::invalid_path(path, "remote paths are absolute (start with /)", libc::EINVAL));
    }
    if path.len() > PATH_MAX {
        let why = format!("path is too long (max {PATH_MAX})");
        return Err(ClientError::invalid_path(path, &why, libc::ENAMETOOLONG));
    }
    let mut out = Vec::new();
    for c in path.split('/').filter(|c| !c.is_empty()) {
        validate_name(path, c)?;
        out.push(c.to_string());
    }
    Ok(out)
}

/// Joins a remote directory and a relative name.
pub fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(components("/").unwrap(), Vec::<String>::new());
        assert_eq!(components("/a//b/").unwrap(), vec!["a", "b"]);
        assert!(components("a/b").is_err());
        assert!(components("/a/../b").is_err());
        assert!(components("/a/./b").is_err());
        assert!(components(&format!("/{}", "x".repeat(300))).unwrap_err().errno() == libc::ENAMETOOLONG);
        assert!(components("/a\0b").is_err());
        assert!(components(&format!("/{}", "x".repeat(255))).is_ok());
    }

    /// Fuzzing: any string a user types is parsed or refused with EINVAL or
    /// ENAMETOOLONG, never a panic; what parses is made of valid names only,
    /// and joining them back parses to the same components (so `resolve`
    /// and `resolve_parent` see one path whatever its slashes).
    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn cases() -> u32 {
            std::env::var("TESSERA_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3_000)
        }

        fn path() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<String>(),
                prop::collection::vec(prop::sample::select(vec!["/", "//", "a", ".", "..", "\0", "é", "\u{0}"]), 0..12)
                    .prop_map(|p| p.concat()),
                (1usize..300, 0usize..20).prop_map(|(n, k)| format!(
                    "{}{}",
                    "/x".repeat(k),
                    "/".to_string() + &"n".repeat(n)
                )),
                (4000usize..4200).prop_map(|n| format!("/{}", "a/".repeat(n / 2))),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

            #[test]
            fn any_path_parses_to_valid_names_or_a_clean_refusal(p in path()) {
                match components(&p) {
                    Ok(cs) => {
                        for c in &cs {
                            prop_assert!(name_problem(c.as_bytes()).is_none(), "{:?} from {:?}", c, p);
                        }
                        let again = format!("/{}", cs.join("/"));
                        prop_assert_eq!(components(&again).unwrap(), cs);
                    }
                    Err(e) => prop_assert!(
                        e.errno() == libc::EINVAL || e.errno() == libc::ENAMETOOLONG,
                        "{:?}: errno {}", p, e.errno()
                    ),
                }
            }
        }
    }
}
