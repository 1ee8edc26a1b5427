//! Coroutines written against the runtime renamed to `tio`, in a library (where the attribute
//! reads this package's Cargo.toml as a library's) and in `tests/` (as an integration test's).
//! Built only for tests: the runtime is a dev-dependency.
#![cfg(test)]

mod coroutines;
pub use coroutines::*;

#[cfg(test)]
mod tests {
    #[test]
    fn coroutines_run_through_the_renamed_crate() {
        let lp = tio::Loop::new();
        assert_eq!(lp.run(super::both(1)).unwrap(), (3, 2));
        assert_eq!(lp.run(super::through_path(1)).unwrap(), 20);
    }
}
