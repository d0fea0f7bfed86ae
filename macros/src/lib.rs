//! Procedural macros for [mixprec](https://docs.rs/mixprec): the mixed-precision plumbing of
//! layers and models. Use them through the re-exports in `mixprec`, where they are documented
//! with runnable examples.
