//! Log output on stderr: env_logger's lines (`RUST_LOG`, default `info`), or,
//! when `LOG_JSON` is `1`, `true` or `yes` (as the reference reads it; the
//! SDK examples' server launcher sets it), one JSON object a line with the
//! reference's fields: `asctime`, `levelname`, `name`, `filename`, `lineno`,
//! `message`. This module only formats; it logs nothing itself.

use std::io::Write;

use agent_actors::time::{format_local, now_micros};
use serde_json::json;

/// Installs the process's logger; call once, first thing in `main`.
pub fn init() {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if json_wanted(std::env::var("LOG_JSON").ok().as_deref()) {
        builder.format(|buf, record| {
            let line = json_line(
                &asctime(&format_local(now_micros())),
                python_level(record.level()),
                record.target(),
                record.file().unwrap_or(""),
                record.line().unwrap_or(0),
                &record.args().to_string(),
            );
            writeln!(buf, "{line}")
        });
    }
    builder.init();
}

/// Python's level names (it has no TRACE: that is DEBUG there).
fn python_level(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "ERROR",
        log::Level::Warn => "WARNING",
        log::Level::Info => "INFO",
        log::Level::Debug | log::Level::Trace => "DEBUG",
    }
}

/// Whether a `LOG_JSON` value asks for JSON lines.
fn json_wanted(value: Option<&str>) -> bool {
    value.is_some_and(|v| ["1", "true", "yes"].contains(&v.to_ascii_lowercase().as_str()))
}

/// Python's `asctime` (`2026-11-25 13:27:36,327`) from our naive local time
/// (`2026-11-25T13:27:36.327791`).
fn asctime(local: &str) -> String {
    let (date_time, fraction) = local.split_once('.').unwrap_or((local, "000"));
    let millis: String = fraction.chars().chain("000".chars()).take(3).collect();
    format!("{},{millis}", date_time.replacen('T', " ", 1))
}

fn json_line(at: &str, level: &str, name: &str, file: &str, line: u32, message: &str) -> String {
    let filename = file.rsplit('/').next().unwrap_or(file);
    json!({"asctime": at, "levelname": level, "name": name, "filename": filename,
           "lineno": line, "message": message})
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_json_values_are_read_as_the_reference_reads_them() {
        for v in ["1", "true", "TRUE", "yes"] {
            assert!(json_wanted(Some(v)), "{v}");
        }
        for v in [None, Some(""), Some("0"), Some("false"), Some("on")] {
            assert!(!json_wanted(v), "{v:?}");
        }
    }

    #[test]
    fn a_json_line_has_the_reference_fields() {
        assert_eq!(
            asctime("2026-11-25T13:27:36.327791"),
            "2026-11-25 13:27:36,327"
        );
        assert_eq!(python_level(log::Level::Warn), "WARNING");
        let line = json_line(
            "2026-11-25 13:27:36,327",
            "INFO",
            "agent_server::app",
            "src/app.rs",
            42,
            "started \"x\"",
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["levelname"], "INFO");
        assert_eq!(v["name"], "agent_server::app");
        assert_eq!(v["filename"], "app.rs");
        assert_eq!(v["lineno"], 42);
        assert_eq!(v["message"], "started \"x\"");
        assert!(!line.contains('\n'));
    }
}
