//! A `std::sync::MutexGuard` or a `RefCell` borrow held across `yield_!` can hang the loop (the
//! holder is suspended; the next to lock blocks the loop's thread). Clippy's
//! `await_holding_lock` and `await_holding_refcell_ref` see it, as the expansion's `.await` sits
//! at the `yield_!`. trybuild cannot run clippy, so this runs `cargo clippy` on a small crate
//! written here; it is skipped where clippy is not installed.

use std::path::Path;
use std::process::Command;

const LIB: &str = r#"
use std::cell::RefCell;
use std::sync::Mutex;

#[tinyio::coroutine]
pub fn holds_lock(m: &'static Mutex<u32>) -> u32 {
    let guard = m.lock().unwrap();
    yield_!(tinyio::sleep(std::time::Duration::ZERO));
    *guard
}

#[tinyio::coroutine]
pub fn holds_borrow(c: &'static RefCell<u32>) -> u32 {
    let borrow = c.borrow_mut();
    yield_!();
    *borrow
}

#[tinyio::coroutine]
pub fn lets_go_first(m: &'static Mutex<u32>) -> u32 {
    let value = *m.lock().unwrap();
    yield_!();
    value
}
"#;

#[test]
fn guards_held_across_a_yield_are_linted_at_the_yield() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let has_clippy = Command::new(&cargo)
        .args(["clippy", "--version"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !has_clippy {
        eprintln!("skipped: `cargo clippy` is not installed");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture = Path::new(env!("CARGO_TARGET_TMPDIR")).join("clippy-await-holding");
    std::fs::create_dir_all(fixture.join("src")).unwrap();
    // The runtime under its package name, whatever it is, as `tinyio`.
    let runtime = std::fs::read_to_string(root.join("tinyio/Cargo.toml")).unwrap();
    let package = runtime
        .lines()
        .find_map(|line| line.strip_prefix("name = "))
        .expect("the runtime's package name");
    let manifest = format!(
        "[package]\nname = \"clippy-await-holding\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\
         publish = false\n\n[dependencies]\ntinyio = {{ package = {package}, path = {:?} }}\n\n\
         [workspace]\n",
        root.join("tinyio")
    );
    std::fs::write(fixture.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(fixture.join("src/lib.rs"), LIB).unwrap();
    // The workspace's lock file: the same versions, nothing to resolve or fetch.
    std::fs::copy(root.join("Cargo.lock"), fixture.join("Cargo.lock")).unwrap();
    let output = Command::new(&cargo)
        .args(["clippy", "--offline", "--quiet", "--color=never"])
        .current_dir(&fixture)
        .env("CARGO_TARGET_DIR", fixture.join("target"))
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{report}");
    // Each lint names the binding, then the `yield_!` it is held through.
    for (lint, held, through) in [
        ("this `MutexGuard` is held across an await point", 7, 8),
        ("this `RefCell` reference is held across an await point", 14, 15),
    ] {
        let at = report.find(lint).unwrap_or_else(|| panic!("`{lint}` missing in:\n{report}"));
        let rest = &report[at..];
        assert!(rest.contains(&format!("src/lib.rs:{held}:")), "{rest}");
        let note = rest.find("these are all the await points").unwrap();
        assert!(rest[note..].contains(&format!("src/lib.rs:{through}:")), "{rest}");
    }
    assert_eq!(report.matches("held across an await point").count(), 2, "{report}");
}
