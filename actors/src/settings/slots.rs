//! Where secrets sit inside persisted settings and LLM profiles, and the four
//! things done to them: seal for storage, open after loading, render for a
//! client (redacted, exported as a sealed token, or plaintext), and open the
//! sealed tokens a client posts back.
//!
//! One visitor per record kind finds every secret slot, so sealing, opening
//! and redaction can never disagree about what is secret. A slot is bound to
//! its record and field: the associated data is `scope ++ path`, e.g.
//! `settings/agent_settings.llm.api_key` or `profiles/fast/api_key`.
//! Tokens handed to clients (`X-Expose-Secrets: encrypted`) are sealed for
//! [`EXPORT_AAD`] instead, so that a client may post them back into any slot
//! (the reference's round trip). Nothing here logs a value.

use serde_json::Value;

use crate::crypto::{Cipher, is_sealed};
use crate::model::llm::LLM_SECRET_FIELDS;
use crate::model::secrets::{REDACTED, visit_source};

/// Associated data of the sealed tokens given to clients.
pub const EXPORT_AAD: &str = "agent-server/exported-secret/v1";

/// The marker the reference prints for MCP `env`/`headers` values.
pub const SANITIZED: &str = "<redacted>";

/// How a slot is shown when redacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    /// A secret string: `"**********"` when set.
    Secret,
    /// An MCP `env`/`headers` value: always `"<redacted>"`.
    Sanitized,
}

/// How secrets leave the server (`X-Expose-Secrets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expose {
    /// Header absent: markers instead of values.
    Redacted,
    /// `encrypted` (or legacy `true`): sealed tokens for [`EXPORT_AAD`].
    Encrypted,
    /// `plaintext`: the values themselves.
    Plaintext,
}

impl Expose {
    /// Parses the header value the way the reference does (trimmed, any
    /// case); `Err` carries the normalized value for the 400 message.
    pub fn parse(header: Option<&str>) -> Result<Expose, String> {
        let v = header.unwrap_or("").trim().to_ascii_lowercase();
        match v.as_str() {
            "" => Ok(Expose::Redacted),
            // A stale "true" must never expose plaintext.
            "true" | "encrypted" => Ok(Expose::Encrypted),
            "plaintext" => Ok(Expose::Plaintext),
            _ => Err(v),
        }
    }
}

/// Why slots could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderError {
    /// `encrypted` was asked for but no key is configured.
    NoCipher,
    /// A stored value was sealed with another key (or is damaged).
    Unreadable,
}

/// A visitor over the secret slots of one record: `(path, kind, slot)`.
pub type Visitor = fn(&mut Value, &mut dyn FnMut(&str, SlotKind, &mut Value));

/// Visits the secret slots of agent settings (either variant): the LLM's
/// secret fields, MCP `env`/`headers` values, `acp_env` values and
/// `agent_context.secrets`. Works on partial objects (PATCH diffs) too.
pub fn agent_settings_slots(agent: &mut Value, f: &mut dyn FnMut(&str, SlotKind, &mut Value)) {
    let Some(obj) = agent.as_object_mut() else {
        return;
    };
    if let Some(llm) = obj.get_mut("llm") {
        llm_slots_at(llm, "llm.", f);
    }
    if let Some(Value::Object(servers)) = obj
        .get_mut("mcp_config")
        .and_then(|c| c.get_mut("mcpServers"))
    {
        for (name, server) in servers.iter_mut() {
            for key in ["env", "headers"] {
                if let Some(Value::Object(m)) = server.get_mut(key) {
                    for (k, v) in m.iter_mut() {
                        f(
                            &format!("mcp_config.mcpServers.{name}.{key}.{k}"),
                            SlotKind::Sanitized,
                            v,
                        );
                    }
                }
            }
        }
    }
    if let Some(Value::Object(env)) = obj.get_mut("acp_env") {
        for (k, v) in env.iter_mut() {
            f(&format!("acp_env.{k}"), SlotKind::Secret, v);
        }
    }
    if let Some(Value::Object(secrets)) = obj
        .get_mut("agent_context")
        .and_then(|c| c.get_mut("secrets"))
    {
        for (name, v) in secrets.iter_mut() {
            let path = format!("agent_context.secrets.{name}");
            match v {
                Value::Object(src) => {
                    visit_source(src, &path, &mut |p, slot| f(p, SlotKind::Secret, slot))
                }
                _ => f(&path, SlotKind::Secret, v),
            }
        }
    }
}

