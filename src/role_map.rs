//! The `role_arn_map` file of an instance: read at Init, re-read when its modification time or
//! size changes (looked at no more than once a second, never per record). A file that becomes
//! unreadable or malformed keeps the last good map, and says so once per distinct problem.

use crate::core::role::{MapError, RoleMap};
use crate::log::{log_error, log_info};
use crate::sync::lock;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How often the file is looked at, at most.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// What identifies a version of the file without reading it.
type Stamp = (Option<SystemTime>, u64);

struct State {
    map: Arc<RoleMap>,
    stamp: Stamp,
    looked: Instant,
    /// The problem last logged, so a file that stays broken is logged once.
    problem: Option<String>,
}

pub struct RoleMapFile {
    path: String,
    label: String,
    state: Mutex<State>,
}

/// Why the file could not be taken.
#[derive(Debug)]
pub enum MapFileError {
    Read(std::io::Error),
    Malformed(MapError),
}

impl std::fmt::Display for MapFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MapFileError::Read(e) => write!(f, "cannot read it: {e}"),
            MapFileError::Malformed(e) => write!(f, "malformed: {e}"),
        }
    }
}

impl RoleMapFile {
    /// Reads the file now: Init fails when it cannot be read or parsed.
    pub fn open(path: &str, label: &str) -> Result<RoleMapFile, MapFileError> {
        let stamp = stamp(path).map_err(MapFileError::Read)?;
        let map = read(path)?;
        let state = State { map: Arc::new(map), stamp, looked: Instant::now(), problem: None };
        Ok(RoleMapFile { path: path.to_owned(), label: label.to_owned(), state: Mutex::new(state) })
    }

    /// The map to plan the next chunk with: re-read first if the file changed.
    pub fn current(&self) -> Arc<RoleMap> {
        let mut s = lock(&self.state);
        if s.looked.elapsed() < LOOK_EVERY {
            return s.map.clone();
        }
        s.looked = Instant::now();
        let outcome = match stamp(&self.path) {
            Ok(now) if now == s.stamp => return s.map.clone(),
            Ok(now) => read(&self.path).map(|map| (now, map)),
            Err(e) => Err(MapFileError::Read(e)),
        };
        match outcome {
            Ok((now, map)) => {
                log_info!(&self.label, "role_arn_map '{}' re-read: {} entries", self.path, map.len());
                s.map = Arc::new(map);
                s.stamp = now;
                s.problem = None;
            }
            Err(why) => {
                let why = why.to_string();
                if s.problem.as_deref() != Some(why.as_str()) {
                    log_error!(
                        &self.label,
                        "role_arn_map '{}' {}; keeping the last good map ({} entries)",
                        self.path,
                        why,
                        s.map.len()
                    );
                    s.problem = Some(why);
                }
            }
        }
        s.map.clone()
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

fn stamp(path: &str) -> std::io::Result<Stamp> {
    let meta = std::fs::metadata(path)?;
    Ok((meta.modified().ok(), meta.len()))
}

fn read(path: &str) -> Result<RoleMap, MapFileError> {
    let text = std::fs::read_to_string(path).map_err(MapFileError::Read)?;
    RoleMap::parse(&text).map_err(MapFileError::Malformed)
}
