//! The console's pages, rendered on the server (no external assets: the
//! style and the one script are served by the master itself). Every piece
//! of text from the namespace or from a chunkserver is escaped.

use super::view::{Node, Overview};
use crate::fsm::model::{Inode, KIND_DIR, KIND_SYMLINK};
use std::fmt::Write;

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a path for a query string.
pub fn url_path(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Sizes as `ls -lh` prints them.
pub fn size(n: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64;
    let mut unit = "";
    for u in UNITS {
        v /= 1024.0;
        unit = u;
        if v < 1024.0 {
            break;
        }
    }
    if v < 10.0 {
        format!("{v:.1}{unit}")
    } else {
        format!("{v:.0}{unit}")
    }
}

fn page(title: &str, role: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} - Tessera</title><link rel=\"stylesheet\" href=\"/static/console.css\">\
         <link rel=\"icon\" href=\"data:,\"></head><body>\
         <header><b>Tessera</b> <a href=\"/\">Overview</a> <a href=\"/browse?path=/\">Namespace</a>\
         <span class=\"role\" id=\"role\">{r}</span></header><main>{body}</main>\
         <script src=\"/static/console.js\"></script></body></html>\n",
        t = esc(title),
        r = esc(role)
    )
}

fn bar(used: u64, capacity: u64) -> String {
    let pct = if capacity == 0 { 0.0 } else { (used as f64 / capacity as f64 * 100.0).min(100.0) };
    format!("<div class=\"bar\" title=\"{pct:.1}%\"><div style=\"width:{pct:.1}%\"></div></div>")
}

pub fn overview(o: &Overview) -> String {
    let mut b = String::new();
    let leader = if o.leader_id == o.node_id {
        "this master is the leader".to_string()
    } else if o.leader_id == 0 {
        "no leader known: the group is electing one or has no quorum".to_string()
    } else {
        format!(
            "this master is a {}; the leader is master {} at {} (its console has the repair figures)",
            esc(&o.role.to_lowercase()),
            o.leader_id,
            esc(&o.leader_addr)
        )
    };
    let _ = write!(
        b,
        "<h1>Cluster</h1><p id=\"leader\">Master {} ({}), term {}: {leader}.</p>\
         <p><span id=\"files\">{}</span> inodes, <span id=\"chunks\">{}</span> chunks.</p>",
        o.node_id,
        esc(&o.addr),
        o.term,
        o.files,
        o.chunks
    );
    b.push_str("<h2>Masters</h2><table id=\"masters\"><tr><th>id</th><th>address</th><th>role</th><th>voter</th><th>log index</th></tr>");
    for m in &o.masters {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td class=\"role-{}\">{}</td><td>{}</td><td>{}</td></tr>",
            m.id,
            esc(&m.addr),
            esc(&m.role.to_lowercase()),
            esc(&m.role),
            if m.voter { "yes" } else { "no" },
            m.matched.map_or("-".to_string(), |i| i.to_string())
        );
    }
    b.push_str("</table><h2>Chunkservers</h2><table id=\"chunkservers\"><tr><th>id</th><th>address</th><th>zone</th><th>state</th><th>used / capacity</th><th></th><th>chunks</th><th>ring share</th><th>last heartbeat</th></tr>");
    for s in &o.chunkservers {
        let state = if s.alive {
            s.state.clone()
        } else if s.state == "alive" {
            "dead".into()
        } else {
            s.state.clone()
        };
        let seen = if s.heartbeat_ms_ago == u64::MAX {
            "never".into()
        } else {
            format!("{:.1} s ago", s.heartbeat_ms_ago as f64 / 1000.0)
        };
        let _ = write!(
            b,
            "<tr data-id=\"{id}\"><td>{id}</td><td>{addr}</td><td>{zone}</td><td class=\"state state-{st}\">{st}</td>\
             <td>{used} / {cap}</td><td>{bar}</td><td>{chunks}</td><td>{share:.1}%</td><td>{seen}</td></tr>",
            id = esc(&s.id),
            addr = esc(&s.addr),
            zone = if s.zone.is_empty() { "-".to_string() } else { esc(&s.zone) },
            st = esc(&state),
            used = size(s.used),
            cap = size(s.capacity),
            bar = bar(s.used, s.capacity),
            chunks = s.chunks,
            share = s.ring_share * 100.0,
        );
    }
    b.push_str("</table><h2>Replication</h2>");
    match &o.repair {
        Some(r) => {
            let eta = r.eta_s.map_or("-".to_string(), |s| format!("{s:.0} s"));
            let _ = write!(
                b,
                "<table id=\"repair\"><tr><th>chunks</th><th>under-replicated</th><th>missing</th><th>below goal</th>\
                 <th>to copy</th><th>copies in flight</th><th>copy rate</th><th>ETA</th><th>copied so far</th><th>garbage</th><th>settled</th></tr>\
                 <tr><td id=\"r-chunks\">{}</td><td id=\"r-under\">{}</td><td id=\"r-missing\">{}</td><td>{}</td>\
                 <td id=\"r-bytes\">{}</td><td>{}</td><td>{}/s</td><td id=\"r-eta\">{eta}</td><td>{}</td><td>{}</td><td id=\"r-settled\">{}</td></tr></table>",
                r.chunks,
                r.under_replicated,
                r.missing,
                r.below_goal,
                size(r.bytes_to_copy),
                r.copies_in_flight,
                size(r.copy_rate_bps as u64),
                size(r.copied_bytes_total),
                r.garbage_pending,
                if r.settled { "yes" } else { "no" }
            );
        }
        None => b.push_str("<p>Repair runs on the leader: see its console.</p>"),
    }
    b.push_str(
        "<h2>Last minutes</h2><div class=\"charts\">\
         <figure><canvas id=\"c-changes\" width=\"420\" height=\"140\"></canvas><figcaption>requests/s to this master, namespace changes/s</figcaption></figure>\
         <figure><canvas id=\"c-stored\" width=\"420\" height=\"140\"></canvas><figcaption>stored MB/s</figcaption></figure>\
         <figure><canvas id=\"c-repair\" width=\"420\" height=\"140\"></canvas><figcaption>repair MB/s, under-replicated chunks</figcaption></figure>\
         </div><p class=\"note\" id=\"updated\">Updated every 2 s.</p>",
    );
    page("Overview", &o.role, &b)
}

