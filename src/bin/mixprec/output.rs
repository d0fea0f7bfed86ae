//! Every write to standard output and standard error goes through here, so that a closed or
//! full stdout is handled instead of panicking inside `println!`.
//!
//! - A **broken pipe** (`mixprec train --save m.safetensors | head -1`: the reader has gone)
//!   silences stdout for the rest of the run: later writes are dropped, and the command goes on
//!   to do what it was asked (train, write `--save` and `--plot`), then exits with its usual
//!   status. A Unix tool would die of SIGPIPE here; mixprec does not, because dying would lose the
//!   checkpoint or plot the run was for and report nothing.
//! - **Any other write error** (ENOSPC from `> /dev/full`, EIO) is the one line
//!   `error: cannot write to standard output: <cause>` on stderr and exit status 1, at once
//!   (before anything further is written: checkpoints and plots are renamed into place before the
//!   line that reports them is printed, so no file is left half-written).
//!
//! The program exits from here rather than returning an error because the progress lines are
//! written from inside `fit`'s callback, which cannot return one.
//!
//! Writes to stderr ignore errors: there is nowhere left to report them.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// The exit status after any error writing to stdout other than a broken pipe.
pub const WRITE_ERROR_STATUS: i32 = 1;

/// Set when stdout's reader has gone; later writes are dropped.
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

/// Writes `args` to stdout; on error, as the module docs say.
pub fn stdout(args: fmt::Arguments<'_>) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        fail(&e);
    }
}

/// Flushes stdout (at the end of `main`, so an error in the last buffered bytes is not lost).
pub fn flush() {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = io::stdout().lock().flush() {
        fail(&e);
    }
}

fn fail(e: &io::Error) {
    if e.kind() == io::ErrorKind::BrokenPipe {
        STDOUT_GONE.store(true, Ordering::Relaxed);
        return;
    }
    stderr(format_args!(
        "error: cannot write to standard output: {e}\n"
    ));
    std::process::exit(WRITE_ERROR_STATUS);
}

/// Writes `args` to stderr, ignoring errors.
pub fn stderr(args: fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(args);
}

/// `println!` to stdout through [`stdout`].
macro_rules! outln {
    () => {
        $crate::output::stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` through [`stderr`].
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {errln, outln};
