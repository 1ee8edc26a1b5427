//! The README is the guide on GitHub and crates.io and, through its packaged copy
//! `tinyio/README.md`, the crate page on docs.rs (where its code blocks are the crate's doc
//! tests). These tests keep the copy equal to the original, and the README's docs.rs links
//! pointing at the items that `tinyio/src/lib.rs` links for rustdoc, which rustdoc checks.

use std::collections::BTreeMap;

const README: &str = include_str!("../README.md");
const PACKAGED_README: &str = include_str!("../tinyio/README.md");
const LIB_RS: &str = include_str!("../tinyio/src/lib.rs");
const DOCS_RS: &str = "https://docs.rs/tinyio-loop/latest/tinyio/";

#[test]
fn packaged_copy_matches() {
    let first_difference = README
        .lines()
        .zip(PACKAGED_README.lines())
        .position(|(a, b)| a != b)
        .unwrap_or(README.lines().count().min(PACKAGED_README.lines().count()));
    assert!(
        README == PACKAGED_README,
        "tinyio/README.md differs from README.md from line {}: run `cp README.md tinyio/README.md`",
        first_difference + 1
    );
}

#[test]
fn every_link_is_defined() {
    let defined = link_definitions(README.lines());
    for label in link_labels(README) {
        assert!(
            defined.contains_key(&label),
            "README.md links {label} without a definition at the bottom, so GitHub and \
             crates.io show it as plain text"
        );
    }
}

#[test]
fn docs_rs_links_match_rustdoc_links() {
    let readme = link_definitions(README.lines());
    let rustdoc = link_definitions(LIB_RS.lines().filter_map(|line| line.strip_prefix("//! ")));
    assert_eq!(
        readme.keys().collect::<Vec<_>>(),
        rustdoc.keys().collect::<Vec<_>>(),
        "README.md and the `//!` link definitions at the top of tinyio/src/lib.rs define different labels"
    );
    for (label, target) in &rustdoc {
        assert_eq!(
            readme[label],
            docs_rs_url(target, &rustdoc),
            "the README's link for {label} is not the docs.rs page of `{target}`"
        );
    }
}

/// The `[label]: destination` lines among `lines`.
fn link_definitions<'a>(lines: impl Iterator<Item = &'a str>) -> BTreeMap<String, String> {
    lines
        .filter_map(|line| {
            let (label, destination) = line.strip_prefix('[')?.split_once("]: ")?;
            Some((format!("[{label}]"), destination.to_owned()))
        })
        .collect()
}

/// The reference labels (`` [`Loop`] ``, or the second half of `` [text][`Loop`] ``) used in the
/// prose of `markdown`, outside code blocks and definitions.
fn link_labels(markdown: &str) -> Vec<String> {
    let mut labels = Vec::new();
    let mut in_code = false;
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        if in_code || line.starts_with('[') && line.contains("]: ") {
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("[`") {
            let Some(len) = rest[start..].find("`]") else {
                break;
            };
            let label = &rest[start..start + len + 2];
            rest = &rest[start + len + 2..];
            match rest.chars().next() {
                // Link text, followed by its label.
                Some('[') => {}
                Some('(') => panic!(
                    "README.md links {label} inline; inline destinations that are Rust paths break \
                     on GitHub: use a reference link defined at the bottom"
                ),
                _ => labels.push(label.to_owned()),
            }
        }
    }
    labels
}

/// The docs.rs page of a rustdoc link target such as `struct@Loop`, `fn@thread::sleep` or
/// `method@Loop::run` (whose owner's kind comes from its own definition in `all`).
fn docs_rs_url(target: &str, all: &BTreeMap<String, String>) -> String {
    let (kind, path) =
        target.split_once('@').expect("a target with a disambiguator, like `struct@Loop`");
    let page = |kind: &str, path: &str| {
        let (modules, name) = path.rsplit_once("::").map_or(("", path), |(m, n)| (m, n));
        let kind = match kind {
            "tyalias" => "type",
            "struct" | "enum" | "trait" | "fn" | "macro" => kind,
            other => panic!("no docs.rs page kind for `{other}@` in `{target}`"),
        };
        let modules: String =
            modules.split("::").filter(|m| !m.is_empty()).map(|m| format!("{m}/")).collect();
        format!("{DOCS_RS}{modules}{kind}.{name}.html")
    };
    match kind {
        "method" | "variant" => {
            let (owner, member) = path.rsplit_once("::").expect("a member path, like `Loop::run`");
            let owner_kind = all
                .values()
                .find_map(|t| t.strip_suffix(&format!("@{owner}")))
                .unwrap_or_else(|| panic!("`{target}` needs a definition of `{owner}` too"));
            format!("{}#{kind}.{member}", page(owner_kind, owner))
        }
        _ => page(kind, path),
    }
}
