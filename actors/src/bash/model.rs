//! The bash API's data: the `ExecuteBashRequest` body (validated as the
//! reference's pydantic model would), the `BashCommand` / `BashOutput` /
//! `BashError` JSON shapes with the reference's field order, and the fixed
//! header stored in front of each event so that filters never parse JSON.
//!
//! Pure data: no storage, no processes.

use serde_json::{Map, Value, json};

use crate::ids::Uuid;
use crate::model::conversation::FieldError;
use crate::time::format_utc;

/// Default command timeout of the reference, seconds.
pub const DEFAULT_TIMEOUT_SECS: i64 = 300;

/// Body of `start_bash_command`, `execute_bash_command` and socket frames.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecuteBashRequest {
    /// Shell code to run.
    pub command: String,
    /// Working directory as given (relative to the server's working
    /// directory unless absolute; `None`: the server's working directory).
    pub cwd: Option<String>,
    /// Seconds before the command is terminated.
    pub timeout: i64,
}

fn field_error(loc: &[&str], msg: &str, kind: &'static str) -> FieldError {
    FieldError {
        loc: loc.iter().map(|s| s.to_string()).collect(),
        msg: msg.to_string(),
        kind,
    }
}

/// pydantic's lax integer rules for JSON input: integers, floats without a
/// fractional part, numeric strings and booleans.
fn lax_int(v: &Value, loc: &[&str]) -> Result<i64, FieldError> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                return Ok(i);
            }
            match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(f as i64),
                Some(f) if f.is_finite() && f.fract() != 0.0 => Err(field_error(
                    loc,
                    "Input should be a valid integer, got a number with a fractional part",
                    "int_from_float",
                )),
                _ => Err(field_error(
                    loc,
                    "Input should be a valid integer, unable to parse input",
                    "int_parsing",
                )),
            }
        }
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::String(s) => s.trim().parse::<i64>().map_err(|_| {
            field_error(
                loc,
                "Input should be a valid integer, unable to parse string as an integer",
                "int_parsing",
            )
        }),
        _ => Err(field_error(
            loc,
            "Input should be a valid integer",
            "int_type",
        )),
    }
}

impl ExecuteBashRequest {
    /// Validates a JSON body. Unknown members are ignored, as the reference
    /// ignores them on its request models.
    pub fn from_value(v: &Value) -> Result<ExecuteBashRequest, FieldError> {
        let Value::Object(obj) = v else {
            return Err(field_error(
                &[],
                "Input should be a valid dictionary or object to extract fields from",
                "model_attributes_type",
            ));
        };
        let command = match obj.get("command") {
            None => return Err(field_error(&["command"], "Field required", "missing")),
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(field_error(
                    &["command"],
                    "Input should be a valid string",
                    "string_type",
                ));
            }
        };
        let cwd = match obj.get("cwd") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(field_error(
                    &["cwd"],
                    "Input should be a valid string",
                    "string_type",
                ));
            }
        };
        let timeout = match obj.get("timeout") {
            None => DEFAULT_TIMEOUT_SECS,
            Some(t) => lax_int(t, &["timeout"])?,
        };
        Ok(ExecuteBashRequest {
            command,
            cwd,
            timeout,
        })
    }

    /// The request as JSON (for error messages and tests).
    pub fn to_value(&self) -> Value {
        json!({"command": self.command, "cwd": self.cwd, "timeout": self.timeout})
    }
}

/// Which event a stored record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BashKind {
    /// A command was started.
    Command,
    /// Output of a command (a chunk, or the final one with the exit code).
    Output,
}

impl BashKind {
    /// The `kind` text.
    pub fn name(self) -> &'static str {
        match self {
            BashKind::Command => "BashCommand",
            BashKind::Output => "BashOutput",
        }
    }

    /// Parses a `kind` text.
    pub fn parse(s: &str) -> Option<BashKind> {
        match s {
            "BashCommand" => Some(BashKind::Command),
            "BashOutput" => Some(BashKind::Output),
            _ => None,
        }
    }

    fn byte(self) -> u8 {
        match self {
            BashKind::Command => 0,
            BashKind::Output => 1,
        }
    }

    fn from_byte(b: u8) -> Option<BashKind> {
        match b {
            0 => Some(BashKind::Command),
            1 => Some(BashKind::Output),
            _ => None,
        }
    }
}

