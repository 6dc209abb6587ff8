//! The trajectory archive of a conversation: a zip laid out like the
//! reference's conversation directory (`<hex>/meta.json`,
//! `<hex>/base_state.json`, `<hex>/events/event-00000-<event id>.json`, …),
//! built from the store rather than from files.
//!
//! The archive is written entry by entry into an already-unlinked temporary
//! file (so nothing is left behind whatever happens to the request), one
//! event in memory at a time. Secrets never reach it: the conversation info
//! and state are the redacted forms, and every plaintext secret the
//! conversation holds is replaced by `**********` wherever it occurs in
//! any entry. Blocking: call it off the async threads.

use std::borrow::Cow;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom};
use std::path::Path;
use std::time::SystemTime;

use agent_actors::crypto::{Cipher, is_sealed};
use agent_actors::ids::Uuid;
use agent_actors::model::conversation::ConversationRecord;
use agent_actors::model::secrets::{REDACTED, visit_agent_secrets, visit_registry_secrets};
use agent_actors::store::{Store, StoreError};
use serde_json::{Map, Value};

use super::zip::ZipWriter;

/// Secrets shorter than this are not searched for: replacing them would
/// mangle ordinary text without protecting anything.
const MIN_SECRET_LEN: usize = 4;

/// Why an archive could not be built.
#[derive(Debug)]
pub enum TrajectoryError {
    /// The stored record cannot be read.
    Record(String),
    /// Reading the store failed.
    Store(String),
    /// Writing the archive failed.
    Io(io::Error),
}

impl std::fmt::Display for TrajectoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrajectoryError::Record(e) => write!(f, "unreadable conversation record: {e}"),
            TrajectoryError::Store(e) => write!(f, "storage error: {e}"),
            TrajectoryError::Io(e) => write!(f, "cannot write the archive: {e}"),
        }
    }
}

impl From<io::Error> for TrajectoryError {
    fn from(e: io::Error) -> Self {
        TrajectoryError::Io(e)
    }
}

/// Every plaintext secret of a conversation, longest first.
pub fn secrets_of(record: &ConversationRecord) -> Vec<String> {
    let mut found = vec![];
    let mut collect = |_: &str, v: &mut Value| {
        if let Value::String(s) = v {
            found.push(s.clone());
        }
    };
    let mut agent = record.agent.to_value();
    visit_agent_secrets(&mut agent, &mut collect);
    let mut sources = record.secret_sources.clone();
    visit_registry_secrets(&mut sources, &mut collect);
    found.retain(|s| s.chars().count() >= MIN_SECRET_LEN && s != REDACTED && !is_sealed(s));
    found.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    found.dedup();
    found
}

fn scrub_str(s: &str, secrets: &[String]) -> Option<String> {
    let mut out: Option<String> = None;
    for secret in secrets {
        let cur = out.as_deref().unwrap_or(s);
        if cur.contains(secret.as_str()) {
            out = Some(cur.replace(secret.as_str(), REDACTED));
        }
    }
    out
}

fn scrub_value(v: &mut Value, secrets: &[String]) {
    match v {
        Value::String(s) => {
            if let Some(clean) = scrub_str(s, secrets) {
                *s = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|x| scrub_value(x, secrets)),
        Value::Object(m) => {
            let taken = std::mem::take(m);
            let mut rebuilt = Map::with_capacity(taken.len());
            for (k, mut x) in taken {
                scrub_value(&mut x, secrets);
                rebuilt.insert(scrub_str(&k, secrets).unwrap_or(k), x);
            }
            *m = rebuilt;
        }
        _ => {}
    }
}

/// `json` with every secret replaced, or unchanged (borrowed) when none
/// occurs in it, raw or JSON-escaped.
pub fn scrub_json<'a>(json: &'a str, secrets: &[String]) -> Cow<'a, str> {
    let present = secrets.iter().any(|s| {
        json.contains(s.as_str())
            || serde_json::to_string(s)
                .ok()
                .is_some_and(|q| json.contains(q.trim_matches('"')))
    });
    if !present {
        return Cow::Borrowed(json);
    }
    match serde_json::from_str::<Value>(json) {
        Ok(mut v) => {
            scrub_value(&mut v, secrets);
            Cow::Owned(v.to_string())
        }
        // Not JSON (never expected): a textual replacement still removes
        // the raw occurrences.
        Err(_) => Cow::Owned(scrub_str(json, secrets).unwrap_or_else(|| json.to_string())),
    }
}

