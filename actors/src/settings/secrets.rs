//! Custom secrets (`custom_secrets` tree): name → `{name, secret,
//! description}` with the value sealed for `secrets/<NAME>`. These are what
//! `LookupSecret`s fetch from `GET /api/settings/secrets/{name}`.
//!
//! Each secret is its own record, so an upsert or delete is a single atomic
//! write and never rewrites other secrets. Names are validated by the caller
//! ([`super::valid_secret_name`]).

use serde_json::{Value, json};

use super::{SettingsError, SettingsStore};
use crate::crypto::is_sealed;

fn aad(name: &str) -> String {
    format!("secrets/{name}")
}

impl SettingsStore {
    /// Every secret's name and description (never a value), by name.
    pub fn list_secrets(&self) -> Result<Vec<(String, Option<String>)>, SettingsError> {
        let mut out = vec![];
        for item in self.secrets.iter() {
            let (k, v) = item?;
            let name = String::from_utf8_lossy(&k).into_owned();
            let description = serde_json::from_slice::<Value>(&v)
                .ok()
                .and_then(|r| r["description"].as_str().map(str::to_string));
            out.push((name, description));
        }
        Ok(out)
    }

    /// Creates or replaces a secret. An empty (or blank) value is stored as
    /// "no value", as the reference does.
    pub fn put_secret(
        &self,
        name: &str,
        value: &str,
        description: Option<&str>,
    ) -> Result<(), SettingsError> {
        let secret = if value.trim().is_empty() {
            Value::Null
        } else {
            match self.cipher() {
                Some(c) => Value::String(
                    c.seal_str(&aad(name), value)
                        .map_err(|_| SettingsError::NoCipher)?,
                ),
                None => {
                    self.warn_clear("a custom secret", 1);
                    Value::String(value.to_string())
                }
            }
        };
        let record = json!({"name": name, "secret": secret, "description": description});
        self.secrets
            .insert(name.as_bytes(), record.to_string().into_bytes())?;
        self.flush()
    }

    /// A secret's value; `None` when there is no such secret (or it has no
    /// value). A value sealed with another key is [`SettingsError::Unreadable`].
    pub fn secret_value(&self, name: &str) -> Result<Option<String>, SettingsError> {
        let Some(bytes) = self.secrets.get(name.as_bytes())? else {
            return Ok(None);
        };
        let record: Value =
            serde_json::from_slice(&bytes).map_err(|_| SettingsError::Unreadable)?;
        match record.get("secret") {
            Some(Value::String(s)) if is_sealed(s) => self
                .cipher()
                .and_then(|c| c.open_str(&aad(name), s).ok())
                .map(Some)
                .ok_or(SettingsError::Unreadable),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            _ => Ok(None),
        }
    }

    /// Deletes a secret; `false` when it did not exist. Works whatever key
    /// sealed it.
    pub fn delete_secret(&self, name: &str) -> Result<bool, SettingsError> {
        let existed = self.secrets.remove(name.as_bytes())?.is_some();
        if existed {
            self.flush()?;
        }
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::crypto::Cipher;

    #[test]
    fn crud_and_sealing() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let s = SettingsStore::open(&db, Some(Arc::new(Cipher::from_secret("k")))).unwrap();
        s.put_secret("B_TOKEN", "value-b", None).unwrap();
        s.put_secret("A_TOKEN", "value-a", Some("first")).unwrap();
        s.put_secret("EMPTY", " ", None).unwrap();
        assert_eq!(
            s.list_secrets().unwrap(),
            vec![
                ("A_TOKEN".to_string(), Some("first".to_string())),
                ("B_TOKEN".to_string(), None),
                ("EMPTY".to_string(), None)
            ]
        );
        assert_eq!(
            s.secret_value("A_TOKEN").unwrap().as_deref(),
            Some("value-a")
        );
        assert_eq!(s.secret_value("EMPTY").unwrap(), None);
        assert_eq!(s.secret_value("NONE").unwrap(), None);
        let raw = s.secrets.get("A_TOKEN").unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("value-a"));

        let other = SettingsStore::open(&db, Some(Arc::new(Cipher::from_secret("x")))).unwrap();
        assert!(matches!(
            other.secret_value("A_TOKEN"),
            Err(SettingsError::Unreadable)
        ));
        assert!(other.delete_secret("A_TOKEN").unwrap());
        assert!(!s.delete_secret("A_TOKEN").unwrap());
    }
}
