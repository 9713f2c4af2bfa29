//! Remote path parsing. Tessera paths are absolute, `/`-separated; each
//! component is a non-empty name of at most NAME_MAX bytes without NUL, and
//! `.`/`..` are refused rather than interpreted (a remote path is a name, not
//! a walk).

use crate::error::{ClientError, Result};
use tessera_proto::NAME_MAX;

pub const PATH_MAX: usize = 4096;

pub fn validate_name(path: &str, name: &str) -> Result<()> {
    let bad = |why: &str| Err(ClientError::InvalidPath { path: path.to_string(), why: why.to_string() });
    if name.is_empty() {
        return bad("empty name");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' components are not allowed");
    }
    if name.contains('\0') {
        return bad("name contains NUL");
    }
    if name.contains('/') {
        return bad("name contains '/'");
    }
    if name.len() > NAME_MAX {
        return bad(&format!("name of {} bytes is too long (max {NAME_MAX})", name.len()));
    }
    Ok(())
}

/// Splits an absolute path into validated components (empty for `/`).
pub fn components(path: &str) -> Result<Vec<String>> {
    if !path.starts_with('/') {
        return Err(ClientError::InvalidPath {
            path: path.into(),
            why: "remote paths are absolute (start with /)".into(),
        });
    }
    if path.len() > PATH_MAX {
        return Err(ClientError::InvalidPath { path: path.into(), why: format!("path is too long (max {PATH_MAX})") });
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
