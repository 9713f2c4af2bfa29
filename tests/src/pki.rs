//! The test process's PKI: one cluster CA per test binary (every cluster a
//! test starts trusts it), and a certificate per process name and role,
//! made on first use. The test process itself, and every CLI and library
//! client it starts, acts as an admin (`TESSERA_TLS_DIR` points at the
//! admin identity); servers and mounts get their own by `--tls-dir`.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use tessera_rpc::certs::{Ca, Role};
use tessera_rpc::uid_map::UidMap;

pub struct Pki {
    dir: PathBuf,
    ca: Ca,
    made: Mutex<()>,
}

/// This test binary's PKI (made, and the admin identity exported, on first
/// call: call it before any thread that reads the environment starts).
pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let root = crate::bin_dir().join("test-pki");
        let _ = std::fs::create_dir_all(&root);
        remove_stale(&root);
        let dir = root.join(format!("pki-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ca = Ca::generate("test").expect("test CA");
        ca.save(&dir.join("ca")).expect("saving the test CA");
        let pki = Pki { dir, ca, made: Mutex::new(()) };
        let admin = pki.identity(Role::Admin, "test-admin");
        // SAFETY (of the environment): set once, while the test's own
        // thread is the only one that reads it; children inherit it.
        std::env::set_var("TESSERA_TLS_DIR", &admin);
        pki
    })
}

/// PKI directories of test binaries that are no longer running.
fn remove_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = name.strip_prefix("pki-").and_then(|p| p.parse::<u32>().ok()) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl Pki {
    /// The directory of `name`'s identity in `role` (for `--tls-dir`).
    pub fn identity(&self, role: Role, name: &str) -> PathBuf {
        let _one_at_a_time = self.made.lock().unwrap_or_else(|p| p.into_inner());
        let dir = self.dir.join(format!("{role}-{name}"));
        if !dir.join("key.pem").exists() {
            self.ca.issue_into(role, name, 30, &dir).expect("issuing a test certificate");
        }
        dir
    }

    /// `identity`, for a certificate carrying the uid map `map` (named
    /// apart from an unmapped one of the same name).
    pub fn mapped_identity(&self, role: Role, name: &str, map: UidMap) -> PathBuf {
        let _one_at_a_time = self.made.lock().unwrap_or_else(|p| p.into_inner());
        let tag: String = map.to_string().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        let dir = self.dir.join(format!("{role}-{name}-{tag}"));
        if !dir.join("key.pem").exists() {
            self.ca.issue_mapped_into(role, name, 30, map, &dir).expect("issuing a test certificate");
        }
        dir
    }

    /// The CA's directory (ca.pem, ca.key).
    pub fn ca_dir(&self) -> PathBuf {
        self.dir.join("ca")
    }

    /// `--tls-dir DIR` for `name` in `role`.
    pub fn args(&self, role: Role, name: &str) -> [String; 2] {
        ["--tls-dir".to_string(), self.identity(role, name).display().to_string()]
    }
}
