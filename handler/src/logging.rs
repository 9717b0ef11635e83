//! Log hygiene for input caguard does not control (#12): a log line never holds
//! more than a bounded slice of request input, and each source (an endpoint, a
//! kind of refusal) may write only so many lines a minute, so one anonymous
//! request, or a flood of them, cannot fill the logs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most characters of outside input a log line carries.
pub const MAX_INPUT_CHARS: usize = 300;
/// Lines each source may log per window before the rest are counted, not written.
pub const LINES_PER_WINDOW: u32 = 20;
const WINDOW: Duration = Duration::from_secs(60);

/// `s`, cut to [`MAX_INPUT_CHARS`] characters with a note of how much was left out.
pub fn bounded(s: &str) -> String {
    let mut chars = s.char_indices();
    match chars.nth(MAX_INPUT_CHARS) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}… ({} more bytes)", &s[..cut], s.len() - cut),
    }
}

struct Window {
    started: Instant,
    written: u32,
    suppressed: u32,
}

static WINDOWS: Mutex<Option<HashMap<String, Window>>> = Mutex::new(None);
/// Sources tracked at once; a flood of made-up source names cannot grow the map.
const MAX_SOURCES: usize = 256;

/// Whether `source` may log a line now. When a new window opens after lines were
/// suppressed, the caller is told how many, to say so once.
pub fn allow(source: &str) -> (bool, u32) {
    let mut guard = WINDOWS.lock().unwrap_or_else(|p| p.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    let now = Instant::now();
    if !map.contains_key(source) && map.len() >= MAX_SOURCES {
        map.retain(|_, w| now.duration_since(w.started) < WINDOW);
        if map.len() >= MAX_SOURCES {
            return (false, 0);
        }
    }
    let w = map.entry(source.to_string()).or_insert(Window { started: now, written: 0, suppressed: 0 });
    let mut reported = 0;
    if now.duration_since(w.started) >= WINDOW {
        reported = w.suppressed;
        *w = Window { started: now, written: 0, suppressed: 0 };
    }
    if w.written < LINES_PER_WINDOW {
        w.written += 1;
        (true, reported)
    } else {
        w.suppressed += 1;
        (false, reported)
    }
}

/// A warning about outside input: bounded, and rate-limited per `source`.
pub fn warn(source: &str, message: &str) {
    let (ok, suppressed) = allow(source);
    if ok {
        if suppressed > 0 {
            tracing::warn!(source, "{suppressed} similar lines were suppressed in the last minute");
        }
        tracing::warn!(source, "{}", bounded(message));
    }
}

/// Where each log line goes under the Functions host, so that it reaches
/// Application Insights with its real severity. The host (azure-functions-host
/// `Workers/ProcessManagement/WorkerProcess.cs`, `ParseErrorMessageAndLog`) logs
/// stdout as Information and classifies stderr by words: a line containing "warn"
/// is a Warning, else one containing "error", "fail" or "severe" an Error, else
/// Information. So INFO and below go to stdout (an INFO line reading "0 failed"
/// stays Information), WARN to stderr (its level field says WARN), and ERROR to
/// stderr with any "warn" in its text broken by a word joiner (U+2060), which
/// would otherwise make the host call an error a warning.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostWriter;

/// One line's destination.
pub enum HostLine {
    Out(std::io::Stdout),
    Warn(std::io::Stderr),
    Error(std::io::Stderr),
}

impl std::io::Write for HostLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            HostLine::Out(o) => o.write(buf),
            HostLine::Warn(e) => e.write(buf),
            HostLine::Error(e) => {
                // tracing's fmt layer writes each formatted line in one call.
                e.write_all(unwarn(&String::from_utf8_lossy(buf)).as_bytes())?;
                Ok(buf.len())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            HostLine::Out(o) => o.flush(),
            HostLine::Warn(e) | HostLine::Error(e) => e.flush(),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for HostWriter {
    type Writer = HostLine;

    fn make_writer(&'a self) -> Self::Writer {
        HostLine::Error(std::io::stderr())
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        match *meta.level() {
            tracing::Level::ERROR => HostLine::Error(std::io::stderr()),
            tracing::Level::WARN => HostLine::Warn(std::io::stderr()),
            _ => HostLine::Out(std::io::stdout()),
        }
    }
}

/// `line` with every "warn" (any case) broken by a word joiner, so the host
/// classifies it by its "ERROR" level rather than by a word in its message.
pub fn unwarn(line: &str) -> String {
    let lower = line.to_ascii_lowercase();
    let mut out = String::with_capacity(line.len());
    let mut last = 0;
    for (i, _) in lower.match_indices("warn") {
        out.push_str(&line[last..i + 1]);
        out.push('\u{2060}');
        last = i + 1;
    }
    out.push_str(&line[last..]);
    out
}

/// How the Functions host would classify a line the handler wrote to stderr
/// (the rule `HostWriter` is built around; tests check lines against it).
pub fn host_level_of_stderr(line: &str) -> &'static str {
    let l = line.to_ascii_lowercase();
    if l.contains("warn") {
        "Warning"
    } else if l.contains("error") || l.contains("fail") || l.contains("severe") {
        "Error"
    } else {
        "Information"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_stay_errors_for_the_host() {
        let line = r#"{"level":"ERROR","fields":{"message":"2 warnings ignored, the WARN list failed"}}"#;
        assert_eq!(host_level_of_stderr(line), "Warning", "the host's own rule, unfixed");
        let fixed = unwarn(line);
        assert_eq!(host_level_of_stderr(&fixed), "Error");
        assert_eq!(fixed.replace('\u{2060}', ""), line, "only a word joiner is added");
        assert_eq!(host_level_of_stderr(r#"{"level":"WARN","fields":{"message":"x"}}"#), "Warning");
    }

    #[test]
    fn bounded_cuts_long_input_on_a_character_boundary() {
        assert_eq!(bounded("short"), "short");
        let long = "é".repeat(1000);
        let b = bounded(&long);
        assert!(b.starts_with(&"é".repeat(MAX_INPUT_CHARS)) && b.ends_with("(1400 more bytes)"), "{b}");
    }

    #[test]
    fn a_source_logs_at_most_its_quota_per_window() {
        let source = "test-source-quota";
        let allowed = (0..1000).filter(|_| allow(source).0).count();
        assert_eq!(allowed, LINES_PER_WINDOW as usize);
        assert!(allow("test-source-other").0, "other sources are not affected");
    }
}