fn mode_string(i: &Inode) -> String {
    let kind = match i.kind {
        KIND_DIR => 'd',
        KIND_SYMLINK => 'l',
        _ => '-',
    };
    let mut s = String::from(kind);
    for shift in [6, 3, 0] {
        let bits = (i.mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

pub fn browse(path: &str, role: &str, node: Result<Node, String>) -> String {
    let mut b = String::new();
    let _ = write!(b, "<h1 id=\"path\">{}</h1>", esc(path));
    let parent = path.trim_end_matches('/').rsplit_once('/').map(|(p, _)| if p.is_empty() { "/" } else { p });
    if let Some(p) = parent.filter(|_| path != "/") {
        let _ = write!(b, "<p><a href=\"/browse?path={}\">..</a></p>", url_path(p));
    }
    match node {
        Err(e) => {
            let _ = write!(b, "<p class=\"error\">{}</p>", esc(&e));
        }
        Ok(Node::Dir { entries, more, .. }) => {
            b.push_str(
                "<table id=\"entries\"><tr><th>mode</th><th>uid</th><th>gid</th><th>size</th><th>name</th></tr>",
            );
            for e in &entries {
                let _ = write!(
                    b,
                    "<tr><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td><td><a href=\"/browse?path={}\">{}</a></td></tr>",
                    mode_string(&e.inode),
                    e.inode.uid,
                    e.inode.gid,
                    size(e.inode.size),
                    url_path(&join(path, &e.name)),
                    esc(&e.name)
                );
            }
            b.push_str("</table>");
            if more {
                let _ =
                    write!(b, "<p class=\"note\">Only the first {} entries are shown.</p>", super::view::LIST_LIMIT);
            }
        }
        Ok(Node::File { inode, chunks }) => {
            let _ = write!(
                b,
                "<p>File, inode {}, {} ({} bytes), mode {}, version {}.</p>\
                 <table id=\"file-chunks\"><tr><th>offset</th><th>length</th><th>chunk</th><th>copies</th><th>held by</th></tr>",
                inode.ino,
                size(inode.size),
                inode.size,
                mode_string(&inode),
                inode.version
            );
            for c in &chunks {
                let _ = write!(
                    b,
                    "<tr><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"copies-{}\">{}</td><td>{}</td></tr>",
                    c.offset,
                    c.len,
                    esc(&c.id),
                    c.holders.len().min(3),
                    c.holders.len(),
                    esc(&c.holders.join(", "))
                );
            }
            b.push_str("</table>");
        }
        Ok(Node::Other { inode }) => {
            let _ = write!(b, "<p>{} inode {}.</p>", mode_string(&inode), inode.ino);
        }
    }
    page(path, role, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_paths_encoded() {
        assert_eq!(esc("<a href='x'>&\"</a>"), "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;");
        assert_eq!(url_path("/a b/&c?d"), "/a%20b/%26c%3Fd");
        assert_eq!((size(512), size(1536), size(10 << 30)), ("512B".into(), "1.5K".into(), "10G".into()));
        assert_eq!(join("/", "x"), "/x");
        assert_eq!(join("/d", "x"), "/d/x");
    }
}