/// An event id made safe as part of a file name inside the archive, so no
/// entry can point outside its folder when extracted.
fn safe_name(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_string()
}

/// A read-write file in `dir` whose name is removed at once.
fn anonymous_file(dir: &Path, tag: &str) -> io::Result<File> {
    fs::create_dir_all(dir)?;
    let path = dir.join(format!(".{tag}-{}.tmp", Uuid::new_v4().simple()));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    fs::remove_file(&path)?;
    Ok(file)
}

/// Builds the archive of conversation `id` in a temporary file under
/// `scratch_dir`, positioned at its start. `None` when the conversation
/// does not exist.
pub fn build(
    store: &Store,
    cipher: Option<&Cipher>,
    id: Uuid,
    scratch_dir: &Path,
) -> Result<Option<File>, TrajectoryError> {
    let Some((record, _)) = ConversationRecord::load(store, &id, cipher).map_err(|e| match e {
        StoreError::Corrupt(what) => TrajectoryError::Record(what),
        other => TrajectoryError::Store(other.to_string()),
    })?
    else {
        return Ok(None);
    };
    let secrets = secrets_of(&record);
    let hex = id.simple();

    let out = BufWriter::with_capacity(256 * 1024, anonymous_file(scratch_dir, "trajectory")?);
    let central = anonymous_file(scratch_dir, "trajectory-index")?;
    let mut zip = ZipWriter::new(out, central, SystemTime::now());
    zip.add_dir(&format!("{hex}/"))?;
    let meta = record.info_value(true).to_string();
    zip.add_file(
        &format!("{hex}/meta.json"),
        scrub_json(&meta, &secrets).as_bytes(),
    )?;
    let state = record.full_state_value().to_string();
    zip.add_file(
        &format!("{hex}/base_state.json"),
        scrub_json(&state, &secrets).as_bytes(),
    )?;
    zip.add_dir(&format!("{hex}/events/"))?;
    // Indices are positions in the archive, gap-free even if a damaged
    // event is skipped (the reference's loader stops at the first gap).
    let mut index = 0usize;
    for ev in store.events_from(&id, 1, false) {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                log::warn!("conversation {hex}: damaged event left out of the trajectory: {e}");
                continue;
            }
        };
        let name = format!("{hex}/events/event-{index:05}-{}.json", safe_name(ev.id()));
        zip.add_file(&name, scrub_json(ev.json(), &secrets).as_bytes())?;
        index += 1;
    }
    let mut file = zip.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.seek(SeekFrom::Start(0))?;
    Ok(Some(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubbing() {
        let secrets = vec!["sk-live-1234".to_string(), "p\"w\\d!".to_string()];
        let clean = r#"{"a":"nothing here"}"#;
        assert!(matches!(scrub_json(clean, &secrets), Cow::Borrowed(_)));
        let dirty = r#"{"a":"key sk-live-1234 end","b":["p\"w\\d!"],"sk-live-1234":1}"#;
        let got = scrub_json(dirty, &secrets);
        assert!(!got.contains("sk-live"), "{got}");
        assert!(!got.contains("p\\\"w"), "{got}");
        let v: Value = serde_json::from_str(&got).unwrap();
        assert_eq!(v["a"], "key ********** end");
        assert_eq!(v["b"][0], REDACTED);
        assert_eq!(v[REDACTED], 1);
    }

    #[test]
    fn safe_names() {
        assert_eq!(safe_name("a1b2-c3"), "a1b2-c3");
        assert_eq!(safe_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(safe_name("x/y\\z"), "x_y_z");
    }
}