/// `BashCommand` JSON: command, cwd, timeout, id, timestamp, kind.
pub fn command_json(id: &Uuid, request: &ExecuteBashRequest, micros: i64) -> String {
    let mut m = Map::new();
    m.insert("command".into(), Value::String(request.command.clone()));
    m.insert(
        "cwd".into(),
        request
            .cwd
            .clone()
            .map(Value::String)
            .unwrap_or(Value::Null),
    );
    m.insert("timeout".into(), Value::from(request.timeout));
    m.insert("id".into(), Value::String(id.simple()));
    m.insert("timestamp".into(), Value::String(format_utc(micros)));
    m.insert("kind".into(), Value::String("BashCommand".into()));
    Value::Object(m).to_string()
}

/// One `BashOutput` before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputEvent {
    /// Event id.
    pub id: Uuid,
    /// Time, microseconds since the epoch.
    pub micros: i64,
    /// The command it belongs to.
    pub command_id: Uuid,
    /// 0, 1, 2… within the command.
    pub order: u64,
    /// Exit code on the final output; `None` while the command runs.
    pub exit_code: Option<i64>,
    /// Standard output of this piece (`None` when empty).
    pub stdout: Option<String>,
    /// Standard error of this piece (`None` when empty).
    pub stderr: Option<String>,
}

impl OutputEvent {
    /// `BashOutput` JSON: id, timestamp, command_id, order, exit_code,
    /// stdout, stderr, kind.
    pub fn to_json(&self) -> String {
        let text = |s: &Option<String>| s.clone().map(Value::String).unwrap_or(Value::Null);
        let mut m = Map::new();
        m.insert("id".into(), Value::String(self.id.simple()));
        m.insert("timestamp".into(), Value::String(format_utc(self.micros)));
        m.insert("command_id".into(), Value::String(self.command_id.simple()));
        m.insert("order".into(), Value::from(self.order));
        m.insert(
            "exit_code".into(),
            self.exit_code.map(Value::from).unwrap_or(Value::Null),
        );
        m.insert("stdout".into(), text(&self.stdout));
        m.insert("stderr".into(), text(&self.stderr));
        m.insert("kind".into(), Value::String("BashOutput".into()));
        Value::Object(m).to_string()
    }

    /// The stored header of this event.
    pub fn header(&self) -> RecordHeader {
        RecordHeader {
            kind: BashKind::Output,
            is_final: self.exit_code.is_some(),
            command_id: self.command_id,
            event_id: self.id,
            micros: self.micros,
            order: self.order,
        }
    }
}

/// A `BashError` socket frame: id, timestamp, code, detail, kind.
pub fn error_json(code: &str, detail: &str) -> String {
    let mut m = Map::new();
    m.insert("id".into(), Value::String(Uuid::new_v4().simple()));
    m.insert(
        "timestamp".into(),
        Value::String(format_utc(crate::time::now_micros())),
    );
    m.insert("code".into(), Value::String(code.into()));
    m.insert("detail".into(), Value::String(detail.into()));
    m.insert("kind".into(), Value::String("BashError".into()));
    Value::Object(m).to_string()
}

const FORMAT_VERSION: u8 = 1;
/// Bytes of the fixed header in front of each stored event's JSON.
pub const HEADER_LEN: usize = 51;
const FLAG_FINAL: u8 = 1;

/// What filters need to know about a stored event, without its JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Command or output.
    pub kind: BashKind,
    /// A `BashOutput` with an exit code.
    pub is_final: bool,
    /// The command (for a `BashCommand`, its own id).
    pub command_id: Uuid,
    /// The event's id.
    pub event_id: Uuid,
    /// Time, microseconds since the epoch.
    pub micros: i64,
    /// `order` of a `BashOutput` (0 for a command).
    pub order: u64,
}

impl RecordHeader {
    /// The header of a `BashCommand`.
    pub fn command(id: Uuid, micros: i64) -> RecordHeader {
        RecordHeader {
            kind: BashKind::Command,
            is_final: false,
            command_id: id,
            event_id: id,
            micros,
            order: 0,
        }
    }

