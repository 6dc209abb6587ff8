//! The saved workspace list shown by GUI pickers (`saved_workspaces` tree,
//! key `current`): `{"schema_version":1,"workspaces":[…],"workspaceParents":[…]}`
//! with the reference's camelCase names (`workspaceParents`, `parentPath`)
//! and `parentPath` left out when unset. Paths are not secret; nothing is
//! sealed here. Adds de-duplicate by `path`, within the request too.

use serde_json::{Map, Value, json};

use super::{SettingsError, SettingsStore, abort};
use crate::model::conversation::FieldError;

const KEY: &[u8] = b"current";
const SCHEMA_VERSION: i64 = 1;
/// Longest `id`, `path` and `parentPath`.
pub const MAX_PATH: usize = 4096;
/// Longest `name`.
pub const MAX_NAME: usize = 256;

fn field_error(loc: Vec<String>, kind: &'static str, msg: impl Into<String>) -> FieldError {
    FieldError {
        loc,
        msg: msg.into(),
        kind,
    }
}

fn text(
    obj: &Map<String, Value>,
    keys: &[&str],
    loc: &[String],
    max: usize,
    required: bool,
) -> Result<Option<String>, FieldError> {
    let at = |k: &str| {
        let mut l = loc.to_vec();
        l.push(k.to_string());
        l
    };
    let found = keys.iter().find_map(|k| obj.get(*k).map(|v| (*k, v)));
    match found {
        None if required => Err(field_error(at(keys[0]), "missing", "Field required")),
        None => Ok(None),
        Some((_, Value::Null)) if !required => Ok(None),
        Some((k, Value::String(s))) => {
            let n = s.chars().count();
            if required && n == 0 {
                Err(field_error(
                    at(k),
                    "string_too_short",
                    "String should have at least 1 character",
                ))
            } else if n > max {
                Err(field_error(
                    at(k),
                    "string_too_long",
                    format!("String should have at most {max} characters"),
                ))
            } else {
                Ok(Some(s.clone()))
            }
        }
        Some((k, _)) => Err(field_error(
            at(k),
            "string_type",
            "Input should be a valid string",
        )),
    }
}

/// Validates the list under `field` of a request body (`workspaces` or
/// `parents`). Workspaces may carry `parentPath` (or `parent_path`).
pub fn parse_items(body: &Value, field: &str, with_parent: bool) -> Result<Vec<Value>, FieldError> {
    let Some(obj) = body.as_object() else {
        return Err(field_error(
            vec![],
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
        ));
    };
    let Some(list) = obj.get(field) else {
        return Err(field_error(vec![field.into()], "missing", "Field required"));
    };
    let Value::Array(items) = list else {
        return Err(field_error(
            vec![field.into()],
            "list_type",
            "Input should be a valid list",
        ));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let loc = vec![field.to_string(), i.to_string()];
        let Some(m) = item.as_object() else {
            return Err(field_error(
                loc,
                "model_type",
                "Input should be a valid dictionary or object",
            ));
        };
        let id = text(m, &["id"], &loc, MAX_PATH, true)?;
        let name = text(m, &["name"], &loc, MAX_NAME, true)?;
        let path = text(m, &["path"], &loc, MAX_PATH, true)?;
        let mut v = json!({"id": id, "name": name, "path": path});
        if with_parent
            && let Some(p) = text(m, &["parentPath", "parent_path"], &loc, MAX_PATH, false)?
        {
            v["parentPath"] = Value::String(p);
        }
        out.push(v);
    }
    Ok(out)
}

/// Which list an operation works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkspaceList {
    /// `workspaces`.
    Workspaces,
    /// `workspaceParents`.
    Parents,
}

impl WorkspaceList {
    fn key(self) -> &'static str {
        match self {
            WorkspaceList::Workspaces => "workspaces",
            WorkspaceList::Parents => "workspaceParents",
        }
    }
}

fn empty() -> Value {
    json!({"schema_version": SCHEMA_VERSION, "workspaces": [], "workspaceParents": []})
}

fn parse_stored(bytes: &[u8]) -> Option<Value> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let version = v.get("schema_version").and_then(Value::as_i64).unwrap_or(1);
    let ok = version <= SCHEMA_VERSION
        && v.get("workspaces").is_some_and(Value::is_array)
        && v.get("workspaceParents").is_some_and(Value::is_array);
    ok.then_some(v)
}

