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

/// The file's settings as flags of `cmd`; `env_set` says whether an
/// environment variable is set (its flag then comes from there).
fn settings_as_flags(
    cmd: &clap::Command,
    path: &Path,
    text: &str,
    env_set: impl Fn(&std::ffi::OsStr) -> bool,
) -> Result<Vec<OsString>, String> {
    let table: toml::Table = text.parse().map_err(|e| format!("{}: {e}", path.display()))?;
    let mut flags = Vec::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()) && long != "config")
            .ok_or_else(|| format!("{}: unknown setting {key:?}", path.display()))?;
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
                    other => Err(format!("{}: {key}: unsupported list item {other}", path.display())),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            other => return Err(format!("{}: {key}: unsupported value {other}", path.display())),
        };
        if !takes_value {
            return Err(format!("{}: {key} is a switch: write {key} = true", path.display()));
        }
        flags.push(OsString::from(format!("--{long}={text}")));
    }
    Ok(flags)
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
}
