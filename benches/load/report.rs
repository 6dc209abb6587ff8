//! Figures and their presentation: latency summaries (p50/p90/p99), the
//! per-scenario table (figure, budget, verdict) printed as markdown, and the
//! list of failed correctness checks that makes the tool exit non-zero.
//! A missed budget is reported, never turned into a failure: budgets are
//! for people to read, correctness is for the exit code.

use std::fmt::Write as _;
use std::time::Duration;

/// Percentiles of a set of durations.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    /// Samples.
    pub n: usize,
    /// Mean, ms.
    pub mean: f64,
    /// Median, ms.
    pub p50: f64,
    /// 90th percentile, ms.
    pub p90: f64,
    /// 99th percentile, ms.
    pub p99: f64,
    /// Largest, ms.
    pub max: f64,
}

impl Summary {
    /// Summarizes samples given in microseconds.
    pub fn of_micros(mut micros: Vec<u64>) -> Summary {
        if micros.is_empty() {
            return Summary::default();
        }
        micros.sort_unstable();
        let n = micros.len();
        let at = |q: f64| micros[((n as f64 * q).ceil() as usize).clamp(1, n) - 1] as f64 / 1000.0;
        Summary {
            n,
            mean: micros.iter().sum::<u64>() as f64 / n as f64 / 1000.0,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: micros[n - 1] as f64 / 1000.0,
        }
    }

    /// Summarizes durations.
    pub fn of(durations: &[Duration]) -> Summary {
        Summary::of_micros(durations.iter().map(|d| d.as_micros() as u64).collect())
    }

    /// `mean / p50 / p90 / p99 / max` in ms.
    pub fn line(&self) -> String {
        format!(
            "mean {} / p50 {} / p90 {} / p99 {} / max {} ms (n={})",
            ms(self.mean),
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.max),
            self.n
        )
    }
}

/// A number of milliseconds with sensible precision.
pub fn ms(v: f64) -> String {
    if v < 1.0 {
        format!("{v:.3}")
    } else if v < 100.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.0}")
    }
}

/// KiB as MiB text.
pub fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

/// How a figure compares with its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within budget.
    Met,
    /// Over budget.
    Missed,
    /// No budget: for information.
    Info,
}

impl Verdict {
    /// `Met` when `ok`, else `Missed`.
    pub fn of(ok: bool) -> Verdict {
        if ok { Verdict::Met } else { Verdict::Missed }
    }

    fn text(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "**missed**",
            Verdict::Info => "",
        }
    }
}

/// The figures of one scenario.
#[derive(Debug, Default)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// How it was run (options).
    pub setup: String,
    rows: Vec<(String, String, String, Option<Verdict>)>,
    notes: Vec<String>,
    failures: Vec<String>,
}

impl Report {
    /// An empty report.
    pub fn new(scenario: &str, setup: String) -> Report {
        Report {
            scenario: scenario.to_string(),
            setup,
            ..Default::default()
        }
    }

    /// A figure without a budget.
    pub fn info(&mut self, what: &str, value: String) {
        self.rows
            .push((what.to_string(), value, String::new(), Some(Verdict::Info)));
    }

    /// A figure with its budget and whether it is met.
    pub fn budget(&mut self, what: &str, value: String, budget: &str, ok: bool) {
        self.rows.push((
            what.to_string(),
            value,
            budget.to_string(),
            Some(Verdict::of(ok)),
        ));
    }

    /// A line of explanation under the table.
    pub fn note(&mut self, text: String) {
        self.notes.push(text);
    }

    /// A failed correctness check (makes the run fail).
    pub fn fail(&mut self, text: String) {
        self.failures.push(text);
    }

    /// Whether every correctness check passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// The report as markdown: a heading, the setup, the table, notes and failures.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "### {}\n", self.scenario);
        if !self.setup.is_empty() {
            let _ = writeln!(out, "Setup: {}\n", self.setup);
        }
        let _ = writeln!(out, "| figure | value | budget | verdict |");
        let _ = writeln!(out, "| --- | --- | --- | --- |");
        for (what, value, budget, verdict) in &self.rows {
            let budget = if budget.is_empty() { "—" } else { budget };
            let _ = writeln!(
                out,
                "| {what} | {value} | {budget} | {} |",
                verdict.map_or("", Verdict::text)
            );
        }
        let correctness = if self.failures.is_empty() {
            "passed".to_string()
        } else {
            format!("**FAILED** ({} problem(s))", self.failures.len())
        };
        let _ = writeln!(out, "| correctness checks | {correctness} | all pass | |");
        out.push('\n');
        for n in &self.notes {
            let _ = writeln!(out, "- {n}");
        }
        for f in self.failures.iter().take(50) {
            let _ = writeln!(out, "- FAILURE: {f}");
        }
        if self.failures.len() > 50 {
            let _ = writeln!(out, "- … and {} more failures", self.failures.len() - 50);
        }
        out
    }
}
