//! Progress of `fit`: indicatif bars on a terminal, plain lines otherwise.

use crate::output::outln;
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use mixprec::train::{BatchLogs, Callback, EpochLogs};

/// Draws progress for one training run.
pub struct Progress {
    epochs: usize,
    /// One bar per epoch (`train`) or one for the whole run (`compare`).
    per_epoch: bool,
    tty: bool,
    bar: Option<ProgressBar>,
    name: String,
}

impl Progress {
    /// A bar per epoch on a terminal's stderr, and a line per epoch on stdout.
    pub fn per_epoch(epochs: usize) -> Self {
        Progress {
            epochs,
            per_epoch: true,
            // The bar is drawn on stderr, so it is wanted when stderr is a terminal.
            tty: std::io::stderr().is_terminal(),
            bar: None,
            name: String::new(),
        }
    }

    /// One bar for the run on a terminal's stderr, or nothing when stderr is not a terminal.
    pub fn per_run(epochs: usize) -> Self {
        Progress {
            per_epoch: false,
            ..Self::per_epoch(epochs)
        }
    }

    pub fn start(&mut self, name: &str) {
        self.name = name.to_string();
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn style() -> ProgressStyle {
        ProgressStyle::with_template("{prefix:>16} [{bar:30}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> ")
    }
}

impl Callback for Progress {
    fn on_train_begin(&mut self, epochs: usize, batches: usize) {
        if self.tty {
            let len = if self.per_epoch {
                batches
            } else {
                epochs * batches
            };
            let bar = ProgressBar::new(len as u64).with_style(Self::style());
            bar.set_prefix(if self.per_epoch {
                format!("epoch 1/{epochs}")
            } else {
                self.name.clone()
            });
            self.bar = Some(bar);
        }
    }

    fn on_batch_end(&mut self, logs: &BatchLogs) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            let acc = logs
                .accuracy
                .map_or(String::new(), |a| format!(" acc {:.1}%", 100.0 * a));
            let speed = logs.samples as f64 / logs.seconds.max(1e-9);
            bar.set_message(format!("loss {:.4}{acc} {speed:.0} samples/s", logs.loss));
        }
    }

    fn on_epoch_end(&mut self, logs: &EpochLogs) {
        let acc = logs
            .accuracy
            .map_or(String::new(), |a| format!("  acc {:.2}%", 100.0 * a));
        let line = format!(
            "epoch {:>3}/{}  loss {:.4}{acc}  {:.0} samples/s",
            logs.epoch, self.epochs, logs.loss, logs.samples_per_sec
        );
        match (&self.bar, self.per_epoch) {
            (Some(bar), true) => {
                // The epoch line goes to stdout like every other line of the report, with the
                // bar hidden while it is written.
                bar.suspend(|| outln!("{line}"));
                bar.reset();
                bar.set_prefix(format!("epoch {}/{}", logs.epoch + 1, self.epochs));
            }
            (None, true) => outln!("{line}"),
            _ => {}
        }
    }
}
