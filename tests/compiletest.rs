// Compile-fail cases in `tests/ui`, whose `.stderr` snapshots belong to one rustc, and pass cases
// in `tests/ui-pass`. Regenerate the snapshots with
// `TRYBUILD=overwrite cargo test --test compiletest`, then read them.
#[rustversion::attr(not(stable(1.95)), ignore = "UI snapshots belong to rustc 1.95")]
#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui-pass/*.rs");
}
