//! Time stamps in the two formats the reference emits, and parsing of the
//! ISO date-times clients send as filters.
//!
//! Conversation events carry naive *local* time (`2026-11-25T13:27:36.327791`),
//! conversation info and bash events carry UTC with a `Z`. Unlike Python's
//! `isoformat()` we always print six fractional digits, so that the strings
//! sort the way the times do (the Python client orders events by the raw
//! string). Nothing here reads the clock of another process or the network.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Seconds since the epoch as a float, as Python's `time.time()` reports it.
pub fn now_epoch_f64() -> f64 {
    now_micros() as f64 / 1_000_000.0
}

/// Broken-down civil time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micros: u32,
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn civil_from_micros(micros: i64) -> Civil {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: sod / 3600,
        minute: (sod % 3600) / 60,
        second: sod % 60,
        micros: frac,
    }
}

fn micros_from_civil(c: &Civil) -> i64 {
    let days = days_from_civil(c.year, c.month, c.day);
    (days * 86_400 + i64::from(c.hour) * 3600 + i64::from(c.minute) * 60 + i64::from(c.second))
        * 1_000_000
        + i64::from(c.micros)
}

fn format_civil(c: &Civil) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.micros
    )
}

/// The local time zone's offset from UTC, in seconds, at the given instant.
fn local_offset_secs(micros: i64) -> i64 {
    let secs = micros.div_euclid(1_000_000) as libc::time_t;
    // SAFETY: localtime_r only writes into the `tm` we own; a zeroed tm is a
    // valid value of that plain-data struct.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff
    }
}

/// Naive local time with six fractional digits, e.g. `2026-11-25T13:27:36.327791`.
pub fn format_local(micros: i64) -> String {
    let offset = local_offset_secs(micros) * 1_000_000;
    format_civil(&civil_from_micros(micros + offset))
}

/// UTC with six fractional digits and a `Z`, e.g. `2026-11-25T13:27:36.119271Z`.
pub fn format_utc(micros: i64) -> String {
    let mut s = format_civil(&civil_from_micros(micros));
    s.push('Z');
    s
}

/// The current time in [`format_utc`] form.
pub fn now_utc() -> String {
    format_utc(now_micros())
}

/// Hands out strictly increasing instants, so that the time stamps of one
/// conversation's events never repeat or go backwards, whatever the wall
/// clock does between two appends.
#[derive(Debug, Default, Clone)]
pub struct MonotonicClock {
    last: i64,
}

impl MonotonicClock {
    /// A clock that will never return an instant at or before `last`.
    pub fn starting_after(last: i64) -> MonotonicClock {
        MonotonicClock { last }
    }

    /// The next instant, in microseconds since the epoch.
    pub fn next_micros(&mut self) -> i64 {
        let now = now_micros();
        self.last = if now > self.last { now } else { self.last + 1 };
        self.last
    }

    /// The next instant as a naive local time stamp.
    pub fn next_local(&mut self) -> String {
        format_local(self.next_micros())
    }
}

/// A date-time as a client sent it: wall-clock fields plus an optional offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedDateTime {
    civil_micros: i64,
    offset_secs: Option<i64>,
}

