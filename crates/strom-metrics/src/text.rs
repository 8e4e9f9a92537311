//! The Prometheus text exposition format, version 0.0.4: `# HELP` and `# TYPE` lines, then
//! one line per sample, every sample of a family right after its header.

use std::fmt::Write;

use crate::metric::Histogram;

/// The `Content-Type` of a scrape response.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A family's type, as written on its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Writes one exposition. Call [`TextEncoder::family`] once per metric name, then its
/// samples; a second header for the same name is ignored (so two collectors cannot make
/// the exposition invalid), but its samples must still follow their own header.
#[derive(Debug, Default)]
pub struct TextEncoder {
    out: String,
    families: std::collections::HashSet<String>,
}

impl TextEncoder {
    /// An empty exposition.
    pub fn new() -> TextEncoder {
        TextEncoder::default()
    }

    /// Starts the family `name` (for a counter, the name with its `_total` suffix).
    /// Returns whether the header was written (false: it was already).
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> bool {
        if !self.families.insert(name.to_string()) {
            return false;
        }
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.name());
        true
    }

    /// One sample with an integer value.
    pub fn int(&mut self, name: &str, labels: &[(&str, &str)], value: i128) {
        self.line_start(name, labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    /// One sample with a float value.
    pub fn float(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.line_start(name, labels, None);
        self.out.push(' ');
        push_float(&mut self.out, value);
        self.out.push('\n');
    }

    /// A histogram's `_bucket`, `_sum` and `_count` samples under `name`.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], histogram: &Histogram) {
        let buckets = histogram.cumulative();
        let bucket_name = format!("{name}_bucket");
        let mut count = 0;
        for (bound, cumulative) in buckets {
            let mut le = String::new();
            push_float(&mut le, bound);
            self.line_start(&bucket_name, labels, Some(&le));
            let _ = writeln!(self.out, " {cumulative}");
            count = cumulative;
        }
        self.float(&format!("{name}_sum"), labels, histogram.sum());
        // The count is the `+Inf` bucket read above, so the two always agree.
        self.int(&format!("{name}_count"), labels, i128::from(count));
    }

    /// The exposition so far.
    pub fn finish(self) -> String {
        self.out
    }

    fn line_start(&mut self, name: &str, labels: &[(&str, &str)], le: Option<&str>) {
        self.out.push_str(name);
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let mut first = true;
        let le = le.map(|v| ("le", v));
        for (key, value) in labels.iter().copied().chain(le) {
            if !first {
                self.out.push(',');
            }
            first = false;
            self.out.push_str(key);
            self.out.push_str("=\"");
            push_label_value(&mut self.out, value);
            self.out.push('"');
        }
        self.out.push('}');
    }
}

/// Label values escape backslash, double quote and line feed.
fn push_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Help text escapes backslash and line feed.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

fn push_float(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value == f64::INFINITY {
        out.push_str("+Inf");
    } else if value == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_lines() {
        let mut e = TextEncoder::new();
        assert!(e.family("bytes_in_total", Kind::Counter, "Bytes in.\nSecond line"));
        e.int("bytes_in_total", &[("topic", "a\"b\\c\nd")], 42);
        e.int("bytes_in_total", &[], 1);
        assert!(!e.family("bytes_in_total", Kind::Counter, "again"));
        e.family("ratio", Kind::Gauge, "r");
        e.float("ratio", &[("x", "y"), ("z", "w")], 0.25);
        e.float("ratio", &[], f64::NAN);
        let h = Histogram::new(&[1, 2], 0.5);
        h.observe(1);
        h.observe(3);
        e.family("latency_seconds", Kind::Histogram, "h");
        e.histogram("latency_seconds", &[("request", "Produce")], &h);
        let text = e.finish();
        let expected = "\
# HELP bytes_in_total Bytes in.\\nSecond line
# TYPE bytes_in_total counter
bytes_in_total{topic=\"a\\\"b\\\\c\\nd\"} 42
bytes_in_total 1
# HELP ratio r
# TYPE ratio gauge
ratio{x=\"y\",z=\"w\"} 0.25
ratio NaN
# HELP latency_seconds h
# TYPE latency_seconds histogram
latency_seconds_bucket{request=\"Produce\",le=\"0.5\"} 1
latency_seconds_bucket{request=\"Produce\",le=\"1\"} 1
latency_seconds_bucket{request=\"Produce\",le=\"+Inf\"} 2
latency_seconds_sum{request=\"Produce\"} 2
latency_seconds_count{request=\"Produce\"} 2
";
        assert_eq!(text, expected);
    }
}
