//! No two modules of a crate import each other: a newcomer can read a module and what it uses
//! without being sent back where they came from. Each crate's `src` is read as text; a module
//! uses another when its code (not its comments, not its unit tests) names `crate::…` or
//! `super::…` of it. Two modules under the same parent that use each other (directly, or
//! through their submodules) fail the test, named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every crate of the workspace with a `src` folder.
fn crates() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if !path.is_dir() || name.starts_with('.') || name == "target" || name == "fuzz" {
                continue;
            }
            if path.join("Cargo.toml").exists() && path.join("src").is_dir() {
                out.push(path.clone());
            }
            // Crates sit at the root, under providers/ and under hack/.
            if dir == root && (name == "providers" || name == "hack") {
                dirs.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Module path (`a::b`) → its code without comments and unit tests.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().to_string())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let text = match text.find("#[cfg(test)]\nmod tests") {
                Some(i) => &text[..i],
                None => &text[..],
            };
            let code: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            out.insert(parts.join("::"), code);
        }
    }
    out
}

/// The module paths `code` (of module `module`) names.
fn uses(module: &str, code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
    let mut named = Vec::new();
    for (prefix, base) in [("crate::", String::new()), ("super::", parent.to_string())] {
        for (i, _) in code.match_indices(prefix) {
            let rest = &code[i + prefix.len()..];
            let group = rest
                .strip_prefix('{')
                .map(|g| &g[..g.find('}').unwrap_or(g.len())]);
            let paths: Vec<&str> = match group {
                Some(g) => g.split(',').map(str::trim).collect(),
                None => vec![rest],
            };
            for path in paths {
                let path: String = path
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                let full = if base.is_empty() {
                    path
                } else {
                    format!("{base}::{path}")
                };
                named.push(full);
            }
        }
    }
    let mut out = BTreeSet::new();
    for full in named {
        let parts: Vec<&str> = full.split("::").filter(|p| !p.is_empty()).collect();
        if let Some(m) = (1..=parts.len())
            .rev()
            .map(|k| parts[..k].join("::"))
            .find(|m| known.contains(m) && m != module)
        {
            out.insert(m);
        }
    }
    out
}

#[test]
fn no_two_modules_of_a_crate_import_each_other() {
    let mut circles = Vec::new();
    let crates = crates();
    assert!(crates.len() >= 10, "found only {crates:?}");
    for krate in crates {
        let mods = modules(&krate.join("src"));
        let known: BTreeSet<String> = mods.keys().cloned().collect();
        let mut edges = BTreeSet::new();
        for (module, code) in &mods {
            for used in uses(module, code, &known) {
                // Compared where the two paths part: siblings under one parent.
                let (a, b): (Vec<&str>, Vec<&str>) =
                    (module.split("::").collect(), used.split("::").collect());
                let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
                if common < a.len() && common < b.len() {
                    edges.insert((a[..=common].join("::"), b[..=common].join("::")));
                }
            }
        }
        for (a, b) in &edges {
            if a < b && edges.contains(&(b.clone(), a.clone())) {
                circles.push(format!(
                    "{}: {a} <-> {b}",
                    krate.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "modules importing each other:\n{}",
        circles.join("\n")
    );
}
