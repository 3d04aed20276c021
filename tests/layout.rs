//! The layout rules of README's "Layout" section, checked on the source tree: the engines
//! import nothing above them, the top-level modules depend on each other without a cycle,
//! and no function outside tests is longer than a screen (about 80 lines). The checks read
//! the files as text (uses of `crate::module`, brace depth), so they need no compiler
//! plugin; what they count is printed when they fail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest function body allowed outside tests, in lines (signature to closing brace).
const MAX_FUNCTION_LINES: usize = 80;

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// A file's code outside its tests: the text before its first `#[cfg(test)]`, none for a
/// `tests.rs` module, each line without its `//` comment.
fn code_lines(path: &Path) -> Vec<String> {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return Vec::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    code.lines().map(strip_comment).collect()
}

/// A line without its `//` comment and with its string and char literals emptied, so that
/// neither braces nor paths inside them count.
fn strip_comment(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_str => {
                chars.next();
            }
            '"' => {
                in_str = !in_str;
                out.push('"');
            }
            _ if in_str => {}
            '\'' if chars.peek().is_some_and(|&n| n == '{' || n == '}') => {
                chars.next();
                out.push_str("' '");
            }
            '/' if chars.peek() == Some(&'/') => break,
            _ => out.push(c),
        }
    }
    out
}

/// The top-level module a file belongs to (`engine` for `src/engine/sla/mod.rs`).
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(src()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy()
        .to_string();
    first.trim_end_matches(".rs").to_string()
}

/// Top-level module → the top-level modules it uses (`crate::x`), from the library's code.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in sources(&src()) {
        let module = module_of(&path);
        if module == "main" || module == "lib" || module == "cli" {
            continue;
        }
        let entry = deps.entry(module.clone()).or_default();
        for line in code_lines(&path) {
            for (at, _) in line.match_indices("crate::") {
                let used: String = line[at + 7..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !used.is_empty() && used != module {
                    entry.insert(used);
                }
            }
        }
    }
    deps
}

#[test]
fn the_engines_import_nothing_above_them() {
    let deps = dependencies();
    let engine = &deps["engine"];
    let allowed: BTreeSet<String> = ["model".to_string()].into();
    assert!(
        engine.is_subset(&allowed),
        "src/engine uses {engine:?}; an engine depends on its own inputs (and the canonical model) alone"
    );
}

#[test]
fn the_modules_depend_on_each_other_without_a_cycle() {
    let deps = dependencies();
    // Kahn's algorithm: repeatedly take the modules whose dependencies are all taken.
    let mut taken: Vec<String> = Vec::new();
    let mut left: BTreeMap<&String, &BTreeSet<String>> = deps.iter().collect();
    while !left.is_empty() {
        let ready: Vec<&String> = left
            .iter()
            .filter(|(_, uses)| uses.iter().all(|u| taken.contains(u) || !deps.contains_key(u)))
            .map(|(m, _)| *m)
            .collect();
        assert!(!ready.is_empty(), "a cycle among {:?}", left);
        for m in ready {
            left.remove(m);
            taken.push(m.clone());
        }
    }
    println!("dependency order: {}", taken.join(" → "));
}

/// Functions over the limit: (lines, file:line, name).
fn long_functions() -> Vec<(usize, String, String)> {
    let mut long = Vec::new();
    for path in sources(&src()) {
        for (start, lines, name) in function_lengths(&code_lines(&path)) {
            if lines > MAX_FUNCTION_LINES {
                let at = format!("{}:{}", path.strip_prefix(src()).unwrap().display(), start + 1);
                long.push((lines, at, name));
            }
        }
    }
    long
}

/// Each function's (first line index, length in lines, name), by brace depth.
fn function_lengths(lines: &[String]) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = function_name(line) else {
            continue;
        };
        let (mut depth, mut opened) = (0i64, false);
        for (j, l) in lines[i..].iter().enumerate() {
            let opens = l.matches('{').count() as i64;
            depth += opens - l.matches('}').count() as i64;
            opened |= opens > 0;
            if opened && depth <= 0 {
                out.push((i, j + 1, name));
                break;
            }
            if !opened && l.trim_end().ends_with(';') {
                break; // a declaration in a trait
            }
        }
    }
    out
}

/// The name of the function a line declares, if it declares one.
fn function_name(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "fn")?;
    let before_ok = words[..at]
        .iter()
        .all(|w| w.starts_with("pub") || ["async", "const", "unsafe", "extern"].contains(w));
    let name: String = words
        .get(at + 1)?
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (before_ok && !name.is_empty()).then_some(name)
}

#[test]
fn no_function_outside_tests_is_longer_than_a_screen() {
    let long = long_functions();
    let listing: Vec<String> = long
        .iter()
        .map(|(n, at, name)| format!("  {n:4} lines  {at}  {name}"))
        .collect();
    assert!(
        long.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines (split them into steps of one purpose each):\n{}",
        listing.join("\n")
    );
}

#[test]
fn the_checks_see_what_they_look_for() {
    // The counting itself, on text made here: a long function is found, a comment or a
    // string with `crate::` or braces is not code.
    assert_eq!(
        strip_comment(r#"let a = "{crate::x}"; // crate::y {"#),
        r#"let a = ""; "#
    );
    assert_eq!(
        function_name("    pub(crate) async fn run(config: &Config) {"),
        Some("run".into())
    );
    assert_eq!(function_name("    let f = |x| x; // fn not"), None);
    let mut text = vec!["fn long() {".to_string()];
    text.extend(
        (0..100)
            .map(|i| format!("    let x{i} = \"}}\"; // }}"))
            .map(|l| strip_comment(&l)),
    );
    text.extend([
        "}".to_string(),
        "trait T { fn f(&self); }".to_string(),
        "fn short() { 1 }".to_string(),
    ]);
    let lengths: Vec<(usize, String)> = function_lengths(&text)
        .into_iter()
        .map(|(_, n, name)| (n, name))
        .collect();
    assert_eq!(lengths, [(102, "long".to_string()), (1, "short".to_string())]);
    let deps = dependencies();
    assert!(
        deps["pipeline"].contains("sinks"),
        "the pipeline writes to the sinks: {deps:?}"
    );
}