fn llm_slots_at(llm: &mut Value, prefix: &str, f: &mut dyn FnMut(&str, SlotKind, &mut Value)) {
    if let Some(obj) = llm.as_object_mut() {
        for field in LLM_SECRET_FIELDS {
            if let Some(v) = obj.get_mut(field) {
                f(&format!("{prefix}{field}"), SlotKind::Secret, v);
            }
        }
    }
}

/// Visits the secret fields of one LLM object (a profile).
pub fn llm_slots(llm: &mut Value, f: &mut dyn FnMut(&str, SlotKind, &mut Value)) {
    llm_slots_at(llm, "", f);
}

/// Opens sealed slot values in place. Values that cannot be opened (no key,
/// another key, damage) stay sealed; their paths are returned.
pub fn open_slots(
    value: &mut Value,
    visit: Visitor,
    cipher: Option<&Cipher>,
    scope: &str,
) -> Vec<String> {
    let mut unreadable = vec![];
    visit(value, &mut |path, _, slot| {
        if let Value::String(s) = slot {
            if !is_sealed(s) {
                return;
            }
            match cipher.and_then(|c| c.open_str(&format!("{scope}{path}"), s).ok()) {
                Some(plain) => *slot = Value::String(plain),
                None => unreadable.push(path.to_string()),
            }
        }
    });
    unreadable
}

/// Seals every plaintext slot for storage. Without a key the values stay in
/// clear (the reference's behaviour); the number of such values is returned
/// so the caller can warn.
pub fn seal_slots(
    value: &mut Value,
    visit: Visitor,
    cipher: Option<&Cipher>,
    scope: &str,
) -> usize {
    let mut clear = 0;
    visit(value, &mut |path, _, slot| {
        if let Value::String(s) = slot {
            if is_sealed(s) {
                return;
            }
            match cipher.and_then(|c| c.seal_str(&format!("{scope}{path}"), s).ok()) {
                Some(sealed) => *slot = Value::String(sealed),
                None => clear += 1,
            }
        }
    });
    clear
}

/// Whether any slot still holds a sealed value (one that could not be opened).
pub fn has_sealed(value: &mut Value, visit: Visitor) -> bool {
    let mut found = false;
    visit(value, &mut |_, _, slot| {
        found |= slot.as_str().is_some_and(is_sealed);
    });
    found
}

/// Renders opened slots for a client in the given mode. `encrypted`
/// without a key only fails when there is a value to seal, as in the
/// reference.
pub fn render_slots(
    value: &mut Value,
    visit: Visitor,
    mode: Expose,
    cipher: Option<&Cipher>,
) -> Result<(), RenderError> {
    let mut failure = None;
    visit(value, &mut |_, kind, slot| {
        let Value::String(s) = slot else { return };
        let sealed_at_rest = is_sealed(s);
        match mode {
            Expose::Redacted => {
                *slot = match (kind, sealed_at_rest) {
                    (SlotKind::Sanitized, _) => Value::String(SANITIZED.into()),
                    // A value we cannot open is shown as absent, as the
                    // reference does after a failed decryption.
                    (SlotKind::Secret, true) => Value::Null,
                    (SlotKind::Secret, false) => Value::String(REDACTED.into()),
                };
            }
            _ if sealed_at_rest => {
                failure.get_or_insert(RenderError::Unreadable);
            }
            Expose::Plaintext => {}
            Expose::Encrypted => match cipher.map(|c| c.seal_str(EXPORT_AAD, s)) {
                Some(Ok(token)) => *slot = Value::String(token),
                _ => {
                    failure.get_or_insert(RenderError::NoCipher);
                }
            },
        }
    });
    failure.map_or(Ok(()), Err)
}

