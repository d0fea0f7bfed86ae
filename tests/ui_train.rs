//! Compile-fail tests of the training gate: a float16-compute model with a plain optimizer.
#[test]
fn ui_train() {
    trybuild::TestCases::new().compile_fail("tests/ui/train-*.rs");
}
