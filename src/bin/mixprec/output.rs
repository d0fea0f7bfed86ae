//! Every write to standard output and standard error goes through here, so that a closed or
//! full stdout is handled instead of panicking inside `println!`.
//!
//! - A **broken pipe** (`mixprec compare | head -1`: the reader has gone) ends the program at
//!   once, quietly, with exit status 0, what a Unix tool killed by SIGPIPE would do, except that
//!   the status is 0, not 141 (128 + SIGPIPE), so `set -o pipefail` scripts that stop reading
//!   early do not fail. What was printed so far stands.
//! - **Any other write error** (ENOSPC from `> /dev/full`, EIO) is the one line
//!   `error: cannot write to standard output: <cause>` on stderr and exit status 1.
//!
//! The program exits from here rather than returning an error because the progress lines are
//! written from inside `fit`'s callback, which cannot return one. Nothing is left half-written by
//! exiting: checkpoints and plots are written atomically and renamed into place before the line
//! that reports them is printed, and nothing is printed while a temporary file exists.
//!
//! Writes to stderr ignore errors: there is nowhere left to report them.

use std::fmt;
use std::io::{self, Write};

/// The exit status after a broken pipe on stdout (see the module docs).
pub const BROKEN_PIPE_STATUS: i32 = 0;
/// The exit status after any other error writing to stdout.
pub const WRITE_ERROR_STATUS: i32 = 1;

/// Writes `args` to stdout; on error, exits as the module docs say.
pub fn stdout(args: fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        fail(&e);
    }
}

/// Flushes stdout (at the end of `main`, so an error in the last buffered bytes is not lost).
pub fn flush() {
    if let Err(e) = io::stdout().lock().flush() {
        fail(&e);
    }
}

fn fail(e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(BROKEN_PIPE_STATUS);
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
