//! Progress bars with a rate on stderr for long work (producing a file, consuming N
//! records, resetting many offsets); hidden under `--quiet`, `--output json`, or when
//! stdout or stderr is not a terminal, so scripts and pipes see clean output.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// A bar, or nothing at all when progress is off.
pub struct Progress {
    bar: Option<ProgressBar>,
}

/// Whether bars may draw: a person is watching both streams.
pub fn wanted(quiet: bool, json: bool) -> bool {
    !quiet && !json && std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
}

impl Progress {
    pub fn off() -> Progress {
        Progress { bar: None }
    }

    /// A bar over `total` bytes (a file being produced).
    pub fn bytes(enabled: bool, total: u64, what: &str) -> Progress {
        Self::styled(
            enabled,
            Some(total),
            what,
            "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}) {prefix}",
        )
    }

    /// A bar over `total` items, or a spinner with a count and rate when unbounded.
    pub fn items(enabled: bool, total: Option<u64>, what: &str) -> Progress {
        let template = if total.is_some() {
            "{msg} [{bar:30}] {pos}/{len} ({rate}) {prefix}"
        } else {
            "{spinner} {msg} {pos} ({rate}) {prefix}"
        };
        Self::styled(enabled, total, what, template)
    }

    fn styled(enabled: bool, total: Option<u64>, what: &str, template: &str) -> Progress {
        if !enabled {
            return Progress::off();
        }
        let bar = match total {
            Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            // indicatif's own {per_sec} prints four decimals, and its estimator reads 0 while
            // records arrive in large steps (a consumer hands over whole fetches); the average
            // since the start is steady and honest for a bounded job.
            let style = style
                .with_key(
                    "rate",
                    |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let elapsed_s = state.elapsed().as_secs_f64();
                        let rate = if elapsed_s > 0.0 {
                            state.pos() as f64 / elapsed_s
                        } else {
                            0.0
                        };
                        let _ = write!(w, "{rate:.0}/s");
                    },
                )
                .progress_chars("=> ");
            bar.set_style(style);
        }
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress { bar: Some(bar) }
    }

    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    pub fn set_position(&self, position: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(position);
        }
    }

    /// A short status after the counters (records produced while bytes are counted).
    pub fn set_note(&self, note: String) {
        if let Some(bar) = &self.bar {
            bar.set_prefix(note);
        }
    }

    /// Runs `f` with the bar hidden, so lines written to the terminal do not tear it.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
