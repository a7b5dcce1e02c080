//! Where things are on disk (spec config-cli-stores §1.1, §1.4, §2.6): the environment the
//! config depends on, which config file is read, local-path expansion (`~`, `~user`,
//! relative to the config file's folder) and the default global SyncState directory.

use std::ffi::{CStr, CString};
use std::path::Path;

/// The environment variables the configuration depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Environment {
    pub home: String,
    pub xdg_config_home: Option<String>,
    pub xdg_state_home: Option<String>,
}

/// `HOME` is not set.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Fatal: $HOME not set")]
pub struct HomeNotSet;

impl Environment {
    /// Reads `HOME`, `XDG_CONFIG_HOME` and `XDG_STATE_HOME` (empty values count as unset
    /// for the XDG variables).
    pub fn from_process() -> Result<Environment, HomeNotSet> {
        let home = std::env::var("HOME").map_err(|_| HomeNotSet)?;
        let non_empty = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Ok(Environment {
            home,
            xdg_config_home: non_empty("XDG_CONFIG_HOME"),
            xdg_state_home: non_empty("XDG_STATE_HOME"),
        })
    }
}

/// The config file to read, and a warning to print first (if any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigLocation {
    /// The name as opened and shown in messages (`./rc` for a bare `rc`).
    pub path: String,
    /// `Both <path1> and <path2> exist; using the former.`
    pub warning: Option<String>,
}

fn exists_no_follow(path: &str) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Chooses the config file (§1.1): `explicit` (from `-c`), else `$XDG_CONFIG_HOME/isyncrc`
/// unless only `~/.mbsyncrc` exists.
pub fn locate_config(explicit: Option<&str>, env: &Environment) -> ConfigLocation {
    if let Some(file) = explicit {
        let path = if file.contains('/') {
            file.to_string()
        } else {
            format!("./{file}")
        };
        return ConfigLocation {
            path,
            warning: None,
        };
    }
    let xdg_dir = env
        .xdg_config_home
        .clone()
        .unwrap_or_else(|| format!("{}/.config", env.home));
    let xdg = format!("{xdg_dir}/isyncrc");
    let legacy = format!("{}/.mbsyncrc", env.home);
    let (xdg_exists, legacy_exists) = (exists_no_follow(&xdg), exists_no_follow(&legacy));
    if legacy_exists && !xdg_exists {
        return ConfigLocation {
            path: legacy,
            warning: None,
        };
    }
    let warning = (xdg_exists && legacy_exists)
        .then(|| format!("Both {xdg} and {legacy} exist; using the former."));
    ConfigLocation { path: xdg, warning }
}

/// The directory part of a config file name including the trailing `/` (`./` if none).
pub fn base_dir_of(file: &str) -> String {
    match file.rfind('/') {
        Some(index) => file[..=index].to_string(),
        None => "./".to_string(),
    }
}

/// The home directory of a user from the password database.
pub fn home_of_user(user: &str) -> Option<String> {
    let name = CString::new(user).ok()?;
    let mut buffer = vec![0 as libc::c_char; 16384];
    // SAFETY: `passwd` is plain old data that getpwnam_r fills in; `buffer` outlives every
    // use of the pointers getpwnam_r stores into `passwd`, and its length is passed along.
    unsafe {
        let mut passwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let status = libc::getpwnam_r(
            name.as_ptr(),
            &mut passwd,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut result,
        );
        if status != 0 || result.is_null() || passwd.pw_dir.is_null() {
            return None;
        }
        Some(CStr::from_ptr(passwd.pw_dir).to_string_lossy().into_owned())
    }
}

/// Expands a local path (§1.4). `None` when `~user` names an unknown user.
pub fn expand_local_path(value: &str, base_dir: &str, home: &str) -> Option<String> {
    if let Some(rest) = value.strip_prefix('~') {
        let (user, tail) = match rest.find('/') {
            Some(index) => (&rest[..index], &rest[index..]),
            None => (rest, ""),
        };
        let dir = if user.is_empty() {
            home.to_string()
        } else {
            home_of_user(user)?
        };
        return Some(format!("{dir}{tail}"));
    }
    if value.starts_with('/') {
        return Some(value.to_string());
    }
    Some(format!("{base_dir}{value}"))
}