/// The client's view: `{"workspaces":[…],"workspaceParents":[…]}`.
fn view(v: &Value) -> Value {
    json!({"workspaces": v["workspaces"], "workspaceParents": v["workspaceParents"]})
}

impl SettingsStore {
    /// The saved lists; [`SettingsError::Unreadable`] when the record is damaged.
    pub fn workspaces(&self) -> Result<Value, SettingsError> {
        match self.workspaces.get(KEY)? {
            None => Ok(view(&empty())),
            Some(b) => parse_stored(&b)
                .map(|v| view(&v))
                .ok_or(SettingsError::Unreadable),
        }
    }

    /// Appends items whose `path` is new; returns the full lists.
    pub fn add_workspaces(
        &self,
        list: WorkspaceList,
        items: &[Value],
    ) -> Result<Value, SettingsError> {
        let out = self.workspaces.transaction(|tx| {
            let mut v = match tx.get(KEY)? {
                None => empty(),
                Some(b) => match parse_stored(&b) {
                    Some(v) => v,
                    None => return abort(SettingsError::Unreadable),
                },
            };
            if let Some(Value::Array(current)) = v.get_mut(list.key()) {
                for item in items {
                    let path = &item["path"];
                    if !current.iter().any(|c| &c["path"] == path) {
                        current.push(item.clone());
                    }
                }
            }
            tx.insert(KEY, v.to_string().into_bytes())?;
            Ok(view(&v))
        })?;
        self.flush()?;
        Ok(out)
    }

    /// Removes the item with `path`; `false` when there was none.
    pub fn remove_workspace(&self, list: WorkspaceList, path: &str) -> Result<bool, SettingsError> {
        let removed = self.workspaces.transaction(|tx| {
            let Some(b) = tx.get(KEY)? else {
                return Ok(false);
            };
            let Some(mut v) = parse_stored(&b) else {
                return abort(SettingsError::Unreadable);
            };
            let mut removed = false;
            if let Some(Value::Array(current)) = v.get_mut(list.key()) {
                let before = current.len();
                current.retain(|c| c["path"].as_str() != Some(path));
                removed = current.len() != before;
            }
            if removed {
                tx.insert(KEY, v.to_string().into_bytes())?;
            }
            Ok(removed)
        })?;
        if removed {
            self.flush()?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_dedupe_remove() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let s = SettingsStore::open(&db, None).unwrap();
        let items = parse_items(
            &json!({"workspaces": [{"id": "/a", "name": "a", "path": "/a", "parentPath": "/"},
                                   {"id": "/a", "name": "a2", "path": "/a"},
                                   {"id": "/b", "name": "b", "path": "/b", "parent_path": null}]}),
            "workspaces",
            true,
        )
        .unwrap();
        let v = s.add_workspaces(WorkspaceList::Workspaces, &items).unwrap();
        assert_eq!(v["workspaces"].as_array().unwrap().len(), 2);
        assert_eq!(v["workspaces"][0]["parentPath"], "/");
        assert!(v["workspaces"][1].get("parentPath").is_none());
        assert!(s.remove_workspace(WorkspaceList::Workspaces, "/a").unwrap());
        assert!(!s.remove_workspace(WorkspaceList::Workspaces, "/a").unwrap());
        assert!(!s.remove_workspace(WorkspaceList::Parents, "/b").unwrap());
        assert_eq!(s.workspaces().unwrap()["workspaces"][0]["path"], "/b");
    }

    #[test]
    fn validation() {
        let e = parse_items(
            &json!({"parents": [{"id": "", "name": "n", "path": "/p"}]}),
            "parents",
            false,
        )
        .unwrap_err();
        assert_eq!(e.loc, vec!["parents", "0", "id"]);
        assert_eq!(e.kind, "string_too_short");
        let long = "x".repeat(MAX_NAME + 1);
        let e = parse_items(
            &json!({"parents": [{"id": "i", "name": long, "path": "/p"}]}),
            "parents",
            false,
        )
        .unwrap_err();
        assert_eq!(e.kind, "string_too_long");
        assert_eq!(
            parse_items(&json!({}), "parents", false).unwrap_err().kind,
            "missing"
        );
    }
}
