//! The runtime's modules form the layers its crate docs (and the README)
//! list, without cycles: no module's code names a module listed above it.
//! The list is read from `runtime/src/lib.rs` itself, so the docs and this
//! check cannot drift apart. Test modules (`#[cfg(test)] mod tests`, and
//! `tests.rs` files) may use anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime/src")
}

/// The layers, lowest first, from the sentence in lib.rs's docs.
fn layers(lib: &str) -> Vec<String> {
    let docs: String = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .collect::<Vec<_>>()
        .join(" ");
    let start = docs
        .find("Each layer uses only the ones below it:")
        .expect("lib.rs lists the layers");
    let list = &docs[start..];
    let list = &list[..list.find("Within").expect("the list ends before 'Within'")];
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The names lib.rs re-exports at the crate root, with the module each
/// comes from (`crate::Pool` is `pool`'s).
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for line in lib.lines().map(str::trim) {
        let Some(path) = line
            .strip_prefix("pub use ")
            .and_then(|p| p.strip_suffix(';'))
        else {
            continue;
        };
        let module = path.split("::").next().unwrap().to_string();
        let items = match (path.find('{'), path.rfind('}')) {
            (Some(a), Some(b)) => path[a + 1..b].to_string(),
            _ => path.rsplit("::").next().unwrap().to_string(),
        };
        for item in items.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            names.insert(item.to_string(), module.clone());
        }
    }
    names.insert("init".into(), "worker".into());
    names.insert("worker_index".into(), "worker".into());
    names.insert("is_worker".into(), "worker".into());
    names
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file: no comment lines, nothing from its unit tests on.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every name `code` reaches through `crate::`: `crate::a::..`,
/// `crate::{a, b::c}`.
fn crate_names(code: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        // Not `procpool::crate` or `$crate::`.
        if code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for part in group.split(',') {
                names.push(ident(part.trim()));
            }
        } else {
            names.push(ident(rest));
        }
    }
    names
}

#[test]
fn no_module_uses_one_listed_above_it() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let layers = layers(&lib);
    assert!(layers.len() > 10, "layers read from lib.rs: {layers:?}");
    let rank = |m: &str| layers.iter().position(|l| l == m);
    let reexports = reexports(&lib);
    // Documented: `pool::builder` and `pool::remote` choose the dispatcher,
    // the Redis one among them, so they sit above `redis`.
    let allowed = [("pool/remote.rs", "redis")];
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(src()).unwrap().display().to_string();
        if rel.ends_with("/tests.rs") || rel == "lib.rs" {
            continue;
        }
        let module = rel.split('/').next().unwrap().trim_end_matches(".rs");
        let Some(own) = rank(module) else {
            continue; // test-only modules (fuzz, alloc_probe)
        };
        let text = std::fs::read_to_string(file).unwrap();
        for name in crate_names(&code(&text)) {
            let used = reexports.get(&name).cloned().unwrap_or(name.clone());
            if let Some(other) = rank(&used) {
                if other > own && !allowed.contains(&(rel.as_str(), used.as_str())) {
                    wrong.push(format!("{rel} uses `{used}` (through crate::{name})"));
                }
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "modules using a layer above their own (layers, lowest first: {layers:?}):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_module_of_the_crate_is_in_a_layer() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let layers = layers(&lib);
    let mut missing = Vec::new();
    for line in lib.lines().map(str::trim) {
        let declared = line
            .strip_prefix("pub mod ")
            .or_else(|| line.strip_prefix("mod "))
            .and_then(|m| m.strip_suffix(';'));
        if let Some(module) = declared {
            if !layers.iter().any(|l| l == module) && !["fuzz", "alloc_probe"].contains(&module) {
                missing.push(module.to_string());
            }
        }
    }
    assert!(missing.is_empty(), "modules in no layer: {missing:?}");
}
