//! `--config FILE`: a TOML file of settings for a server, one key per
//! command-line flag (`election-timeout-ms = 300`, or with underscores).
//! Precedence, lowest first: built-in default, the file, the environment
//! (the flag's `env` variable), the command line. The file's settings are
//! turned into flags placed before the real ones; the binaries let a later
//! flag override an earlier one (`args_override_self`), and a setting
//! whose environment variable is set is left out.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The process's arguments with the settings of its `--config` file (if
/// any) put in front; an error names the file and the bad setting.
pub fn argv_with_config(cmd: &clap::Command) -> Result<Vec<OsString>, String> {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let Some(path) = config_path(&argv) else { return Ok(argv) };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = vec![argv[0].clone()];
    out.extend(settings_as_flags(cmd, &path, &text, |v| std::env::var_os(v).is_some())?);
    out.extend(argv.into_iter().skip(1));
    Ok(out)
}

/// Parses `T` from the arguments and its config file; exits with a
/// one-line error (status 2, as clap does) when the file is unusable.
pub fn parse<T: clap::Parser>() -> T {
    let cmd = T::command();
    match argv_with_config(&cmd) {
        Ok(argv) => T::parse_from(argv),
        Err(e) => {
            eprintln!("{}: {e}", cmd.get_name());
            std::process::exit(2);
        }
    }
}

fn config_path(argv: &[OsString]) -> Option<PathBuf> {
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        if s == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(p) = s.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
    }
    None
}

/// The line (1-based) of `text` that sets `key` (the first one starting
/// with it, bare or quoted), for error messages.
fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            let rest = l.strip_prefix(key).or_else(|| l.strip_prefix(&format!("\"{key}\"")));
            rest.is_some_and(|r| r.trim_start().starts_with('='))
        })
        .map_or(0, |i| i + 1)
}

/// One line out of a clap error (its first, without the "error: ").
fn one_line(e: &clap::Error) -> String {
    let s = e.to_string();
    let first = s.lines().next().unwrap_or("invalid value").trim();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

/// The file's settings as flags of `cmd`; `env_set` says whether an
/// environment variable is set (its flag then comes from there). Every
/// error is one line naming the file, the line and the key.
fn settings_as_flags(
    cmd: &clap::Command,
    path: &Path,
    text: &str,
    env_set: impl Fn(&std::ffi::OsStr) -> bool,
) -> Result<Vec<OsString>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e.span().map_or(0, |s| text[..s.start.min(text.len())].lines().count().max(1));
        format!("{}:{line}: {}", path.display(), e.message().trim().replace('\n', "; "))
    })?;
    let mut flags = Vec::new();
    for (key, value) in table {
        let at = format!("{}:{}", path.display(), line_of(text, &key));
        let long = key.replace('_', "-");
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()) && long != "config")
            .ok_or_else(|| format!("{at}: unknown setting {key:?}"))?;
        if arg.get_env().is_some_and(&env_set) {
            continue;
        }
        let takes_value = arg.get_action().takes_values();
        let text = match &value {
            toml::Value::Boolean(b) if !takes_value => {
                if *b {
                    flags.push(OsString::from(format!("--{long}")));
                }
                continue;
            }
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s.clone()),
                    toml::Value::Integer(i) => Ok(i.to_string()),
                    other => Err(format!("{at}: {key}: unsupported list item {other}")),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            other => return Err(format!("{at}: {key}: unsupported value {other}")),
        };
        if !takes_value {
            return Err(format!("{at}: {key} is a switch: write {key} = true"));
        }
        // Checked here, with the flag alone, so that a bad value is blamed
        // on its line (clap would report it later, without the file).
        let alone = clap::Command::new("config").arg(arg.clone().required(false));
        if let Err(e) = alone.try_get_matches_from(["config".to_string(), format!("--{long}={text}")]) {
            return Err(format!("{at}: {key}: {}", one_line(&e)));
        }
        flags.push(OsString::from(format!("--{long}={text}")));
    }
    Ok(flags)
}

/// Values for the flags of Tessera's servers that have no default, for
/// `assert_every_flag_settable`.
pub const SAMPLE_VALUES: &[(&str, &str)] = &[
    ("id", "1"),
    ("advertise", "10.0.0.1:7400"),
    ("data-dir", "/var/lib/tessera"),
    ("peers", "1=10.0.0.1:7400"),
    ("masters", "10.0.0.1:7400"),
    ("metrics-listen", "127.0.0.1:9100"),
    ("console-listen", "127.0.0.1:9140"),
    ("raft-listen", "10.0.0.1:7560"),
    ("raft-advertise", "10.0.0.1:7560"),
    ("zone", "zone-a"),
    ("tls-dir", "/etc/tessera/tls"),
];

