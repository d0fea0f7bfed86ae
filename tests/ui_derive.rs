//! Compile errors of `#[derive(Module)]`, pinned with trybuild: one file per mistake in
//! `tests/ui/derive-*.rs`, its expected output next to it in `.stderr`. Regenerate with
//! `TRYBUILD=overwrite cargo test --test ui_derive` and read the diff before committing.

#[test]
fn derive_module_errors() {
    trybuild::TestCases::new().compile_fail("tests/ui/derive-*.rs");
}
