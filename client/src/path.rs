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
}
