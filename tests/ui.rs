//! Compile-fail tests: each file in `tests/ui/` is one type mistake that must not compile, with
//! its expected compiler output checked in next to it (`.stderr`). The toolchain is pinned in
//! `rust-toolchain.toml` so the output stays stable; after reading a diff, regenerate with
//! `TRYBUILD=overwrite cargo test --test ui`.
//!
//! Two `default-policy-*` features at once cannot be expressed here (trybuild does not toggle
//! the crate's features); `.ci/check-feature-exclusion` checks that.

#[test]
fn ui() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