/// The default global SyncState directory (§2.6), with trailing `/`.
pub fn default_sync_state(env: &Environment) -> Result<String, String> {
    let xdg = match &env.xdg_state_home {
        Some(dir) => format!("{dir}/isync/"),
        None => format!("{}/.local/state/isync/", env.home),
    };
    let legacy = format!("{}/.mbsync/", env.home);
    let (xdg_exists, legacy_exists) = (Path::new(&xdg).exists(), Path::new(&legacy).exists());
    match (xdg_exists, legacy_exists) {
        (true, true) => Err(format!(
            "Error: both {xdg} and {legacy} exist; delete one or set SyncState globally."
        )),
        (false, true) => Ok(legacy),
        _ => Ok(xdg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(home: &str) -> Environment {
        Environment {
            home: home.to_string(),
            xdg_config_home: None,
            xdg_state_home: None,
        }
    }

    #[test]
    fn expansion() {
        assert_eq!(expand_local_path("~", "./", "/h"), Some("/h".into()));
        assert_eq!(
            expand_local_path("~/Mail/", "./", "/h"),
            Some("/h/Mail/".into())
        );
        assert_eq!(
            expand_local_path("/abs", "/cfg/", "/h"),
            Some("/abs".into())
        );
        assert_eq!(
            expand_local_path("rel/x", "/cfg/", "/h"),
            Some("/cfg/rel/x".into())
        );
        assert_eq!(expand_local_path("rel", "./", "/h"), Some("./rel".into()));
        assert_eq!(
            expand_local_path("~root/x", "./", "/h"),
            home_of_user("root").map(|d| format!("{d}/x"))
        );
        assert!(home_of_user("root").is_some());
        assert_eq!(expand_local_path("~no-such-user-xyz/x", "./", "/h"), None);
        assert_eq!(base_dir_of("rc"), "./");
        assert_eq!(base_dir_of("/etc/x/rc"), "/etc/x/");
    }

    #[test]
    fn config_file_choice() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap().to_string();
        let e = env(&home);
        assert_eq!(locate_config(Some("rc"), &e).path, "./rc");
        assert_eq!(locate_config(Some("a/rc"), &e).path, "a/rc");
        let xdg = format!("{home}/.config/isyncrc");
        let legacy = format!("{home}/.mbsyncrc");
        assert_eq!(
            locate_config(None, &e),
            ConfigLocation {
                path: xdg.clone(),
                warning: None
            }
        );
        std::fs::write(&legacy, "").unwrap();
        assert_eq!(
            locate_config(None, &e),
            ConfigLocation {
                path: legacy.clone(),
                warning: None
            }
        );
        std::fs::create_dir_all(format!("{home}/.config")).unwrap();
        std::os::unix::fs::symlink("/nonexistent", &xdg).unwrap();
        assert_eq!(
            locate_config(None, &e),
            ConfigLocation {
                path: xdg.clone(),
                warning: Some(format!("Both {xdg} and {legacy} exist; using the former."))
            }
        );
        let custom = Environment {
            xdg_config_home: Some("/x".into()),
            ..e
        };
        assert_eq!(locate_config(None, &custom).path, legacy);
        std::fs::remove_file(&legacy).unwrap();
        assert_eq!(locate_config(None, &custom).path, "/x/isyncrc");
    }

    #[test]
    fn default_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap().to_string();
        let e = env(&home);
        let xdg = format!("{home}/.local/state/isync/");
        let legacy = format!("{home}/.mbsync/");
        assert_eq!(default_sync_state(&e), Ok(xdg.clone()));
        std::fs::create_dir(&legacy).unwrap();
        assert_eq!(default_sync_state(&e), Ok(legacy.clone()));
        std::fs::create_dir_all(&xdg).unwrap();
        assert_eq!(
            default_sync_state(&e),
            Err(format!(
                "Error: both {xdg} and {legacy} exist; delete one or set SyncState globally."
            ))
        );
        let custom = Environment {
            xdg_state_home: Some("/s".into()),
            ..env("/nonexistent-home")
        };
        assert_eq!(default_sync_state(&custom), Ok("/s/isync/".into()));
    }
}
