//! What the command line client prints: aligned tables for people, JSON for programs, and a
//! stdout on which a closed pipe (`strom consume t | head -1`) ends the command quietly.

use std::fmt;
use std::io::{self, BufWriter, Stdout, Write};

use serde::Serialize;

/// `--output`: tables and sentences for people, or JSON for programs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned tables and short sentences.
    #[default]
    Human,
    /// One JSON document (or one JSON object per line for `consume`).
    Json,
}

/// Stdout was closed by the reader; the command stops and exits 0, like `cat`.
#[derive(Debug)]
pub struct StdoutClosed;

impl fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stdout closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Maps a write error: a broken pipe becomes [`StdoutClosed`].
pub fn write_error(e: io::Error) -> anyhow::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        anyhow::Error::new(StdoutClosed)
    } else {
        anyhow::Error::new(e).context("cannot write to stdout")
    }
}

/// A buffered stdout; callers flush at natural pauses (after a poll, at the end).
pub struct Out {
    inner: BufWriter<Stdout>,
}

impl Out {
    pub fn new() -> Out {
        Out {
            inner: BufWriter::with_capacity(64 * 1024, io::stdout()),
        }
    }

    pub fn bytes(&mut self, data: &[u8]) -> anyhow::Result<()> {
        self.inner.write_all(data).map_err(write_error)
    }

    pub fn line(&mut self, text: &str) -> anyhow::Result<()> {
        self.bytes(text.as_bytes())?;
        self.bytes(b"\n")
    }

    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.inner.flush().map_err(write_error)
    }
}

/// Prints one value as pretty JSON and a newline.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    let mut out = Out::new();
    out.line(&text)?;
    out.flush()
}

/// Prints one line of text to stdout.
pub fn print_line(text: &str) -> anyhow::Result<()> {
    let mut out = Out::new();
    out.line(text)?;
    out.flush()
}

/// A table with a header row, columns separated by two spaces, like Kafka's tools print.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, each line ending in a newline, without trailing spaces.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                let width = cell.chars().count();
                match widths.get_mut(i) {
                    Some(w) => *w = (*w).max(width),
                    None => widths.push(width),
                }
            }
        }
        let mut text = String::new();
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&header).chain(self.rows.iter()) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                let width = widths.get(i).copied().unwrap_or(0);
                let pad = width.saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }

    pub fn print(&self) -> anyhow::Result<()> {
        let mut out = Out::new();
        out.bytes(self.render().as_bytes())?;
        out.flush()
    }
}

/// `-` for an absent value, as kafka-consumer-groups.sh prints.
pub fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// One topic's or group's outcome in JSON.
#[derive(Debug, Serialize)]
struct ItemOutcome {
    name: String,
    /// `created`, `deleted`, `kept existing`, `failed`, ...
    outcome: String,
    error: Option<String>,
}

/// Prints per-item outcomes (`Created topic t.`, or a JSON array); an error whose Kafka name
/// is `ignore` counts as the `ignored` outcome. Fails with the first real error, after
/// printing the others on stderr.
pub fn report_items(
    json: bool,
    kind: &str,
    results: Vec<(String, strom_client::Result<()>)>,
    done: &str,
    ignore: &str,
    ignored: &str,
) -> anyhow::Result<()> {
    let mut first_error = None;
    let mut items = Vec::new();
    for (name, result) in results {
        let (outcome, error) = match result {
            Ok(()) => (done, None),
            Err(e) if !ignore.is_empty() && e.kafka_name() == Some(ignore) => (ignored, None),
            Err(e) => ("Failed", Some(e)),
        };
        items.push(ItemOutcome {
            name: name.clone(),
            outcome: outcome.to_ascii_lowercase(),
            error: error.as_ref().map(|e| e.to_string()),
        });
        match error {
            None if !json => print_line(&format!("{outcome} {kind} {name}."))?,
            None => {}
            Some(e) => {
                if first_error.is_some() {
                    eprintln!("strom: error: {e}");
                }
                first_error.get_or_insert(e);
            }
        }
    }
    if json {
        print_json(&items)?;
    }
    match first_error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_and_trims_line_ends() {
        let mut table = Table::new(&["TOPIC", "PARTITION", "LEADER"]);
        table.row(vec!["orders".into(), "0".into(), "1".into()]);
        table.row(vec!["a-much-longer-name".into(), "12".into(), "".into()]);
        assert_eq!(
            table.render(),
            "TOPIC               PARTITION  LEADER\n\
             orders              0          1\n\
             a-much-longer-name  12\n"
        );
    }

    #[test]
    fn empty_table_is_its_header() {
        assert_eq!(Table::new(&["A", "BB"]).render(), "A  BB\n");
    }

    #[test]
    fn or_dash_prints_absent_values_as_a_dash() {
        assert_eq!(or_dash(Some(3)), "3");
        assert_eq!(or_dash::<i64>(None), "-");
    }
}