/// Opens the sealed tokens a client posted (exported tokens, or values
/// sealed for that very slot). `Err` names the first slot whose token this
/// server cannot open.
pub fn open_incoming(
    value: &mut Value,
    visit: Visitor,
    cipher: Option<&Cipher>,
    scope: &str,
) -> Result<(), String> {
    let mut failed = None;
    visit(value, &mut |path, _, slot| {
        let Value::String(s) = slot else { return };
        if !is_sealed(s) {
            return;
        }
        let opened = cipher.and_then(|c| {
            c.open_str(EXPORT_AAD, s)
                .or_else(|_| c.open_str(&format!("{scope}{path}"), s))
                .ok()
        });
        match opened {
            Some(plain) => *slot = Value::String(plain),
            None => {
                failed.get_or_insert_with(|| path.to_string());
            }
        }
    });
    failed.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> Value {
        json!({"llm": {"model": "m", "api_key": "sk-1", "aws_session_token": null},
               "mcp_config": {"mcpServers": {"gh": {"command": "x", "env": {"TOKEN": "t1"}},
                                             "r": {"url": "u", "headers": {"Authorization": "Bearer z"}}}},
               "agent_context": {"secrets": {"A": "plain", "B": {"kind": "StaticSecret", "value": "v"}}}})
    }

    #[test]
    fn seal_open_render() {
        let c = Cipher::from_secret("k");
        let mut v = settings();
        assert_eq!(seal_slots(&mut v, agent_settings_slots, Some(&c), "s/"), 0);
        let text = v.to_string();
        for secret in ["sk-1", "t1", "Bearer z", "plain", "\"v\""] {
            assert!(!text.contains(secret), "{secret} leaked");
        }
        assert!(open_slots(&mut v, agent_settings_slots, Some(&c), "s/").is_empty());
        assert_eq!(v, settings());

        let mut r = v.clone();
        render_slots(&mut r, agent_settings_slots, Expose::Redacted, None).unwrap();
        assert_eq!(r["llm"]["api_key"], REDACTED);
        assert_eq!(r["llm"]["aws_session_token"], Value::Null);
        assert_eq!(
            r["mcp_config"]["mcpServers"]["gh"]["env"]["TOKEN"],
            SANITIZED
        );
        assert_eq!(r["agent_context"]["secrets"]["B"]["value"], REDACTED);

        let mut e = v.clone();
        assert_eq!(
            render_slots(&mut e, agent_settings_slots, Expose::Encrypted, None),
            Err(RenderError::NoCipher)
        );
        let mut nothing = json!({"llm": {"api_key": null}});
        assert_eq!(
            render_slots(&mut nothing, agent_settings_slots, Expose::Encrypted, None),
            Ok(())
        );
        render_slots(&mut e, agent_settings_slots, Expose::Encrypted, Some(&c)).unwrap();
        let token = e["llm"]["api_key"].as_str().unwrap().to_string();
        assert!(is_sealed(&token));
        // Exported tokens come back in through any slot.
        let mut back = json!({"api_key": token});
        open_incoming(&mut back, llm_slots, Some(&c), "profiles/p/").unwrap();
        assert_eq!(back["api_key"], "sk-1");
    }

    #[test]
    fn wrong_key_is_reported_never_revealed() {
        let mut v = settings();
        seal_slots(
            &mut v,
            agent_settings_slots,
            Some(&Cipher::from_secret("a")),
            "s/",
        );
        let other = Cipher::from_secret("b");
        let bad = open_slots(&mut v, agent_settings_slots, Some(&other), "s/");
        assert_eq!(bad.len(), 5);
        assert!(bad.contains(&"llm.api_key".to_string()));
        assert!(has_sealed(&mut v, agent_settings_slots));
        let mut p = v.clone();
        assert_eq!(
            render_slots(
                &mut p,
                agent_settings_slots,
                Expose::Plaintext,
                Some(&other)
            ),
            Err(RenderError::Unreadable)
        );
        render_slots(&mut v, agent_settings_slots, Expose::Redacted, Some(&other)).unwrap();
        assert_eq!(v["llm"]["api_key"], Value::Null);
        let mut incoming =
            json!({"api_key": Cipher::from_secret("a").seal_str(EXPORT_AAD, "x").unwrap()});
        assert_eq!(
            open_incoming(&mut incoming, llm_slots, Some(&other), "p/"),
            Err("api_key".to_string())
        );
    }

    #[test]
    fn header_modes() {
        assert_eq!(Expose::parse(None), Ok(Expose::Redacted));
        assert_eq!(Expose::parse(Some(" Plaintext ")), Ok(Expose::Plaintext));
        assert_eq!(Expose::parse(Some("TRUE")), Ok(Expose::Encrypted));
        assert_eq!(Expose::parse(Some("Yes")), Err("yes".to_string()));
    }
}