impl ParsedDateTime {
    /// Parses `YYYY-MM-DD[THH:MM[:SS[.ffffff]]][Z|±HH[:MM]]` (a space may
    /// replace the `T`), as pydantic accepts for datetime query parameters.
    pub fn parse(input: &str) -> Option<ParsedDateTime> {
        let s = input.trim();
        let b = s.as_bytes();
        if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let t = s.get(r)?;
            if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            t.parse().ok()
        };
        let year = i64::from(num(0..4)?);
        let month = num(5..7)?;
        let day = num(8..10)?;
        let mut c = Civil {
            year,
            month,
            day,
            hour: 0,
            minute: 0,
            second: 0,
            micros: 0,
        };
        let mut rest = &s[10..];
        if let Some(r) = rest.strip_prefix(['T', 't', ' ']) {
            let rb = r.as_bytes();
            if rb.len() < 5 || rb[2] != b':' {
                return None;
            }
            c.hour = r.get(0..2)?.parse().ok()?;
            c.minute = r.get(3..5)?.parse().ok()?;
            rest = &r[5..];
            if let Some(r2) = rest.strip_prefix(':') {
                c.second = r2.get(0..2)?.parse().ok()?;
                rest = &r2[2..];
                if let Some(r3) = rest.strip_prefix(['.', ',']) {
                    let digits: String = r3.chars().take_while(|ch| ch.is_ascii_digit()).collect();
                    if digits.is_empty() {
                        return None;
                    }
                    let mut padded = digits.clone();
                    padded.truncate(6);
                    while padded.len() < 6 {
                        padded.push('0');
                    }
                    c.micros = padded.parse().ok()?;
                    rest = &r3[digits.len()..];
                }
            }
        }
        if !(1..=12).contains(&c.month)
            || c.day == 0
            || c.day > days_in_month(c.year, c.month)
            || c.hour > 23
            || c.minute > 59
            || c.second > 59
        {
            return None;
        }
        let offset_secs = match rest {
            "" => None,
            "Z" | "z" => Some(0),
            _ => {
                let sign = match rest.as_bytes()[0] {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let t = &rest[1..];
                let (h, m) = match t.len() {
                    2 => (t.parse::<i64>().ok()?, 0),
                    4 => (t[0..2].parse::<i64>().ok()?, t[2..4].parse::<i64>().ok()?),
                    5 if t.as_bytes()[2] == b':' => {
                        (t[0..2].parse::<i64>().ok()?, t[3..5].parse::<i64>().ok()?)
                    }
                    _ => return None,
                };
                if h > 23 || m > 59 {
                    return None;
                }
                Some(sign * (h * 3600 + m * 60))
            }
        };
        Some(ParsedDateTime {
            civil_micros: micros_from_civil(&c),
            offset_secs,
        })
    }

    /// The instant in microseconds since the epoch; a naive value is taken as
    /// local time, as the reference does.
    pub fn to_micros(&self) -> i64 {
        match self.offset_secs {
            Some(off) => self.civil_micros - off * 1_000_000,
            None => self.civil_micros - local_offset_secs(self.civil_micros) * 1_000_000,
        }
    }

    /// The value as a naive local time stamp in event format: aware values
    /// are converted to local time, naive ones are kept as given.
    pub fn to_local_string(&self) -> String {
        match self.offset_secs {
            Some(_) => format_local(self.to_micros()),
            None => format_civil(&civil_from_micros(self.civil_micros)),
        }
    }

    /// The value in UTC `Z` form; a naive value is taken as UTC (the bash
    /// event filters of the reference compare naive input against UTC names).
    pub fn to_utc_string_naive_as_utc(&self) -> String {
        let micros = match self.offset_secs {
            Some(off) => self.civil_micros - off * 1_000_000,
            None => self.civil_micros,
        };
        format_utc(micros)
    }
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_format_is_fixed_width() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            format_utc(1_795_613_267_504_498),
            "2026-11-25T13:27:47.504498Z"
        );
    }

    #[test]
    fn civil_round_trip() {
        for m in [0i64, 1, -1, 951_782_400_000_000, 4_102_444_800_123_456] {
            assert_eq!(micros_from_civil(&civil_from_micros(m)), m);
        }
    }

    #[test]
    fn monotonic_clock_never_repeats() {
        let mut c = MonotonicClock::starting_after(i64::MAX / 2);
        let a = c.next_micros();
        let b = c.next_micros();
        assert!(b > a);
    }

    #[test]
    fn parse_forms() {
        let p = ParsedDateTime::parse("2026-11-25T13:27:47.5Z").unwrap();
        assert_eq!(
            p.to_utc_string_naive_as_utc(),
            "2026-11-25T13:27:47.500000Z"
        );
        let p = ParsedDateTime::parse("2026-11-25T15:27:47+02:00").unwrap();
        assert_eq!(
            p.to_utc_string_naive_as_utc(),
            "2026-11-25T13:27:47.000000Z"
        );
        let p = ParsedDateTime::parse("2026-11-25 13:27").unwrap();
        assert_eq!(p.to_local_string(), "2026-11-25T13:27:00.000000");
        assert!(ParsedDateTime::parse("2026-02-30T00:00:00").is_none());
        assert!(ParsedDateTime::parse("yesterday").is_none());
        assert!(ParsedDateTime::parse("2026-11-25T13:27:47+2").is_none());
    }
}
