//! Compile-fail tests: each file in `tests/ui/` is one type mistake that must not compile, with
//! its expected compiler output checked in next to it (`.stderr`); each file in `tests/ui/pass/`
//! is the corrected or allowed form, which must compile and run. The toolchain is pinned in
//! `rust-toolchain.toml` so the output stays stable; after reading a diff, regenerate with
//! `TRYBUILD=overwrite cargo test --test ui`.
//!
//! Two `default-policy-*` features at once cannot be expressed here (trybuild does not toggle
//! the crate's features); `.ci/check-feature-exclusion` checks that.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
