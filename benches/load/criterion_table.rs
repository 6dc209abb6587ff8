//! `criterion-table`: the results criterion left under its output
//! directory (`new/benchmark.json` and `new/estimates.json` of each bench)
//! as one markdown table, with the budget next to the benches that
//! have one. It reads files only; it runs nothing.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::Opts;
use crate::report::Report;

/// Budgets that apply to a micro-bench: (id prefix, budget text, ns).
const BUDGETS: [(&str, &str, f64); 2] = [
    (
        "search/page_100_of_100k/",
        "≤ 2 ms (the API page budget, issue 2)",
        2e6,
    ),
    ("terminal/echo_round_trip", "≤ 5 ms p50 (issue 3)", 5e6),
];

fn criterion_dir(opts: &Opts) -> PathBuf {
    if let Some(d) = &opts.criterion_dir {
        return d.clone();
    }
    if let Some(h) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(h);
    }
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => PathBuf::from(t).join("criterion"),
        None => PathBuf::from("target/criterion"),
    }
}

/// Directories named `new` that hold a `benchmark.json`, up to 6 levels down.
fn find(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if depth > 6 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        if p.file_name().is_some_and(|n| n == "new") && p.join("benchmark.json").exists() {
            out.push(p);
        } else {
            find(&p, depth + 1, out);
        }
    }
}

fn read(p: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
}

fn time(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// The table of criterion results.
pub fn table(opts: &Opts) -> Result<Report, String> {
    let dir = criterion_dir(opts);
    let mut found = Vec::new();
    find(&dir, 0, &mut found);
    if found.is_empty() {
        return Err(format!(
            "no criterion results under {}; run `cargo bench --bench store` first",
            dir.display()
        ));
    }
    let mut rows = Vec::new();
    for new in found {
        let (Some(bench), Some(est)) = (
            read(&new.join("benchmark.json")),
            read(&new.join("estimates.json")),
        ) else {
            continue;
        };
        let Some(id) = bench["full_id"].as_str().map(str::to_string) else {
            continue;
        };
        let Some(median) = est["median"]["point_estimate"].as_f64() else {
            continue;
        };
        let rate = match &bench["throughput"] {
            Value::Object(t) => match (t.get("Elements"), t.get("Bytes")) {
                (Some(n), _) => n
                    .as_f64()
                    .map(|n| format!(", {:.0} elements/s", n * 1e9 / median)),
                (_, Some(n)) => n
                    .as_f64()
                    .map(|n| format!(", {:.0} MB/s", n * 1e3 / median)),
                _ => None,
            },
            _ => None,
        }
        .unwrap_or_default();
        rows.push((id, median, rate));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut report = Report::new(
        "criterion micro-benches",
        format!("median of criterion's samples, from {}", dir.display()),
    );
    for (id, median, rate) in rows {
        let value = format!("{}{rate}", time(median));
        match BUDGETS.iter().find(|b| id.starts_with(b.0)) {
            Some((_, text, limit)) => report.budget(&id, value, text, median <= *limit),
            None => report.info(&id, value),
        }
    }
    Ok(report)
}