/// For the binaries' tests: every flag of `T` (but help, version and
/// config) set through a config file reaches its argument. Values are the
/// flags' defaults, `true` for switches, else `samples` (by long name);
/// `required` are the command-line arguments `T` cannot do without.
pub fn assert_every_flag_settable<T: clap::Parser>(required: &[&str], samples: &[(&str, &str)]) {
    let cmd = T::command();
    let mut toml_text = String::new();
    let mut ids = Vec::new();
    for a in cmd.get_arguments() {
        let Some(long) = a.get_long() else { continue };
        if matches!(long, "help" | "version" | "config") {
            continue;
        }
        let value = if !a.get_action().takes_values() {
            "true".to_string()
        } else if let Some((_, v)) = samples.iter().find(|(n, _)| *n == long) {
            format!("{v:?}")
        } else if let Some(d) = a.get_default_values().first() {
            format!("{:?}", d.to_string_lossy())
        } else {
            panic!("--{long} has no default: give a sample value");
        };
        toml_text.push_str(&format!("{} = {value}\n", long.replace('-', "_")));
        ids.push((long.to_string(), a.get_id().clone()));
    }
    let flags = settings_as_flags(&cmd, Path::new("all.toml"), &toml_text, |_| false)
        .unwrap_or_else(|e| panic!("{e}\n{toml_text}"));
    let mut argv = vec![OsString::from(cmd.get_name().to_string())];
    argv.extend(flags);
    argv.extend(required.iter().map(OsString::from));
    let m = cmd.clone().try_get_matches_from(&argv).unwrap_or_else(|e| panic!("{e}\n{toml_text}"));
    for (long, id) in ids {
        assert!(
            m.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine),
            "--{long} did not come from the file:\n{toml_text}"
        );
    }
    T::try_parse_from(&argv).unwrap_or_else(|e| panic!("{e}\n{toml_text}"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction, Command};

    fn cmd() -> Command {
        Command::new("t")
            .args_override_self(true)
            .arg(Arg::new("masters").long("masters").env("T_MASTERS").value_delimiter(','))
            .arg(Arg::new("election-timeout-ms").long("election-timeout-ms"))
            .arg(Arg::new("stale").long("stale").action(ArgAction::SetTrue))
            .arg(Arg::new("config").long("config"))
    }

    fn flags(text: &str, env: bool) -> Result<Vec<String>, String> {
        let f = settings_as_flags(&cmd(), Path::new("f.toml"), text, |_| env)?;
        Ok(f.into_iter().map(|s| s.to_string_lossy().into_owned()).collect())
    }

    #[test]
    fn settings_become_flags_and_the_command_line_wins() {
        let f = flags("election_timeout_ms = 300\nstale = true\nmasters = [\"a:1\", \"b:2\"]", false).unwrap();
        assert!(f.contains(&"--election-timeout-ms=300".to_string()), "{f:?}");
        assert!(f.contains(&"--stale".to_string()) && f.contains(&"--masters=a:1,b:2".to_string()), "{f:?}");
        let mut argv = vec!["t".to_string()];
        argv.extend(f);
        argv.push("--election-timeout-ms=500".into());
        let m = cmd().try_get_matches_from(argv).unwrap();
        assert_eq!(m.get_one::<String>("election-timeout-ms").map(String::as_str), Some("500"));
        assert!(m.get_flag("stale"));
        let masters: Vec<&String> = m.get_many::<String>("masters").unwrap().collect();
        assert_eq!(masters, ["a:1", "b:2"]);
    }

    #[test]
    fn the_environment_beats_the_file_and_bad_settings_are_named() {
        assert_eq!(flags("masters = \"a:1\"", true).unwrap(), Vec::<String>::new());
        assert!(flags("no_such = 1", false).unwrap_err().contains("unknown setting \"no_such\""));
        assert!(flags("stale = 3", false).unwrap_err().contains("switch"));
        assert!(flags("config = \"x\"", false).unwrap_err().contains("unknown setting"));
        assert!(flags("masters = [", false).is_err());
    }

    #[test]
    fn a_bad_file_is_one_line_naming_the_line_and_the_key() {
        let typed = || {
            Command::new("t")
                .arg(Arg::new("n").long("n").value_parser(clap::value_parser!(u32)))
                .arg(Arg::new("stale").long("stale").action(ArgAction::SetTrue))
        };
        let err = |text: &str| settings_as_flags(&typed(), Path::new("f.toml"), text, |_| false).unwrap_err();
        let e = err("stale = true\n\nn = \"many\"\n");
        assert!(e.starts_with("f.toml:3: n: ") && e.contains("many") && !e.contains('\n'), "{e}");
        let e = err("stale = true\nwhat = 1\n");
        assert_eq!(e, "f.toml:2: unknown setting \"what\"");
        let e = err("stale = true\nn = \n");
        assert!(e.starts_with("f.toml:2: ") && !e.contains('\n'), "{e}");
        let e = err("stale = 4\n");
        assert!(e.starts_with("f.toml:1: stale is a switch"), "{e}");
    }
}
