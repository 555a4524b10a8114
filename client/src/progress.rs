//! What the user sees on stderr: progress bars (bytes, rate, ETA) on a terminal, a plain progress line every
//! few seconds elsewhere (CI logs), notes, and `--verbose` lines. stdout is kept for results.

use std::io::IsTerminal;
use std::sync::mpsc;
use std::time::Duration;

use indicatif::{BinaryBytes, HumanDuration, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub quiet: bool,
    pub verbose: bool,
    /// How often a plain progress line is printed when stderr is not a terminal.
    pub plain_every: Duration,
}

impl Ui {
    /// Progress over `total` bytes: a bar on a terminal, plain lines otherwise, nothing with `--quiet`.
    pub fn progress(&self, total: u64, label: &str) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let target = if self.quiet || !terminal { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        let style = ProgressStyle::with_template(
            "{msg:>9} [{bar:32.cyan/blue}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(label.to_string());
        let ticker = (!self.quiet && !terminal).then(|| spawn_ticker(bar.clone(), label, self.plain_every));
        Progress { bar, label: label.to_string(), ticker }
    }

    /// A remark for a human (skipped with `--quiet`), printed above the bar.
    pub fn note(&self, progress: Option<&Progress>, message: impl AsRef<str>) {
        if !self.quiet {
            print_above(progress, message.as_ref());
        }
    }

    /// One line per event, with `--verbose` (tests count chunks with it).
    pub fn detail(&self, progress: Option<&Progress>, message: impl AsRef<str>) {
        if self.verbose {
            print_above(progress, message.as_ref());
        }
    }
}

/// A bar, or its plain-line stand-in; cloned by every task that moves it.
#[derive(Clone)]
pub struct Progress {
    bar: ProgressBar,
    label: String,
    /// Dropping the last sender stops the plain-line thread.
    ticker: Option<mpsc::Sender<()>>,
}

impl Progress {
    pub fn inc(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    pub fn set_position(&self, bytes: u64) {
        self.bar.set_position(bytes);
    }

    /// Takes back bytes counted for an attempt that failed and will be sent again.
    pub fn rewind(&self, bytes: u64) {
        self.bar.set_position(self.bar.position().saturating_sub(bytes));
    }

    /// Clears the bar; in plain mode prints the last line at once, so a log always shows the end.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
        if let Some(ticker) = &self.ticker {
            let _ = ticker.send(());
            eprintln!("{}", plain_line(&self.label, &self.bar));
        }
    }
}

fn spawn_ticker(bar: ProgressBar, label: &str, every: Duration) -> mpsc::Sender<()> {
    let (stop, stopped) = mpsc::channel::<()>();
    let label = label.to_string();
    std::thread::spawn(move || {
        while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
            eprintln!("{}", plain_line(&label, &bar));
        }
    });
    stop
}

/// `upl: uploading 32.0 MiB of 95.4 MiB (33%), 31.2 MiB/s, ETA 3 seconds`.
fn plain_line(label: &str, bar: &ProgressBar) -> String {
    let (done, total) = (bar.position(), bar.length().unwrap_or(0));
    let percent = crate::output::percent(done, total);
    let mut line = format!("upl: {label} {} of {} ({percent})", BinaryBytes(done), BinaryBytes(total));
    if !bar.is_finished() && done < total {
        line.push_str(&format!(", {}/s, ETA {}", BinaryBytes(bar.per_sec() as u64), HumanDuration(bar.eta())));
    }
    line
}

fn print_above(progress: Option<&Progress>, message: &str) {
    match progress {
        Some(progress) => progress.bar.suspend(|| eprintln!("{message}")),
        None => eprintln!("{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_say_how_far_and_how_fast() {
        let bar = ProgressBar::hidden();
        bar.set_length(4 * 1024 * 1024);
        bar.set_position(1024 * 1024);
        let line = plain_line("uploading", &bar);
        assert!(line.starts_with("upl: uploading 1.00 MiB of 4.00 MiB (25%), "), "{line}");
        assert!(line.contains("/s, ETA "), "{line}");
        bar.set_position(4 * 1024 * 1024);
        bar.finish();
        assert_eq!(plain_line("uploading", &bar), "upl: uploading 4.00 MiB of 4.00 MiB (100%)");
        let empty = ProgressBar::hidden();
        empty.set_length(0);
        assert_eq!(plain_line("download", &empty), "upl: download 0 B of 0 B (100%)");
    }
}
