//! What a client certificate lets its holder say about who is asking: the
//! uid, gid and groups a request carries are the caller's word, so each
//! certificate says how far that word is trusted (NFS's root_squash and
//! all_squash, CephFS's uid caps). The map travels inside the certificate
//! (a SAN URI, `urn:tessera:uid-map:...`), so the masters need no table of
//! clients and a stolen key cannot widen its own map.

/// The uid and gid a squashed caller acts as (`nobody`/`nogroup`).
pub const NOBODY: u32 = 65_534;

const URI_PREFIX: &str = "urn:tessera:uid-map:";

/// How the masters read the credentials a certificate's holder sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UidMap {
    /// Any uid, gid and groups (a mount's host certificate, an operator):
    /// the holder checks its own users, as a kernel does.
    #[default]
    Trusted,
    /// As `Trusted`, except uid 0 acts as `nobody` and gid 0 as `nogroup`.
    SquashRoot,
    /// Every request acts as this uid and gid, with no other groups.
    Fixed { uid: u32, gid: u32 },
    /// Uids and gids in `lo..=hi` are believed; any other acts as
    /// `nobody` (uid) or `nogroup` (gid), and other groups are dropped.
    Range { lo: u32, hi: u32 },
}

/// A caller's credentials as sent: uid, gid, supplementary groups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl UidMap {
    /// What `c` acts as under this map.
    pub fn apply(self, c: Creds) -> Creds {
        match self {
            UidMap::Trusted => c,
            UidMap::SquashRoot => {
                let squash = |id: u32| if id == 0 { NOBODY } else { id };
                Creds {
                    uid: squash(c.uid),
                    gid: squash(c.gid),
                    groups: c.groups.into_iter().filter(|&g| g != 0).collect(),
                }
            }
            UidMap::Fixed { uid, gid } => Creds { uid, gid, groups: Vec::new() },
            UidMap::Range { lo, hi } => {
                let inside = |id: u32| (lo..=hi).contains(&id);
                Creds {
                    uid: if inside(c.uid) { c.uid } else { NOBODY },
                    gid: if inside(c.gid) { c.gid } else { NOBODY },
                    groups: c.groups.into_iter().filter(|&g| inside(g)).collect(),
                }
            }
        }
    }

    /// The SAN URI that carries this map (None for `Trusted`, which is
    /// what a certificate without one means).
    pub fn to_uri(self) -> Option<String> {
        let spec = match self {
            UidMap::Trusted => return None,
            UidMap::SquashRoot => "squash-root".to_string(),
            UidMap::Fixed { uid, gid } => format!("fixed:{uid}:{gid}"),
            UidMap::Range { lo, hi } => format!("range:{lo}-{hi}"),
        };
        Some(format!("{URI_PREFIX}{spec}"))
    }

    /// The map a SAN URI names; None for a URI that is not a uid map, an
    /// error for one that is but cannot be read (the certificate is then
    /// refused rather than trusted).
    pub fn from_uri(uri: &str) -> Option<Result<UidMap, String>> {
        let spec = uri.strip_prefix(URI_PREFIX)?;
        Some(UidMap::parse(spec).ok_or_else(|| format!("unreadable uid map {uri:?}")))
    }

    /// `squash-root`, `fixed:UID:GID` or `range:LO-HI`.
    pub fn parse(spec: &str) -> Option<UidMap> {
        if spec == "squash-root" {
            return Some(UidMap::SquashRoot);
        }
        if let Some(rest) = spec.strip_prefix("fixed:") {
            let (uid, gid) = rest.split_once(':')?;
            return Some(UidMap::Fixed { uid: uid.parse().ok()?, gid: gid.parse().ok()? });
        }
        let (lo, hi) = spec.strip_prefix("range:")?.split_once('-')?;
        let (lo, hi) = (lo.parse().ok()?, hi.parse().ok()?);
        (lo <= hi).then_some(UidMap::Range { lo, hi })
    }
}

impl std::fmt::Display for UidMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UidMap::Trusted => f.write_str("trusted"),
            UidMap::SquashRoot => f.write_str("squash-root"),
            UidMap::Fixed { uid, gid } => write!(f, "fixed uid {uid} gid {gid}"),
            UidMap::Range { lo, hi } => write!(f, "uids {lo}-{hi}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(uid: u32, gid: u32, groups: &[u32]) -> Creds {
        Creds { uid, gid, groups: groups.to_vec() }
    }

    #[test]
    fn each_map_reads_credentials_as_documented() {
        assert_eq!(UidMap::Trusted.apply(c(0, 0, &[0, 5])), c(0, 0, &[0, 5]));
        assert_eq!(UidMap::SquashRoot.apply(c(0, 0, &[0, 5])), c(NOBODY, NOBODY, &[5]));
        assert_eq!(UidMap::SquashRoot.apply(c(1000, 100, &[])), c(1000, 100, &[]));
        assert_eq!(UidMap::Fixed { uid: 7, gid: 8 }.apply(c(0, 0, &[0])), c(7, 8, &[]));
        let r = UidMap::Range { lo: 1000, hi: 1999 };
        assert_eq!(r.apply(c(1500, 1500, &[0, 1001, 3000])), c(1500, 1500, &[1001]));
        assert_eq!(r.apply(c(0, 0, &[])), c(NOBODY, NOBODY, &[]));
    }

    #[test]
    fn a_map_survives_its_uri() {
        for m in [UidMap::SquashRoot, UidMap::Fixed { uid: 1, gid: 2 }, UidMap::Range { lo: 10, hi: 20 }] {
            assert_eq!(UidMap::from_uri(&m.to_uri().unwrap()), Some(Ok(m)));
        }
        assert_eq!(UidMap::Trusted.to_uri(), None);
        assert_eq!(UidMap::from_uri("https://example"), None);
        assert!(matches!(UidMap::from_uri("urn:tessera:uid-map:range:9-1"), Some(Err(_))));
        assert!(matches!(UidMap::from_uri("urn:tessera:uid-map:fixed:x:1"), Some(Err(_))));
    }
}