    /// Header followed by the JSON, as stored.
    pub fn encode(&self, json: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + json.len());
        out.push(FORMAT_VERSION);
        out.push(self.kind.byte());
        out.push(if self.is_final { FLAG_FINAL } else { 0 });
        out.extend_from_slice(self.command_id.as_bytes());
        out.extend_from_slice(self.event_id.as_bytes());
        out.extend_from_slice(&self.micros.to_be_bytes());
        out.extend_from_slice(&self.order.to_be_bytes());
        out.extend_from_slice(json.as_bytes());
        out
    }

    /// Reads the header of a stored value; `None` when it is damaged.
    pub fn decode(raw: &[u8]) -> Option<RecordHeader> {
        if raw.len() < HEADER_LEN || raw[0] != FORMAT_VERSION {
            return None;
        }
        let kind = BashKind::from_byte(raw[1])?;
        let command_id = Uuid::from_slice(&raw[3..19])?;
        let event_id = Uuid::from_slice(&raw[19..35])?;
        let micros = i64::from_be_bytes(raw[35..43].try_into().ok()?);
        let order = u64::from_be_bytes(raw[43..51].try_into().ok()?);
        Some(RecordHeader {
            kind,
            is_final: raw[2] & FLAG_FINAL != 0,
            command_id,
            event_id,
            micros,
            order,
        })
    }
}

/// The JSON part of a stored value (empty object when damaged).
pub fn stored_json(raw: &[u8]) -> &str {
    raw.get(HEADER_LEN..)
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or("{}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_validation_follows_pydantic() {
        let r = ExecuteBashRequest::from_value(&json!({"command": "ls", "extra": 1})).unwrap();
        assert_eq!(r.timeout, 300);
        assert_eq!(r.cwd, None);
        let r =
            ExecuteBashRequest::from_value(&json!({"command": "ls", "timeout": "7", "cwd": "w"}))
                .unwrap();
        assert_eq!((r.timeout, r.cwd.as_deref()), (7, Some("w")));
        assert_eq!(
            ExecuteBashRequest::from_value(&json!({"command": "ls", "timeout": 5.0}))
                .unwrap()
                .timeout,
            5
        );
        let e = ExecuteBashRequest::from_value(&json!({})).unwrap_err();
        assert_eq!(
            (e.loc.clone(), e.kind),
            (vec!["command".to_string()], "missing")
        );
        let e = ExecuteBashRequest::from_value(&json!({"command": 1})).unwrap_err();
        assert_eq!(e.kind, "string_type");
        let e =
            ExecuteBashRequest::from_value(&json!({"command": "x", "timeout": 1.5})).unwrap_err();
        assert_eq!(e.kind, "int_from_float");
        let e =
            ExecuteBashRequest::from_value(&json!({"command": "x", "timeout": null})).unwrap_err();
        assert_eq!(e.kind, "int_type");
        let e = ExecuteBashRequest::from_value(&json!({"command": "x", "cwd": 3})).unwrap_err();
        assert_eq!(e.loc, vec!["cwd".to_string()]);
        let e = ExecuteBashRequest::from_value(&json!([1])).unwrap_err();
        assert_eq!(e.kind, "model_attributes_type");
    }

    #[test]
    fn json_field_order_matches_the_reference() {
        let id = Uuid::new_v4();
        let req = ExecuteBashRequest {
            command: "echo hi".into(),
            cwd: None,
            timeout: 10,
        };
        let v: Value = serde_json::from_str(&command_json(&id, &req, 0)).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["command", "cwd", "timeout", "id", "timestamp", "kind"]
        );
        assert_eq!(v["id"], id.simple());
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00.000000Z");
        let out = OutputEvent {
            id: Uuid::new_v4(),
            micros: 1,
            command_id: id,
            order: 2,
            exit_code: None,
            stdout: Some("a".into()),
            stderr: None,
        };
        let v: Value = serde_json::from_str(&out.to_json()).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "id",
                "timestamp",
                "command_id",
                "order",
                "exit_code",
                "stdout",
                "stderr",
                "kind"
            ]
        );
        assert_eq!(v["exit_code"], Value::Null);
        let v: Value = serde_json::from_str(&error_json("ValidationError", "bad")).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["id", "timestamp", "code", "detail", "kind"]);
    }

    #[test]
    fn header_round_trip() {
        let h = RecordHeader {
            kind: BashKind::Output,
            is_final: true,
            command_id: Uuid::new_v4(),
            event_id: Uuid::new_v4(),
            micros: 1_795_613_267_504_498,
            order: 7,
        };
        let raw = h.encode("{\"a\":1}");
        assert_eq!(RecordHeader::decode(&raw), Some(h));
        assert_eq!(stored_json(&raw), "{\"a\":1}");
        assert_eq!(RecordHeader::decode(&raw[..10]), None);
    }
}
