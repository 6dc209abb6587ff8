//! JSON text the way Python's `json.dumps` writes it by default (`", "` and `": "`
//! separators, non-ASCII escaped as `\uXXXX`). LiteLLM re-serializes an Anthropic
//! `tool_use.input` this way into `tool_calls[].arguments`, and that text ends up in the
//! `ActionEvent`s clients read, so we match it. Pure formatting; no I/O.

use std::fmt::Write;

use serde_json::Value;

/// `json.dumps(value)` with Python's defaults.
pub fn dumps(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(out, k);
                out.push_str(": ");
                write_value(out, v);
            }
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, n: &serde_json::Number) {
    if n.is_i64() || n.is_u64() {
        out.push_str(&n.to_string());
        return;
    }
    let s = n.to_string();
    // Python's repr writes exponents as e+16 / e-07 and always shows a fraction otherwise.
    match s.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp.trim_start_matches('+')),
            };
            let _ = write!(out, "{mantissa}e{sign}{digits:0>2}");
        }
        None if s.contains('.') => out.push_str(&s),
        None => {
            out.push_str(&s);
            out.push_str(".0");
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7f => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::dumps;
    use serde_json::json;

    #[test]
    fn matches_python_json_dumps() {
        let v = json!({"command": "create", "path": "/a/b", "n": [1, 2.5, true, null], "e": {}});
        assert_eq!(
            dumps(&v),
            r#"{"command": "create", "path": "/a/b", "n": [1, 2.5, true, null], "e": {}}"#
        );
        assert_eq!(dumps(&json!("é 😀\n\"")), r#""\u00e9 \ud83d\ude00\n\"""#);
        assert_eq!(dumps(&json!(1.0)), "1.0");
        assert_eq!(dumps(&json!(1e-7)), "1e-07");
        assert_eq!(dumps(&json!([])), "[]");
    }
}
