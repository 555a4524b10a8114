//! What the user sees on stderr: progress bars (bytes, rate, ETA), notes, and `--verbose` lines.
//! stdout is kept for results, so scripts can read it.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub quiet: bool,
    pub verbose: bool,
}

impl Ui {
    /// A bar of `total` bytes; hidden with `--quiet` (indicatif also hides it when stderr is not a terminal).
    pub fn bar(&self, total: u64, label: &str) -> ProgressBar {
        let bar = if self.quiet {
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden())
        } else {
            ProgressBar::new(total)
        };
        let style = ProgressStyle::with_template(
            "{msg:>9} [{bar:32.cyan/blue}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(label.to_string());
        bar
    }

    /// A remark for a human (skipped with `--quiet`), printed above the bar.
    pub fn note(&self, bar: Option<&ProgressBar>, message: impl AsRef<str>) {
        if !self.quiet {
            print_above(bar, message.as_ref());
        }
    }

    /// One line per event, with `--verbose` (tests count chunks with it).
    pub fn detail(&self, bar: Option<&ProgressBar>, message: impl AsRef<str>) {
        if self.verbose {
            print_above(bar, message.as_ref());
        }
    }
}

fn print_above(bar: Option<&ProgressBar>, message: &str) {
    match bar {
        Some(bar) => bar.suspend(|| eprintln!("{message}")),
        None => eprintln!("{message}"),
    }
}
